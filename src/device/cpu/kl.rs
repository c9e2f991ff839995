//! KL divergence between diagonal Gaussians, elementwise (GRAM's posterior-to-prior term):
//!
//! `KL(q‖p) = ln(σp/σq) + (σq² + (μq − μp)²) / (2σp²) − ½`
//!
//! with gradients
//! `∂/∂μq = (μq − μp)/σp²`, `∂/∂μp = −(μq − μp)/σp²`, `∂/∂σq = −1/σq + σq/σp²`,
//! `∂/∂σp = 1/σp − (σq² + (μq − μp)²)/σp³`.
//!
//! The backward takes a scale per side so one kernel serves both the plain KL (`1, 1`) and
//! Dreamer-V2 KL balancing (`α·KL(sg(q)‖p) + (1−α)·KL(q‖sg(p))`: same value, `q` gradients scaled
//! by `1 − α` and `p` gradients by `α`).

use crate::device::cpu::collect_with;
use crate::dtype::{DType, Real};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::{same_dtype, RealData, Tensor};

const OP: &str = "gaussian_kl";

/// The four parameters of one KL term, `[μq, σq, μp, σp]`, all of one shape and float dtype.
pub type KlInputs<'a> = [&'a Tensor; 4];

/// How much of the KL gradient reaches each distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlGradScale {
    /// Multiplies the gradients of `μq` and `σq`.
    pub q: f64,
    /// Multiplies the gradients of `μp` and `σp`.
    pub p: f64,
}

impl KlGradScale {
    /// The plain KL: full gradients to both sides.
    pub const PLAIN: KlGradScale = KlGradScale { q: 1.0, p: 1.0 };

    /// KL balancing with coefficient `alpha` (GRAM uses 0.8): `p` gets `α`, `q` gets `1 − α`.
    /// Errors unless `alpha` is in `[0, 1]`.
    pub fn balanced(alpha: f64) -> Result<KlGradScale> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::arg(
                "gaussian_kl_balanced",
                format!("alpha must be in [0, 1], got {alpha}"),
            ));
        }
        Ok(KlGradScale {
            q: 1.0 - alpha,
            p: alpha,
        })
    }
}

/// Checks that the four tensors share a shape and float dtype; returns the dtype.
fn check_inputs(xs: &KlInputs<'_>) -> Result<DType> {
    for t in &xs[1..] {
        xs[0].shape().expect_eq(OP, t.shape())?;
    }
    same_dtype(OP, xs)
}

/// Errors unless every standard deviation is positive (and not NaN).
fn check_sigmas<T: Real>(sigma_q: &[T], sigma_p: &[T]) -> Result<()> {
    let bad = sigma_q
        .iter()
        .chain(sigma_p)
        .find(|s| s.f64().is_nan() || s.f64() <= 0.0);
    match bad {
        Some(s) => Err(Error::arg(
            OP,
            format!("standard deviations must be positive, got {s:?}"),
        )),
        None => Ok(()),
    }
}

/// Runs `f32_path` or `f64_path` on the four inputs' data in their compute type.
fn dispatch<R>(
    xs: &KlInputs<'_>,
    f32_path: impl FnOnce([&[f32]; 4]) -> Result<R>,
    f64_path: impl FnOnce([&[f64]; 4]) -> Result<R>,
) -> Result<R> {
    let dtype = check_inputs(xs)?;
    let data = xs
        .iter()
        .map(|t| t.real_data(OP))
        .collect::<Result<Vec<_>>>()?;
    let slots = || std::array::from_fn::<usize, 4, _>(|i| i);
    if dtype == DType::F64 {
        let s = slots().map(|i| match &data[i] {
            RealData::F64(v) => *v,
            RealData::F32(_) => unreachable!("same_dtype checked the dtypes"),
        });
        f64_path(s)
    } else {
        let s = slots().map(|i| match &data[i] {
            RealData::F32(v) => &**v,
            RealData::F64(_) => unreachable!("same_dtype checked the dtypes"),
        });
        f32_path(s)
    }
}

fn kl_values<T: Real>([mq, sq, mp, sp]: [&[T]; 4]) -> Result<Vec<T>> {
    check_sigmas(sq, sp)?;
    let half = T::of(0.5);
    Ok(collect_with(mq.len(), |i| {
        let d = mq[i] - mp[i];
        (sp[i] / sq[i]).ln() + (sq[i] * sq[i] + d * d) / (T::of(2.0) * sp[i] * sp[i]) - half
    }))
}

fn kl_grads<T: Real>(
    dy: &[f64],
    [mq, sq, mp, sp]: [&[T]; 4],
    scale: KlGradScale,
) -> Result<[Vec<T>; 4]> {
    check_sigmas(sq, sp)?;
    let n = mq.len();
    let (cq, cp) = (T::of(scale.q), T::of(scale.p));
    let d = |i: usize| mq[i] - mp[i];
    let vp = |i: usize| sp[i] * sp[i];
    Ok([
        collect_with(n, |i| T::of(dy[i]) * cq * d(i) / vp(i)),
        collect_with(n, |i| {
            T::of(dy[i]) * cq * (sq[i] / vp(i) - T::one() / sq[i])
        }),
        collect_with(n, |i| -T::of(dy[i]) * cp * d(i) / vp(i)),
        collect_with(n, |i| {
            let spread = sq[i] * sq[i] + d(i) * d(i);
            T::of(dy[i]) * cp * (T::one() / sp[i] - spread / (vp(i) * sp[i]))
        }),
    ])
}

/// Wraps four gradient buffers as tensors of `shape` and `dtype`.
fn to_tensors<T: Real>(grads: [Vec<T>; 4], shape: &Shape, dtype: DType) -> [Tensor; 4] {
    grads.map(|g| Tensor::from_real(g, shape.clone(), dtype))
}

/// Elementwise `KL(q‖p)` of diagonal Gaussians given `[μq, σq, μp, σp]`, in their dtype.
/// Errors if any standard deviation is not positive.
pub fn gaussian_kl_fwd(xs: KlInputs<'_>) -> Result<Tensor> {
    let (shape, dtype) = (xs[0].shape().clone(), xs[0].dtype());
    dispatch(
        &xs,
        |s| Ok(Tensor::from_real(kl_values(s)?, shape.clone(), dtype)),
        |s| Ok(Tensor::from_real(kl_values(s)?, shape.clone(), dtype)),
    )
}

/// Gradients of `gaussian_kl_fwd` for `dy`, in the order `[μq, σq, μp, σp]`, with `q`'s scaled
/// by `scale.q` and `p`'s by `scale.p`.
pub fn gaussian_kl_bwd(dy: &Tensor, xs: KlInputs<'_>, scale: KlGradScale) -> Result<[Tensor; 4]> {
    dy.shape().expect_eq(OP, xs[0].shape())?;
    let g = dy.to_vec_f64()?;
    let (shape, dtype) = (xs[0].shape().clone(), xs[0].dtype());
    dispatch(
        &xs,
        |s| Ok(to_tensors(kl_grads(&g, s, scale)?, &shape, dtype)),
        |s| Ok(to_tensors(kl_grads(&g, s, scale)?, &shape, dtype)),
    )
}
