//! `recur profile`: the cost of one training step, seen through the `Counting` wrapper around a
//! kernel backend (Emu, Cuda, or the launch-recording `Trace`), with a FLOP model per kernel
//! (`cost`), a minimal-bytes lower bound (`minimal`) and a roofline on a named GPU (`roofline`).
//! Everything except the `cuda` wall time is a model computed from counts, not a measurement.
//! `docs/profile.md` says what each number means and how it is counted.

pub mod cost;
pub mod minimal;
pub mod report;
pub mod roofline;

use crate::device::counting::{Counting, Counts};
use crate::device::{Compute, KernelBackend};
use crate::error::{Error, Result};
use crate::train::config::RunConfig;
use crate::train::dataset::SudokuData;
use crate::train::graph_mode::GraphMode;
use crate::train::{dataset, evaluate, Trainer};
use std::sync::Arc;
use std::time::Instant;

pub use report::{KernelRow, StepCost};
pub use roofline::Gpu;

/// What to profile and how.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Training steps to run; the last one is reported (the first pays for compilation, the
    /// first uploads of constants and the initial carry).
    pub steps: usize,
    /// Also profile evaluation: one batch through every supervision segment, reported per segment.
    pub eval: bool,
    /// Measure wall time per step (meaningful on a real GPU only).
    pub timed: bool,
    /// Whether the steps are captured and replayed as a graph (the trainer's `--graph`).
    pub graph: GraphMode,
}

impl ProfileOptions {
    fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::arg(
                "--steps",
                "must be at least 1 (the last step is the one reported)",
            ));
        }
        Ok(())
    }
}

/// What a profile found: the last training step, optionally an evaluation segment, and the
/// wall-clock times of the steps when they were measured.
pub struct Profile {
    pub train: Counts,
    /// Evaluation counts and how many segments they cover (the report divides by it).
    pub eval: Option<(Counts, usize)>,
    /// Milliseconds per training step, in order (empty unless timed).
    pub step_ms: Vec<f64>,
    /// Host seconds of each step as this process spent them (every backend).
    pub step_host_s: Vec<f64>,
    /// Seconds spent building the dataset and the trainer.
    pub setup_s: f64,
    pub params: usize,
}

/// Runs `opts.steps` training steps of `cfg` on `backend` wrapped in a counter and returns the
/// counts of the last one (and of an evaluation segment with `opts.eval`).
pub fn profile_training(
    cfg: RunConfig,
    backend: Arc<dyn KernelBackend>,
    opts: &ProfileOptions,
) -> Result<(Profile, Trainer)> {
    // Checked before the dataset is built, which can take seconds.
    opts.check()?;
    let started = Instant::now();
    let data = dataset::build(&cfg.data)?;
    let data_s = started.elapsed().as_secs_f64();
    let (mut profile, trainer) = profile_with_data(cfg, data, backend, opts)?;
    profile.setup_s += data_s;
    Ok((profile, trainer))
}

/// `profile_training` on puzzles the caller built (`recur bench step` traces its step on the
/// synthetic batch it times, without building the preset's dataset). `setup_s` is the trainer's.
pub fn profile_with_data(
    cfg: RunConfig,
    data: SudokuData,
    backend: Arc<dyn KernelBackend>,
    opts: &ProfileOptions,
) -> Result<(Profile, Trainer)> {
    opts.check()?;
    let setup = Instant::now();
    let counter = Counting::new(backend);
    let mut trainer = Trainer::new(cfg, data, Compute::on(counter.clone()))?;
    trainer.graph_mode = opts.graph;
    let setup_s = setup.elapsed().as_secs_f64();
    counter.take();
    let mut train = Counts::default();
    let (mut step_ms, mut step_host_s) = (Vec::new(), Vec::new());
    for _ in 0..opts.steps {
        // The step itself is counted and timed; reading its report (one download at the step
        // boundary) is not part of it.
        let started = Instant::now();
        if opts.timed {
            let ms = counter.time_ms(&mut || trainer.launch_step())?;
            step_ms.push(ms);
        } else {
            trainer.launch_step()?;
        }
        step_host_s.push(started.elapsed().as_secs_f64());
        train = counter.take();
        trainer.read_report()?;
        counter.take();
    }
    let eval = if opts.eval {
        Some((evaluation_segments(&trainer, &counter)?, segments(&trainer)))
    } else {
        None
    };
    let params = trainer.params.num_elements();
    Ok((
        Profile {
            train,
            eval,
            step_ms,
            step_host_s,
            setup_s,
            params,
        },
        trainer,
    ))
}

fn segments(trainer: &Trainer) -> usize {
    trainer.cfg.model.halt_max_steps.max(1)
}

/// One evaluation batch (held-out puzzles, or training puzzles when none are held out) through
/// every supervision segment, as `recur eval` runs it; the caller divides by the segments.
fn evaluation_segments(trainer: &Trainer, counter: &Counting) -> Result<Counts> {
    let batch = trainer.cfg.train.global_batch_size.max(1);
    let pool = if trainer.data.test.is_empty() {
        &trainer.data.train
    } else {
        &trainer.data.test
    };
    let puzzles = &pool[..batch.min(pool.len())];
    counter.take();
    evaluate(
        &trainer.compute,
        &trainer.model,
        trainer.eval_params(),
        puzzles,
        batch,
        |_| {},
    )?;
    Ok(counter.take())
}
