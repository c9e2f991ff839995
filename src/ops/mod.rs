//! Differentiable ops, as methods on `Tape`: each runs the forward on its inputs' device, and
//! records a backward closure holding only the tensors that backward needs.
//!
//! One file per op family, mirroring `device::cpu`. `docs/ops.md` lists every op with the tests
//! that check it.

pub mod activation;
pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod kl;
pub mod lattice;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod noise;
pub mod norm;
pub mod reduce;
pub mod rope;
pub mod sparse_embedding;
pub mod swiglu;
