//! The learning-rate schedule of HRM and TRM (`cosine_schedule_with_warmup_lr_lambda` in both
//! `pretrain.py`), also used by Sotaku: linear warmup from 0 to the base rate, then a cosine
//! from the base rate down to `min_ratio·base` at `total_steps`. `min_ratio = 1` (the HRM/TRM
//! default) keeps the rate constant after warmup.
//!
//! The official trainer increments its step counter before computing the rate, so its first
//! optimizer step uses `lr(1)`.

use super::check_non_negative;
use crate::error::{Error, Result};
use std::f64::consts::PI;

/// The learning rate at `step`:
/// - `step < warmup_steps`: `base_lr · step / warmup_steps`;
/// - after: `base_lr · (min_ratio + (1 − min_ratio)·½(1 + cos(π·progress)))` with
///   `progress = (step − warmup_steps)/(total_steps − warmup_steps)`.
///
/// As the official code, divisors are at least 1 (so `warmup_steps = 0` or
/// `total_steps = warmup_steps` do not divide by zero). Unlike it, `progress` is clamped to 1, so
/// the rate stays at `min_ratio·base_lr` past `total_steps` instead of rising again; up to
/// `total_steps` the two agree.
pub fn cosine_schedule_with_warmup(
    step: u64,
    base_lr: f64,
    warmup_steps: u64,
    total_steps: u64,
    min_ratio: f64,
) -> f64 {
    if step < warmup_steps {
        return base_lr * step as f64 / warmup_steps.max(1) as f64;
    }
    let decay_steps = total_steps.saturating_sub(warmup_steps).max(1);
    let progress = ((step - warmup_steps) as f64 / decay_steps as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (PI * progress).cos());
    base_lr * (min_ratio + ((1.0 - min_ratio) * cosine).max(0.0))
}

/// `cosine_schedule_with_warmup` with its settings checked once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    base_lr: f64,
    warmup_steps: u64,
    total_steps: u64,
    min_ratio: f64,
}

impl WarmupCosine {
    /// Errors unless `base_lr` is finite and >= 0, `min_ratio` is in [0, 1] and
    /// `warmup_steps <= total_steps`.
    pub fn new(
        base_lr: f64,
        warmup_steps: u64,
        total_steps: u64,
        min_ratio: f64,
    ) -> Result<WarmupCosine> {
        const OP: &str = "WarmupCosine";
        check_non_negative(OP, "base_lr", base_lr)?;
        if !(0.0..=1.0).contains(&min_ratio) {
            return Err(Error::arg(
                OP,
                format!("min_ratio must be in [0, 1], got {min_ratio}"),
            ));
        }
        if warmup_steps > total_steps {
            return Err(Error::arg(
                OP,
                format!("{warmup_steps} warmup steps exceed the {total_steps} total steps"),
            ));
        }
        Ok(WarmupCosine {
            base_lr,
            warmup_steps,
            total_steps,
            min_ratio,
        })
    }

    /// HRM/TRM: 2000 warmup steps, then constant (`lr_min_ratio = 1`).
    pub fn hrm_trm(base_lr: f64, total_steps: u64) -> Result<WarmupCosine> {
        WarmupCosine::new(base_lr, 2000, total_steps, 1.0)
    }

    /// Sotaku: lr 2e-3, 1400 warmup steps, cosine to 1% at step 50,000.
    pub fn sotaku() -> WarmupCosine {
        WarmupCosine {
            base_lr: 2e-3,
            warmup_steps: 1400,
            total_steps: 50_000,
            min_ratio: 0.01,
        }
    }

    /// The learning rate at `step`.
    pub fn lr(&self, step: u64) -> f64 {
        cosine_schedule_with_warmup(
            step,
            self.base_lr,
            self.warmup_steps,
            self.total_steps,
            self.min_ratio,
        )
    }

    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }
    pub fn min_ratio(&self) -> f64 {
        self.min_ratio
    }
}
