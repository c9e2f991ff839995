//! Launchers for `kernels/elementwise.cu`: input injection (`add` is its two-term case), `mul`
//! and `scale`, on f32 or bf16 tensors. Each validates like `device::cpu::elementwise`; the
//! `_into` variants write a caller's tensor (tests pass one poisoned with NaN), the others
//! allocate.
//!
//! This file also holds the launch helpers the other basic launchers (`activation`, `reduce`,
//! `layout`) share: dtype suffixes, output checks and grid sizes.

use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;

/// Threads per block of every kernel in elementwise.cu, activation.cu, reduce.cu and layout.cu:
/// their `__launch_bounds__`, which reduce.cu and layout.cu also rely on for their tiling.
pub(crate) const THREADS: u32 = 256;

/// The most blocks a grid-stride kernel gets: 16 per SM of an H100 (132 SMs) keeps every SM busy
/// while each thread still loops over several elements for large tensors.
pub(crate) const MAX_BLOCKS: usize = 132 * 16;

/// A one-dimensional grid of `work_items` blocks' worth of work (at least 1, at most
/// `MAX_BLOCKS`; the kernels stride over the rest).
pub(crate) fn grid_for_blocks(work_items: usize) -> LaunchConfig {
    LaunchConfig::linear(work_items.clamp(1, MAX_BLOCKS) as u32, THREADS)
}

/// A grid for an elementwise grid-stride kernel over `n` elements.
pub(crate) fn grid_for_elements(n: usize) -> LaunchConfig {
    grid_for_blocks(n.div_ceil(THREADS as usize))
}

/// The kernel-name suffix of a storage dtype: `"f32"` or `"bf16"`; other dtypes have no kernels.
pub(crate) fn dtype_suffix(op: &'static str, t: &DeviceTensor) -> Result<&'static str> {
    t.expect_dtype(op, &[DType::F32, DType::BF16])?;
    Ok(t.dtype().name())
}

/// Errors unless `t` has the dtype `dtype` (every operand of an op shares one dtype).
pub(crate) fn expect_same_dtype(op: &'static str, t: &DeviceTensor, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        return Err(Error::DType {
            op,
            expected: dtype.name(),
            got: t.dtype(),
        });
    }
    Ok(())
}

/// Errors unless a caller's output tensor has the shape and dtype the op produces.
pub(crate) fn expect_out(
    op: &'static str,
    out: &DeviceTensor,
    shape: &Shape,
    dtype: DType,
) -> Result<()> {
    out.shape().expect_eq(op, shape)?;
    expect_same_dtype(op, out, dtype)
}

/// A size as the kernels' `long long` argument.
pub(crate) fn i64_arg(n: usize) -> KernelArg<'static> {
    KernelArg::I64(n as i64)
}

/// Launches `name` with the arguments the layout.cu and reduce.cu kernels take: one input, one
/// output, then `sizes` as `long long`s.
pub(crate) fn launch_in_out(
    dev: &dyn KernelBackend,
    name: &str,
    grid: LaunchConfig,
    x: &DeviceTensor,
    y: &mut DeviceTensor,
    sizes: &[usize],
) -> Result<()> {
    let mut args = vec![KernelArg::In(&x.buf), KernelArg::Out(&mut y.buf)];
    args.extend(sizes.iter().map(|&n| i64_arg(n)));
    dev.launch(name, grid, &mut args)
}

/// Checks 1 to 3 same-shaped, same-dtype f32/bf16 terms; returns the kernel suffix.
pub(crate) fn check_terms(op: &'static str, terms: &[&DeviceTensor]) -> Result<&'static str> {
    let first = terms
        .first()
        .ok_or_else(|| Error::arg(op, "needs at least one term"))?;
    if terms.len() > 3 {
        return Err(Error::arg(
            op,
            format!("takes 1 to 3 terms, got {}", terms.len()),
        ));
    }
    let suffix = dtype_suffix(op, first)?;
    for t in &terms[1..] {
        t.shape().expect_eq(op, first.shape())?;
        expect_same_dtype(op, t, first.dtype())?;
    }
    Ok(suffix)
}

/// The sum of 1 to 3 same-shaped terms, left to right (`(z + y) + x`), into `out`.
pub fn inject_add_fwd_into(
    dev: &dyn KernelBackend,
    terms: &[&DeviceTensor],
    out: &mut DeviceTensor,
) -> Result<()> {
    sum_of_terms_into(dev, "inject_add", terms, out)
}

/// The sum of 1 to 3 same-shaped terms, the input injection `z + y + x` of HRM and TRM.
pub fn inject_add_fwd(dev: &dyn KernelBackend, terms: &[&DeviceTensor]) -> Result<DeviceTensor> {
    sum_of_terms(dev, "inject_add", terms)
}

/// `a + b` into `out`.
pub fn add_fwd_into(
    dev: &dyn KernelBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<()> {
    sum_of_terms_into(dev, "add", &[a, b], out)
}

/// `acc += g` in place: `acc` f32, `g` of its shape, f32 or bf16 (widened exactly). How a
/// gradient is added into the f32 master gradient arena: one launch in either dtype (`add` with
/// the output aliasing the accumulator, or `accumulate_f32_bf16`).
pub fn accumulate_into(
    dev: &dyn KernelBackend,
    acc: &mut DeviceTensor,
    g: &DeviceTensor,
) -> Result<()> {
    const OP: &str = "accumulate";
    expect_same_dtype(OP, acc, DType::F32)?;
    g.shape().expect_eq(OP, acc.shape())?;
    match g.dtype() {
        DType::F32 => {
            let sum = acc.clone();
            add_fwd_into(dev, &sum, g, acc)
        }
        DType::BF16 if g.numel() == 0 => Ok(()),
        DType::BF16 => dev.launch(
            "accumulate_f32_bf16",
            grid_for_elements(g.numel()),
            &mut [
                KernelArg::Out(&mut acc.buf),
                KernelArg::In(&g.buf),
                i64_arg(g.numel()),
            ],
        ),
        other => Err(Error::DType {
            op: OP,
            expected: "an f32 or bf16 gradient",
            got: other,
        }),
    }
}

/// `a + b` for two tensors of one shape and dtype.
pub fn add_fwd(
    dev: &dyn KernelBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
) -> Result<DeviceTensor> {
    sum_of_terms(dev, "add", &[a, b])
}

fn sum_of_terms(
    dev: &dyn KernelBackend,
    op: &'static str,
    terms: &[&DeviceTensor],
) -> Result<DeviceTensor> {
    check_terms(op, terms)?;
    let mut out = DeviceTensor::uninit(dev, terms[0].shape().clone(), terms[0].dtype())?;
    sum_of_terms_into(dev, op, terms, &mut out)?;
    Ok(out)
}

fn sum_of_terms_into(
    dev: &dyn KernelBackend,
    op: &'static str,
    terms: &[&DeviceTensor],
    out: &mut DeviceTensor,
) -> Result<()> {
    let suffix = check_terms(op, terms)?;
    expect_out(op, out, terms[0].shape(), terms[0].dtype())?;
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    // Missing terms repeat the first; the kernel reads only `terms.len()` of them.
    let term = |k: usize| KernelArg::In(&terms.get(k).unwrap_or(&terms[0]).buf);
    dev.launch(
        &format!("inject_add_fwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            term(0),
            term(1),
            term(2),
            KernelArg::Out(&mut out.buf),
            i64_arg(n),
            KernelArg::I32(terms.len() as i32),
        ],
    )
}

/// `a ⊙ b` into `out`.
pub fn mul_fwd_into(
    dev: &dyn KernelBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "mul";
    let suffix = dtype_suffix(OP, a)?;
    b.shape().expect_eq(OP, a.shape())?;
    expect_same_dtype(OP, b, a.dtype())?;
    expect_out(OP, out, a.shape(), a.dtype())?;
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("mul_fwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&a.buf),
            KernelArg::In(&b.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(n),
        ],
    )
}

/// `a ⊙ b` for two tensors of one shape and dtype.
pub fn mul_fwd(
    dev: &dyn KernelBackend,
    a: &DeviceTensor,
    b: &DeviceTensor,
) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, a.shape().clone(), a.dtype())?;
    mul_fwd_into(dev, a, b, &mut out)?;
    Ok(out)
}

/// `s · a` into `out`. `s` is rounded to f32, the compute type, as the reference does.
pub fn scale_fwd_into(
    dev: &dyn KernelBackend,
    a: &DeviceTensor,
    s: f64,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "scale";
    let suffix = dtype_suffix(OP, a)?;
    expect_out(OP, out, a.shape(), a.dtype())?;
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("scale_fwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&a.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(n),
            KernelArg::F32(s as f32),
        ],
    )
}

/// `s · a`.
pub fn scale_fwd(dev: &dyn KernelBackend, a: &DeviceTensor, s: f64) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, a.shape().clone(), a.dtype())?;
    scale_fwd_into(dev, a, s, &mut out)?;
    Ok(out)
}

/// `x` converted to `dtype` (f32 ↔ bf16; f32 → bf16 rounds to nearest even, as
/// `Tensor::to_dtype`). The same dtype is a device copy.
pub fn cast(dev: &dyn KernelBackend, x: &DeviceTensor, dtype: DType) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, x.shape().clone(), dtype)?;
    cast_into(dev, x, &mut out)?;
    Ok(out)
}

/// `x` converted to `out`'s dtype, into `out` (same shape): what refreshes a bf16 mirror of the
/// f32 master weights in place, one launch over the whole arena.
pub fn cast_into(dev: &dyn KernelBackend, x: &DeviceTensor, out: &mut DeviceTensor) -> Result<()> {
    const OP: &str = "cast";
    let from = dtype_suffix(OP, x)?;
    let dtype = out.dtype();
    out.shape().expect_eq(OP, x.shape())?;
    if dtype == x.dtype() {
        return dev.copy(&mut out.buf, &x.buf);
    }
    let to = match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        other => {
            return Err(Error::DType {
                op: OP,
                expected: "f32 or bf16",
                got: other,
            })
        }
    };
    if x.numel() == 0 {
        return Ok(());
    }
    dev.launch(
        &format!("cast_to_{to}_{from}"),
        grid_for_elements(x.numel()),
        &mut [
            KernelArg::In(&x.buf),
            KernelArg::Out(&mut out.buf),
            i64_arg(x.numel()),
        ],
    )
}
