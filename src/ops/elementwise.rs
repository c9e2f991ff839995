//! `add`, `inject_add`, `mul`, `scale`.

use crate::device::cpu::elementwise as cpu;
use crate::error::Result;
use crate::kernels::elementwise as kernels;
use crate::ops::dispatch::{on_device, refs, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn add_tensors(compute: &Compute, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::add_tensors(a, b),
        Some(dev) => on_device(dev, (a, b), |dev, (a, b)| kernels::add_fwd(dev, &a, &b)),
    }
}

/// The sum of 1 to 3 same-shaped terms, left to right.
fn sum_of_terms(compute: &Compute, terms: &[&Tensor]) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::inject_add_fwd(terms),
        Some(dev) => on_device(dev, terms, |dev, terms| {
            kernels::inject_add_fwd(dev, &refs(&terms))
        }),
    }
}

fn mul_tensors(compute: &Compute, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::mul_tensors(a, b),
        Some(dev) => on_device(dev, (a, b), |dev, (a, b)| kernels::mul_fwd(dev, &a, &b)),
    }
}

fn scale_tensor(compute: &Compute, a: &Tensor, s: f64) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::scale_tensor(a, s),
        Some(dev) => on_device(dev, a, |dev, a| kernels::scale_fwd(dev, &a, s)),
    }
}

impl Tape {
    /// `a + b` (same shape).
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = add_tensors(self.compute(), a.value(), b.value())?;
        self.record("add", y, &[a, b], |g| {
            Ok(vec![Some(g.clone()), Some(g.clone())])
        })
    }

    /// Input injection: the sum of 1 to 3 same-shaped terms, `z + y + x`.
    pub fn inject_add(&self, terms: &[&Var]) -> Result<Var> {
        let values: Vec<_> = terms.iter().map(|v| v.value()).collect();
        let y = sum_of_terms(self.compute(), &values)?;
        let n = terms.len();
        self.record("inject_add", y, terms, move |g| {
            Ok(vec![Some(g.clone()); n])
        })
    }

    /// `a ⊙ b` (same shape).
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = mul_tensors(&compute, a.value(), b.value())?;
        let (av, bv) = (a.value().clone(), b.value().clone());
        self.record("mul", y, &[a, b], move |g| {
            Ok(vec![
                Some(mul_tensors(&compute, g, &bv)?),
                Some(mul_tensors(&compute, g, &av)?),
            ])
        })
    }

    /// `s · a` for a constant `s`.
    pub fn scale(&self, a: &Var, s: f64) -> Result<Var> {
        let compute = self.compute().clone();
        let y = scale_tensor(&compute, a.value(), s)?;
        self.record("scale", y, &[a], move |g| {
            Ok(vec![Some(scale_tensor(&compute, g, s)?)])
        })
    }
}
