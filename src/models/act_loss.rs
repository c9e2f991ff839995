//! The official `ACTLossHead` (`models/losses.py:40-101`): the stablemax LM loss as a sum over
//! sequences of per-sequence means, the Q-halt loss against "the whole sequence is right", HRM's
//! Q-continue loss, `total = lm + 0.5·(q_halt + q_continue)`, and the metrics, which count only
//! sequences that halted in this segment.

use crate::error::{Error, Result};
use crate::models::act::ActStep;
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
}

pub struct ActLoss {
    /// `lm + 0.5·(q_halt + q_continue)`, unscaled; the trainer divides by the global batch.
    pub total: Var,
    pub lm_loss: f64,
    pub q_halt_loss: f64,
    pub q_continue_loss: f64,
    pub metrics: ActMetrics,
    /// Argmax predictions `[B, S]`.
    pub preds: Tensor,
    /// Per slot: every valid token right.
    pub seq_correct: Vec<bool>,
}

/// What a segment scored, per sequence, before any halting mask: shared by the loss head and
/// by evaluation, which scores every sequence at every depth.
pub struct SequenceScores {
    pub preds: Tensor,
    /// Valid labels per sequence.
    pub valid: Vec<usize>,
    /// Correct valid tokens per sequence.
    pub correct: Vec<usize>,
}

impl SequenceScores {
    pub fn new(tape: &Tape, logits: &Var, labels: &Tensor) -> Result<SequenceScores> {
        let preds = tape.argmax(logits, -1)?.to_host()?;
        let labels = labels.to_host()?;
        let (p, l) = (preds.i32_data("scores")?, labels.i32_data("scores")?);
        if p.len() != l.len() || l.is_empty() {
            return Err(Error::shape(
                "scores",
                format!("{} predictions for {} labels", p.len(), l.len()),
            ));
        }
        let s = labels.dims()[labels.rank() - 1];
        let (mut valid, mut correct) = (Vec::new(), Vec::new());
        for (prow, lrow) in p.chunks(s).zip(l.chunks(s)) {
            let scored = lrow.iter().filter(|&&y| y != IGNORE_LABEL_ID).count();
            let right = prow
                .iter()
                .zip(lrow)
                .filter(|(&yhat, &y)| y != IGNORE_LABEL_ID && yhat == y)
                .count();
            valid.push(scored);
            correct.push(right);
        }
        Ok(SequenceScores {
            preds,
            valid,
            correct,
        })
    }

    pub fn seq_correct(&self) -> Vec<bool> {
        self.valid
            .iter()
            .zip(&self.correct)
            .map(|(v, c)| v == c)
            .collect()
    }
}

pub fn act_loss(tape: &Tape, step: &ActStep) -> Result<ActLoss> {
    let out = &step.output;
    let carry = &step.carry;
    let labels = &carry.data.labels;
    let scores = SequenceScores::new(tape, &out.logits, labels)?;
    let seq_correct = scores.seq_correct();

    let lm = tape.sum_all(&tape.stablemax_cross_entropy(&out.logits, labels)?)?;
    let b = seq_correct.len();
    let correct_target = Tensor::from_vec(
        seq_correct
            .iter()
            .map(|&c| c as u8 as f32)
            .collect::<Vec<_>>(),
        [b],
    )?;
    let q_halt =
        tape.sum_all(&tape.bce_with_logits(&out.q_halt, &Var::constant(correct_target))?)?;
    let q_terms = match &step.target_q_continue {
        Some(target) => {
            let q_cont = tape
                .sum_all(&tape.bce_with_logits(&out.q_continue, &Var::constant(target.clone()))?)?;
            let q_cont_loss = q_cont.value().to_host()?.item()?;
            (tape.add(&q_halt, &q_cont)?, q_cont_loss)
        }
        None => (q_halt.clone(), 0.0),
    };
    let total = tape.add(&lm, &tape.scale(&q_terms.0, 0.5)?)?;

    let q_halt_logits = out.q_halt.value().to_host()?.to_vec_f32()?;
    let mut metrics = ActMetrics::default();
    for i in 0..b {
        if !carry.halted[i] || scores.valid[i] == 0 {
            continue;
        }
        metrics.count += 1.0;
        metrics.accuracy += scores.correct[i] as f64 / scores.valid[i] as f64;
        metrics.exact_accuracy += seq_correct[i] as u8 as f64;
        metrics.q_halt_accuracy += ((q_halt_logits[i] >= 0.0) == seq_correct[i]) as u8 as f64;
        metrics.steps += carry.steps[i] as f64;
    }
    Ok(ActLoss {
        lm_loss: lm.value().to_host()?.item()?,
        q_halt_loss: q_halt.value().to_host()?.item()?,
        q_continue_loss: q_terms.1,
        total,
        metrics,
        preds: scores.preds,
        seq_correct,
    })
}
