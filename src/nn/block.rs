//! The HRM/TRM transformer block, post-norm with parameter-free RMSNorm:
//! `h = rms(h + attn(h)); h = rms(h + mlp(h))`.

use crate::error::Result;
use crate::nn::{SelfAttention, SwiGlu};
use crate::ops::norm::Norm;
use crate::ops::rope::RopeTable;
use crate::params::Params;
use crate::tape::{Tape, Var};

pub struct PostNormBlock {
    pub self_attn: SelfAttention,
    pub mlp: SwiGlu,
    pub rms_eps: f64,
}

/// Sizes of a block, with the official names.
#[derive(Clone, Copy, Debug)]
pub struct BlockConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub expansion: f64,
    pub rms_norm_eps: f64,
}

impl PostNormBlock {
    /// Registers `{prefix}self_attn.*` and `{prefix}mlp.*`.
    pub fn new(params: &mut Params, prefix: &str, cfg: BlockConfig, seed: u64) -> Result<Self> {
        if cfg.num_heads == 0 || cfg.hidden_size % cfg.num_heads != 0 {
            return Err(crate::Error::arg(
                "PostNormBlock",
                format!(
                    "hidden_size {} must be a positive multiple of num_heads {}",
                    cfg.hidden_size, cfg.num_heads
                ),
            ));
        }
        let head_dim = cfg.hidden_size / cfg.num_heads;
        Ok(PostNormBlock {
            self_attn: SelfAttention::new(
                params,
                &format!("{prefix}self_attn."),
                cfg.hidden_size,
                cfg.num_heads,
                head_dim,
                seed,
            )?,
            mlp: SwiGlu::new(
                params,
                &format!("{prefix}mlp."),
                cfg.hidden_size,
                cfg.expansion,
                seed,
            )?,
            rms_eps: cfg.rms_norm_eps,
        })
    }

    pub fn forward(
        &self,
        tape: &Tape,
        params: &Params,
        h: &Var,
        rope: Option<&RopeTable>,
    ) -> Result<Var> {
        let a = self.self_attn.forward(tape, params, h, rope)?;
        let h = tape.residual_norm(h, &a, Norm::rms(self.rms_eps))?;
        let m = self.mlp.forward(tape, params, &h)?;
        tape.residual_norm(&h, &m, Norm::rms(self.rms_eps))
    }
}
