//! Launchers for `kernels/layout.cu`: the last-two-dims transpose, `narrow` and its backward,
//! and `concat`, on f32 or bf16 tensors (values move as raw bits). Validation follows
//! `device::cpu::layout`; the CPU reference also takes i32 and f64, which have no kernels here.

use crate::device::cpu::layout::{narrow_range, transposed};
use crate::device::{DeviceTensor, KernelBackend};
use crate::error::{Error, Result};
use crate::kernels::elementwise::{
    dtype_suffix, expect_out, expect_same_dtype, grid_for_blocks, grid_for_elements, launch_in_out,
};
use crate::shape::Shape;

/// The side of transpose_last2's square shared-memory tile (`TRANSPOSE_TILE` in layout.cu).
const TRANSPOSE_TILE: usize = 32;

/// Swaps the last two dimensions of `x` into `y`: `[..., a, b]` → `[..., b, a]`.
pub fn transpose_last2_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "transpose_last2";
    let (y_shape, (batch, a, b)) = transposed(OP, x.shape())?;
    let suffix = dtype_suffix(OP, x)?;
    expect_out(OP, y, &y_shape, x.dtype())?;
    if x.numel() == 0 {
        return Ok(());
    }
    let tiles = batch * a.div_ceil(TRANSPOSE_TILE) * b.div_ceil(TRANSPOSE_TILE);
    launch_in_out(
        dev,
        &format!("transpose_last2_fwd_{suffix}"),
        grid_for_blocks(tiles),
        x,
        y,
        &[batch, a, b],
    )
}

/// Swaps the last two dimensions: `[..., a, b]` → `[..., b, a]`. It is its own backward.
pub fn transpose_last2_fwd(dev: &dyn KernelBackend, x: &DeviceTensor) -> Result<DeviceTensor> {
    let (y_shape, _) = transposed("transpose_last2", x.shape())?;
    let mut y = DeviceTensor::uninit(dev, y_shape, x.dtype())?;
    transpose_last2_fwd_into(dev, x, &mut y)?;
    Ok(y)
}

/// The output shape of a concat along `axis`, after the reference's checks (at least one input,
/// every dimension but `axis` equal, one dtype).
fn concat_shape(op: &'static str, xs: &[&DeviceTensor], axis: isize) -> Result<Shape> {
    let first = xs
        .first()
        .ok_or_else(|| Error::arg(op, "needs at least one tensor"))?;
    let ax = first.shape().axis(op, axis)?;
    dtype_suffix(op, first)?;
    for x in &xs[1..] {
        let same_elsewhere = x.shape().rank() == first.shape().rank()
            && (0..first.shape().rank()).all(|d| d == ax || x.dims()[d] == first.dims()[d]);
        if !same_elsewhere {
            return Err(Error::shape(
                op,
                format!(
                    "{} and {} differ outside axis {axis}",
                    first.shape(),
                    x.shape()
                ),
            ));
        }
        expect_same_dtype(op, x, first.dtype())?;
    }
    let mut dims = first.dims().to_vec();
    dims[ax] = xs.iter().map(|x| x.dims()[ax]).sum();
    Ok(Shape::new(dims))
}

/// Joins `xs` along `axis` into `out`: one launch per input, each writing its slice.
pub fn concat_fwd_into(
    dev: &dyn KernelBackend,
    xs: &[&DeviceTensor],
    axis: isize,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "concat";
    let shape = concat_shape(OP, xs, axis)?;
    let suffix = dtype_suffix(OP, xs[0])?;
    expect_out(OP, out, &shape, xs[0].dtype())?;
    let (outer, total, inner) = shape.around(OP, axis)?;
    let mut offset = 0;
    for x in xs {
        let size = x.shape().dim(OP, axis)?;
        if x.numel() > 0 {
            launch_in_out(
                dev,
                &format!("concat_fwd_{suffix}"),
                grid_for_elements(x.numel()),
                x,
                out,
                &[outer, size, inner, total, offset],
            )?;
        }
        offset += size;
    }
    Ok(())
}

/// Joins tensors along `axis`; every other dimension must agree.
pub fn concat_fwd(
    dev: &dyn KernelBackend,
    xs: &[&DeviceTensor],
    axis: isize,
) -> Result<DeviceTensor> {
    let shape = concat_shape("concat", xs, axis)?;
    let mut out = DeviceTensor::uninit(dev, shape, xs[0].dtype())?;
    concat_fwd_into(dev, xs, axis, &mut out)?;
    Ok(out)
}

/// `shape` with dimension `axis` set to `len`.
fn with_axis_len(op: &'static str, shape: &Shape, axis: isize, len: usize) -> Result<Shape> {
    let mut dims = shape.dims().to_vec();
    dims[shape.axis(op, axis)?] = len;
    Ok(Shape::new(dims))
}

/// The slice `start..start + len` of `axis` of `x` into `y`.
pub fn narrow_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    axis: isize,
    start: usize,
    len: usize,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "narrow";
    let (outer, n, inner) = narrow_range(OP, x.shape(), axis, start, len)?;
    let suffix = dtype_suffix(OP, x)?;
    expect_out(OP, y, &with_axis_len(OP, x.shape(), axis, len)?, x.dtype())?;
    if y.numel() == 0 {
        return Ok(());
    }
    launch_in_out(
        dev,
        &format!("narrow_fwd_{suffix}"),
        grid_for_elements(y.numel()),
        x,
        y,
        &[outer, n, inner, start, len],
    )
}

/// The slice `start..start + len` of `axis`.
pub fn narrow_fwd(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    axis: isize,
    start: usize,
    len: usize,
) -> Result<DeviceTensor> {
    const OP: &str = "narrow";
    narrow_range(OP, x.shape(), axis, start, len)?;
    let mut y = DeviceTensor::uninit(dev, with_axis_len(OP, x.shape(), axis, len)?, x.dtype())?;
    narrow_fwd_into(dev, x, axis, start, len, &mut y)?;
    Ok(y)
}

/// Backward of `narrow_fwd` into `dx` (shaped `x_shape`): `dy` at `start` along `axis`, zeros
/// elsewhere.
pub fn narrow_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
    axis: isize,
    start: usize,
    dx: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "narrow backward";
    let ax = x_shape.axis(OP, axis)?;
    let len = dy.dims().get(ax).copied().unwrap_or(0);
    let (outer, n, inner) = narrow_range(OP, x_shape, axis, start, len)?;
    dy.shape()
        .expect_eq(OP, &with_axis_len(OP, x_shape, axis, len)?)?;
    let suffix = dtype_suffix(OP, dy)?;
    expect_out(OP, dx, x_shape, dy.dtype())?;
    if dx.numel() == 0 {
        return Ok(());
    }
    launch_in_out(
        dev,
        &format!("narrow_bwd_{suffix}"),
        grid_for_elements(dx.numel()),
        dy,
        dx,
        &[outer, n, inner, start, len],
    )
}

/// Backward of `narrow_fwd`: `dy` placed at `start` along `axis` of a zero tensor of `x_shape`.
pub fn narrow_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x_shape: &Shape,
    axis: isize,
    start: usize,
) -> Result<DeviceTensor> {
    let mut dx = DeviceTensor::uninit(dev, x_shape.clone(), dy.dtype())?;
    narrow_bwd_into(dev, dy, x_shape, axis, start, &mut dx)?;
    Ok(dx)
}
