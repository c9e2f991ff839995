//! `sum_all`, `sum` and `mean` over an axis.

use crate::device::cpu::reduce as cpu;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::reduce as kernels;
use crate::ops::dispatch::{on_device, Compute};
use crate::shape::Shape;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn sum_all_fwd(compute: &Compute, x: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::sum_all_fwd(x),
        Some(dev) => on_device(dev, x, |dev, x| kernels::sum_all_fwd(dev, &x)),
    }
}

/// The scalar gradient `dy` broadcast to `shape` (in `dtype`).
fn sum_all_bwd(compute: &Compute, dy: &Tensor, shape: &Shape, dtype: DType) -> Result<Tensor> {
    match compute.kernels() {
        None => Ok(Tensor::full(shape.clone(), dy.item()?, dtype)),
        Some(dev) => on_device(dev, dy, |dev, dy| kernels::sum_all_bwd(dev, &dy, shape)),
    }
}

fn sum_axis_fwd(compute: &Compute, x: &Tensor, axis: isize, mean: bool) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::sum_axis_fwd(x, axis, mean),
        Some(dev) => on_device(dev, x, |dev, x| kernels::sum_axis_fwd(dev, &x, axis, mean)),
    }
}

fn sum_axis_bwd(
    compute: &Compute,
    dy: &Tensor,
    shape: &Shape,
    axis: isize,
    mean: bool,
) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::sum_axis_bwd(dy, shape, axis, mean),
        Some(dev) => on_device(dev, dy, |dev, dy| {
            kernels::sum_axis_bwd(dev, &dy, shape, axis, mean)
        }),
    }
}

impl Tape {
    /// The sum of every element, as a scalar.
    pub fn sum_all(&self, x: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = sum_all_fwd(&compute, x.value())?;
        let (shape, dtype) = (x.shape().clone(), x.dtype());
        self.record("sum_all", y, &[x], move |g| {
            Ok(vec![Some(sum_all_bwd(&compute, g, &shape, dtype)?)])
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
        let compute = self.compute().clone();
        let y = sum_axis_fwd(&compute, x.value(), axis, mean)?;
        let shape: Shape = x.shape().clone();
        self.record(if mean { "mean" } else { "sum" }, y, &[x], move |g| {
            Ok(vec![Some(sum_axis_bwd(&compute, g, &shape, axis, mean)?)])
        })
    }
}
