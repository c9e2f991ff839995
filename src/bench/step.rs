//! `recur bench step`: the wall time of whole training steps, or evaluation segments, of any
//! preset, architecture or `--set` config, on the CPU reference, Emu or a GPU. It is the
//! benchmark behind every CPU speed claim (`docs/bench.md`).
//!
//! A timed training step is `Trainer::train_step`, as `recur train` runs it: the batch staged,
//! one supervision segment forward and backward, the optimizers, and the step's report read
//! back; then the device is synchronised, so the time includes all the step's device work. A
//! timed evaluation segment is one no-grad segment of `recur eval` (`EvalBatch::segment`), also
//! followed by a synchronisation.
//!
//! FLOPs are not counted a second way: the same step of the same config is traced first
//! (`profile::profile_with_data` on the launch-recording `Trace` backend) and the kernel cost
//! model of `recur profile` sums its launches. The CPU reference runs the same tape ops; where
//! it differs from the kernels is said in `docs/bench.md`.

use crate::bench::peak_memory::{MemoryProbe, PeakMemory};
use crate::bench::synthetic_data::{self, synthetic_data};
use crate::bench::BenchDevice;
use crate::device::compute::requested_cuda;
use crate::device::trace::Trace;
use crate::error::{Error, Result};
use crate::models::{Arch, ForwardDtype, ModelConfig};
use crate::profile::roofline::H100;
use crate::profile::{profile_with_data, ProfileOptions, StepCost};
use crate::tape::Compute;
use crate::train::config::RunConfig;
use crate::train::dataset::SudokuData;
use crate::train::evaluate::{new_record, EvalBatch};
use crate::train::graph_mode::GraphMode;
use crate::train::Trainer;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What one timed unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    /// A training step: one supervision segment forward and backward, and the optimizer step.
    Train,
    /// One evaluation segment: a no-grad supervision segment, scored.
    Eval,
}

#[derive(Clone, Debug)]
pub struct StepBenchOptions {
    pub device: BenchDevice,
    pub mode: StepMode,
    /// Untimed steps first: they compile kernels, fill memory pools, settle GEMM choices and
    /// (with graphs) capture the step.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Whether training steps are captured and replayed as a graph (`recur train --graph`).
    pub graph: GraphMode,
}

/// The result; `--json` prints it as one object (the field names are the keys).
#[derive(Clone, Debug, Serialize)]
pub struct StepBench {
    /// `cpu`, `emu` or `cuda`.
    pub device: String,
    /// The backend's own name (`cpu`, `emu (fibers)`, `cuda:0 NVIDIA H100 ...`).
    pub backend: String,
    /// Rayon's worker threads (the CPU reference's parallelism).
    pub threads: usize,
    pub preset: Option<String>,
    /// `trm-att`, `trm-mlp` or `hrm`, as `--arch` names them.
    pub arch: String,
    pub hidden_size: usize,
    /// Sequences per step (`train.global_batch_size`).
    pub batch: usize,
    /// Tokens per sequence, the puzzle cells (the puzzle-embedding prefix not included).
    pub seq_len: usize,
    pub parameters: usize,
    pub mode: StepMode,
    /// `float32` or `bfloat16`, resolved for the device.
    pub forward_dtype: String,
    /// How the timed steps ran: `eager`, `graph replay`, or which timed step captured the graph.
    pub graph: String,
    pub data: String,
    pub warmup: usize,
    pub steps: usize,
    /// Seconds of each timed step, in order.
    pub step_s: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    /// `batch / median_s`.
    pub samples_per_s: f64,
    /// FLOPs of one step (or one evaluation segment) from the kernel cost model, in GFLOP.
    pub gflop_per_step: f64,
    /// `gflop_per_step / median_s`.
    pub gflops: f64,
    pub flops_from: String,
    /// Kernels of the traced step with no FLOP formula (counted as 0).
    pub no_flop_formula: Vec<String>,
    /// Ops the kernel path runs on the CPU reference in this config (an attention head size the
    /// fused kernels lack, say): the trace records no launch for them, so their FLOPs are not
    /// in `gflop_per_step`.
    pub uncounted_cpu_fallbacks: Vec<String>,
    pub peak_mem_bytes: Option<u64>,
    /// What `peak_mem_bytes` counts, or why it is null.
    pub peak_mem: String,
    /// Seconds to trace the step and build the trainer, before the warm-up.
    pub setup_s: f64,
}

/// Where FLOPs come from, as the report says it.
pub const FLOPS_FROM: &str = "the kernel cost model of recur profile (src/profile/cost.rs) \
     summed over a trace of the same step of the same config";

/// Traces, then times, `opts.warmup + opts.steps` steps of `cfg` (`preset` is only reported).
pub fn bench_step(
    mut cfg: RunConfig,
    preset: Option<&str>,
    opts: &StepBenchOptions,
) -> Result<StepBench> {
    opts.check()?;
    // The device first: asking for a GPU where there is none fails before any work.
    let (compute, mut probe) = open(opts.device)?;
    // `auto` is resolved here, not by each trainer, so the trace runs the dtype the device will.
    cfg.model.forward_dtype = cfg
        .model
        .forward_dtype
        .resolve(opts.device == BenchDevice::Cuda);
    let batch = cfg.train.global_batch_size;
    let setup = Instant::now();
    let data = synthetic_data(&cfg, batch)?;
    let traced = traced_flops(&cfg, data.clone(), opts.mode)?;
    let mut trainer = Trainer::new(cfg, data, compute)?;
    trainer.graph_mode = opts.graph;
    let setup_s = setup.elapsed().as_secs_f64();
    let (step_s, graph) = match opts.mode {
        StepMode::Train => time_training(&mut trainer, opts, &mut probe)?,
        StepMode::Eval => (
            time_evaluation(&trainer, opts, &mut probe)?,
            EAGER.to_string(),
        ),
    };
    let PeakMemory { bytes, what } = probe.finish();
    let (median_s, min_s, max_s) = summary(&step_s);
    let model = &trainer.cfg.model;
    Ok(StepBench {
        device: opts.device.flag().to_string(),
        backend: trainer.compute.name(),
        threads: rayon::current_num_threads(),
        preset: preset.map(str::to_string),
        arch: arch_name(model).to_string(),
        hidden_size: model.hidden_size,
        batch,
        seq_len: model.seq_len,
        parameters: trainer.params.num_elements(),
        mode: opts.mode,
        forward_dtype: dtype_name(model.forward_dtype).to_string(),
        graph,
        data: synthetic_data::DESCRIPTION.to_string(),
        warmup: opts.warmup,
        steps: opts.steps,
        samples_per_s: batch as f64 / median_s,
        gflops: traced.gflop / median_s,
        step_s,
        median_s,
        min_s,
        max_s,
        gflop_per_step: traced.gflop,
        flops_from: FLOPS_FROM.to_string(),
        no_flop_formula: traced.no_flop_formula,
        uncounted_cpu_fallbacks: traced.cpu_fallbacks,
        peak_mem_bytes: bytes,
        peak_mem: what,
        setup_s,
    })
}

impl StepBenchOptions {
    /// The errors the flags alone make: no timed step, or graphs where there are none.
    pub fn check(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::arg(
                "--steps",
                "must be at least 1 (the timed steps)",
            ));
        }
        if self.graph == GraphMode::On {
            if self.device == BenchDevice::Cpu {
                return Err(Error::arg(
                    "--graph",
                    "on needs a kernel backend (--device emu or cuda); the CPU reference has no \
                     graphs",
                ));
            }
            if self.mode == StepMode::Eval {
                return Err(Error::arg(
                    "--graph",
                    "evaluation segments always run eagerly; graphs capture training steps",
                ));
            }
        }
        Ok(())
    }
}

/// The compute for `device`, and how its peak memory is taken.
fn open(device: BenchDevice) -> Result<(Compute, MemoryProbe)> {
    Ok(match device {
        BenchDevice::Cpu => (Compute::Cpu, MemoryProbe::resident()),
        BenchDevice::Emu => (Compute::emu(), MemoryProbe::resident()),
        BenchDevice::Cuda => {
            let cuda = Arc::new(requested_cuda()?);
            (Compute::on(cuda.clone()), MemoryProbe::gpu(cuda))
        }
    })
}

/// What the trace of one step says about its arithmetic.
struct TracedFlops {
    gflop: f64,
    no_flop_formula: Vec<String>,
    cpu_fallbacks: Vec<String>,
}

/// The FLOPs of one step of `cfg` (one evaluation segment in eval mode) as the kernel cost model
/// counts them. The trace reports its second step, the steady state the timed steps are in (the
/// first starts from the initial carry); evaluation is one batch through every segment, divided
/// by the segments, as `recur profile --eval` reports it.
fn traced_flops(cfg: &RunConfig, data: SudokuData, mode: StepMode) -> Result<TracedFlops> {
    let opts = ProfileOptions {
        steps: 2,
        eval: mode == StepMode::Eval,
        timed: false,
        graph: GraphMode::Off,
    };
    let (profile, _) = profile_with_data(cfg.clone(), data, Arc::new(Trace::new()), &opts)?;
    // Only the FLOPs are read; the GPU named here draws the roofline, unused.
    let cost = match (&profile.eval, mode) {
        (Some((counts, segments)), StepMode::Eval) => StepCost::new(counts, *segments, &H100),
        _ => StepCost::new(&profile.train, 1, &H100),
    };
    Ok(TracedFlops {
        gflop: cost.flops_per_step / 1e9,
        no_flop_formula: cost.no_flop_formula,
        cpu_fallbacks: cost.cpu_fallbacks.into_keys().collect(),
    })
}

/// Waits until the device has finished what was launched (nothing to wait for on the CPU).
fn synchronize(compute: &Compute) -> Result<()> {
    match compute.kernels() {
        Some(kernels) => kernels.synchronize(),
        None => Ok(()),
    }
}

/// Seconds of `run` followed by a device synchronisation.
fn timed(compute: &Compute, run: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    run()?;
    synchronize(compute)?;
    Ok(started.elapsed().as_secs_f64())
}

const EAGER: &str = "eager";

/// The timed training steps' seconds, and how they ran (`StepBench::graph`).
fn time_training(
    trainer: &mut Trainer,
    opts: &StepBenchOptions,
    probe: &mut MemoryProbe,
) -> Result<(Vec<f64>, String)> {
    for _ in 0..opts.warmup {
        trainer.train_step()?;
        synchronize(&trainer.compute)?;
    }
    probe.start();
    let compute = trainer.compute.clone();
    let replayed_from_start = trainer.is_replaying();
    let mut captured_at = None;
    let mut times = Vec::with_capacity(opts.steps);
    for i in 0..opts.steps {
        let replaying = trainer.is_replaying();
        times.push(timed(&compute, || trainer.train_step().map(|_| ()))?);
        if !replaying && trainer.is_replaying() {
            captured_at = Some(i + 1);
        }
    }
    let graph = match (replayed_from_start, captured_at) {
        (true, _) => "graph replay".to_string(),
        (false, None) => EAGER.to_string(),
        (false, Some(i)) => format!(
            "timed step {i} captured the graph and the later ones replayed it (--warmup 2 or more \
             times replays only)"
        ),
    };
    Ok((times, graph))
}

/// Segments of evaluation batches, one after another: a batch runs its `halt_max_steps`
/// segments, then a new one starts (made outside the timing, as its upload is not a segment).
fn time_evaluation(
    trainer: &Trainer,
    opts: &StepBenchOptions,
    probe: &mut MemoryProbe,
) -> Result<Vec<f64>> {
    let (compute, model, params) = (&trainer.compute, &trainer.model, trainer.eval_params());
    let segments = model.config().halt_max_steps;
    let puzzles = &trainer.data.test;
    let mut record = new_record(compute, segments)?;
    let mut batch = EvalBatch::new(compute, model, puzzles)?;
    let mut times = Vec::with_capacity(opts.steps);
    for i in 0..opts.warmup + opts.steps {
        if batch.depth() == segments {
            batch = EvalBatch::new(compute, model, puzzles)?;
        }
        if i == opts.warmup {
            probe.start();
        }
        let s = timed(compute, || {
            batch.segment(compute, model, params, &mut record)
        })?;
        if i >= opts.warmup {
            times.push(s);
        }
    }
    Ok(times)
}

/// Median (the mean of the middle two for an even count), minimum and maximum.
fn summary(times: &[f64]) -> (f64, f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

/// The `--arch` name of a model config.
fn arch_name(model: &ModelConfig) -> &'static str {
    match (model.arch, model.mlp_t) {
        (Arch::Hrm, _) => "hrm",
        (Arch::Trm, true) => "trm-mlp",
        (Arch::Trm, false) => "trm-att",
    }
}

/// The official name of a forward dtype.
fn dtype_name(dtype: ForwardDtype) -> &'static str {
    match dtype {
        ForwardDtype::Bfloat16 => "bfloat16",
        ForwardDtype::Float32 | ForwardDtype::Auto => "float32",
    }
}
