//! `recur train`: trains a model on Sudoku with a progress bar, periodic evaluation, metrics
//! (JSONL), plots (PNG), and atomic checkpoints; `--resume` continues a run exactly.

use crate::cli::model_args::{default_run_dir, ConfigArgs, DeviceArgs};
use crate::error::{Error, Result};
use crate::report::MetricsWriter;
use crate::train::config::RunConfig;
use crate::train::graph_mode::GraphMode;
use crate::train::model_file::save_model;
use crate::train::plots::{plot_depth_curve, plot_training_curves, write_depth_csv};
use crate::train::{dataset, EvalReport, Trainer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The run folder (default: runs/<preset>). It must not hold another run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, conflicts_with_all = ["out", "preset", "arch", "overrides"])]
    pub resume: Option<PathBuf>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Capture the training step as a CUDA graph from the second step and replay it: `on`,
    /// `off`, or `auto` (on a kernel backend that can capture). A failed capture trains eagerly.
    #[arg(long, default_value = "auto")]
    pub graph: String,
}

pub const DEFAULT_PRESET: &str = "trm-sudoku6";
const CONFIG_FILE: &str = "config.toml";
const STATE_FILE: &str = "state.safetensors";
const MODEL_FILE: &str = "model.safetensors";
const METRICS_FILE: &str = "metrics.jsonl";

pub fn run(args: TrainArgs) -> Result<()> {
    // Flags are checked before anything is built or written.
    let graph_mode: GraphMode = args.graph.parse()?;
    let compute = args.device.compute()?;
    if graph_mode == GraphMode::On && compute.kernels().is_none() {
        return Err(Error::arg(
            "--graph",
            "on needs a kernel backend (--device emu or cuda); the CPU reference has no graphs",
        ));
    }
    super::set_cpu_threads(args.threads);
    let (cfg, dir, resuming) = match &args.resume {
        Some(dir) => {
            let path = dir.join(CONFIG_FILE);
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            (
                RunConfig::from_toml(&text, &path.display().to_string(), &[])?,
                dir.clone(),
                true,
            )
        }
        None => {
            let cfg = args.config.resolve(DEFAULT_PRESET)?;
            let dir = args.out.clone().unwrap_or_else(|| {
                default_run_dir(args.config.preset.as_deref().unwrap_or(DEFAULT_PRESET))
            });
            if dir.join(STATE_FILE).exists() || dir.join(MODEL_FILE).exists() {
                return Err(Error::arg(
                    "train",
                    format!(
                        "{} already holds a run; continue it with --resume {0}, or choose another --out",
                        dir.display()
                    ),
                ));
            }
            (cfg, dir, false)
        }
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;

    let started = Instant::now();
    println!("recur train: building the dataset ({:?})", cfg.data.source);
    let data = dataset::build(&cfg.data)?;
    println!(
        "  {}: {} training puzzles, {} held out ({:.1} / {:.1} givens on average)",
        data.meta.source,
        data.train.len(),
        data.test.len(),
        data.meta.train_mean_givens,
        data.meta.test_mean_givens
    );
    if data.meta.skipped_rows > 0 {
        println!(
            "  skipped {} malformed CSV rows (data.skip_malformed = true)",
            data.meta.skipped_rows
        );
    }
    let meta_json = serde_json::to_string_pretty(&data.meta).expect("metadata serialises");
    let mut trainer = Trainer::new(cfg, data, compute)?;
    trainer.graph_mode = graph_mode;
    let config_toml = trainer.cfg.to_toml()?;
    let metrics_path = dir.join(METRICS_FILE);
    let mut metrics = if resuming {
        trainer.load_state(&dir.join(STATE_FILE))?;
        println!("  resumed at step {}", trainer.step);
        MetricsWriter::append(&metrics_path)?
    } else {
        write_text(&dir.join(CONFIG_FILE), &config_toml)?;
        write_text(&dir.join("dataset.json"), &meta_json)?;
        MetricsWriter::create(&metrics_path)?
    };
    let m = &trainer.cfg.model;
    // The token-mixing MLP has no heads; attention's count says nothing about it.
    let mixing = if m.mlp_t {
        " token-mixing MLP".to_string()
    } else {
        format!(" heads {}", m.num_heads)
    };
    println!(
        "  model: {:?} hidden {}{} H_cycles {} L_cycles {} layers {}+{} halt_max_steps {}, \
         {} parameters; batch {}, {} steps, on {} ({} CPU threads); run folder {}",
        m.arch,
        m.hidden_size,
        mixing,
        m.H_cycles,
        m.L_cycles,
        m.L_layers,
        if m.arch == crate::models::Arch::Hrm {
            m.H_layers
        } else {
            0
        },
        m.halt_max_steps,
        m.num_parameters(),
        trainer.cfg.train.global_batch_size,
        trainer.total_steps(),
        trainer.compute.name(),
        rayon::current_num_threads(),
        dir.display()
    );

    let total = trainer.total_steps();
    let t = trainer.cfg.train.clone();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:25}] step {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(trainer.step);
    let clock = Instant::now();
    let elapsed = |trainer: &Trainer| trainer.elapsed_before_s + clock.elapsed().as_secs_f64();
    let mut last_eval = String::from("-");
    let mut stopped_by_limit = false;
    let save = |trainer: &Trainer, elapsed_s: f64| -> Result<()> {
        save_model(
            &dir.join(MODEL_FILE),
            trainer.eval_params(),
            &trainer.model.buffers,
            &config_toml,
            trainer.step,
        )?;
        trainer.save_state(&dir.join(STATE_FILE), elapsed_s)
    };
    while trainer.step < total {
        if t.time_limit_s > 0.0 && elapsed(&trainer) >= t.time_limit_s {
            stopped_by_limit = true;
            break;
        }
        let captured = trainer.is_replaying();
        let r = trainer.train_step()?;
        if !captured && trainer.is_replaying() {
            bar.suspend(|| {
                println!(
                    "  step {} captured as a graph; later steps replay it",
                    r.step
                )
            });
        }
        if !r.loss.is_finite() {
            save(&trainer, elapsed(&trainer))?;
            return Err(Error::arg(
                "train",
                format!(
                    "the loss became {} at step {} (state saved in {})",
                    r.loss,
                    r.step,
                    dir.display()
                ),
            ));
        }
        let mut record = serde_json::to_value(&r).expect("report serialises");
        record["kind"] = json!("train");
        record["elapsed_s"] = json!(elapsed(&trainer));
        metrics.write(&record)?;
        bar.set_position(r.step);
        bar.set_message(format!(
            "loss {:.4} acc {} exact {} | held-out exact {last_eval}",
            r.loss,
            pct(r.accuracy),
            pct(r.exact_accuracy)
        ));
        if t.eval_interval > 0 && r.step % t.eval_interval == 0 && r.step < total {
            let (report, _) = trainer.evaluate(t.eval_puzzles, |_| {})?;
            last_eval = pct(report.exact_accuracy());
            // Printed above the bar, so a log without a terminal keeps it too.
            bar.suspend(|| {
                println!(
                    "  step {} ({:.0} s): held-out exact {} on {} puzzles; after 1 supervision \
                     step {}",
                    r.step,
                    elapsed(&trainer),
                    last_eval,
                    report.puzzles,
                    pct(report.exact_by_step.first().copied().unwrap_or(f64::NAN))
                )
            });
            write_eval(&mut metrics, &trainer, &report, elapsed(&trainer))?;
            plot_training_curves(&metrics_path, &dir.join("curves.png"))?;
        }
        if t.checkpoint_interval > 0 && r.step % t.checkpoint_interval == 0 {
            save(&trainer, elapsed(&trainer))?;
        }
    }
    bar.abandon();
    let train_s = elapsed(&trainer);
    if stopped_by_limit {
        println!(
            "time limit of {:.0} s (train.time_limit_s) reached at step {} of {total}",
            t.time_limit_s, trainer.step
        );
    }
    save(&trainer, train_s)?;

    println!(
        "evaluating on {} held-out puzzles (all {} supervision steps)",
        trainer.data.test.len(),
        trainer.cfg.model.halt_max_steps
    );
    let eval_bar = ProgressBar::new(trainer.data.test.len() as u64);
    let (report, _) = trainer.evaluate(0, |done| eval_bar.set_position(done as u64))?;
    eval_bar.finish_and_clear();
    write_eval(&mut metrics, &trainer, &report, train_s)?;
    plot_training_curves(&metrics_path, &dir.join("curves.png"))?;
    write_depth_csv(&dir.join("depth.csv"), &report)?;
    plot_depth_curve(
        &dir.join("depth.png"),
        &report,
        &format!("{:?} depth curve", trainer.cfg.model.arch),
    )?;
    let stopped = stopped_by_limit.then_some((t.time_limit_s, total));
    print_summary(
        &report,
        trainer.step,
        stopped,
        train_s,
        started.elapsed().as_secs_f64(),
        &dir,
    );
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::checkpoint::write_atomically(path, |w| {
        w.write_all(text.as_bytes()).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    })
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "-".into()
    }
}

fn write_eval(
    metrics: &mut MetricsWriter,
    trainer: &Trainer,
    report: &EvalReport,
    elapsed_s: f64,
) -> Result<()> {
    let mut record = serde_json::to_value(report).expect("report serialises");
    record["kind"] = json!("eval");
    record["step"] = json!(trainer.step);
    record["exact_accuracy"] = json!(report.exact_accuracy());
    record["token_accuracy"] = json!(report.token_accuracy());
    record["mean_halt_step"] = json!(report.mean_halt_step());
    record["elapsed_s"] = json!(elapsed_s);
    metrics.write(&record)
}

/// The depth curve and the final accuracy, as `train` and `eval` both print them.
pub fn print_accuracy(report: &EvalReport) {
    println!(
        "depth curve (exact accuracy after k of the {} supervision steps):",
        report.exact_by_step.len()
    );
    let cells: Vec<String> = report
        .exact_by_step
        .iter()
        .enumerate()
        .map(|(k, a)| format!("{}:{:.1}%", k + 1, 100.0 * a))
        .collect();
    println!("  {}", cells.join("  "));
    println!(
        "held-out exact accuracy {:.2}% (token {:.2}%) on {} puzzles; mean halting step {:.2}",
        100.0 * report.exact_accuracy(),
        100.0 * report.token_accuracy(),
        report.puzzles,
        report.mean_halt_step()
    );
}

/// `stopped`: the time limit and the planned steps, when the limit ended training.
fn print_summary(
    report: &EvalReport,
    step: u64,
    stopped: Option<(f64, u64)>,
    train_s: f64,
    total_s: f64,
    dir: &Path,
) {
    print_accuracy(report);
    let why = match stopped {
        Some((limit, total)) => {
            format!(", stopped by the {limit:.0} s time limit ({total} planned)")
        }
        None => String::new(),
    };
    println!("after {step} steps in {train_s:.0} s of training{why} ({total_s:.0} s in all)");
    println!(
        "files: {}/{{model.safetensors, metrics.jsonl, curves.png, depth.csv, depth.png}}",
        dir.display()
    );
}
