//! `linear` (PyTorch's `F.linear`, weight `[out, in]`) and batched `matmul`.
//!
//! Backward computes only the gradients of inputs that require one: the products are the most
//! expensive part of a step, and weights or inputs are often constants.

use crate::device::cpu::linear::{
    linear_bwd_bias, linear_bwd_input, linear_bwd_weight, linear_fwd, matmul_bwd_a, matmul_bwd_b,
    matmul_fwd,
};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl Tape {
    /// `y = x·Wᵀ + bias`: `x [..., in]`, `w [out, in]`, `bias [out]` → `[..., out]`. The weight
    /// gradient sums over every leading dimension of `x`.
    pub fn linear(&self, x: &Var, w: &Var, bias: Option<&Var>) -> Result<Var> {
        let y = linear_fwd(x.value(), w.value(), bias.map(Var::value))?;
        let x_shape = x.shape().clone();
        let x_val = w.requires_grad().then(|| x.value().clone());
        let w_val = x.requires_grad().then(|| w.value().clone());
        let bias_needs_grad = bias.is_some_and(Var::requires_grad);
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        self.record("linear", y, &inputs, move |g| {
            let dx = w_val
                .as_ref()
                .map(|w| linear_bwd_input(g, w, &x_shape))
                .transpose()?;
            let dw = x_val
                .as_ref()
                .map(|x| linear_bwd_weight(g, x))
                .transpose()?;
            let mut grads = vec![dx, dw];
            if has_bias {
                grads.push(bias_needs_grad.then(|| linear_bwd_bias(g)).transpose()?);
            }
            Ok(grads)
        })
    }

    /// Batched `a·b`: `a [..., m, k]` with `b [..., k, n]` of the same batch dimensions, or a 2-D
    /// `b [k, n]` shared by every batch item (its gradient then sums over the batch).
    pub fn matmul(&self, a: &Var, b: &Var) -> Result<Var> {
        let y = matmul_fwd(a.value(), b.value())?;
        let (a_shape, b_shape) = (a.shape().clone(), b.shape().clone());
        let a_val = b.requires_grad().then(|| a.value().clone());
        let b_val = a.requires_grad().then(|| b.value().clone());
        self.record("matmul", y, &[a, b], move |g| {
            let da = b_val
                .as_ref()
                .map(|b| matmul_bwd_a(g, b, &a_shape))
                .transpose()?;
            let db = a_val
                .as_ref()
                .map(|a| matmul_bwd_b(g, a, &b_shape))
                .transpose()?;
            Ok(vec![da, db])
        })
    }
}
