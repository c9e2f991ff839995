//! `swiglu`: `silu(gate) ⊙ up` on the fused `gate_up_proj` output.

use crate::device::cpu::swiglu as cpu;
use crate::error::Result;
use crate::kernels::activation as kernels;
use crate::ops::dispatch::{on_device, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn swiglu_fwd(compute: &Compute, gate_up: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::swiglu_fwd(gate_up),
        Some(dev) => on_device(dev, gate_up, |dev, x| kernels::swiglu_fwd(dev, &x)),
    }
}

fn swiglu_bwd(compute: &Compute, gate_up: &Tensor, dy: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::swiglu_bwd(gate_up, dy),
        Some(dev) => on_device(dev, (gate_up, dy), |dev, (x, dy)| {
            kernels::swiglu_bwd(dev, &x, &dy)
        }),
    }
}

impl Tape {
    /// `gate_up [..., 2·inter]` → `silu(gate) ⊙ up`, `[..., inter]`, with gate the first half of
    /// the last dimension and up the second (the official `chunk(2)`).
    pub fn swiglu(&self, gate_up: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = swiglu_fwd(&compute, gate_up.value())?;
        let x_val = gate_up.value().clone();
        self.record("swiglu", y, &[gate_up], move |g| {
            Ok(vec![Some(swiglu_bwd(&compute, &x_val, g)?)])
        })
    }
}
