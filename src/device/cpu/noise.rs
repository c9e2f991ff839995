//! Gaussian noise from the Philox stream: PTRM's `z_H + σ·ξ` before each supervision step, and
//! GRAM's reparameterised sample `μ + σ ⊙ ξ`.
//!
//! Stream layout (shared with the kernels): element `i` of a tensor, in flat row-major order,
//! takes `ξ_i = philox::normal(seed, step, i)`. `step` selects the draw: a caller that adds noise
//! several times under one seed (PTRM's D steps, GRAM's transitions) must give each draw its own
//! `step`. `ξ` is an f32 (Box-Muller in f32, as the GPU); the product `σ·ξ` and the sum are
//! computed in the tensor's compute dtype (f32 for f32/bf16, f64 for f64) and rounded back.

use crate::device::cpu::collect_with;
use crate::dtype::{DType, Real};
use crate::error::{Error, Result};
use crate::rng::philox;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{with_real, with_real2};

/// `ξ_i = philox::normal(seed, step, i)` for `i in 0..n`, one Philox call per four elements.
pub fn standard_normal(n: usize, seed: u64, step: u64) -> Vec<f32> {
    let mut xi = vec![0f32; n];
    philox::fill_normal(seed, step, 0, &mut xi);
    xi
}

/// Errors unless the noise scale is finite and non-negative.
fn check_sigma(op: &'static str, sigma: f64) -> Result<()> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::arg(
            op,
            format!("sigma must be finite and non-negative, got {sigma}"),
        ));
    }
    Ok(())
}

/// `σ·ξ` of shape `shape` and float dtype `dtype`.
pub fn gaussian_noise(
    shape: impl Into<Shape>,
    sigma: f64,
    seed: u64,
    step: u64,
    dtype: DType,
) -> Result<Tensor> {
    const OP: &str = "gaussian_noise";
    check_sigma(OP, sigma)?;
    let shape = shape.into();
    let n = shape.numel();
    Ok(match dtype {
        DType::F64 => Tensor::from_real(scaled_normal::<f64>(n, sigma, seed, step), shape, dtype),
        DType::F32 | DType::BF16 => {
            Tensor::from_real(scaled_normal::<f32>(n, sigma, seed, step), shape, dtype)
        }
        DType::I32 => {
            return Err(Error::DType {
                op: OP,
                expected: "a float dtype",
                got: dtype,
            })
        }
    })
}

/// `σ·ξ_i` for `i in 0..n`, multiplied in `T`.
fn scaled_normal<T: Real>(n: usize, sigma: f64, seed: u64, step: u64) -> Vec<T> {
    let s = T::of(sigma);
    standard_normal(n, seed, step)
        .into_iter()
        .map(|x| s * T::of(x as f64))
        .collect()
}

/// `z + σ·ξ` (PTRM), in `z`'s dtype.
pub fn add_noise_fwd(z: &Tensor, sigma: f64, seed: u64, step: u64) -> Result<Tensor> {
    const OP: &str = "add_noise";
    check_sigma(OP, sigma)?;
    with_real!(z, OP, |v| {
        let xi = standard_normal(v.len(), seed, step);
        let s = T::of(sigma);
        let out: Vec<T> = collect_with(v.len(), |i| v[i] + s * T::of(xi[i] as f64));
        Ok(Tensor::from_real(out, z.shape().clone(), z.dtype()))
    })
}

/// `μ + σ ⊙ ξ` (GRAM's reparameterisation), for `mu` and `sigma` of one shape and dtype.
pub fn reparam_sample_fwd(mu: &Tensor, sigma: &Tensor, seed: u64, step: u64) -> Result<Tensor> {
    const OP: &str = "reparam_sample";
    mu.shape().expect_eq(OP, sigma.shape())?;
    with_real2!(mu, sigma, OP, |m, s| {
        let xi = standard_normal(m.len(), seed, step);
        let out: Vec<T> = collect_with(m.len(), |i| m[i] + s[i] * T::of(xi[i] as f64));
        Ok(Tensor::from_real(out, mu.shape().clone(), mu.dtype()))
    })
}

/// The `σ` gradient of `reparam_sample_fwd`: `dy ⊙ ξ`, with `ξ` drawn again from the same
/// (seed, step) stream instead of being stored. (The `μ` gradient is `dy` itself.)
pub fn reparam_sample_sigma_bwd(dy: &Tensor, seed: u64, step: u64) -> Result<Tensor> {
    with_real!(dy, "reparam_sample", |g| {
        let xi = standard_normal(g.len(), seed, step);
        let out: Vec<T> = collect_with(g.len(), |i| g[i] * T::of(xi[i] as f64));
        Ok(Tensor::from_real(out, dy.shape().clone(), dy.dtype()))
    })
}
