//! `recur demo`: the built-in default job, with a progress bar and the accuracy at the end.

use crate::demo::{self, DemoConfig, Progress};
use crate::error::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The most training steps (stops early at the target accuracy).
    #[arg(long, default_value_t = DemoConfig::default().max_steps)]
    pub steps: usize,
    #[arg(long, default_value_t = DemoConfig::default().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = DemoConfig::default().lr)]
    pub lr: f64,
    #[arg(long, default_value_t = DemoConfig::default().seed)]
    pub seed: u64,
    /// Held-out token accuracy at which training stops.
    #[arg(long, default_value_t = DemoConfig::default().target_accuracy)]
    pub target: f64,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    super::set_cpu_threads(args.threads);
    let cfg = DemoConfig {
        max_steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        target_accuracy: args.target,
        ..DemoConfig::default()
    };
    println!(
        "recur demo: sort {} digits (0..{}) with 2 TRM blocks (hidden {}, {} heads), batch {}, on {} CPU threads",
        cfg.seq_len,
        cfg.vocab,
        cfg.hidden_size,
        cfg.num_heads,
        cfg.batch_size,
        rayon::current_num_threads()
    );
    let bar = ProgressBar::new(cfg.max_steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] step {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let (mut loss, mut train_acc, mut held_out) = (f64::NAN, f64::NAN, None::<f64>);
    let report = demo::train(&cfg, |p| {
        match p {
            Progress::Step {
                step,
                loss: l,
                accuracy,
            } => {
                bar.set_position(step as u64);
                (loss, train_acc) = (l, accuracy);
            }
            Progress::Eval { accuracy, .. } => held_out = Some(accuracy),
        }
        let held_out = held_out.map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
        bar.set_message(format!(
            "loss {loss:.4} train acc {:.1}% held-out acc {held_out} (stops at {:.1}%)",
            100.0 * train_acc,
            100.0 * cfg.target_accuracy
        ));
    })?;
    // Keep the bar where training stopped (it usually stops early at the target accuracy).
    bar.abandon();
    println!(
        "done: {} steps in {:.1} s, {} parameters; test token accuracy {:.2}%, test sequences fully sorted {:.2}%",
        report.steps,
        report.seconds,
        report.num_params,
        100.0 * report.test_accuracy,
        100.0 * report.test_exact
    );
    Ok(())
}
