//! Launchers for `kernels/optim.cu`: one optimizer step on device tensors, in place. They match
//! the host updates of `device::cpu::optim` element for element: the per-step scalars are
//! computed on the host exactly as the reference computes them (`AdamCoefficients::
//! kernel_scalars`, `sign_sgd_scalars`) and read by the kernels from device memory, so a captured
//! CUDA graph replays with each step's values rather than the ones frozen at capture.
//!
//! Parameters, moments, EMA shadows and the sparse table are f32 (the master weights); gradients
//! may be f32 or bf16. The caller owns the state and the step count.

use super::elementwise::{dtype_suffix, expect_out, grid_for_elements, i64_arg};
use super::embedding::RowSums;
use crate::device::{DeviceTensor, KernelArg, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// How many f32 scalars an Adam step reads: step size, `1 − lr·wd`, `1 − β1`, `1 − β2`,
/// `√(1 − β2^t)`, ε (AdamW only).
pub const ADAM_SCALARS: usize = 6;
/// How many f32 scalars a sign-SGD step reads: `1 − lr·wd`, `−lr`.
pub const SIGN_SGD_SCALARS: usize = 2;

/// Which Adam step: AdamATan2 (`atan2(m, √v̂)`) or AdamW (`m / (√v̂ + ε)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdamKind {
    Atan2,
    W,
}

/// Errors unless `scalars` is an f32 vector of `n` values.
fn expect_scalars(op: &'static str, scalars: &DeviceTensor, n: usize) -> Result<()> {
    if scalars.dtype() != DType::F32 || scalars.dims() != [n] {
        return Err(Error::shape(
            op,
            format!(
                "the step's scalars must be f32 [{n}], got {} {}",
                scalars.dtype(),
                scalars.shape()
            ),
        ));
    }
    Ok(())
}

/// The tensors one Adam step updates: a parameter, its gradient and its two moments.
pub struct AdamTensors<'a> {
    /// f32 parameter, updated in place.
    pub param: &'a mut DeviceTensor,
    /// f32 or bf16 gradient of the parameter's shape.
    pub grad: &'a DeviceTensor,
    /// f32 first moment `m`, updated in place (zeros before step 1).
    pub exp_avg: &'a mut DeviceTensor,
    /// f32 second moment `v`, updated in place (zeros before step 1).
    pub exp_avg_sq: &'a mut DeviceTensor,
    /// bf16 of the parameter's shape, overwritten with the new parameter rounded to bf16 (the
    /// bf16 forward's mirror, refreshed in the same pass); `None` writes nothing more.
    pub mirror: Option<&'a mut DeviceTensor>,
}

/// One Adam step of `kind` over `t`, with the step's `ADAM_SCALARS` f32 `scalars` in device
/// memory. Errors on mismatched shapes or dtypes.
pub fn adam_step(
    dev: &dyn KernelBackend,
    kind: AdamKind,
    scalars: &DeviceTensor,
    t: AdamTensors<'_>,
) -> Result<()> {
    let (op, kernel) = match kind {
        AdamKind::Atan2 => ("AdamAtan2", "adam_atan2_step"),
        AdamKind::W => ("AdamW", "adamw_step"),
    };
    expect_scalars(op, scalars, ADAM_SCALARS)?;
    let shape = t.param.shape().clone();
    expect_out(op, t.param, &shape, DType::F32)?;
    let suffix = dtype_suffix(op, t.grad)?;
    t.grad.shape().expect_eq(op, &shape)?;
    expect_out(op, t.exp_avg, &shape, DType::F32)?;
    expect_out(op, t.exp_avg_sq, &shape, DType::F32)?;
    if let Some(mirror) = &t.mirror {
        expect_out(op, mirror, &shape, DType::BF16)?;
    }
    let n = t.param.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("{kernel}_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::Out(&mut t.param.buf),
            KernelArg::In(&t.grad.buf),
            KernelArg::Out(&mut t.exp_avg.buf),
            KernelArg::Out(&mut t.exp_avg_sq.buf),
            i64_arg(n),
            KernelArg::In(&scalars.buf),
            // A null device pointer: no mirror to write.
            t.mirror
                .map_or(KernelArg::U64(0), |m| KernelArg::Out(&mut m.buf)),
        ],
    )
}

/// `shadow ← (1−μ)·param + μ·shadow` (`optim::Ema::update`) for one f32 parameter. Errors
/// unless `decay` (μ) is in [0, 1) and the tensors are f32 of one shape.
pub fn ema_update(
    dev: &dyn KernelBackend,
    decay: f64,
    shadow: &mut DeviceTensor,
    param: &DeviceTensor,
) -> Result<()> {
    const OP: &str = "Ema::update";
    if !(0.0..1.0).contains(&decay) {
        return Err(Error::arg(
            OP,
            format!("decay must be in [0, 1), got {decay}"),
        ));
    }
    expect_out(OP, param, shadow.shape(), DType::F32)?;
    expect_out(OP, shadow, param.shape(), DType::F32)?;
    let n = param.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        "ema_update_f32",
        grid_for_elements(n),
        &mut [
            KernelArg::Out(&mut shadow.buf),
            KernelArg::In(&param.buf),
            i64_arg(n),
            KernelArg::F32((1.0 - decay) as f32),
            KernelArg::F32(decay as f32),
        ],
    )
}

/// One sign-SGD step (`device::cpu::optim::sign_sgd_step`) of the f32 table `[num_ids, D]` on
/// the rows that `sums` (from `kernels::embedding::sparse_embedding_bwd`) touched:
/// `p ← p(1 − lr·wd) − lr·sign(Σg)`, with `SIGN_SGD_SCALARS` f32 `scalars` `(1 − lr·wd, −lr)` in
/// device memory. Untouched rows stay exactly as they were; ids outside the table are skipped
/// (see `kernels::embedding` on why ids are not checked here).
pub fn sign_sgd_step(
    dev: &dyn KernelBackend,
    scalars: &DeviceTensor,
    table: &mut DeviceTensor,
    sums: &RowSums,
) -> Result<()> {
    const OP: &str = "SignSgd";
    expect_scalars(OP, scalars, SIGN_SGD_SCALARS)?;
    let (num_ids, dim) = match *table.dims() {
        [v, d] => (v, d),
        _ => {
            return Err(Error::shape(
                OP,
                format!("the table must be [num_ids, dim], got {}", table.shape()),
            ))
        }
    };
    expect_out(OP, table, &[num_ids, dim].into(), DType::F32)?;
    sums.ids.shape().expect_rank(OP, 1)?;
    let n = sums.ids.numel();
    expect_out(OP, &sums.ids, &[n].into(), DType::I32)?;
    expect_out(OP, &sums.sums, &[n, dim].into(), DType::F32)?;
    let num_ids = i32::try_from(num_ids)
        .map_err(|_| Error::arg(OP, format!("{num_ids} table rows exceed the i32 range")))?;
    let dim_i32 =
        i32::try_from(dim).map_err(|_| Error::arg(OP, format!("width {dim} exceeds i32")))?;
    if n * dim == 0 {
        return Ok(());
    }
    dev.launch(
        "sign_sgd_step_f32",
        grid_for_elements(n * dim),
        &mut [
            KernelArg::Out(&mut table.buf),
            KernelArg::In(&sums.ids.buf),
            KernelArg::In(&sums.sums.buf),
            i64_arg(n),
            KernelArg::I32(dim_i32),
            KernelArg::I32(num_ids),
            KernelArg::In(&scalars.buf),
        ],
    )
}
