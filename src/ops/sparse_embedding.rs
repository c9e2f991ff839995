//! `sparse_embedding` (the puzzle-identifier embedding) and `sparse_embedding_dense`.
//!
//! The table `[num_ids, D]` is an f32 buffer, not a parameter: the official
//! `CastedSparseEmbedding` copies `weights[ids]` into a fresh `local_weights` tensor that
//! requires a gradient, and `CastedSparseEmbeddingSignSGD_Distributed` applies that gradient to
//! the touched rows only (`optim::SignSgd`).
//!
//! Both run on the CPU reference on every backend for now (`docs/dispatch.md`): the gather is a
//! row copy with no arithmetic, and the dense backward is not used in training.

use crate::device::cpu::sparse_embedding::{gather_rows, scatter_add_rows, table_dims};
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

impl Tape {
    /// The rows `table[ids]` (`ids`: i32 `[n]`) as a leaf `[n, D]`, the official `local_weights`:
    /// after `backward`, `Gradients::get` on the result gives the per-row gradients that
    /// `SignSgd::step` takes with the same `ids`. Under `no_grad` (evaluation) the rows are a
    /// constant. Errors name an id outside the table.
    pub fn sparse_embedding(&self, table: &Tensor, ids: &Tensor) -> Result<Var> {
        let rows = gather_rows(table, ids)?;
        Ok(if self.is_recording() {
            self.leaf(rows)
        } else {
            Var::constant(rows)
        })
    }

    /// The same gather with the table as a variable: backward scatter-adds the row gradients
    /// (duplicate ids summed) into a dense table-shaped gradient that is zero on untouched rows.
    /// This is the gradient the sparse update sees, written densely, so it can be checked by
    /// finite differences or used when the table is trained as an ordinary parameter.
    pub fn sparse_embedding_dense(&self, table: &Var, ids: &Tensor) -> Result<Var> {
        let (num_ids, _) = table_dims("sparse_embedding_dense", table.value())?;
        let rows = gather_rows(table.value(), ids)?;
        let ids = ids.clone();
        self.record("sparse_embedding_dense", rows, &[table], move |g| {
            Ok(vec![Some(scatter_add_rows(&ids, g, num_ids)?)])
        })
    }
}
