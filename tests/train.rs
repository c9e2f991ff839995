//! Training end to end on small configurations: a step on Emu equals the CPU step, a resumed
//! run is bit-identical to an uninterrupted one (in process and across a killed process),
//! checkpoints round-trip, and the CLI trains, evaluates and solves.

use recur::data::sudoku::{encode_batch, generate, Difficulty, Geometry};
use recur::models::{
    act_loss, act_step, Batch, Carry, Exploration, Halting, ModelConfig, Probe, Reasoner,
};
use recur::tape::Compute;
use recur::testing::rel_l2;
use recur::train::config::preset_names;
use recur::train::{dataset, RunConfig, Trainer};
use recur::{DType, Params, Tape, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small run: 4x4 puzzles, hidden 64 (head dim 32, which the attention kernel supports).
fn small_config(extra: &[&str]) -> RunConfig {
    small_config_of("trm-cpu", extra)
}

fn small_config_of(preset: &str, extra: &[&str]) -> RunConfig {
    let mut overrides = to_strings(&[
        "data.size=4",
        "train_puzzles=64",
        "test_puzzles=16",
        "global_batch_size=8",
        "total_steps=6",
        "eval_interval=0",
        "checkpoint_interval=0",
        "time_limit_s=0",
        "halt_max_steps=3",
        "lr_warmup_steps=2",
    ]);
    overrides.extend(to_strings(extra));
    RunConfig::load(preset, &overrides).unwrap()
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn trainer(cfg: RunConfig) -> Trainer {
    trainer_on(cfg, Compute::Cpu)
}

fn trainer_on(cfg: RunConfig, compute: Compute) -> Trainer {
    let data = dataset::build(&cfg.data).unwrap();
    Trainer::new(cfg, data, compute).unwrap()
}

/// Every parameter's bytes, read on the host (a download for resident parameters).
fn values(params: &Params) -> Vec<(String, Vec<u8>)> {
    params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.value.to_host().unwrap().to_bytes().unwrap(),
            )
        })
        .collect()
}

/// The official init zeroes the Q head and the puzzle table, which would hide bugs in both
/// paths; give them random values.
fn randomise_heads(model: &mut Reasoner, params: &mut Params, seed: u64) {
    for name in ["q_head.weight", "q_head.bias"] {
        let id = params.id(name).unwrap();
        let shape = params.value(id).shape().clone();
        params.get_mut(id).value = Tensor::randn(shape, 0.5, seed, DType::F32).unwrap();
    }
    let mut buffers = model.buffers.clone();
    let table = buffers.puzzle_emb.as_ref().unwrap();
    buffers.puzzle_emb =
        Some(Tensor::randn(table.shape().clone(), 0.5, seed + 1, DType::F32).unwrap());
    model.set_buffers(buffers).unwrap();
}

/// Loss, parameter gradients (by name) and puzzle-row gradients of one training segment.
struct SegmentGrads {
    loss: f64,
    params: Vec<(String, Vec<f64>)>,
    puzzle_rows: Vec<f64>,
}

fn one_segment(compute: Compute, arch_hrm: bool) -> SegmentGrads {
    let mut cfg = ModelConfig {
        hidden_size: 64,
        num_heads: 2,
        puzzle_emb_ndim: 64,
        puzzle_emb_len: 2,
        H_cycles: 2,
        L_cycles: 2,
        vocab_size: 6,
        seq_len: 16,
        ..ModelConfig::trm_att_sudoku()
    };
    if arch_hrm {
        cfg = ModelConfig {
            arch: recur::models::Arch::Hrm,
            H_layers: 1,
            L_layers: 1,
            no_ACT_continue: false,
            ..cfg
        };
    }
    let mut params = Params::new();
    let mut model = Reasoner::new(&mut params, cfg, 7).unwrap();
    randomise_heads(&mut model, &mut params, 11);
    let puzzles = generate(Geometry::of_size(4).unwrap(), Difficulty::Hard, 5, 3).unwrap();
    let (inputs, labels) = encode_batch(&puzzles).unwrap();
    let batch = Batch::new(
        inputs,
        labels,
        Tensor::from_vec(vec![0i32; 5], [5]).unwrap(),
    )
    .unwrap();
    let tape = Tape::with_compute(compute);
    let carry = Carry::initial(&model, &batch).unwrap();
    let mut explore = Exploration {
        seed: 1,
        segment: 0,
    };
    let step = act_step(
        &model,
        &tape,
        &params,
        carry,
        &batch,
        Halting::Train(&mut explore),
        &Probe::off(),
    )
    .unwrap();
    let loss = act_loss(&tape, &step).unwrap();
    let g = tape.backward(&loss.total).unwrap();
    params.accumulate(tape.compute(), g.param_grads()).unwrap();
    // Results stay where they were computed; the comparison reads them on the host.
    let host = |t: &Tensor| t.to_host().unwrap().to_vec_f64().unwrap();
    let grads = params
        .iter()
        .map(|p| (p.name.clone(), host(p.grad.as_ref().unwrap())))
        .collect();
    let rows = host(g.get(step.output.puzzle_rows.as_ref().unwrap()).unwrap());
    SegmentGrads {
        loss: loss.total.value().to_host().unwrap().item().unwrap(),
        params: grads,
        puzzle_rows: rows,
    }
}

/// The same segment on `compute` and on the CPU reference: loss and every gradient within the
/// f32 tolerance.
fn check_training_step_matches_cpu(compute: impl Fn() -> Compute) {
    for hrm in [false, true] {
        let cpu = one_segment(Compute::Cpu, hrm);
        let other = one_segment(compute(), hrm);
        assert!(
            (cpu.loss - other.loss).abs() <= 1e-5 * cpu.loss.abs(),
            "hrm={hrm}: loss {} vs {}",
            cpu.loss,
            other.loss
        );
        for ((name, a), (_, b)) in cpu.params.iter().zip(&other.params) {
            let err = rel_l2(b, a);
            assert!(err < 1e-5, "hrm={hrm} {name}: relative L2 {err:.2e}");
        }
        let err = rel_l2(&other.puzzle_rows, &cpu.puzzle_rows);
        assert!(err < 1e-5, "hrm={hrm} puzzle rows: {err:.2e}");
    }
}

/// A training step on the kernels equals the CPU step. Named `<test>::emu` / `<test>::cuda` like
/// the kernel tests, so `tools/gpu-check.sh` runs the `cuda` twin on the GPU machine.
mod training_step_matches_cpu {
    use super::*;

    #[test]
    fn emu() {
        check_training_step_matches_cpu(Compute::emu);
    }

    #[test]
    fn cuda() {
        match Compute::cuda() {
            Ok(_) => check_training_step_matches_cpu(|| Compute::cuda().unwrap()),
            Err(e) => recur::testing::skip_cuda(module_path!(), e),
        }
    }
}

/// Whole training steps with the state resident on the kernels (parameter, gradient, moment and
/// EMA arenas, the puzzle table) against the CPU trainer: after several steps every live and EMA
/// weight, the puzzle table and the Adam moments agree within the f32 tolerance.
fn check_trainer_matches_cpu(compute: impl Fn() -> Compute) {
    for preset in ["trm-cpu", "hrm-cpu"] {
        let cfg = small_config_of(preset, &[]);
        let mut cpu = trainer(cfg.clone());
        let mut dev = trainer_on(cfg, compute());
        assert!(
            dev.params.arena().is_some(),
            "{preset}: the parameters are resident"
        );
        for _ in 0..4 {
            cpu.train_step().unwrap();
            dev.train_step().unwrap();
        }
        let host = |t: &Tensor| t.to_host().unwrap().to_vec_f64().unwrap();
        let pairs = |a: &Params, b: &Params| -> Vec<(String, Vec<f64>, Vec<f64>)> {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| (x.name.clone(), host(&x.value), host(&y.value)))
                .collect()
        };
        let mut checked = pairs(&cpu.params, &dev.params);
        checked.extend(pairs(cpu.eval_params(), dev.eval_params()));
        let table = |t: &Trainer| host(t.model.buffers.puzzle_emb.as_ref().unwrap());
        checked.push(("puzzle table".into(), table(&cpu), table(&dev)));
        // Not the Q head: the official init zeroes its weight, so HRM's first AdamATan2 steps
        // follow the sign of Q gradients that are zero up to rounding, and the two paths may step
        // it either way. `training_step_matches_cpu` checks its gradients from random values.
        let bad: Vec<String> = checked
            .iter()
            .filter(|(name, _, _)| !name.starts_with("q_head"))
            .map(|(name, want, got)| (name, rel_l2(got, want)))
            .filter(|(_, err)| err.is_nan() || *err >= 1e-5)
            .map(|(name, err)| format!("{name}: relative L2 {err:.2e}"))
            .collect();
        assert!(bad.is_empty(), "{preset}: {bad:#?}");
    }
}

mod trainer_matches_cpu {
    use super::*;

    #[test]
    fn emu() {
        check_trainer_matches_cpu(Compute::emu);
    }

    #[test]
    fn cuda() {
        match Compute::cuda() {
            Ok(_) => check_trainer_matches_cpu(|| Compute::cuda().unwrap()),
            Err(e) => recur::testing::skip_cuda(module_path!(), e),
        }
    }
}

/// A resident run saved and resumed (the state downloaded to save, uploaded again on resume)
/// continues bit-identically on Emu (one worker, so the embedding gradient's atomics add in one
/// order).
#[test]
fn resuming_on_emu_is_bit_identical() {
    recur::device::emu::Emu::set_max_workers(1);
    let dir = tempdir("resume-emu");
    let cfg = small_config(&["total_steps=4"]);
    let mut straight = trainer_on(cfg.clone(), Compute::emu());
    for _ in 0..4 {
        straight.train_step().unwrap();
    }
    let mut first = trainer_on(cfg.clone(), Compute::emu());
    for _ in 0..2 {
        first.train_step().unwrap();
    }
    let state = dir.join("state.safetensors");
    first.save_state(&state, 1.0).unwrap();
    drop(first);
    let mut resumed = trainer_on(cfg, Compute::emu());
    resumed.load_state(&state).unwrap();
    assert!(resumed.params.arena().is_some(), "resumed into the arenas");
    for _ in 0..2 {
        resumed.train_step().unwrap();
    }
    // Compared by name, so a failure names the parameter rather than printing its bytes.
    for (what, a, b) in [
        ("live", values(&resumed.params), values(&straight.params)),
        (
            "EMA",
            values(resumed.eval_params()),
            values(straight.eval_params()),
        ),
    ] {
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{what} {name} differs after resuming");
        }
    }
}

#[test]
fn resuming_in_process_is_bit_identical() {
    let dir = tempdir("resume-in-process");
    let cfg = small_config(&[]);
    let mut straight = trainer(cfg.clone());
    for _ in 0..6 {
        straight.train_step().unwrap();
    }
    let mut first = trainer(cfg.clone());
    for _ in 0..3 {
        first.train_step().unwrap();
    }
    let state = dir.join("state.safetensors");
    first.save_state(&state, 1.0).unwrap();
    drop(first);
    let mut resumed = trainer(cfg);
    resumed.load_state(&state).unwrap();
    assert_eq!(resumed.step, 3);
    for _ in 0..3 {
        resumed.train_step().unwrap();
    }
    assert_eq!(values(&resumed.params), values(&straight.params));
    assert_eq!(
        values(resumed.eval_params()),
        values(straight.eval_params())
    );
    assert_eq!(
        resumed
            .model
            .buffers
            .puzzle_emb
            .as_ref()
            .unwrap()
            .to_bytes()
            .unwrap(),
        straight
            .model
            .buffers
            .puzzle_emb
            .as_ref()
            .unwrap()
            .to_bytes()
            .unwrap()
    );
    // A state from another configuration is refused.
    let mut other = trainer(small_config(&["train.lr=0.5"]));
    let err = other.load_state(&state).expect_err("config mismatch");
    assert!(err.to_string().contains("different configuration"), "{err}");
}

#[test]
fn config_overrides_are_checked() {
    let err = RunConfig::load("trm-cpu", &["hiden_size=3".into()])
        .err()
        .unwrap();
    assert!(err.to_string().contains("hiden_size"), "{err}");
    let err = RunConfig::load("trm-cpu", &["train.lr=fast".into()])
        .err()
        .unwrap();
    assert!(err.to_string().contains("lr"), "{err}");
    let err = RunConfig::load("no-such-preset", &[]).err().unwrap();
    assert!(err.to_string().contains("trm-cpu"), "{err}");
    let cfg = RunConfig::load("trm-cpu", &["lr=1".into(), "model.hidden_size=32".into()]).unwrap();
    assert_eq!((cfg.train.lr, cfg.model.hidden_size), (1.0, 32));
    for preset in preset_names() {
        RunConfig::load(preset, &[]).unwrap();
    }
    // `recur train` with no --preset: the README's main command, on 6x6 puzzles.
    let default = RunConfig::load(recur::cli::train::DEFAULT_PRESET, &[]).unwrap();
    assert_eq!(default.data.size, 6);
    let paper = RunConfig::load("trm-att-sudoku", &[]).unwrap();
    assert_eq!(paper.model, ModelConfig::trm_att_sudoku());
    let paper = RunConfig::load("trm-mlp-sudoku", &[]).unwrap();
    assert_eq!(paper.model, ModelConfig::trm_mlp_sudoku());
    let paper = RunConfig::load("hrm-sudoku", &[]).unwrap();
    assert_eq!(paper.model, ModelConfig::hrm_sudoku());
    assert_eq!(recur::train::trainer::total_steps(&paper, 1000), 26_041);
    let trm = RunConfig::load("trm-att-sudoku", &[]).unwrap();
    assert_eq!(recur::train::trainer::total_steps(&trm, 1000), 65_104);
}

/// Every built-in preset's data builds exactly as written. With `test_puzzles = 0` (the paper
/// presets) the held-out set is every distinct puzzle the training set leaves; the bundled set
/// repeats some questions, and they must not eat into the 1000 training puzzles.
#[test]
fn every_preset_builds_its_data_as_written() {
    let mut built: Vec<recur::train::config::DataConfig> = Vec::new();
    let mut all_but_with_repeats = 0;
    for preset in preset_names() {
        let cfg = RunConfig::load(preset, &[]).unwrap().data;
        // The paper presets share one [data]; it is built once.
        if built.contains(&cfg) {
            continue;
        }
        let data = dataset::build(&cfg).unwrap_or_else(|e| panic!("{preset}: {e}"));
        let split = &data.meta.split;
        let distinct = split.input_count - split.duplicates_removed;
        let held_out = match cfg.test_puzzles {
            0 => distinct - cfg.train_puzzles,
            n => n,
        };
        assert_eq!(
            (data.train.len(), data.test.len()),
            (cfg.train_puzzles, held_out),
            "{preset}"
        );
        let train: std::collections::HashSet<_> = data.train.iter().map(|p| &p.question).collect();
        assert!(
            data.test.iter().all(|p| !train.contains(&p.question)),
            "{preset}: a training question is held out"
        );
        if cfg.test_puzzles == 0 && split.duplicates_removed > 0 {
            all_but_with_repeats += 1;
        }
        built.push(cfg);
    }
    assert!(all_but_with_repeats > 0, "the case this test is for");
}

/// Asking for more puzzles than the data has distinct questions is an error that names the data,
/// the counts, and the fields to change, whichever way the held-out size is given.
#[test]
fn too_few_distinct_puzzles_is_a_clear_error() {
    let data = |sets: &[&str]| {
        RunConfig::load("trm-att-sudoku", &to_strings(sets))
            .unwrap()
            .data
    };
    let distinct = recur::data::sudoku::TDOKU_PUZZLES - 131;
    let all_for_training = format!("train_puzzles={distinct}");
    for (sets, words) in [
        (
            vec![all_for_training.as_str()],
            vec![format!(
                "{distinct} training puzzles and at least 1 held-out one"
            )],
        ),
        (
            vec!["train_puzzles=1000", "test_puzzles=99000"],
            vec![
                format!("{distinct} distinct questions (131 repeated questions dropped"),
                format!(
                    "leave {} for training after 99000 held out, 1000 asked",
                    distinct - 99000
                ),
            ],
        ),
    ] {
        let err = dataset::build(&data(&sets)).err().unwrap().to_string();
        assert!(err.contains("bundled tdoku"), "{err}");
        assert!(
            err.contains("lower data.train_puzzles or data.test_puzzles"),
            "{err}"
        );
        for w in words {
            assert!(err.contains(&w), "{w:?} not in {err}");
        }
    }
}

// ---- the command line -------------------------------------------------------------------

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recur-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn recur() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recur"));
    c.env_remove("RECUR_DEVICE");
    c
}

const CLI_RUN: &[&str] = &[
    "--preset",
    "trm-cpu",
    "--device",
    "cpu",
    "--set",
    "data.size=4",
    "--set",
    "train_puzzles=64",
    "--set",
    "test_puzzles=16",
    "--set",
    "global_batch_size=8",
    "--set",
    "hidden_size=32",
    "--set",
    "puzzle_emb_ndim=32",
    "--set",
    "halt_max_steps=3",
    "--set",
    "lr_warmup_steps=2",
    "--set",
    "eval_interval=10",
    "--set",
    "eval_puzzles=8",
    "--set",
    "time_limit_s=0",
];

/// Runs `cmd` and fails the test with its stderr unless it succeeds.
fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn train(dir: &Path, extra: &[&str]) -> Command {
    let mut c = recur();
    c.arg("train")
        .args(CLI_RUN)
        .args(extra)
        .arg("--out")
        .arg(dir);
    c
}

#[test]
fn cli_trains_evaluates_solves_and_refuses_to_overwrite() {
    let dir = tempdir("cli");
    let run = dir.join("run");
    let out = succeed(&mut train(&run, &["--set", "total_steps=30"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("held-out exact accuracy"), "{stdout}");
    for f in [
        "model.safetensors",
        "state.safetensors",
        "metrics.jsonl",
        "curves.png",
        "depth.csv",
        "depth.png",
        "config.toml",
        "dataset.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // The loss went down over the 30 steps.
    let losses: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 30);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    assert!(
        mean(&losses[25..]) < mean(&losses[..5]),
        "loss did not fall: {losses:?}"
    );

    let again = train(&run, &["--set", "total_steps=30"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    let ckpt = run.join("model.safetensors");
    succeed(
        recur()
            .args(["eval", "--device", "cpu", "--checkpoint"])
            .arg(&ckpt),
    );
    let depth = std::fs::read_to_string(run.join("eval-heldout/depth.csv")).unwrap();
    assert_eq!(depth.lines().count(), 1 + 3, "{depth}");

    let solve = succeed(
        recur()
            .args([
                "solve",
                "--device",
                "cpu",
                "1..4.4..........",
                "--checkpoint",
            ])
            .arg(&ckpt),
    );
    assert!(String::from_utf8_lossy(&solve.stdout).contains("halted at step"));

    // A 9x9 puzzle does not fit this 4x4 model: a clear error, not a panic.
    let wrong = recur()
        .args(["solve", "--device", "cpu", &".".repeat(81), "--checkpoint"])
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("cells"));
}

/// Every built-in preset trains from the command line: one step at batch 2 on the CPU, its loss
/// finite and positive in metrics.jsonl, and a model file that reloads as the preset's model.
/// The final evaluation runs every held-out puzzle through all `halt_max_steps` segments; for the
/// paper presets (98,633 puzzles, 16 segments) that is hours on a CPU, so here it gets one puzzle
/// and one segment. The presets' data as written is `every_preset_builds_its_data_as_written`'s.
/// The cost is the paper models' arithmetic (about 90 GFLOP for one TRM-Att step at batch 2),
/// not the data (half a second for the bundled set).
#[test]
fn every_preset_trains_one_step_from_the_command_line() {
    use recur::train::model_file::{instantiate, read_model};
    const SETS: &[&str] = &[
        "global_batch_size=2",
        "total_steps=1",
        "eval_interval=0",
        "checkpoint_interval=0",
        "test_puzzles=1",
        "halt_max_steps=1",
    ];
    let root = tempdir("presets");
    for preset in preset_names() {
        let started = std::time::Instant::now();
        let run = root.join(preset);
        succeed(
            recur()
                .args(["train", "--device", "cpu", "--preset", preset, "--out"])
                .arg(&run)
                .args(SETS.iter().flat_map(|s| ["--set", s])),
        );
        let records: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of_kind = |kind: &str| -> Vec<&serde_json::Value> {
            records.iter().filter(|r| r["kind"] == kind).collect()
        };
        let steps = of_kind("train");
        assert_eq!(steps.len(), 1, "{preset}: {records:?}");
        assert_eq!(steps[0]["step"], 1, "{preset}");
        let loss = steps[0]["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{preset}: loss {loss}");
        let evals = of_kind("eval");
        assert_eq!(evals.len(), 1, "{preset}: only the final evaluation");
        assert_eq!(evals[0]["puzzles"], 1, "{preset}");
        assert_eq!(
            evals[0]["exact_by_step"].as_array().map(Vec::len),
            Some(1),
            "{preset}"
        );

        // The model file holds the step and the preset's model: every parameter and buffer
        // present with its shape.
        let path = run.join("model.safetensors");
        let file = read_model(&path).unwrap();
        assert_eq!(file.step, Some(1), "{preset}");
        let recorded = RunConfig::from_toml(file.config_toml.as_deref().unwrap(), preset, &[])
            .unwrap()
            .model;
        let mut expected = RunConfig::load(preset, &to_strings(SETS)).unwrap().model;
        // "auto" is resolved when training starts and recorded as what ran.
        expected.forward_dtype = recorded.forward_dtype;
        assert_eq!(recorded, expected, "{preset}");
        instantiate(&recorded, &file, &path).unwrap_or_else(|e| panic!("{preset}: {e}"));

        eprintln!("{preset}: {:.1} s", started.elapsed().as_secs_f64());
        // The paper presets' model and state files are hundreds of MB.
        std::fs::remove_dir_all(&run).unwrap();
    }
}

/// Puzzles a depth.csv scored: its `halted_here` column counts every puzzle once.
fn puzzles_in_depth_csv(path: &Path) -> f64 {
    let (header, rows) = recur::report::csv::read_csv(path).unwrap();
    let column = header.iter().position(|h| h == "halted_here").unwrap();
    rows.iter().map(|r| r[column].parse::<f64>().unwrap()).sum()
}

/// `recur eval` replaces no file it did not make: the training run's depth curve stays as the run
/// wrote it, each evaluation gets a new folder beside the checkpoint and says which, a failed one
/// leaves no folder, and an `--out` holding an evaluation is refused unless `--force`.
#[test]
fn eval_writes_a_folder_of_its_own_and_never_overwrites() {
    let dir = tempdir("eval-out");
    let run = dir.join("run");
    succeed(&mut train(&run, &["--set", "total_steps=4"]));
    let ckpt = run.join("model.safetensors");
    let run_files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(puzzles_in_depth_csv(&run.join("depth.csv")), 16.0);

    let puzzles = generate(Geometry::of_size(4).unwrap(), Difficulty::Hard, 5, 7).unwrap();
    let input = dir.join("other.csv");
    write_puzzle_csv(&input, &puzzles);
    let eval = |extra: &[&str]| {
        let mut c = recur();
        c.args(["eval", "--device", "cpu", "--checkpoint"])
            .arg(&ckpt)
            .arg("--input")
            .arg(&input)
            .args(extra);
        c
    };
    let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let says_it_wrote = |out: &std::process::Output, folder: &Path| {
        let text = stdout(out);
        let csv = folder.join("depth.csv").display().to_string();
        let png = folder.join("depth.png").display().to_string();
        assert!(text.contains(&format!("wrote {csv} and {png}")), "{text}");
    };

    let first = succeed(&mut eval(&[]));
    let first_dir = run.join("eval-other");
    says_it_wrote(&first, &first_dir);
    assert_eq!(puzzles_in_depth_csv(&first_dir.join("depth.csv")), 5.0);
    assert!(first_dir.join("depth.png").is_file());
    let first_csv = std::fs::read(first_dir.join("depth.csv")).unwrap();

    // The same input again: a second folder; the first keeps its own scores.
    let second = succeed(&mut eval(&["--limit", "2"]));
    let second_dir = run.join("eval-other-2");
    says_it_wrote(&second, &second_dir);
    assert_eq!(puzzles_in_depth_csv(&second_dir.join("depth.csv")), 2.0);
    assert_eq!(
        std::fs::read(first_dir.join("depth.csv")).unwrap(),
        first_csv
    );

    // Without --input the held-out split is scored, into a folder named for it.
    let held_out = succeed(
        recur()
            .args(["eval", "--device", "cpu", "--limit", "3", "--checkpoint"])
            .arg(&ckpt),
    );
    says_it_wrote(&held_out, &run.join("eval-heldout"));
    assert_eq!(
        puzzles_in_depth_csv(&run.join("eval-heldout/depth.csv")),
        3.0
    );

    // A failed evaluation leaves no folder behind.
    let failed = recur()
        .args(["eval", "--device", "cpu", "--checkpoint"])
        .arg(&ckpt)
        .arg("--input")
        .arg(dir.join("missing.csv"))
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(!run.join("eval-missing").exists());

    // An explicit --out that holds an evaluation (or the run itself) is refused before anything
    // runs, and replaced only with --force.
    for taken in [&first_dir, &run] {
        let refused = eval(&["--out", taken.to_str().unwrap()]).output().unwrap();
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("depth.csv already exists") && stderr.contains("--force"),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(first_dir.join("depth.csv")).unwrap(),
        first_csv
    );
    let forced = succeed(&mut eval(&[
        "--out",
        first_dir.to_str().unwrap(),
        "--force",
        "--limit",
        "1",
    ]));
    says_it_wrote(&forced, &first_dir);
    assert_eq!(puzzles_in_depth_csv(&first_dir.join("depth.csv")), 1.0);

    // The training run's own files are byte for byte what training wrote.
    for (path, bytes) in &run_files {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{} changed",
            path.display()
        );
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_model_as_an_uninterrupted_one() {
    let dir = tempdir("kill");
    let args = ["--set", "total_steps=150", "--set", "checkpoint_interval=4"];
    succeed(&mut train(&dir.join("straight"), &args));

    let killed_dir = dir.join("killed");
    let mut child = train(&killed_dir, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as a mid-run checkpoint exists.
    let state = killed_dir.join("state.safetensors");
    let started = std::time::Instant::now();
    while !state.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The final evaluation writes depth.csv: its absence shows the run really died mid-way.
    assert!(
        !killed_dir.join("depth.csv").exists(),
        "the run finished before it was killed"
    );
    let resumed = succeed(
        recur()
            .args(["train", "--device", "cpu", "--resume"])
            .arg(&killed_dir),
    );
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("resumed at step"));
    let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        bytes(&killed_dir) == bytes(&dir.join("straight")),
        "resumed model differs"
    );
}

#[test]
fn checkpoints_round_trip_and_predict_dumps_every_step() {
    use recur::checkpoint::load_tensors;
    let dir = tempdir("predict");
    let run = dir.join("run");
    succeed(&mut train(&run, &["--set", "total_steps=12"]));
    let ckpt = run.join("model.safetensors");

    // The saved model reloads to the same predictions as the trainer's own evaluation weights.
    let puzzles = generate(Geometry::of_size(4).unwrap(), Difficulty::Hard, 5, 99).unwrap();
    let input = dir.join("puzzles.csv");
    write_puzzle_csv(&input, &puzzles);
    let dump = dir.join("dump.safetensors");
    succeed(
        recur()
            .args(["predict", "--checkpoint"])
            .arg(&ckpt)
            .arg("--input")
            .arg(&input)
            .arg("--dump")
            .arg(&dump),
    );
    let (tensors, _) = load_tensors(&dump).unwrap();
    assert_eq!(
        tensors.len(),
        3 * 3 + 2,
        "{:?}",
        tensors.keys().collect::<Vec<_>>()
    );
    assert_eq!(tensors["step03.logits"].dims(), &[5, 16, 6]);
    assert_eq!(tensors["step01.q_halt_logits"].dims(), &[5]);
    assert_eq!(tensors["final.z_H"].dims(), &[5, 17, 32]);

    // The same checkpoint loaded in process gives the dumped logits exactly.
    let file = recur::train::model_file::read_model(&ckpt).unwrap();
    let cfg = RunConfig::from_toml(file.config_toml.as_deref().unwrap(), "ckpt", &[]).unwrap();
    let (model, params) = recur::train::model_file::instantiate(&cfg.model, &file, &ckpt).unwrap();
    let (inputs, labels) = encode_batch(&puzzles).unwrap();
    let batch = Batch::new(
        inputs,
        labels,
        Tensor::from_vec(vec![0i32; 5], [5]).unwrap(),
    )
    .unwrap();
    let tape = Tape::new();
    let carry = Carry::initial(&model, &batch).unwrap();
    let step = tape
        .no_grad(|| {
            act_step(
                &model,
                &tape,
                &params,
                carry,
                &batch,
                Halting::Eval,
                &Probe::off(),
            )
        })
        .unwrap();
    assert_eq!(
        step.output.logits.value().to_bytes().unwrap(),
        tensors["step01.logits"].to_bytes().unwrap()
    );

    // A malformed row stops evaluation with its file and line, unless asked to skip it.
    let bad = dir.join("bad.csv");
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("gen,12..,1234,0\n");
    std::fs::write(&bad, text).unwrap();
    let strict = recur()
        .args(["eval", "--device", "cpu", "--checkpoint"])
        .arg(&ckpt)
        .arg("--input")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!strict.status.success());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        stderr.contains("bad.csv") && stderr.contains("line 7"),
        "{stderr}"
    );
    let skipping = succeed(
        recur()
            .args([
                "eval",
                "--device",
                "cpu",
                "--skip-malformed",
                "--checkpoint",
            ])
            .arg(&ckpt)
            .arg("--input")
            .arg(&bad)
            .arg("--out")
            .arg(dir.join("eval-out")),
    );
    let stderr = String::from_utf8_lossy(&skipping.stderr);
    assert!(stderr.contains("skipped 1 malformed rows of 6"), "{stderr}");
    assert!(String::from_utf8_lossy(&skipping.stdout).contains("on 5 puzzles"));

    // A checkpoint that does not fit the model names every problem.
    let wrong = recur()
        .args(["eval", "--device", "cpu", "--checkpoint"])
        .arg(&ckpt)
        .args(["--set", "hidden_size=64", "--set", "puzzle_emb_ndim=64"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("lm_head.weight") && stderr.contains("expected"),
        "{stderr}"
    );
}

/// Bad token ids, labels and puzzle ids are rejected where the batch is built, on the host,
/// before anything reaches the device (the kernels could only turn them into a NaN loss), with
/// the messages the CPU ops give.
#[test]
fn bad_batches_are_rejected_before_staging() {
    use recur::device::counting::Counting;
    use recur::device::emu::Emu;
    use recur::train::step_inputs::{stage, HostInputs};
    use std::sync::Arc;

    let cfg = small_config(&[]);
    let mut params = Params::new();
    let model = Reasoner::new(&mut params, cfg.model.clone(), 1).unwrap();
    let (b, s) = (3, cfg.model.seq_len);
    let vocab = cfg.model.vocab_size as i32;
    let batch = |token: i32, label: i32, id: i32| {
        let mut inputs = vec![1i32; b * s];
        let mut labels = vec![2i32; b * s];
        inputs[b * s - 2] = token;
        labels[s + 1] = label;
        Batch::new(
            Tensor::from_vec(inputs, [b, s]).unwrap(),
            Tensor::from_vec(labels, [b, s]).unwrap(),
            Tensor::from_vec(vec![0, id, 0], [b]).unwrap(),
        )
        .unwrap()
    };
    let dev = Counting::new(Arc::new(Emu::default()));
    let compute = Compute::on(dev.clone());
    let stage = |batch: Batch| {
        let host = HostInputs {
            batch,
            adam_scalars: None,
            sign_sgd_scalars: [1.0, -1e-3],
            exploration_draw: None,
        };
        stage(&compute, &model, host, None)
    };
    for (what, bad, expect) in [
        ("token", batch(vocab, 2, 0), "outside the vocabulary"),
        ("negative token", batch(-1, 2, 0), "outside the vocabulary"),
        ("label", batch(1, vocab, 0), "is not a class"),
        ("puzzle id", batch(1, 2, 1), "puzzle identifiers"),
    ] {
        let err = stage(bad)
            .err()
            .unwrap_or_else(|| panic!("a bad {what} was staged"));
        assert!(err.to_string().contains(expect), "{what}: {err}");
        let counts = dev.take();
        assert_eq!(counts.uploads, 0, "{what}: nothing is uploaded");
    }
    // The ignore label is fine, and a good batch arrives in one upload.
    let staged = stage(batch(1, -100, 0)).unwrap();
    assert_eq!(dev.take().uploads, 1);
    assert!(!staged.batch.inputs.is_on_host());
    assert_eq!(
        staged.batch.labels.to_host().unwrap().to_vec_i32().unwrap()[s + 1],
        -100
    );
}

/// `recur train --device emu` gives the same final model byte for byte with `--graph on` (steps
/// from the second replay a captured graph) and `--graph off` (every step eager). One Emu worker
/// (`RECUR_EMU_WORKERS=1`), so float atomics add in one order in both runs.
#[test]
fn cli_graph_on_and_off_train_the_same_model() {
    let dir = tempdir("graph-on-off");
    let mut models = Vec::new();
    for mode in ["on", "off"] {
        let out = dir.join(mode);
        // The shared run settings on Emu, with head dim 32 (the fused attention kernels'; a head
        // dim of 16 falls back to the CPU reference, which a capture refuses).
        let run: Vec<&str> = CLI_RUN
            .iter()
            .map(|&a| match a {
                "cpu" => "emu",
                "hidden_size=32" => "hidden_size=64",
                "puzzle_emb_ndim=32" => "puzzle_emb_ndim=64",
                other => other,
            })
            .collect();
        let mut cmd = recur();
        cmd.arg("train")
            .args(&run)
            .args(["--set", "total_steps=5", "--graph", mode, "--out"])
            .arg(&out)
            .env("RECUR_EMU_WORKERS", "1");
        let printed = String::from_utf8_lossy(&succeed(&mut cmd).stdout).into_owned();
        assert_eq!(
            printed.contains("captured as a graph"),
            mode == "on",
            "{mode}: {printed}"
        );
        models.push(std::fs::read(out.join("model.safetensors")).unwrap());
    }
    assert!(
        models[0] == models[1],
        "--graph on and off trained different models"
    );
    // On the CPU there is no graph to capture: `on` is refused with the reason.
    let err = recur()
        .arg("train")
        .args(CLI_RUN)
        .args(["--graph", "on", "--out"])
        .arg(dir.join("cpu"))
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("kernel backend"));
    assert!(
        !dir.join("cpu").exists(),
        "a refused flag leaves no run folder"
    );
    // So is a mode that does not exist, before anything is written.
    let bad = recur()
        .arg("train")
        .args(CLI_RUN)
        .args(["--graph", "maybe", "--out"])
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a graph mode"));
    assert!(!dir.join("bad").exists());
}

/// Writes puzzles as a Sudoku-Extreme CSV (source, question, answer, rating).
fn write_puzzle_csv(path: &std::path::Path, puzzles: &[recur::data::sudoku::Puzzle]) {
    let mut csv = String::from("source,question,answer,rating\n");
    for p in puzzles {
        csv += &format!("gen,{},{},0\n", p.question_string(), p.answer_string());
    }
    std::fs::write(path, csv).unwrap();
}
