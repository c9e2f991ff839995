//! `recur bench`: the roofline table of the kernels at TRM Sudoku's shapes, on the CPU reference,
//! the emulator or a GPU, with the copy-bandwidth ceiling measured in the same run; and
//! `recur bench step`: the wall time of whole training steps or evaluation segments of any
//! config (`bench::step`, `docs/bench.md`).

use crate::bench::step::{bench_step, StepBench, StepBenchOptions, StepMode};
use crate::bench::suite::{self, SuiteOptions};
use crate::bench::{copy_bandwidth_gbs, roofline_table, BenchDevice};
use crate::cli::model_args::ConfigArgs;
use crate::cli::train::DEFAULT_PRESET;
use crate::device::cuda::Cuda;
use crate::device::emu::Emu;
use crate::error::{Error, Result};
use clap::{Args, Subcommand};

/// `recur bench` alone runs the kernel suite (its flags below); `recur bench step` times steps.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub kernels: KernelBenchArgs,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time whole training steps (or with --eval, evaluation segments) of any preset, --arch or
    /// --set config: median, min and max seconds, samples/s, GFLOP/s from the kernel cost model
    /// of the same step, and peak memory (docs/bench.md).
    Step(StepArgs),
}

#[derive(Args, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where the steps run: the CPU reference, the CUDA kernels emulated on the CPU (slow: tiny
    /// shapes only), or GPU 0.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// Sequences per step (overrides train.global_batch_size).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps (the median, min and max are reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Time evaluation segments (one no-grad supervision segment each) instead of training steps.
    #[arg(long)]
    pub eval: bool,
    /// Capture the training step as a CUDA graph from the second step and replay it: `on`,
    /// `off`, or `auto` (on a kernel backend that can capture), as `recur train --graph`.
    #[arg(long, default_value = "auto")]
    pub graph: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object on stdout instead of the table (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct KernelBenchArgs {
    /// Where to run: the CPU reference, the CUDA kernels emulated on the CPU, or a GPU.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// Batch size of the TRM Sudoku shapes ([B, 97, 512] activations).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Untimed warm-up runs per case.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
}

/// Size of the copy that measures the bandwidth ceiling: 4× an H100's 50 MB L2 on a GPU, smaller
/// on the CPU backends where it only sets the scale.
const GPU_CEILING_BYTES: usize = 256 << 20;
const CPU_CEILING_BYTES: usize = 64 << 20;

/// Why a cpu or emu run prints no cuBLASLt rows.
const NO_GPU_FOR_CUBLASLT: &str = "cuBLASLt runs only on a GPU (--device cuda); this run has none";

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        Some(BenchCommand::Step(step)) => run_step(step),
        None => run_kernels(args.kernels),
    }
}

fn run_kernels(args: KernelBenchArgs) -> Result<()> {
    if args.batch == 0 || args.runs == 0 {
        return Err(Error::arg("bench", "--batch and --runs must be positive"));
    }
    // A bad RECUR_GEMM fails now, not after the whole suite has run.
    crate::kernels::gemm_choice::GemmPolicy::from_env()?;
    let opts = SuiteOptions {
        batch: args.batch,
        warmup: args.warmup,
        runs: args.runs,
    };
    let (table, cublaslt) = match args.device {
        BenchDevice::Cpu => {
            let ceiling = suite::host_copy_bandwidth_gbs(CPU_CEILING_BYTES, args.runs)?;
            let rows = suite::cpu_suite(opts)?;
            (
                roofline_table(
                    &format!("cpu ({} threads)", rayon::current_num_threads()),
                    ceiling,
                    &rows,
                ),
                suite::cublaslt_section(Err(NO_GPU_FOR_CUBLASLT), opts)?,
            )
        }
        BenchDevice::Emu => {
            let dev = Emu::new()?;
            let ceiling = copy_bandwidth_gbs(&dev, CPU_CEILING_BYTES, args.runs)?;
            (
                roofline_table(
                    &crate::device::KernelBackend::name(&dev),
                    ceiling,
                    &suite::kernel_suite(&dev, opts)?,
                ),
                suite::cublaslt_section(Err(NO_GPU_FOR_CUBLASLT), opts)?,
            )
        }
        BenchDevice::Cuda => {
            let dev = Cuda::new(0)?;
            let ceiling = copy_bandwidth_gbs(&dev, GPU_CEILING_BYTES, args.runs)?;
            (
                roofline_table(
                    &crate::device::KernelBackend::name(&dev),
                    ceiling,
                    &suite::kernel_suite(&dev, opts)?,
                ),
                suite::cublaslt_section(Ok(&dev), opts)?,
            )
        }
    };
    println!("{table}\n{cublaslt}");
    Ok(())
}

fn run_step(args: StepArgs) -> Result<()> {
    // Flags are checked before anything is built.
    let mut config = args.config.clone();
    if let Some(batch) = args.batch {
        if batch == 0 {
            return Err(Error::arg("--batch", "must be at least 1"));
        }
        // Through the same edit as `--set`, so it is validated with the rest of the config.
        config
            .overrides
            .push(format!("train.global_batch_size={batch}"));
    }
    let opts = StepBenchOptions {
        device: args.device,
        mode: if args.eval {
            StepMode::Eval
        } else {
            StepMode::Train
        },
        warmup: args.warmup,
        steps: args.steps,
        graph: args.graph.parse()?,
    };
    opts.check()?;
    let cfg = config.resolve(DEFAULT_PRESET)?;
    super::set_cpu_threads(args.threads);
    let preset = config.preset.as_deref().unwrap_or(DEFAULT_PRESET);
    // stderr, so --json stays one object on stdout; a paper-size step takes seconds on a CPU.
    eprintln!(
        "recur bench step: {} + {} {} of {preset} (batch {}) on {}",
        opts.warmup,
        opts.steps,
        match opts.mode {
            StepMode::Train => "training steps",
            StepMode::Eval => "evaluation segments",
        },
        cfg.train.global_batch_size,
        opts.device.flag()
    );
    let result = bench_step(cfg, Some(preset), &opts)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&result).expect("the step bench serialises")
        );
    } else {
        print_step(&result);
    }
    Ok(())
}

fn print_step(r: &StepBench) {
    let unit = match r.mode {
        StepMode::Train => "training step",
        StepMode::Eval => "evaluation segment",
    };
    println!(
        "recur bench step: {} ({}, hidden {}, {} parameters, {}), batch {} × {} cells, on {} \
         ({} CPU threads), {}",
        r.preset.as_deref().unwrap_or("-"),
        r.arch,
        r.hidden_size,
        r.parameters,
        r.forward_dtype,
        r.batch,
        r.seq_len,
        r.backend,
        r.threads,
        r.graph
    );
    println!(
        "{} warm-up + {} timed {unit}s; each ends with the device synchronised",
        r.warmup, r.steps
    );
    let steps: Vec<String> = r.step_s.iter().map(|s| format!("{s:.4}")).collect();
    println!();
    println!("| {unit} | value |\n|---|---|");
    println!("| median s | {:.4} |", r.median_s);
    println!("| min s | {:.4} |", r.min_s);
    println!("| max s | {:.4} |", r.max_s);
    println!("| samples/s | {:.2} |", r.samples_per_s);
    println!("| GFLOP per {unit} | {:.3} |", r.gflop_per_step);
    println!("| GFLOP/s | {:.2} |", r.gflops);
    println!(
        "| peak memory | {} |",
        r.peak_mem_bytes.map_or("-".to_string(), |b| format!(
            "{:.1} MiB",
            b as f64 / 1048576.0
        ))
    );
    println!();
    println!("timed {unit}s (s): {}", steps.join(", "));
    println!("FLOPs: {}", r.flops_from);
    if !r.no_flop_formula.is_empty() {
        println!(
            "  no FLOP formula (counted as 0): {}",
            r.no_flop_formula.join(", ")
        );
    }
    if !r.uncounted_cpu_fallbacks.is_empty() {
        println!(
            "  not counted: ops the kernel path runs on the CPU reference here: {}",
            r.uncounted_cpu_fallbacks.join(", ")
        );
    }
    println!("peak memory: {}", r.peak_mem);
    println!("data: {}", r.data);
}
