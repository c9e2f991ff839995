//! Launchers for `kernels/gemm.cu`: the tensor-core GEMM `y = x·Wᵀ` (weight in PyTorch's
//! `[out, in]` layout) with bf16 operands, f32 accumulation and a fused epilogue, matching
//! `device::cpu::linear::linear_fwd` followed by the epilogue's reference op (`add_tensors`,
//! `swiglu_fwd`). The output is bf16 or f32, chosen by the output tensor's dtype.

use super::elementwise::{expect_out, expect_same_dtype};
use crate::device::cpu::linear::{linear_dims, with_last_dim};
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;

/// The output tile of one block (`GEMM_BF16_TILE_M` × `GEMM_BF16_TILE_N` in gemm.cu) and its
/// threads. A SwiGLU block owns half as many output columns: 32 gate and the 32 matching up.
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const THREADS: u32 = 128;

/// What the GEMM applies to `x·Wᵀ` before it stores.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `y = x·Wᵀ`.
    None,
    /// `y = x·Wᵀ + bias`, `bias [N]` bf16.
    Bias(&'a DeviceTensor),
    /// `y = x·Wᵀ + residual`, `residual` shaped and typed like `y`.
    Residual(&'a DeviceTensor),
    /// `W` is `gate_up_proj [2·I, K]`: `y [..., I] = silu(x·W[0:I]ᵀ) ⊙ x·W[I:2I]ᵀ`.
    SwiGlu,
    /// SwiGLU of `x·Wᵀ + bias`, `bias [2·I]` bf16 (gate | up).
    SwiGluBias(&'a DeviceTensor),
}

impl Epilogue<'_> {
    fn is_swiglu(&self) -> bool {
        matches!(self, Epilogue::SwiGlu | Epilogue::SwiGluBias(_))
    }
}

/// The shape `gemm_bf16` gives `y` for `x [..., K]` and `w [N, K]`: `[..., N]`, or `[..., N/2]`
/// for SwiGLU.
pub fn gemm_bf16_output_shape(x: &Shape, w: &Shape, epilogue: Epilogue<'_>) -> Result<Shape> {
    output_shape("gemm_bf16", x, w, epilogue)
}

fn output_shape(op: &'static str, x: &Shape, w: &Shape, epilogue: Epilogue<'_>) -> Result<Shape> {
    let d = linear_dims(op, x, w, None)?;
    if !epilogue.is_swiglu() {
        return Ok(with_last_dim(x, d.out_features));
    }
    if d.out_features % 2 != 0 {
        return Err(Error::shape(
            op,
            format!("SwiGLU needs a weight of 2·inter rows (gate | up), got {w}"),
        ));
    }
    Ok(with_last_dim(x, d.out_features / 2))
}

/// The sizes and optional operands of a checked `gemm_bf16` call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmOperands<'a> {
    /// M: the output's rows, leading dimensions folded.
    pub rows: usize,
    /// The output's columns: N, or I = N / 2 for SwiGLU.
    pub cols: usize,
    /// K, the reduction length.
    pub k: usize,
    pub bias: Option<&'a DeviceTensor>,
    pub residual: Option<&'a DeviceTensor>,
}

/// Checks `y = epilogue(x·Wᵀ)`'s operands as `gemm_bf16_into` needs them (bf16 `x [..., K]` and
/// `w [N, K]`, a bf16 or f32 `y` of the output shape, the epilogue's operand), naming `op` in
/// errors. cuBLASLt's launcher shares it, so both accept exactly the same calls.
pub(crate) fn check_operands<'a>(
    op: &'static str,
    x: &DeviceTensor,
    w: &DeviceTensor,
    epilogue: Epilogue<'a>,
    y: &DeviceTensor,
) -> Result<GemmOperands<'a>> {
    expect_same_dtype(op, x, DType::BF16)?;
    expect_same_dtype(op, w, DType::BF16)?;
    let out_dtype = y.dtype();
    y.expect_dtype(op, &[DType::F32, DType::BF16])?;
    let y_shape = output_shape(op, x.shape(), w.shape(), epilogue)?;
    expect_out(op, y, &y_shape, out_dtype)?;
    let (rows, cols) = y_shape.rows_cols(op)?;
    let (bias, residual) = match epilogue {
        Epilogue::Bias(b) => {
            expect_out(op, b, &Shape::new([cols]), DType::BF16)?;
            (Some(b), None)
        }
        Epilogue::SwiGluBias(b) => {
            expect_out(op, b, &Shape::new([2 * cols]), DType::BF16)?;
            (Some(b), None)
        }
        Epilogue::Residual(r) => {
            expect_out(op, r, &y_shape, out_dtype)?;
            (None, Some(r))
        }
        Epilogue::None | Epilogue::SwiGlu => (None, None),
    };
    Ok(GemmOperands {
        rows,
        cols,
        k: x.dims().last().copied().unwrap_or(0),
        bias,
        residual,
    })
}

/// `y = epilogue(x·Wᵀ)` into `y`: `x [..., K]` and `w [N, K]` bf16, `y` bf16 or f32 shaped as
/// `gemm_bf16_output_shape` says.
pub fn gemm_bf16_into(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    w: &DeviceTensor,
    epilogue: Epilogue<'_>,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "gemm_bf16";
    let GemmOperands {
        rows,
        cols,
        k: in_features,
        bias,
        residual,
    } = check_operands(OP, x, w, epilogue, y)?;
    let out_dtype = y.dtype();
    if y.numel() == 0 {
        return Ok(());
    }
    let to_i32 = |n: usize| {
        i32::try_from(n)
            .map(KernelArg::I32)
            .map_err(|_| Error::arg(OP, format!("size {n} exceeds the kernel's i32 range")))
    };
    let swiglu = epilogue.is_swiglu();
    let cols_per_block = if swiglu { TILE_N / 2 } else { TILE_N };
    let row_tiles = rows.div_ceil(TILE_M);
    if row_tiles > 65535 {
        return Err(Error::arg(
            OP,
            format!("{rows} rows exceed the grid's {} rows", 65535 * TILE_M),
        ));
    }
    let config = LaunchConfig {
        grid: (
            u32::try_from(cols.div_ceil(cols_per_block))
                .map_err(|_| Error::arg(OP, format!("{cols} columns exceed the grid")))?,
            row_tiles as u32,
            1,
        ),
        block: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let kernel = if swiglu {
        "gemm_bf16_swiglu_fwd"
    } else {
        "gemm_bf16_fwd"
    };
    let (bias, residual) = (optional_arg(bias), optional_arg(residual));
    dev.launch(
        &format!("{kernel}_{}", out_dtype.name()),
        config,
        &mut [
            KernelArg::In(&x.buf),
            KernelArg::In(&w.buf),
            bias,
            residual,
            KernelArg::Out(&mut y.buf),
            to_i32(rows)?,
            to_i32(cols)?,
            to_i32(in_features)?,
        ],
    )
}

/// An optional operand: a null device pointer tells the kernel the term is absent.
fn optional_arg(t: Option<&DeviceTensor>) -> KernelArg<'_> {
    t.map_or(KernelArg::U64(0), |t| KernelArg::In(&t.buf))
}

/// `y = epilogue(x·Wᵀ)` as a new `out_dtype` (bf16 or f32) tensor (see `gemm_bf16_into`).
pub fn gemm_bf16(
    dev: &dyn KernelBackend,
    x: &DeviceTensor,
    w: &DeviceTensor,
    epilogue: Epilogue<'_>,
    out_dtype: DType,
) -> Result<DeviceTensor> {
    let shape = gemm_bf16_output_shape(x.shape(), w.shape(), epilogue)?;
    let mut y = DeviceTensor::uninit(dev, shape, out_dtype)?;
    gemm_bf16_into(dev, x, w, epilogue, &mut y)?;
    Ok(y)
}
