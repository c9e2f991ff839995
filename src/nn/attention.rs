//! The official self-attention: a fused `qkv_proj` (D → 3·H·hd, no bias) whose output is viewed
//! as `[B, S, 3H, hd]` and split q | k | v along the head axis, RoPE on q and k, non-causal
//! attention, and `o_proj` (H·hd → D, no bias).

use crate::error::Result;
use crate::nn::Linear;
use crate::ops::attention::AttentionOpts;
use crate::ops::rope::RopeTable;
use crate::params::Params;
use crate::tape::{Tape, Var};

pub struct SelfAttention {
    pub qkv_proj: Linear,
    pub o_proj: Linear,
    pub heads: usize,
    pub head_dim: usize,
}

impl SelfAttention {
    pub fn new(
        params: &mut Params,
        prefix: &str,
        hidden: usize,
        heads: usize,
        head_dim: usize,
        seed: u64,
    ) -> Result<SelfAttention> {
        let inner = heads * head_dim;
        Ok(SelfAttention {
            qkv_proj: Linear::new(
                params,
                &format!("{prefix}qkv_proj."),
                hidden,
                3 * inner,
                false,
                seed,
            )?,
            o_proj: Linear::new(
                params,
                &format!("{prefix}o_proj."),
                inner,
                hidden,
                false,
                seed,
            )?,
            heads,
            head_dim,
        })
    }

    /// `x` is `[B, S, D]`; `rope` (if any) must cover S positions.
    pub fn forward(
        &self,
        tape: &Tape,
        params: &Params,
        x: &Var,
        rope: Option<&RopeTable>,
    ) -> Result<Var> {
        let (b, s) = (x.dims()[0], x.dims()[1]);
        let qkv = self.qkv_proj.forward(tape, params, x)?;
        let qkv = tape.reshape(&qkv, [b, s, 3 * self.heads, self.head_dim])?;
        let parts = tape.split(&qkv, &[self.heads; 3], 2)?;
        let (mut q, mut k, v) = (parts[0].clone(), parts[1].clone(), &parts[2]);
        if let Some(table) = rope {
            q = tape.rope_1d(&q, table)?;
            k = tape.rope_1d(&k, table)?;
        }
        let o = tape.attention(&q, &k, v, &AttentionOpts::default())?;
        let o = tape.reshape(&o, [b, s, self.heads * self.head_dim])?;
        self.o_proj.forward(tape, params, &o)
    }
}
