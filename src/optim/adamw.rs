//! AdamW with PyTorch semantics (`torch.optim.AdamW`): decoupled weight decay
//! `p ← p(1 − lr·wd)`, bias-corrected moments, and ε added to `√v̂`:
//! `p ← p − (lr/(1−β1^t))·m / (√v/√(1−β2^t) + ε)`. The Sotaku recipe trains with it.

use super::adam::{Adam, AdamConfig};
use super::{check_non_negative, check_unit_interval};
use crate::device::cpu::optim::AdamHyper;
use crate::error::Result;

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
}

impl AdamConfig for AdamWConfig {
    const NAME: &'static str = "AdamW";

    /// Errors unless lr, ε and weight decay are finite and >= 0 and both betas are in [0, 1).
    fn validate(&self) -> Result<()> {
        const OP: &str = "AdamW";
        check_non_negative(OP, "lr", self.lr)?;
        check_unit_interval(OP, "beta1", self.beta1)?;
        check_unit_interval(OP, "beta2", self.beta2)?;
        check_non_negative(OP, "eps", self.eps)?;
        check_non_negative(OP, "weight_decay", self.weight_decay)
    }

    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }

    fn hyper(&self) -> AdamHyper {
        AdamHyper {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.weight_decay,
            eps: Some(self.eps),
        }
    }
}

/// The AdamW optimizer: the shared Adam machinery with this configuration.
pub type AdamW = Adam<AdamWConfig>;
