//! `recur solve <puzzle>`: runs a trained model on one puzzle and prints the grid it ends
//! with and the step at which its Q head would halt.

use crate::cli::model_args::{check_task_sizes, load_checkpoint, ConfigArgs, DeviceArgs};
use crate::cli::train::DEFAULT_PRESET;
use crate::data::sudoku::{
    count_solutions, decode_grid, parse_puzzle_string, seq_len, solve as exact_solve, vocab_size,
    Puzzle,
};
use crate::error::Result;
use crate::train::evaluate;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SolveArgs {
    /// The puzzle, row-major, `.` or `0` for blanks: 81 characters for 9x9 (16 or 36 for
    /// 4x4 / 6x6).
    pub puzzle: String,
    #[arg(long, default_value = "runs/trm-sudoku6/model.safetensors")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: SolveArgs) -> Result<()> {
    let (geometry, question) = parse_puzzle_string(&args.puzzle)?;
    let (cfg, model, params) = load_checkpoint(&args.checkpoint, &args.config, DEFAULT_PRESET)?;
    check_task_sizes(&cfg.model, seq_len(geometry), vocab_size(geometry))?;
    // The exact solver supplies the labels that scoring needs; a puzzle without a unique
    // solution is still run, and scored against the first solution found.
    let answer = exact_solve(&question, geometry)?;
    let puzzle = Puzzle {
        geometry,
        question: question.clone(),
        answer: answer.clone().unwrap_or_else(|| question.clone()),
        rating: 0,
        source: "command line".into(),
    };
    let (_, predictions) = evaluate(
        &args.device.compute()?,
        &model,
        &params,
        std::slice::from_ref(&puzzle),
        1,
        |_| {},
    )?;
    let p = &predictions[0];
    println!("{}", decode_grid(&p.tokens, geometry)?);
    // Judge the grid itself, not equality with the solver's one solution: a puzzle with
    // several solutions can be solved correctly in more than one way.
    let predicted = Puzzle {
        answer: p
            .tokens
            .iter()
            .map(|&t| (t - 1).clamp(0, 255) as u8)
            .collect(),
        ..puzzle.clone()
    };
    let solutions = count_solutions(&question, geometry, 2)?;
    let verdict = match (predicted.validate(), solutions) {
        (_, 0) => "the puzzle has no solution (checked by the exact solver)".to_string(),
        (Ok(()), 1) => "a valid solution, the only one (checked by the exact solver)".to_string(),
        (Ok(()), _) => "a valid solution; the puzzle has more than one".to_string(),
        (Err(e), _) => format!("NOT a valid solution: {e}"),
    };
    println!(
        "halted at step {} of {} (the Q head's rule; evaluation ran all {}); {verdict}",
        p.halt_step, cfg.model.halt_max_steps, cfg.model.halt_max_steps
    );
    Ok(())
}
