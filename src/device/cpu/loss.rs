//! Classification losses: cross-entropy under softmax or stablemax, reduced either to a
//! per-sequence mean over valid tokens (HRM/TRM `lm_loss`) or to a mask-weighted mean (Sotaku's
//! empty cells, LDT's chosen cells); and elementwise binary cross-entropy with logits (the Q-halt
//! head, LDT's keep/eliminate head and conflict head).
//!
//! Cross-entropy is computed and accumulated in f64 whatever the storage dtype, as the official
//! stablemax loss is (`models/losses.py`). Losses come back in the compute dtype of the logits
//! (f32 for f32 and bf16 storage, f64 for f64), so a bf16 model still reports an f32 loss;
//! logit gradients come back in the logits' own dtype.
//!
//! Both reductions are one computation: every row (token, cell) `r` gets a weight `w_r` and a
//! group, and the output of group `k` is `Σ_{r∈k} w_r · CE_r`. The per-sequence mean uses one group
//! per sequence and `w_r = valid_r / max(1, #valid)`; the masked mean uses one group and
//! `w_r = m_r / Σ m`. The logit gradient of row `r` is `dy[group(r)] · w_r · ∂CE_r/∂logits_r`.

use crate::device::cpu::{collect_with, for_each_row, PARALLEL_MIN_ELEMS};
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{with_real, with_real2};
use rayon::prelude::*;

/// The label that marks a token as not scored (the official `IGNORE_LABEL_ID`).
pub const IGNORE_LABEL: i32 = -100;

/// How logits become probabilities: `p_j = s(x_j) / Σ_i s(x_i)` for a positive map `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalizer {
    /// `s(x) = exp(x)` (evaluated as `exp(x − max)`).
    Softmax,
    /// `s(x) = x + 1` for `x ≥ 0`, else `1 / (1 − x + 1e-30)` (HRM/TRM `log_stablemax`).
    Stablemax,
}

/// The `1e-30` the official stablemax adds to its denominator.
const STABLEMAX_EPS: f64 = 1e-30;

impl Normalizer {
    /// `s(x)` for every element of `row`. Softmax is evaluated as `exp(x − max)` so it cannot
    /// overflow; the shift cancels in `p`.
    fn weights(self, row: &[f64]) -> Vec<f64> {
        match self {
            Normalizer::Softmax => {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                row.iter().map(|&x| (x - max).exp()).collect()
            }
            Normalizer::Stablemax => row
                .iter()
                .map(|&x| {
                    if x >= 0.0 {
                        x + 1.0
                    } else {
                        1.0 / (1.0 - x + STABLEMAX_EPS)
                    }
                })
                .collect(),
        }
    }

    /// `s'(x) / s(x)` given `x` and `s = s(x)`: 1 for softmax; for stablemax `1/(x+1)` when
    /// `x ≥ 0` and `s` when `x < 0` (since `d/dx 1/(1−x) = s²`).
    fn log_derivative(self, x: f64, s: f64) -> f64 {
        match self {
            Normalizer::Softmax => 1.0,
            Normalizer::Stablemax if x >= 0.0 => 1.0 / s,
            Normalizer::Stablemax => s,
        }
    }

    /// `−log p_label` of one row.
    fn cross_entropy(self, row: &[f64], label: usize) -> f64 {
        let s = self.weights(row);
        let total: f64 = s.iter().sum();
        total.ln() - s[label].ln()
    }

    /// Writes `scale · ∂(−log p_label)/∂row` into `out`:
    /// `∂/∂x_j = s'(x_j)/Σs − [j = label] · s'(x_label)/s(x_label)`.
    fn cross_entropy_grad<T: Real>(self, row: &[f64], label: usize, scale: f64, out: &mut [T]) {
        let s = self.weights(row);
        let total: f64 = s.iter().sum();
        for (j, o) in out.iter_mut().enumerate() {
            let ds = s[j] * self.log_derivative(row[j], s[j]);
            let mut g = ds / total;
            if j == label {
                g -= self.log_derivative(row[j], s[j]);
            }
            *o = T::of(scale * g);
        }
    }
}

/// Per-row weights and the group each row's weighted CE is summed into.
struct RowWeights {
    weights: Vec<f64>,
    rows_per_group: usize,
}

/// Errors naming the first label that is neither `IGNORE_LABEL` nor a class in `0..classes`
/// (when `allow_ignore`), or not a class (otherwise), among the rows `checked` selects. The tape's
/// kernel dispatch (`ops::loss`) checks host labels with it too, since the kernels do not.
pub(crate) fn check_labels(
    op: &'static str,
    labels: &[i32],
    classes: usize,
    allow_ignore: bool,
    checked: impl Fn(usize) -> bool,
) -> Result<()> {
    let bad = labels.iter().enumerate().find(|&(r, &l)| {
        checked(r) && !(allow_ignore && l == IGNORE_LABEL) && !(l >= 0 && (l as usize) < classes)
    });
    match bad {
        Some((r, &l)) => Err(Error::arg(
            op,
            format!(
                "label {l} at flat position {r} is not a class in 0..{classes}{}",
                if allow_ignore {
                    " nor the ignore label -100"
                } else {
                    ""
                }
            ),
        )),
        None => Ok(()),
    }
}

/// Splits `logits [..., C]` against `labels [...]` into (rows, classes), checking shapes.
fn rows_and_classes(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    labels.i32_data(op)?;
    logits.expect_float(op)?;
    logits_rows_classes(op, logits.shape(), labels.shape())
}

/// The shape half of `rows_and_classes`: `logits` must be `labels` plus a non-empty class axis.
/// Returns (rows, classes). The CUDA launchers in `kernels::loss` validate with this too.
pub(crate) fn logits_rows_classes(
    op: &'static str,
    logits: &Shape,
    labels: &Shape,
) -> Result<(usize, usize)> {
    let dims = logits.dims();
    if dims.is_empty() || dims[..dims.len() - 1] != *labels.dims() {
        return Err(Error::shape(
            op,
            format!("logits {logits} must be labels {labels} plus a class axis"),
        ));
    }
    let classes = dims[dims.len() - 1];
    if classes == 0 {
        return Err(Error::shape(op, "logits have no classes"));
    }
    Ok((labels.numel(), classes))
}

/// `out[k] = Σ_{r in group k} w_r · CE_r`, rows with zero weight skipped (their labels unread).
/// Groups are summed in parallel when the logits are large.
fn weighted_ce_fwd(
    op: &'static str,
    logits: &Tensor,
    labels: &[i32],
    norm: Normalizer,
    rows: &RowWeights,
    out_shape: Shape,
) -> Result<Tensor> {
    let classes = logits.dims().last().copied().unwrap_or(0);
    let per = rows.rows_per_group;
    with_real!(logits, op, |x| {
        let group_loss = |k: usize| -> T {
            let sum: f64 = (k * per..(k + 1) * per)
                .filter(|&r| rows.weights[r] != 0.0)
                .map(|r| {
                    let row: Vec<f64> = x[r * classes..(r + 1) * classes]
                        .iter()
                        .map(|v| v.f64())
                        .collect();
                    rows.weights[r] * norm.cross_entropy(&row, labels[r] as usize)
                })
                .sum();
            T::of(sum)
        };
        let groups = 0..out_shape.numel();
        let out: Vec<T> = if x.len() >= PARALLEL_MIN_ELEMS {
            groups.into_par_iter().map(group_loss).collect()
        } else {
            groups.map(group_loss).collect()
        };
        Ok(Tensor::from_real(out, out_shape.clone(), T::DTYPE))
    })
}

/// Logit gradient of `weighted_ce_fwd` for the output gradient `dy` (one value per group).
fn weighted_ce_bwd(
    op: &'static str,
    dy: &Tensor,
    logits: &Tensor,
    labels: &[i32],
    norm: Normalizer,
    rows: &RowWeights,
) -> Result<Tensor> {
    let classes = logits.dims().last().copied().unwrap_or(0);
    let dy = dy.to_vec_f64()?;
    let per = rows.rows_per_group.max(1);
    with_real!(logits, op, |x| {
        let mut grad = vec![T::default(); x.len()];
        for_each_row(&mut grad, classes, |r, out| {
            let w = rows.weights[r];
            if w == 0.0 {
                return;
            }
            let row: Vec<f64> = x[r * classes..(r + 1) * classes]
                .iter()
                .map(|v| v.f64())
                .collect();
            norm.cross_entropy_grad(&row, labels[r] as usize, dy[r / per] * w, out);
        });
        Ok(Tensor::from_real(
            grad,
            logits.shape().clone(),
            logits.dtype(),
        ))
    })
}

/// Weights of the per-sequence mean: `1 / max(1, #valid in the sequence)` for valid tokens,
/// 0 for ignored ones. `labels` is `[B, S]` flattened; `seq_len` is `S`.
fn sequence_mean_weights(labels: &[i32], seq_len: usize) -> RowWeights {
    let mut weights = vec![0.0; labels.len()];
    if seq_len > 0 {
        for (seq, w) in labels.chunks(seq_len).zip(weights.chunks_mut(seq_len)) {
            let valid = seq.iter().filter(|&&l| l != IGNORE_LABEL).count();
            let share = 1.0 / valid.max(1) as f64;
            for (wi, &l) in w.iter_mut().zip(seq) {
                *wi = if l == IGNORE_LABEL { 0.0 } else { share };
            }
        }
    }
    RowWeights {
        weights,
        rows_per_group: seq_len,
    }
}

/// Checks `logits [B, S, V]` against `labels [B, S]` and returns the per-sequence-mean weights.
fn sequence_mean_setup(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<RowWeights> {
    logits.shape().expect_rank(op, 3)?;
    let (_, classes) = rows_and_classes(op, logits, labels)?;
    let ids = labels.i32_data(op)?;
    check_labels(op, ids, classes, true, |_| true)?;
    Ok(sequence_mean_weights(ids, labels.dims()[1]))
}

fn sequence_mean_op(norm: Normalizer) -> &'static str {
    match norm {
        Normalizer::Softmax => "softmax_cross_entropy",
        Normalizer::Stablemax => "stablemax_cross_entropy",
    }
}

/// Per-sequence mean cross-entropy: `out[b] = Σ_s CE(logits[b, s], labels[b, s]) / max(1, #valid)`
/// over tokens whose label is not `IGNORE_LABEL`, as a `[B]` tensor of the logits' compute dtype.
/// Its sum over the batch is the official `lm_loss`. Labels outside `0..V` (other than −100) are
/// an error naming the label.
pub fn sequence_mean_ce_fwd(logits: &Tensor, labels: &Tensor, norm: Normalizer) -> Result<Tensor> {
    let op = sequence_mean_op(norm);
    let rows = sequence_mean_setup(op, logits, labels)?;
    let ids = labels.i32_data(op)?;
    weighted_ce_fwd(op, logits, ids, norm, &rows, Shape::new([logits.dims()[0]]))
}

/// Logit gradient of `sequence_mean_ce_fwd` for `dy [B]`: ignored tokens get zero.
pub fn sequence_mean_ce_bwd(
    dy: &Tensor,
    logits: &Tensor,
    labels: &Tensor,
    norm: Normalizer,
) -> Result<Tensor> {
    let op = sequence_mean_op(norm);
    let rows = sequence_mean_setup(op, logits, labels)?;
    dy.shape().expect_eq(op, &Shape::new([logits.dims()[0]]))?;
    weighted_ce_bwd(op, dy, logits, labels.i32_data(op)?, norm, &rows)
}

/// Checks `logits [N..., C]`, `targets [N...]` and `mask [N...]` and returns the weights
/// `m / Σ m` (all zero when `Σ m = 0`). The mask must be finite and non-negative; targets are
/// only read (and must be classes) where the mask is non-zero.
fn masked_setup(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<RowWeights> {
    const OP: &str = "masked_cross_entropy";
    let (n_rows, classes) = rows_and_classes(OP, logits, targets)?;
    mask.shape().expect_eq(OP, targets.shape())?;
    let m = mask.to_vec_f64()?;
    if let Some(bad) = m.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::arg(
            OP,
            format!("mask values must be finite and non-negative, got {bad}"),
        ));
    }
    check_labels(OP, targets.i32_data(OP)?, classes, false, |r| m[r] != 0.0)?;
    let total: f64 = m.iter().sum();
    let weights = if total > 0.0 {
        m.iter().map(|v| v / total).collect()
    } else {
        vec![0.0; m.len()]
    };
    Ok(RowWeights {
        weights,
        rows_per_group: n_rows,
    })
}

/// Mask-weighted mean softmax cross-entropy `Σ m·CE / Σ m` as a scalar of the logits' compute
/// dtype. When `Σ m = 0` the loss is 0 and so is its gradient: nothing was scored.
pub fn masked_ce_fwd(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let rows = masked_setup(logits, targets, mask)?;
    let ids = targets.i32_data("masked_cross_entropy")?;
    weighted_ce_fwd(
        "masked_cross_entropy",
        logits,
        ids,
        Normalizer::Softmax,
        &rows,
        Shape::scalar(),
    )
}

/// Logit gradient of `masked_ce_fwd` for the scalar `dy`.
pub fn masked_ce_bwd(
    dy: &Tensor,
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let rows = masked_setup(logits, targets, mask)?;
    let ids = targets.i32_data("masked_cross_entropy")?;
    let dy = dy.reshape(Shape::scalar())?;
    weighted_ce_bwd(
        "masked_cross_entropy",
        &dy,
        logits,
        ids,
        Normalizer::Softmax,
        &rows,
    )
}

/// Weights of the two terms of binary cross-entropy:
/// `−(positive · t · log σ(x) + negative · (1 − t) · log σ(−x))`. Plain BCE is `(1, 1)`; LDT's
/// keep/eliminate loss is `(4.0, 0.5)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BceWeights {
    pub positive: f64,
    pub negative: f64,
}

impl BceWeights {
    pub const PLAIN: BceWeights = BceWeights {
        positive: 1.0,
        negative: 1.0,
    };
}

/// `softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|})`, stable for any `x`.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The logistic function, stable for any `x`.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Elementwise weighted binary cross-entropy with logits,
/// `positive · t · softplus(−x) + negative · (1 − t) · softplus(x)` (since `−log σ(x) =
/// softplus(−x)`), in the inputs' shared dtype. With plain weights this is PyTorch's
/// `binary_cross_entropy_with_logits(reduction="none")`; targets may be any real (soft labels).
pub fn bce_with_logits_fwd(logits: &Tensor, targets: &Tensor, w: BceWeights) -> Result<Tensor> {
    const OP: &str = "bce_with_logits";
    logits.shape().expect_eq(OP, targets.shape())?;
    with_real2!(logits, targets, OP, |x, t| {
        let out: Vec<T> = collect_with(x.len(), |i| {
            let (x, t) = (x[i].f64(), t[i].f64());
            T::of(w.positive * t * softplus(-x) + w.negative * (1.0 - t) * softplus(x))
        });
        Ok(Tensor::from_real(
            out,
            logits.shape().clone(),
            logits.dtype(),
        ))
    })
}

/// Gradients of `bce_with_logits_fwd` for the output gradient `dy`:
/// `∂/∂x = −positive · t · σ(−x) + negative · (1 − t) · σ(x)` and
/// `∂/∂t = positive · softplus(−x) − negative · softplus(x)`. Returns (d logits, d targets).
pub fn bce_with_logits_bwd(
    dy: &Tensor,
    logits: &Tensor,
    targets: &Tensor,
    w: BceWeights,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "bce_with_logits";
    logits.shape().expect_eq(OP, targets.shape())?;
    dy.shape().expect_eq(OP, logits.shape())?;
    let g = dy.to_vec_f64()?;
    with_real2!(logits, targets, OP, |x, t| {
        let dx: Vec<T> = collect_with(x.len(), |i| {
            let (x, t) = (x[i].f64(), t[i].f64());
            T::of(g[i] * (-w.positive * t * sigmoid(-x) + w.negative * (1.0 - t) * sigmoid(x)))
        });
        let dt: Vec<T> = collect_with(x.len(), |i| {
            let x = x[i].f64();
            T::of(g[i] * (w.positive * softplus(-x) - w.negative * softplus(x)))
        });
        let shape = logits.shape().clone();
        Ok((
            Tensor::from_real(dx, shape.clone(), logits.dtype()),
            Tensor::from_real(dt, shape, targets.dtype()),
        ))
    })
}
