//! Shape and layout ops: `reshape`, the last-two-dims transpose (TRM-MLP's token mixing),
//! `concat`, `split`, `narrow` (slicing the puzzle prefix off), and `argmax`.

use crate::device::cpu::layout::{
    argmax_fwd, concat_fwd, narrow_bwd, narrow_fwd, transpose_last2_fwd,
};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

impl Tape {
    /// The same data viewed with a new shape of the same element count. Free: no copy.
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
        let y = transpose_last2_fwd(x.value())?;
        self.record("transpose_last2", y, &[x], |g| {
            Ok(vec![Some(transpose_last2_fwd(g)?)])
        })
    }

    /// Joins `xs` along `axis` (negative counts from the end); the other dimensions must agree.
    pub fn concat(&self, xs: &[&Var], axis: isize) -> Result<Var> {
        let values: Vec<&Tensor> = xs.iter().map(|v| v.value()).collect();
        let y = concat_fwd(&values, axis)?;
        let ax = y.shape().axis("concat", axis)?;
        let sizes: Vec<usize> = xs.iter().map(|v| v.dims()[ax]).collect();
        self.record("concat", y, xs, move |g| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for &len in &sizes {
                grads.push(Some(narrow_fwd(g, axis, start, len)?));
                start += len;
            }
            Ok(grads)
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
        let y = narrow_fwd(x.value(), axis, start, len)?;
        let x_shape = x.shape().clone();
        self.record("narrow", y, &[x], move |g| {
            Ok(vec![Some(narrow_bwd(g, &x_shape, axis, start)?)])
        })
    }

    /// The index of the largest element along `axis` (removed), as an i32 tensor; ties go to
    /// the first index. Not differentiable, so it returns a plain tensor and records nothing.
    pub fn argmax(&self, x: &Var, axis: isize) -> Result<Tensor> {
        argmax_fwd(x.value(), axis)
    }
}
