//! Exponential moving average of the weights (TRM `models/ema.py`, `EMAHelper`): a shadow copy
//! of every parameter, updated after each optimizer step as
//! `shadow ← (1−μ)·param + μ·shadow`, μ = 0.999. TRM evaluates and saves checkpoints with the
//! shadow weights. The puzzle-embedding table is not a parameter, so it is not averaged.

use super::check_unit_interval;
use crate::device::compute::Compute;
use crate::error::{Error, Result};
use crate::ops::optim::ema_update;
use crate::params::Params;

/// The shadow weights, matched to the live parameters by name.
pub struct Ema {
    decay: f64,
    shadow: Params,
}

impl Ema {
    /// The official μ.
    pub const DEFAULT_DECAY: f64 = 0.999;

    /// Starts the shadow as a copy of `params` (the official `register`): a device copy of the
    /// arena for resident parameters. Errors unless `decay` (μ) is in [0, 1).
    pub fn new(params: &Params, decay: f64) -> Result<Ema> {
        check_unit_interval("Ema", "decay", decay)?;
        if params.arena().is_some() {
            return Ok(Ema {
                decay,
                shadow: params.resident_copy()?,
            });
        }
        let mut shadow = Params::new();
        for p in params.iter() {
            shadow.add(p.name.clone(), p.value.clone())?;
        }
        Ok(Ema { decay, shadow })
    }

    /// Puts the shadow on `compute`'s device (after a resume), as its own arena.
    pub fn make_resident(&mut self, compute: &Compute) -> Result<()> {
        self.shadow.make_resident_values(compute)
    }

    /// Resumes an average from saved shadow weights; errors unless they match `params` by
    /// name, shape and dtype.
    pub fn from_shadow(params: &Params, shadow: Params, decay: f64) -> Result<Ema> {
        check_unit_interval("Ema", "decay", decay)?;
        let ema = Ema { decay, shadow };
        ema.check_matches("Ema::from_shadow", params)?;
        Ok(ema)
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// The shadow weights, under the parameters' names (what TRM checkpoints save).
    pub fn shadow(&self) -> &Params {
        &self.shadow
    }

    /// `shadow ← (1−μ)·param + μ·shadow` for every parameter, computed in the parameter's
    /// compute type (f32 for f32/bf16, f64 for f64). Errors, changing nothing, if `params`
    /// does not have exactly the shadow's names, shapes and dtypes.
    pub fn update(&mut self, params: &Params) -> Result<()> {
        self.check_matches("Ema::update", params)?;
        // Resident on both sides with one layout: the whole arena in one launch.
        if let (Some(live), Some(shadow)) = (params.arena(), self.shadow.arena()) {
            if live.offsets == shadow.offsets {
                let mut values = shadow.values.clone();
                return ema_update(&mut values, &live.values, self.decay);
            }
        }
        for p in params.iter() {
            let id = self
                .shadow
                .id(&p.name)
                .expect("check_matches found every name");
            ema_update(&mut self.shadow.get_mut(id).value, &p.value, self.decay)?;
        }
        Ok(())
    }

    /// Overwrites the values of `params` with the shadow weights (the official `ema`, for an
    /// evaluation copy). Gradients are left alone.
    pub fn copy_to(&self, params: &mut Params) -> Result<()> {
        self.check_matches("Ema::copy_to", params)?;
        for p in params.iter_mut() {
            let id = self
                .shadow
                .id(&p.name)
                .expect("check_matches found every name");
            p.value = self.shadow.value(id).clone();
        }
        Ok(())
    }

    /// Exchanges the values of `params` and the shadow: evaluate with the averaged weights,
    /// then `swap` again to resume training with the live ones, without copying.
    pub fn swap(&mut self, params: &mut Params) -> Result<()> {
        self.check_matches("Ema::swap", params)?;
        for p in params.iter_mut() {
            let id = self
                .shadow
                .id(&p.name)
                .expect("check_matches found every name");
            std::mem::swap(&mut p.value, &mut self.shadow.get_mut(id).value);
        }
        Ok(())
    }

    /// Errors unless `params` has the shadow's names, each with the same shape and dtype.
    fn check_matches(&self, op: &'static str, params: &Params) -> Result<()> {
        if params.len() != self.shadow.len() {
            return Err(Error::arg(
                op,
                format!(
                    "{} parameters, the average holds {}",
                    params.len(),
                    self.shadow.len()
                ),
            ));
        }
        for p in params.iter() {
            let id = self
                .shadow
                .id(&p.name)
                .ok_or_else(|| Error::arg(op, format!("no average for parameter {:?}", p.name)))?;
            let s = self.shadow.value(id);
            p.value.shape().expect_eq(op, s.shape())?;
            if p.value.dtype() != s.dtype() {
                return Err(Error::DType {
                    op,
                    expected: s.dtype().name(),
                    got: p.value.dtype(),
                });
            }
        }
        Ok(())
    }
}
