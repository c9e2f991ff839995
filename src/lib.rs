//! recur: small recursive reasoning models (HRM, TRM, PTRM, GRAM, LDT, Sotaku) on hand-written
//! CUDA kernels, with a pure-Rust CPU reference backend and a minimal autograd tape.
//!
//! Layers, top to bottom: `ops` (differentiable ops on the `tape`), `kernels` (launchers for the
//! CUDA C in `kernels/`), `device` (the CPU reference, and the two kernel backends: `cuda` on a GPU
//! and `emu`, the same CUDA C run on the CPU), `tensor`.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod demo;
pub mod device;
pub mod dtype;
pub mod error;
pub mod exp;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod params;
pub mod profile;
pub mod report;
pub mod rng;
pub mod shape;
pub mod tape;
pub mod tensor;
pub mod testing;
pub mod train;

pub use dtype::{DType, Real};
pub use error::{Error, Result};
pub use params::{Param, ParamId, Params};
pub use shape::Shape;
pub use tape::{Gradients, Tape, Var};
pub use tensor::{Device, Tensor};
