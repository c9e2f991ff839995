//! `recur eval`: a checkpoint's exact and token accuracy on held-out puzzles, its depth curve
//! (accuracy after 1..=halt_max_steps supervision steps) and the distribution of halting steps,
//! written as CSV and PNG.
//!
//! An evaluation never replaces files it did not make in this call: by default it writes into a
//! new folder beside the checkpoint (a training run's folder holds the run's own depth.csv and
//! depth.png, and earlier evaluations hold theirs), and an `--out` that already holds its files
//! is refused unless `--force` says to replace them.

use crate::cli::model_args::load_puzzles;
use crate::cli::model_args::{check_task_sizes, load_checkpoint, ConfigArgs, DeviceArgs};
use crate::cli::train::{print_accuracy, DEFAULT_PRESET};
use crate::data::sudoku::{seq_len, vocab_size};
use crate::error::{Error, Result};
use crate::train::plots::{plot_depth_curve, write_depth_csv};
use crate::train::{dataset, evaluate};
use clap::Args;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
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
    /// Where depth.csv and depth.png go. Default: a new folder beside the checkpoint named
    /// eval-<input file name> (eval-heldout without --input), with -2, -3, ... appended when
    /// that name is taken, so neither the training run's files nor an earlier evaluation's are
    /// replaced. A folder that already holds depth.csv or depth.png is refused unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace depth.csv and depth.png in --out if they are there.
    #[arg(long, requires = "out")]
    pub force: bool,
}

const DEPTH_CSV: &str = "depth.csv";
const DEPTH_PNG: &str = "depth.png";
/// The files an evaluation writes.
const EVAL_FILES: [&str; 2] = [DEPTH_CSV, DEPTH_PNG];

/// Where an evaluation's files go, decided before it runs so a refused `--out` costs nothing.
enum OutDir {
    /// `--out`, created if missing; `choose` has already refused it if it holds `EVAL_FILES`
    /// (without `--force`).
    Given(PathBuf),
    /// A folder that does not exist yet, made in `parent` when the files are written:
    /// `base`, else `base-2`, `base-3`, ...
    Fresh { parent: PathBuf, base: String },
}

impl OutDir {
    fn choose(args: &EvalArgs) -> Result<OutDir> {
        if let Some(dir) = &args.out {
            let taken = EVAL_FILES.iter().map(|f| dir.join(f)).find(|f| f.exists());
            return match taken {
                Some(file) if !args.force => Err(Error::arg(
                    "eval",
                    format!(
                        "{} already exists; choose another --out, leave --out out for a new \
                         folder beside the checkpoint, or pass --force to replace it",
                        file.display()
                    ),
                )),
                _ => Ok(OutDir::Given(dir.clone())),
            };
        }
        let parent = match args.checkpoint.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = args.input.as_deref().map_or("heldout".into(), input_name);
        Ok(OutDir::Fresh {
            parent,
            base: format!("eval-{name}"),
        })
    }

    /// Makes the folder and returns it. A fresh folder is claimed with `create_dir`, which fails
    /// on an existing one, so two evaluations started together still get one folder each.
    fn create(self) -> Result<PathBuf> {
        let io_error = |dir: &Path, source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        match self {
            OutDir::Given(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
                Ok(dir)
            }
            OutDir::Fresh { parent, base } => {
                let mut n = 1;
                loop {
                    let dir = match n {
                        1 => parent.join(&base),
                        _ => parent.join(format!("{base}-{n}")),
                    };
                    match std::fs::create_dir(&dir) {
                        Ok(()) => return Ok(dir),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                        Err(e) => return Err(io_error(&dir, e)),
                    }
                }
            }
        }
    }
}

/// The input file's name without `.csv` / `.csv.gz`: `puzzles/hard.csv.gz` -> `hard`.
fn input_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = file.strip_suffix(".gz").unwrap_or(&file);
    let name = name.strip_suffix(".csv").unwrap_or(name);
    match name {
        "" => "input".into(),
        n => n.into(),
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let out_dir = OutDir::choose(&args)?;
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
    let dir = out_dir.create()?;
    let (csv, png) = (dir.join(DEPTH_CSV), dir.join(DEPTH_PNG));
    write_depth_csv(&csv, &report)?;
    plot_depth_curve(&png, &report, &format!("{:?} depth curve", cfg.model.arch))?;
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
        "evaluated in {:.1} s; wrote {} and {}",
        started.elapsed().as_secs_f64(),
        csv.display(),
        png.display()
    );
    Ok(())
}
