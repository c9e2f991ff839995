//! Evaluation as the official code runs it: every sequence runs all `halt_max_steps` segments,
//! whatever its Q head says. Recording every segment gives, in the same pass, the depth curve
//! (accuracy after 1..=max supervision steps) and the step at which each sequence would have
//! halted under the training rule.

use crate::data::sudoku::{encode_batch, Puzzle};
use crate::error::Result;
use crate::models::{act_step, Batch, Carry, Halting, Probe, Reasoner, SequenceScores};
use crate::params::Params;
use crate::tape::{Compute, Tape};
use crate::tensor::Tensor;
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct EvalReport {
    pub puzzles: usize,
    /// Fraction of puzzles entirely right after step k+1.
    pub exact_by_step: Vec<f64>,
    /// Fraction of cells right after step k+1.
    pub token_by_step: Vec<f64>,
    /// `halt_histogram[k]`: puzzles whose halting rule first fires at step k+1; the last entry
    /// also counts those that never halt early (they stop at the last step).
    pub halt_histogram: Vec<usize>,
    /// Puzzles where "the Q head says halt" agrees with "the answer is right", at the last step.
    pub q_halt_accuracy: f64,
}

impl EvalReport {
    pub fn exact_accuracy(&self) -> f64 {
        self.exact_by_step.last().copied().unwrap_or(0.0)
    }
    pub fn token_accuracy(&self) -> f64 {
        self.token_by_step.last().copied().unwrap_or(0.0)
    }
    /// Mean step at which the halting rule fires.
    pub fn mean_halt_step(&self) -> f64 {
        let n: usize = self.halt_histogram.iter().sum();
        let total: usize = self
            .halt_histogram
            .iter()
            .enumerate()
            .map(|(k, c)| (k + 1) * c)
            .sum();
        total as f64 / n.max(1) as f64
    }
}

/// What one puzzle ended with (for `solve` and `predict`).
pub struct Prediction {
    /// Predicted tokens after the last step.
    pub tokens: Vec<i32>,
    /// The first step whose halting rule fired (or the last step).
    pub halt_step: usize,
    pub correct: bool,
}

/// Runs `puzzles` through `model` on `compute` in batches of `batch_size`; `on_batch` is told how many
/// puzzles are done (for a progress bar).
pub fn evaluate(
    compute: &Compute,
    model: &Reasoner,
    params: &Params,
    puzzles: &[Puzzle],
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<(EvalReport, Vec<Prediction>)> {
    let cfg = model.config();
    let steps = cfg.halt_max_steps;
    let mut exact = vec![0usize; steps];
    let mut tokens_right = vec![0usize; steps];
    let mut tokens_total = 0usize;
    let mut halt_histogram = vec![0usize; steps];
    let mut q_agree = 0usize;
    let mut predictions = Vec::with_capacity(puzzles.len());
    for chunk in puzzles.chunks(batch_size.max(1)) {
        let (inputs, labels) = encode_batch(chunk)?;
        let ids = Tensor::from_vec(vec![0i32; chunk.len()], [chunk.len()])?;
        let batch = Batch::new(inputs, labels, ids)?;
        let mut carry = Carry::initial(model, &batch)?;
        let mut halt_step = vec![None; chunk.len()];
        let mut last = None;
        for k in 0..steps {
            let tape = Tape::with_compute(compute.clone());
            let step = tape.no_grad(|| {
                act_step(
                    model,
                    &tape,
                    params,
                    carry,
                    &batch,
                    Halting::Eval,
                    &Probe::off(),
                )
            })?;
            let scores = SequenceScores::new(&tape, &step.output.logits, &batch.labels)?;
            let right = scores.seq_correct();
            exact[k] += right.iter().filter(|&&r| r).count();
            tokens_right[k] += scores.correct.iter().sum::<usize>();
            let q_halt = step.output.q_halt.value().to_host()?.to_vec_f32()?;
            let q_cont = step.output.q_continue.value().to_host()?.to_vec_f32()?;
            for (i, slot) in halt_step.iter_mut().enumerate() {
                let fires = cfg.q_head_halts(q_halt[i], q_cont[i]);
                if slot.is_none() && (fires || k + 1 == steps) {
                    *slot = Some(k + 1);
                }
            }
            if k + 1 == steps {
                q_agree += (0..chunk.len())
                    .filter(|&i| (q_halt[i] >= 0.0) == right[i])
                    .count();
                tokens_total += scores.valid.iter().sum::<usize>();
                last = Some((scores, right));
            }
            carry = step.carry;
        }
        let (scores, right) = last.expect("halt_max_steps >= 1");
        let preds = scores.preds.i32_data("evaluate")?;
        let width = batch.seq_len();
        for (i, (row, &ok)) in preds.chunks(width).zip(&right).enumerate() {
            let h = halt_step[i].expect("every slot halts by the last step");
            halt_histogram[h - 1] += 1;
            predictions.push(Prediction {
                tokens: row.to_vec(),
                halt_step: h,
                correct: ok,
            });
        }
        on_batch(predictions.len());
    }
    let n = puzzles.len().max(1) as f64;
    Ok((
        EvalReport {
            puzzles: puzzles.len(),
            exact_by_step: exact.iter().map(|&c| c as f64 / n).collect(),
            token_by_step: tokens_right
                .iter()
                .map(|&c| c as f64 / tokens_total.max(1) as f64)
                .collect(),
            halt_histogram,
            q_halt_accuracy: q_agree as f64 / n,
        },
        predictions,
    ))
}
