//! Noise ops: PTRM's `add_noise` (`z + σ·ξ`) and GRAM's `reparam_sample` (`μ + σ ⊙ ξ`). The
//! noise `ξ_i = philox::normal(seed, step, i)` over flat element indices; see
//! `device::cpu::noise` for the layout. Plain noise tensors come from
//! `device::cpu::noise::gaussian_noise`.
//!
//! Runs on the CPU reference on every backend for now (`docs/dispatch.md`): PTRM and GRAM are
//! not TRM/HRM models, and `kernels/noise.cu` has the kernels for when they are dispatched.

use crate::device::cpu::noise::{add_noise_fwd, reparam_sample_fwd, reparam_sample_sigma_bwd};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl Tape {
    /// `z + σ·ξ` for a constant scale `σ ≥ 0`. The noise is a constant, so the gradient passes
    /// straight through to `z`.
    pub fn add_noise(&self, z: &Var, sigma: f64, seed: u64, step: u64) -> Result<Var> {
        let y = add_noise_fwd(z.value(), sigma, seed, step)?;
        self.record("add_noise", y, &[z], |g| Ok(vec![Some(g.clone())]))
    }

    /// The reparameterised sample `μ + σ ⊙ ξ` (`mu` and `sigma` of one shape and dtype).
    /// Backward: `dμ = g`, `dσ = g ⊙ ξ`, with `ξ` drawn again from (seed, step) rather than kept
    /// alive on the tape.
    pub fn reparam_sample(&self, mu: &Var, sigma: &Var, seed: u64, step: u64) -> Result<Var> {
        let y = reparam_sample_fwd(mu.value(), sigma.value(), seed, step)?;
        self.record("reparam_sample", y, &[mu, sigma], move |g| {
            Ok(vec![
                Some(g.clone()),
                Some(reparam_sample_sigma_bwd(g, seed, step)?),
            ])
        })
    }
}
