//! Everything a run needs to continue bit-identically: live parameters, optimizer moments, EMA
//! shadow, puzzle table, the ACT carry (states, step counters, halted flags, the examples in
//! flight), the data-stream position and the exploration counter. One safetensors file, written
//! atomically, with the counters in its metadata.

use crate::checkpoint::{load_into_params, load_tensors, params_to_tensors, save_tensors};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::models::{Batch, Carry, Exploration};
use crate::optim::ema::Ema;
use crate::params::Params;
use crate::tensor::Tensor;
use crate::train::example_stream::{ExampleStream, StreamPosition};
use crate::train::trainer::Trainer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const META_KEY: &str = "recur.run_state";

#[derive(Serialize, Deserialize)]
struct Counters {
    step: u64,
    stream: StreamPosition,
    exploration: Exploration,
    elapsed_s: f64,
    config: String,
}

fn prefixed(
    prefix: &str,
    map: BTreeMap<String, Tensor>,
) -> impl Iterator<Item = (String, Tensor)> + '_ {
    map.into_iter()
        .map(move |(k, v)| (format!("{prefix}{k}"), v))
}

fn take_prefixed(map: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    map.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
        .collect()
}

/// The carry's per-slot steps or halted flags as a stored tensor gives them: i32 `[B]`.
fn flags(stored: Tensor) -> Result<Tensor> {
    let v = stored.to_vec_i32()?;
    let n = v.len();
    Tensor::from_vec(v, [n])
}

impl Trainer {
    pub fn save_state(&self, path: &Path, elapsed_s: f64) -> Result<()> {
        let mut tensors = BTreeMap::new();
        let params_map = |p: &Params| -> BTreeMap<String, Tensor> {
            p.iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect()
        };
        tensors.extend(prefixed("param.", params_map(&self.params)));
        tensors.extend(prefixed("adam.", self.optimizer.export_state(&self.params)));
        if let Some(ema) = &self.ema {
            tensors.extend(prefixed("ema.", params_to_tensors(ema.shadow())));
        }
        if let Some(table) = &self.model.buffers.puzzle_emb {
            tensors.insert("puzzle_emb.weights".into(), table.clone());
        }
        if let Some(c) = &self.carry {
            // The carry may live on the device: saving is where it comes back.
            tensors.insert("carry.z_H".into(), c.z_h.to_host()?);
            tensors.insert("carry.z_L".into(), c.z_l.to_host()?);
            tensors.insert("carry.steps".into(), c.steps.to_host()?);
            tensors.insert("carry.halted".into(), c.halted.to_host()?);
            tensors.insert("carry.inputs".into(), c.data.inputs.to_host()?);
            tensors.insert("carry.labels".into(), c.data.labels.to_host()?);
            tensors.insert("carry.puzzle_ids".into(), c.data.puzzle_ids.to_host()?);
        }
        let counters = Counters {
            step: self.step,
            stream: self.stream.position(),
            exploration: self.exploration,
            elapsed_s,
            config: self.cfg.to_toml()?,
        };
        let meta = BTreeMap::from([(
            META_KEY.to_string(),
            serde_json::to_string(&counters).expect("counters serialise"),
        )]);
        save_tensors(path, &tensors, &meta)
    }

    /// Restores a state written by `save_state` into a trainer built from the same config.
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let bad = |why: String| Error::arg("resume", format!("{}: {why}", path.display()));
        let (tensors, meta) = load_tensors(path)?;
        let counters: Counters = meta
            .get(META_KEY)
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("not a recur training state (no counters)".into()))?;
        if counters.config != self.cfg.to_toml()? {
            return Err(bad(
                "it was written by a run with a different configuration".into(),
            ));
        }
        let live = take_prefixed(&tensors, "param.");
        let mut params = self.params.clone();
        load_into_params(&mut params, &live, true).map_err(|e| bad(e.to_string()))?;
        let ema = match &self.ema {
            Some(ema) => {
                let mut shadow = params.clone();
                load_into_params(&mut shadow, &take_prefixed(&tensors, "ema."), true)
                    .map_err(|e| bad(format!("EMA: {e}")))?;
                Some(Ema::from_shadow(&params, shadow, ema.decay())?)
            }
            None => None,
        };
        let carry = match tensors.get("carry.z_H") {
            None => None,
            Some(z_h) => {
                let get = |k: &str| {
                    tensors
                        .get(k)
                        .cloned()
                        .ok_or_else(|| bad(format!("{k} is missing")))
                };
                Some(Carry {
                    z_h: z_h.clone(),
                    z_l: get("carry.z_L")?,
                    steps: flags(get("carry.steps")?)?,
                    halted: flags(get("carry.halted")?)?,
                    data: Batch::new(
                        get("carry.inputs")?,
                        get("carry.labels")?,
                        get("carry.puzzle_ids")?,
                    )?,
                })
            }
        };
        if let Some(table) = tensors.get("puzzle_emb.weights") {
            let mut buffers = self.model.buffers.clone();
            buffers.puzzle_emb = Some(table.to_dtype(DType::F32)?);
            self.model.set_buffers(buffers)?;
        }
        // Everything above only reads; from here the trainer changes, the optimizer first because
        // it is the one step that can still fail (and changes nothing when it does).
        self.optimizer
            .import_state(&params, &take_prefixed(&tensors, "adam."))?;
        self.params = params;
        self.ema = ema;
        self.carry = carry;
        self.step = counters.step;
        self.exploration = counters.exploration;
        self.stream = ExampleStream::new(
            self.cfg.train.seed,
            self.cfg.data.augment,
            self.data.train.len(),
            counters.stream,
        );
        self.elapsed_before_s = counters.elapsed_s;
        // The next step starts afresh from the loaded carry: eagerly, into new fixed state, and
        // is captured again after it.
        self.graph = None;
        self.step_state = None;
        // The loaded values are host tensors: back into the device arenas.
        self.make_resident()
    }
}
