//! The ACT bookkeeping of one supervision segment (`models::act`, `models::act_loss`), as
//! tensor-level functions: the spec of `kernels/act.cu`. This is the host code those modules ran
//! before the kernels existed, moved here unchanged, so the CPU training path computes exactly
//! what it did.
//!
//! Flags and counters are i32 tensors `[B]` (`halted` is 0 or 1); the metrics are one f64
//! buffer whose slots `ActMetricSlot` names.

use crate::device::cpu::loss::IGNORE_LABEL;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::rng::philox;
use crate::tensor::Tensor;

/// The slots of the metrics buffer, in order (`kernels/act.cu` writes the same layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMetricSlot {
    /// Halted sequences with at least one valid label.
    Count,
    /// Σ per-sequence token accuracy.
    Accuracy,
    /// Sequences with every valid token right.
    Exact,
    /// Sequences where `q_halt ≥ 0` agrees with being right.
    QHaltAccuracy,
    /// Σ segments used.
    Steps,
    /// The LM loss sum (`Σ` of per-sequence means).
    LmLoss,
    /// The Q-halt BCE sum.
    QHaltLoss,
    /// The Q-continue BCE sum (0 without HRM's target).
    QContinueLoss,
}

/// Slots written by `score` (the first five); `metrics` adds the three losses.
pub const SCORE_METRICS: usize = 5;
/// Length of the metrics buffer.
pub const ACT_METRICS: usize = 8;

/// Where the rows of a reset come from: `T` is a host `&Tensor` here, a `&DeviceTensor` for the
/// kernels.
#[derive(Clone, Copy, Debug)]
pub enum Fresh<T> {
    /// Row `i` of a tensor shaped like the state (the new batch's example in slot `i`).
    Rows(T),
    /// A vector repeated along every row (`H_init`, `L_init`: `[hidden]`, the state's dtype).
    Repeated(T),
}

impl<T> Fresh<T> {
    pub fn tensor(&self) -> &T {
        match self {
            Fresh::Rows(t) | Fresh::Repeated(t) => t,
        }
    }

    pub fn is_repeated(&self) -> bool {
        matches!(self, Fresh::Repeated(_))
    }

    /// The same kind of fresh rows, from `other` (the same tensor elsewhere).
    pub fn with<U>(&self, other: U) -> Fresh<U> {
        match self {
            Fresh::Rows(_) => Fresh::Rows(other),
            Fresh::Repeated(_) => Fresh::Repeated(other),
        }
    }
}

/// How a segment decides halting (`models::act::Halting`, without the draws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HaltRule {
    pub max_steps: usize,
    /// Training (the Q head may halt early, with exploration) rather than evaluation.
    pub train: bool,
    /// TRM's rule `q_halt > 0` (`no_ACT_continue`), else HRM's `q_halt > q_continue`.
    pub halt_only: bool,
    pub exploration_prob: f64,
}

/// The dims and dtype of an operand: what the checks below look at, so the kernels' launchers
/// share them without a host copy.
pub type Operand<'a> = (&'a [usize], DType);

/// Checks a reset's operands; returns (rows, row length, fresh row stride, fresh period) in
/// elements, as `act_select_rows` takes them. `repeated`: `fresh` is a vector repeated along
/// every row rather than a tensor of rows.
pub fn select_rows_layout(
    take_fresh: Operand<'_>,
    fresh: Operand<'_>,
    repeated: bool,
    kept: Operand<'_>,
) -> Result<(usize, usize, usize, usize)> {
    let rows = kept.0.first().copied().unwrap_or(0);
    let row_len = kept.0.iter().skip(1).product::<usize>();
    expect_flags("reset flags", take_fresh, rows)?;
    if kept.0.is_empty() {
        return Err(Error::shape("act_step", "a carry state must be [B, ...]"));
    }
    if fresh.1 != kept.1 {
        return Err(Error::DType {
            op: "act_step",
            expected: kept.1.name(),
            got: fresh.1,
        });
    }
    let numel = fresh.0.iter().product::<usize>();
    if !repeated && fresh.0 == kept.0 {
        Ok((rows, row_len, row_len, row_len.max(1)))
    } else if repeated && fresh.0.len() == 1 && numel > 0 && row_len % numel == 0 {
        Ok((rows, row_len, 0, numel))
    } else {
        Err(Error::shape(
            "act_step",
            format!("cannot reset rows of {:?} from {:?}", kept.0, fresh.0),
        ))
    }
}

/// Row `i` of the result is the fresh row where `take_fresh[i] != 0`, else row `i` of `kept`
/// (the official `torch.where(halted, new, old)` over the batch axis). Bytes are moved, not
/// converted.
pub fn select_rows(take_fresh: &Tensor, fresh: Fresh<&Tensor>, kept: &Tensor) -> Result<Tensor> {
    let (_, row_len, stride, period) = select_rows_layout(
        operand(take_fresh),
        operand(fresh.tensor()),
        fresh.is_repeated(),
        operand(kept),
    )?;
    let size = kept.dtype().size_in_bytes();
    let (f, k) = (fresh.tensor().as_bytes()?, kept.as_bytes()?);
    let mut out = Vec::with_capacity(k.len());
    for (i, &flag) in take_fresh.i32_data("act_step")?.iter().enumerate() {
        let kept_row = &k[i * row_len * size..(i + 1) * row_len * size];
        if flag == 0 {
            out.extend_from_slice(kept_row);
        } else if stride == 0 {
            (0..row_len / period).for_each(|_| out.extend_from_slice(&f[..period * size]));
        } else {
            out.extend_from_slice(&f[i * stride * size..(i * stride + row_len) * size]);
        }
    }
    Tensor::from_bytes(&out, kept.shape().clone(), kept.dtype())
}

/// The four i32 words `act_halt` reads the exploration draws' seed and segment from: seed low,
/// seed high, segment low, segment high.
pub fn draw_words(seed: u64, segment: u64) -> [i32; 4] {
    let word = |x: u64, shift: u32| (x >> shift) as u32 as i32;
    [
        word(seed, 0),
        word(seed, 32),
        word(segment, 0),
        word(segment, 32),
    ]
}

fn draw_of(words: &[i32]) -> (u64, u64) {
    let join = |lo: i32, hi: i32| lo as u32 as u64 | (hi as u32 as u64) << 32;
    (join(words[0], words[1]), join(words[2], words[3]))
}

/// Training's halting exploration for one slot: with probability `prob` a minimum of
/// `randint(2, max_steps + 1)` segments, else 0. Elements `2·slot` and `2·slot + 1` of the
/// Philox uniform stream (seed, segment).
pub fn min_halt_steps(seed: u64, segment: u64, slot: usize, prob: f64, max_steps: usize) -> u32 {
    let explore = (philox::uniform(seed, segment, 2 * slot as u64) as f64) < prob;
    if !explore {
        return 0;
    }
    let u = philox::uniform(seed, segment, 2 * slot as u64 + 1) as f64;
    let span = (max_steps - 1) as f64; // values 2..=max_steps
    2 + ((u * span) as u32).min(max_steps as u32 - 2)
}

fn operand(t: &Tensor) -> Operand<'_> {
    (t.dims(), t.dtype())
}

fn expect_flags(what: &str, t: Operand<'_>, b: usize) -> Result<()> {
    if t.1 != DType::I32 || t.0 != [b] {
        return Err(Error::shape(
            "act_step",
            format!("{what} must be i32 [{b}], got {:?} {:?}", t.1, t.0),
        ));
    }
    Ok(())
}

/// Checks the per-slot operands of `halt`: the Q logits `[B]` (one float dtype), the previous
/// flags i32 `[B]`, the draw i32 `[4]`; returns B.
pub fn check_halt(
    q_halt: Operand<'_>,
    q_continue: Operand<'_>,
    prev_halted: Operand<'_>,
    prev_steps: Operand<'_>,
    draw: Operand<'_>,
) -> Result<usize> {
    let b = q_halt.0.first().copied().unwrap_or(0);
    if q_halt.0.len() != 1 || q_continue.0 != q_halt.0 || q_continue.1 != q_halt.1 {
        return Err(Error::shape(
            "act_step",
            format!("Q logits {q_halt:?} and {q_continue:?} must both be [B], of one dtype"),
        ));
    }
    expect_flags("halted", prev_halted, b)?;
    expect_flags("steps", prev_steps, b)?;
    expect_flags("the exploration draw", draw, 4)?;
    Ok(b)
}

/// Steps and halting of one segment, from the flags of the previous one: `steps = 1` where the
/// slot was reset (halted before), else `+1`; `halted = steps ≥ max_steps`, or in training (with
/// `max_steps > 1`) the Q head's wish when the slot has run its explored minimum. `draw` holds
/// `draw_words(seed, segment)`. Returns (halted, steps).
pub fn halt(
    q_halt: &Tensor,
    q_continue: &Tensor,
    prev_halted: &Tensor,
    prev_steps: &Tensor,
    draw: &Tensor,
    rule: HaltRule,
) -> Result<(Tensor, Tensor)> {
    let b = check_halt(
        operand(q_halt),
        operand(q_continue),
        operand(prev_halted),
        operand(prev_steps),
        operand(draw),
    )?;
    let (seed, segment) = draw_of(draw.i32_data("act_step")?);
    let reset = prev_halted.i32_data("act_step")?;
    let steps: Vec<i32> = prev_steps
        .i32_data("act_step")?
        .iter()
        .zip(reset)
        .map(|(&s, &r)| if r != 0 { 1 } else { s + 1 })
        .collect();
    let max_steps = rule.max_steps;
    let mut halted: Vec<bool> = steps.iter().map(|&s| s as usize >= max_steps).collect();
    if rule.train && max_steps > 1 {
        let (q_halt, q_cont) = (q_halt.to_vec_f32()?, q_continue.to_vec_f32()?);
        for slot in 0..b {
            let wants_halt = if rule.halt_only {
                q_halt[slot] > 0.0
            } else {
                q_halt[slot] > q_cont[slot]
            };
            let min_halt = min_halt_steps(seed, segment, slot, rule.exploration_prob, max_steps);
            halted[slot] = (halted[slot] || wants_halt) && steps[slot] as u32 >= min_halt;
        }
    }
    let halted: Vec<i32> = halted.into_iter().map(i32::from).collect();
    Ok((
        Tensor::from_vec(halted, [b])?,
        Tensor::from_vec(steps, [b])?,
    ))
}

/// HRM's Q-continue target, f32 `[B]`: `σ(is_last ? next_halt : max(next_halt, next_continue))`
/// with `is_last = steps ≥ max_steps`.
pub fn q_continue_target(
    next_halt: &Tensor,
    next_continue: &Tensor,
    steps: &Tensor,
    max_steps: usize,
) -> Result<Tensor> {
    let b = next_halt.dims().first().copied().unwrap_or(0);
    if next_halt.rank() != 1 || next_continue.dims() != next_halt.dims() {
        return Err(Error::shape(
            "act_step",
            format!(
                "next Q logits {} and {} must both be [B]",
                next_halt.shape(),
                next_continue.shape()
            ),
        ));
    }
    expect_flags("steps", operand(steps), b)?;
    let (h, c) = (next_halt.to_vec_f32()?, next_continue.to_vec_f32()?);
    let steps = steps.i32_data("act_step")?;
    let target: Vec<f32> = (0..b)
        .map(|i| {
            let logit = if steps[i] as usize >= max_steps {
                h[i]
            } else {
                h[i].max(c[i])
            };
            1.0 / (1.0 + (-logit).exp())
        })
        .collect();
    Tensor::from_vec(target, [b])
}

/// What a segment scored, per sequence, and the metrics of its halted sequences.
#[derive(Clone, Debug)]
pub struct ActScores {
    /// Valid labels per sequence, i32 `[B]`.
    pub valid: Tensor,
    /// Correct valid tokens per sequence, i32 `[B]`.
    pub correct: Tensor,
    /// `valid == correct` as f32 `[B]` (1 or 0): the Q-halt target.
    pub seq_correct: Tensor,
    /// f64 `[SCORE_METRICS]`: the first five `ActMetricSlot`s.
    pub metrics: Tensor,
}

/// Checks `score`'s operands: i32 `preds` and `labels [B, S]`, `q_halt [B]`, i32 flags `[B]`;
/// returns (B, S).
pub fn check_score(
    preds: Operand<'_>,
    labels: Operand<'_>,
    q_halt: Operand<'_>,
    halted: Operand<'_>,
    steps: Operand<'_>,
) -> Result<(usize, usize)> {
    if labels.0.len() != 2 || preds.0 != labels.0 {
        return Err(Error::shape(
            "scores",
            format!("{:?} predictions for {:?} labels", preds.0, labels.0),
        ));
    }
    let (b, s) = (labels.0[0], labels.0[1]);
    for t in [preds, labels] {
        if t.1 != DType::I32 {
            return Err(Error::DType {
                op: "scores",
                expected: "i32",
                got: t.1,
            });
        }
    }
    if q_halt.0 != [b] {
        return Err(Error::shape(
            "scores",
            format!("Q-halt logits {:?} for a batch of {b}", q_halt.0),
        ));
    }
    expect_flags("halted", halted, b)?;
    expect_flags("steps", steps, b)?;
    Ok((b, s))
}

/// Per `seq_len`-long sequence of `preds` and `labels`: the labels that are not −100 (valid),
/// and the valid labels the predictions got (correct).
pub fn sequence_counts(preds: &[i32], labels: &[i32], seq_len: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut valid, mut correct) = (Vec::new(), Vec::new());
    for (prow, lrow) in preds
        .chunks(seq_len.max(1))
        .zip(labels.chunks(seq_len.max(1)))
    {
        valid.push(lrow.iter().filter(|&&y| y != IGNORE_LABEL).count());
        correct.push(
            prow.iter()
                .zip(lrow)
                .filter(|(&yhat, &y)| y != IGNORE_LABEL && yhat == y)
                .count(),
        );
    }
    (valid, correct)
}

/// Scores `preds [B, S]` (the logits' argmax) against `labels [B, S]` (−100 ignored), and adds
/// the metrics of the sequences that halted with at least one valid label, in slot order.
pub fn score(
    preds: &Tensor,
    labels: &Tensor,
    q_halt: &Tensor,
    halted: &Tensor,
    steps: &Tensor,
) -> Result<ActScores> {
    let (b, s) = check_score(
        operand(preds),
        operand(labels),
        operand(q_halt),
        operand(halted),
        operand(steps),
    )?;
    let (p, l) = (preds.i32_data("scores")?, labels.i32_data("scores")?);
    let (mut valid, mut correct) = sequence_counts(p, l, s);
    // An empty sequence axis has no chunks; its sequences score nothing.
    valid.resize(b, 0);
    correct.resize(b, 0);
    let seq_correct: Vec<bool> = valid.iter().zip(&correct).map(|(v, c)| v == c).collect();
    let (q_halt, halted, steps) = (
        q_halt.to_vec_f32()?,
        halted.i32_data("scores")?,
        steps.i32_data("scores")?,
    );
    let mut m = [0.0f64; SCORE_METRICS];
    for i in 0..b {
        if halted[i] == 0 || valid[i] == 0 {
            continue;
        }
        m[ActMetricSlot::Count as usize] += 1.0;
        m[ActMetricSlot::Accuracy as usize] += correct[i] as f64 / valid[i] as f64;
        m[ActMetricSlot::Exact as usize] += seq_correct[i] as u8 as f64;
        m[ActMetricSlot::QHaltAccuracy as usize] +=
            ((q_halt[i] >= 0.0) == seq_correct[i]) as u8 as f64;
        m[ActMetricSlot::Steps as usize] += steps[i] as f64;
    }
    let ints = |v: Vec<usize>| Tensor::from_vec(v.into_iter().map(|x| x as i32).collect(), [b]);
    Ok(ActScores {
        seq_correct: Tensor::from_vec(
            seq_correct
                .iter()
                .map(|&c| c as u8 as f32)
                .collect::<Vec<_>>(),
            [b],
        )?,
        valid: ints(valid)?,
        correct: ints(correct)?,
        metrics: Tensor::from_vec(m.to_vec(), [SCORE_METRICS])?,
    })
}

/// Checks `metrics`' operands: f64 `[SCORE_METRICS]` scores and one-element f32 losses.
pub fn check_metrics(scores: Operand<'_>, losses: &[Operand<'_>]) -> Result<()> {
    if scores.1 != DType::F64 || scores.0 != [SCORE_METRICS] {
        return Err(Error::shape(
            "act_loss",
            format!(
                "score metrics must be f64 [{SCORE_METRICS}], got {:?} {:?}",
                scores.1, scores.0
            ),
        ));
    }
    for loss in losses {
        if loss.1 != DType::F32 || loss.0.iter().product::<usize>() != 1 {
            return Err(Error::shape(
                "act_loss",
                format!("a loss must be one f32, got {:?} {:?}", loss.1, loss.0),
            ));
        }
    }
    Ok(())
}

/// The metrics buffer, f64 `[ACT_METRICS]`: the score metrics, then the LM, Q-halt and
/// Q-continue loss sums (0 when there is no Q-continue loss).
pub fn metrics(
    scores: &Tensor,
    lm_loss: &Tensor,
    q_halt_loss: &Tensor,
    q_continue_loss: Option<&Tensor>,
) -> Result<Tensor> {
    let mut losses = vec![operand(lm_loss), operand(q_halt_loss)];
    losses.extend(q_continue_loss.map(operand));
    check_metrics(operand(scores), &losses)?;
    let mut m = scores.to_vec_f64()?;
    m.push(lm_loss.item()?);
    m.push(q_halt_loss.item()?);
    m.push(
        q_continue_loss
            .map(Tensor::item)
            .transpose()?
            .unwrap_or(0.0),
    );
    Tensor::from_vec(m, [ACT_METRICS])
}

/// Length of evaluation's record for `max_steps` depths: (entirely right, tokens right) per
/// depth, then the last depth's Q-halt agreements and valid tokens.
pub fn eval_record_len(max_steps: usize) -> usize {
    2 * max_steps + 2
}

/// The operands of one evaluation depth: `T` is a host `&Tensor` here, a `&DeviceTensor` for the
/// kernels.
#[derive(Clone, Copy, Debug)]
pub struct EvalDepth<T> {
    /// i32 `[B]` valid and correct counts (`score`).
    pub valid: T,
    pub correct: T,
    /// The depth's Q logits `[B]`, one float dtype.
    pub q_halt: T,
    pub q_continue: T,
    /// i32 `[B]`: the step at which each slot's halting rule first fired (0 = not yet).
    pub prev_halt_step: T,
    /// i32 `[eval_record_len(max_steps)]`.
    pub prev_record: T,
}

/// Checks `eval_depth`'s operands (given as dims and dtypes); returns B.
pub fn check_eval_depth(
    x: EvalDepth<Operand<'_>>,
    depth: usize,
    max_steps: usize,
) -> Result<usize> {
    let b = x.valid.0.first().copied().unwrap_or(0);
    expect_flags("valid counts", x.valid, b)?;
    expect_flags("correct counts", x.correct, b)?;
    expect_flags("halt steps", x.prev_halt_step, b)?;
    expect_flags(
        "the evaluation record",
        x.prev_record,
        eval_record_len(max_steps),
    )?;
    let (q_halt, q_continue) = (x.q_halt, x.q_continue);
    if q_halt.0 != [b] || q_continue.0 != [b] || q_continue.1 != q_halt.1 {
        return Err(Error::shape(
            "evaluate",
            format!("Q logits {q_halt:?} and {q_continue:?} for a batch of {b}"),
        ));
    }
    if depth >= max_steps {
        return Err(Error::arg(
            "evaluate",
            format!("depth {depth} of {max_steps}"),
        ));
    }
    Ok(b)
}

impl<'a> EvalDepth<&'a Tensor> {
    fn operands(&self) -> EvalDepth<Operand<'a>> {
        EvalDepth {
            valid: operand(self.valid),
            correct: operand(self.correct),
            q_halt: operand(self.q_halt),
            q_continue: operand(self.q_continue),
            prev_halt_step: operand(self.prev_halt_step),
            prev_record: operand(self.prev_record),
        }
    }
}

/// Evaluation's record of depth `depth` (0-based) of `rule.max_steps`, from the depth's
/// per-sequence counts and Q logits: adds the sequences entirely right and the tokens right at
/// `2·depth`, `2·depth + 1`, and at the last depth the Q-halt agreements and the valid tokens;
/// a slot's halt step (0 = not yet) becomes `depth + 1` when its Q head first asks to halt, or
/// at the last depth. Returns (halt steps, record), both i32.
pub fn eval_depth(x: EvalDepth<&Tensor>, depth: usize, rule: HaltRule) -> Result<(Tensor, Tensor)> {
    let max_steps = rule.max_steps;
    let b = check_eval_depth(x.operands(), depth, max_steps)?;
    let (valid, correct) = (
        x.valid.i32_data("evaluate")?,
        x.correct.i32_data("evaluate")?,
    );
    let (q_halt, q_cont) = (x.q_halt.to_vec_f32()?, x.q_continue.to_vec_f32()?);
    let last = depth + 1 == max_steps;
    let mut halt_step = x.prev_halt_step.to_vec_i32()?;
    let mut record = x.prev_record.to_vec_i32()?;
    for i in 0..b {
        let fires = if rule.halt_only {
            q_halt[i] > 0.0
        } else {
            q_halt[i] > q_cont[i]
        };
        if halt_step[i] == 0 && (fires || last) {
            halt_step[i] = depth as i32 + 1;
        }
        let all_right = valid[i] == correct[i];
        record[2 * depth] += all_right as i32;
        record[2 * depth + 1] += correct[i];
        if last {
            record[2 * max_steps] += ((q_halt[i] >= 0.0) == all_right) as i32;
            record[2 * max_steps + 1] += valid[i];
        }
    }
    let n = record.len();
    Ok((
        Tensor::from_vec(halt_step, [b])?,
        Tensor::from_vec(record, [n])?,
    ))
}
