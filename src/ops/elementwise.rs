//! `add`, `inject_add`, `mul`, `scale`.

use crate::device::cpu::elementwise::{add_tensors, inject_add_fwd, mul_tensors, scale_tensor};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl Tape {
    /// `a + b` (same shape).
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = add_tensors(a.value(), b.value())?;
        self.record("add", y, &[a, b], |g| {
            Ok(vec![Some(g.clone()), Some(g.clone())])
        })
    }

    /// Input injection: the sum of 1 to 3 same-shaped terms, `z + y + x`.
    pub fn inject_add(&self, terms: &[&Var]) -> Result<Var> {
        let values: Vec<_> = terms.iter().map(|v| v.value()).collect();
        let y = inject_add_fwd(&values)?;
        let n = terms.len();
        self.record("inject_add", y, terms, move |g| {
            Ok(vec![Some(g.clone()); n])
        })
    }

    /// `a ⊙ b` (same shape).
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = mul_tensors(a.value(), b.value())?;
        let (av, bv) = (a.value().clone(), b.value().clone());
        self.record("mul", y, &[a, b], move |g| {
            Ok(vec![Some(mul_tensors(g, &bv)?), Some(mul_tensors(g, &av)?)])
        })
    }

    /// `s · a` for a constant `s`.
    pub fn scale(&self, a: &Var, s: f64) -> Result<Var> {
        let y = scale_tensor(a.value(), s)?;
        self.record("scale", y, &[a], move |g| {
            Ok(vec![Some(scale_tensor(g, s)?)])
        })
    }
}
