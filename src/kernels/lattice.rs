//! Launcher for `kernels/lattice.cu`: one LDT lattice round (kill and meet, n_alive, status,
//! decision) for a batch of chains in one launch, one block per chain. The reference is
//! `device::cpu::lattice::lattice_step`, whose header documents the semantics and the Philox
//! layout; the kernel matches it exactly on the state, n_alive, the flags and the decided cell.
//!
//! The state and the three heads share one storage dtype (f32 or bf16); `given [B, S]` is i32
//! (≠ 0 marks a given) or that same float dtype (> 0.5).

use crate::device::cpu::lattice::{ChainStatus, Decision, LatticeParams};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{dtype_suffix, expect_out, expect_same_dtype};
use crate::shape::Shape;
use crate::tensor::Tensor;

const OP: &str = "lattice_step";

/// The kernel's launch bounds; a block has one thread per cell up to this.
const MAX_THREADS: usize = 256;

/// The device heads of a round, all for the same batch of chains.
#[derive(Clone, Copy)]
pub struct DeviceLatticeHeads<'a> {
    /// Keep/eliminate logits `[B, S, C]`.
    pub keep_logits: &'a DeviceTensor,
    /// Value logits `[B, S, C]`.
    pub value_logits: &'a DeviceTensor,
    /// Conflict (UNSAT) logits `[B]`.
    pub conflict_logits: &'a DeviceTensor,
}

/// The outputs of a round, on the device.
pub struct DeviceLatticeStep {
    /// The new candidate mask `[B, S, C]` (0/1 in the state's dtype).
    pub state: DeviceTensor,
    /// Alive candidates per cell after deduction, before the decision: i32 `[B, S]`.
    pub n_alive: DeviceTensor,
    /// i32 `[B, 3]`: (empty, conflict, solved), each 0 or 1.
    pub flags: DeviceTensor,
    /// i32 `[B, 2]`: (cell, digit) of the decision, (−1, −1) when the chain made none.
    pub decision: DeviceTensor,
}

/// `1 / (1 + e^−x)` in f64: the reference's formula, which the thresholds must reproduce.
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The smallest f32 `x` (−∞ and +∞ included) where `holds(x)`, for a predicate that is false
/// below some point and true from it on; `None` when it holds nowhere. A binary search over the
/// f32 values in order, so comparing an f32 logit with the result decides exactly as `holds`.
pub fn smallest_f32_where(holds: impl Fn(f64) -> bool) -> Option<f32> {
    // The f32 bit patterns mapped to integers in the order of their values.
    let key = |f: f32| {
        let bits = f.to_bits();
        if bits >> 31 == 1 {
            !bits
        } else {
            bits | 1 << 31
        }
    };
    let value = |k: u32| f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k });
    let test = |k: u32| holds(value(k) as f64);
    let (mut below, mut at) = (key(f32::NEG_INFINITY), key(f32::INFINITY));
    if !test(at) {
        return None;
    }
    if test(below) {
        return Some(f32::NEG_INFINITY);
    }
    // Invariant: holds(value(below)) is false, holds(value(at)) is true.
    while at - below > 1 {
        let mid = below + (at - below) / 2;
        if test(mid) {
            at = mid;
        } else {
            below = mid;
        }
    }
    Some(value(at))
}

/// The f32 logit thresholds of a round: `(keep_min, conflict_min)`, a candidate survives when its
/// keep logit is `≥ keep_min` (σ ≥ θ) and the conflict head fires when its logit is
/// `≥ conflict_min` (σ > τ; NaN when it never can).
pub fn logit_thresholds(params: &LatticeParams) -> (f32, f32) {
    let keep_min = smallest_f32_where(|k| sigmoid(k) >= params.kill_threshold)
        .expect("σ(+∞) = 1 ≥ θ for θ in [0, 1]");
    let conflict_min =
        smallest_f32_where(|c| sigmoid(c) > params.conflict_threshold).unwrap_or(f32::NAN);
    (keep_min, conflict_min)
}

/// Checks every input; returns (B, S, C) and the kernel name.
fn check_inputs(
    state: &DeviceTensor,
    given: &DeviceTensor,
    heads: &DeviceLatticeHeads<'_>,
) -> Result<([usize; 3], String)> {
    state.shape().expect_rank(OP, 3)?;
    let suffix = dtype_suffix(OP, state)?;
    let [b, s, c] = [state.dims()[0], state.dims()[1], state.dims()[2]];
    if c == 0 {
        return Err(Error::shape(
            OP,
            "the state has no candidate values (C = 0)",
        ));
    }
    if s > i32::MAX as usize || c > i32::MAX as usize / s.max(1) {
        return Err(Error::shape(OP, "too many cells for i32 indices"));
    }
    for t in [heads.keep_logits, heads.value_logits] {
        t.shape().expect_eq(OP, state.shape())?;
        expect_same_dtype(OP, t, state.dtype())?;
    }
    heads
        .conflict_logits
        .shape()
        .expect_eq(OP, &Shape::new([b]))?;
    expect_same_dtype(OP, heads.conflict_logits, state.dtype())?;
    given.shape().expect_eq(OP, &Shape::new([b, s]))?;
    let kernel = if given.dtype() == DType::I32 {
        format!("lattice_step_{suffix}")
    } else {
        expect_same_dtype(OP, given, state.dtype())?;
        format!("lattice_step_float_given_{suffix}")
    };
    Ok(([b, s, c], kernel))
}

/// One lattice round into the caller's outputs (shapes as in `DeviceLatticeStep`).
pub fn lattice_step_into(
    dev: &dyn KernelBackend,
    state: &DeviceTensor,
    given: &DeviceTensor,
    heads: &DeviceLatticeHeads<'_>,
    params: &LatticeParams,
    out: &mut DeviceLatticeStep,
) -> Result<()> {
    params.validate()?;
    let ([b, s, c], kernel) = check_inputs(state, given, heads)?;
    expect_out(OP, &out.state, state.shape(), state.dtype())?;
    expect_out(OP, &out.n_alive, &Shape::new([b, s]), DType::I32)?;
    expect_out(OP, &out.flags, &Shape::new([b, 3]), DType::I32)?;
    expect_out(OP, &out.decision, &Shape::new([b, 2]), DType::I32)?;
    if b == 0 {
        return Ok(());
    }
    let (keep_min, conflict_min) = logit_thresholds(params);
    // One thread per cell (whole warps), at most 256 striding over more cells.
    let threads = s.div_ceil(32).clamp(1, MAX_THREADS / 32) * 32;
    let cfg = LaunchConfig::linear(b as u32, threads as u32).with_shared_mem((s.max(1) * 4) as u32);
    dev.launch(
        &kernel,
        cfg,
        &mut [
            KernelArg::In(&state.buf),
            KernelArg::In(&given.buf),
            KernelArg::In(&heads.keep_logits.buf),
            KernelArg::In(&heads.value_logits.buf),
            KernelArg::In(&heads.conflict_logits.buf),
            KernelArg::Out(&mut out.state.buf),
            KernelArg::Out(&mut out.n_alive.buf),
            KernelArg::Out(&mut out.flags.buf),
            KernelArg::Out(&mut out.decision.buf),
            KernelArg::I32(s as i32),
            KernelArg::I32(c as i32),
            KernelArg::F32(keep_min),
            KernelArg::F32(conflict_min),
            KernelArg::I64(params.temperature.to_bits() as i64),
            KernelArg::U64(params.seed),
            KernelArg::U64(params.round),
        ],
    )
}

/// One lattice round over a batch of chains: `state [B, S, C]`, `given [B, S]`, the heads.
pub fn lattice_step(
    dev: &dyn KernelBackend,
    state: &DeviceTensor,
    given: &DeviceTensor,
    heads: &DeviceLatticeHeads<'_>,
    params: &LatticeParams,
) -> Result<DeviceLatticeStep> {
    let ([b, s, _], _) = check_inputs(state, given, heads)?;
    let mut out = DeviceLatticeStep {
        state: DeviceTensor::uninit(dev, state.shape().clone(), state.dtype())?,
        n_alive: DeviceTensor::uninit(dev, [b, s], DType::I32)?,
        flags: DeviceTensor::uninit(dev, [b, 3], DType::I32)?,
        decision: DeviceTensor::uninit(dev, [b, 2], DType::I32)?,
    };
    lattice_step_into(dev, state, given, heads, params, &mut out)?;
    Ok(out)
}

/// The per-chain statuses of downloaded `flags [B, 3]` and `decision [B, 2]`, in the reference's
/// form.
pub fn chain_statuses(flags: &Tensor, decision: &Tensor) -> Result<Vec<ChainStatus>> {
    let (f, d) = (flags.to_vec_i32()?, decision.to_vec_i32()?);
    if f.len() % 3 != 0 || d.len() * 3 != f.len() * 2 {
        return Err(Error::shape(
            OP,
            format!("flags {} and decision {}", flags.shape(), decision.shape()),
        ));
    }
    Ok(f.chunks(3)
        .zip(d.chunks(2))
        .map(|(f, d)| ChainStatus {
            empty: f[0] != 0,
            conflict: f[1] != 0,
            solved: f[2] != 0,
            decision: (d[0] >= 0).then(|| Decision {
                cell: d[0] as usize,
                digit: d[1] as usize,
            }),
        })
        .collect())
}
