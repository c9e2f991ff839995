//! Launchers for `kernels/loss.cu`, matching `device::cpu::loss`:
//! - `sequence_ce_fwd/bwd`: softmax or stablemax cross-entropy as per-sequence means over the
//!   tokens whose label is not −100 (HRM/TRM `lm_loss` is the sum of the `[B]` output);
//! - `masked_ce_fwd/bwd`: the mask-weighted mean softmax cross-entropy, a scalar;
//! - `bce_with_logits_fwd/bwd`: elementwise weighted binary cross-entropy with logits.
//!
//! Cross-entropy is computed in f64 on the device, as the reference and the official stablemax
//! loss are. Losses come back in f32 (the compute dtype of f32 and bf16 logits), logit gradients
//! in the logits' dtype. Shapes and dtypes are checked like the reference; label values are not
//! (that would copy them back to the host inside a training step): an invalid label, or a
//! negative mask value, makes the loss and the gradient rows it touches NaN instead.

use super::elementwise::{
    dtype_suffix, expect_out, expect_same_dtype, grid_for_blocks, grid_for_elements, i64_arg,
};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;

use crate::device::cpu::loss::logits_rows_classes;
pub use crate::device::cpu::loss::{BceWeights, Normalizer, IGNORE_LABEL};

/// Threads per block of every kernel in loss.cu (its `__launch_bounds__`): 8 warps, each owning
/// one row of logits at a time.
const THREADS: u32 = 256;
const WARPS_PER_BLOCK: usize = THREADS as usize / 32;

fn expect_labels(op: &'static str, labels: &DeviceTensor) -> Result<()> {
    if labels.dtype() != DType::I32 {
        return Err(Error::DType {
            op,
            expected: "i32",
            got: labels.dtype(),
        });
    }
    Ok(())
}

fn i32_arg(op: &'static str, what: &str, n: usize) -> Result<KernelArg<'static>> {
    i32::try_from(n)
        .map(KernelArg::I32)
        .map_err(|_| Error::arg(op, format!("{what} {n} exceeds the kernels' i32 range")))
}

/// Checks `logits [..., C]` against `labels [...]` (i32); returns (rows, classes, suffix).
fn rows_and_classes(
    op: &'static str,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
) -> Result<(usize, usize, &'static str)> {
    expect_labels(op, labels)?;
    let suffix = dtype_suffix(op, logits)?;
    let (rows, classes) = logits_rows_classes(op, logits.shape(), labels.shape())?;
    Ok((rows, classes, suffix))
}

fn sequence_op(norm: Normalizer) -> (&'static str, &'static str) {
    match norm {
        Normalizer::Softmax => ("softmax_cross_entropy", "softmax_ce"),
        Normalizer::Stablemax => ("stablemax_cross_entropy", "stablemax_ce"),
    }
}

/// Checks `logits [B, S, V]` against `labels [B, S]`; returns (B, S, V, suffix).
fn sequence_dims(
    op: &'static str,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
) -> Result<(usize, usize, usize, &'static str)> {
    logits.shape().expect_rank(op, 3)?;
    let (_, classes, suffix) = rows_and_classes(op, logits, labels)?;
    Ok((logits.dims()[0], logits.dims()[1], classes, suffix))
}

/// Per-sequence mean cross-entropy into `loss` (f32 `[B]`): `loss[b] = Σ_s CE(logits[b, s],
/// labels[b, s]) / max(1, #valid)` over tokens whose label is not −100. `logits [B, S, V]` f32 or
/// bf16, `labels [B, S]` i32. One block per sequence.
pub fn sequence_ce_fwd_into(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    norm: Normalizer,
    loss: &mut DeviceTensor,
) -> Result<()> {
    let (op, kernel) = sequence_op(norm);
    let (batch, seq_len, classes, suffix) = sequence_dims(op, logits, labels)?;
    expect_out(op, loss, &Shape::new([batch]), DType::F32)?;
    if batch == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("{kernel}_fwd_{suffix}"),
        LaunchConfig::linear(batch as u32, THREADS),
        &mut [
            KernelArg::In(&logits.buf),
            KernelArg::In(&labels.buf),
            KernelArg::Out(&mut loss.buf),
            i32_arg(op, "sequence length", seq_len)?,
            i32_arg(op, "class count", classes)?,
        ],
    )
}

/// Per-sequence mean cross-entropy, f32 `[B]` (see `sequence_ce_fwd_into`).
pub fn sequence_ce_fwd(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    norm: Normalizer,
) -> Result<DeviceTensor> {
    let batch = logits.dims().first().copied().unwrap_or(0);
    let mut loss = DeviceTensor::uninit(dev, [batch], DType::F32)?;
    sequence_ce_fwd_into(dev, logits, labels, norm, &mut loss)?;
    Ok(loss)
}

/// Logit gradient of `sequence_ce_fwd` for `dy` (f32 `[B]`) into `dlogits` (the logits' shape
/// and dtype); rows of ignored tokens are zero.
pub fn sequence_ce_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    norm: Normalizer,
    dlogits: &mut DeviceTensor,
) -> Result<()> {
    let (op, kernel) = sequence_op(norm);
    let (batch, seq_len, classes, suffix) = sequence_dims(op, logits, labels)?;
    expect_out(op, dy, &Shape::new([batch]), DType::F32)?;
    expect_out(op, dlogits, logits.shape(), logits.dtype())?;
    if batch == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("{kernel}_bwd_{suffix}"),
        LaunchConfig::linear(batch as u32, THREADS),
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::In(&logits.buf),
            KernelArg::In(&labels.buf),
            KernelArg::Out(&mut dlogits.buf),
            i32_arg(op, "sequence length", seq_len)?,
            i32_arg(op, "class count", classes)?,
        ],
    )
}

/// Logit gradient of `sequence_ce_fwd` (see `sequence_ce_bwd_into`).
pub fn sequence_ce_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    labels: &DeviceTensor,
    norm: Normalizer,
) -> Result<DeviceTensor> {
    let mut dlogits = DeviceTensor::uninit(dev, logits.shape().clone(), logits.dtype())?;
    sequence_ce_bwd_into(dev, dy, logits, labels, norm, &mut dlogits)?;
    Ok(dlogits)
}

/// Checks `logits [N..., C]`, `targets [N...]` (i32) and `mask [N...]` (the logits' dtype);
/// returns (rows, classes, suffix).
fn masked_dims(
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    mask: &DeviceTensor,
) -> Result<(usize, usize, &'static str)> {
    const OP: &str = "masked_cross_entropy";
    let (rows, classes, suffix) = rows_and_classes(OP, logits, targets)?;
    mask.shape().expect_eq(OP, targets.shape())?;
    expect_same_dtype(OP, mask, logits.dtype())?;
    i32_arg(OP, "class count", classes)?;
    Ok((rows, classes, suffix))
}

/// Mask-weighted mean softmax cross-entropy `Σ m·CE / Σ m` into `loss` (f32 scalar; 0 when
/// `Σ m = 0`). `mask` has the logits' dtype; targets are read only where the mask is non-zero.
/// One block reduces all rows, in a fixed order.
pub fn masked_ce_fwd_into(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    mask: &DeviceTensor,
    loss: &mut DeviceTensor,
) -> Result<()> {
    let (rows, classes, suffix) = masked_dims(logits, targets, mask)?;
    expect_out("masked_cross_entropy", loss, &Shape::scalar(), DType::F32)?;
    dev.launch(
        &format!("masked_ce_fwd_{suffix}"),
        LaunchConfig::linear(1, THREADS),
        &mut [
            KernelArg::In(&logits.buf),
            KernelArg::In(&targets.buf),
            KernelArg::In(&mask.buf),
            KernelArg::Out(&mut loss.buf),
            i64_arg(rows),
            KernelArg::I32(classes as i32),
        ],
    )
}

/// Mask-weighted mean softmax cross-entropy, an f32 scalar (see `masked_ce_fwd_into`).
pub fn masked_ce_fwd(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    mask: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut loss = DeviceTensor::uninit(dev, Shape::scalar(), DType::F32)?;
    masked_ce_fwd_into(dev, logits, targets, mask, &mut loss)?;
    Ok(loss)
}

/// Logit gradient of `masked_ce_fwd` for the f32 scalar `dy` into `dlogits` (the logits' shape
/// and dtype): `dy · m_r / Σ m · ∂CE_r`, zero where the mask is zero. Two launches: one block
/// sums the mask into an 8-byte f64 scale, then a warp per row writes the gradient.
pub fn masked_ce_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    mask: &DeviceTensor,
    dlogits: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "masked_cross_entropy";
    let (rows, classes, suffix) = masked_dims(logits, targets, mask)?;
    if dy.numel() != 1 || dy.dtype() != DType::F32 {
        return Err(Error::shape(
            OP,
            format!(
                "the output gradient must be one f32, got {} {}",
                dy.dtype(),
                dy.shape()
            ),
        ));
    }
    expect_out(OP, dlogits, logits.shape(), logits.dtype())?;
    if rows == 0 {
        return Ok(());
    }
    let mut scale = DeviceTensor::uninit(dev, [1], DType::F64)?;
    dev.launch(
        &format!("masked_ce_bwd_scale_{suffix}"),
        LaunchConfig::linear(1, THREADS),
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::In(&mask.buf),
            KernelArg::Out(&mut scale.buf),
            i64_arg(rows),
        ],
    )?;
    dev.launch(
        &format!("masked_ce_bwd_{suffix}"),
        grid_for_blocks(rows.div_ceil(WARPS_PER_BLOCK)),
        &mut [
            KernelArg::In(&scale.buf),
            KernelArg::In(&logits.buf),
            KernelArg::In(&targets.buf),
            KernelArg::In(&mask.buf),
            KernelArg::Out(&mut dlogits.buf),
            i64_arg(rows),
            KernelArg::I32(classes as i32),
        ],
    )
}

/// Logit gradient of `masked_ce_fwd` (see `masked_ce_bwd_into`).
pub fn masked_ce_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    mask: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut dlogits = DeviceTensor::uninit(dev, logits.shape().clone(), logits.dtype())?;
    masked_ce_bwd_into(dev, dy, logits, targets, mask, &mut dlogits)?;
    Ok(dlogits)
}

/// Checks that logits and targets are f32/bf16 tensors of one shape and dtype; returns the
/// suffix.
fn bce_suffix(logits: &DeviceTensor, targets: &DeviceTensor) -> Result<&'static str> {
    const OP: &str = "bce_with_logits";
    let suffix = dtype_suffix(OP, logits)?;
    targets.shape().expect_eq(OP, logits.shape())?;
    expect_same_dtype(OP, targets, logits.dtype())?;
    Ok(suffix)
}

fn bce_weight_args(w: BceWeights) -> [KernelArg<'static>; 2] {
    [
        KernelArg::F32(w.positive as f32),
        KernelArg::F32(w.negative as f32),
    ]
}

/// Elementwise `positive·t·softplus(−x) + negative·(1 − t)·softplus(x)` into `out` (the logits'
/// shape and dtype); targets may be soft labels.
pub fn bce_with_logits_fwd_into(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    w: BceWeights,
    out: &mut DeviceTensor,
) -> Result<()> {
    let suffix = bce_suffix(logits, targets)?;
    expect_out("bce_with_logits", out, logits.shape(), logits.dtype())?;
    let n = logits.numel();
    if n == 0 {
        return Ok(());
    }
    let [positive, negative] = bce_weight_args(w);
    dev.launch(
        &format!("bce_with_logits_fwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&logits.buf),
            KernelArg::In(&targets.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(n),
            positive,
            negative,
        ],
    )
}

/// Elementwise weighted binary cross-entropy with logits (see `bce_with_logits_fwd_into`).
pub fn bce_with_logits_fwd(
    dev: &dyn KernelBackend,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    w: BceWeights,
) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, logits.shape().clone(), logits.dtype())?;
    bce_with_logits_fwd_into(dev, logits, targets, w, &mut out)?;
    Ok(out)
}

/// Gradients of `bce_with_logits_fwd` for `dy` (the logits' shape and dtype) into `dlogits` and
/// `dtargets` (likewise).
pub fn bce_with_logits_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    w: BceWeights,
    dlogits: &mut DeviceTensor,
    dtargets: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "bce_with_logits";
    let suffix = bce_suffix(logits, targets)?;
    expect_out(OP, dy, logits.shape(), logits.dtype())?;
    expect_out(OP, dlogits, logits.shape(), logits.dtype())?;
    expect_out(OP, dtargets, logits.shape(), logits.dtype())?;
    let n = logits.numel();
    if n == 0 {
        return Ok(());
    }
    let [positive, negative] = bce_weight_args(w);
    dev.launch(
        &format!("bce_with_logits_bwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::In(&logits.buf),
            KernelArg::In(&targets.buf),
            KernelArg::Out(&mut dlogits.buf),
            KernelArg::Out(&mut dtargets.buf),
            i64_arg(n),
            positive,
            negative,
        ],
    )
}

/// Gradients of `bce_with_logits_fwd`: (d logits, d targets) (see `bce_with_logits_bwd_into`).
pub fn bce_with_logits_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    logits: &DeviceTensor,
    targets: &DeviceTensor,
    w: BceWeights,
) -> Result<(DeviceTensor, DeviceTensor)> {
    let shape = logits.shape().clone();
    let mut dlogits = DeviceTensor::uninit(dev, shape.clone(), logits.dtype())?;
    let mut dtargets = DeviceTensor::uninit(dev, shape, logits.dtype())?;
    bce_with_logits_bwd_into(dev, dy, logits, targets, w, &mut dlogits, &mut dtargets)?;
    Ok((dlogits, dtargets))
}
