//! Differentiable ops, as methods on `Tape`: each runs the forward on its inputs' device, and
//! records a backward closure holding only the tensors that backward needs.
//!
//! One file per op family, mirroring `device::cpu`. `docs/ops.md` lists every op with the tests
//! that check it.

pub mod elementwise;
pub mod reduce;
