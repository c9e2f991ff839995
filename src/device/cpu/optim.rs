//! The optimizer updates on host tensors: the reference that `kernels/optim.cu` repeats element
//! for element. `optim::{AdamAtan2, AdamW, SignSgd, Ema}` hold the state and the schedule and call
//! these on host parameters, the kernels on device ones.
//!
//! Per-step scalars are computed in f64 and rounded to the compute type, as the official kernels
//! do; f32 (and bf16-gradient) parameters compute in f32, f64 parameters in f64.

use crate::device::cpu::sparse_embedding::{sum_rows_by_id, table_dims};
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::tensor::{RealDataMut, Tensor};
use crate::with_real2;
use rayon::prelude::*;

/// The hyperparameters of one Adam step and the direction it follows, given the first moment `m`
/// and the bias-corrected `√v̂`.
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    /// `Some(ε)`: AdamW's `m / (√v̂ + ε)`; `None`: AdamATan2's `atan2(m, √v̂)`, bounded, no ε.
    pub eps: Option<f64>,
}

/// The per-step scalars of an Adam step at step count `step` (from 1), in the compute type.
pub struct AdamCoefficients<T> {
    pub step_size: T,
    pub wd_alpha: T,
    pub one_minus_beta1: T,
    pub one_minus_beta2: T,
    pub bias_correction2_sqrt: T,
    pub eps: Option<T>,
}

impl<T: Real> AdamCoefficients<T> {
    pub fn new(h: &AdamHyper, step: u64) -> Self {
        let t = step as f64;
        let bias_correction1 = 1.0 - h.beta1.powf(t);
        let bias_correction2 = 1.0 - h.beta2.powf(t);
        AdamCoefficients {
            step_size: T::of(h.lr / bias_correction1),
            wd_alpha: T::of(1.0 - h.lr * h.weight_decay),
            one_minus_beta1: T::of(1.0 - h.beta1),
            one_minus_beta2: T::of(1.0 - h.beta2),
            bias_correction2_sqrt: T::of(bias_correction2.sqrt()),
            eps: h.eps.map(T::of),
        }
    }

    /// Updates one element in place:
    /// - `p ← p·(1 − lr·wd)`
    /// - `m ← m + (1−β1)(g − m)`, `v ← v + (1−β2)(g² − v)`, each as the adam-atan2 kernel's
    ///   two-fma `lerp` (PyTorch's `lerp_` and `mul_(β2).addcmul_` agree up to rounding)
    /// - `p ← p − (lr/(1−β1^t))·direction(m, √v/√(1−β2^t))`
    #[inline]
    pub fn apply(&self, p: &mut T, g: T, m: &mut T, v: &mut T) {
        let decayed = *p * self.wd_alpha;
        *m = lerp(*m, g, self.one_minus_beta1);
        *v = lerp(*v, g * g, self.one_minus_beta2);
        let denom = v.sqrt() / self.bias_correction2_sqrt;
        let direction = match self.eps {
            Some(eps) => *m / (denom + eps),
            None => m.atan2(denom),
        };
        *p = decayed - self.step_size * direction;
    }
}

impl AdamCoefficients<f32> {
    /// The scalars in the order `kernels/optim.cu` reads them from device memory
    /// (`kernels::optim::ADAM_SCALARS` of them; ε is 0 for AdamATan2, which ignores it).
    pub fn kernel_scalars(&self) -> [f32; 6] {
        [
            self.step_size,
            self.wd_alpha,
            self.one_minus_beta1,
            self.one_minus_beta2,
            self.bias_correction2_sqrt,
            self.eps.unwrap_or(0.0),
        ]
    }
}

/// `a + w·(b − a)` as `fma(w, b, fma(−w, a, a))`, the adam-atan2 kernel's form.
#[inline]
fn lerp<T: Real>(a: T, b: T, w: T) -> T {
    w.mul_add(b, (-w).mul_add(a, a))
}

/// One Adam step over a parameter's elements, in parallel when large.
pub fn adam_update<T: Real>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    c: &AdamCoefficients<T>,
) {
    if p.len() >= super::PARALLEL_MIN_ELEMS {
        p.par_iter_mut()
            .zip(g.par_iter())
            .zip(m.par_iter_mut().zip(v.par_iter_mut()))
            .for_each(|((p, &g), (m, v))| c.apply(p, g, m, v));
    } else {
        p.iter_mut()
            .zip(g)
            .zip(m.iter_mut().zip(v.iter_mut()))
            .for_each(|((p, &g), (m, v))| c.apply(p, g, m, v));
    }
}

/// The two scalars of a sign-SGD step, `(1 − lr·wd, −lr)`, in the order the kernel reads them.
pub fn sign_sgd_scalars(lr: f64, weight_decay: f64) -> [f32; 2] {
    [(1.0 - lr * weight_decay) as f32, -lr as f32]
}

/// One sign-SGD step of `table` (f32 or f64 `[num_ids, D]`) on the rows `ids` (i32 `[n]`) with
/// their gradients `row_grads` (`[n, D]`): the rows of duplicate ids are summed in order of
/// appearance, then `p ← p(1 − lr·wd) − lr·sign(Σg)` on the touched rows only. Errors, changing
/// nothing, on an id outside the table or mismatched shapes.
pub fn sign_sgd_step(
    table: &mut Tensor,
    ids: &Tensor,
    row_grads: &Tensor,
    lr: f64,
    weight_decay: f64,
) -> Result<()> {
    const OP: &str = "SignSgd";
    let (num_ids, dim) = table_dims(OP, table)?;
    row_grads.shape().expect_rank(OP, 2)?;
    if row_grads.dims()[1] != dim {
        return Err(Error::shape(
            OP,
            format!(
                "gradient rows {} for a table of width {dim}",
                row_grads.shape()
            ),
        ));
    }
    let (rows, sums) = sum_rows_by_id(ids, row_grads, num_ids)?;
    // Signs are exact in any float type, so the sums can be read as f64.
    let sums = sums.to_vec_f64()?;
    match table.real_data_mut(OP)? {
        RealDataMut::F32(t) => sign_sgd_rows(t, dim, &rows, &sums, lr, weight_decay),
        RealDataMut::F64(t) => sign_sgd_rows(t, dim, &rows, &sums, lr, weight_decay),
    }
    Ok(())
}

fn sign_sgd_rows<T: Real>(
    table: &mut [T],
    dim: usize,
    rows: &[usize],
    sums: &[f64],
    lr: f64,
    weight_decay: f64,
) {
    if dim == 0 {
        return;
    }
    let wd_alpha = T::of(1.0 - lr * weight_decay);
    let neg_lr = T::of(-lr);
    for (&row, sum) in rows.iter().zip(sums.chunks(dim)) {
        for (p, &s) in table[row * dim..(row + 1) * dim].iter_mut().zip(sum) {
            *p = *p * wd_alpha + neg_lr * T::of(sign(s));
        }
    }
}

/// `torch.sign`: −1, 0 or 1, and NaN for NaN (unlike `f64::signum`, which gives ±1 for ±0).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

/// `(1−μ)·param + μ·shadow`, computed in the tensors' compute type (they share shape and dtype).
pub fn ema_average(param: &Tensor, shadow: &Tensor, decay: f64) -> Result<Tensor> {
    const OP: &str = "Ema::update";
    param.shape().expect_eq(OP, shadow.shape())?;
    let (keep, take) = (decay, 1.0 - decay);
    Ok(with_real2!(param, shadow, OP, |x, y| {
        let (take, keep) = (T::of(take), T::of(keep));
        let avg: Vec<T> = x
            .iter()
            .zip(y)
            .map(|(&x, &y)| take * x + keep * y)
            .collect();
        Tensor::from_real(avg, shadow.shape().clone(), shadow.dtype())
    }))
}
