//! `attention`: multi-head, non-causal scaled dot-product attention with optional dropout on the
//! probabilities, as one op with its own backward.

use crate::device::cpu::attention::{attention_bwd, attention_fwd};
use crate::error::Result;
use crate::tape::{Tape, Var};

pub use crate::device::cpu::attention::{AttentionDropout, AttentionOpts};

impl Tape {
    /// `softmax(scale·Q·Kᵀ)·V` per (batch, head) for `q`, `k`, `v` of shape `[B, S, H, hd]` (one
    /// dtype), returning `[B, S, H, hd]`. `opts` sets the scale (default `1/√hd`) and dropout on
    /// the probabilities (see `device::cpu::attention` for the Philox mask contract). The backward
    /// keeps q, k, v and the row log-sum-exp, and regenerates the mask from the same seed and step.
    pub fn attention(&self, q: &Var, k: &Var, v: &Var, opts: &AttentionOpts) -> Result<Var> {
        let out = attention_fwd(q.value(), k.value(), v.value(), opts)?;
        let (qs, ks, vs) = (q.value().clone(), k.value().clone(), v.value().clone());
        let (lse, opts) = (out.lse, *opts);
        self.record("attention", out.out, &[q, k, v], move |g| {
            let grads = attention_bwd(g, &qs, &ks, &vs, &lse, &opts)?;
            Ok(vec![Some(grads.dq), Some(grads.dk), Some(grads.dv)])
        })
    }
}
