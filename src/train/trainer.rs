//! One training run's state and its step, as the official `pretrain.py`: one optimizer step
//! per supervision segment, the loss divided by the global batch, AdamATan2 on the parameters,
//! SignSGD on the touched puzzle-table rows, both on the warmup schedule, then the EMA update.

use crate::data::sudoku::encode_batch;
use crate::device::graph::Graph;
use crate::error::Result;
use crate::models::{
    act_loss, act_step, ActLossSums, ActMetrics, Batch, Carry, Exploration, Halting, Probe,
    Reasoner,
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
use crate::train::graph_mode::GraphMode;
use crate::train::step_inputs::{stage, HostInputs, InputSlots, StepInputs};
use crate::train::step_state::StepState;
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
    /// The pinned slots a kernel step's inputs arrive through (made at the first step).
    pub(crate) input_slots: Option<InputSlots>,
    /// Whether steps are captured and replayed (`--graph`).
    pub graph_mode: GraphMode,
    /// The captured step, once there is one.
    pub(crate) graph: Option<Graph>,
    /// A kernel step's carry and report at fixed device addresses (from the first step on).
    pub(crate) step_state: Option<StepState>,
    /// The CPU step's metrics buffer and scaled loss.
    host_report: Option<(Tensor, Tensor)>,
    /// The learning rate of the last launched step.
    last_lr: f64,
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
            input_slots: None,
            graph_mode: GraphMode::default(),
            graph: None,
            step_state: None,
            host_report: None,
            last_lr: 0.0,
            cfg,
            data,
            model,
            params,
        };
        trainer.make_resident()?;
        Ok(trainer)
    }

    /// Puts the state that persists across steps on the trainer's device, one upload per kind:
    /// the parameter arena, the Adam moments, the EMA shadow, the puzzle table and the init
    /// vectors the carry's halted rows restart from. Nothing
    /// happens on the CPU. Called when the trainer is built and when it resumes.
    pub(crate) fn make_resident(&mut self) -> Result<()> {
        self.params.make_resident(&self.compute)?;
        self.optimizer.make_resident(&self.params)?;
        if let Some(ema) = &mut self.ema {
            ema.make_resident(&self.compute)?;
        }
        let mut buffers = self.model.buffers.clone();
        buffers.h_init = self.compute.place(&buffers.h_init)?;
        buffers.l_init = self.compute.place(&buffers.l_init)?;
        if let Some(table) = &buffers.puzzle_emb {
            buffers.puzzle_emb = Some(self.compute.place(table)?);
        }
        self.model.set_buffers(buffers)?;
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

    /// Places a step's host inputs where the step reads them: through the pinned input slots,
    /// made at the first step, when the backend has them.
    fn stage(&mut self, host: HostInputs) -> Result<StepInputs> {
        if let (Some(kernels), None) = (self.compute.kernels(), &self.input_slots) {
            let example = host.tensors()?;
            let refs: Vec<&Tensor> = example.iter().collect();
            self.input_slots = InputSlots::new(kernels, &refs)?;
        }
        stage(&self.compute, &self.model, host, self.input_slots.as_mut())
    }

    /// One supervision segment and one optimizer step, and its report.
    pub fn train_step(&mut self) -> Result<StepReport> {
        self.launch_step()?;
        self.read_report()
    }

    /// One supervision segment and one optimizer step, without reading anything back: on a
    /// kernel backend the step's inputs go over in one staged upload and the step runs eagerly,
    /// is captured, or replays its graph (`GraphMode`). `read_report` reads what it did.
    pub fn launch_step(&mut self) -> Result<()> {
        // The official loop counts the step before computing its rate, so step 1 of warmup
        // already moves.
        let lr = self.schedule.lr(self.step + 1);
        self.optimizer.set_lr(lr)?;
        self.puzzle_optimizer
            .set_lr(self.puzzle_schedule.lr(self.step + 1))?;
        let host = HostInputs {
            batch: self.next_batch()?,
            adam_scalars: self.optimizer.next_kernel_scalars(&self.params),
            sign_sgd_scalars: self.puzzle_optimizer.kernel_scalars(),
            exploration_draw: Some(self.exploration.draw()?),
        };
        let inputs = self.stage(host)?;
        if let Some(graph) = &self.graph {
            let kernels = self
                .compute
                .kernels()
                .expect("graphs exist on kernel backends");
            kernels.replay(graph)?;
            self.note_replayed_step(inputs.adam_scalars.is_some())?;
        } else if self.should_capture() {
            if let Err(e) = self.capture_step(&inputs) {
                if self.graph_mode == GraphMode::On {
                    eprintln!("graph capture failed, training eagerly: {e}");
                }
                self.graph_mode = GraphMode::Off;
                self.run_step(&inputs)?;
            }
        } else {
            self.run_step(&inputs)?;
        }
        self.step += 1;
        self.last_lr = lr;
        Ok(())
    }

    /// Whether steps replay a captured graph.
    pub fn is_replaying(&self) -> bool {
        self.graph.is_some()
    }

    /// Whether this step should be captured: graphs wanted, a kernel backend, and a first step
    /// already run eagerly (it fills the fixed step state and the memory pool, compiles the
    /// kernels and settles the GEMM choices).
    fn should_capture(&self) -> bool {
        self.graph_mode != GraphMode::Off
            && self.compute.kernels().is_some()
            && self.step_state.is_some()
    }

    /// Captures this step, then replays it once (the capture ran nothing). On failure the host
    /// state the step touched (carry, exploration counter) is restored and the error returned,
    /// so the caller can run the step eagerly instead.
    fn capture_step(&mut self, inputs: &StepInputs) -> Result<()> {
        let kernels = self
            .compute
            .kernels()
            .expect("captures run on kernels")
            .clone();
        let (carry, exploration) = (self.carry.clone(), self.exploration);
        kernels.begin_capture()?;
        let ran = self.run_step(inputs);
        let graph = kernels.end_capture();
        match (ran, graph) {
            (Ok(()), Ok(graph)) => {
                kernels.replay(&graph)?;
                self.graph = Some(graph);
                Ok(())
            }
            (Err(e), _) | (Ok(()), Err(e)) => {
                self.carry = carry;
                self.exploration = exploration;
                Err(e)
            }
        }
    }

    /// The host bookkeeping of a step whose device work a graph replayed: the exploration
    /// counter and the optimizer's step counts advance as `run_step` advanced them.
    fn note_replayed_step(&mut self, one_launch_adam: bool) -> Result<()> {
        if !one_launch_adam {
            return Err(crate::error::Error::arg(
                "graph replay",
                "the captured step needs every parameter to step together in one launch",
            ));
        }
        self.optimizer.note_replayed_step(&self.params)?;
        if self.model.config().halt_max_steps > 1 {
            self.exploration.segment += 1;
        }
        Ok(())
    }

    /// The step itself: the segment, the loss, backward, the optimizers, then (on the kernels)
    /// its results copied to the fixed step state.
    fn run_step(&mut self, inputs: &StepInputs) -> Result<()> {
        let batch = &inputs.batch;
        let carry = match &self.carry {
            Some(c) => c.clone(),
            None => Carry::initial(&self.model, batch)?,
        };
        let tape = Tape::with_compute(self.compute.clone());
        let draw = inputs
            .exploration_draw
            .as_ref()
            .expect("launch_step stages the exploration draw");
        let step = act_step(
            &self.model,
            &tape,
            &self.params,
            carry,
            batch,
            Halting::TrainStaged(&mut self.exploration, draw),
            &Probe::off(),
        )?;
        let loss = act_loss(&tape, &step)?;
        let scaled = tape.scale(&loss.total, 1.0 / batch.len() as f64)?;
        let grads = tape.backward(&scaled)?;
        self.params.zero_grad()?;
        self.params.accumulate(&self.compute, grads.param_grads())?;
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
        let (metrics, loss_value) = (&loss.metrics, scaled.value());
        match self.compute.kernels() {
            None => {
                self.carry = Some(step.carry);
                self.host_report = Some((metrics.clone(), loss_value.clone()));
            }
            Some(kernels) => {
                if let Some(state) = &self.step_state {
                    state.store(kernels, &step.carry, metrics, loss_value)?;
                } else {
                    let state = StepState::new(kernels, &step.carry, metrics, loss_value)?;
                    self.step_state = Some(state);
                }
                let state = self.step_state.as_ref().expect("set above");
                self.carry = Some(state.carry.clone());
            }
        }
        Ok(())
    }

    /// What the last launched step did, averaged as the official logger does. On the kernels
    /// this is the step's one read: a download of its small report buffer.
    pub fn read_report(&self) -> Result<StepReport> {
        let (buffer, loss) = match (&self.step_state, &self.host_report) {
            (Some(state), _) => {
                let kernels = self.compute.kernels().expect("step state lives on kernels");
                state.read_report(kernels)?
            }
            (None, Some((m, l))) => (m.clone(), l.clone()),
            (None, None) => {
                return Err(crate::error::Error::arg(
                    "read_report",
                    "no step has run yet",
                ))
            }
        };
        let m = ActMetrics::from_buffer(&buffer)?;
        let sums = ActLossSums::from_buffer(&buffer)?;
        let b = self.cfg.train.global_batch_size as f64;
        let per = |x: f64| if m.count > 0.0 { x / m.count } else { f64::NAN };
        Ok(StepReport {
            step: self.step,
            loss: loss.item()?,
            lm_loss: sums.lm / b,
            q_halt_loss: sums.q_halt / b,
            q_continue_loss: sums.q_continue / b,
            lr: self.last_lr,
            halted: m.count,
            accuracy: per(m.accuracy),
            exact_accuracy: per(m.exact_accuracy),
            q_halt_accuracy: per(m.q_halt_accuracy),
            steps: per(m.steps),
        })
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
