//! One training run's state and its step, as the official `pretrain.py`: one optimizer step
//! per supervision segment, the loss divided by the global batch, AdamATan2 on the parameters,
//! SignSGD on the touched puzzle-table rows, both on the warmup schedule, then the EMA update.

use crate::data::sudoku::encode_batch;
use crate::error::Result;
use crate::models::{
    act_loss, act_step, ActMetrics, Batch, Carry, Exploration, Halting, Probe, Reasoner,
};
use crate::optim::adam_atan2::{AdamAtan2, AdamAtan2Config};
use crate::optim::ema::Ema;
use crate::optim::schedule::WarmupCosine;
use crate::optim::sign_sgd::SignSgd;
use crate::params::Params;
use crate::tape::{Compute, Tape};
use crate::tensor::Tensor;
use crate::train::config::RunConfig;
use crate::train::dataset::SudokuData;
use crate::train::evaluate::{evaluate, EvalReport, Prediction};
use crate::train::example_stream::{ExampleStream, StreamPosition};
use crate::train::step_inputs::StepInputs;
use serde::Serialize;

/// What one step did, averaged as the official logger does (sums over halted sequences divided
/// by their count; losses divided by the batch).
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: u64,
    pub loss: f64,
    pub lm_loss: f64,
    pub q_halt_loss: f64,
    pub q_continue_loss: f64,
    pub lr: f64,
    /// Sequences that halted this step, and their accuracies and segment counts.
    pub halted: f64,
    pub accuracy: f64,
    pub exact_accuracy: f64,
    pub q_halt_accuracy: f64,
    pub steps: f64,
}

pub struct Trainer {
    pub cfg: RunConfig,
    pub data: SudokuData,
    pub model: Reasoner,
    pub params: Params,
    pub(crate) optimizer: AdamAtan2,
    pub(crate) puzzle_optimizer: SignSgd,
    pub(crate) ema: Option<Ema>,
    pub(crate) schedule: WarmupCosine,
    pub(crate) puzzle_schedule: WarmupCosine,
    /// Optimizer steps taken.
    pub step: u64,
    pub(crate) carry: Option<Carry>,
    pub(crate) exploration: Exploration,
    pub(crate) stream: ExampleStream,
    /// Seconds spent training before this process (from a resumed run).
    pub elapsed_before_s: f64,
    /// Where the ops run (the CPU reference, Emu, or a GPU).
    pub compute: Compute,
}

impl Trainer {
    pub fn new(mut cfg: RunConfig, data: SudokuData, compute: Compute) -> Result<Trainer> {
        let geometry = data.geometry;
        // The task fixes the sequence and vocabulary sizes.
        cfg.model.seq_len = crate::data::sudoku::seq_len(geometry);
        cfg.model.vocab_size = crate::data::sudoku::vocab_size(geometry);
        cfg.model.num_puzzle_identifiers = 1;
        // `forward_dtype = "auto"` is decided here, once, from the device (bf16 on a GPU as the
        // official code trains), so the saved config says what actually ran.
        let on_gpu = compute.name().starts_with("cuda");
        cfg.model.forward_dtype = cfg.model.forward_dtype.resolve(on_gpu);
        let mut params = Params::new();
        let model = Reasoner::new(&mut params, cfg.model.clone(), cfg.train.seed)?;
        let t = &cfg.train;
        let total = total_steps(&cfg, data.train.len());
        let warmup = t.lr_warmup_steps.min(total);
        let optimizer = AdamAtan2::new(AdamAtan2Config {
            lr: t.lr,
            beta1: t.beta1,
            beta2: t.beta2,
            weight_decay: t.weight_decay,
        })?;
        let ema = if t.ema {
            Some(Ema::new(&params, t.ema_rate)?)
        } else {
            None
        };
        let mut trainer = Trainer {
            schedule: WarmupCosine::new(t.lr, warmup, total, t.lr_min_ratio)?,
            puzzle_schedule: WarmupCosine::new(t.puzzle_emb_lr, warmup, total, t.lr_min_ratio)?,
            puzzle_optimizer: SignSgd::new(t.puzzle_emb_lr, t.puzzle_emb_weight_decay)?,
            optimizer,
            ema,
            step: 0,
            carry: None,
            exploration: Exploration {
                seed: t.seed,
                segment: 0,
            },
            stream: ExampleStream::new(
                t.seed,
                cfg.data.augment,
                data.train.len(),
                StreamPosition {
                    epoch: 0,
                    cursor: 0,
                },
            ),
            elapsed_before_s: 0.0,
            compute,
            cfg,
            data,
            model,
            params,
        };
        trainer.make_resident()?;
        Ok(trainer)
    }

    /// Puts the state that persists across steps on the trainer's device, one upload per kind:
    /// the parameter arena, the Adam moments, the EMA shadow and the puzzle table. Nothing
    /// happens on the CPU. Called when the trainer is built and when it resumes.
    pub(crate) fn make_resident(&mut self) -> Result<()> {
        self.params.make_resident(&self.compute)?;
        self.optimizer.make_resident(&self.params)?;
        if let Some(ema) = &mut self.ema {
            ema.make_resident(&self.compute)?;
        }
        if let Some(table) = &self.model.buffers.puzzle_emb {
            let mut buffers = self.model.buffers.clone();
            buffers.puzzle_emb = Some(self.compute.place(table)?);
            self.model.set_buffers(buffers)?;
        }
        Ok(())
    }

    pub fn total_steps(&self) -> u64 {
        self.schedule.total_steps()
    }

    fn next_batch(&mut self) -> Result<Batch> {
        let b = self.cfg.train.global_batch_size;
        let puzzles = self.stream.next_batch(&self.data.train, b)?;
        let (inputs, labels) = encode_batch(&puzzles)?;
        Batch::new(inputs, labels, Tensor::from_vec(vec![0i32; b], [b])?)
    }

    /// One supervision segment and one optimizer step.
    pub fn train_step(&mut self) -> Result<StepReport> {
        // The official loop counts the step before computing its rate, so step 1 of warmup
        // already moves.
        let lr = self.schedule.lr(self.step + 1);
        self.optimizer.set_lr(lr)?;
        self.puzzle_optimizer
            .set_lr(self.puzzle_schedule.lr(self.step + 1))?;
        let batch = self.next_batch()?;
        let inputs = StepInputs::stage(
            &self.compute,
            &self.model,
            batch,
            self.optimizer.next_kernel_scalars(&self.params),
            self.puzzle_optimizer.kernel_scalars(),
        )?;
        let batch = &inputs.batch;
        let carry = match self.carry.take() {
            Some(c) => c,
            None => Carry::initial(&self.model, batch)?,
        };
        let tape = Tape::with_compute(self.compute.clone());
        let step = act_step(
            &self.model,
            &tape,
            &self.params,
            carry,
            batch,
            Halting::Train(&mut self.exploration),
            &Probe::off(),
        )?;
        let loss = act_loss(&tape, &step)?;
        let b = batch.len() as f64;
        let scaled = tape.scale(&loss.total, 1.0 / b)?;
        let grads = tape.backward(&scaled)?;
        self.params.zero_grad()?;
        self.params.accumulate(&self.compute, grads.param_grads())?;

        self.step += 1;
        self.optimizer
            .step_staged(&mut self.params, inputs.adam_scalars.as_ref())?;
        if let (Some(rows), Some(table)) =
            (&step.output.puzzle_rows, &mut self.model.buffers.puzzle_emb)
        {
            if let Some(g) = grads.get(rows) {
                self.puzzle_optimizer.step_staged(
                    table,
                    &step.carry.data.puzzle_ids,
                    g,
                    inputs.sign_sgd_scalars.as_ref(),
                )?;
            }
        }
        if let Some(ema) = &mut self.ema {
            ema.update(&self.params)?;
        }
        let m: ActMetrics = loss.metrics;
        let per = |x: f64| if m.count > 0.0 { x / m.count } else { f64::NAN };
        let report = StepReport {
            step: self.step,
            loss: scaled.value().to_host()?.item()?,
            lm_loss: loss.lm_loss / b,
            q_halt_loss: loss.q_halt_loss / b,
            q_continue_loss: loss.q_continue_loss / b,
            lr,
            halted: m.count,
            accuracy: per(m.accuracy),
            exact_accuracy: per(m.exact_accuracy),
            q_halt_accuracy: per(m.q_halt_accuracy),
            steps: per(m.steps),
        };
        self.carry = Some(step.carry);
        Ok(report)
    }

    /// The weights evaluation and checkpoints use: the EMA average when enabled (as TRM),
    /// else the live ones.
    pub fn eval_params(&self) -> &Params {
        match &self.ema {
            Some(ema) => ema.shadow(),
            None => &self.params,
        }
    }

    /// Evaluates the first `limit` held-out puzzles (all when 0).
    pub fn evaluate(
        &self,
        limit: usize,
        on_batch: impl FnMut(usize),
    ) -> Result<(EvalReport, Vec<Prediction>)> {
        let n = if limit == 0 {
            self.data.test.len()
        } else {
            limit.min(self.data.test.len())
        };
        let batch = self.cfg.train.global_batch_size.max(1);
        evaluate(
            &self.compute,
            &self.model,
            self.eval_params(),
            &self.data.test[..n],
            batch,
            on_batch,
        )
    }
}

/// `total_steps`, or `epochs · puzzles / batch` as the official code derives it.
pub fn total_steps(cfg: &RunConfig, train_puzzles: usize) -> u64 {
    let t = &cfg.train;
    if t.total_steps > 0 {
        t.total_steps
    } else {
        ((t.epochs as f64 * train_puzzles as f64) / t.global_batch_size as f64) as u64
    }
    .max(1)
}
