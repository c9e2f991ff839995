//! `recur bench step`: the library function on a tiny TRM on the CPU reference and on Emu (every
//! key of the JSON, consistent times, the FLOPs of the same step traced independently and above
//! a hand-computed bound, a peak memory; ops left to the CPU named as uncounted), and the command
//! line (one JSON object on stdout; bad
//! flags exit non-zero with a message, without panicking).

use recur::bench::step::{bench_step, StepBench, StepBenchOptions, StepMode};
use recur::bench::BenchDevice;
use recur::device::counting::Counts;
use recur::device::trace::Trace;
use recur::profile::cost::launch_flops;
use recur::profile::{profile_training, ProfileOptions};
use recur::train::graph_mode::GraphMode;
use recur::train::RunConfig;
use serde_json::Value;
#[path = "common/cli.rs"]
mod cli_runner;
use cli_runner::recur;
use std::sync::Arc;

/// A TRM-Att small enough for Emu: 4x4 Sudoku (16 cells + 1 puzzle slot), hidden 32 in one
/// head of 32 (a head size the attention kernels take), one layer, T = 2, n = 1, batch 2.
const TINY: &[&str] = &[
    "data.size=4",
    "train_puzzles=16",
    "test_puzzles=8",
    "global_batch_size=2",
    "hidden_size=32",
    "num_heads=1",
    "puzzle_emb_ndim=32",
    "halt_max_steps=2",
    "H_cycles=2",
    "L_cycles=1",
    "L_layers=1",
    "lr_warmup_steps=2",
];

fn tiny_config() -> RunConfig {
    let edits: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    RunConfig::load("trm-cpu", &edits).unwrap()
}

fn options(device: BenchDevice, mode: StepMode) -> StepBenchOptions {
    StepBenchOptions {
        device,
        mode,
        warmup: 1,
        steps: 2,
        graph: GraphMode::Auto,
    }
}

/// FLOPs of the same step traced here, on the preset's own (generated) puzzles rather than the
/// benchmark's synthetic ones: the training step `recur profile` reports (the second), or one
/// evaluation segment (a batch through every segment, divided by the segments).
fn traced_flops(cfg: &RunConfig, mode: StepMode) -> f64 {
    let opts = ProfileOptions {
        steps: 2,
        eval: mode == StepMode::Eval,
        timed: false,
        graph: GraphMode::Off,
    };
    let (profile, _) = profile_training(cfg.clone(), Arc::new(Trace::new()), &opts).unwrap();
    let sum = |counts: &Counts| -> f64 {
        counts
            .launches
            .iter()
            .map(|l| launch_flops(l).unwrap_or(0.0))
            .sum()
    };
    match mode {
        StepMode::Train => sum(&profile.train),
        StepMode::Eval => {
            let (counts, segments) = profile.eval.as_ref().unwrap();
            sum(counts) / *segments as f64
        }
    }
}

/// A lower bound on the FLOPs of one forward supervision segment of a TRM-Att, from the config
/// alone: `2·rows·in·out` for each block's four linear layers (qkv D→3D, o D→D, SwiGLU gate_up
/// D→2I, down I→D), over the `H_cycles·(L_cycles + 1)` calls of the `L_layers`-block network.
/// Rows are the batch's tokens with the puzzle prefix; I is the official
/// `_find_multiple(round(expansion·D·2/3), 256)`. The heads and everything else are left out.
fn forward_linear_flops_bound(cfg: &RunConfig) -> f64 {
    let m = &cfg.model;
    let d = m.hidden_size as f64;
    let prefix = if m.puzzle_emb_len == 0 {
        m.puzzle_emb_ndim.div_ceil(m.hidden_size)
    } else {
        m.puzzle_emb_len
    };
    let rows = (cfg.train.global_batch_size * (m.seq_len + prefix)) as f64;
    let inter = ((m.expansion * d * 2.0 / 3.0).round() as usize).div_ceil(256) * 256;
    let i = inter as f64;
    let per_block = 2.0 * rows * (d * 3.0 * d + d * d + d * 2.0 * i + i * d);
    let calls = (m.H_cycles * (m.L_cycles + 1) * m.L_layers) as f64;
    calls * per_block
}

/// The keys another tool parses, and the JSON type each must have.
const KEYS: &[(&str, &str)] = &[
    ("device", "string"),
    ("threads", "int"),
    ("preset", "string|null"),
    ("arch", "string"),
    ("hidden_size", "int"),
    ("batch", "int"),
    ("mode", "string"),
    ("forward_dtype", "string"),
    ("warmup", "int"),
    ("steps", "int"),
    ("step_s", "array"),
    ("median_s", "number"),
    ("min_s", "number"),
    ("max_s", "number"),
    ("samples_per_s", "number"),
    ("gflop_per_step", "number"),
    ("gflops", "number"),
    ("peak_mem_bytes", "int|null"),
];

fn check_keys(json: &Value) {
    for (key, kind) in KEYS {
        let v = json
            .get(*key)
            .unwrap_or_else(|| panic!("no {key:?} in {json}"));
        let ok = match *kind {
            "string" => v.is_string(),
            "string|null" => v.is_string() || v.is_null(),
            "int" => v.is_u64(),
            "int|null" => v.is_u64() || v.is_null(),
            "number" => v.is_number(),
            "array" => v.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
            _ => unreachable!(),
        };
        assert!(ok, "{key} is {v}, expected {kind}");
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Every property the report promises, for one run.
fn check_run(device: BenchDevice, mode: StepMode) -> StepBench {
    let cfg = tiny_config();
    let opts = options(device, mode);
    let r = bench_step(cfg.clone(), Some("trm-cpu"), &opts).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    check_keys(&json);
    assert_eq!(json["device"], device.flag());
    assert_eq!(
        json["mode"],
        match mode {
            StepMode::Train => "train",
            StepMode::Eval => "eval",
        }
    );
    assert_eq!(json["arch"], "trm-att");
    assert_eq!(json["forward_dtype"], "float32");
    assert_eq!((r.batch, r.hidden_size, r.warmup, r.steps), (2, 32, 1, 2));

    assert_eq!(r.step_s.len(), 2);
    assert!(r.step_s.iter().all(|&s| s > 0.0), "{:?}", r.step_s);
    assert!(r.min_s <= r.median_s && r.median_s <= r.max_s, "{json}");
    assert_eq!(
        r.min_s,
        r.step_s.iter().copied().fold(f64::INFINITY, f64::min)
    );
    assert_eq!(r.max_s, r.step_s.iter().copied().fold(0.0, f64::max));
    assert!(close(r.samples_per_s, r.batch as f64 / r.median_s, 1e-12));
    assert!(close(r.gflops, r.gflop_per_step / r.median_s, 1e-12));

    let traced = traced_flops(&cfg, mode);
    assert!(
        close(r.gflop_per_step * 1e9, traced, 1e-12),
        "bench {} GFLOP, traced here {} GFLOP",
        r.gflop_per_step,
        traced / 1e9
    );
    let bound = forward_linear_flops_bound(&cfg);
    assert!(
        r.gflop_per_step * 1e9 > bound,
        "{} GFLOP per step is below the forward linear layers' {} GFLOP",
        r.gflop_per_step,
        bound / 1e9
    );
    if cfg!(target_os = "linux") {
        assert!(r.peak_mem_bytes.is_some_and(|b| b > 0), "{}", r.peak_mem);
    }
    r
}

#[test]
fn step_bench_on_the_cpu_reports_consistent_times_flops_and_memory() {
    let r = check_run(BenchDevice::Cpu, StepMode::Train);
    assert_eq!(r.graph, "eager");
    assert!(r.uncounted_cpu_fallbacks.is_empty(), "{r:?}");
    check_run(BenchDevice::Cpu, StepMode::Eval);
}

#[test]
fn step_bench_on_emu_reports_consistent_times_flops_and_memory() {
    // One warm-up step runs eagerly, so the first timed step is the one captured as a graph.
    let r = check_run(BenchDevice::Emu, StepMode::Train);
    assert!(r.graph.starts_with("timed step 1 captured"), "{}", r.graph);
    let r = check_run(BenchDevice::Emu, StepMode::Eval);
    assert_eq!(r.graph, "eager");
}

#[test]
fn ops_the_kernels_leave_to_the_cpu_are_named_as_uncounted() {
    // Two heads of 16: the fused attention kernels take head sizes 32 and 64 only, so the kernel
    // path runs attention on the CPU reference and the trace has no launch to count.
    let mut cfg = tiny_config();
    cfg.model.num_heads = 2;
    let opts = StepBenchOptions {
        warmup: 0,
        steps: 1,
        ..options(BenchDevice::Cpu, StepMode::Train)
    };
    let r = bench_step(cfg, None, &opts).unwrap();
    assert_eq!(r.uncounted_cpu_fallbacks, ["attention"]);
}

fn tiny_flags() -> Vec<String> {
    TINY.iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

#[test]
fn step_bench_json_is_one_object_on_stdout() {
    let mut args: Vec<String> = ["bench", "step", "--json", "--warmup", "0", "--steps", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tiny_flags());
    args.extend(["--batch".to_string(), "3".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = recur(&refs);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    check_keys(&json);
    assert_eq!(json["batch"], 3, "--batch overrides the preset's batch");
    assert!(stderr.contains("recur bench step"), "{stderr}");
}

#[test]
fn step_bench_refuses_bad_flags_cleanly() {
    let mut cases: Vec<Vec<&str>> = vec![
        vec!["bench", "step", "--steps", "0"],
        vec!["bench", "step", "--batch", "0"],
        vec!["bench", "step", "--set", "hidden_size=wide"],
        vec!["bench", "step", "--set", "no_such_field=1"],
        vec!["bench", "step", "--graph", "on"],
        vec!["bench", "step", "--device", "tpu"],
    ];
    if recur::device::cuda::Cuda::new(0).is_err() {
        cases.push(vec!["bench", "step", "--device", "cuda"]);
    }
    for args in cases {
        let (code, stdout, stderr) = recur(&args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
    }
}
