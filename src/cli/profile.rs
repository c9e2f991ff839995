//! `recur profile`: runs a few real training steps on a counted kernel backend and prints the
//! last step's cost (launches, copies, synchronisations, fallbacks, bytes, FLOPs) and a roofline
//! lower bound on a named GPU. The numbers are a model built from counts; only `--device cuda`
//! measures anything (the wall time of each step).

use crate::cli::model_args::ConfigArgs;
use crate::device::trace::Trace;
use crate::device::{Compute, KernelBackend};
use crate::error::{Error, Result};
use crate::profile::minimal::{minimal_step_bytes, MinimalItem};
use crate::profile::{profile_training, Gpu, ProfileOptions, StepCost};
use clap::Args;
use serde_json::json;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where the step runs: `emu` (the kernels on the CPU), `cuda` (a GPU; also times each
    /// step) or `trace` (nothing runs: launches are recorded, downloads read zeros).
    #[arg(long)]
    pub device: String,
    /// Training steps to run; the last is reported.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// The GPU the roofline is drawn for: `h100` or `h200`.
    #[arg(long, default_value = "h100")]
    pub gpu: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also profile one evaluation segment (a batch through every segment, per segment).
    #[arg(long)]
    pub eval: bool,
    /// Capture the training step as a CUDA graph from the second step and replay it (`on`,
    /// `off`, or `auto`: wherever the backend can capture; the trace backend cannot).
    #[arg(long, default_value = "auto")]
    pub graph: String,
}

const DEFAULT_PRESET: &str = "trm-cpu";

/// The backend `--device` names. `cpu` runs no kernels, so it has nothing to profile.
fn backend(flag: &str) -> Result<Arc<dyn KernelBackend>> {
    match flag.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(Arc::new(Trace::new())),
        "emu" | "cuda" => {
            let compute = Compute::from_flag(flag)?;
            let kernels = compute.kernels().expect("emu and cuda are kernel computes");
            Ok(kernels.backend().clone())
        }
        other => Err(Error::arg(
            "--device",
            format!("expected emu, cuda or trace, got {other:?} (cpu runs no kernels to count)"),
        )),
    }
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let gpu = Gpu::from_flag(&args.gpu)?;
    let cfg = args.config.resolve(DEFAULT_PRESET)?;
    let device = args.device.trim().to_ascii_lowercase();
    let backend = backend(&device)?;
    let backend_name = backend.name();
    let opts = ProfileOptions {
        steps: args.steps,
        eval: args.eval,
        timed: device == "cuda",
        graph: args.graph.parse()?,
    };
    // A progress line first (stderr, so --json stays one object on stdout): on a GPU the first
    // step compiles every kernel it launches, and a caller with a time limit should see where
    // the time went.
    eprintln!(
        "recur profile: {} training steps of {} (batch {}) on {backend_name}",
        args.steps,
        args.config.preset.as_deref().unwrap_or(DEFAULT_PRESET),
        cfg.train.global_batch_size
    );
    let (profile, trainer) = profile_training(cfg, backend, &opts)?;
    let cfg = &trainer.cfg;
    let step = StepCost::new(&profile.train, 1, &gpu);
    let eval = profile
        .eval
        .as_ref()
        .map(|(counts, segments)| StepCost::new(counts, *segments, &gpu));
    let table = trainer
        .model
        .buffers
        .puzzle_emb
        .as_ref()
        .map_or(0, |t| t.shape().numel());
    let minimal = minimal_step_bytes(cfg, profile.params, table);
    let minimal_total: f64 = minimal.iter().map(|m| m.bytes).sum();
    let preset = args
        .config
        .preset
        .clone()
        .unwrap_or_else(|| DEFAULT_PRESET.to_string());
    let batch = cfg.train.global_batch_size;
    if args.json {
        let mut out = serde_json::to_value(&step).expect("a step cost serialises");
        let extra = json!({
            "model": "counts from the run; bytes, FLOPs and roofline are a model, not a measurement",
            "device": device,
            "backend": backend_name,
            "gpu": gpu.name,
            "gpu_peaks": gpu,
            "preset": preset,
            "arch": format!("{:?}", cfg.model.arch),
            "batch": batch,
            "steps_run": args.steps,
            "parameters": profile.params,
            "minimal_bytes_per_step": minimal_total,
            "minimal_bytes": minimal,
            "roofline_minimal_s": minimal_total / gpu.hbm_bytes_per_s,
            "graph": graph_state(&profile.train),
            "measured_step_ms": profile.step_ms,
            "host_step_s": profile.step_host_s,
            "setup_s": profile.setup_s,
            "eval_segment": eval,
        });
        let obj = out
            .as_object_mut()
            .expect("a struct serialises to an object");
        for (k, v) in extra.as_object().expect("json! object") {
            obj.insert(k.clone(), v.clone());
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "recur profile: {preset} ({:?}, batch {batch}, {} parameters) on {backend_name}; \
         step {} of {} reported",
        cfg.model.arch, profile.params, args.steps, args.steps
    );
    println!(
        "MODEL, not a measurement: launches and copies are counted; bytes, FLOPs and times are \
         derived from them (docs/profile.md)"
    );
    println!("graph: the reported step {}", graph_state(&profile.train));
    print_cost(
        "training step",
        &step,
        &gpu,
        Some((&minimal, minimal_total)),
    );
    if let Some(eval) = &eval {
        print_cost("evaluation segment (per segment)", eval, &gpu, None);
    }
    if !profile.step_ms.is_empty() {
        let ms: Vec<String> = profile.step_ms.iter().map(|m| format!("{m:.2}")).collect();
        println!(
            "measured on {backend_name}: wall time per step (ms, between synchronisations): {}",
            ms.join(", ")
        );
    }
    let host: Vec<String> = profile
        .step_host_s
        .iter()
        .map(|s| format!("{s:.2}"))
        .collect();
    println!(
        "host seconds per step (this process, any device): {}; setup {:.2} s",
        host.join(", "),
        profile.setup_s
    );
    Ok(())
}

fn print_cost(title: &str, c: &StepCost, gpu: &Gpu, minimal: Option<(&[MinimalItem], f64)>) {
    println!();
    println!("== {title}: kernels by bytes (roofline on {}) ==", gpu.name);
    println!(
        "{:<40} {:>9} {:>12} {:>12} {:>12}",
        "kernel", "launches", "MB", "GFLOP", "roofline ms"
    );
    for r in &c.kernels {
        let flops = if r.has_flop_formula {
            format!("{:.3}", r.flops / 1e9)
        } else {
            "?".to_string()
        };
        println!(
            "{:<40} {:>9} {:>12.2} {:>12} {:>12.4}",
            r.name,
            r.launches,
            r.bytes / 1e6,
            flops,
            r.roofline_s * 1e3
        );
    }
    println!("-- totals per step --");
    println!("launches                 {}", c.launches_per_step);
    println!(
        "host→device copies       {} ({:.2} MB)",
        c.h2d_per_step,
        c.h2d_bytes_per_step / 1e6
    );
    println!(
        "device→host copies       {} ({:.2} MB)",
        c.d2h_per_step,
        c.d2h_bytes_per_step / 1e6
    );
    println!(
        "synchronisations         {} (host waits, downloads included: {})",
        c.syncs_per_step, c.host_waits_per_step
    );
    println!(
        "allocations              {} ({:.2} MB, summed; the pool serves most on a GPU)",
        c.allocs_per_step,
        c.alloc_bytes_per_step / 1e6
    );
    println!(
        "memsets, device copies   {}, {}",
        c.memsets_per_step, c.device_copies_per_step
    );
    let fallbacks: Vec<String> = c
        .cpu_fallbacks
        .iter()
        .map(|(op, n)| format!("{op} ×{n}"))
        .collect();
    println!(
        "CPU fallbacks            {}{}",
        c.cpu_fallbacks_per_step,
        if fallbacks.is_empty() {
            String::new()
        } else {
            format!(" ({})", fallbacks.join(", "))
        }
    );
    println!("bytes                    {:.3} GB", c.bytes_per_step / 1e9);
    if let Some((items, total)) = minimal {
        println!(
            "minimal bytes            {:.3} GB (a lower bound; bytes / minimal = {:.1})",
            total / 1e9,
            c.bytes_per_step / total
        );
        for m in items {
            println!("    {:>10.3} GB  {}", m.bytes / 1e9, m.what);
        }
    }
    println!(
        "FLOPs                    {:.3} TFLOP",
        c.flops_per_step / 1e12
    );
    println!(
        "roofline lower bound     {:.3} ms on {} ({:.2} TB/s, {:.0} TFLOP/s bf16 tensor, {:.0} TFLOP/s f32)",
        c.roofline_s * 1e3,
        gpu.name,
        gpu.hbm_bytes_per_s / 1e12,
        gpu.bf16_tensor_flops / 1e12,
        gpu.f32_flops / 1e12
    );
    if !c.no_flop_formula.is_empty() {
        println!(
            "no FLOP formula (counted as 0): {}",
            c.no_flop_formula.join(", ")
        );
    }
    println!("top 3 by bytes:");
    for r in c.top_by_bytes(3) {
        println!(
            "    {:<40} {:>10.2} MB ({:.1}%)",
            r.name,
            r.bytes / 1e6,
            100.0 * r.bytes / c.bytes_per_step
        );
    }
    println!("top 3 by roofline time:");
    for r in c.top_by_time(3) {
        println!(
            "    {:<40} {:>10.4} ms ({:.1}%)",
            r.name,
            r.roofline_s * 1e3,
            100.0 * r.roofline_s / c.roofline_s
        );
    }
}

/// How the reported step ran: replayed from a captured graph, captured (and replayed once), or
/// eagerly.
fn graph_state(counts: &crate::device::counting::Counts) -> &'static str {
    match (counts.captures, counts.replays) {
        (0, 0) => "ran eagerly",
        (0, _) => "replayed a captured graph",
        _ => "was captured as a graph and replayed",
    }
}
