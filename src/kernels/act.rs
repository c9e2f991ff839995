//! Launchers for `kernels/act.cu`, matching `device::cpu::act`: the carry's row reset, steps and
//! halting (exploration drawn from the shared Philox stream), HRM's Q-continue target, the
//! per-sequence scores with the halted sequences' metrics, the metrics buffer the host reads, and
//! evaluation's per-depth record.
//!
//! Shapes and dtypes are checked as the reference checks them; values are not read (that would
//! copy them back to the host inside a training step). The `_into` variants write a caller's
//! tensors (tests pass poisoned ones; a persistent carry passes its own buffers), the others
//! allocate.

use super::elementwise::{dtype_suffix, expect_out, expect_same_dtype, grid_for_elements, i64_arg};
use crate::device::cpu::act::{
    check_eval_depth, check_halt, check_metrics, check_score, select_rows_layout, HaltRule,
    Operand, ACT_METRICS, SCORE_METRICS,
};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;

pub use crate::device::cpu::act::{draw_words, eval_record_len, ActMetricSlot, EvalDepth, Fresh};

/// Threads per block of every kernel in act.cu (its `__launch_bounds__`).
const THREADS: u32 = 256;

fn i32_arg(op: &'static str, what: &str, n: usize) -> Result<KernelArg<'static>> {
    i32::try_from(n)
        .map(KernelArg::I32)
        .map_err(|_| Error::arg(op, format!("{what} {n} exceeds the kernels' i32 range")))
}

fn expect_i32(op: &'static str, t: &DeviceTensor, shape: &Shape) -> Result<()> {
    expect_out(op, t, shape, DType::I32)
}

/// The kernel suffix of a row's dtype: the reset moves f32, bf16 and i32 rows.
fn row_suffix(t: &DeviceTensor) -> Result<&'static str> {
    t.expect_dtype("act_step", &[DType::F32, DType::BF16, DType::I32])
        .map_err(|_| Error::DType {
            op: "act_step",
            expected: "f32, bf16 or i32",
            got: t.dtype(),
        })?;
    Ok(t.dtype().name())
}

/// `out[i] = take_fresh[i] ? fresh row i : kept[i]` over the batch axis (`take_fresh`: i32
/// `[B]`). `out` may be a view of `kept`'s memory: the reset is then in place.
pub fn select_rows_into(
    dev: &dyn KernelBackend,
    take_fresh: &DeviceTensor,
    fresh: Fresh<&DeviceTensor>,
    kept: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "act_step";
    let fresh_t = *fresh.tensor();
    let (rows, row_len, stride, period) = select_rows_layout(
        operand(take_fresh),
        operand(fresh_t),
        fresh.is_repeated(),
        operand(kept),
    )?;
    expect_out(OP, out, kept.shape(), kept.dtype())?;
    let suffix = row_suffix(kept)?;
    if rows * row_len == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("act_select_rows_{suffix}"),
        grid_for_elements(rows * row_len),
        &mut [
            KernelArg::In(&take_fresh.buf),
            KernelArg::In(&fresh_t.buf),
            KernelArg::In(&kept.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(rows),
            i64_arg(row_len),
            i64_arg(stride),
            i64_arg(period),
        ],
    )
}

/// The reset as a new tensor (see `select_rows_into`).
pub fn select_rows(
    dev: &dyn KernelBackend,
    take_fresh: &DeviceTensor,
    fresh: Fresh<&DeviceTensor>,
    kept: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, kept.shape().clone(), kept.dtype())?;
    select_rows_into(dev, take_fresh, fresh, kept, &mut out)?;
    Ok(out)
}

/// The per-slot operands of `halt`, all `[B]` (i32 flags; the Q logits f32 or bf16).
pub struct HaltInputs<'a> {
    pub q_halt: &'a DeviceTensor,
    pub q_continue: &'a DeviceTensor,
    pub prev_halted: &'a DeviceTensor,
    pub prev_steps: &'a DeviceTensor,
    /// i32 `[4]`: `draw_words(seed, segment)`, written by the host each step.
    pub draw: &'a DeviceTensor,
}

/// Steps and halting of one segment into `halted` and `steps` (i32 `[B]`), as
/// `device::cpu::act::halt`. One thread per slot.
pub fn halt_into(
    dev: &dyn KernelBackend,
    x: &HaltInputs<'_>,
    rule: HaltRule,
    halted: &mut DeviceTensor,
    steps: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "act_step";
    let suffix = dtype_suffix(OP, x.q_halt)?;
    let b = check_halt(
        operand(x.q_halt),
        operand(x.q_continue),
        operand(x.prev_halted),
        operand(x.prev_steps),
        operand(x.draw),
    )?;
    let flags = Shape::new([b]);
    expect_i32(OP, halted, &flags)?;
    expect_i32(OP, steps, &flags)?;
    if b == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("act_halt_{suffix}"),
        LaunchConfig::for_elements(b, THREADS),
        &mut [
            KernelArg::In(&x.q_halt.buf),
            KernelArg::In(&x.q_continue.buf),
            KernelArg::In(&x.prev_halted.buf),
            KernelArg::In(&x.prev_steps.buf),
            KernelArg::In(&x.draw.buf),
            KernelArg::Out(&mut halted.buf),
            KernelArg::Out(&mut steps.buf),
            i32_arg(OP, "batch", b)?,
            i32_arg(OP, "halt_max_steps", rule.max_steps)?,
            KernelArg::I32(rule.train as i32),
            KernelArg::I32(rule.halt_only as i32),
            KernelArg::U64(rule.exploration_prob.to_bits()),
        ],
    )
}

/// (halted, steps) of one segment (see `halt_into`).
pub fn halt(
    dev: &dyn KernelBackend,
    x: &HaltInputs<'_>,
    rule: HaltRule,
) -> Result<(DeviceTensor, DeviceTensor)> {
    let b = x.q_halt.dims().first().copied().unwrap_or(0);
    let mut halted = DeviceTensor::uninit(dev, [b], DType::I32)?;
    let mut steps = DeviceTensor::uninit(dev, [b], DType::I32)?;
    halt_into(dev, x, rule, &mut halted, &mut steps)?;
    Ok((halted, steps))
}

/// HRM's Q-continue target into `target` (f32 `[B]`), as
/// `device::cpu::act::q_continue_target`.
pub fn q_continue_target_into(
    dev: &dyn KernelBackend,
    next_halt: &DeviceTensor,
    next_continue: &DeviceTensor,
    steps: &DeviceTensor,
    max_steps: usize,
    target: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "act_step";
    let suffix = dtype_suffix(OP, next_halt)?;
    expect_same_dtype(OP, next_continue, next_halt.dtype())?;
    let b = next_halt.dims().first().copied().unwrap_or(0);
    let flags = Shape::new([b]);
    next_halt.shape().expect_eq(OP, &flags)?;
    next_continue.shape().expect_eq(OP, &flags)?;
    expect_i32(OP, steps, &flags)?;
    expect_out(OP, target, &flags, DType::F32)?;
    if b == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("act_q_continue_target_{suffix}"),
        LaunchConfig::for_elements(b, THREADS),
        &mut [
            KernelArg::In(&next_halt.buf),
            KernelArg::In(&next_continue.buf),
            KernelArg::In(&steps.buf),
            KernelArg::Out(&mut target.buf),
            i32_arg(OP, "batch", b)?,
            i32_arg(OP, "halt_max_steps", max_steps)?,
        ],
    )
}

/// HRM's Q-continue target, f32 `[B]` (see `q_continue_target_into`).
pub fn q_continue_target(
    dev: &dyn KernelBackend,
    next_halt: &DeviceTensor,
    next_continue: &DeviceTensor,
    steps: &DeviceTensor,
    max_steps: usize,
) -> Result<DeviceTensor> {
    let b = next_halt.dims().first().copied().unwrap_or(0);
    let mut target = DeviceTensor::uninit(dev, [b], DType::F32)?;
    q_continue_target_into(dev, next_halt, next_continue, steps, max_steps, &mut target)?;
    Ok(target)
}

/// The outputs of `score` (`device::cpu::act::ActScores` on the device).
pub struct DeviceScores {
    /// i32 `[B]`.
    pub valid: DeviceTensor,
    /// i32 `[B]`.
    pub correct: DeviceTensor,
    /// f32 `[B]`.
    pub seq_correct: DeviceTensor,
    /// f64 `[SCORE_METRICS]`.
    pub metrics: DeviceTensor,
}

impl DeviceScores {
    /// Uninitialised outputs for a batch of `b`.
    pub fn uninit(dev: &dyn KernelBackend, b: usize) -> Result<DeviceScores> {
        Ok(DeviceScores {
            valid: DeviceTensor::uninit(dev, [b], DType::I32)?,
            correct: DeviceTensor::uninit(dev, [b], DType::I32)?,
            seq_correct: DeviceTensor::uninit(dev, [b], DType::F32)?,
            metrics: DeviceTensor::uninit(dev, [SCORE_METRICS], DType::F64)?,
        })
    }
}

/// What the reference's checks look at.
fn operand(t: &DeviceTensor) -> Operand<'_> {
    (t.dims(), t.dtype())
}

/// Scores `preds [B, S]` against `labels [B, S]` and adds the halted sequences' metrics into
/// `out`, as `device::cpu::act::score`. One block: the metrics are summed by one thread in slot
/// order, so they are reproducible to the bit.
pub fn score_into(
    dev: &dyn KernelBackend,
    preds: &DeviceTensor,
    labels: &DeviceTensor,
    q_halt: &DeviceTensor,
    halted: &DeviceTensor,
    steps: &DeviceTensor,
    out: &mut DeviceScores,
) -> Result<()> {
    const OP: &str = "scores";
    let suffix = dtype_suffix(OP, q_halt)?;
    let (b, s) = check_score(
        operand(preds),
        operand(labels),
        operand(q_halt),
        operand(halted),
        operand(steps),
    )?;
    let flags = Shape::new([b]);
    expect_i32(OP, &out.valid, &flags)?;
    expect_i32(OP, &out.correct, &flags)?;
    expect_out(OP, &out.seq_correct, &flags, DType::F32)?;
    expect_out(OP, &out.metrics, &Shape::new([SCORE_METRICS]), DType::F64)?;
    let (valid, correct) = (&mut out.valid.buf, &mut out.correct.buf);
    dev.launch(
        &format!("act_score_{suffix}"),
        LaunchConfig::linear(1, THREADS),
        &mut [
            KernelArg::In(&preds.buf),
            KernelArg::In(&labels.buf),
            KernelArg::In(&q_halt.buf),
            KernelArg::In(&halted.buf),
            KernelArg::In(&steps.buf),
            KernelArg::Out(valid),
            KernelArg::Out(correct),
            KernelArg::Out(&mut out.seq_correct.buf),
            KernelArg::Out(&mut out.metrics.buf),
            i32_arg(OP, "batch", b)?,
            i32_arg(OP, "sequence length", s)?,
        ],
    )
}

/// The scores (see `score_into`).
pub fn score(
    dev: &dyn KernelBackend,
    preds: &DeviceTensor,
    labels: &DeviceTensor,
    q_halt: &DeviceTensor,
    halted: &DeviceTensor,
    steps: &DeviceTensor,
) -> Result<DeviceScores> {
    let b = labels.dims().first().copied().unwrap_or(0);
    let mut out = DeviceScores::uninit(dev, b)?;
    score_into(dev, preds, labels, q_halt, halted, steps, &mut out)?;
    Ok(out)
}

/// The metrics buffer, f64 `[ACT_METRICS]`, into `out`: the score metrics and the three loss
/// sums (f32 scalars), as `device::cpu::act::metrics`.
pub fn metrics_into(
    dev: &dyn KernelBackend,
    scores: &DeviceTensor,
    lm_loss: &DeviceTensor,
    q_halt_loss: &DeviceTensor,
    q_continue_loss: Option<&DeviceTensor>,
    out: &mut DeviceTensor,
) -> Result<()> {
    let mut losses = vec![operand(lm_loss), operand(q_halt_loss)];
    losses.extend(q_continue_loss.map(operand));
    check_metrics(operand(scores), &losses)?;
    expect_out("act_loss", out, &Shape::new([ACT_METRICS]), DType::F64)?;
    dev.launch(
        "act_metrics_f32",
        LaunchConfig::linear(1, 32),
        &mut [
            KernelArg::In(&scores.buf),
            KernelArg::In(&lm_loss.buf),
            KernelArg::In(&q_halt_loss.buf),
            KernelArg::In(&q_continue_loss.unwrap_or(q_halt_loss).buf),
            KernelArg::Out(&mut out.buf),
            KernelArg::I32(q_continue_loss.is_some() as i32),
        ],
    )
}

/// The metrics buffer (see `metrics_into`).
pub fn metrics(
    dev: &dyn KernelBackend,
    scores: &DeviceTensor,
    lm_loss: &DeviceTensor,
    q_halt_loss: &DeviceTensor,
    q_continue_loss: Option<&DeviceTensor>,
) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, [ACT_METRICS], DType::F64)?;
    metrics_into(dev, scores, lm_loss, q_halt_loss, q_continue_loss, &mut out)?;
    Ok(out)
}

/// Evaluation's record of depth `depth` into `halt_step` and `record`, as
/// `device::cpu::act::eval_depth`. One block; both outputs may be their previous values' memory.
pub fn eval_depth_into(
    dev: &dyn KernelBackend,
    x: EvalDepth<&DeviceTensor>,
    depth: usize,
    rule: HaltRule,
    halt_step: &mut DeviceTensor,
    record: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "evaluate";
    let suffix = dtype_suffix(OP, x.q_halt)?;
    let operands = EvalDepth {
        valid: operand(x.valid),
        correct: operand(x.correct),
        q_halt: operand(x.q_halt),
        q_continue: operand(x.q_continue),
        prev_halt_step: operand(x.prev_halt_step),
        prev_record: operand(x.prev_record),
    };
    let b = check_eval_depth(operands, depth, rule.max_steps)?;
    expect_i32(OP, halt_step, x.prev_halt_step.shape())?;
    expect_i32(OP, record, x.prev_record.shape())?;
    dev.launch(
        &format!("act_eval_depth_{suffix}"),
        LaunchConfig::linear(1, THREADS),
        &mut [
            KernelArg::In(&x.valid.buf),
            KernelArg::In(&x.correct.buf),
            KernelArg::In(&x.q_halt.buf),
            KernelArg::In(&x.q_continue.buf),
            KernelArg::In(&x.prev_halt_step.buf),
            KernelArg::In(&x.prev_record.buf),
            KernelArg::Out(&mut halt_step.buf),
            KernelArg::Out(&mut record.buf),
            i32_arg(OP, "batch", b)?,
            i32_arg(OP, "depth", depth)?,
            i32_arg(OP, "halt_max_steps", rule.max_steps)?,
            KernelArg::I32(rule.halt_only as i32),
        ],
    )
}

/// (halt steps, record) of one evaluation depth (see `eval_depth_into`).
pub fn eval_depth(
    dev: &dyn KernelBackend,
    x: EvalDepth<&DeviceTensor>,
    depth: usize,
    rule: HaltRule,
) -> Result<(DeviceTensor, DeviceTensor)> {
    let mut halt_step = DeviceTensor::uninit(dev, x.prev_halt_step.shape().clone(), DType::I32)?;
    let mut record = DeviceTensor::uninit(dev, x.prev_record.shape().clone(), DType::I32)?;
    eval_depth_into(dev, x, depth, rule, &mut halt_step, &mut record)?;
    Ok((halt_step, record))
}
