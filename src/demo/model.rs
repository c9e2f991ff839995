//! The demo model: TRM's block (post-norm RMSNorm, SwiGLU, 1D RoPE over a one-token prefix)
//! stacked twice, between a token embedding scaled by √D and an `lm_head`.
//!
//! The prefix token plays the role of TRM's puzzle-embedding slot: it sits at position 0, RoPE
//! covers it, and its logits are sliced off.

use crate::error::{Error, Result};
use crate::nn::block::BlockConfig;
use crate::nn::{Embedding, Linear, PostNormBlock};
use crate::ops::rope::RopeTable;
use crate::params::Params;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
pub struct ModelConfig {
    pub vocab: usize,
    pub seq_len: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub expansion: f64,
    pub rope_theta: f64,
}

pub struct SortModel {
    cfg: ModelConfig,
    embed_tokens: Embedding,
    layers: Vec<PostNormBlock>,
    lm_head: Linear,
    rope: RopeTable,
}

impl SortModel {
    pub fn new(params: &mut Params, cfg: ModelConfig, seed: u64) -> Result<SortModel> {
        let d = cfg.hidden_size;
        let block = BlockConfig {
            hidden_size: d,
            num_heads: cfg.num_heads,
            expansion: cfg.expansion,
            rms_norm_eps: 1e-5,
        };
        let layers = (0..cfg.num_layers)
            .map(|i| PostNormBlock::new(params, &format!("L_level.layers.{i}."), block, seed))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortModel {
            cfg,
            // One extra row: the prefix token's id is `vocab`.
            embed_tokens: Embedding::new(
                params,
                "embed_tokens.",
                cfg.vocab + 1,
                d,
                1.0 / (d as f64).sqrt(),
                seed,
            )?,
            layers,
            lm_head: Linear::new(params, "lm_head.", d, cfg.vocab, false, seed)?,
            rope: RopeTable::one_d(cfg.seq_len + 1, d / cfg.num_heads, cfg.rope_theta)?,
        })
    }

    /// Logits `[B, seq_len, vocab]` for i32 `inputs [B, seq_len]`.
    pub fn forward(&self, tape: &Tape, params: &Params, inputs: &Tensor) -> Result<Var> {
        let (b, s) = match inputs.dims() {
            &[b, s] if s == self.cfg.seq_len => (b, s),
            _ => {
                return Err(Error::shape(
                    "SortModel",
                    format!(
                        "inputs must be [B, {}], got {}",
                        self.cfg.seq_len,
                        inputs.shape()
                    ),
                ))
            }
        };
        let mut ids = Vec::with_capacity(b * (s + 1));
        for row in inputs.i32_data("SortModel")?.chunks(s) {
            ids.push(self.cfg.vocab as i32);
            ids.extend_from_slice(row);
        }
        let ids = Tensor::from_vec(ids, [b, s + 1])?;
        let emb = self.embed_tokens.forward(tape, params, &ids)?;
        let mut h = tape.scale(&emb, (self.cfg.hidden_size as f64).sqrt())?;
        for layer in &self.layers {
            h = layer.forward(tape, params, &h, Some(&self.rope))?;
        }
        let tokens = tape.narrow(&h, 1, 1, s)?;
        self.lm_head.forward(tape, params, &tokens)
    }
}

/// Fraction of tokens whose argmax equals the label.
pub fn token_accuracy(tape: &Tape, logits: &Var, labels: &Tensor) -> Result<f64> {
    let pred = tape.argmax(logits, -1)?;
    let (p, l) = (
        pred.i32_data("token_accuracy")?,
        labels.i32_data("token_accuracy")?,
    );
    if p.len() != l.len() {
        return Err(Error::shape(
            "token_accuracy",
            format!("{} predictions for {} labels", p.len(), l.len()),
        ));
    }
    Ok(p.iter().zip(l).filter(|(a, b)| a == b).count() as f64 / l.len().max(1) as f64)
}

/// The mean over sequences of the per-sequence mean cross-entropy.
pub fn loss(tape: &Tape, logits: &Var, labels: &Tensor) -> Result<Var> {
    let per_seq = tape.softmax_cross_entropy(logits, labels)?;
    let total = tape.sum_all(&per_seq)?;
    tape.scale(&total, 1.0 / labels.dims()[0].max(1) as f64)
}
