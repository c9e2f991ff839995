//! Backends. `cpu` is the pure-Rust reference: every op's forward and backward, written for
//! clarity, on host tensors. It is the executable spec the CUDA kernels are tested against.

pub mod backend;
pub mod compute;
pub mod counting;
pub mod cpu;
pub mod cuda;
pub mod device_tensor;
pub mod emu;
pub mod graph;
pub mod staging;
pub mod trace;

pub use backend::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
pub use compute::{Compute, Kernels};
pub use device_tensor::DeviceTensor;
pub use graph::Graph;
pub use staging::{Event, Staging};

pub use crate::tensor::Device;
