//! The ACT bookkeeping of a supervision segment as ops on a `Compute`: the CPU reference
//! (`device::cpu::act`, today's host code) on `Compute::Cpu`, `kernels/act.cu` on the kernels.
//! None of them has a gradient, and on the kernels none reads anything back: flags, steps,
//! targets and metrics stay on the device (`models::act`, `models::act_loss`).

use crate::device::cpu::act as cpu;
pub use crate::device::cpu::act::{
    draw_words, eval_record_len, min_halt_steps, ActMetricSlot, ActScores, EvalDepth, Fresh,
    HaltRule, ACT_METRICS, SCORE_METRICS,
};
use crate::error::Result;
use crate::kernels::act as kernels;
use crate::kernels::act::HaltInputs;
use crate::ops::dispatch::{on_device, Compute};
use crate::tensor::Tensor;

/// Row `i` is the fresh row where `take_fresh[i] != 0` (i32 `[B]`), else row `i` of `kept`.
pub fn reset_rows(
    compute: &Compute,
    take_fresh: &Tensor,
    fresh: Fresh<&Tensor>,
    kept: &Tensor,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::select_rows(take_fresh, fresh, kept),
        Some(dev) => on_device(
            dev,
            (take_fresh, *fresh.tensor(), kept),
            |dev, (take, rows, kept)| kernels::select_rows(dev, &take, fresh.with(&rows), &kept),
        ),
    }
}

/// (halted, steps) of a segment, i32 `[B]`, from the previous segment's flags and this one's Q
/// logits; `draw` is i32 `[4]`, `draw_words(seed, segment)`.
pub fn halt(
    compute: &Compute,
    q_halt: &Tensor,
    q_continue: &Tensor,
    prev_halted: &Tensor,
    prev_steps: &Tensor,
    draw: &Tensor,
    rule: HaltRule,
) -> Result<(Tensor, Tensor)> {
    match compute.kernels() {
        None => cpu::halt(q_halt, q_continue, prev_halted, prev_steps, draw, rule),
        Some(dev) => on_device(
            dev,
            (q_halt, q_continue, prev_halted, prev_steps, draw),
            |dev, (q_halt, q_continue, prev_halted, prev_steps, draw)| {
                let inputs = HaltInputs {
                    q_halt: &q_halt,
                    q_continue: &q_continue,
                    prev_halted: &prev_halted,
                    prev_steps: &prev_steps,
                    draw: &draw,
                };
                kernels::halt(dev, &inputs, rule)
            },
        ),
    }
}

/// HRM's Q-continue target, f32 `[B]`.
pub fn q_continue_target(
    compute: &Compute,
    next_halt: &Tensor,
    next_continue: &Tensor,
    steps: &Tensor,
    max_steps: usize,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::q_continue_target(next_halt, next_continue, steps, max_steps),
        Some(dev) => on_device(
            dev,
            (next_halt, next_continue, steps),
            |dev, (h, c, steps)| kernels::q_continue_target(dev, &h, &c, &steps, max_steps),
        ),
    }
}

/// Per-sequence scores of `preds` against `labels` (`[B, S]`) and the metrics of the halted
/// sequences.
pub fn score(
    compute: &Compute,
    preds: &Tensor,
    labels: &Tensor,
    q_halt: &Tensor,
    halted: &Tensor,
    steps: &Tensor,
) -> Result<ActScores> {
    match compute.kernels() {
        None => cpu::score(preds, labels, q_halt, halted, steps),
        Some(dev) => {
            let (valid, correct, seq_correct, metrics) = on_device(
                dev,
                (preds, labels, q_halt, halted, steps),
                |dev, (preds, labels, q_halt, halted, steps)| {
                    let s = kernels::score(dev, &preds, &labels, &q_halt, &halted, &steps)?;
                    Ok((s.valid, s.correct, s.seq_correct, s.metrics))
                },
            )?;
            Ok(ActScores {
                valid,
                correct,
                seq_correct,
                metrics,
            })
        }
    }
}

/// The metrics buffer, f64 `[ACT_METRICS]` (`ActMetricSlot` order): the score metrics and the
/// loss sums.
pub fn metrics(
    compute: &Compute,
    scores: &Tensor,
    lm_loss: &Tensor,
    q_halt_loss: &Tensor,
    q_continue_loss: Option<&Tensor>,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::metrics(scores, lm_loss, q_halt_loss, q_continue_loss),
        Some(dev) => on_device(
            dev,
            (scores, lm_loss, q_halt_loss, q_continue_loss),
            |dev, (scores, lm, q_halt, q_cont)| {
                kernels::metrics(dev, &scores, &lm, &q_halt, q_cont.as_ref())
            },
        ),
    }
}

/// Evaluation's record of depth `depth` (0-based): (halt steps, record), both i32, from the
/// depth's per-sequence counts (`score`) and Q logits and the previous halt steps and record.
pub fn eval_depth(
    compute: &Compute,
    x: EvalDepth<&Tensor>,
    depth: usize,
    rule: HaltRule,
) -> Result<(Tensor, Tensor)> {
    match compute.kernels() {
        None => cpu::eval_depth(x, depth, rule),
        Some(dev) => on_device(
            dev,
            (
                (x.valid, x.correct),
                (x.q_halt, x.q_continue),
                (x.prev_halt_step, x.prev_record),
            ),
            |dev, ((valid, correct), (q_halt, q_continue), (prev_halt_step, prev_record))| {
                let x = EvalDepth {
                    valid: &valid,
                    correct: &correct,
                    q_halt: &q_halt,
                    q_continue: &q_continue,
                    prev_halt_step: &prev_halt_step,
                    prev_record: &prev_record,
                };
                kernels::eval_depth(dev, x, depth, rule)
            },
        ),
    }
}
