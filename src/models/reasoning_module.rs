//! The reasoning module (`L_level`, `H_level`): input injection by addition, then a stack of
//! post-norm blocks. A block mixes positions with self-attention (TRM-Att, HRM) or with a
//! token-mixing SwiGLU over the sequence axis (TRM-MLP's `mlp_t`), then applies the channel
//! SwiGLU; both sub-layers end in a parameter-free RMSNorm.

use crate::error::Result;
use crate::models::config::ModelConfig;
use crate::models::probe::Probe;
use crate::nn::block::BlockConfig;
use crate::nn::{PostNormBlock, SwiGlu};
use crate::ops::norm::Norm;
use crate::ops::rope::RopeTable;
use crate::params::Params;
use crate::tape::{Tape, Var};

pub enum ReasoningBlock {
    Attention(PostNormBlock),
    /// `h = rms_L(h + mlp_t(h)ᵀ)` over the sequence axis, then `h = rms(h + mlp(h))`.
    TokenMixing {
        mlp_t: SwiGlu,
        mlp: SwiGlu,
        rms_eps: f64,
    },
}

impl ReasoningBlock {
    fn new(params: &mut Params, prefix: &str, cfg: &ModelConfig, seed: u64) -> Result<Self> {
        if !cfg.mlp_t {
            let block = BlockConfig {
                hidden_size: cfg.hidden_size,
                num_heads: cfg.num_heads,
                expansion: cfg.expansion,
                rms_norm_eps: cfg.rms_norm_eps,
            };
            return Ok(ReasoningBlock::Attention(PostNormBlock::new(
                params, prefix, block, seed,
            )?));
        }
        Ok(ReasoningBlock::TokenMixing {
            mlp_t: SwiGlu::new(
                params,
                &format!("{prefix}mlp_t."),
                cfg.total_len(),
                cfg.expansion,
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

    fn forward(
        &self,
        tape: &Tape,
        params: &Params,
        h: &Var,
        rope: Option<&RopeTable>,
    ) -> Result<Var> {
        match self {
            ReasoningBlock::Attention(block) => block.forward(tape, params, h, rope),
            ReasoningBlock::TokenMixing {
                mlp_t,
                mlp,
                rms_eps,
            } => {
                let norm = Norm::rms(*rms_eps);
                let by_position = tape.transpose_last2(h)?;
                let mixed = mlp_t.forward(tape, params, &by_position)?;
                let by_position = tape.residual_norm(&by_position, &mixed, norm)?;
                let h = tape.transpose_last2(&by_position)?;
                let m = mlp.forward(tape, params, &h)?;
                tape.residual_norm(&h, &m, norm)
            }
        }
    }
}

pub struct ReasoningModule {
    /// The official module name (`L_level`, `H_level`), for parameter names and probe labels.
    pub name: &'static str,
    pub layers: Vec<ReasoningBlock>,
}

impl ReasoningModule {
    /// Registers `{name}.layers.{i}.*` for `num_layers` blocks.
    pub fn new(
        params: &mut Params,
        name: &'static str,
        num_layers: usize,
        cfg: &ModelConfig,
        seed: u64,
    ) -> Result<ReasoningModule> {
        let layers = (0..num_layers)
            .map(|i| ReasoningBlock::new(params, &format!("{name}.layers.{i}."), cfg, seed))
            .collect::<Result<Vec<_>>>()?;
        Ok(ReasoningModule { name, layers })
    }

    /// `layers(Σ terms)`: the first term is the state being updated, the rest its injection
    /// (`z_L + z_H + x` for the L update, `z_H + z_L` for the H update). `call` numbers this
    /// call within the segment for the probe.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        tape: &Tape,
        params: &Params,
        terms: &[&Var],
        rope: Option<&RopeTable>,
        probe: &Probe,
        call: usize,
    ) -> Result<Var> {
        let mut h = tape.inject_add(terms)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tape, params, &h, rope)?;
            if call == 0 {
                probe.record(|| format!("call00.{}.layers.{i}", self.name), h.value());
            }
        }
        probe.record(|| format!("call{call:02}.{}", self.name), h.value());
        Ok(h)
    }
}
