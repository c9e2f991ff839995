//! `recur predict`: runs a checkpoint in f32 on puzzles from a CSV and dumps, per supervision
//! step, the logits and both Q logits, plus the final z_H and z_L, under the golden fixture's
//! names (`stepKK.logits`, `stepKK.q_halt_logits`, `stepKK.q_continue_logits`, `final.z_H`,
//! `final.z_L`), so the numbers can be compared with another implementation.

use crate::checkpoint::save_tensors;
use crate::cli::model_args::load_puzzles;
use crate::cli::model_args::{check_task_sizes, load_checkpoint, ConfigArgs};
use crate::cli::train::DEFAULT_PRESET;
use crate::data::sudoku::{encode_batch, seq_len, vocab_size};
use crate::error::{Error, Result};
use crate::models::{act_step, Batch, Carry, Halting, Probe};
use crate::tape::Tape;
use crate::tensor::Tensor;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Puzzles in the Sudoku-Extreme CSV layout.
    #[arg(long)]
    pub input: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    pub dump: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Skip (and count) malformed CSV rows instead of stopping at the first.
    #[arg(long)]
    pub skip_malformed: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (cfg, model, params) = load_checkpoint(&args.checkpoint, &args.config, DEFAULT_PRESET)?;
    let puzzles = load_puzzles(&args.input, args.skip_malformed)?;
    let first = puzzles.first().ok_or_else(|| {
        Error::arg(
            "predict",
            format!("{} has no puzzles", args.input.display()),
        )
    })?;
    check_task_sizes(
        &cfg.model,
        seq_len(first.geometry),
        vocab_size(first.geometry),
    )?;
    let steps = cfg.model.halt_max_steps;
    // Per output name, the chunks' tensors in order.
    let mut parts: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
    for chunk in puzzles.chunks(args.batch_size.max(1)) {
        let (inputs, labels) = encode_batch(chunk)?;
        let batch = Batch::new(
            inputs,
            labels,
            Tensor::from_vec(vec![0i32; chunk.len()], [chunk.len()])?,
        )?;
        let mut carry = Carry::initial(&model, &batch)?;
        for k in 1..=steps {
            // f32 on the CPU reference, so the dump is comparable across implementations.
            let tape = Tape::new();
            let step = tape.no_grad(|| {
                act_step(
                    &model,
                    &tape,
                    &params,
                    carry,
                    &batch,
                    Halting::Eval,
                    &Probe::off(),
                )
            })?;
            let out = &step.output;
            for (name, t) in [
                ("logits", out.logits.value()),
                ("q_halt_logits", out.q_halt.value()),
                ("q_continue_logits", out.q_continue.value()),
            ] {
                parts
                    .entry(format!("step{k:02}.{name}"))
                    .or_default()
                    .push(t.clone());
            }
            if k == steps {
                parts
                    .entry("final.z_H".into())
                    .or_default()
                    .push(step.carry.z_h.clone());
                parts
                    .entry("final.z_L".into())
                    .or_default()
                    .push(step.carry.z_l.clone());
            }
            carry = step.carry;
        }
    }
    let mut tensors = BTreeMap::new();
    for (name, chunks) in parts {
        let refs: Vec<&Tensor> = chunks.iter().collect();
        tensors.insert(name, crate::device::cpu::layout::concat_fwd(&refs, 0)?);
    }
    let meta = BTreeMap::from([
        ("puzzles".to_string(), puzzles.len().to_string()),
        (
            "checkpoint".to_string(),
            args.checkpoint.display().to_string(),
        ),
        ("dtype".to_string(), "float32".to_string()),
    ]);
    save_tensors(&args.dump, &tensors, &meta)?;
    println!(
        "wrote {} tensors for {} puzzles × {steps} steps to {}",
        tensors.len(),
        puzzles.len(),
        args.dump.display()
    );
    Ok(())
}
