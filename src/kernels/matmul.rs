//! Launchers for `kernels/matmul.cu`: `linear` (`y = x·Wᵀ + b`, the weight in PyTorch's
//! `[out, in]` layout) and its three backward products, on the simple tiled GEMM, matching
//! `device::cpu::linear`. Every operand shares one dtype, f32 or bf16; products accumulate in f32.

use super::elementwise::{dtype_suffix, expect_out, expect_same_dtype};
use crate::device::cpu::linear::{linear_dims, with_last_dim, LinearDims};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::error::{Error, Result};
use crate::shape::Shape;

/// The output tile of one GEMM block (`GEMM_TILE` in matmul.cu) and its thread count.
const GEMM_TILE: usize = 64;
const GEMM_THREADS: u32 = 256;
/// Columns per block of `linear_bias_bwd` and its thread count (32 × 8).
const BIAS_COLUMNS: usize = 32;
const BIAS_THREADS: u32 = 256;

impl LinearDims {
    /// The sizes as the kernels' three `int` arguments (rows, out, in), or an error if one does
    /// not fit.
    fn args(&self, op: &'static str) -> Result<[KernelArg<'static>; 3]> {
        let arg = |n: usize| {
            i32::try_from(n)
                .map(KernelArg::I32)
                .map_err(|_| Error::arg(op, format!("size {n} exceeds the kernels' i32 range")))
        };
        Ok([
            arg(self.rows)?,
            arg(self.out_features)?,
            arg(self.in_features)?,
        ])
    }
}

/// The grid of a GEMM whose output is `m × n`: one block per output tile.
fn gemm_grid(op: &'static str, m: usize, n: usize) -> Result<LaunchConfig> {
    let (tiles_m, tiles_n) = (m.div_ceil(GEMM_TILE), n.div_ceil(GEMM_TILE));
    if tiles_m > 65535 {
        return Err(Error::arg(
            op,
            format!(
                "{m} output rows exceed the grid's {} rows",
                65535 * GEMM_TILE
            ),
        ));
    }
    Ok(LaunchConfig {
        grid: (tiles_n as u32, tiles_m as u32, 1),
        block: (GEMM_THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `y = x·Wᵀ (+ bias)` into `y`: `x [..., in]`, `w [out, in]`, `bias [out]`, `y [..., out]`, all
/// of one dtype.
pub fn linear_fwd_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    w: &DeviceTensor,
    bias: Option<&DeviceTensor>,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "linear";
    let d = linear_dims(OP, x.shape(), w.shape(), bias.map(DeviceTensor::shape))?;
    let suffix = dtype_suffix(OP, x)?;
    expect_same_dtype(OP, w, x.dtype())?;
    if let Some(b) = bias {
        expect_same_dtype(OP, b, x.dtype())?;
    }
    expect_out(OP, y, &with_last_dim(x.shape(), d.out_features), x.dtype())?;
    if y.numel() == 0 {
        return Ok(());
    }
    let [rows, out_features, in_features] = d.args(OP)?;
    dev.launch(
        &format!("linear_fwd_{suffix}"),
        gemm_grid(OP, d.rows, d.out_features)?,
        &mut [
            KernelArg::In(&x.buf),
            KernelArg::In(&w.buf),
            // A null device pointer tells the kernel there is no bias.
            bias.map_or(KernelArg::U64(0), |b| KernelArg::In(&b.buf)),
            KernelArg::Out(&mut y.buf),
            rows,
            out_features,
            in_features,
        ],
    )
}

/// `y = x·Wᵀ (+ bias)`, shaped `[..., out]` (see `linear_fwd_into`).
pub fn linear_fwd(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    w: &DeviceTensor,
    bias: Option<&DeviceTensor>,
) -> Result<DeviceTensor> {
    let out_features = w.dims().first().copied().unwrap_or(0);
    let mut y = DeviceTensor::uninit(dev, with_last_dim(x.shape(), out_features), x.dtype())?;
    linear_fwd_into(dev, x, w, bias, &mut y)?;
    Ok(y)
}

/// Backward of `linear` for the input into `dx` (shaped like `x`): `dx = dy·W`.
pub fn linear_bwd_input_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    w: &DeviceTensor,
    dx: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "linear backward";
    let d = linear_dims(OP, dx.shape(), w.shape(), None)?;
    let suffix = dtype_suffix(OP, dy)?;
    expect_same_dtype(OP, w, dy.dtype())?;
    dy.shape()
        .expect_eq(OP, &with_last_dim(dx.shape(), d.out_features))?;
    expect_same_dtype(OP, dx, dy.dtype())?;
    if dx.numel() == 0 {
        return Ok(());
    }
    let [rows, out_features, in_features] = d.args(OP)?;
    dev.launch(
        &format!("linear_input_bwd_{suffix}"),
        gemm_grid(OP, d.rows, d.in_features)?,
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::In(&w.buf),
            KernelArg::Out(&mut dx.buf),
            rows,
            out_features,
            in_features,
        ],
    )
}

/// Backward of `linear` for the input: `dx = dy·W`, shaped `x_shape`.
pub fn linear_bwd_input(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    w: &DeviceTensor,
    x_shape: &Shape,
) -> Result<DeviceTensor> {
    let mut dx = DeviceTensor::uninit(dev, x_shape.clone(), dy.dtype())?;
    linear_bwd_input_into(dev, dy, w, &mut dx)?;
    Ok(dx)
}

/// Backward of `linear` for the weight into `dw` (`[out, in]`): `dW = dyᵀ·x`, summed over every
/// row.
pub fn linear_bwd_weight_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x: &DeviceTensor,
    dw: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "linear backward";
    let d = linear_dims(OP, x.shape(), dw.shape(), None)?;
    let suffix = dtype_suffix(OP, dy)?;
    expect_same_dtype(OP, x, dy.dtype())?;
    dy.shape()
        .expect_eq(OP, &with_last_dim(x.shape(), d.out_features))?;
    expect_same_dtype(OP, dw, dy.dtype())?;
    if dw.numel() == 0 {
        return Ok(());
    }
    let [rows, out_features, in_features] = d.args(OP)?;
    dev.launch(
        &format!("linear_weight_bwd_{suffix}"),
        gemm_grid(OP, d.out_features, d.in_features)?,
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::In(&x.buf),
            KernelArg::Out(&mut dw.buf),
            rows,
            out_features,
            in_features,
        ],
    )
}

/// Backward of `linear` for the weight: `dW = dyᵀ·x`, shaped `[out, in]`.
pub fn linear_bwd_weight(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    x: &DeviceTensor,
) -> Result<DeviceTensor> {
    let out_features = dy.dims().last().copied().unwrap_or(0);
    let in_features = x.dims().last().copied().unwrap_or(0);
    let mut dw = DeviceTensor::uninit(dev, [out_features, in_features], dy.dtype())?;
    linear_bwd_weight_into(dev, dy, x, &mut dw)?;
    Ok(dw)
}

/// Backward of `linear` for the bias into `db` (`[out]`): `db = Σ_rows dy`.
pub fn linear_bwd_bias_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    db: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "linear backward";
    let suffix = dtype_suffix(OP, dy)?;
    let (rows, cols) = dy.shape().rows_cols(OP)?;
    expect_out(OP, db, &Shape::new([cols]), dy.dtype())?;
    if cols == 0 {
        return Ok(());
    }
    let to_i32 = |n: usize| {
        i32::try_from(n)
            .map(KernelArg::I32)
            .map_err(|_| Error::arg(OP, format!("size {n} exceeds the kernels' i32 range")))
    };
    dev.launch(
        &format!("linear_bias_bwd_{suffix}"),
        LaunchConfig::linear(cols.div_ceil(BIAS_COLUMNS) as u32, BIAS_THREADS),
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::Out(&mut db.buf),
            to_i32(rows)?,
            to_i32(cols)?,
        ],
    )
}

/// Backward of `linear` for the bias: `db = Σ_rows dy`, shaped `[out]`.
pub fn linear_bwd_bias(dev: &dyn KernelBackend, dy: &DeviceTensor) -> Result<DeviceTensor> {
    let cols = dy.dims().last().copied().unwrap_or(0);
    let mut db = DeviceTensor::uninit(dev, [cols], dy.dtype())?;
    linear_bwd_bias_into(dev, dy, &mut db)?;
    Ok(db)
}
