//! `cast`: a value in another float storage type (f32 ↔ bf16), the `.to(dtype)` of the official
//! bf16 autocast. f32 → bf16 rounds to nearest even on every compute (`Tensor::to_dtype`, the
//! `cast_to_bf16_f32` kernel), so the CPU reference and the kernels round alike.
//!
//! The gradient flows back cast to the input's dtype: a bf16 activation made from an f32 value
//! (the puzzle rows) hands SignSGD an f32 gradient, and an f32 head output read from bf16
//! activations hands a bf16 gradient to the layers below.

use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::elementwise as kernels;
use crate::ops::dispatch::{on_device, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// `t` in `dtype`, computed where `compute` runs (the same tensor when it already has it).
pub fn cast_tensor(compute: &Compute, t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        return Ok(t.clone());
    }
    match compute.kernels() {
        None => t.to_dtype(dtype),
        Some(dev) => on_device(dev, t, |dev, t| kernels::cast(dev, &t, dtype)),
    }
}

impl Tape {
    /// `x` stored as `dtype` (f32 or bf16); no op and no record when it already is.
    pub fn cast(&self, x: &Var, dtype: DType) -> Result<Var> {
        if x.dtype() == dtype {
            return Ok(x.clone());
        }
        let compute = self.compute().clone();
        let y = cast_tensor(&compute, x.value(), dtype)?;
        let from = x.dtype();
        self.record("cast", y, &[x], move |g| {
            Ok(vec![Some(cast_tensor(&compute, g, from)?)])
        })
    }
}
