//! `embedding`: dense token-embedding lookup with a scatter-add backward into the table.

use crate::device::cpu::embedding::{embedding_bwd, embedding_fwd};
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

impl Tape {
    /// `table[ids]`: `ids` (i32, any shape), `table [V, D]` → `[...ids, D]`. The table gradient
    /// is dense, summing the output gradient of every position into its id's row. Ids outside
    /// `0..V` are an `Error::Arg` naming the id.
    pub fn embedding(&self, ids: &Tensor, table: &Var) -> Result<Var> {
        let y = embedding_fwd(ids, table.value())?;
        let ids = ids.clone();
        let vocab = table.dims()[0];
        self.record("embedding", y, &[table], move |g| {
            Ok(vec![Some(embedding_bwd(&ids, g, vocab)?)])
        })
    }
}
