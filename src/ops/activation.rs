//! Pointwise activations: `silu`, `relu`, `gelu` (exact erf form), `sigmoid`, `softplus`
//! (beta 1, threshold 20) and `exp`. All share `Tape::activation`; the functions themselves are
//! defined once in `device::cpu::activation`.

use crate::device::cpu::activation::{activation_bwd, activation_fwd, Activation};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl Tape {
    /// `act(x)` elementwise; backward is `dy ⊙ act′(x)`.
    pub fn activation(&self, act: Activation, x: &Var) -> Result<Var> {
        let y = activation_fwd(act, x.value())?;
        let x_val = x.value().clone();
        self.record(act.name(), y, &[x], move |g| {
            Ok(vec![Some(activation_bwd(act, &x_val, g)?)])
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
