//! The official `CastedLinear`: weight `[out, in]` with truncated-normal init of std `1/√in`
//! (LeCun), optional zero-initialised bias. The f32 master weight is read in the input's dtype.

use crate::dtype::DType;
use crate::error::Result;
use crate::nn::init_seed;
use crate::params::{ParamId, Params};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub struct Linear {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
}

impl Linear {
    /// Registers `{prefix}weight` (and `{prefix}bias`) in `params`.
    pub fn new(
        params: &mut Params,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        seed: u64,
    ) -> Result<Linear> {
        let name = format!("{prefix}weight");
        let std = 1.0 / (in_features as f64).sqrt();
        let w = Tensor::trunc_normal(
            [out_features, in_features],
            std,
            init_seed(seed, &name),
            DType::F32,
        )?;
        let weight = params.add(name, w)?;
        let bias = if bias {
            Some(params.add(
                format!("{prefix}bias"),
                Tensor::zeros([out_features], DType::F32),
            )?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// `x·Wᵀ + b` over the last dimension, in `x`'s dtype: as the official `CastedLinear`, the
    /// weight and bias are read in the input's dtype (bf16 from the parameters' mirror).
    pub fn forward(&self, tape: &Tape, params: &Params, x: &Var) -> Result<Var> {
        let w = tape.param_as(params, self.weight, x.dtype())?;
        let b = self
            .bias
            .map(|b| tape.param_as(params, b, x.dtype()))
            .transpose()?;
        tape.linear(x, &w, b.as_ref())
    }
}
