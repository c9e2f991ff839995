//! The `recur` command line.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = recur::cli::Cli::parse();
    match recur::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
