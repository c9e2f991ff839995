//! Command-line interface: argument parsing and one module per subcommand.

mod bench;
mod demo;
mod eval;
mod info;
pub mod model_args;
mod predict;
mod profile;
mod solve;
pub mod train;

use crate::error::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "recur",
    version,
    about = "Small recursive reasoning models on hand-written kernels"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a small TRM-block transformer to sort digits on the CPU, and report its accuracy.
    Demo(demo::DemoArgs),
    /// Show the backends this machine has (CPU, CPU emulator, GPU), the NVRTC that compiles the
    /// kernels, and with --kernels every kernel's registers, spills and shared memory.
    Info(info::InfoArgs),
    /// Time every kernel at TRM Sudoku's shapes on the CPU reference, the emulator or a GPU, and
    /// print the roofline table against the copy bandwidth measured in the same run; `bench step`
    /// times whole training steps of any config.
    Bench(bench::BenchArgs),
    /// Train TRM or HRM on Sudoku (default: a small TRM-MLP on generated 6x6 minimal puzzles on
    /// the CPU), with a progress bar, metrics, plots and checkpoints.
    Train(train::TrainArgs),
    /// Score a checkpoint on held-out puzzles: exact and token accuracy, the depth curve and
    /// the halting steps (CSV + PNG).
    Eval(eval::EvalArgs),
    /// Solve one puzzle with a trained model and print the grid and the steps it took.
    Solve(solve::SolveArgs),
    /// Dump per-step logits, Q logits and final states (f32) for puzzles from a CSV.
    Predict(predict::PredictArgs),
    /// The cost of one training step as a model: launches, copies, synchronisations, CPU
    /// fallbacks, bytes and FLOPs per kernel, and a roofline lower bound on an H100 or H200
    /// (`--device trace` needs no GPU and runs no kernel).
    Profile(profile::ProfileArgs),
}

/// Sets rayon's global pool to `threads` workers (default: all cores). Only fails if a pool
/// already exists, which cannot happen this early in a CLI run.
fn set_cpu_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Solve(args) => solve::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Profile(args) => profile::run(args),
    }
}
