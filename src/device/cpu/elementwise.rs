//! Elementwise arithmetic: `add`, `inject_add` (the 2- and 3-way sums of input injection,
//! `z + y + x`), `mul` and `scale`. Backward of each is a handful of elementwise products,
//! computed in `ops::elementwise` with these same functions.

use crate::device::cpu::collect_with;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::{with_real, with_real2};

/// `a + b` for two tensors of one shape and dtype.
pub fn add_tensors(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.shape().expect_eq("add", b.shape())?;
    with_real2!(a, b, "add", |x, y| Ok(Tensor::from_real(
        collect_with(x.len(), |i| x[i] + y[i]),
        a.shape().clone(),
        a.dtype()
    )))
}

/// `a ⊙ b` for two tensors of one shape and dtype.
pub fn mul_tensors(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.shape().expect_eq("mul", b.shape())?;
    with_real2!(a, b, "mul", |x, y| Ok(Tensor::from_real(
        collect_with(x.len(), |i| x[i] * y[i]),
        a.shape().clone(),
        a.dtype()
    )))
}

/// `s · a`.
pub fn scale_tensor(a: &Tensor, s: f64) -> Result<Tensor> {
    with_real!(a, "scale", |x| {
        let s = <T as crate::dtype::Real>::of(s);
        Ok(Tensor::from_real(
            collect_with(x.len(), |i| x[i] * s),
            a.shape().clone(),
            a.dtype(),
        ))
    })
}

/// The sum of 1 to 3 same-shaped tensors, the input injection `z + y + x` of HRM and TRM. The
/// terms are added left to right, as the official `(z + y) + x`.
pub fn inject_add_fwd(terms: &[&Tensor]) -> Result<Tensor> {
    let (first, rest) = terms
        .split_first()
        .ok_or_else(|| Error::arg("inject_add", "needs at least one term"))?;
    if rest.len() > 2 {
        return Err(Error::arg(
            "inject_add",
            format!("takes 1 to 3 terms, got {}", terms.len()),
        ));
    }
    let mut acc = (*first).clone();
    for t in rest {
        acc = add_tensors(&acc, t)?;
    }
    Ok(acc)
}
