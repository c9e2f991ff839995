//! Launchers for `kernels/embedding.cu`: the dense embedding lookup and its backward
//! (`device::cpu::embedding`), and the backward of the sparse puzzle-identifier table
//! (`device::cpu::sparse_embedding`), whose forward is the same lookup on rank-1 ids.
//!
//! Shapes and dtypes are checked like the CPU reference. Ids are not: checking them would copy
//! them back to the host and synchronise inside a training step. The kernels never read or write
//! outside a table instead: an id outside `0..vocab` gives a NaN output row in the forward and is
//! skipped by the backward and by `sign_sgd_step`, so a bad id shows up as a NaN loss.

use super::elementwise::{dtype_suffix, expect_out, grid_for_elements, i64_arg};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;

/// Threads per block of `sparse_embedding_bwd` (a multiple of 32: its block reduction needs it).
const SPARSE_BWD_THREADS: u32 = 128;

fn expect_ids(op: &'static str, ids: &DeviceTensor) -> Result<()> {
    if ids.dtype() != DType::I32 {
        return Err(Error::DType {
            op,
            expected: "i32",
            got: ids.dtype(),
        });
    }
    Ok(())
}

/// `(vocab, dim)` of a rank-2 table.
fn table_dims(op: &'static str, table: &DeviceTensor) -> Result<(usize, usize)> {
    match *table.dims() {
        [vocab, dim] => Ok((vocab, dim)),
        _ => Err(Error::shape(
            op,
            format!("the table must be [vocab, dim], got {}", table.shape()),
        )),
    }
}

/// A size as the kernels' `int` argument, or an error if it does not fit.
fn i32_arg(op: &'static str, what: &str, n: usize) -> Result<KernelArg<'static>> {
    i32::try_from(n)
        .map(KernelArg::I32)
        .map_err(|_| Error::arg(op, format!("{what} {n} exceeds the kernels' i32 range")))
}

/// The shape `[...ids, dim]` of a lookup's output.
fn lookup_shape(ids: &DeviceTensor, dim: usize) -> Shape {
    let mut dims = ids.dims().to_vec();
    dims.push(dim);
    Shape::new(dims)
}

/// `table[ids]` into `out`: `ids` (i32, any shape), `table [V, D]` (f32 or bf16), `out
/// [...ids, D]` in the table's dtype.
pub fn embedding_fwd_into(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    table: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "embedding";
    expect_ids(OP, ids)?;
    let suffix = dtype_suffix(OP, table)?;
    let (vocab, dim) = table_dims(OP, table)?;
    expect_out(OP, out, &lookup_shape(ids, dim), table.dtype())?;
    if out.numel() == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("embedding_fwd_{suffix}"),
        grid_for_elements(out.numel()),
        &mut [
            KernelArg::In(&ids.buf),
            KernelArg::In(&table.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(ids.numel()),
            i32_arg(OP, "dim", dim)?,
            i32_arg(OP, "vocab", vocab)?,
        ],
    )
}

/// `table[ids]`: `[...ids, D]` in the table's dtype (see `embedding_fwd_into`).
pub fn embedding_fwd(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    table: &DeviceTensor,
) -> Result<DeviceTensor> {
    let dim = table_dims("embedding", table)?.1;
    let mut out = DeviceTensor::uninit(dev, lookup_shape(ids, dim), table.dtype())?;
    embedding_fwd_into(dev, ids, table, &mut out)?;
    Ok(out)
}

/// Backward of the lookup into `dtable` (f32 `[vocab, D]`, overwritten): row `v` becomes the
/// sum of `dy [...ids, D]` (f32 or bf16) over the positions holding id `v`, zero elsewhere. The
/// gradient is always f32, whatever `dy`'s dtype: it is accumulated with f32 atomics, so the
/// order of additions to a row (and its last bits) varies from run to run.
pub fn embedding_bwd_into(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    dy: &DeviceTensor,
    dtable: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "embedding backward";
    expect_ids(OP, ids)?;
    let suffix = dtype_suffix(OP, dy)?;
    let (vocab, dim) = table_dims(OP, dtable)?;
    dy.shape().expect_eq(OP, &lookup_shape(ids, dim))?;
    expect_out(OP, dtable, &Shape::new([vocab, dim]), DType::F32)?;
    let table_len = dtable.numel();
    if table_len == 0 {
        return Ok(());
    }
    dev.launch(
        "embedding_bwd_clear_f32",
        grid_for_elements(table_len),
        &mut [KernelArg::Out(&mut dtable.buf), i64_arg(table_len)],
    )?;
    if dy.numel() == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("embedding_bwd_{suffix}"),
        grid_for_elements(dy.numel()),
        &mut [
            KernelArg::In(&ids.buf),
            KernelArg::In(&dy.buf),
            KernelArg::Out(&mut dtable.buf),
            i64_arg(ids.numel()),
            i32_arg(OP, "dim", dim)?,
            i32_arg(OP, "vocab", vocab)?,
        ],
    )
}

/// Backward of the lookup: the f32 `[vocab, D]` table gradient (see `embedding_bwd_into`).
pub fn embedding_bwd(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    dy: &DeviceTensor,
    vocab: usize,
) -> Result<DeviceTensor> {
    let dim = dy.dims().last().copied().unwrap_or(0);
    let mut dtable = DeviceTensor::uninit(dev, [vocab, dim], DType::F32)?;
    embedding_bwd_into(dev, ids, dy, &mut dtable)?;
    Ok(dtable)
}

/// The per-id gradient sums of the sparse table, laid out by position (the official `unique` +
/// `scatter_add_`, without sorting and without waiting on the host).
pub struct RowSums {
    /// i32 `[n]`: `ids[p]` where position `p` is the first occurrence of its id, −1 elsewhere.
    /// Every id appears at most once, as `sign_sgd_step` needs.
    pub ids: DeviceTensor,
    /// f32 `[n, D]`: at a first occurrence, the sum of the gradient rows of every position with
    /// that id, added in order of appearance (bitwise the CPU reference's f32 sums); zero rows
    /// elsewhere.
    pub sums: DeviceTensor,
}

/// `sparse_embedding_bwd` into caller-given outputs (`out.ids` i32 `[n]`, `out.sums` f32
/// `[n, D]`), for `ids` i32 `[n]` and gradient rows `rows [n, D]` (f32 or bf16).
pub fn sparse_embedding_bwd_into(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    rows: &DeviceTensor,
    out: &mut RowSums,
) -> Result<()> {
    const OP: &str = "sparse_embedding backward";
    expect_ids(OP, ids)?;
    ids.shape().expect_rank(OP, 1)?;
    let suffix = dtype_suffix(OP, rows)?;
    let n = ids.numel();
    let dim = match *rows.dims() {
        [r, d] if r == n => d,
        _ => {
            return Err(Error::shape(
                OP,
                format!("{n} ids for gradient rows {}", rows.shape()),
            ))
        }
    };
    expect_out(OP, &out.ids, &Shape::new([n]), DType::I32)?;
    expect_out(OP, &out.sums, &Shape::new([n, dim]), DType::F32)?;
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("sparse_embedding_bwd_{suffix}"),
        LaunchConfig::linear(n as u32, SPARSE_BWD_THREADS),
        &mut [
            KernelArg::In(&ids.buf),
            KernelArg::In(&rows.buf),
            KernelArg::Out(&mut out.ids.buf),
            KernelArg::Out(&mut out.sums.buf),
            i32_arg(OP, "id count", n)?,
            i32_arg(OP, "dim", dim)?,
        ],
    )
}

/// The gradient rows of duplicate ids summed, one row per distinct id (see `RowSums`).
pub fn sparse_embedding_bwd(
    dev: &dyn KernelBackend,
    ids: &DeviceTensor,
    rows: &DeviceTensor,
) -> Result<RowSums> {
    let n = ids.numel();
    let dim = rows.dims().last().copied().unwrap_or(0);
    let mut out = RowSums {
        ids: DeviceTensor::uninit(dev, [n], DType::I32)?,
        sums: DeviceTensor::uninit(dev, [n, dim], DType::F32)?,
    };
    sparse_embedding_bwd_into(dev, ids, rows, &mut out)?;
    Ok(out)
}
