//! `rms_norm`, `layer_norm`, the general `norm`, and the fused post-norm `residual_norm`.
//!
//! On a kernel backend both forms run on the recurrent-step fusion of `kernels/fused_step.cu`
//! (`norm(a [+ b])` in one pass, rows up to 1024 wide): its backward adds `h + r` again from the
//! two terms, where the CPU reference keeps the sum.

use crate::device::cpu::norm as cpu;
use crate::device::cpu::norm::NormGrads;
use crate::error::Result;
use crate::kernels::fused_step as kernels;
use crate::ops::dispatch::{on_device, refs, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use crate::device::cpu::norm::{Norm, DEFAULT_EPS};

/// What is normalised: one tensor, or the post-norm residual sum `h + r`.
#[derive(Clone, Copy)]
enum Normalised<'a> {
    One(&'a Tensor),
    Residual(&'a Tensor, &'a Tensor),
}

impl<'a> Normalised<'a> {
    fn terms(self) -> Vec<&'a Tensor> {
        match self {
            Normalised::One(x) => vec![x],
            Normalised::Residual(h, r) => vec![h, r],
        }
    }
}

/// Maps the output gradient to the gradient of the normalised sum and, for LayerNorm, of the
/// weight and bias.
type NormBackward = Box<dyn Fn(&Tensor) -> Result<NormGrads>>;

/// The normalisation's output, and the backward that goes with it. The CPU reference keeps the
/// normalised input (the sum, formed in the compute type) and the statistics; the kernels keep
/// the terms and the statistics, and add the terms again in their backward.
fn norm_fwd(
    compute: &Compute,
    input: Normalised<'_>,
    norm: Norm<Tensor>,
) -> Result<(Tensor, NormBackward)> {
    match compute {
        Compute::Cpu => {
            let (y, x, stats) = match input {
                Normalised::One(x) => {
                    let out = cpu::norm_fwd(x, &norm.as_ref())?;
                    (out.y, x.clone(), out.stats)
                }
                Normalised::Residual(h, r) => {
                    let out = cpu::residual_norm_fwd(h, r, &norm.as_ref())?;
                    (out.y, out.sum, out.stats)
                }
            };
            let backward = move |g: &Tensor| cpu::norm_bwd(g, &x, &stats, &norm.as_ref());
            Ok((y, Box::new(backward)))
        }
        Compute::Kernels(dev) => {
            let inputs = (input.terms(), norm.as_ref());
            let (y, stats) = on_device(dev, inputs, |dev, (terms, norm)| {
                let out = kernels::step_norm_fwd(dev, &refs(&terms), &norm.as_ref())?;
                Ok((out.y, out.stats))
            })?;
            let dev = dev.clone();
            let terms: Vec<Tensor> = input.terms().into_iter().cloned().collect();
            let backward = move |g: &Tensor| {
                let inputs = (g, terms.iter().collect::<Vec<_>>(), &stats, norm.as_ref());
                let (dx, affine) = on_device(&dev, inputs, |dev, (g, terms, stats, norm)| {
                    let grads =
                        kernels::step_norm_bwd(dev, &g, &refs(&terms), &stats, &norm.as_ref())?;
                    Ok((grads.dx, grads.affine))
                })?;
                Ok(NormGrads { dx, affine })
            };
            Ok((y, Box::new(backward)))
        }
    }
}

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
    /// `weight` and `bias` of shape `[D]` (any float dtype; their gradients come back in it; on a
    /// kernel backend they must have `x`'s dtype).
    pub fn layer_norm(&self, x: &Var, weight: &Var, bias: &Var, eps: f64) -> Result<Var> {
        self.norm(x, Norm::layer(weight, bias, eps))
    }

    /// `norm(x)` over the last dimension, for either kind.
    pub fn norm(&self, x: &Var, norm: Norm<&Var>) -> Result<Var> {
        let saved_norm = norm.map(|p| p.value().clone());
        let (y, backward) = norm_fwd(self.compute(), Normalised::One(x.value()), saved_norm)?;
        self.record(norm.name(), y, &inputs(&[x], &norm), move |g| {
            Ok(input_grads(backward(g)?, 1))
        })
    }

    /// The post-norm residual of HRM/TRM blocks and LDT's outer loop, `norm(h + r)`, as one op:
    /// the sum is never rounded to the storage dtype, and `h` and `r` get the same gradient.
    pub fn residual_norm(&self, h: &Var, r: &Var, norm: Norm<&Var>) -> Result<Var> {
        let saved_norm = norm.map(|p| p.value().clone());
        let input = Normalised::Residual(h.value(), r.value());
        let (y, backward) = norm_fwd(self.compute(), input, saved_norm)?;
        self.record("residual_norm", y, &inputs(&[h, r], &norm), move |g| {
            Ok(input_grads(backward(g)?, 2))
        })
    }
}
