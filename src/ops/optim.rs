//! Optimizer updates where their tensors live: host tensors run the reference
//! (`device::cpu::optim`), device tensors the kernels (`kernels::optim`), in place. Not tape ops:
//! nothing here is differentiated. `optim::*` keeps the state and the schedules and calls these.
//!
//! On a device the per-step scalars are read from device memory. A caller that has them there
//! already (packed into the step's one upload) passes them as `scalars`; without them the
//! launcher uploads its own (one counted upload), which is right for tests and one-off steps but
//! not inside a captured step.

use crate::device::cpu::optim::{self as reference, AdamCoefficients, AdamHyper};
use crate::device::{DeviceTensor, KernelBackend};
use crate::error::{Error, Result};
use crate::kernels::embedding::sparse_embedding_bwd;
use crate::kernels::optim::{self as kernels, AdamKind, AdamTensors};
use crate::tensor::{RealData, RealDataMut, Tensor};
use std::borrow::Cow;
use std::sync::Arc;

/// The state one Adam step updates in place: a parameter and its two moments (same location,
/// shape and dtype), and optionally the parameter's bf16 mirror, which gets the new value rounded
/// to bf16 (in the same launch on a device).
pub struct AdamState<'a> {
    pub param: &'a mut Tensor,
    pub exp_avg: &'a mut Tensor,
    pub exp_avg_sq: &'a mut Tensor,
    pub mirror: Option<&'a mut Tensor>,
}

/// The device memory of `t` and its backend, or an error naming `what` if it is on the host.
fn resident(
    op: &'static str,
    what: &str,
    t: &Tensor,
) -> Result<(DeviceTensor, Arc<dyn KernelBackend>)> {
    let dev = DeviceTensor::borrow(t).ok_or_else(|| {
        Error::arg(
            op,
            format!("{what} is on the host, the parameter on a device"),
        )
    })?;
    let (_, backend) = t.device_buffer().expect("borrowed above");
    Ok((dev, backend.clone()))
}

/// `values` as a device f32 vector: `given` when the caller staged it, else one upload.
fn device_scalars(
    backend: &Arc<dyn KernelBackend>,
    given: Option<&Tensor>,
    values: &[f32],
) -> Result<DeviceTensor> {
    let t = match given {
        Some(t) => t.clone(),
        None => Tensor::from_vec(values.to_vec(), [values.len()])?.to_device(backend)?,
    };
    DeviceTensor::borrow(&t).ok_or_else(|| {
        Error::arg(
            "optimizer scalars",
            "the step's scalars are on the host, the parameters on a device",
        )
    })
}

/// One Adam step at step count `step` (from 1) of `state` with gradient `grad`. On a device the
/// parameter is f32 and `scalars`, if given, must hold
/// `AdamCoefficients::<f32>::new(hyper, step).kernel_scalars()`.
pub fn adam_step(
    op: &'static str,
    hyper: &AdamHyper,
    step: u64,
    state: AdamState<'_>,
    grad: &Tensor,
    scalars: Option<&Tensor>,
) -> Result<()> {
    if state.param.is_on_host() {
        let updated = match (
            state.param.real_data_mut(op)?,
            state.exp_avg.real_data_mut(op)?,
            state.exp_avg_sq.real_data_mut(op)?,
        ) {
            (RealDataMut::F32(p), RealDataMut::F32(m), RealDataMut::F32(v)) => {
                let c = AdamCoefficients::<f32>::new(hyper, step);
                reference::adam_update(p, &grad_f32(op, grad)?, m, v, &c);
                Ok(())
            }
            (RealDataMut::F64(p), RealDataMut::F64(m), RealDataMut::F64(v)) => {
                let c = AdamCoefficients::<f64>::new(hyper, step);
                reference::adam_update(p, &grad_f64(op, grad)?, m, v, &c);
                Ok(())
            }
            _ => Err(Error::arg(op, "moments and parameter differ in dtype")),
        };
        if let Some(mirror) = state.mirror {
            *mirror = state.param.to_dtype(mirror.dtype())?;
        }
        return updated;
    }
    let (mut param, backend) = resident(op, "parameter", state.param)?;
    let (mut m, _) = resident(op, "first moment", state.exp_avg)?;
    let (mut v, _) = resident(op, "second moment", state.exp_avg_sq)?;
    let (g, _) = resident(op, "gradient", grad)?;
    let mut mirror = state
        .mirror
        .map(|t| resident(op, "mirror", t).map(|(t, _)| t))
        .transpose()?;
    let values = AdamCoefficients::<f32>::new(hyper, step).kernel_scalars();
    let scalars = device_scalars(&backend, scalars, &values)?;
    let kind = if hyper.eps.is_some() {
        AdamKind::W
    } else {
        AdamKind::Atan2
    };
    kernels::adam_step(
        backend.as_ref(),
        kind,
        &scalars,
        AdamTensors {
            param: &mut param,
            grad: &g,
            exp_avg: &mut m,
            exp_avg_sq: &mut v,
            mirror: mirror.as_mut(),
        },
    )
}

/// A host gradient as f32 (bf16 widened, f64 rounded), borrowed when it already is.
fn grad_f32<'a>(op: &'static str, g: &'a Tensor) -> Result<Cow<'a, [f32]>> {
    Ok(match g.real_data(op)? {
        RealData::F32(v) => v,
        RealData::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
    })
}

/// A host gradient as f64, borrowed when it already is.
fn grad_f64<'a>(op: &'static str, g: &'a Tensor) -> Result<Cow<'a, [f64]>> {
    Ok(match g.real_data(op)? {
        RealData::F64(v) => Cow::Borrowed(v),
        RealData::F32(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
    })
}

/// One sign-SGD step of the sparse `table` on the rows `ids` with gradients `row_grads` (see
/// `device::cpu::optim::sign_sgd_step`). On a device `scalars`, if given, must hold
/// `sign_sgd_scalars(lr, weight_decay)`.
pub fn sign_sgd_step(
    table: &mut Tensor,
    ids: &Tensor,
    row_grads: &Tensor,
    lr: f64,
    weight_decay: f64,
    scalars: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "SignSgd";
    if table.is_on_host() {
        return reference::sign_sgd_step(
            table,
            &ids.to_host()?,
            &row_grads.to_host()?,
            lr,
            weight_decay,
        );
    }
    let (mut dev_table, backend) = resident(OP, "table", table)?;
    let ids = DeviceTensor::borrow(&ids.to_device(&backend)?).expect("on the device");
    let rows = DeviceTensor::borrow(&row_grads.to_device(&backend)?).expect("on the device");
    let sums = sparse_embedding_bwd(backend.as_ref(), &ids, &rows)?;
    let values = reference::sign_sgd_scalars(lr, weight_decay);
    let scalars = device_scalars(&backend, scalars, &values)?;
    kernels::sign_sgd_step(backend.as_ref(), &scalars, &mut dev_table, &sums)
}

/// `shadow ← (1−μ)·param + μ·shadow` in place (f32 on a device).
pub fn ema_update(shadow: &mut Tensor, param: &Tensor, decay: f64) -> Result<()> {
    const OP: &str = "Ema::update";
    if shadow.is_on_host() {
        *shadow = reference::ema_average(&param.to_host()?, shadow, decay)?;
        return Ok(());
    }
    let (mut s, backend) = resident(OP, "shadow", shadow)?;
    let (p, _) = resident(OP, "parameter", param)?;
    kernels::ema_update(backend.as_ref(), decay, &mut s, &p)
}
