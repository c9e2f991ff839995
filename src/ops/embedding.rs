//! `embedding`: dense token-embedding lookup with a scatter-add backward into the table.

use crate::device::cpu::embedding as cpu;
use crate::device::cpu::sparse_embedding::row_indices;
use crate::error::Result;
use crate::kernels::elementwise::cast;
use crate::kernels::embedding as kernels;
use crate::ops::dispatch::{on_device, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

const OP: &str = "embedding";

fn embedding_fwd(compute: &Compute, ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::embedding_fwd(ids, table),
        Some(dev) => {
            // The kernels turn a bad id into a NaN row instead of failing (checking on the device
            // would synchronise). Ids still on the host are checked as the reference does;
            // resident ids were checked where the batch was built.
            table.shape().expect_rank(OP, 2)?;
            if ids.is_on_host() {
                row_indices(OP, &ids.reshape([ids.numel()])?, table.dims()[0])?;
            }
            on_device(dev, (ids, table), |dev, (ids, table)| {
                kernels::embedding_fwd(dev, &ids, &table)
            })
        }
    }
}

fn embedding_bwd(compute: &Compute, ids: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::embedding_bwd(ids, dy, vocab),
        Some(dev) => {
            // The kernel accumulates in f32 atomics; hand the gradient back in the reference's
            // dtype (the output gradient's).
            on_device(dev, (ids, dy), |dev, (ids, dy)| {
                let dtable = kernels::embedding_bwd(dev, &ids, &dy, vocab)?;
                if dtable.dtype() == dy.dtype() {
                    return Ok(dtable);
                }
                cast(dev, &dtable, dy.dtype())
            })
        }
    }
}

impl Tape {
    /// `table[ids]`: `ids` (i32, any shape), `table [V, D]` → `[...ids, D]`. The table gradient
    /// is dense, summing the output gradient of every position into its id's row. Ids outside
    /// `0..V` are an `Error::Arg` naming the id.
    pub fn embedding(&self, ids: &Tensor, table: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = embedding_fwd(&compute, ids, table.value())?;
        let ids = ids.clone();
        let vocab = table.dims()[0];
        self.record("embedding", y, &[table], move |g| {
            Ok(vec![Some(embedding_bwd(&compute, &ids, g, vocab)?)])
        })
    }
}
