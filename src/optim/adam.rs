//! The Adam machinery shared by `AdamW` and `AdamAtan2`: per-parameter moment state, created
//! lazily and keyed by `ParamId`, and the elementwise update. The two optimizers differ only in
//! the direction they step along (`Direction`).
//!
//! Per parameter with a gradient, at its own step count `t` (as PyTorch, a parameter that has no
//! gradient in a step is skipped and its `t` does not advance):
//! - `p ← p·(1 − lr·wd)`
//! - `m ← m + (1−β1)(g − m)`, `v ← v + (1−β2)(g² − v)`, each as the adam-atan2 kernel's
//!   two-fma `lerp` (PyTorch's `lerp_` and `mul_(β2).addcmul_` agree up to rounding)
//! - `p ← p − (lr/(1−β1^t))·direction(m, √v/√(1−β2^t))`
//!
//! The scalar coefficients are computed in f64 and rounded to the compute type, as the official
//! kernels do; f32 (and bf16-gradient) parameters compute in f32, f64 parameters in f64.

use crate::dtype::DType;
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::params::{ParamId, Params};
use crate::tensor::{RealData, RealDataMut, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// What the step follows, given the first moment `m` and the bias-corrected `√v̂`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    /// AdamW: `m / (√v̂ + ε)`.
    Divide { eps: f64 },
    /// AdamAtan2: `atan2(m, √v̂)`, bounded and without ε.
    Atan2,
}

/// The step's hyperparameters, already validated by the optimizer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub direction: Direction,
}

/// One parameter's state: its name (to catch an optimizer reused with other `Params`), step
/// count and moments, stored in the parameter's dtype.
struct State {
    name: String,
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// The moment state of every parameter that has received a gradient so far.
#[derive(Default)]
pub(crate) struct Moments {
    states: HashMap<ParamId, State>,
}

/// The per-step scalars of one parameter, in the compute type.
struct Coefficients<T> {
    step_size: T,
    wd_alpha: T,
    one_minus_beta1: T,
    one_minus_beta2: T,
    bias_correction2_sqrt: T,
    eps: Option<T>,
}

impl<T: Real> Coefficients<T> {
    fn new(h: &Hyper, step: u64) -> Self {
        let t = step as f64;
        let bias_correction1 = 1.0 - h.beta1.powf(t);
        let bias_correction2 = 1.0 - h.beta2.powf(t);
        Coefficients {
            step_size: T::of(h.lr / bias_correction1),
            wd_alpha: T::of(1.0 - h.lr * h.weight_decay),
            one_minus_beta1: T::of(1.0 - h.beta1),
            one_minus_beta2: T::of(1.0 - h.beta2),
            bias_correction2_sqrt: T::of(bias_correction2.sqrt()),
            eps: match h.direction {
                Direction::Divide { eps } => Some(T::of(eps)),
                Direction::Atan2 => None,
            },
        }
    }

    /// Updates one element in place.
    #[inline]
    fn apply(&self, p: &mut T, g: T, m: &mut T, v: &mut T) {
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

/// `a + w·(b − a)` as `fma(w, b, fma(−w, a, a))`, the adam-atan2 kernel's form.
#[inline]
fn lerp<T: Real>(a: T, b: T, w: T) -> T {
    w.mul_add(b, (-w).mul_add(a, a))
}

fn update<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: &Coefficients<T>) {
    if p.len() >= crate::device::cpu::PARALLEL_MIN_ELEMS {
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

fn grad_f32<'a>(op: &'static str, g: &'a Tensor) -> Result<Cow<'a, [f32]>> {
    Ok(match g.real_data(op)? {
        RealData::F32(v) => v,
        RealData::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
    })
}

fn grad_f64<'a>(op: &'static str, g: &'a Tensor) -> Result<Cow<'a, [f64]>> {
    Ok(match g.real_data(op)? {
        RealData::F64(v) => Cow::Borrowed(v),
        RealData::F32(v) => Cow::Owned(v.iter().map(|&x| x as f64).collect()),
    })
}

impl Moments {
    /// One optimizer step over every parameter that has a gradient. Everything is checked
    /// before anything is updated, so an error leaves the parameters and state untouched.
    pub fn step(&mut self, op: &'static str, params: &mut Params, h: &Hyper) -> Result<()> {
        let ids: Vec<ParamId> = params
            .ids()
            .filter(|&id| params.get(id).grad.is_some())
            .collect();
        for &id in &ids {
            self.check(op, params, id)?;
        }
        for id in ids {
            let param = params.get_mut(id);
            let state = self.states.entry(id).or_insert_with(|| State {
                name: param.name.clone(),
                step: 0,
                exp_avg: Tensor::zeros(param.value.shape().clone(), param.value.dtype()),
                exp_avg_sq: Tensor::zeros(param.value.shape().clone(), param.value.dtype()),
            });
            state.step += 1;
            let grad = param
                .grad
                .as_ref()
                .expect("only parameters with a gradient are stepped");
            match (
                param.value.real_data_mut(op)?,
                state.exp_avg.real_data_mut(op)?,
                state.exp_avg_sq.real_data_mut(op)?,
            ) {
                (RealDataMut::F32(p), RealDataMut::F32(m), RealDataMut::F32(v)) => {
                    let c = Coefficients::<f32>::new(h, state.step);
                    update(p, &grad_f32(op, grad)?, m, v, &c)
                }
                (RealDataMut::F64(p), RealDataMut::F64(m), RealDataMut::F64(v)) => {
                    let c = Coefficients::<f64>::new(h, state.step);
                    update(p, &grad_f64(op, grad)?, m, v, &c)
                }
                _ => unreachable!("check() matched the state's dtype to the parameter's"),
            }
        }
        Ok(())
    }

    /// Errors if parameter `id` cannot be stepped: a bf16 or integer value, a gradient of
    /// another shape or dtype kind, or state that belongs to a different parameter.
    fn check(&self, op: &'static str, params: &Params, id: ParamId) -> Result<()> {
        let p = params.get(id);
        let Some(grad) = &p.grad else {
            return Ok(());
        };
        if !matches!(p.value.dtype(), crate::DType::F32 | crate::DType::F64) {
            return Err(Error::DType {
                op,
                expected: "f32 or f64 parameters",
                got: p.value.dtype(),
            });
        }
        grad.expect_float(op)?;
        p.value.shape().expect_eq(op, grad.shape()).map_err(|_| {
            Error::shape(
                op,
                format!(
                    "gradient of {:?} has shape {}, the parameter {}",
                    p.name,
                    grad.shape(),
                    p.value.shape()
                ),
            )
        })?;
        if let Some(s) = self.states.get(&id) {
            if s.name != p.name {
                return Err(Error::arg(
                    op,
                    format!(
                        "state for {:?} was made for {:?}: the optimizer is stepping other Params",
                        p.name, s.name
                    ),
                ));
            }
            if s.exp_avg.dtype() != p.value.dtype() || s.exp_avg.shape() != p.value.shape() {
                return Err(Error::arg(
                    op,
                    format!(
                        "{:?} changed from {} {} to {} {} since its last step",
                        p.name,
                        s.exp_avg.dtype(),
                        s.exp_avg.shape(),
                        p.value.dtype(),
                        p.value.shape()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// How many steps parameter `id` has taken (0 before its first gradient).
    pub fn step_count(&self, id: ParamId) -> u64 {
        self.states.get(&id).map_or(0, |s| s.step)
    }

    /// Every parameter's state as named tensors (`<name>.exp_avg`, `<name>.exp_avg_sq`, and the
    /// step count as an f64 scalar `<name>.step`), for resumable checkpoints.
    pub fn export(&self, params: &Params) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for id in params.ids() {
            if let Some(s) = self.states.get(&id) {
                out.insert(format!("{}.exp_avg", s.name), s.exp_avg.clone());
                out.insert(format!("{}.exp_avg_sq", s.name), s.exp_avg_sq.clone());
                out.insert(
                    format!("{}.step", s.name),
                    Tensor::scalar(s.step as f64, DType::F64),
                );
            }
        }
        out
    }

    /// Replaces the state with `export`'s output. Errors, changing nothing, on a name that is not
    /// a parameter or moments whose shape or dtype differ from the parameter's.
    pub fn import(
        &mut self,
        op: &'static str,
        params: &Params,
        state: &BTreeMap<String, Tensor>,
    ) -> Result<()> {
        let mut states = HashMap::new();
        for id in params.ids() {
            let p = params.get(id);
            let get = |suffix: &str| state.get(&format!("{}.{suffix}", p.name));
            let (m, v, step) = match (get("exp_avg"), get("exp_avg_sq"), get("step")) {
                (None, None, None) => continue,
                (Some(m), Some(v), Some(step)) => (m, v, step),
                _ => {
                    return Err(Error::arg(
                        op,
                        format!("optimizer state of {:?} is incomplete", p.name),
                    ))
                }
            };
            for t in [m, v] {
                if t.shape() != p.value.shape() || t.dtype() != p.value.dtype() {
                    return Err(Error::shape(
                        op,
                        format!(
                            "optimizer state of {:?} is {} {}, the parameter {} {}",
                            p.name,
                            t.dtype(),
                            t.shape(),
                            p.value.dtype(),
                            p.value.shape()
                        ),
                    ));
                }
            }
            states.insert(
                id,
                State {
                    name: p.name.clone(),
                    step: step.item()? as u64,
                    exp_avg: m.clone(),
                    exp_avg_sq: v.clone(),
                },
            );
        }
        let known = 3 * states.len();
        if known != state.len() {
            return Err(Error::arg(
                op,
                format!(
                    "{} optimizer state tensors do not belong to any parameter",
                    state.len() - known
                ),
            ));
        }
        self.states = states;
        Ok(())
    }

    /// The first and second moments `(m, v)` of parameter `id`, once it has stepped.
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor, &Tensor)> {
        self.states.get(&id).map(|s| (&s.exp_avg, &s.exp_avg_sq))
    }
}
