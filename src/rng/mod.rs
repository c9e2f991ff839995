//! Randomness. Everything is keyed by explicit seeds: the same seed gives bit-identical results.
//!
//! `philox` is the counter-based generator the CUDA kernels will share, so CPU and GPU draw the
//! same integer stream. `trunc_normal` is the official initialiser built on it.

pub mod philox;
pub mod trunc_normal;
