//! Pointwise activations: `silu`, `relu`, `gelu` (exact erf form), `sigmoid`, `softplus`
//! (beta 1, threshold 20) and `exp`. All share `Tape::activation`; the functions themselves are
//! defined once in `device::cpu::activation` (and `kernels/activation.cu` on kernel backends).

use crate::device::cpu::activation as cpu;
use crate::error::Result;
use crate::kernels::activation as kernels;
use crate::ops::dispatch::{on_device, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use crate::device::cpu::activation::Activation;

fn activation_fwd(compute: &Compute, act: Activation, x: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::activation_fwd(act, x),
        Some(dev) => on_device(dev, x, |dev, x| kernels::activation_fwd(dev, act, &x)),
    }
}

fn activation_bwd(compute: &Compute, act: Activation, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::activation_bwd(act, x, dy),
        Some(dev) => on_device(dev, (x, dy), |dev, (x, dy)| {
            kernels::activation_bwd(dev, act, &x, &dy)
        }),
    }
}

impl Tape {
    /// `act(x)` elementwise; backward is `dy ⊙ act′(x)`.
    pub fn activation(&self, act: Activation, x: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = activation_fwd(&compute, act, x.value())?;
        let x_val = x.value().clone();
        self.record(act.name(), y, &[x], move |g| {
            Ok(vec![Some(activation_bwd(&compute, act, &x_val, g)?)])
        })
    }

    /// `x·σ(x)`.
    pub fn silu(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Silu, x)
    }

    /// `max(x, 0)`.
    pub fn relu(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Relu, x)
    }

    /// `x·Φ(x)`, the exact GELU of PyTorch's `nn.GELU()`.
    pub fn gelu(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Gelu, x)
    }

    /// `1/(1 + e^−x)`.
    pub fn sigmoid(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Sigmoid, x)
    }

    /// `ln(1 + eˣ)`, and `x` itself above 20 (PyTorch's default threshold).
    pub fn softplus(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Softplus, x)
    }

    /// `eˣ`.
    pub fn exp(&self, x: &Var) -> Result<Var> {
        self.activation(Activation::Exp, x)
    }
}
