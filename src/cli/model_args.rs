//! Arguments shared by the commands that build a model: `--preset`, `--arch`, `--set`, and
//! for the ones that load weights, `--checkpoint`.

use crate::error::{Error, Result};
use crate::models::{ModelConfig, Reasoner};
use crate::params::Params;
use crate::train::model_file::{instantiate, read_model};
use crate::train::RunConfig;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArchChoice {
    /// TRM with self-attention blocks and RoPE.
    TrmAtt,
    /// TRM with the token-mixing MLP (`mlp_t`) and no position encoding.
    TrmMlp,
    /// HRM: separate H and L modules, Q-continue target.
    Hrm,
}

impl ArchChoice {
    /// The `--set` edits that turn a preset's model into this architecture; the user's own
    /// `--set`s come after, so they win.
    pub fn overrides(self) -> Vec<String> {
        let v: &[&str] = match self {
            ArchChoice::TrmAtt => &[
                "model.arch=trm",
                "model.mlp_t=false",
                "model.pos_encodings=rope",
                "model.no_ACT_continue=true",
            ],
            ArchChoice::TrmMlp => &[
                "model.arch=trm",
                "model.mlp_t=true",
                "model.pos_encodings=none",
                "model.no_ACT_continue=true",
            ],
            ArchChoice::Hrm => &[
                "model.arch=hrm",
                "model.mlp_t=false",
                "model.pos_encodings=rope",
                "model.no_ACT_continue=false",
            ],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// A built-in preset (trm-sudoku6, trm-cpu, hrm-cpu, trm-att-sudoku, trm-mlp-sudoku,
    /// hrm-sudoku) or a TOML file with [model], [data] and [train].
    #[arg(long)]
    pub preset: Option<String>,
    /// The model family; edits the preset's [model] before any --set.
    #[arg(long, value_enum)]
    pub arch: Option<ArchChoice>,
    /// Override one field: `--set hidden_size=128 --set train.lr=3e-4` (official names).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// The run config: `--preset` (default `default_preset`), then `--arch`, then `--set`.
    pub fn resolve(&self, default_preset: &str) -> Result<RunConfig> {
        let preset = self.preset.as_deref().unwrap_or(default_preset);
        self.finish(RunConfig::load(preset, &self.edits())?)
    }

    /// The same edits applied to a config recorded in a checkpoint.
    pub fn resolve_recorded(&self, toml: &str, origin: &str) -> Result<RunConfig> {
        self.finish(RunConfig::from_toml(toml, origin, &self.edits())?)
    }

    fn edits(&self) -> Vec<String> {
        let mut edits = self.arch.map(ArchChoice::overrides).unwrap_or_default();
        edits.extend(self.overrides.iter().cloned());
        edits
    }

    /// `--arch hrm` on a TRM preset: HRM needs an H module, so it gets as many blocks as the L
    /// module unless `--set H_layers=...` said otherwise.
    fn finish(&self, mut cfg: RunConfig) -> Result<RunConfig> {
        if self.arch == Some(ArchChoice::Hrm) && cfg.model.H_layers == 0 {
            cfg.model.H_layers = cfg.model.L_layers;
        }
        cfg.validate()?;
        cfg.model.validate()?;
        Ok(cfg)
    }
}

/// A model loaded from `--checkpoint`: its recorded config (with `--arch`/`--set` applied), or
/// `--preset` for an official checkpoint that records none.
pub fn load_checkpoint(
    path: &Path,
    config: &ConfigArgs,
    default_preset: &str,
) -> Result<(RunConfig, Reasoner, Params)> {
    if !path.is_file() {
        return Err(Error::arg(
            "checkpoint",
            format!(
                "{} does not exist (train a model with `recur train`, or convert an official one \
                 with tools/convert_torch_checkpoint.py)",
                path.display()
            ),
        ));
    }
    let file = read_model(path)?;
    let cfg = match (&file.config_toml, &config.preset) {
        (Some(toml), None) => config.resolve_recorded(toml, &path.display().to_string())?,
        _ => config.resolve(default_preset)?,
    };
    let (model, params) = instantiate(&cfg.model, &file, path)?;
    Ok((cfg, model, params))
}

/// Where a run's files go by default.
pub fn default_run_dir(preset: &str) -> PathBuf {
    let stem = Path::new(preset)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(stem)
}

/// Checks the model config against the dataset's geometry before any weights are touched.
pub fn check_task_sizes(model: &ModelConfig, seq_len: usize, vocab: usize) -> Result<()> {
    if model.seq_len != seq_len || model.vocab_size != vocab {
        return Err(Error::shape(
            "task",
            format!(
                "the model expects {} cells over a vocabulary of {}, the puzzles have {} cells \
                 and need {} tokens",
                model.seq_len, model.vocab_size, seq_len, vocab
            ),
        ));
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where the ops run: `cpu` (the reference), `emu` (the CUDA kernels on the CPU) or `cuda`.
    /// Default: the GPU when one is usable, else the CPU.
    #[arg(long)]
    pub device: Option<String>,
}

impl DeviceArgs {
    pub fn compute(&self) -> Result<crate::tape::Compute> {
        match &self.device {
            Some(flag) => crate::tape::Compute::from_flag(flag),
            None => Ok(crate::tape::Compute::auto()),
        }
    }
}

/// Puzzles from a Sudoku-Extreme-layout CSV; with `skip_malformed`, bad rows are skipped and
/// their count (and the first reasons) printed, so nothing is dropped silently.
pub fn load_puzzles(path: &Path, skip_malformed: bool) -> Result<Vec<crate::data::sudoku::Puzzle>> {
    let opts = crate::data::sudoku::LoadOptions {
        skip_malformed,
        limit: None,
    };
    let (puzzles, report) = crate::data::sudoku::load_csv(path, opts)?;
    if report.skipped > 0 {
        eprintln!(
            "{}: skipped {} malformed rows of {}; first: {}",
            path.display(),
            report.skipped,
            report.rows,
            report.first_skip_reasons.join("; ")
        );
    }
    Ok(puzzles)
}
