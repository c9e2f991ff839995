//! The official `CastedEmbedding`: a `[vocab, dim]` table with truncated-normal init.

use crate::dtype::DType;
use crate::error::Result;
use crate::nn::init_seed;
use crate::params::{ParamId, Params};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub struct Embedding {
    pub table: ParamId,
}

impl Embedding {
    /// Registers `{prefix}embedding_weight` (the official name) with init std `init_std`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        vocab: usize,
        dim: usize,
        init_std: f64,
        seed: u64,
    ) -> Result<Embedding> {
        let name = format!("{prefix}embedding_weight");
        let t = Tensor::trunc_normal([vocab, dim], init_std, init_seed(seed, &name), DType::F32)?;
        Ok(Embedding {
            table: params.add(name, t)?,
        })
    }

    /// Rows of the table for i32 `ids` of any shape: `[..., dim]`.
    pub fn forward(&self, tape: &Tape, params: &Params, ids: &Tensor) -> Result<Var> {
        let table = tape.param(params, self.table);
        tape.embedding(ids, &table)
    }
}
