//! Optimizers and the learning-rate schedule.
//!
//! - `AdamW` (PyTorch semantics) and `AdamAtan2` (the HRM/TRM main optimizer) step over `Params`
//!   with each parameter's accumulated gradient; they share their moment update (`adam`).
//! - `SignSgd` updates the puzzle-embedding table on the rows a batch touched.
//! - `Ema` keeps the exponential moving average of the weights that TRM evaluates and saves.
//! - `schedule` is the official linear-warmup-then-cosine learning rate.

pub mod adam;
pub mod adam_atan2;
pub mod adamw;
pub mod ema;
pub mod schedule;
pub mod sign_sgd;

pub use adam::{Adam, AdamConfig};
pub use adam_atan2::{AdamAtan2, AdamAtan2Config};
pub use adamw::{AdamW, AdamWConfig};
pub use ema::Ema;
pub use schedule::{cosine_schedule_with_warmup, WarmupCosine};
pub use sign_sgd::SignSgd;

use crate::error::{Error, Result};

/// Errors unless `value` is finite and at least 0 (learning rates, weight decay, ε).
pub(crate) fn check_non_negative(op: &'static str, name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::arg(
            op,
            format!("{name} must be finite and >= 0, got {value}"),
        ));
    }
    Ok(())
}

/// Errors unless `value` is in `[0, 1)` (Adam betas, EMA decay).
pub(crate) fn check_unit_interval(op: &'static str, name: &str, value: f64) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(Error::arg(
            op,
            format!("{name} must be in [0, 1), got {value}"),
        ));
    }
    Ok(())
}
