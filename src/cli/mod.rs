//! Command-line interface: argument parsing and one module per subcommand.

mod bench;
mod demo;
mod info;

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
    /// print the roofline table against the copy bandwidth measured in the same run.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
