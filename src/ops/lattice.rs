//! `lattice_step`: LDT's deduce / status / decide round between model calls. It is not
//! differentiable (the official code runs it under `no_grad`): it reads the heads' values and
//! records nothing. The algorithm and its Philox layout are documented in
//! `device::cpu::lattice`.
//!
//! Runs on the CPU reference on every backend for now (`docs/dispatch.md`); `kernels/lattice.cu`
//! has the kernel for when LDT is dispatched.

pub use crate::device::cpu::lattice::{
    ChainStatus, Decision, LatticeHeads, LatticeParams, LatticeStep,
};

use crate::device::cpu::lattice::lattice_step;
use crate::error::Result;
use crate::ops::dispatch::reference_inputs;
use crate::tape::{Tape, Var};

impl Tape {
    /// One lattice round for a batch of chains: `state [B, S, C]` (0/1 floats), `given [B, S]`
    /// (float > 0.5 or i32 ≠ 0 marks a given), the model's `keep_logits` and `value_logits`
    /// `[B, S, C]` and `conflict_logits [B]`. Returns the new state, per-cell alive counts and
    /// per-chain status and decision; nothing is recorded and no gradient flows.
    pub fn lattice_step(
        &self,
        state: &Var,
        given: &Var,
        keep_logits: &Var,
        value_logits: &Var,
        conflict_logits: &Var,
        params: &LatticeParams,
    ) -> Result<LatticeStep> {
        // A counted fallback on a kernel tape; the result (a decision, no gradient) stays on the
        // host, where the caller reads it.
        let values = [state, given, keep_logits, value_logits, conflict_logits].map(Var::value);
        let host = reference_inputs(self.compute(), "lattice_step", &values)?;
        let [state, given, keep_logits, value_logits, conflict_logits] = &host[..] else {
            unreachable!("five inputs give five host copies")
        };
        let heads = LatticeHeads {
            keep_logits,
            value_logits,
            conflict_logits,
        };
        lattice_step(state, given, &heads, params)
    }
}
