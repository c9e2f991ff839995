//! Launchers for `kernels/fused_step.cu`: the recurrent-step fusion `y = norm(a [+ b [+ c]])`
//! (input injection or post-norm residual, then RMSNorm or LayerNorm over the last dimension) in
//! one pass, and its backward. The reference is `device::cpu::elementwise::inject_add_fwd`
//! followed by `device::cpu::norm::norm_fwd` (`residual_norm_fwd` for two terms), and `norm_bwd`.
//!
//! Every term, `y`, `dy` and `dx` share one shape `[..., D]` (D ≤ 1024) and one storage dtype (f32
//! or bf16), as do LayerNorm's weight and bias `[D]` and their gradients. The statistics are f32
//! `[rows, 2] = (mean, rstd)` (mean 0 for RMSNorm), the layout of `norm_fwd`'s. The backward
//! recomputes the sum from the same terms instead of reading a saved one; passing the saved sum
//! as the single term works as well.

use crate::device::cpu::norm::Norm;
use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{check_terms, expect_out, expect_same_dtype, i64_arg};
use crate::shape::Shape;

/// The launch bounds of every kernel in fused_step.cu: 8 warps, one row per warp.
const THREADS: u32 = 256;
const ROWS_PER_BLOCK: usize = (THREADS / 32) as usize;
/// The widest row the kernels hold in registers: 32 columns per lane.
pub const MAX_COLS: usize = 1024;
/// The most blocks of the forward and the RMS backward (16 per H100 SM; warps stride beyond).
const MAX_BLOCKS: usize = 132 * 16;
/// The most blocks of the LayerNorm backward: each writes a `2·D` f64 partial row of dweight and
/// dbias, so 2 per SM keeps the partials small next to the activations while filling the GPU.
const MAX_AFFINE_BLOCKS: usize = 132 * 2;

/// A device-side normalisation: `Norm::Rms { eps }` or `Norm::Layer { weight, bias, eps }`.
pub type StepNorm<'a> = Norm<&'a DeviceTensor>;

/// The forward's outputs: `y` in the terms' dtype and the f32 `[rows, 2]` statistics.
pub struct StepNormOutput {
    pub y: DeviceTensor,
    pub stats: DeviceTensor,
}

/// The backward's outputs: `dx` (what each term receives), and `(dweight, dbias)` for LayerNorm.
pub struct StepNormGrads {
    pub dx: DeviceTensor,
    pub affine: Option<(DeviceTensor, DeviceTensor)>,
}

/// The kernels' width classes: each holds rows of up to this many columns in registers
/// (`width / 32` per lane); a call uses the narrowest that fits.
const WIDTH_CLASSES: [usize; 3] = [128, 512, MAX_COLS];

/// The checked geometry of a call.
struct Rows {
    rows: usize,
    cols: usize,
    suffix: &'static str,
}

impl Rows {
    /// The kernel `step_<kind>_<direction>_d<width>_<dtype>` for this row width.
    fn kernel(&self, kind: &str, direction: &str) -> String {
        let width = WIDTH_CLASSES
            .into_iter()
            .find(|&w| self.cols <= w)
            .unwrap_or(MAX_COLS);
        format!("step_{kind}_{direction}_d{width}_{}", self.suffix)
    }
}

/// Checks 1 to 3 same-shaped, same-dtype f32/bf16 terms with D ≤ 1024, eps, and LayerNorm's
/// weight and bias.
fn check(op: &'static str, terms: &[&DeviceTensor], norm: &StepNorm<'_>) -> Result<Rows> {
    let suffix = check_terms(op, terms)?;
    let first = terms[0];
    let (rows, cols) = first.shape().rows_cols(op)?;
    if cols > MAX_COLS {
        return Err(Error::shape(
            op,
            format!("the last dimension is {cols}, the kernels hold at most {MAX_COLS}"),
        ));
    }
    let eps = norm.eps();
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::arg(
            op,
            format!("eps must be positive and finite, got {eps}"),
        ));
    }
    if let Norm::Layer { weight, bias, .. } = norm {
        for p in [weight, bias] {
            p.shape().expect_eq(op, &Shape::new([cols]))?;
            expect_same_dtype(op, p, first.dtype())?;
        }
    }
    Ok(Rows { rows, cols, suffix })
}

/// One warp per row, 8 rows a block, at most `max_blocks` blocks.
fn grid(rows: usize, max_blocks: usize) -> LaunchConfig {
    let blocks = rows.div_ceil(ROWS_PER_BLOCK).clamp(1, max_blocks);
    LaunchConfig::linear(blocks as u32, THREADS)
}

/// The three term buffers the kernels take; missing terms repeat the first (never read).
fn term_args<'a>(terms: &[&'a DeviceTensor]) -> [KernelArg<'a>; 3] {
    let at = |k: usize| {
        let t: &'a DeviceTensor = terms.get(k).copied().unwrap_or(terms[0]);
        KernelArg::In(&t.buf)
    };
    [at(0), at(1), at(2)]
}

/// `y = norm(a [+ b [+ c]])` into `y` and `stats` (f32 `[rows, 2]`).
pub fn step_norm_fwd_into(
    dev: &dyn KernelBackend,
    terms: &[&DeviceTensor],
    norm: &StepNorm<'_>,
    y: &mut DeviceTensor,
    stats: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "step_norm";
    let geometry = check(OP, terms, norm)?;
    let (rows, cols) = (geometry.rows, geometry.cols);
    expect_out(OP, y, terms[0].shape(), terms[0].dtype())?;
    expect_out(OP, stats, &Shape::new([rows, 2]), DType::F32)?;
    if rows * cols == 0 {
        return Ok(());
    }
    let [a, b, c] = term_args(terms);
    let mut args = vec![a, b, c];
    let kind = match norm {
        Norm::Rms { .. } => "rmsnorm",
        Norm::Layer { weight, bias, .. } => {
            args.extend([KernelArg::In(&weight.buf), KernelArg::In(&bias.buf)]);
            "layernorm"
        }
    };
    args.extend([
        KernelArg::Out(&mut y.buf),
        KernelArg::Out(&mut stats.buf),
        i64_arg(rows),
        KernelArg::I32(cols as i32),
        KernelArg::I32(terms.len() as i32),
        KernelArg::F32(norm.eps() as f32),
    ]);
    dev.launch(
        &geometry.kernel(kind, "fwd"),
        grid(rows, MAX_BLOCKS),
        &mut args,
    )
}

/// `norm(a [+ b [+ c]])` over the last dimension, with the statistics the backward needs.
pub fn step_norm_fwd(
    dev: &dyn KernelBackend,
    terms: &[&DeviceTensor],
    norm: &StepNorm<'_>,
) -> Result<StepNormOutput> {
    let Rows { rows, .. } = check("step_norm", terms, norm)?;
    let mut y = DeviceTensor::uninit(dev, terms[0].shape().clone(), terms[0].dtype())?;
    let mut stats = DeviceTensor::uninit(dev, [rows, 2], DType::F32)?;
    step_norm_fwd_into(dev, terms, norm, &mut y, &mut stats)?;
    Ok(StepNormOutput { y, stats })
}

/// Backward of `step_norm_fwd` into `dx` and, for LayerNorm, `affine = (dweight, dbias)` (which
/// must be given for LayerNorm and absent for RMSNorm). `stats` are the forward's.
pub fn step_norm_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    terms: &[&DeviceTensor],
    stats: &DeviceTensor,
    norm: &StepNorm<'_>,
    dx: &mut DeviceTensor,
    affine: Option<(&mut DeviceTensor, &mut DeviceTensor)>,
) -> Result<()> {
    const OP: &str = "step_norm backward";
    let geometry = check(OP, terms, norm)?;
    let (rows, cols, suffix) = (geometry.rows, geometry.cols, geometry.suffix);
    let (shape, dtype) = (terms[0].shape(), terms[0].dtype());
    dy.shape().expect_eq(OP, shape)?;
    expect_same_dtype(OP, dy, dtype)?;
    expect_out(OP, dx, shape, dtype)?;
    stats.shape().expect_eq(OP, &Shape::new([rows, 2]))?;
    expect_same_dtype(OP, stats, DType::F32)?;
    let [a, b, c] = term_args(terms);
    match (norm, affine) {
        (Norm::Rms { .. }, None) => {
            if rows * cols == 0 {
                return Ok(());
            }
            dev.launch(
                &geometry.kernel("rmsnorm", "bwd"),
                grid(rows, MAX_BLOCKS),
                &mut [
                    KernelArg::In(&dy.buf),
                    a,
                    b,
                    c,
                    KernelArg::In(&stats.buf),
                    KernelArg::Out(&mut dx.buf),
                    i64_arg(rows),
                    KernelArg::I32(cols as i32),
                    KernelArg::I32(terms.len() as i32),
                ],
            )
        }
        (Norm::Layer { weight, .. }, Some((dweight, dbias))) => {
            for g in [&*dweight, &*dbias] {
                expect_out(OP, g, &Shape::new([cols]), dtype)?;
            }
            if cols == 0 {
                return Ok(());
            }
            // With no rows the partials are all zero: one block of zeros, then the reduction.
            let cfg = grid(rows, MAX_AFFINE_BLOCKS);
            let blocks = cfg.grid.0 as usize;
            let mut partial = DeviceTensor::uninit(dev, [2, blocks, cols], DType::F64)?;
            dev.launch(
                &geometry.kernel("layernorm", "bwd"),
                cfg,
                &mut [
                    KernelArg::In(&dy.buf),
                    a,
                    b,
                    c,
                    KernelArg::In(&stats.buf),
                    KernelArg::In(&weight.buf),
                    KernelArg::Out(&mut dx.buf),
                    KernelArg::Out(&mut partial.buf),
                    i64_arg(rows),
                    KernelArg::I32(cols as i32),
                    KernelArg::I32(terms.len() as i32),
                ],
            )?;
            dev.launch(
                &format!("step_layernorm_affine_reduce_{suffix}"),
                LaunchConfig::linear(cols.div_ceil(THREADS as usize) as u32, THREADS),
                &mut [
                    KernelArg::In(&partial.buf),
                    KernelArg::Out(&mut dweight.buf),
                    KernelArg::Out(&mut dbias.buf),
                    KernelArg::I32(blocks as i32),
                    KernelArg::I32(cols as i32),
                ],
            )
        }
        (Norm::Rms { .. }, Some(_)) => Err(Error::arg(OP, "RMSNorm has no dweight or dbias")),
        (Norm::Layer { .. }, None) => {
            Err(Error::arg(OP, "LayerNorm needs dweight and dbias outputs"))
        }
    }
}

/// Backward of `step_norm_fwd`: the gradient of the sum (which every term receives) and, for
/// LayerNorm, dweight and dbias.
pub fn step_norm_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    terms: &[&DeviceTensor],
    stats: &DeviceTensor,
    norm: &StepNorm<'_>,
) -> Result<StepNormGrads> {
    let Rows { cols, .. } = check("step_norm backward", terms, norm)?;
    let (shape, dtype) = (terms[0].shape().clone(), terms[0].dtype());
    let mut dx = DeviceTensor::uninit(dev, shape, dtype)?;
    let mut affine = match norm {
        Norm::Rms { .. } => None,
        Norm::Layer { .. } => Some((
            DeviceTensor::uninit(dev, [cols], dtype)?,
            DeviceTensor::uninit(dev, [cols], dtype)?,
        )),
    };
    let outs = affine.as_mut().map(|(w, b)| (w, b));
    step_norm_bwd_into(dev, dy, terms, stats, norm, &mut dx, outs)?;
    Ok(StepNormGrads { dx, affine })
}
