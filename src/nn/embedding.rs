//! The official `CastedEmbedding`: a `[vocab, dim]` f32 table with truncated-normal init, looked up
//! in the forward dtype.

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

    /// Rows of the table for i32 `ids` of any shape: `[..., dim]`, in the table's dtype.
    pub fn forward(&self, tape: &Tape, params: &Params, ids: &Tensor) -> Result<Var> {
        self.forward_as(tape, params, ids, params.value(self.table).dtype())
    }

    /// `forward` with the table read in `dtype` (the official `cast_to`): rows of the bf16
    /// mirror when the model runs in bf16.
    pub fn forward_as(
        &self,
        tape: &Tape,
        params: &Params,
        ids: &Tensor,
        dtype: DType,
    ) -> Result<Var> {
        let table = tape.param_as(params, self.table, dtype)?;
        tape.embedding(ids, &table)
    }
}
