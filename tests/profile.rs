//! `recur profile` and what it stands on: the trace backend records exactly the launches Emu runs,
//! the FLOP model agrees with formulas computed from tensor shapes, the JSON's totals are the sums
//! of its rows and agree with the counting backend, and bad input is a clear error.

use recur::device::counting::{Counting, Counts, Launch};
use recur::device::emu::Emu;
use recur::device::trace::Trace;
use recur::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use recur::kernels::attention::{attention_fwd, AttentionInputs};
use recur::kernels::gemm::{gemm_bf16, Epilogue};
use recur::kernels::matmul::{linear_bwd_input, linear_bwd_weight, linear_fwd};
use recur::profile::cost::launch_flops;
use recur::profile::{profile_training, ProfileOptions};
use recur::train::graph_mode::GraphMode;
use recur::train::RunConfig;
use recur::{DType, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

/// A TRM step small enough for Emu (it emulates every CUDA thread): 4x4 Sudoku, hidden 64
/// (2 heads of 32, which the attention kernels take), one layer, batch 4.
const TINY: &[&str] = &[
    "data.size=4",
    "train_puzzles=16",
    "test_puzzles=8",
    "global_batch_size=4",
    "halt_max_steps=2",
    "H_cycles=2",
    "L_cycles=1",
    "L_layers=1",
    "lr_warmup_steps=2",
];

/// The tiny config on `preset` (`trm-cpu` or `hrm-cpu`, whose H module gets one layer too).
fn tiny_config(preset: &str) -> RunConfig {
    let mut edits: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    if preset == "hrm-cpu" {
        edits.push("H_layers=1".into());
    }
    RunConfig::load(preset, &edits).unwrap()
}

fn counts_of(backend: Arc<dyn KernelBackend>, steps: usize) -> Counts {
    preset_counts("trm-cpu", backend, steps)
}

fn preset_counts(preset: &str, backend: Arc<dyn KernelBackend>, steps: usize) -> Counts {
    let opts = ProfileOptions {
        steps,
        eval: false,
        timed: false,
        graph: GraphMode::Off,
    };
    profile_training(tiny_config(preset), backend, &opts)
        .unwrap()
        .0
        .train
}

/// The launches as a multiset of (name, grid, block, shared memory, arguments): the arguments
/// carry buffer lengths and scalar values (as their debug text, so an f32 compares by value).
fn launch_multiset(counts: &Counts) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in &counts.launches {
        *m.entry(format!("{} {:?} {:?}", l.name, l.config, l.args))
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn trace_records_exactly_the_launches_emu_runs() {
    // Step 1 starts from the initial carry; step 2 is the steady state the profile reports.
    // HRM adds the Q-continue target, a second forward pass of the Q head.
    for (preset, steps) in [("trm-cpu", 1), ("trm-cpu", 2), ("hrm-cpu", 2)] {
        let emu = preset_counts(preset, Arc::new(Emu::default()), steps);
        let trace = preset_counts(preset, Arc::new(Trace::new()), steps);
        assert!(!emu.launches.is_empty(), "the step launched nothing on Emu");
        assert_eq!(
            launch_multiset(&trace),
            launch_multiset(&emu),
            "{preset} step {steps}: the trace's launches differ from Emu's"
        );
        // Copies, synchronisations and allocations cross the counter the same way too.
        let moves = |c: &Counts| {
            (
                c.uploads,
                c.upload_bytes,
                c.downloads,
                c.download_bytes,
                c.syncs,
                c.allocs,
                c.alloc_bytes,
                c.memsets,
                c.copies,
                c.fallbacks.clone(),
            )
        };
        assert_eq!(moves(&trace), moves(&emu), "{preset} step {steps}");
    }
}

#[test]
fn trace_rejects_unknown_kernels_and_downloads_zeros() {
    let trace = Trace::new();
    let mut buf = trace.alloc(12).unwrap();
    let err = trace
        .launch(
            "no_such_kernel_f32",
            LaunchConfig::linear(1, 32),
            &mut [KernelArg::Out(&mut buf)],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_kernel_f32"), "{err}");
    trace
        .launch(
            "scale_fwd_f32",
            LaunchConfig::linear(1, 32),
            &mut [
                KernelArg::In(&buf.clone()),
                KernelArg::Out(&mut buf),
                KernelArg::I64(3),
                KernelArg::F32(2.0),
            ],
        )
        .unwrap();
    assert_eq!(trace.download(&buf).unwrap(), vec![0u8; 12]);
    let up = trace.upload(&[1, 2, 3]).unwrap();
    assert_eq!(trace.download(&up).unwrap(), vec![0u8; 3]);
    // A buffer of another backend is refused, not silently traced.
    let emu_buf = Emu::default().alloc(4).unwrap();
    assert!(trace.download(&emu_buf).is_err());
}

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(shape.to_vec(), 1.0, seed, dtype).unwrap()
}

/// Runs `launch` on a counted Emu and returns the one launch it made.
fn one_launch(run: impl FnOnce(&dyn KernelBackend)) -> Launch {
    let dev = Counting::new(Arc::new(Emu::default()));
    run(dev.as_ref());
    let mut counts = dev.take();
    assert_eq!(counts.launches.len(), 1, "{:?}", counts.kernel_names());
    counts.launches.remove(0)
}

#[test]
fn gemm_flops_are_two_m_n_k_from_the_tensor_shapes() {
    // x [3, 7, 24] folds into M = 21 rows; W [40, 24]: N = 40, K = 24.
    let (x_shape, w_shape) = ([3usize, 7, 24], [40usize, 24]);
    let m = (x_shape[0] * x_shape[1]) as f64;
    let (n, k) = (w_shape[0] as f64, w_shape[1] as f64);
    let up = |dev: &dyn KernelBackend, shape: &[usize], seed: u64, dtype: DType| {
        DeviceTensor::upload(dev, &random(shape, seed, dtype)).unwrap()
    };
    let fwd = one_launch(|dev| {
        let (x, w) = (
            up(dev, &x_shape, 1, DType::F32),
            up(dev, &w_shape, 2, DType::F32),
        );
        linear_fwd(dev, &x, &w, None).unwrap();
    });
    assert_eq!(launch_flops(&fwd), Some(2.0 * m * n * k), "{}", fwd.name);
    let with_bias = one_launch(|dev| {
        let (x, w, b) = (
            up(dev, &x_shape, 1, DType::F32),
            up(dev, &w_shape, 2, DType::F32),
            up(dev, &[40], 3, DType::F32),
        );
        linear_fwd(dev, &x, &w, Some(&b)).unwrap();
    });
    assert_eq!(launch_flops(&with_bias), Some(2.0 * m * n * k + m * n));
    let dx = one_launch(|dev| {
        let (dy, w) = (
            up(dev, &[3, 7, 40], 4, DType::F32),
            up(dev, &w_shape, 2, DType::F32),
        );
        linear_bwd_input(dev, &dy, &w, &x_shape.into()).unwrap();
    });
    assert_eq!(launch_flops(&dx), Some(2.0 * m * n * k), "{}", dx.name);
    let dw = one_launch(|dev| {
        let (dy, x) = (
            up(dev, &[3, 7, 40], 4, DType::F32),
            up(dev, &x_shape, 1, DType::F32),
        );
        linear_bwd_weight(dev, &dy, &x).unwrap();
    });
    assert_eq!(launch_flops(&dw), Some(2.0 * m * n * k), "{}", dw.name);
    // The tensor-core GEMM with the SwiGLU epilogue: W is gate|up [2·I, K], the product [M, 2·I].
    let swiglu = one_launch(|dev| {
        let (x, w) = (
            up(dev, &x_shape, 1, DType::BF16),
            up(dev, &[2 * 40, 24], 2, DType::BF16),
        );
        gemm_bf16(dev, &x, &w, Epilogue::SwiGlu, DType::BF16).unwrap();
    });
    assert_eq!(
        launch_flops(&swiglu),
        Some(2.0 * m * (2.0 * n) * k),
        "{}",
        swiglu.name
    );
}

#[test]
fn attention_flops_are_four_b_h_s2_hd_from_the_tensor_shapes() {
    let (b, s, h, hd) = (2usize, 9usize, 3usize, 32usize);
    let fwd = one_launch(|dev| {
        let t =
            |seed| DeviceTensor::upload(dev, &random(&[b, s, h, hd], seed, DType::F32)).unwrap();
        let (q, k, v) = (t(1), t(2), t(3));
        attention_fwd(dev, &AttentionInputs::new(&q, &k, &v)).unwrap();
    });
    let want = 4.0 * (b * h * s * s * hd) as f64;
    assert_eq!(launch_flops(&fwd), Some(want), "{}", fwd.name);
}

fn recur() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recur"));
    c.env_remove("RECUR_DEVICE");
    c
}

/// `recur profile --json` on `device` with the tiny config and `extra` flags; its stdout parsed
/// as one JSON object.
fn profile_json(device: &str, extra: &[&str]) -> Value {
    let mut cmd = recur();
    cmd.args([
        "profile", "--preset", "trm-cpu", "--device", device, "--json",
    ]);
    cmd.args(extra);
    for set in TINY {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "recur profile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

const REQUIRED: &[&str] = &[
    "launches_per_step",
    "h2d_per_step",
    "d2h_per_step",
    "syncs_per_step",
    "cpu_fallbacks_per_step",
    "bytes_per_step",
    "minimal_bytes_per_step",
    "flops_per_step",
    "roofline_s",
    "batch",
];

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {}", v[key]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn json_has_every_key_and_totals_are_the_sums_of_the_rows() {
    let v = profile_json("trace", &[]);
    for key in REQUIRED {
        number(&v, key);
    }
    for key in ["device", "gpu", "preset", "kernels"] {
        assert!(!v[key].is_null(), "{key} missing: {v}");
    }
    assert_eq!(v["device"], "trace");
    assert_eq!(v["gpu"], "h100");
    assert_eq!(v["preset"], "trm-cpu");
    assert_eq!(number(&v, "batch"), 4.0);
    let rows = v["kernels"].as_array().unwrap();
    assert!(!rows.is_empty());
    let sum = |key: &str| rows.iter().map(|r| number(r, key)).sum::<f64>();
    assert!(close(sum("launches"), number(&v, "launches_per_step")));
    assert!(close(sum("flops"), number(&v, "flops_per_step")));
    assert!(close(
        sum("bytes") + number(&v, "memset_and_copy_bytes_per_step"),
        number(&v, "bytes_per_step")
    ));
    let moved_s =
        number(&v, "memset_and_copy_bytes_per_step") / number(&v["gpu_peaks"], "hbm_bytes_per_s");
    assert!(close(sum("roofline_s") + moved_s, number(&v, "roofline_s")));
    assert!(number(&v, "flops_per_step") > 0.0);
    assert!(number(&v, "minimal_bytes_per_step") > 0.0);
    assert!(number(&v, "minimal_bytes_per_step") < number(&v, "bytes_per_step"));
    // Rows come sorted by bytes, most first.
    let bytes: Vec<f64> = rows.iter().map(|r| number(r, "bytes")).collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
}

#[test]
fn emu_json_agrees_with_the_counting_backend() {
    let v = profile_json("emu", &[]);
    assert_eq!(v["device"], "emu");
    let counts = counts_of(Arc::new(Emu::default()), 2);
    assert_eq!(
        number(&v, "launches_per_step"),
        counts.launches.len() as f64
    );
    assert_eq!(number(&v, "h2d_per_step"), counts.uploads as f64);
    assert_eq!(number(&v, "d2h_per_step"), counts.downloads as f64);
    assert_eq!(number(&v, "syncs_per_step"), counts.syncs as f64);
    assert_eq!(
        number(&v, "host_waits_per_step"),
        (counts.syncs + counts.downloads) as f64
    );
    assert_eq!(number(&v, "allocs_per_step"), counts.allocs as f64);
    assert_eq!(
        number(&v, "cpu_fallbacks_per_step"),
        counts.fallbacks.len() as f64
    );
    let kernel_bytes: usize = counts
        .launches
        .iter()
        .map(|l| l.bytes_in + l.bytes_out)
        .sum();
    let moved = counts.memset_bytes + 2 * counts.copy_bytes;
    assert_eq!(number(&v, "bytes_per_step"), (kernel_bytes + moved) as f64);
    let by_name = |name: &str| counts.launches.iter().filter(|l| l.name == name).count();
    for row in v["kernels"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        assert_eq!(number(row, "launches"), by_name(name) as f64, "{name}");
    }
}

#[test]
fn the_roofline_follows_the_named_gpu_and_eval_reports_a_segment() {
    let h100 = profile_json("trace", &["--gpu", "h100"]);
    let h200 = profile_json("trace", &["--gpu", "h200", "--eval"]);
    assert_eq!(h200["gpu"], "h200");
    // Same step, same FLOP peaks, 4.8 / 3.35 times the bandwidth: faster, never slower.
    assert_eq!(
        number(&h100, "bytes_per_step"),
        number(&h200, "bytes_per_step")
    );
    assert!(number(&h200, "roofline_s") < number(&h100, "roofline_s"));
    assert!(number(&h200, "roofline_s") >= number(&h100, "roofline_s") * 3.35 / 4.8);
    assert!(h100["eval_segment"].is_null());
    let eval = &h200["eval_segment"];
    assert!(number(eval, "launches_per_step") > 0.0, "{eval}");
    // Evaluation runs no backward and no optimizer.
    assert!(number(eval, "launches_per_step") < number(&h200, "launches_per_step"));
}

/// Runs `recur profile` with `args` and returns its stderr, failing unless it exits non-zero
/// without a panic.
fn refused(args: &[&str]) -> String {
    let out = recur().arg("profile").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    stderr
}

#[test]
fn bad_input_is_a_clear_error() {
    let trace = ["--device", "trace"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        trace.iter().chain(extra).copied().collect()
    };
    let err = refused(&with(&["--preset", "no-such-preset"]));
    assert!(err.contains("no-such-preset"), "{err}");
    let err = refused(&["--device", "tpu"]);
    assert!(err.contains("--device") && err.contains("tpu"), "{err}");
    let err = refused(&["--device", "cpu"]);
    assert!(err.contains("--device"), "{err}");
    let err = refused(&with(&["--set", "no_such_key=3"]));
    assert!(err.contains("no_such_key"), "{err}");
    let err = refused(&with(&["--set", "hidden_size"]));
    assert!(err.contains("hidden_size"), "{err}");
    let err = refused(&with(&["--gpu", "a100"]));
    assert!(err.contains("--gpu") && err.contains("a100"), "{err}");
    let err = refused(&with(&["--steps", "0"]));
    assert!(err.contains("--steps"), "{err}");
    if recur::device::Compute::cuda().is_err() {
        let err = refused(&["--device", "cuda"]);
        assert!(err.contains("cuda") && err.contains("GPU"), "{err}");
    }
}
