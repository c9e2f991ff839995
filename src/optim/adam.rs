//! The Adam machinery shared by `AdamW` and `AdamAtan2`: per-parameter moment state, created
//! lazily and keyed by `ParamId`, and the step. The two optimizers differ only in the direction
//! they step along (`AdamHyper::eps`); the elementwise update is `device::cpu::optim`'s on the
//! host and `kernels/optim.cu`'s on a device, reached through `ops::optim`.
//!
//! Per parameter with a gradient, at its own step count `t` (as PyTorch, a parameter that has no
//! gradient in a step is skipped and its `t` does not advance).
//!
//! Resident parameters (`Params::make_resident`) keep their moments in two device arenas laid
//! out as the parameter arena. When every parameter has a gradient and all share one step count
//! (every step of a training run) the whole arena steps in one launch, reading the step's scalars
//! from device memory; otherwise each parameter steps alone. A bf16 mirror of the parameters
//! (`Params::keep_mirror`) is written by that one launch, or refreshed after a per-parameter
//! step.

use super::check_non_negative;
use crate::device::cpu::optim::{AdamCoefficients, AdamHyper};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::optim::{adam_step, AdamState};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;
use std::collections::{BTreeMap, HashMap};

/// What distinguishes one Adam optimizer from another: its hyperparameters and their checks.
pub trait AdamConfig: Clone + std::fmt::Debug {
    /// The optimizer's name in errors.
    const NAME: &'static str;
    /// Errors on invalid hyperparameters.
    fn validate(&self) -> Result<()>;
    /// The learning rate, which a schedule changes every step.
    fn lr_mut(&mut self) -> &mut f64;
    /// The step's hyperparameters as the shared update takes them.
    fn hyper(&self) -> AdamHyper;
}

/// An Adam optimizer (`AdamW`, `AdamAtan2`): its configuration and the moments of every
/// parameter. State is created lazily per parameter on its first gradient.
pub struct Adam<C: AdamConfig> {
    config: C,
    moments: Moments,
}

impl<C: AdamConfig> Adam<C> {
    /// Errors on invalid hyperparameters (`AdamConfig::validate`).
    pub fn new(config: C) -> Result<Self> {
        config.validate()?;
        Ok(Adam {
            config,
            moments: Moments::default(),
        })
    }

    pub fn config(&self) -> &C {
        &self.config
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f64 {
        self.config.hyper().lr
    }

    /// Sets the learning rate for the next steps (a schedule calls this every step).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_non_negative(C::NAME, "lr", lr)?;
        *self.config.lr_mut() = lr;
        Ok(())
    }

    /// Updates every parameter that has an accumulated gradient; parameters without one are
    /// skipped and their step count does not advance (as the official `_init_group`). Errors
    /// (changing nothing) if a gradient's shape differs from its parameter's or a parameter is
    /// not f32/f64.
    pub fn step(&mut self, params: &mut Params) -> Result<()> {
        self.step_staged(params, None)
    }

    /// `step`, with the step's kernel scalars already on the device (`next_kernel_scalars`,
    /// staged by the caller with the step's other inputs) for resident parameters.
    pub fn step_staged(&mut self, params: &mut Params, scalars: Option<&Tensor>) -> Result<()> {
        let hyper = self.config.hyper();
        // The forward's bf16 copy of the weights follows the f32 masters: written by the arena
        // step's own launch, else refreshed after the step (one cast launch when resident;
        // nothing without a mirror).
        match self.moments.step(C::NAME, params, &hyper, scalars)? {
            MirrorWritten::Yes => params.mirror_refreshed(),
            MirrorWritten::No => params.refresh_mirror(),
        }
    }

    /// What the next step of resident `params` reads from device memory, when it will be one
    /// launch over the arenas; `None` otherwise (host parameters, or parameters at different
    /// step counts, which step one by one and upload their own).
    pub fn next_kernel_scalars(&self, params: &Params) -> Option<[f32; 6]> {
        self.moments
            .next_kernel_scalars(params, &self.config.hyper())
    }

    /// Advances the step counts as a replayed step did (see `Moments::note_replayed_step`).
    pub fn note_replayed_step(&mut self, params: &Params) -> Result<()> {
        self.moments.note_replayed_step(C::NAME, params)
    }

    /// Puts the moments on the device beside resident `params` (when built, and after a
    /// resume).
    pub fn make_resident(&mut self, params: &Params) -> Result<()> {
        self.moments.make_resident(params)
    }

    /// How many steps parameter `id` has taken (0 before its first gradient).
    pub fn step_count(&self, id: ParamId) -> u64 {
        self.moments.step_count(id)
    }

    /// The per-parameter state as named tensors, for resumable checkpoints.
    pub fn export_state(&self, params: &Params) -> BTreeMap<String, Tensor> {
        self.moments.export(params)
    }

    /// Restores `export_state`'s output; errors name the parameter that does not fit.
    pub fn import_state(
        &mut self,
        params: &Params,
        state: &BTreeMap<String, Tensor>,
    ) -> Result<()> {
        self.moments.import(C::NAME, params, state)
    }

    /// The moments `(m, v)` of parameter `id`, once it has stepped (for checkpoints and tests).
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor, &Tensor)> {
        self.moments.moments(id)
    }
}

/// Whether a step also wrote the parameters' bf16 mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MirrorWritten {
    Yes,
    No,
}

/// One parameter's state: its name (to catch an optimizer reused with other `Params`), step
/// count and moments, stored in the parameter's dtype (views of the moment arenas when the
/// parameters are resident).
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
    /// `(m, v)` arenas, f32, in the parameter arena's layout (resident parameters only).
    arenas: Option<(Tensor, Tensor)>,
}

impl Moments {
    /// One optimizer step over every parameter that has a gradient. Everything is checked
    /// before anything is updated, so an error leaves the parameters and state untouched.
    /// `scalars`: the step's kernel scalars already on the device (`next_kernel_scalars`), used
    /// by the one-launch arena step.
    pub fn step(
        &mut self,
        op: &'static str,
        params: &mut Params,
        h: &AdamHyper,
        scalars: Option<&Tensor>,
    ) -> Result<MirrorWritten> {
        let ids: Vec<ParamId> = params
            .ids()
            .filter(|&id| params.get(id).grad.is_some())
            .collect();
        for &id in &ids {
            self.check(op, params, id)?;
        }
        if params.arena().is_some() && self.arenas.is_none() {
            self.make_resident(params)?;
        }
        for &id in &ids {
            if !self.states.contains_key(&id) {
                let state = self.fresh_state(params, id)?;
                self.states.insert(id, state);
            }
        }
        if let Some(t) = self.uniform_step(params, &ids) {
            return self.step_arena(op, params, h, t + 1, scalars);
        }
        for id in ids {
            let param = params.get_mut(id);
            let state = self.states.get_mut(&id).expect("inserted above");
            let grad = param
                .grad
                .clone()
                .expect("only parameters with a gradient are stepped");
            // The count advances only once the step is launched (or recorded): a refused launch
            // inside a graph capture must leave the counts as they were for the eager rerun.
            adam_step(
                op,
                h,
                state.step + 1,
                AdamState {
                    param: &mut param.value,
                    exp_avg: &mut state.exp_avg,
                    exp_avg_sq: &mut state.exp_avg_sq,
                    mirror: None,
                },
                &grad,
                None,
            )?;
            state.step += 1;
        }
        Ok(MirrorWritten::No)
    }

    /// Advances every parameter's step count by one without touching the device: what a
    /// replayed training step did (its graph ran the one-launch arena step this optimizer
    /// recorded when it was captured). Errors unless the counts are uniform and every parameter
    /// has state (as after a captured arena step).
    pub fn note_replayed_step(&mut self, op: &'static str, params: &Params) -> Result<()> {
        let ids: Vec<ParamId> = params.ids().collect();
        if self.uniform_step(params, &ids).is_none() || self.states.len() != ids.len() {
            return Err(Error::arg(
                op,
                "a replayed step must be the one-launch arena step of resident parameters",
            ));
        }
        for state in self.states.values_mut() {
            state.step += 1;
        }
        Ok(())
    }

    /// The step count every parameter shares, when the parameters are resident, every one of
    /// them has a gradient and the moment arenas exist: the case one launch covers.
    fn uniform_step(&self, params: &Params, ids: &[ParamId]) -> Option<u64> {
        if params.arena().is_none() || self.arenas.is_none() || ids.len() != params.len() {
            return None;
        }
        let mut steps = ids
            .iter()
            .map(|id| self.states.get(id).map_or(0, |s| s.step));
        let first = steps.next()?;
        steps.all(|s| s == first).then_some(first)
    }

    /// The kernel scalars of the next step when it can run as one launch over the arenas (the
    /// caller stages them on the device with the step's inputs), else `None`.
    pub fn next_kernel_scalars(&self, params: &Params, h: &AdamHyper) -> Option<[f32; 6]> {
        let ids: Vec<ParamId> = params.ids().collect();
        let t = if self.arenas.is_none() && self.states.is_empty() && params.arena().is_some() {
            0
        } else {
            self.uniform_step(params, &ids)?
        };
        Some(AdamCoefficients::<f32>::new(h, t + 1).kernel_scalars())
    }

    /// Steps the whole arena at step count `t` in one launch, which also writes the bf16 mirror
    /// arena when the parameters keep one.
    fn step_arena(
        &mut self,
        op: &'static str,
        params: &Params,
        h: &AdamHyper,
        t: u64,
        scalars: Option<&Tensor>,
    ) -> Result<MirrorWritten> {
        let arena = params.arena().expect("uniform_step checked residency");
        let (m, v) = self
            .arenas
            .as_mut()
            .expect("uniform_step checked the arenas");
        let grads = arena
            .grads
            .as_ref()
            .ok_or_else(|| Error::arg(op, "these parameters take no gradients"))?;
        let mut values = arena.values.clone();
        let mut mirror = params.mirror_arena().cloned();
        let written = if mirror.is_some() {
            MirrorWritten::Yes
        } else {
            MirrorWritten::No
        };
        adam_step(
            op,
            h,
            t,
            AdamState {
                param: &mut values,
                exp_avg: m,
                exp_avg_sq: v,
                mirror: mirror.as_mut(),
            },
            grads,
            scalars,
        )?;
        for state in self.states.values_mut() {
            state.step = t;
        }
        Ok(written)
    }

    /// Zero moments for parameter `id` (views of the arenas when resident).
    fn fresh_state(&self, params: &Params, id: ParamId) -> Result<State> {
        let p = params.get(id);
        let (exp_avg, exp_avg_sq) = match (&self.arenas, params.arena()) {
            (Some((m, v)), Some(arena)) => {
                let offset = arena.offsets[params.index(id)];
                (
                    m.view(offset, p.value.shape().clone())?,
                    v.view(offset, p.value.shape().clone())?,
                )
            }
            _ => (
                Tensor::zeros(p.value.shape().clone(), p.value.dtype()),
                Tensor::zeros(p.value.shape().clone(), p.value.dtype()),
            ),
        };
        Ok(State {
            name: p.name.clone(),
            step: 0,
            exp_avg,
            exp_avg_sq,
        })
    }

    /// Puts the moments in two device arenas laid out as `params`' (which must be resident):
    /// one upload each, the existing moments copied in, zeros elsewhere.
    pub fn make_resident(&mut self, params: &Params) -> Result<()> {
        let Some(arena) = params.arena() else {
            return Ok(());
        };
        let mut packed = [vec![0f32; arena.len()], vec![0f32; arena.len()]];
        for (id, state) in &self.states {
            let offset = arena.offsets[params.index(*id)];
            for (dst, src) in packed.iter_mut().zip([&state.exp_avg, &state.exp_avg_sq]) {
                let src = src.to_host()?.to_vec_f32()?;
                dst[offset..offset + src.len()].copy_from_slice(&src);
            }
        }
        let n = arena.len();
        let [m, v] = packed;
        let backend = arena.kernels.backend();
        let m = Tensor::from_vec(m, [n])?.to_device(backend)?;
        let v = Tensor::from_vec(v, [n])?.to_device(backend)?;
        for (id, state) in self.states.iter_mut() {
            let offset = arena.offsets[params.index(*id)];
            let shape = state.exp_avg.shape().clone();
            state.exp_avg = m.view(offset, shape.clone())?;
            state.exp_avg_sq = v.view(offset, shape)?;
        }
        self.arenas = Some((m, v));
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
        // Host tensors now: `make_resident` (or the next resident step) rebuilds the arenas.
        self.arenas = None;
        Ok(())
    }

    /// The first and second moments `(m, v)` of parameter `id`, once it has stepped.
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor, &Tensor)> {
        self.states.get(&id).map(|s| (&s.exp_avg, &s.exp_avg_sq))
    }
}
