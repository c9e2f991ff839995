//! `gaussian_kl` and `gaussian_kl_balanced`: elementwise KL(q‖p) of diagonal Gaussians given by
//! means and standard deviations (GRAM's posterior-to-prior term). Reduce with `sum_all` or
//! `mean` as the model requires; the GRAM text does not say which.
//!
//! Runs on the CPU reference on every backend for now (`docs/dispatch.md`): GRAM is not a
//! TRM/HRM model, and `kernels/noise.cu` has its kernels for when it is dispatched.

use crate::device::cpu::kl::{gaussian_kl_bwd, gaussian_kl_fwd, KlGradScale};
use crate::error::Result;
use crate::ops::dispatch::on_reference;
use crate::tape::{Tape, Var};

impl Tape {
    /// `KL(q‖p) = ln(σp/σq) + (σq² + (μq−μp)²)/(2σp²) − ½`, elementwise over four tensors of one
    /// shape and dtype. Any `σ ≤ 0` is an error.
    pub fn gaussian_kl(&self, mu_q: &Var, sigma_q: &Var, mu_p: &Var, sigma_p: &Var) -> Result<Var> {
        self.gaussian_kl_scaled(mu_q, sigma_q, mu_p, sigma_p, KlGradScale::PLAIN)
    }

    /// Dreamer-V2 KL balancing, `α·KL(sg(q)‖p) + (1−α)·KL(q‖sg(p))`: the value of the plain KL,
    /// with gradients to `p` scaled by `α` and to `q` by `1 − α` (GRAM: `α = 0.8`). Errors unless
    /// `α ∈ [0, 1]`.
    pub fn gaussian_kl_balanced(
        &self,
        mu_q: &Var,
        sigma_q: &Var,
        mu_p: &Var,
        sigma_p: &Var,
        alpha: f64,
    ) -> Result<Var> {
        let scale = KlGradScale::balanced(alpha)?;
        self.gaussian_kl_scaled(mu_q, sigma_q, mu_p, sigma_p, scale)
    }

    fn gaussian_kl_scaled(
        &self,
        mu_q: &Var,
        sigma_q: &Var,
        mu_p: &Var,
        sigma_p: &Var,
        scale: KlGradScale,
    ) -> Result<Var> {
        let inputs = [mu_q, sigma_q, mu_p, sigma_p];
        let values = inputs.map(|v| v.value().clone());
        let name = if scale == KlGradScale::PLAIN {
            "gaussian_kl"
        } else {
            "gaussian_kl_balanced"
        };
        let compute = self.compute().clone();
        let y = on_reference(&compute, name, values.each_ref(), gaussian_kl_fwd)?;
        self.record(name, y, &inputs, move |g| {
            let [a, b, c, d] = values.each_ref();
            let grads = on_reference(&compute, name, [g, a, b, c, d], |[g, a, b, c, d]| {
                gaussian_kl_bwd(g, [a, b, c, d], scale)
            })?;
            Ok(grads.map(Some).into())
        })
    }
}
