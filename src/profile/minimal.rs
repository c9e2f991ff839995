//! The minimal bytes of a training step: a lower bound on the device memory traffic any
//! implementation of the same step must pay, however well fused. It counts only state that
//! must cross HBM every step; activations are left out, because a step can recompute them
//! instead of storing them (at a FLOP cost). `docs/profile.md` gives the reasoning.

use crate::train::config::RunConfig;
use serde::Serialize;

/// One term of the bound.
#[derive(Clone, Debug, Serialize)]
pub struct MinimalItem {
    pub what: &'static str,
    pub bytes: f64,
}

/// The terms of the minimal bytes of one training step of `cfg` with `params` f32 parameters
/// and a puzzle table of `puzzle_table_elems` f32 elements.
pub fn minimal_step_bytes(
    cfg: &RunConfig,
    params: usize,
    puzzle_table_elems: usize,
) -> Vec<MinimalItem> {
    const F32: f64 = 4.0;
    const I32: f64 = 4.0;
    let m = &cfg.model;
    let p = params as f64;
    let b = cfg.train.global_batch_size as f64;
    let tokens = b * m.seq_len as f64;
    // The carry covers the puzzle-embedding prefix too: [B, prefix + seq, D] per state.
    let state = b * m.total_len() as f64 * m.hidden_size as f64 * F32;
    // Both TRM and HRM carry two states, z_H and z_L.
    let states = 2.0;
    let mut items = vec![
        MinimalItem {
            what: "parameters (f32): read once, written once by the optimizer",
            bytes: 2.0 * F32 * p,
        },
        MinimalItem {
            what: "gradients (f32): written once, read once by the optimizer",
            bytes: 2.0 * F32 * p,
        },
        MinimalItem {
            what: "Adam moments m and v (f32): each read once and written once",
            bytes: 4.0 * F32 * p,
        },
    ];
    if cfg.train.ema {
        items.push(MinimalItem {
            what: "EMA shadow (f32): read once, written once",
            bytes: 2.0 * F32 * p,
        });
    }
    if puzzle_table_elems > 0 {
        items.push(MinimalItem {
            what: "puzzle table (f32): read once, written once by SignSGD",
            bytes: 2.0 * F32 * puzzle_table_elems as f64,
        });
    }
    items.push(MinimalItem {
        what: "batch: input tokens and labels (i32 [B, S]) and puzzle ids read once",
        bytes: I32 * (2.0 * tokens + b),
    });
    items.push(MinimalItem {
        what: "carry z_H, z_L (f32 [B, prefix + S, D]): read once, written once",
        bytes: states * 2.0 * state,
    });
    items
}
