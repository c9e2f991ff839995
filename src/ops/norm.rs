//! `rms_norm`, `layer_norm`, the general `norm`, and the fused post-norm `residual_norm`.

use crate::device::cpu::norm::{norm_bwd, norm_fwd, residual_norm_fwd, NormGrads};
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use crate::device::cpu::norm::{Norm, DEFAULT_EPS};

/// The gradients a normalisation hands the tape: `dx` once per normalised input (`h` and `r` for
/// the residual form), then `dweight` and `dbias` for LayerNorm.
fn input_grads(grads: NormGrads, x_inputs: usize) -> Vec<Option<Tensor>> {
    let mut out = vec![Some(grads.dx); x_inputs];
    if let Some((dw, db)) = grads.affine {
        out.extend([Some(dw), Some(db)]);
    }
    out
}

/// The tape inputs of a normalisation: the normalised ones, then weight and bias for LayerNorm.
fn inputs<'a>(xs: &[&'a Var], norm: &Norm<&'a Var>) -> Vec<&'a Var> {
    let mut all = xs.to_vec();
    if let Norm::Layer { weight, bias, .. } = norm {
        all.extend([*weight, *bias]);
    }
    all
}

impl Tape {
    /// HRM/TRM `rms_norm`: `x·rsqrt(mean(x²) + eps)` over the last dimension, no learned scale.
    pub fn rms_norm(&self, x: &Var, eps: f64) -> Result<Var> {
        self.norm(x, Norm::rms(eps))
    }

    /// `nn.LayerNorm` over the last dimension: `(x − mean)·rsqrt(var + eps)·weight + bias`, with
    /// `weight` and `bias` of shape `[D]` (any float dtype; their gradients come back in it).
    pub fn layer_norm(&self, x: &Var, weight: &Var, bias: &Var, eps: f64) -> Result<Var> {
        self.norm(x, Norm::layer(weight, bias, eps))
    }

    /// `norm(x)` over the last dimension, for either kind.
    pub fn norm(&self, x: &Var, norm: Norm<&Var>) -> Result<Var> {
        let out = norm_fwd(x.value(), &norm.map(Var::value))?;
        let (saved_x, stats) = (x.value().clone(), out.stats);
        let saved_norm = norm.map(|p| p.value().clone());
        self.record(norm.name(), out.y, &inputs(&[x], &norm), move |g| {
            let grads = norm_bwd(g, &saved_x, &stats, &saved_norm.as_ref())?;
            Ok(input_grads(grads, 1))
        })
    }

    /// The post-norm residual of HRM/TRM blocks and LDT's outer loop, `norm(h + r)`, as one op:
    /// the sum is never rounded to the storage dtype, and `h` and `r` get the same gradient.
    pub fn residual_norm(&self, h: &Var, r: &Var, norm: Norm<&Var>) -> Result<Var> {
        let out = residual_norm_fwd(h.value(), r.value(), &norm.map(Var::value))?;
        let (sum, stats) = (out.sum, out.stats);
        let saved_norm = norm.map(|p| p.value().clone());
        self.record("residual_norm", out.y, &inputs(&[h, r], &norm), move |g| {
            let grads = norm_bwd(g, &sum, &stats, &saved_norm.as_ref())?;
            Ok(input_grads(grads, 2))
        })
    }
}
