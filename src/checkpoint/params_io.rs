//! Moving a model's `Params` to and from a map of named tensors (a loaded checkpoint).

use crate::checkpoint::names::{is_non_persistent, is_persistent_buffer, strip_official_prefix};
use crate::error::{Error, Result};
use crate::params::Params;
use crate::tensor::Tensor;
use std::collections::{BTreeMap, HashSet};

/// What `load_into_params` did besides setting the parameters.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// The parameters that were set, in the order of the `Params`.
    pub loaded: Vec<String>,
    /// Every persistent tensor that is not a parameter, by stripped name, in its stored dtype:
    /// the known buffers (`H_init`, `L_init`, `puzzle_emb.weights`) for the model to take, plus,
    /// when not strict, the `unexpected` ones.
    pub buffers: BTreeMap<String, Tensor>,
    /// Stripped names in `buffers` that are neither parameters nor known buffers. Empty when
    /// strict (they are an error then).
    pub unexpected: Vec<String>,
    /// Non-persistent tensors that were present and skipped (rotary tables, puzzle-embedding
    /// scratch), by stripped name: the model recomputes them.
    pub ignored: Vec<String>,
}

/// Sets every parameter of `params` from `tensors`, matching names after `strip_official_prefix`
/// (on both sides), so official checkpoints load directly. Values are converted to each
/// parameter's dtype (a bf16 checkpoint loads into f32 parameters), and accumulated gradients
/// are cleared since they belong to the old values.
///
/// Every parameter must be present with exactly its shape. All problems are collected and
/// returned as ONE error listing every missing name, every shape mismatch (expected and found),
/// every tensor of an unconvertible dtype, every pair of names that strip to the same name, and,
/// when `strict`, every unexpected name. On error `params` is left unchanged.
pub fn load_into_params(
    params: &mut Params,
    tensors: &BTreeMap<String, Tensor>,
    strict: bool,
) -> Result<LoadSummary> {
    let mut problems = Problems::default();
    let stripped = strip_all(tensors, &mut problems);

    let mut new_values = Vec::with_capacity(params.len());
    let mut summary = LoadSummary::default();
    for param in params.iter() {
        let name = strip_official_prefix(&param.name);
        let Some(found) = stripped.get(name) else {
            problems.missing.push(param.name.clone());
            continue;
        };
        if found.shape() != param.value.shape() {
            problems.shape.push(format!(
                "{}: expected {}, found {}",
                param.name,
                param.value.shape(),
                found.shape()
            ));
            continue;
        }
        match found.to_dtype(param.value.dtype()) {
            Ok(v) => {
                new_values.push(v);
                summary.loaded.push(param.name.clone());
            }
            Err(_) => problems.dtype.push(format!(
                "{}: a {} tensor cannot become a {} parameter",
                param.name,
                found.dtype(),
                param.value.dtype()
            )),
        }
    }

    let param_names: HashSet<&str> = params
        .iter()
        .map(|p| strip_official_prefix(&p.name))
        .collect();
    for (name, tensor) in stripped {
        if param_names.contains(name) {
            continue;
        }
        if is_non_persistent(name) {
            summary.ignored.push(name.to_string());
            continue;
        }
        if !is_persistent_buffer(name) {
            summary.unexpected.push(name.to_string());
        }
        summary.buffers.insert(name.to_string(), tensor.clone());
    }
    if strict {
        problems.unexpected = summary.unexpected.clone();
    }

    problems.into_result()?;
    for (param, value) in params.iter_mut().zip(new_values) {
        param.value = value;
        param.grad = None;
    }
    Ok(summary)
}

/// Every parameter's current value under its name, ready for `save_tensors`. Cheap: tensors
/// share storage with the parameters.
pub fn params_to_tensors(params: &Params) -> BTreeMap<String, Tensor> {
    params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

/// The tensors keyed by stripped name; two names that strip to the same one are a problem (the
/// checkpoint would be ambiguous), reported with both original names.
fn strip_all<'a>(
    tensors: &'a BTreeMap<String, Tensor>,
    problems: &mut Problems,
) -> BTreeMap<&'a str, &'a Tensor> {
    let mut by_stripped: BTreeMap<&str, (&str, &Tensor)> = BTreeMap::new();
    for (name, tensor) in tensors {
        let short = strip_official_prefix(name);
        if let Some((first, _)) = by_stripped.insert(short, (name, tensor)) {
            problems
                .ambiguous
                .push(format!("{first:?} and {name:?} both mean {short:?}"));
        }
    }
    by_stripped
        .into_iter()
        .map(|(short, (_, t))| (short, t))
        .collect()
}

/// Everything wrong with a checkpoint, gathered so one error can list it all.
#[derive(Default)]
struct Problems {
    missing: Vec<String>,
    shape: Vec<String>,
    dtype: Vec<String>,
    ambiguous: Vec<String>,
    unexpected: Vec<String>,
}

impl Problems {
    fn into_result(self) -> Result<()> {
        let sections = [
            ("missing parameters", self.missing),
            ("shape mismatches", self.shape),
            ("dtype mismatches", self.dtype),
            ("ambiguous names", self.ambiguous),
            ("unexpected tensors (strict load)", self.unexpected),
        ];
        let mut msg = String::from("the checkpoint does not fit the model's parameters");
        let mut any = false;
        for (title, items) in sections {
            if items.is_empty() {
                continue;
            }
            any = true;
            msg.push_str(&format!("\n  {title} ({}):", items.len()));
            for item in items {
                msg.push_str(&format!("\n    {item}"));
            }
        }
        if any {
            Err(Error::arg("load_into_params", msg))
        } else {
            Ok(())
        }
    }
}
