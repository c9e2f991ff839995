//! The models and the deep-supervision / ACT loop they share.
//!
//! - `config`: the official config fields.
//! - `reasoning_module`: `L_level` / `H_level`, stacks of post-norm blocks.
//! - `reasoner`: the inner model (embeddings, TRM and HRM recursions, heads).
//! - `act`: the carry, halting and exploration of deep supervision.
//! - `act_loss`: the official `ACTLossHead` (stablemax LM loss, Q losses, metrics).
//! - `probe`: an optional trace of intermediate tensors for golden comparisons.

pub mod act;
pub mod act_loss;
pub mod config;
pub mod probe;
pub mod reasoner;
pub mod reasoning_module;

pub use act::{act_step, ActStep, Batch, Carry, Exploration, Halting};
pub use act_loss::{act_loss, ActLoss, ActLossSums, ActMetrics, IGNORE_LABEL_ID};
pub use config::{Arch, ForwardDtype, ModelConfig, PosEncoding};
pub use probe::Probe;
pub use reasoner::{Buffers, Reasoner, SegmentOutput};
