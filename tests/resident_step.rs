//! A whole training step on the device (issue 10's "done when"): tiny TRM-Att, TRM-MLP and HRM
//! trainers on a counting kernel backend.
//!
//! - From the second step on, a step (`Trainer::launch_step`) makes one staged upload and no
//!   download, synchronisation or CPU fallback, and replays a captured graph (the second is
//!   captured from the pool's blocks, later ones allocate nothing at all); its
//!   launch multiset is the same every step and equals the committed fixture
//!   `tests/fixtures/launches/<model>.txt`, so any change in what a step launches is a reviewed
//!   diff (`RECUR_BLESS=1 cargo test --test resident_step` rewrites the fixtures).
//! - Six steps eager and six steps captured-then-replayed leave bit-identical training state
//!   (parameters, moments, EMA, puzzle table, carry, counters: the saved state files are equal
//!   byte for byte) and identical reports. Emu runs on one worker here, so the embedding
//!   gradient's float atomics add in one order in both runs; on a GPU, whose atomics add in no
//!   fixed order, the `::cuda` twin compares the losses within 1e-4.

use recur::device::counting::{Counting, Counts};
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::{Compute, KernelBackend};
use recur::train::graph_mode::GraphMode;
use recur::train::{dataset, RunConfig, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

const MODELS: [(&str, &str, &[&str]); 3] = [
    ("trm-att", "trm-cpu", &[]),
    (
        "trm-mlp",
        "trm-cpu",
        &["model.mlp_t=true", "model.pos_encodings=none"],
    ),
    ("hrm", "hrm-cpu", &[]),
];

fn config(preset: &str, extra: &[&str]) -> RunConfig {
    let mut overrides: Vec<String> = [
        "data.size=4",
        "train_puzzles=64",
        "test_puzzles=16",
        "global_batch_size=8",
        "total_steps=8",
        "halt_max_steps=3",
        "lr_warmup_steps=2",
        "halt_exploration_prob=0.5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    overrides.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(preset, &overrides).unwrap()
}

fn trainer(cfg: RunConfig, dev: &Arc<Counting>, graph: GraphMode) -> Trainer {
    let data = dataset::build(&cfg.data).unwrap();
    let mut t = Trainer::new(cfg, data, Compute::on(dev.clone())).unwrap();
    t.graph_mode = graph;
    t
}

macro_rules! on_every_backend {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[test]
            fn emu() {
                $body(&|| Counting::new(Arc::new(Emu::default())));
            }

            #[test]
            fn cuda() {
                match Cuda::new(0) {
                    Ok(_) => $body(&|| Counting::new(Arc::new(Cuda::new(0).unwrap()))),
                    Err(e) => recur::testing::skip_cuda(module_path!(), e),
                }
            }
        }
    };
}

/// Kernel name → launches in one step, as the fixture lists them.
fn launch_multiset(counts: &Counts) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for name in counts.kernel_names() {
        *m.entry(name).or_default() += 1;
    }
    m
}

fn fixture_path(model: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launches")
        .join(format!("{model}.txt"))
}

fn render(m: &BTreeMap<String, usize>) -> String {
    let mut out =
        String::from("# launches of one training step: kernel count (tests/resident_step.rs)\n");
    for (name, n) in m {
        out.push_str(&format!("{name} {n}\n"));
    }
    out
}

fn check_steady_steps(make: &dyn Fn() -> Arc<Counting>) {
    for (model, preset, extra) in MODELS {
        let dev = make();
        let mut t = trainer(config(preset, extra), &dev, GraphMode::On);
        t.train_step().unwrap();
        dev.take();
        let mut first: Option<BTreeMap<String, usize>> = None;
        for step in 2..=5 {
            t.launch_step().unwrap();
            let c = dev.take();
            let what = format!("{model} step {step}");
            assert_eq!(c.uploads, 1, "{what}: one staged upload, {c:?}");
            assert_eq!(c.staged_uploads, 1, "{what}: the upload is the staged one");
            assert_eq!(c.downloads + c.syncs, 0, "{what}: no read, no wait");
            if step == 2 {
                // The capture takes the step's buffers from the pool the eager step filled (on
                // a GPU the driver is never called: `graph_capture` checks that).
                assert_eq!(c.captures, 1, "{what}: captured");
            } else {
                assert_eq!(c.allocs, 0, "{what}: no allocation");
            }
            assert!(
                c.fallbacks.is_empty(),
                "{what}: fallbacks {:?}",
                c.fallbacks
            );
            assert_eq!(c.replays, 1, "{what}: the step replays its captured graph");
            let m = launch_multiset(&c);
            match &first {
                None => first = Some(m),
                Some(f) => assert_eq!(&m, f, "{what}: the launch multiset changed"),
            }
            // Reading the report is the one download, at the step boundary.
            let report = t.read_report().unwrap();
            assert!(report.loss.is_finite(), "{what}: loss {}", report.loss);
            assert_eq!(dev.take().downloads, 1, "{what}: one report download");
        }
        let got = render(first.as_ref().unwrap());
        let path = fixture_path(model);
        if std::env::var("RECUR_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (RECUR_BLESS=1 writes it)", path.display()));
        assert_eq!(
            got,
            want,
            "{model}: the step's launches differ from {}; if intended, rerun with RECUR_BLESS=1 \
             and review the diff",
            path.display()
        );
    }
}
on_every_backend!(
    steady_steps_move_one_upload_and_match_the_fixture,
    super::check_steady_steps
);

fn check_replay_equals_eager(make: &dyn Fn() -> Arc<Counting>) {
    Emu::set_max_workers(1);
    let dir = std::env::temp_dir().join(format!("recur-replay-eager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (model, preset, extra) in MODELS {
        let mut states = Vec::new();
        let mut reports = Vec::new();
        let exact = make().name().starts_with("emu");
        for graph in [GraphMode::Off, GraphMode::On] {
            let dev = make();
            let mut t = trainer(config(preset, extra), &dev, graph);
            let mut seen = Vec::new();
            for _ in 0..6 {
                let r = t.train_step().unwrap();
                seen.push(serde_json::to_string(&r).unwrap());
            }
            let c = dev.take();
            let replayed = c.replays > 0;
            assert_eq!(
                replayed,
                graph == GraphMode::On,
                "{model} {graph}: replays {c:?}"
            );
            let path = dir.join(format!("{model}-{graph}.safetensors"));
            t.save_state(&path, 1.0).unwrap();
            states.push(std::fs::read(&path).unwrap());
            reports.push(seen);
        }
        if exact {
            assert_eq!(reports[0], reports[1], "{model}: reports differ");
            assert!(
                states[0] == states[1],
                "{model}: six eager and six replayed steps left different training state"
            );
        } else {
            // A GPU's float atomics (the embedding gradient) add in no fixed order, so two runs
            // agree to rounding, not bit for bit: the losses are compared within 1e-4.
            for (e, r) in reports[0].iter().zip(&reports[1]) {
                let loss = |s: &str| -> f64 {
                    let v: serde_json::Value = serde_json::from_str(s).unwrap();
                    v["loss"].as_f64().unwrap()
                };
                let (a, b) = (loss(e), loss(r));
                assert!(
                    (a - b).abs() <= 1e-4 * a.abs().max(1e-6),
                    "{model}: loss {a} vs {b}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
on_every_backend!(
    replayed_steps_equal_eager_steps,
    super::check_replay_equals_eager
);

/// `recur profile --device emu --json` on the small TRM and HRM presets: a steady step makes no
/// download, synchronisation or fallback and at most one upload.
#[test]
fn profile_of_a_steady_step_moves_only_its_inputs() {
    for preset in ["trm-cpu", "hrm-cpu"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .args([
                "profile", "--device", "emu", "--preset", preset, "--steps", "3", "--json",
            ])
            .args(["--set", "global_batch_size=8", "--set", "data.size=4"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let get = |k: &str| {
            json[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{preset}: no {k}"))
        };
        assert_eq!(get("d2h_per_step"), 0.0, "{preset}");
        assert_eq!(get("syncs_per_step"), 0.0, "{preset}");
        assert_eq!(get("cpu_fallbacks_per_step"), 0.0, "{preset}");
        assert!(get("h2d_per_step") <= 1.0, "{preset}");
        assert!(get("launches_per_step") > 0.0, "{preset}");
        assert_eq!(json["graph"], "replayed a captured graph", "{preset}");
    }
}
