//! `swiglu`: `silu(gate) ⊙ up` on the fused `gate_up_proj` output.

use crate::device::cpu::swiglu::{swiglu_bwd, swiglu_fwd};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl Tape {
    /// `gate_up [..., 2·inter]` → `silu(gate) ⊙ up`, `[..., inter]`, with gate the first half of
    /// the last dimension and up the second (the official `chunk(2)`).
    pub fn swiglu(&self, gate_up: &Var) -> Result<Var> {
        let y = swiglu_fwd(gate_up.value())?;
        let x_val = gate_up.value().clone();
        self.record("swiglu", y, &[gate_up], move |g| {
            Ok(vec![Some(swiglu_bwd(&x_val, g)?)])
        })
    }
}
