//! `recur demo`: train a small TRM-block transformer to sort digits on the CPU, to show the whole
//! engine (ops, tape, optimizer, schedule) learning something real in under a minute.

pub mod model;
pub mod task;

use crate::error::{Error, Result};
use crate::optim::{AdamW, AdamWConfig, WarmupCosine};
use crate::params::Params;
use crate::tape::Tape;
use model::{ModelConfig, SortModel};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;
use task::SortTask;

#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub seq_len: usize,
    pub vocab: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub batch_size: usize,
    /// The most optimizer steps to take; training stops earlier at `target_accuracy`.
    pub max_steps: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub seed: u64,
    /// Evaluate on the held-out set every this many steps.
    pub eval_every: usize,
    pub eval_size: usize,
    /// Stop once held-out token accuracy reaches this.
    pub target_accuracy: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seq_len: 16,
            vocab: 8,
            hidden_size: 64,
            num_heads: 4,
            num_layers: 2,
            batch_size: 64,
            max_steps: 3000,
            lr: 3e-3,
            warmup_steps: 50,
            weight_decay: 0.01,
            seed: 0,
            eval_every: 50,
            eval_size: 512,
            target_accuracy: 0.995,
        }
    }
}

/// What the trainer reports as it goes.
pub enum Progress {
    Step {
        step: usize,
        loss: f64,
        accuracy: f64,
    },
    Eval {
        step: usize,
        accuracy: f64,
    },
}

pub struct DemoReport {
    pub steps: usize,
    pub seconds: f64,
    pub num_params: usize,
    /// Token accuracy on a fresh test set never used for training or early stopping.
    pub test_accuracy: f64,
    /// Fraction of test sequences sorted entirely right.
    pub test_exact: f64,
}

pub fn train(cfg: &DemoConfig, mut progress: impl FnMut(Progress)) -> Result<DemoReport> {
    if cfg.batch_size == 0 || cfg.max_steps == 0 || cfg.eval_every == 0 || cfg.eval_size == 0 {
        return Err(Error::arg(
            "demo",
            "batch size, steps, eval interval and eval size must be positive",
        ));
    }
    let start = Instant::now();
    let task = SortTask::new(cfg.seq_len, cfg.vocab)?;
    let mut params = Params::new();
    let model = SortModel::new(
        &mut params,
        ModelConfig {
            vocab: cfg.vocab,
            seq_len: cfg.seq_len,
            hidden_size: cfg.hidden_size,
            num_heads: cfg.num_heads,
            num_layers: cfg.num_layers,
            expansion: 4.0,
            rope_theta: 10_000.0,
        },
        cfg.seed,
    )?;
    let mut opt = AdamW::new(AdamWConfig {
        lr: cfg.lr,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: cfg.weight_decay,
    })?;
    let schedule = WarmupCosine::new(
        cfg.lr,
        // A run shorter than the warmup just warms up.
        cfg.warmup_steps.min(cfg.max_steps) as u64,
        cfg.max_steps as u64,
        0.1,
    )?;

    // Three independent streams: training batches, the early-stopping set, the final test set.
    let mut train_rng = StdRng::seed_from_u64(cfg.seed);
    let eval_set = task.batch(&mut StdRng::seed_from_u64(cfg.seed ^ 0xe7a1), cfg.eval_size);
    let test_set = task.batch(&mut StdRng::seed_from_u64(cfg.seed ^ 0x7e57), cfg.eval_size);

    let mut steps = 0;
    while steps < cfg.max_steps {
        let (inputs, labels) = task.batch(&mut train_rng, cfg.batch_size);
        let tape = Tape::new();
        let logits = model.forward(&tape, &params, &inputs)?;
        let loss = model::loss(&tape, &logits, &labels)?;
        let accuracy = model::token_accuracy(&tape, &logits, &labels)?;
        params.accumulate(tape.compute(), tape.backward(&loss)?.param_grads())?;
        steps += 1;
        opt.set_lr(schedule.lr(steps as u64))?;
        opt.step(&mut params)?;
        params.zero_grad()?;
        progress(Progress::Step {
            step: steps,
            loss: loss.value().item()?,
            accuracy,
        });
        if steps % cfg.eval_every == 0 {
            let (acc, _) = evaluate(&model, &params, &eval_set.0, &eval_set.1, cfg.seq_len)?;
            progress(Progress::Eval {
                step: steps,
                accuracy: acc,
            });
            if acc >= cfg.target_accuracy {
                break;
            }
        }
    }
    let (test_accuracy, test_exact) =
        evaluate(&model, &params, &test_set.0, &test_set.1, cfg.seq_len)?;
    Ok(DemoReport {
        steps,
        seconds: start.elapsed().as_secs_f64(),
        num_params: params.num_elements(),
        test_accuracy,
        test_exact,
    })
}

/// (token accuracy, exact-sequence accuracy) with no gradient recorded.
fn evaluate(
    model: &SortModel,
    params: &Params,
    inputs: &crate::Tensor,
    labels: &crate::Tensor,
    seq_len: usize,
) -> Result<(f64, f64)> {
    let tape = Tape::new();
    tape.no_grad(|| {
        let logits = model.forward(&tape, params, inputs)?;
        let pred = tape.argmax(&logits, -1)?;
        let (p, l) = (pred.i32_data("demo")?, labels.i32_data("demo")?);
        let correct = p.iter().zip(l).filter(|(a, b)| a == b).count();
        let exact = p
            .chunks(seq_len)
            .zip(l.chunks(seq_len))
            .filter(|(a, b)| a == b)
            .count();
        Ok((
            correct as f64 / l.len() as f64,
            exact as f64 / (l.len() / seq_len) as f64,
        ))
    })
}
