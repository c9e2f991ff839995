//! AdamATan2 (`imoneoi/adam-atan2`), the HRM/TRM main optimizer: Adam whose step is
//! `atan2(m, √v̂)` instead of `m/(√v̂ + ε)`, so there is no ε and every step is bounded by
//! `lr·π/2/(1−β1^t)`. Per spec §4.1 (the atan2 scales a = b = 1):
//! - `p ← p(1 − lr·wd)`
//! - `m ← m + (1−β1)(g − m)`, `v ← v + (1−β2)(g² − v)`
//! - `p ← p − (lr/(1−β1^t))·atan2(m, √v/√(1−β2^t))`
//!
//! Computed in f32 (f64 parameters in f64). Only `Params` are stepped: the puzzle-embedding
//! table has its own optimizer (`SignSgd`).

use super::adam::{Adam, AdamConfig};
use super::{check_non_negative, check_unit_interval};
use crate::device::cpu::optim::AdamHyper;
use crate::error::Result;

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

impl AdamConfig for AdamAtan2Config {
    const NAME: &'static str = "AdamAtan2";

    /// Errors unless lr and weight decay are finite and >= 0 and both betas are in [0, 1).
    fn validate(&self) -> Result<()> {
        const OP: &str = "AdamAtan2";
        check_non_negative(OP, "lr", self.lr)?;
        check_unit_interval(OP, "beta1", self.beta1)?;
        check_unit_interval(OP, "beta2", self.beta2)?;
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
            eps: None,
        }
    }
}

/// The AdamAtan2 optimizer: the shared Adam machinery with this configuration.
pub type AdamAtan2 = Adam<AdamAtan2Config>;
