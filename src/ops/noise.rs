//! Noise ops: PTRM's `add_noise` (`z + σ·ξ`) and GRAM's `reparam_sample` (`μ + σ ⊙ ξ`). The
//! noise `ξ_i = philox::normal(seed, step, i)` over flat element indices; see
//! `device::cpu::noise` for the layout. Plain noise tensors come from
//! `device::cpu::noise::gaussian_noise`.
//!
//! Runs on the CPU reference on every backend for now (`docs/dispatch.md`), as a counted fallback
//! on a kernel tape: PTRM and GRAM are not TRM/HRM models, and `kernels/noise.cu` has the kernels
//! for when they are dispatched.

use crate::device::cpu::noise::{add_noise_fwd, reparam_sample_fwd, reparam_sample_sigma_bwd};
use crate::error::Result;
use crate::ops::dispatch::on_reference;
use crate::tape::{Tape, Var};

impl Tape {
    /// `z + σ·ξ` for a constant scale `σ ≥ 0`. The noise is a constant, so the gradient passes
    /// straight through to `z`.
    pub fn add_noise(&self, z: &Var, sigma: f64, seed: u64, step: u64) -> Result<Var> {
        let y = on_reference(self.compute(), "add_noise", [z.value()], |[z]| {
            add_noise_fwd(z, sigma, seed, step)
        })?;
        self.record("add_noise", y, &[z], |g| Ok(vec![Some(g.clone())]))
    }

    /// The reparameterised sample `μ + σ ⊙ ξ` (`mu` and `sigma` of one shape and dtype).
    /// Backward: `dμ = g`, `dσ = g ⊙ ξ`, with `ξ` drawn again from (seed, step) rather than kept
    /// alive on the tape.
    pub fn reparam_sample(&self, mu: &Var, sigma: &Var, seed: u64, step: u64) -> Result<Var> {
        const OP: &str = "reparam_sample";
        let compute = self.compute().clone();
        let y = on_reference(&compute, OP, [mu.value(), sigma.value()], |[mu, sigma]| {
            reparam_sample_fwd(mu, sigma, seed, step)
        })?;
        self.record(OP, y, &[mu, sigma], move |g| {
            let dsigma = on_reference(&compute, OP, [g], |[g]| {
                reparam_sample_sigma_bwd(g, seed, step)
            })?;
            Ok(vec![Some(g.clone()), Some(dsigma)])
        })
    }
}
