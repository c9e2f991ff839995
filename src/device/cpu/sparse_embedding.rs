//! The puzzle-identifier embedding table (official `CastedSparseEmbedding`): a `[num_ids, D]`
//! buffer that is read by row and updated only on the rows a batch touched.
//!
//! - `gather_rows` is the forward, `table[ids]`.
//! - `sum_rows_by_id` is the official optimizer's `unique(ids)` + `scatter_add_`: the gradient
//!   rows of duplicate ids summed, in order of appearance, one row per distinct id.
//! - `scatter_add_rows` is the same sums laid out densely as a table-shaped gradient.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::with_real;

/// `(num_ids, dim)` of a rank-2 embedding table.
pub fn table_dims(op: &'static str, table: &Tensor) -> Result<(usize, usize)> {
    table.shape().expect_rank(op, 2)?;
    Ok((table.dims()[0], table.dims()[1]))
}

/// The ids of a rank-1 i32 tensor as row indices, or an error naming the first id outside
/// `0..num_ids`.
pub fn row_indices(op: &'static str, ids: &Tensor, num_ids: usize) -> Result<Vec<usize>> {
    ids.shape().expect_rank(op, 1)?;
    ids.i32_data(op)?
        .iter()
        .map(|&id| match usize::try_from(id) {
            Ok(row) if row < num_ids => Ok(row),
            _ => Err(Error::arg(
                op,
                format!("id {id} is outside the table's 0..{num_ids}"),
            )),
        })
        .collect()
}

/// `table[ids]`: the rows of a `[num_ids, D]` table for `ids` (i32 `[n]`), as `[n, D]` in the
/// table's dtype.
pub fn gather_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    const OP: &str = "sparse_embedding";
    let (num_ids, dim) = table_dims(OP, table)?;
    let rows = row_indices(OP, ids, num_ids)?;
    with_real!(table, OP, |t| {
        let mut out = Vec::with_capacity(rows.len() * dim);
        for &row in &rows {
            out.extend_from_slice(&t[row * dim..(row + 1) * dim]);
        }
        Ok(Tensor::from_real(out, [rows.len(), dim], table.dtype()))
    })
}

/// The distinct ids of `ids` in ascending order (as `torch.unique`), and for each the sum of the
/// rows of `rows` (`[n, D]`) that carry it, as `[distinct, D]` in `rows`' dtype. Rows are added
/// in order of appearance, as the official `scatter_add_` does on one device.
pub fn sum_rows_by_id(ids: &Tensor, rows: &Tensor, num_ids: usize) -> Result<(Vec<usize>, Tensor)> {
    const OP: &str = "sum_rows_by_id";
    let indices = row_indices(OP, ids, num_ids)?;
    rows.shape().expect_rank(OP, 2)?;
    let (n, dim) = (rows.dims()[0], rows.dims()[1]);
    if n != indices.len() {
        return Err(Error::shape(
            OP,
            format!("{} ids for {n} gradient rows", indices.len()),
        ));
    }
    let mut unique = indices.clone();
    unique.sort_unstable();
    unique.dedup();
    with_real!(rows, OP, |r| {
        let mut sums = vec![T::default(); unique.len() * dim];
        for (i, row) in indices.iter().enumerate() {
            let slot = unique
                .binary_search(row)
                .expect("every id is among the unique ids");
            let acc = &mut sums[slot * dim..(slot + 1) * dim];
            for (a, &x) in acc.iter_mut().zip(&r[i * dim..(i + 1) * dim]) {
                *a += x;
            }
        }
        Ok((
            unique.clone(),
            Tensor::from_real(sums, [unique.len(), dim], rows.dtype()),
        ))
    })
}

/// The dense `[num_ids, D]` gradient of a table whose rows `ids` received `rows` (`[n, D]`):
/// duplicate ids summed, untouched rows zero.
pub fn scatter_add_rows(ids: &Tensor, rows: &Tensor, num_ids: usize) -> Result<Tensor> {
    let (unique, sums) = sum_rows_by_id(ids, rows, num_ids)?;
    let dim = sums.dims()[1];
    with_real!(sums, "scatter_add_rows", |s| {
        let mut out = vec![T::default(); num_ids * dim];
        for (k, &row) in unique.iter().enumerate() {
            out[row * dim..(row + 1) * dim].copy_from_slice(&s[k * dim..(k + 1) * dim]);
        }
        Ok(Tensor::from_real(out, [num_ids, dim], rows.dtype()))
    })
}
