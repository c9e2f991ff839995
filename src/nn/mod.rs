//! Layers built from ops, holding `ParamId`s into a `Params` store. Parameter names are the
//! official PyTorch state-dict names, given by the caller as a prefix (`L_level.layers.0.`).
//!
//! Every layer's `forward` binds its parameters to the tape afresh, so a layer applied many
//! times (TRM's recursion) accumulates one gradient per application.

pub mod attention;
pub mod block;
pub mod embedding;
pub mod linear;
pub mod swiglu;

pub use attention::SelfAttention;
pub use block::PostNormBlock;
pub use embedding::Embedding;
pub use linear::Linear;
pub use swiglu::SwiGlu;

/// A per-parameter init seed: the model seed mixed with the parameter's name (FNV-1a), so adding
/// or reordering parameters does not change the others' initial values.
pub fn init_seed(model_seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ model_seed;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
