//! `recur eval`: a checkpoint's exact and token accuracy on held-out puzzles, its depth curve
//! (accuracy after 1..=halt_max_steps supervision steps) and the distribution of halting steps,
//! written as CSV and PNG.

use crate::cli::model_args::load_puzzles;
use crate::cli::model_args::{check_task_sizes, load_checkpoint, ConfigArgs, DeviceArgs};
use crate::cli::train::{print_accuracy, DEFAULT_PRESET};
use crate::data::sudoku::{seq_len, vocab_size};
use crate::error::{Error, Result};
use crate::train::plots::{plot_depth_curve, write_depth_csv};
use crate::train::{dataset, evaluate};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A model.safetensors written by `recur train` (or a converted official checkpoint, with
    /// --preset).
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Puzzles to score (Sudoku-Extreme CSV layout); default: the held-out split of the
    /// checkpoint's own dataset.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Skip (and count) malformed CSV rows instead of stopping at the first.
    #[arg(long)]
    pub skip_malformed: bool,
    /// Score at most this many puzzles (0 = all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Where depth.csv and depth.png go (default: beside the checkpoint).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let (cfg, model, params) = load_checkpoint(&args.checkpoint, &args.config, DEFAULT_PRESET)?;
    let mut puzzles = match &args.input {
        Some(path) => load_puzzles(path, args.skip_malformed)?,
        None => dataset::build(&cfg.data)?.test,
    };
    if args.limit > 0 {
        puzzles.truncate(args.limit);
    }
    let first = puzzles
        .first()
        .ok_or_else(|| Error::arg("eval", "there are no puzzles to evaluate"))?;
    check_task_sizes(
        &cfg.model,
        seq_len(first.geometry),
        vocab_size(first.geometry),
    )?;
    let started = Instant::now();
    let bar = ProgressBar::new(puzzles.len() as u64);
    let (report, _) = evaluate(
        &args.device.compute()?,
        &model,
        &params,
        &puzzles,
        args.batch_size,
        |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let dir = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    });
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    write_depth_csv(&dir.join("depth.csv"), &report)?;
    plot_depth_curve(
        &dir.join("depth.png"),
        &report,
        &format!("{:?} depth curve", cfg.model.arch),
    )?;
    println!("halting steps (first step at which the Q head says halt):");
    for (k, n) in report
        .halt_histogram
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
    {
        println!("  step {:>2}: {n}", k + 1);
    }
    print_accuracy(&report);
    println!(
        "evaluated in {:.1} s; wrote {}/depth.csv and depth.png",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}
