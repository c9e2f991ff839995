//! `sum_all`, `sum` and `mean` over an axis.

use crate::device::cpu::reduce::{sum_all_fwd, sum_axis_bwd, sum_axis_fwd};
use crate::error::Result;
use crate::shape::Shape;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

impl Tape {
    /// The sum of every element, as a scalar.
    pub fn sum_all(&self, x: &Var) -> Result<Var> {
        let y = sum_all_fwd(x.value())?;
        let (shape, dtype) = (x.shape().clone(), x.dtype());
        self.record("sum_all", y, &[x], move |g| {
            Ok(vec![Some(Tensor::full(shape.clone(), g.item()?, dtype))])
        })
    }

    /// Sum over `axis` (negative counts from the end); the axis is removed.
    pub fn sum(&self, x: &Var, axis: isize) -> Result<Var> {
        self.reduce_axis(x, axis, false)
    }

    /// Mean over `axis`; the axis is removed.
    pub fn mean(&self, x: &Var, axis: isize) -> Result<Var> {
        self.reduce_axis(x, axis, true)
    }

    fn reduce_axis(&self, x: &Var, axis: isize, mean: bool) -> Result<Var> {
        let y = sum_axis_fwd(x.value(), axis, mean)?;
        let shape: Shape = x.shape().clone();
        self.record(if mean { "mean" } else { "sum" }, y, &[x], move |g| {
            Ok(vec![Some(sum_axis_bwd(g, &shape, axis, mean)?)])
        })
    }
}
