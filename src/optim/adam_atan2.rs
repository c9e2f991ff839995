//! AdamATan2 (`imoneoi/adam-atan2`), the HRM/TRM main optimizer: Adam whose step is
//! `atan2(m, √v̂)` instead of `m/(√v̂ + ε)`, so there is no ε and every step is bounded by
//! `lr·π/2/(1−β1^t)`. Per spec §4.1 (the atan2 scales a = b = 1):
//! - `p ← p(1 − lr·wd)`
//! - `m ← m + (1−β1)(g − m)`, `v ← v + (1−β2)(g² − v)`
//! - `p ← p − (lr/(1−β1^t))·atan2(m, √v/√(1−β2^t))`
//!
//! Computed in f32 (f64 parameters in f64). Only `Params` are stepped: the puzzle-embedding
//! table has its own optimizer (`SignSgd`).

use super::adam::{Direction, Hyper, Moments};
use super::{check_non_negative, check_unit_interval};
use crate::error::Result;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// AdamATan2 hyperparameters. `Default` is the package's: lr 1e-3, betas (0.9, 0.999), weight
/// decay 0.01. HRM and TRM run lr 1e-4, betas (0.9, 0.95), weight decay 0.1 (ARC) or 1.0
/// (Sudoku, Maze).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamAtan2Config {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
}

impl Default for AdamAtan2Config {
    fn default() -> Self {
        AdamAtan2Config {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            weight_decay: 1e-2,
        }
    }
}

impl AdamAtan2Config {
    /// Errors unless lr and weight decay are finite and >= 0 and both betas are in [0, 1).
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "AdamAtan2";
        check_non_negative(OP, "lr", self.lr)?;
        check_unit_interval(OP, "beta1", self.beta1)?;
        check_unit_interval(OP, "beta2", self.beta2)?;
        check_non_negative(OP, "weight_decay", self.weight_decay)
    }
}

/// The AdamATan2 optimizer. State is created lazily per parameter on its first gradient.
pub struct AdamAtan2 {
    config: AdamAtan2Config,
    moments: Moments,
}

impl AdamAtan2 {
    /// Errors on invalid hyperparameters (see `AdamAtan2Config::validate`).
    pub fn new(config: AdamAtan2Config) -> Result<AdamAtan2> {
        config.validate()?;
        Ok(AdamAtan2 {
            config,
            moments: Moments::default(),
        })
    }

    pub fn config(&self) -> &AdamAtan2Config {
        &self.config
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate for the next steps (a schedule calls this every step).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_non_negative("AdamAtan2::set_lr", "lr", lr)?;
        self.config.lr = lr;
        Ok(())
    }

    /// Updates every parameter that has an accumulated gradient; parameters without one are
    /// skipped and their step count does not advance (as the official `_init_group`). Errors
    /// (changing nothing) if a gradient's shape differs from its parameter's or a parameter is
    /// not f32/f64.
    pub fn step(&mut self, params: &mut Params) -> Result<()> {
        let c = &self.config;
        let hyper = Hyper {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            weight_decay: c.weight_decay,
            direction: Direction::Atan2,
        };
        self.moments.step("AdamAtan2", params, &hyper)
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
        self.moments
            .import("AdamAtan2::import_state", params, state)
    }

    /// The moments `(m, v)` of parameter `id`, once it has stepped (for checkpoints and tests).
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor, &Tensor)> {
        self.moments.moments(id)
    }
}
