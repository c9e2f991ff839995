//! The model checkpoint: one safetensors file with the parameters and persistent buffers under
//! the official state-dict names (no prefix), and the run configuration in its metadata, so
//! `eval`, `solve` and `predict` need nothing else. Official checkpoints converted by
//! `tools/convert_torch_checkpoint.py` load through the same path (their prefixes are stripped);
//! they carry no config, so the caller names the preset.

use crate::checkpoint::{load_into_params, load_tensors, params_to_tensors, save_tensors};
use crate::error::{Error, Result};
use crate::models::{Buffers, ModelConfig, Reasoner};
use crate::params::Params;
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key holding the run config as TOML.
pub const CONFIG_KEY: &str = "recur.config";
pub const STEP_KEY: &str = "recur.step";

/// Parameters plus buffers under their official names.
pub fn model_tensors(params: &Params, buffers: &Buffers) -> BTreeMap<String, Tensor> {
    let mut tensors = params_to_tensors(params);
    tensors.insert(Buffers::H_INIT.into(), buffers.h_init.clone());
    tensors.insert(Buffers::L_INIT.into(), buffers.l_init.clone());
    if let Some(t) = &buffers.puzzle_emb {
        tensors.insert(Buffers::PUZZLE_EMB.into(), t.clone());
    }
    tensors
}

/// Writes the checkpoint atomically.
pub fn save_model(
    path: &Path,
    params: &Params,
    buffers: &Buffers,
    config_toml: &str,
    step: u64,
) -> Result<()> {
    let metadata = BTreeMap::from([
        (CONFIG_KEY.to_string(), config_toml.to_string()),
        (STEP_KEY.to_string(), step.to_string()),
    ]);
    save_tensors(path, &model_tensors(params, buffers), &metadata)
}

/// A loaded checkpoint's tensors and the config it recorded, if any.
pub struct ModelFile {
    pub tensors: BTreeMap<String, Tensor>,
    pub config_toml: Option<String>,
    pub step: Option<u64>,
}

pub fn read_model(path: &Path) -> Result<ModelFile> {
    let (tensors, metadata) = load_tensors(path)?;
    Ok(ModelFile {
        tensors,
        config_toml: metadata.get(CONFIG_KEY).cloned(),
        step: metadata.get(STEP_KEY).and_then(|s| s.parse().ok()),
    })
}

/// Builds `cfg`'s model and fills it from `file`. Every parameter and buffer must be present
/// with its exact shape; the error lists everything that is not.
pub fn instantiate(
    cfg: &ModelConfig,
    file: &ModelFile,
    origin: &Path,
) -> Result<(Reasoner, Params)> {
    let mut params = Params::new();
    let mut model = Reasoner::new(&mut params, cfg.clone(), 0)?;
    let summary = load_into_params(&mut params, &file.tensors, false)
        .map_err(|e| Error::arg("checkpoint", format!("{}: {e}", origin.display())))?;
    let mut buffers = summary.buffers;
    let mut take = |name: &str| buffers.remove(name);
    let loaded = Buffers {
        h_init: take(Buffers::H_INIT).ok_or_else(|| missing(origin, Buffers::H_INIT))?,
        l_init: take(Buffers::L_INIT).ok_or_else(|| missing(origin, Buffers::L_INIT))?,
        puzzle_emb: take(Buffers::PUZZLE_EMB),
    };
    model
        .set_buffers(loaded)
        .map_err(|e| Error::arg("checkpoint", format!("{}: {e}", origin.display())))?;
    Ok((model, params))
}

fn missing(origin: &Path, name: &str) -> Error {
    Error::arg(
        "checkpoint",
        format!("{}: the buffer {name} is missing", origin.display()),
    )
}
