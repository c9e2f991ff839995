//! Shape and layout ops: `reshape`, the last-two-dims transpose (TRM-MLP's token mixing),
//! `concat`, `split`, `narrow` (slicing the puzzle prefix off), and `argmax`.

use crate::device::cpu::layout as cpu;
use crate::error::{Error, Result};
use crate::kernels::{layout as kernels, reduce as reduce_kernels};
use crate::ops::dispatch::{on_device, refs, Compute};
use crate::shape::Shape;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn transpose_last2_fwd(compute: &Compute, x: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::transpose_last2_fwd(x),
        Some(dev) => on_device(dev, x, |dev, x| kernels::transpose_last2_fwd(dev, &x)),
    }
}

fn concat_fwd(compute: &Compute, xs: &[&Tensor], axis: isize) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::concat_fwd(xs, axis),
        Some(dev) => on_device(dev, xs, |dev, xs| {
            kernels::concat_fwd(dev, &refs(&xs), axis)
        }),
    }
}

/// The backward of `concat`: the consecutive slices of `dy` along `axis`, one per input of length
/// `lens[i]`.
fn concat_bwd(compute: &Compute, dy: &Tensor, axis: isize, lens: &[usize]) -> Result<Vec<Tensor>> {
    let starts = lens.iter().scan(0, |start, &len| {
        *start += len;
        Some((*start - len, len))
    });
    match compute.kernels() {
        None => starts
            .map(|(start, len)| cpu::narrow_fwd(dy, axis, start, len))
            .collect(),
        Some(dev) => on_device(dev, dy, |dev, dy| {
            starts
                .map(|(start, len)| kernels::narrow_fwd(dev, &dy, axis, start, len))
                .collect::<Result<Vec<_>>>()
        }),
    }
}

fn narrow_fwd(
    compute: &Compute,
    x: &Tensor,
    axis: isize,
    start: usize,
    len: usize,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::narrow_fwd(x, axis, start, len),
        Some(dev) => on_device(dev, x, |dev, x| {
            kernels::narrow_fwd(dev, &x, axis, start, len)
        }),
    }
}

fn narrow_bwd(
    compute: &Compute,
    dy: &Tensor,
    x_shape: &Shape,
    axis: isize,
    start: usize,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::narrow_bwd(dy, x_shape, axis, start),
        Some(dev) => on_device(dev, dy, |dev, dy| {
            kernels::narrow_bwd(dev, &dy, x_shape, axis, start)
        }),
    }
}

fn argmax_fwd(compute: &Compute, x: &Tensor, axis: isize) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::argmax_fwd(x, axis),
        Some(dev) => on_device(dev, x, |dev, x| reduce_kernels::argmax_fwd(dev, &x, axis)),
    }
}

impl Tape {
    /// The same data viewed with a new shape of the same element count. Free: no copy, on every
    /// backend.
    pub fn reshape(&self, x: &Var, shape: impl Into<Shape>) -> Result<Var> {
        let y = x.value().reshape(shape)?;
        let in_shape = x.shape().clone();
        self.record("reshape", y, &[x], move |g| {
            Ok(vec![Some(g.reshape(in_shape.clone())?)])
        })
    }

    /// Swaps the last two dimensions, `[..., a, b]` → `[..., b, a]` (a copy). TRM-MLP uses it to
    /// turn `[B, L, D]` into `[B, D, L]`, so its token-mixing SwiGLU and RMSNorm act over L.
    pub fn transpose_last2(&self, x: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = transpose_last2_fwd(&compute, x.value())?;
        self.record("transpose_last2", y, &[x], move |g| {
            Ok(vec![Some(transpose_last2_fwd(&compute, g)?)])
        })
    }

    /// Joins `xs` along `axis` (negative counts from the end); the other dimensions must agree.
    pub fn concat(&self, xs: &[&Var], axis: isize) -> Result<Var> {
        let compute = self.compute().clone();
        let values: Vec<&Tensor> = xs.iter().map(|v| v.value()).collect();
        let y = concat_fwd(&compute, &values, axis)?;
        let ax = y.shape().axis("concat", axis)?;
        let lens: Vec<usize> = xs.iter().map(|v| v.dims()[ax]).collect();
        self.record("concat", y, xs, move |g| {
            Ok(concat_bwd(&compute, g, axis, &lens)?
                .into_iter()
                .map(Some)
                .collect())
        })
    }

    /// Cuts `x` along `axis` into consecutive pieces of `sizes`, which must add up to the axis
    /// length. Each piece is differentiable on its own; pieces left unused get a zero gradient.
    pub fn split(&self, x: &Var, sizes: &[usize], axis: isize) -> Result<Vec<Var>> {
        let n = x.shape().dim("split", axis)?;
        let total: usize = sizes.iter().sum();
        if total != n {
            return Err(Error::arg(
                "split",
                format!(
                    "sizes {sizes:?} add up to {total}, but axis {axis} of {} has {n}",
                    x.shape()
                ),
            ));
        }
        let mut start = 0;
        let mut pieces = Vec::with_capacity(sizes.len());
        for &len in sizes {
            pieces.push(self.narrow(x, axis, start, len)?);
            start += len;
        }
        Ok(pieces)
    }

    /// The slice `start..start + len` of `axis`, e.g. `narrow(logits, 1, P, S)` drops the
    /// puzzle prefix. Backward places the gradient back into zeros.
    pub fn narrow(&self, x: &Var, axis: isize, start: usize, len: usize) -> Result<Var> {
        let compute = self.compute().clone();
        let y = narrow_fwd(&compute, x.value(), axis, start, len)?;
        let x_shape = x.shape().clone();
        self.record("narrow", y, &[x], move |g| {
            Ok(vec![Some(narrow_bwd(&compute, g, &x_shape, axis, start)?)])
        })
    }

    /// The index of the largest element along `axis` (removed), as an i32 tensor; ties go to
    /// the first index. Not differentiable, so it returns a plain tensor and records nothing.
    pub fn argmax(&self, x: &Var, axis: isize) -> Result<Tensor> {
        argmax_fwd(self.compute(), x.value(), axis)
    }
}
