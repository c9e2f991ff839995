//! Backends. `cpu` is the pure-Rust reference: every op's forward and backward, written for
//! clarity, on host tensors. It is the executable spec the CUDA kernels are tested against.

pub mod cpu;

pub use crate::tensor::Device;
