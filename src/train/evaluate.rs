//! Evaluation as the official code runs it: every sequence runs all `halt_max_steps` segments,
//! whatever its Q head says. Recording every segment gives, in the same pass, the depth curve
//! (accuracy after 1..=max supervision steps) and the step at which each sequence would have
//! halted under the training rule.

use crate::data::sudoku::{encode_batch, Puzzle};
use crate::error::{Error, Result};
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
    let steps = model.config().halt_max_steps;
    // Everything a depth records stays where the compute keeps values; the host reads each
    // batch's predictions, halting steps and correctness once, and the record at the end.
    let mut record = new_record(compute, steps)?;
    let mut halt_histogram = vec![0usize; steps];
    let mut predictions = Vec::with_capacity(puzzles.len());
    for chunk in puzzles.chunks(batch_size.max(1)) {
        let mut batch = EvalBatch::new(compute, model, chunk)?;
        for _ in 0..steps {
            batch.segment(compute, model, params, &mut record)?;
        }
        let (preds, right) = batch.last.expect("halt_max_steps >= 1");
        let preds = preds.to_host()?.to_vec_i32()?;
        let right = right.to_host()?.to_vec_f32()?;
        let halt_step = batch.halt_step.to_host()?.to_vec_i32()?;
        let width = batch.batch.seq_len();
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

/// The per-depth counts an evaluation accumulates across its batches (`act::eval_record_len`),
/// zeroed, where `compute` keeps values.
pub fn new_record(compute: &Compute, steps: usize) -> Result<Tensor> {
    let len = act::eval_record_len(steps);
    compute.place(&Tensor::from_vec(vec![0i32; len], [len])?)
}

/// One evaluation batch in progress: its inputs and carry where `compute` keeps values, and what
/// the depths run so far recorded. `evaluate` runs `halt_max_steps` segments of each batch;
/// `recur bench step --eval` times them one by one.
pub struct EvalBatch {
    batch: Batch,
    /// `None` only while a segment runs (the step consumes it) or after one failed.
    carry: Option<Carry>,
    /// Per sequence, the first depth whose halting rule fired (0 while none has).
    halt_step: Tensor,
    /// Segments run so far.
    depth: usize,
    /// The last segment's predictions and per-sequence correctness.
    last: Option<(Tensor, Tensor)>,
}

impl EvalBatch {
    /// `puzzles` encoded and placed, with the initial carry.
    pub fn new(compute: &Compute, model: &Reasoner, puzzles: &[Puzzle]) -> Result<EvalBatch> {
        let b = puzzles.len();
        let (inputs, labels) = encode_batch(puzzles)?;
        check_token_range(&inputs, model.config().vocab_size)?;
        let place = |t: Tensor| compute.place(&t);
        let batch = Batch::new(
            place(inputs)?,
            place(labels)?,
            place(Tensor::from_vec(vec![0i32; b], [b])?)?,
        )?;
        Ok(EvalBatch {
            carry: Some(Carry::initial(model, &batch)?),
            halt_step: place(Tensor::from_vec(vec![0i32; b], [b])?)?,
            depth: 0,
            last: None,
            batch,
        })
    }

    /// Segments run so far; the batch is done at `halt_max_steps`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next supervision segment, without gradient: the model's step, the predictions scored
    /// against the labels, and this depth's counts added to `record`. Nothing is read back.
    pub fn segment(
        &mut self,
        compute: &Compute,
        model: &Reasoner,
        params: &Params,
        record: &mut Tensor,
    ) -> Result<()> {
        let cfg = model.config();
        if self.depth >= cfg.halt_max_steps {
            return Err(Error::arg(
                "evaluation",
                format!(
                    "the batch has run all {} segments; start a new batch",
                    cfg.halt_max_steps
                ),
            ));
        }
        let rule = HaltRule {
            max_steps: cfg.halt_max_steps,
            train: false,
            halt_only: cfg.no_ACT_continue,
            exploration_prob: cfg.halt_exploration_prob,
        };
        let carry = self.carry.take().ok_or_else(|| {
            Error::arg(
                "evaluation",
                "an earlier segment of this batch failed; start a new batch",
            )
        })?;
        let tape = Tape::with_compute(compute.clone());
        let step = tape.no_grad(|| {
            act_step(
                model,
                &tape,
                params,
                carry,
                &self.batch,
                Halting::Eval,
                &Probe::off(),
            )
        })?;
        let out = &step.output;
        let preds = tape.argmax(&out.logits, -1)?;
        let scores = act::score(
            compute,
            &preds,
            &self.batch.labels,
            out.q_halt.value(),
            &step.carry.halted,
            &step.carry.steps,
        )?;
        let depth = EvalDepth {
            valid: &scores.valid,
            correct: &scores.correct,
            q_halt: out.q_halt.value(),
            q_continue: out.q_continue.value(),
            prev_halt_step: &self.halt_step,
            prev_record: record,
        };
        (self.halt_step, *record) = act::eval_depth(compute, depth, self.depth, rule)?;
        self.last = Some((preds, scores.seq_correct));
        self.carry = Some(step.carry);
        self.depth += 1;
        Ok(())
    }
}
