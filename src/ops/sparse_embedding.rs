//! `sparse_embedding` (the puzzle-identifier embedding) and `sparse_embedding_dense`.
//!
//! The table `[num_ids, D]` is an f32 buffer, not a parameter: the official
//! `CastedSparseEmbedding` copies `weights[ids]` into a fresh `local_weights` tensor that
//! requires a gradient, and `CastedSparseEmbeddingSignSGD_Distributed` applies that gradient to
//! the touched rows only (`optim::SignSgd`).
//!
//! On a kernel tape `sparse_embedding` gathers with the embedding lookup kernel;
//! `sparse_embedding_dense` (for checks, not training) is a counted CPU-reference fallback.

use crate::device::cpu::sparse_embedding::{
    gather_rows, row_indices, scatter_add_rows, table_dims,
};
use crate::error::Result;
use crate::kernels::embedding;
use crate::ops::dispatch::{on_device, on_reference};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

const OP: &str = "sparse_embedding";

impl Tape {
    /// The rows `table[ids]` (`ids`: i32 `[n]`) as a leaf `[n, D]`, the official `local_weights`:
    /// after `backward`, `Gradients::get` on the result gives the per-row gradients that
    /// `SignSgd::step` takes with the same `ids`. Under `no_grad` (evaluation) the rows are a
    /// constant. Errors name an id outside the table.
    pub fn sparse_embedding(&self, table: &Tensor, ids: &Tensor) -> Result<Var> {
        let rows = match self.compute().kernels() {
            None => gather_rows(table, ids)?,
            Some(dev) => {
                // The dense lookup kernel is the same gather. Ids still on the host are checked
                // as the reference does; resident ids were checked where the batch was built.
                let (num_ids, _) = table_dims(OP, table)?;
                if ids.is_on_host() {
                    row_indices(OP, ids, num_ids)?;
                }
                on_device(dev, (table, ids), |dev, (table, ids)| {
                    embedding::embedding_fwd(dev, &ids, &table)
                })?
            }
        };
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
        const DENSE: &str = "sparse_embedding_dense";
        let (num_ids, _) = table_dims(DENSE, table.value())?;
        let compute = self.compute().clone();
        let rows = on_reference(&compute, DENSE, [table.value(), ids], |[t, i]| {
            gather_rows(t, i)
        })?;
        let ids = ids.clone();
        self.record(DENSE, rows, &[table], move |g| {
            let dtable = on_reference(&compute, DENSE, [&ids, g], |[ids, g]| {
                scatter_add_rows(ids, g, num_ids)
            })?;
            Ok(vec![Some(dtable)])
        })
    }
}
