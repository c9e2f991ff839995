//! Differentiable ops, as methods on `Tape`: each runs the forward where the tape's `Compute`
//! says (the CPU reference, or the CUDA kernels on `Emu` or `Cuda`, see `dispatch`), and records a
//! backward closure holding only the tensors that backward needs and the same `Compute`.
//!
//! One file per op family, mirroring `device::cpu`. `docs/ops.md` lists every op with the tests
//! that check it.

pub mod act;
pub mod activation;
pub mod attention;
pub mod cast;
pub mod dispatch;
pub mod elementwise;
pub mod embedding;
pub mod kl;
pub mod lattice;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod noise;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod rope;
pub mod sparse_embedding;
pub mod swiglu;
