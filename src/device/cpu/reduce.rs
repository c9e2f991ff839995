//! Reductions: the sum of all elements, and sum or mean over one axis. Sums accumulate in f64 so
//! the reference does not depend on summation order.

use crate::device::cpu::collect_with;
use crate::dtype::Real;
use crate::error::Result;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::with_real;

/// The sum of every element, as a scalar tensor of the input's dtype.
pub fn sum_all_fwd(x: &Tensor) -> Result<Tensor> {
    with_real!(x, "sum_all", |v| {
        let s: f64 = v.iter().map(|a| a.f64()).sum();
        Ok(Tensor::from_real(
            vec![T::of(s)],
            Shape::scalar(),
            x.dtype(),
        ))
    })
}

/// Sum over `axis` (removed from the shape), optionally divided by its length (the mean).
pub fn sum_axis_fwd(x: &Tensor, axis: isize, mean: bool) -> Result<Tensor> {
    let op = if mean { "mean" } else { "sum" };
    let (outer, n, inner) = x.shape().around(op, axis)?;
    let a = x.shape().axis(op, axis)?;
    let mut dims = x.dims().to_vec();
    dims.remove(a);
    let div = if mean { n.max(1) as f64 } else { 1.0 };
    with_real!(x, op, |v| Ok(Tensor::from_real(
        collect_with(outer * inner, |o| {
            let (i, j) = (o / inner, o % inner);
            let s: f64 = (0..n).map(|k| v[(i * n + k) * inner + j].f64()).sum();
            T::of(s / div)
        }),
        dims.clone(),
        x.dtype()
    )))
}

/// Backward of `sum_axis_fwd`: the output gradient broadcast back along `axis` (and divided by
/// its length for the mean).
pub fn sum_axis_bwd(dy: &Tensor, x_shape: &Shape, axis: isize, mean: bool) -> Result<Tensor> {
    let op = if mean { "mean" } else { "sum" };
    let (outer, n, inner) = x_shape.around(op, axis)?;
    let div = if mean { n.max(1) as f64 } else { 1.0 };
    with_real!(dy, op, |g| Ok(Tensor::from_real(
        collect_with(outer * n * inner, |e| {
            let (i, j) = (e / (n * inner), e % inner);
            T::of(g[i * inner + j].f64() / div)
        }),
        x_shape.clone(),
        dy.dtype()
    )))
}
