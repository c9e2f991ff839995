//! Bench cases of the fused kernels, one module per kernel file; `suite::kernel_cases` runs them
//! after the basic kernels.

pub mod attention;
pub mod fused_step;
pub mod gemm;
pub mod lattice;
pub mod noise;
pub mod rope;
