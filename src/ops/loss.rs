//! Losses: `softmax_cross_entropy` and `stablemax_cross_entropy` (per-sequence means, the HRM/TRM
//! `lm_loss` terms), `masked_cross_entropy` (Sotaku, LDT), and `bce_with_logits` /
//! `bce_with_logits_weighted` (Q heads, LDT's keep/eliminate and conflict heads).
//!
//! Labels, targets of the cross-entropies and masks are plain tensors: they never receive a
//! gradient. BCE targets are `Var`s and do receive one (`∂/∂t = −x` for plain BCE), so a soft
//! target computed by the model can be trained through; pass `Var::constant` otherwise.
//!
//! On a kernel backend the sequence cross-entropies and BCE run on `kernels/loss.cu`;
//! `masked_cross_entropy` stays on the CPU reference for now (`docs/dispatch.md`).

use crate::device::cpu::loss as cpu;
use crate::device::cpu::loss::{
    check_labels, logits_rows_classes, masked_ce_bwd, masked_ce_fwd, BceWeights, Normalizer,
};
use crate::error::Result;
use crate::kernels::loss as kernels;
use crate::ops::dispatch::{on_device, on_reference, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn sequence_op(norm: Normalizer) -> &'static str {
    match norm {
        Normalizer::Softmax => "softmax_cross_entropy",
        Normalizer::Stablemax => "stablemax_cross_entropy",
    }
}

/// The reference's checks of `logits [B, S, V]` and `labels [B, S]`. Labels still on the host
/// are checked as the reference does (a cheap scan, no device read). Resident labels were checked
/// where the batch was built; the kernels turn a bad one into a NaN loss rather than reading back.
fn check_sequence_labels(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<()> {
    logits.shape().expect_rank(op, 3)?;
    let (_, classes) = logits_rows_classes(op, logits.shape(), labels.shape())?;
    if !labels.is_on_host() {
        return Ok(());
    }
    check_labels(op, labels.i32_data(op)?, classes, true, |_| true)
}

fn sequence_ce_fwd(
    compute: &Compute,
    logits: &Tensor,
    labels: &Tensor,
    norm: Normalizer,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::sequence_mean_ce_fwd(logits, labels, norm),
        Some(dev) => {
            check_sequence_labels(sequence_op(norm), logits, labels)?;
            on_device(dev, (logits, labels), |dev, (logits, labels)| {
                kernels::sequence_ce_fwd(dev, &logits, &labels, norm)
            })
        }
    }
}

fn sequence_ce_bwd(
    compute: &Compute,
    dy: &Tensor,
    logits: &Tensor,
    labels: &Tensor,
    norm: Normalizer,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::sequence_mean_ce_bwd(dy, logits, labels, norm),
        Some(dev) => on_device(dev, (dy, logits, labels), |dev, (dy, logits, labels)| {
            kernels::sequence_ce_bwd(dev, &dy, &logits, &labels, norm)
        }),
    }
}

fn bce_fwd(compute: &Compute, x: &Tensor, t: &Tensor, w: BceWeights) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::bce_with_logits_fwd(x, t, w),
        Some(dev) => on_device(dev, (x, t), |dev, (x, t)| {
            kernels::bce_with_logits_fwd(dev, &x, &t, w)
        }),
    }
}

fn bce_bwd(
    compute: &Compute,
    dy: &Tensor,
    x: &Tensor,
    t: &Tensor,
    w: BceWeights,
) -> Result<(Tensor, Tensor)> {
    match compute.kernels() {
        None => cpu::bce_with_logits_bwd(dy, x, t, w),
        Some(dev) => on_device(dev, (dy, x, t), |dev, (dy, x, t)| {
            kernels::bce_with_logits_bwd(dev, &dy, &x, &t, w)
        }),
    }
}

impl Tape {
    /// Softmax cross-entropy of `logits [B, S, V]` against i32 `labels [B, S]`, as the
    /// per-sequence mean over valid tokens, `[B]`: `Σ_s CE / max(1, #valid)`. Labels equal to
    /// −100 are ignored; any other label outside `0..V` is an error. Computed in f64; the result
    /// is f32 for f32/bf16 logits and f64 for f64. `sum_all` of it is the official `lm_loss`.
    pub fn softmax_cross_entropy(&self, logits: &Var, labels: &Tensor) -> Result<Var> {
        self.sequence_mean_ce(logits, labels, Normalizer::Softmax)
    }

    /// As `softmax_cross_entropy`, with the official stablemax in place of softmax:
    /// `s(x) = x + 1` for `x ≥ 0`, else `1/(1 − x + 1e-30)`, and `log p = log(s(x)/Σ s)`.
    pub fn stablemax_cross_entropy(&self, logits: &Var, labels: &Tensor) -> Result<Var> {
        self.sequence_mean_ce(logits, labels, Normalizer::Stablemax)
    }

    fn sequence_mean_ce(&self, logits: &Var, labels: &Tensor, norm: Normalizer) -> Result<Var> {
        let compute = self.compute().clone();
        let y = sequence_ce_fwd(&compute, logits.value(), labels, norm)?;
        let (x, labels) = (logits.value().clone(), labels.clone());
        self.record(sequence_op(norm), y, &[logits], move |g| {
            Ok(vec![Some(sequence_ce_bwd(&compute, g, &x, &labels, norm)?)])
        })
    }

    /// Mask-weighted mean softmax cross-entropy, a scalar: `Σ m·CE(logits, targets) / Σ m` for
    /// `logits [N..., C]`, i32 `targets [N...]` and a float `mask [N...]` (finite, ≥ 0). Targets
    /// are only read where the mask is non-zero. When `Σ m = 0` nothing is scored: the loss is 0
    /// and the gradient is zero. Runs on the CPU reference on every backend.
    pub fn masked_cross_entropy(
        &self,
        logits: &Var,
        targets: &Tensor,
        mask: &Tensor,
    ) -> Result<Var> {
        const OP: &str = "masked_cross_entropy";
        let compute = self.compute().clone();
        let y = on_reference(&compute, OP, [logits.value(), targets, mask], |[x, t, m]| {
            masked_ce_fwd(x, t, m)
        })?;
        let (x, targets, mask) = (logits.value().clone(), targets.clone(), mask.clone());
        self.record(OP, y, &[logits], move |g| {
            let dx = on_reference(&compute, OP, [g, &x, &targets, &mask], |[g, x, t, m]| {
                masked_ce_bwd(g, x, t, m)
            })?;
            Ok(vec![Some(dx)])
        })
    }

    /// Elementwise binary cross-entropy with logits, `softplus(x) − t·x` in its stable form (no
    /// reduction; follow with `sum_all` for the official `reduction="sum"`). Gradients flow to
    /// both the logits and the targets.
    pub fn bce_with_logits(&self, logits: &Var, targets: &Var) -> Result<Var> {
        self.bce_with_logits_weighted(logits, targets, BceWeights::PLAIN)
    }

    /// Elementwise `−(w.positive · t · log σ(x) + w.negative · (1 − t) · log σ(−x))`: LDT's
    /// asymmetric keep/eliminate loss uses `positive = 4.0, negative = 0.5`.
    pub fn bce_with_logits_weighted(
        &self,
        logits: &Var,
        targets: &Var,
        weights: BceWeights,
    ) -> Result<Var> {
        let compute = self.compute().clone();
        let y = bce_fwd(&compute, logits.value(), targets.value(), weights)?;
        let (x, t) = (logits.value().clone(), targets.value().clone());
        self.record("bce_with_logits", y, &[logits, targets], move |g| {
            let (dx, dt) = bce_bwd(&compute, g, &x, &t, weights)?;
            Ok(vec![Some(dx), Some(dt)])
        })
    }
}
