//! Launchers for `kernels/reduce.cu`: sum and mean over one axis (forward and backward),
//! `sum_all` (the sum over the flattened tensor) and `argmax` (i32 indices). Validation follows
//! `device::cpu::reduce` and `cpu::layout::argmax_fwd`.

use crate::device::cpu::layout::argmax_dims;
use crate::device::{DeviceTensor, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{
    dtype_suffix, expect_out, grid_for_blocks, grid_for_elements, launch_in_out,
};
use crate::shape::Shape;

/// The grid of a reduce.cu reduction over the (outer, n, inner) view: one block per tile of
/// `lanes` inner positions, where `lanes` is the power of two ≥ min(inner, 32) (the kernel's
/// `ReduceTiling`).
fn reduction_grid(outer: usize, inner: usize) -> LaunchConfig {
    let lanes = inner.clamp(1, 32).next_power_of_two();
    grid_for_blocks(outer * inner.div_ceil(lanes))
}

/// `shape` without dimension `axis` (already resolved).
fn without_axis(shape: &Shape, axis: usize) -> Shape {
    let mut dims = shape.dims().to_vec();
    dims.remove(axis);
    Shape::new(dims)
}

fn sum_op_name(mean: bool) -> &'static str {
    if mean {
        "mean"
    } else {
        "sum"
    }
}

/// Sum over `axis` (removed from the shape), divided by its length when `mean`, into `out`.
pub fn sum_axis_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    axis: isize,
    mean: bool,
    out: &mut DeviceTensor,
) -> Result<()> {
    let op = sum_op_name(mean);
    let (outer, n, inner) = x.shape().around(op, axis)?;
    let y_shape = without_axis(x.shape(), x.shape().axis(op, axis)?);
    let suffix = dtype_suffix(op, x)?;
    expect_out(op, out, &y_shape, x.dtype())?;
    launch_sum(dev, op, suffix, x, (outer, n, inner), out)
}

/// Sum over `axis` (removed from the shape), or the mean when `mean`. Accumulates in f64.
pub fn sum_axis_fwd(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    axis: isize,
    mean: bool,
) -> Result<DeviceTensor> {
    let op = sum_op_name(mean);
    let y_shape = without_axis(x.shape(), x.shape().axis(op, axis)?);
    let mut out = DeviceTensor::uninit(dev, y_shape, x.dtype())?;
    sum_axis_fwd_into(dev, x, axis, mean, &mut out)?;
    Ok(out)
}

/// The sum of every element into the scalar `out`.
pub fn sum_all_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "sum_all";
    let suffix = dtype_suffix(OP, x)?;
    expect_out(OP, out, &Shape::scalar(), x.dtype())?;
    launch_sum(dev, "sum", suffix, x, (1, x.numel(), 1), out)
}

/// The sum of every element, as a scalar tensor of the input's dtype.
pub fn sum_all_fwd(dev: &dyn KernelBackend, x: &DeviceTensor) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, Shape::scalar(), x.dtype())?;
    sum_all_fwd_into(dev, x, &mut out)?;
    Ok(out)
}

/// Launches `sum_fwd` / `mean_fwd` (`kernel_op`) over the (outer, n, inner) view of `x`.
fn launch_sum(
    dev: &dyn KernelBackend,
    kernel_op: &str,
    suffix: &str,
    x: &DeviceTensor,
    (outer, n, inner): (usize, usize, usize),
    out: &mut DeviceTensor,
) -> Result<()> {
    if outer * inner == 0 {
        return Ok(());
    }
    launch_in_out(
        dev,
        &format!("{kernel_op}_fwd_{suffix}"),
        reduction_grid(outer, inner),
        x,
        out,
        &[outer, n, inner],
    )
}

/// Backward of `sum_axis_fwd` into `dx` (shaped `x_shape`): `dy` broadcast back along `axis`,
/// divided by its length for the mean. `dy` must have `x_shape` without `axis`.
pub fn sum_axis_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
    axis: isize,
    mean: bool,
    dx: &mut DeviceTensor,
) -> Result<()> {
    let op = sum_op_name(mean);
    let (outer, n, inner) = x_shape.around(op, axis)?;
    dy.shape()
        .expect_eq(op, &without_axis(x_shape, x_shape.axis(op, axis)?))?;
    let suffix = dtype_suffix(op, dy)?;
    expect_out(op, dx, x_shape, dy.dtype())?;
    launch_broadcast(dev, op, suffix, dy, (outer, n, inner), dx)
}

/// Backward of `sum_axis_fwd`: the output gradient broadcast back along `axis` (and divided by
/// its length for the mean).
pub fn sum_axis_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
    axis: isize,
    mean: bool,
) -> Result<DeviceTensor> {
    let mut dx = DeviceTensor::uninit(dev, x_shape.clone(), dy.dtype())?;
    sum_axis_bwd_into(dev, dy, x_shape, axis, mean, &mut dx)?;
    Ok(dx)
}

/// Backward of `sum_all_fwd` into `dx` (shaped `x_shape`): the scalar `dy` everywhere.
pub fn sum_all_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
    dx: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "sum_all";
    dy.shape().expect_eq(OP, &Shape::scalar())?;
    let suffix = dtype_suffix(OP, dy)?;
    expect_out(OP, dx, x_shape, dy.dtype())?;
    launch_broadcast(dev, "sum", suffix, dy, (1, x_shape.numel(), 1), dx)
}

/// Backward of `sum_all_fwd`: the scalar `dy` broadcast to `x_shape`.
pub fn sum_all_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
) -> Result<DeviceTensor> {
    let mut dx = DeviceTensor::uninit(dev, x_shape.clone(), dy.dtype())?;
    sum_all_bwd_into(dev, dy, x_shape, &mut dx)?;
    Ok(dx)
}

/// Launches `sum_bwd` / `mean_bwd` (`kernel_op`) writing the (outer, n, inner) `dx`.
fn launch_broadcast(
    dev: &dyn KernelBackend,
    kernel_op: &str,
    suffix: &str,
    dy: &DeviceTensor,
    (outer, n, inner): (usize, usize, usize),
    dx: &mut DeviceTensor,
) -> Result<()> {
    let total = outer * n * inner;
    if total == 0 {
        return Ok(());
    }
    launch_in_out(
        dev,
        &format!("{kernel_op}_bwd_{suffix}"),
        grid_for_elements(total),
        dy,
        dx,
        &[outer, n, inner],
    )
}

/// The index of the largest element along `axis` (removed from the shape) into the i32 `out`.
/// Ties go to the first index; NaN counts as the largest value.
pub fn argmax_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    axis: isize,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "argmax";
    let (outer, n, inner, y_shape) = argmax_dims(OP, x.shape(), axis)?;
    if i32::try_from(n).is_err() {
        return Err(Error::arg(
            OP,
            format!("axis {axis} of {} is too long for i32 indices", x.shape()),
        ));
    }
    let suffix = dtype_suffix(OP, x)?;
    expect_out(OP, out, &y_shape, DType::I32)?;
    if outer * inner == 0 {
        return Ok(());
    }
    launch_in_out(
        dev,
        &format!("argmax_fwd_{suffix}"),
        reduction_grid(outer, inner),
        x,
        out,
        &[outer, n, inner],
    )
}

/// The index of the largest element along `axis` (removed from the shape), as i32.
pub fn argmax_fwd(dev: &dyn KernelBackend, x: &DeviceTensor, axis: isize) -> Result<DeviceTensor> {
    let y_shape = without_axis(x.shape(), x.shape().axis("argmax", axis)?);
    let mut out = DeviceTensor::uninit(dev, y_shape, DType::I32)?;
    argmax_fwd_into(dev, x, axis, &mut out)?;
    Ok(out)
}
