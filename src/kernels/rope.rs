//! Launchers for `kernels/rope.cu`: RoPE forward and backward on `[B, S, H, hd]` tensors, with the
//! cos/sin table of a `RopeTable` uploaded once as f32 tensors (`DeviceRopeTable`). Validation
//! follows `device::cpu::rope`; the `_into` forms write a caller's tensor, the `_in_place` forms
//! rotate the tensor itself (the kernel reads both coordinates of a pair before writing them).

use crate::device::cpu::rope::{PairLayout, RopeTable};
use crate::device::{DeviceTensor, KernelArg, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{dtype_suffix, expect_out, grid_for_elements, i64_arg};
use crate::shape::Shape;
use crate::tensor::Tensor;

const OP: &str = "rope";

/// The host tensors `(cos, sin)`, f32 `[positions, head_dim / 2]`, with element `[p, j]` =
/// `table.cos_sin(p, j)` rounded to f32 (the reference rounds them to f32 too before rotating in
/// the f32 compute type).
pub fn rope_table_tensors(table: &RopeTable) -> Result<(Tensor, Tensor)> {
    let half = table.head_dim() / 2;
    let (cos, sin): (Vec<f32>, Vec<f32>) = (0..table.positions() * half)
        .map(|e| {
            let (c, s) = table.cos_sin(e / half, e % half);
            (c as f32, s as f32)
        })
        .unzip();
    let shape = Shape::from([table.positions(), half]);
    Ok((
        Tensor::from_vec(cos, shape.clone())?,
        Tensor::from_vec(sin, shape)?,
    ))
}

/// A `RopeTable` on a device: its f32 cos and sin tensors and its pair layout.
#[derive(Debug)]
pub struct DeviceRopeTable {
    pub cos: DeviceTensor,
    pub sin: DeviceTensor,
    pub layout: PairLayout,
    pub head_dim: usize,
    pub positions: usize,
}

impl DeviceRopeTable {
    /// Uploads `table`'s cos and sin (see `rope_table_tensors`).
    pub fn upload(dev: &dyn KernelBackend, table: &RopeTable) -> Result<DeviceRopeTable> {
        let (cos, sin) = rope_table_tensors(table)?;
        Ok(DeviceRopeTable {
            cos: DeviceTensor::upload(dev, &cos)?,
            sin: DeviceTensor::upload(dev, &sin)?,
            layout: table.layout(),
            head_dim: table.head_dim(),
            positions: table.positions(),
        })
    }
}

/// Checks `x [B, S, H, hd]` against the table like the reference; returns the kernel suffix and
/// `(rows = B·S·H, S, H, hd)`.
fn check(x: &DeviceTensor, table: &DeviceRopeTable) -> Result<(&'static str, [usize; 4])> {
    let suffix = dtype_suffix(OP, x)?;
    x.shape().expect_rank(OP, 4)?;
    let &[batch, seq, heads, head_dim] = x.dims() else {
        unreachable!("rank checked above")
    };
    if head_dim != table.head_dim {
        return Err(Error::shape(
            OP,
            format!("head_dim {head_dim} vs the table's {}", table.head_dim),
        ));
    }
    if seq > table.positions {
        return Err(Error::shape(
            OP,
            format!(
                "sequence length {seq} exceeds the table's {} positions",
                table.positions
            ),
        ));
    }
    let half = [table.positions, head_dim / 2];
    for t in [&table.cos, &table.sin] {
        t.shape().expect_eq(OP, &Shape::from(half))?;
        t.expect_dtype(OP, &[DType::F32])?;
    }
    Ok((suffix, [batch * seq * heads, seq, heads, head_dim]))
}

/// Launches `rope_<direction>_<suffix>`; `x = None` rotates `y` in place.
fn launch(
    dev: &dyn KernelBackend,
    direction: &str,
    x: Option<&DeviceTensor>,
    y: &mut DeviceTensor,
    table: &DeviceRopeTable,
) -> Result<()> {
    let (suffix, [rows, seq, heads, head_dim]) = check(x.unwrap_or(&*y), table)?;
    if let Some(x) = x {
        expect_out(OP, y, x.shape(), x.dtype())?;
    }
    if y.numel() == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("rope_{direction}_{suffix}"),
        grid_for_elements(rows * head_dim / 2),
        &mut [
            // A null input pointer tells the kernel to rotate `y` in place.
            x.map_or(KernelArg::U64(0), |x| KernelArg::In(&x.buf)),
            KernelArg::Out(&mut y.buf),
            KernelArg::In(&table.cos.buf),
            KernelArg::In(&table.sin.buf),
            i64_arg(rows),
            i64_arg(seq),
            i64_arg(heads),
            i64_arg(head_dim),
            KernelArg::I32((table.layout == PairLayout::Interleaved) as i32),
        ],
    )
}

/// RoPE forward of `x [B, S, H, hd]` into `y`: position `s` uses row `s` of the table.
pub fn rope_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    table: &DeviceRopeTable,
    y: &mut DeviceTensor,
) -> Result<()> {
    launch(dev, "fwd", Some(x), y, table)
}

/// RoPE forward of `x [B, S, H, hd]`, in its dtype.
pub fn rope_fwd(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    table: &DeviceRopeTable,
) -> Result<DeviceTensor> {
    check(x, table)?;
    let mut y = DeviceTensor::uninit(dev, x.shape().clone(), x.dtype())?;
    rope_fwd_into(dev, x, table, &mut y)?;
    Ok(y)
}

/// RoPE forward, rotating `x` in place.
pub fn rope_fwd_in_place(
    dev: &dyn KernelBackend,
    x: &mut DeviceTensor,
    table: &DeviceRopeTable,
) -> Result<()> {
    launch(dev, "fwd", None, x, table)
}

/// RoPE backward (the transposed rotation) of `dy` into `dx`.
pub fn rope_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    table: &DeviceRopeTable,
    dx: &mut DeviceTensor,
) -> Result<()> {
    launch(dev, "bwd", Some(dy), dx, table)
}

/// RoPE backward of `dy [B, S, H, hd]`.
pub fn rope_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    table: &DeviceRopeTable,
) -> Result<DeviceTensor> {
    check(dy, table)?;
    let mut dx = DeviceTensor::uninit(dev, dy.shape().clone(), dy.dtype())?;
    rope_bwd_into(dev, dy, table, &mut dx)?;
    Ok(dx)
}

/// RoPE backward, rotating the gradient in place.
pub fn rope_bwd_in_place(
    dev: &dyn KernelBackend,
    dy: &mut DeviceTensor,
    table: &DeviceRopeTable,
) -> Result<()> {
    launch(dev, "bwd", None, dy, table)
}
