//! Launchers for `kernels/activation.cu`: every pointwise `Activation` forward and backward
//! through one launcher pair (the kernel is `<activation>_<fwd|bwd>_<dtype>`), and SwiGLU on the
//! fused gate|up projection. Validation follows `device::cpu::activation` and `cpu::swiglu`.

use crate::device::cpu::swiglu::halves;
use crate::device::{DeviceTensor, KernelArg, KernelBackend};
use crate::error::Result;
use crate::kernels::elementwise::{
    dtype_suffix, expect_out, expect_same_dtype, grid_for_elements, i64_arg,
};

pub use crate::device::cpu::activation::Activation;

/// `y = f(x)` into `y`.
pub fn activation_fwd_into(
    dev: &dyn KernelBackend,
    act: Activation,
    x: &DeviceTensor,
    y: &mut DeviceTensor,
) -> Result<()> {
    let suffix = dtype_suffix(act.name(), x)?;
    expect_out(act.name(), y, x.shape(), x.dtype())?;
    let n = x.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("{}_fwd_{suffix}", act.name()),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&x.buf),
            KernelArg::Out(&mut y.buf),
            i64_arg(n),
        ],
    )
}

/// `f(x)` elementwise, in the dtype of `x`.
pub fn activation_fwd(
    dev: &dyn KernelBackend,
    act: Activation,
    x: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut y = DeviceTensor::uninit(dev, x.shape().clone(), x.dtype())?;
    activation_fwd_into(dev, act, x, &mut y)?;
    Ok(y)
}

/// `dx = dy ⊙ f′(x)` into `dx`.
pub fn activation_bwd_into(
    dev: &dyn KernelBackend,
    act: Activation,
    x: &DeviceTensor,
    dy: &DeviceTensor,
    dx: &mut DeviceTensor,
) -> Result<()> {
    let suffix = dtype_suffix(act.name(), x)?;
    dy.shape().expect_eq(act.name(), x.shape())?;
    expect_same_dtype(act.name(), dy, x.dtype())?;
    expect_out(act.name(), dx, x.shape(), x.dtype())?;
    let n = x.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("{}_bwd_{suffix}", act.name()),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&x.buf),
            KernelArg::In(&dy.buf),
            KernelArg::Out(&mut dx.buf),
            i64_arg(n),
        ],
    )
}

/// Backward of `activation_fwd`: `dx = dy ⊙ f′(x)`.
pub fn activation_bwd(
    dev: &dyn KernelBackend,
    act: Activation,
    x: &DeviceTensor,
    dy: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut dx = DeviceTensor::uninit(dev, x.shape().clone(), x.dtype())?;
    activation_bwd_into(dev, act, x, dy, &mut dx)?;
    Ok(dx)
}

/// `silu(gate) ⊙ up` of `gate_up [..., 2·inter]` into `y [..., inter]`.
pub fn swiglu_fwd_into(
    dev: &dyn KernelBackend,
    gate_up: &DeviceTensor,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "swiglu";
    let (rows, inter, y_shape) = halves(OP, gate_up.shape())?;
    let suffix = dtype_suffix(OP, gate_up)?;
    expect_out(OP, y, &y_shape, gate_up.dtype())?;
    if rows * inter == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("swiglu_fwd_{suffix}"),
        grid_for_elements(rows * inter),
        &mut [
            KernelArg::In(&gate_up.buf),
            KernelArg::Out(&mut y.buf),
            i64_arg(rows),
            i64_arg(inter),
        ],
    )
}

/// `gate_up [..., 2·inter]` → `silu(gate) ⊙ up`, `[..., inter]`; gate is the first half of the
/// last dimension, up the second (the official `chunk(2)`).
pub fn swiglu_fwd(dev: &dyn KernelBackend, gate_up: &DeviceTensor) -> Result<DeviceTensor> {
    let (_, _, y_shape) = halves("swiglu", gate_up.shape())?;
    let mut y = DeviceTensor::uninit(dev, y_shape, gate_up.dtype())?;
    swiglu_fwd_into(dev, gate_up, &mut y)?;
    Ok(y)
}

/// Backward of SwiGLU into `d_gate_up` (shaped like `gate_up`).
pub fn swiglu_bwd_into(
    dev: &dyn KernelBackend,
    gate_up: &DeviceTensor,
    dy: &DeviceTensor,
    d_gate_up: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "swiglu backward";
    let (rows, inter, y_shape) = halves(OP, gate_up.shape())?;
    let suffix = dtype_suffix(OP, gate_up)?;
    dy.shape().expect_eq(OP, &y_shape)?;
    expect_same_dtype(OP, dy, gate_up.dtype())?;
    expect_out(OP, d_gate_up, gate_up.shape(), gate_up.dtype())?;
    if rows * inter == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("swiglu_bwd_{suffix}"),
        grid_for_elements(rows * inter),
        &mut [
            KernelArg::In(&gate_up.buf),
            KernelArg::In(&dy.buf),
            KernelArg::Out(&mut d_gate_up.buf),
            i64_arg(rows),
            i64_arg(inter),
        ],
    )
}

/// Backward of `swiglu_fwd`: `d gate = dy ⊙ up ⊙ silu′(gate)`, `d up = dy ⊙ silu(gate)`, laid
/// out like `gate_up`.
pub fn swiglu_bwd(
    dev: &dyn KernelBackend,
    gate_up: &DeviceTensor,
    dy: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut d_gate_up = DeviceTensor::uninit(dev, gate_up.shape().clone(), gate_up.dtype())?;
    swiglu_bwd_into(dev, gate_up, dy, &mut d_gate_up)?;
    Ok(d_gate_up)
}
