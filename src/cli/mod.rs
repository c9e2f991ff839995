//! Command-line interface: argument parsing and one module per subcommand.

mod demo;

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
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
    }
}
