//! Evaluation as the official code runs it: every sequence runs all `halt_max_steps` segments,
//! whatever its Q head says. Recording every segment gives, in the same pass, the depth curve
//! (accuracy after 1..=max supervision steps) and the step at which each sequence would have
//! halted under the training rule.

use crate::data::sudoku::{encode_batch, Puzzle};
use crate::error::Result;
use crate::models::reasoner::check_token_range;
use crate::models::{act_step, Batch, Carry, Halting, Probe, Reasoner};
use crate::ops::act::{self, EvalDepth, HaltRule};
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
    let rule = HaltRule {
        max_steps: steps,
        train: false,
        halt_only: cfg.no_ACT_continue,
        exploration_prob: cfg.halt_exploration_prob,
    };
    // Everything a depth records stays where the compute keeps values; the host reads each
    // batch's predictions, halting steps and correctness once, and the record at the end.
    let len = act::eval_record_len(steps);
    let mut record = compute.place(&Tensor::from_vec(vec![0i32; len], [len])?)?;
    let mut halt_histogram = vec![0usize; steps];
    let mut predictions = Vec::with_capacity(puzzles.len());
    for chunk in puzzles.chunks(batch_size.max(1)) {
        let b = chunk.len();
        let (inputs, labels) = encode_batch(chunk)?;
        check_token_range(&inputs, cfg.vocab_size)?;
        let place = |t: Tensor| compute.place(&t);
        let batch = Batch::new(
            place(inputs)?,
            place(labels)?,
            place(Tensor::from_vec(vec![0i32; b], [b])?)?,
        )?;
        let mut carry = Carry::initial(model, &batch)?;
        let mut halt_step = place(Tensor::from_vec(vec![0i32; b], [b])?)?;
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
            let out = &step.output;
            let preds = tape.argmax(&out.logits, -1)?;
            let scores = act::score(
                compute,
                &preds,
                &batch.labels,
                out.q_halt.value(),
                &step.carry.halted,
                &step.carry.steps,
            )?;
            let depth = EvalDepth {
                valid: &scores.valid,
                correct: &scores.correct,
                q_halt: out.q_halt.value(),
                q_continue: out.q_continue.value(),
                prev_halt_step: &halt_step,
                prev_record: &record,
            };
            (halt_step, record) = act::eval_depth(compute, depth, k, rule)?;
            last = Some((preds, scores.seq_correct));
            carry = step.carry;
        }
        let (preds, right) = last.expect("halt_max_steps >= 1");
        let preds = preds.to_host()?.to_vec_i32()?;
        let right = right.to_host()?.to_vec_f32()?;
        let halt_step = halt_step.to_host()?.to_vec_i32()?;
        let width = batch.seq_len();
        for ((row, &ok), &h) in preds.chunks(width).zip(&right).zip(&halt_step) {
            // Set by the last depth at the latest; clamped only for a backend that computes
            // nothing (the trace reads back zeros), so a profile of evaluation cannot panic.
            let h = (h.max(1) as usize).min(halt_histogram.len());
            halt_histogram[h - 1] += 1;
            predictions.push(Prediction {
                tokens: row.to_vec(),
                halt_step: h,
                correct: ok != 0.0,
            });
        }
        on_batch(predictions.len());
    }
    let record: Vec<usize> = record
        .to_host()?
        .to_vec_i32()?
        .iter()
        .map(|&c| c as usize)
        .collect();
    let exact: Vec<usize> = (0..steps).map(|k| record[2 * k]).collect();
    let tokens_right: Vec<usize> = (0..steps).map(|k| record[2 * k + 1]).collect();
    let (q_agree, tokens_total) = (record[2 * steps], record[2 * steps + 1]);
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
