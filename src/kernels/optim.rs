//! Launchers for `kernels/optim.cu`: one optimizer step on device tensors, in place. They match
//! `optim::{AdamAtan2, AdamW, Ema, SignSgd}` element for element: the per-step scalars are
//! computed here in f64 and rounded to f32 exactly as `optim::adam` does, and the kernels repeat
//! the reference's f32 arithmetic (up to the fused multiply-adds the GPU compiler forms).
//!
//! Parameters, moments, EMA shadows and the sparse table are f32 (the master weights); gradients
//! may be f32 or bf16. The caller owns the state and the step count (which starts at 1), as the
//! reference's `Moments` does per parameter.

use super::elementwise::{dtype_suffix, expect_out, grid_for_elements, i64_arg};
use super::embedding::RowSums;
use crate::device::{DeviceTensor, KernelArg, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::optim::{AdamAtan2Config, AdamWConfig, SignSgd};

/// The f32 scalars of one Adam step at step count `step`, as `optim::adam::Coefficients`.
struct AdamScalars {
    step_size: f32,
    wd_alpha: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
}

impl AdamScalars {
    fn new(lr: f64, beta1: f64, beta2: f64, weight_decay: f64, step: u64) -> AdamScalars {
        let t = step as f64;
        AdamScalars {
            step_size: (lr / (1.0 - beta1.powf(t))) as f32,
            wd_alpha: (1.0 - lr * weight_decay) as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias_correction2_sqrt: (1.0 - beta2.powf(t)).sqrt() as f32,
        }
    }

    fn args(&self) -> [KernelArg<'static>; 5] {
        [
            KernelArg::F32(self.step_size),
            KernelArg::F32(self.wd_alpha),
            KernelArg::F32(self.one_minus_beta1),
            KernelArg::F32(self.one_minus_beta2),
            KernelArg::F32(self.bias_correction2_sqrt),
        ]
    }
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
}

/// Checks an Adam step's tensors and step count; returns the gradient's kernel suffix.
fn check_adam(op: &'static str, t: &AdamTensors<'_>, step: u64) -> Result<&'static str> {
    if step == 0 {
        return Err(Error::arg(op, "step counts start at 1"));
    }
    let shape = t.param.shape().clone();
    expect_out(op, t.param, &shape, DType::F32)?;
    let suffix = dtype_suffix(op, t.grad)?;
    t.grad.shape().expect_eq(op, &shape)?;
    expect_out(op, t.exp_avg, &shape, DType::F32)?;
    expect_out(op, t.exp_avg_sq, &shape, DType::F32)?;
    Ok(suffix)
}

/// Launches `kernel` (`adam_atan2_step` or `adamw_step`) over the tensors, followed by `extra`
/// scalar arguments.
fn launch_adam(
    dev: &dyn KernelBackend,
    kernel: &str,
    t: AdamTensors<'_>,
    scalars: &AdamScalars,
    extra: &[f32],
) -> Result<()> {
    let n = t.param.numel();
    if n == 0 {
        return Ok(());
    }
    let mut args = vec![
        KernelArg::Out(&mut t.param.buf),
        KernelArg::In(&t.grad.buf),
        KernelArg::Out(&mut t.exp_avg.buf),
        KernelArg::Out(&mut t.exp_avg_sq.buf),
        i64_arg(n),
    ];
    args.extend(scalars.args());
    args.extend(extra.iter().map(|&x| KernelArg::F32(x)));
    dev.launch(kernel, grid_for_elements(n), &mut args)
}

/// One AdamATan2 step (`optim::AdamAtan2`) of one parameter at its step count `step` (1 on its
/// first step). Errors on invalid hyperparameters, step 0, or mismatched shapes or dtypes.
pub fn adam_atan2_step(
    dev: &dyn KernelBackend,
    config: &AdamAtan2Config,
    step: u64,
    t: AdamTensors<'_>,
) -> Result<()> {
    const OP: &str = "AdamAtan2";
    config.validate()?;
    let suffix = check_adam(OP, &t, step)?;
    let c = config;
    let scalars = AdamScalars::new(c.lr, c.beta1, c.beta2, c.weight_decay, step);
    launch_adam(dev, &format!("adam_atan2_step_{suffix}"), t, &scalars, &[])
}

/// One AdamW step (`optim::AdamW`) of one parameter at its step count `step` (1 on its first
/// step). Errors on invalid hyperparameters, step 0, or mismatched shapes or dtypes.
pub fn adamw_step(
    dev: &dyn KernelBackend,
    config: &AdamWConfig,
    step: u64,
    t: AdamTensors<'_>,
) -> Result<()> {
    const OP: &str = "AdamW";
    config.validate()?;
    let suffix = check_adam(OP, &t, step)?;
    let c = config;
    let scalars = AdamScalars::new(c.lr, c.beta1, c.beta2, c.weight_decay, step);
    launch_adam(
        dev,
        &format!("adamw_step_{suffix}"),
        t,
        &scalars,
        &[c.eps as f32],
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

/// One sign-SGD step (`optim::SignSgd::step`) of the f32 table `[num_ids, D]` on the rows that
/// `sums` (from `kernels::embedding::sparse_embedding_bwd`) touched:
/// `p ← p(1 − lr·wd) − lr·sign(Σg)`. Untouched rows stay exactly as they were; ids outside the
/// table are skipped (see `kernels::embedding` on why ids are not checked here).
pub fn sign_sgd_step(
    dev: &dyn KernelBackend,
    opt: &SignSgd,
    table: &mut DeviceTensor,
    sums: &RowSums,
) -> Result<()> {
    const OP: &str = "SignSgd";
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
    let (lr, wd) = (opt.lr(), opt.weight_decay());
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
            KernelArg::F32((1.0 - lr * wd) as f32),
            KernelArg::F32(-lr as f32),
        ],
    )
}
