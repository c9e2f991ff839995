//! The official `ACTLossHead` (`models/losses.py:40-101`): the stablemax LM loss as a sum over
//! sequences of per-sequence means, the Q-halt loss against "the whole sequence is right", HRM's
//! Q-continue loss, `total = lm + 0.5·(q_halt + q_continue)`, and the metrics, which count only
//! sequences that halted in this segment.

use crate::error::{Error, Result};
use crate::models::act::ActStep;
use crate::ops::act::{self, ActMetricSlot, ACT_METRICS};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The label value no loss or metric looks at.
pub const IGNORE_LABEL_ID: i32 = -100;

/// Sums over the halted sequences of one segment, as the official metrics dict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActMetrics {
    /// Halted sequences with at least one valid label.
    pub count: f64,
    /// Σ per-sequence token accuracy.
    pub accuracy: f64,
    /// Sequences with every valid token right.
    pub exact_accuracy: f64,
    /// Sequences where `q_halt ≥ 0` agrees with being right.
    pub q_halt_accuracy: f64,
    /// Σ segments used.
    pub steps: f64,
}

impl ActMetrics {
    pub fn add(&mut self, other: &ActMetrics) {
        self.count += other.count;
        self.accuracy += other.accuracy;
        self.exact_accuracy += other.exact_accuracy;
        self.q_halt_accuracy += other.q_halt_accuracy;
        self.steps += other.steps;
    }

    /// The metrics of a host copy of `ActLoss::metrics`.
    pub fn from_buffer(buffer: &Tensor) -> Result<ActMetrics> {
        let m = read_buffer(buffer)?;
        Ok(ActMetrics {
            count: m[ActMetricSlot::Count as usize],
            accuracy: m[ActMetricSlot::Accuracy as usize],
            exact_accuracy: m[ActMetricSlot::Exact as usize],
            q_halt_accuracy: m[ActMetricSlot::QHaltAccuracy as usize],
            steps: m[ActMetricSlot::Steps as usize],
        })
    }
}

/// The loss sums of one segment (unscaled, as the official loss head returns them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActLossSums {
    pub lm: f64,
    pub q_halt: f64,
    /// 0 without HRM's Q-continue target.
    pub q_continue: f64,
}

impl ActLossSums {
    /// The losses of a host copy of `ActLoss::metrics`.
    pub fn from_buffer(buffer: &Tensor) -> Result<ActLossSums> {
        let m = read_buffer(buffer)?;
        Ok(ActLossSums {
            lm: m[ActMetricSlot::LmLoss as usize],
            q_halt: m[ActMetricSlot::QHaltLoss as usize],
            q_continue: m[ActMetricSlot::QContinueLoss as usize],
        })
    }
}

/// The values of a metrics buffer: a host tensor of `ACT_METRICS` f64s. A device buffer is an
/// error (`Error::NotOnHost`): the caller decides when to download it.
fn read_buffer(buffer: &Tensor) -> Result<Vec<f64>> {
    let m = buffer.to_vec_f64()?;
    if m.len() != ACT_METRICS {
        return Err(Error::shape(
            "act metrics",
            format!("expected {ACT_METRICS} values, got {}", buffer.shape()),
        ));
    }
    Ok(m)
}

pub struct ActLoss {
    /// `lm + 0.5·(q_halt + q_continue)`, unscaled; the trainer divides by the global batch.
    pub total: Var,
    /// f64 `[ACT_METRICS]` where the tape's compute keeps values (the device on the kernels):
    /// the metrics of the halted sequences and the loss sums. Read it with `to_host()`, ideally
    /// a step later, then `ActMetrics::from_buffer` and `ActLossSums::from_buffer`.
    pub metrics: Tensor,
    /// Argmax predictions i32 `[B, S]`.
    pub preds: Tensor,
    /// Per slot, 1.0 where every valid token is right, else 0.0 (f32 `[B]`, the Q-halt target).
    pub seq_correct: Tensor,
}

/// The official loss head for one segment. On the kernels nothing is read back: the scores,
/// the Q-halt target, HRM's Q-continue target and the metrics stay on the device.
pub fn act_loss(tape: &Tape, step: &ActStep) -> Result<ActLoss> {
    let compute = tape.compute();
    let out = &step.output;
    let carry = &step.carry;
    let labels = &carry.data.labels;
    let preds = tape.argmax(&out.logits, -1)?;
    let scores = act::score(
        compute,
        &preds,
        labels,
        out.q_halt.value(),
        &carry.halted,
        &carry.steps,
    )?;

    let lm = tape.sum_all(&tape.stablemax_cross_entropy(&out.logits, labels)?)?;
    let q_halt = tape
        .sum_all(&tape.bce_with_logits(&out.q_halt, &Var::constant(scores.seq_correct.clone()))?)?;
    let q_cont = step
        .target_q_continue
        .as_ref()
        .map(|target| {
            tape.sum_all(&tape.bce_with_logits(&out.q_continue, &Var::constant(target.clone()))?)
        })
        .transpose()?;
    let q_terms = match &q_cont {
        Some(q_cont) => tape.add(&q_halt, q_cont)?,
        None => q_halt.clone(),
    };
    let total = tape.add(&lm, &tape.scale(&q_terms, 0.5)?)?;
    let metrics = act::metrics(
        compute,
        &scores.metrics,
        lm.value(),
        q_halt.value(),
        q_cont.as_ref().map(Var::value),
    )?;
    Ok(ActLoss {
        total,
        metrics,
        preds,
        seq_correct: scores.seq_correct,
    })
}
