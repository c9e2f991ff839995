//! Dense embedding lookup (`CastedEmbedding`): rows of a `[V, D]` table gathered by i32 ids, and
//! the backward that scatter-adds the output gradient into a dense table gradient.
//!
//! The backward groups positions by id first, so each table row is summed by one thread in
//! position order: the result is deterministic whatever the thread count.

use crate::device::cpu::PARALLEL_MIN_ELEMS;
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::with_real;
use rayon::prelude::*;

/// Checks the table is `[V, D]` and every id is in `0..V`; returns (V, D) and the ids.
fn checked_ids<'a>(
    op: &'static str,
    ids: &'a Tensor,
    table_dims: &[usize],
) -> Result<(usize, usize, &'a [i32])> {
    let &[vocab, dim] = table_dims else {
        return Err(Error::shape(
            op,
            format!("the table must be [vocab, dim], got {table_dims:?}"),
        ));
    };
    let id_data = ids.i32_data(op)?;
    if let Some((pos, &bad)) = id_data
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as usize >= vocab)
    {
        return Err(Error::arg(
            op,
            format!("id {bad} at position {pos} is outside the vocabulary 0..{vocab}"),
        ));
    }
    Ok((vocab, dim, id_data))
}

/// The shape `[...ids, dim]` of a lookup's output.
fn output_dims(ids: &Tensor, dim: usize) -> Vec<usize> {
    let mut dims = ids.dims().to_vec();
    dims.push(dim);
    dims
}

/// Runs `f(index, chunk)` over the `width`-wide chunks of `out`, in parallel when `work` (the
/// number of element operations) is large.
fn for_each_chunk<T: Send>(
    out: &mut [T],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if width == 0 {
        return;
    }
    if work >= PARALLEL_MIN_ELEMS {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// `table[ids]`: `ids` (i32, any shape) and `table [V, D]` → `[...ids, D]`. Negative or
/// out-of-range ids are an `Error::Arg` naming the id.
pub fn embedding_fwd(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    const OP: &str = "embedding";
    let (_, dim, id_data) = checked_ids(OP, ids, table.dims())?;
    with_real!(table, OP, |t| {
        let mut y = vec![T::default(); id_data.len() * dim];
        for_each_chunk(&mut y, dim, id_data.len() * dim, |p, row| {
            let id = id_data[p] as usize;
            row.copy_from_slice(&t[id * dim..(id + 1) * dim]);
        });
        Ok(Tensor::from_real(y, output_dims(ids, dim), table.dtype()))
    })
}

/// Backward of `embedding_fwd`: a `[vocab, D]` gradient whose row `v` is the sum of `dy` over the
/// positions holding id `v` (zero for ids that do not occur). Sums accumulate in f64.
pub fn embedding_bwd(ids: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    const OP: &str = "embedding backward";
    let dim = dy.dims().last().copied().unwrap_or(0);
    let (_, _, id_data) = checked_ids(OP, ids, &[vocab, dim])?;
    dy.shape().expect_eq(OP, &output_dims(ids, dim).into())?;
    // Positions grouped by id, in order: positions[starts[v]..starts[v + 1]] hold id v.
    let mut starts = vec![0usize; vocab + 1];
    for &id in id_data {
        starts[id as usize + 1] += 1;
    }
    for v in 0..vocab {
        starts[v + 1] += starts[v];
    }
    let mut next = starts.clone();
    let mut positions = vec![0usize; id_data.len()];
    for (p, &id) in id_data.iter().enumerate() {
        positions[next[id as usize]] = p;
        next[id as usize] += 1;
    }
    with_real!(dy, OP, |g| {
        let mut dtable = vec![T::default(); vocab * dim];
        for_each_chunk(&mut dtable, dim, g.len(), |v, row| {
            let mut acc = vec![0.0f64; dim];
            for &p in &positions[starts[v]..starts[v + 1]] {
                let src = &g[p * dim..(p + 1) * dim];
                acc.iter_mut().zip(src).for_each(|(a, x)| *a += x.f64());
            }
            row.iter_mut().zip(&acc).for_each(|(r, &a)| *r = T::of(a));
        });
        Ok(Tensor::from_real(dtable, [vocab, dim], dy.dtype()))
    })
}
