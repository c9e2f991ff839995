//! The model configuration, with the official field names (`config/arch/*.yaml` of the HRM and
//! TRM repos) so an official config carries over as it is.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::nn::swiglu::intermediate_size;
use serde::{Deserialize, Serialize};

/// Which recursion runs the reasoning module(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// TRM: one network updates both z_L (n = `L_cycles` times) and z_H, `H_cycles` times; the
    /// first `H_cycles − 1` cycles run without gradient.
    Trm,
    /// HRM: separate `H_level` and `L_level` networks; only the last L and H calls carry
    /// gradient (the 1-step gradient).
    Hrm,
}

/// The storage type of the forward pass (the official `forward_dtype`). Master weights, their
/// gradients and the optimizer state stay f32 whatever it is (`docs/training-state.md`, "bf16
/// autocast").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardDtype {
    /// `bfloat16` on a GPU, as the official code trains, and `float32` elsewhere: the CPU
    /// reference and Emu gain nothing from bf16 storage but rounding. The trainer resolves it
    /// when it is built (`resolve`), so a checkpoint records what actually ran.
    #[default]
    Auto,
    Float32,
    Bfloat16,
}

impl ForwardDtype {
    /// The official value this resolves to on a device that is (`on_gpu`) or is not a GPU.
    pub fn resolve(self, on_gpu: bool) -> ForwardDtype {
        match self {
            ForwardDtype::Auto if on_gpu => ForwardDtype::Bfloat16,
            ForwardDtype::Auto => ForwardDtype::Float32,
            explicit => explicit,
        }
    }

    /// The storage dtype the model computes in. `Auto` that nobody resolved is float32: a model
    /// built directly (tests, the golden comparison) runs the f32 reference path.
    pub fn dtype(self) -> DType {
        match self {
            ForwardDtype::Bfloat16 => DType::BF16,
            ForwardDtype::Auto | ForwardDtype::Float32 => DType::F32,
        }
    }
}

/// Position encoding of the tokens (and the puzzle prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosEncoding {
    /// Rotate-half RoPE inside attention, θ = `rope_theta`.
    Rope,
    /// A learned table added to the embeddings, `0.707106781·(emb + pos)`.
    Learned,
    /// Nothing (TRM-MLP: the token-mixing MLP sees positions through its weights).
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub expansion: f64,
    pub H_cycles: usize,
    pub L_cycles: usize,
    /// Blocks of `H_level` (HRM only; TRM ignores it as the official code does).
    pub H_layers: usize,
    pub L_layers: usize,
    /// Width of the puzzle-identifier embedding; 0 turns the prefix off.
    pub puzzle_emb_ndim: usize,
    /// Prefix slots; 0 means `ceil(puzzle_emb_ndim / hidden_size)` (HRM's rule; TRM's config
    /// sets 16).
    pub puzzle_emb_len: usize,
    pub pos_encodings: PosEncoding,
    /// TRM-MLP: a token-mixing SwiGLU over the sequence axis in place of attention.
    pub mlp_t: bool,
    pub halt_max_steps: usize,
    pub halt_exploration_prob: f64,
    /// TRM's rule: halt when `q_halt > 0`, no Q-continue loss and no extra forward. HRM's rule
    /// (false): halt when `q_halt > q_continue`, Q-continue trained on a bootstrapped target.
    pub no_ACT_continue: bool,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// `float32`, `bfloat16` or `auto` (bf16 on a GPU only); absent means `auto`.
    #[serde(default)]
    pub forward_dtype: ForwardDtype,
    /// Task sizes, filled from the dataset.
    pub vocab_size: usize,
    pub seq_len: usize,
    pub num_puzzle_identifiers: usize,
}

impl ModelConfig {
    /// TRM-Att for 9×9 Sudoku as the paper runs it (`config/arch/trm.yaml`).
    pub fn trm_att_sudoku() -> ModelConfig {
        ModelConfig {
            arch: Arch::Trm,
            hidden_size: 512,
            num_heads: 8,
            expansion: 4.0,
            H_cycles: 3,
            L_cycles: 6,
            H_layers: 0,
            L_layers: 2,
            puzzle_emb_ndim: 512,
            puzzle_emb_len: 16,
            pos_encodings: PosEncoding::Rope,
            mlp_t: false,
            halt_max_steps: 16,
            halt_exploration_prob: 0.1,
            no_ACT_continue: true,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-5,
            forward_dtype: ForwardDtype::Auto,
            vocab_size: 11,
            seq_len: 81,
            num_puzzle_identifiers: 1,
        }
    }

    /// TRM-MLP for Sudoku (the 87.4% run): `mlp_t`, no position encoding.
    pub fn trm_mlp_sudoku() -> ModelConfig {
        ModelConfig {
            mlp_t: true,
            pos_encodings: PosEncoding::None,
            ..ModelConfig::trm_att_sudoku()
        }
    }

    /// HRM for Sudoku (`config/arch/hrm_v1.yaml`): two 4-block modules, N = T = 2, one prefix slot.
    pub fn hrm_sudoku() -> ModelConfig {
        ModelConfig {
            arch: Arch::Hrm,
            H_cycles: 2,
            L_cycles: 2,
            H_layers: 4,
            L_layers: 4,
            puzzle_emb_len: 0,
            no_ACT_continue: false,
            ..ModelConfig::trm_att_sudoku()
        }
    }

    /// Prefix slots in front of the tokens.
    pub fn prefix_len(&self) -> usize {
        if self.puzzle_emb_ndim == 0 {
            0
        } else if self.puzzle_emb_len == 0 {
            self.puzzle_emb_ndim.div_ceil(self.hidden_size)
        } else {
            self.puzzle_emb_len
        }
    }

    /// Whether the Q head asks to halt: TRM's rule (`no_ACT_continue`) is `q_halt > 0`, HRM's is
    /// `q_halt > q_continue`. Training halts on it (subject to exploration); evaluation only
    /// records where it would have.
    pub fn q_head_halts(&self, q_halt: f32, q_continue: f32) -> bool {
        if self.no_ACT_continue {
            q_halt > 0.0
        } else {
            q_halt > q_continue
        }
    }

    /// Positions the reasoning modules see: prefix plus tokens.
    pub fn total_len(&self) -> usize {
        self.prefix_len() + self.seq_len
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// Errors on sizes the model cannot be built with, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field: &str, why: String| Err(Error::arg("model config", format!("{field}: {why}")));
        let positive = [
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("H_cycles", self.H_cycles),
            ("L_cycles", self.L_cycles),
            ("L_layers", self.L_layers),
            ("halt_max_steps", self.halt_max_steps),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
        ];
        for (field, v) in positive {
            if v == 0 {
                return bad(field, "must be positive".into());
            }
        }
        if self.arch == Arch::Hrm && self.H_layers == 0 {
            return bad("H_layers", "HRM needs at least one H block".into());
        }
        if self.hidden_size % self.num_heads != 0 {
            return bad(
                "num_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_heads, self.hidden_size
                ),
            );
        }
        if !self.mlp_t && self.head_dim() % 2 != 0 {
            return bad("num_heads", "the head dim must be even for RoPE".into());
        }
        if self.puzzle_emb_ndim > self.prefix_len() * self.hidden_size {
            return bad(
                "puzzle_emb_len",
                format!(
                    "{} slots of {} cannot hold a {}-wide puzzle embedding",
                    self.prefix_len(),
                    self.hidden_size,
                    self.puzzle_emb_ndim
                ),
            );
        }
        if self.puzzle_emb_ndim > 0 && self.num_puzzle_identifiers == 0 {
            return bad("num_puzzle_identifiers", "must be positive".into());
        }
        if self.expansion.is_nan() || self.expansion <= 0.0 {
            return bad("expansion", format!("{} is not positive", self.expansion));
        }
        if !(0.0..=1.0).contains(&self.halt_exploration_prob) {
            return bad(
                "halt_exploration_prob",
                format!("{} is not a probability", self.halt_exploration_prob),
            );
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.rms_norm_eps) || !positive(self.rope_theta) {
            return bad("rms_norm_eps / rope_theta", "must be positive".into());
        }
        Ok(())
    }

    /// The number of trainable parameters (the puzzle table and the init buffers are not
    /// parameters), computed from the sizes alone: the parameter-count test compares it with
    /// both the paper's numbers and a built model.
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let block = |_: usize| {
            let mixer = if self.mlp_t {
                let l = self.total_len();
                let inter = intermediate_size(l, self.expansion);
                l * 2 * inter + inter * l
            } else {
                d * 3 * d + d * d
            };
            let inter = intermediate_size(d, self.expansion);
            mixer + d * 2 * inter + inter * d
        };
        let layers = self.L_layers
            + if self.arch == Arch::Hrm {
                self.H_layers
            } else {
                0
            };
        let learned_pos = if self.pos_encodings == PosEncoding::Learned {
            self.total_len() * d
        } else {
            0
        };
        2 * self.vocab_size * d + (2 * d + 2) + learned_pos + (0..layers).map(block).sum::<usize>()
    }
}
