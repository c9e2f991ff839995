//! Pointwise activations: SiLU, ReLU, exact GELU, sigmoid, softplus and exp.
//!
//! Each is described once by `Activation::value` and `Activation::derivative`; one forward and
//! one backward function apply any of them, so a new activation is two match arms. The formulas
//! follow PyTorch's defaults (GELU in its exact erf form, softplus with beta 1 and threshold 20).

use crate::device::cpu::collect_with;
use crate::dtype::Real;
use crate::error::Result;
use crate::tensor::Tensor;
use crate::{with_real, with_real2};

/// PyTorch's default softplus threshold: above it softplus returns its input, to avoid
/// `exp` overflow (with beta = 1).
pub const SOFTPLUS_THRESHOLD: f64 = 20.0;

/// A pointwise activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `x·σ(x)`, the gate of SwiGLU.
    Silu,
    /// `max(x, 0)`; its derivative at 0 is taken as 0, as PyTorch does.
    Relu,
    /// `x·Φ(x) = x/2·(1 + erf(x/√2))`, PyTorch's `nn.GELU()` default (not the tanh approximation).
    Gelu,
    /// `1/(1 + e^−x)`.
    Sigmoid,
    /// `ln(1 + eˣ)`, or `x` above `SOFTPLUS_THRESHOLD`.
    Softplus,
    /// `eˣ`.
    Exp,
}

/// The logistic function `1/(1 + e^−x)`. Branch-free so SiLU loops vectorise: for large `−x`
/// the exponential overflows to +∞ and the result is 0, as it should be.
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).vexp())
}

/// `(silu(x), silu′(x))` from one sigmoid: `x·σ`, `σ·(1 + x·(1 − σ))`.
#[inline(always)]
pub fn silu_with_derivative<T: Real>(x: T) -> (T, T) {
    let s = sigmoid(x);
    (x * s, s * (T::one() + x * (T::one() - s)))
}

/// The standard normal CDF `Φ(x) = (1 + erf(x/√2))/2`, computed as `erfc(−x/√2)/2` (libm, in
/// f64) so that the far negative tail keeps its relative precision instead of cancelling.
fn normal_cdf<T: Real>(x: T) -> T {
    T::of(0.5 * libm::erfc(-x.f64() * std::f64::consts::FRAC_1_SQRT_2))
}

/// The standard normal density `φ(x) = e^(−x²/2)/√(2π)`.
fn normal_pdf<T: Real>(x: T) -> T {
    let inv_sqrt_2pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    T::of(inv_sqrt_2pi) * (T::of(-0.5) * x * x).exp()
}

impl Activation {
    /// The op name used in errors and on the tape.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Softplus => "softplus",
            Activation::Exp => "exp",
        }
    }

    /// `f(x)`.
    pub fn value<T: Real>(self, x: T) -> T {
        match self {
            Activation::Silu => x * sigmoid(x),
            Activation::Relu => x.max(T::zero()),
            Activation::Gelu => x * normal_cdf(x),
            Activation::Sigmoid => sigmoid(x),
            Activation::Softplus => {
                if x > T::of(SOFTPLUS_THRESHOLD) {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Activation::Exp => x.exp(),
        }
    }

    /// `f′(x)`.
    pub fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Activation::Silu => silu_with_derivative(x).1,
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Gelu => normal_cdf(x) + x * normal_pdf(x),
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (T::one() - s)
            }
            Activation::Softplus => {
                if x > T::of(SOFTPLUS_THRESHOLD) {
                    T::one()
                } else {
                    sigmoid(x)
                }
            }
            Activation::Exp => x.exp(),
        }
    }
}

/// `f(x)` elementwise, in the dtype of `x`.
pub fn activation_fwd(act: Activation, x: &Tensor) -> Result<Tensor> {
    with_real!(x, act.name(), |v| Ok(Tensor::from_real(
        collect_with(v.len(), |i| act.value(v[i])),
        x.shape().clone(),
        x.dtype()
    )))
}

/// Backward of `activation_fwd`: `dx = dy ⊙ f′(x)`.
pub fn activation_bwd(act: Activation, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    dy.shape().expect_eq(act.name(), x.shape())?;
    with_real2!(x, dy, act.name(), |v, g| Ok(Tensor::from_real(
        collect_with(v.len(), |i| g[i] * act.derivative(v[i])),
        x.shape().clone(),
        x.dtype()
    )))
}
