//! AdamW with PyTorch semantics (`torch.optim.AdamW`): decoupled weight decay
//! `p ← p(1 − lr·wd)`, bias-corrected moments, and ε added to `√v̂`:
//! `p ← p − (lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε)`. The Sotaku recipe trains with it.

use super::adam::{Direction, Hyper, Moments};
use super::{check_non_negative, check_unit_interval};
use crate::error::Result;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// AdamW hyperparameters. `Default` is PyTorch's: lr 1e-3, betas (0.9, 0.999), ε 1e-8,
/// weight decay 0.01.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

impl AdamWConfig {
    /// Sotaku's recipe: lr 2e-3, betas (0.9, 0.95), ε 1e-8, weight decay 0.01 (PyTorch's
    /// default, not set there). Pair it with `WarmupCosine::sotaku()`.
    pub fn sotaku() -> Self {
        AdamWConfig {
            lr: 2e-3,
            beta2: 0.95,
            ..AdamWConfig::default()
        }
    }

    /// Errors unless lr, ε and weight decay are finite and >= 0 and both betas are in [0, 1).
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "AdamW";
        check_non_negative(OP, "lr", self.lr)?;
        check_unit_interval(OP, "beta1", self.beta1)?;
        check_unit_interval(OP, "beta2", self.beta2)?;
        check_non_negative(OP, "eps", self.eps)?;
        check_non_negative(OP, "weight_decay", self.weight_decay)
    }
}

/// The AdamW optimizer. State is created lazily per parameter on its first gradient.
pub struct AdamW {
    config: AdamWConfig,
    moments: Moments,
}

impl AdamW {
    /// Errors on invalid hyperparameters (see `AdamWConfig::validate`).
    pub fn new(config: AdamWConfig) -> Result<AdamW> {
        config.validate()?;
        Ok(AdamW {
            config,
            moments: Moments::default(),
        })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate for the next steps (a schedule calls this every step).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_non_negative("AdamW::set_lr", "lr", lr)?;
        self.config.lr = lr;
        Ok(())
    }

    /// Updates every parameter that has an accumulated gradient; parameters without one are
    /// skipped and their step count does not advance. Errors (changing nothing) if a gradient's
    /// shape differs from its parameter's or a parameter is not f32/f64.
    pub fn step(&mut self, params: &mut Params) -> Result<()> {
        let c = &self.config;
        let hyper = Hyper {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            weight_decay: c.weight_decay,
            direction: Direction::Divide { eps: c.eps },
        };
        self.moments.step("AdamW", params, &hyper)
    }

    /// How many steps parameter `id` has taken (0 before its first gradient).
    pub fn step_count(&self, id: ParamId) -> u64 {
        self.moments.step_count(id)
    }

    /// The moments `(m, v)` of parameter `id`, once it has stepped (for checkpoints and tests).
    pub fn moments(&self, id: ParamId) -> Option<(&Tensor, &Tensor)> {
        self.moments.moments(id)
    }
}
