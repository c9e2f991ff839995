//! Puzzle generator: a random complete grid, then clues removed in random order as long as the
//! solution stays unique, down to the difficulty's number of blanks.
//!
//! Difficulty is the number of blanks (the property Sudoku-Extreme's models see), not a rating:
//! - `Easy`: exactly 50 % of the cells blank (rounded to nearest; 41 of 81, 18 of 36, 8 of 16);
//! - `Medium`: exactly 60 % blank (49 of 81, 22 of 36, 10 of 16);
//! - `Hard`: a *minimal* puzzle (every clue removal that keeps uniqueness is made, so no remaining
//!   given can be dropped), and at least Medium's blanks; 9x9 ones have about 22-28 givens,
//!   like Sudoku-Extreme's test set (17-36 givens);
//! - `Blanks(k)`: exactly k blanks.
//!
//! A single removal pass over a grid can stall before the target (every remaining clue is needed);
//! then a fresh grid is drawn, up to `MAX_GRIDS_PER_PUZZLE` times, after which the target is
//! reported as unreachable.
//!
//! Puzzle i depends only on (seed, i): it has its own `StdRng` keyed by both, so the output is the
//! same for any number of rayon threads, and a smaller `count` gives a prefix of a larger one.

use super::geometry::Geometry;
use super::puzzle::Puzzle;
use super::solver::Solver;
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Fresh grids tried per puzzle before giving up on the difficulty's blank count.
pub const MAX_GRIDS_PER_PUZZLE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
    Blanks(usize),
}

impl Difficulty {
    pub const EASY_BLANK_PERCENT: usize = 50;
    pub const MEDIUM_BLANK_PERCENT: usize = 60;

    /// Inclusive range of blank counts a generated puzzle of this difficulty has. The upper bound
    /// of `Hard` is `cells - 1`; in practice minimality stops it far earlier.
    pub fn blank_range(self, geometry: Geometry) -> (usize, usize) {
        let cells = geometry.cells();
        let percent = |p: usize| (cells * p + 50) / 100;
        match self {
            Difficulty::Easy => (
                percent(Self::EASY_BLANK_PERCENT),
                percent(Self::EASY_BLANK_PERCENT),
            ),
            Difficulty::Medium => (
                percent(Self::MEDIUM_BLANK_PERCENT),
                percent(Self::MEDIUM_BLANK_PERCENT),
            ),
            Difficulty::Hard => (percent(Self::MEDIUM_BLANK_PERCENT), cells - 1),
            Difficulty::Blanks(k) => (k, k),
        }
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difficulty::Easy => write!(f, "easy"),
            Difficulty::Medium => write!(f, "medium"),
            Difficulty::Hard => write!(f, "hard"),
            Difficulty::Blanks(k) => write!(f, "blanks{k}"),
        }
    }
}

/// Parses what `Display` writes: `easy`, `medium`, `hard` or `blanks<k>` (for command lines).
impl std::str::FromStr for Difficulty {
    type Err = Error;
    fn from_str(s: &str) -> Result<Difficulty> {
        match s.to_ascii_lowercase().as_str() {
            "easy" => Ok(Difficulty::Easy),
            "medium" => Ok(Difficulty::Medium),
            "hard" => Ok(Difficulty::Hard),
            other => other
                .strip_prefix("blanks")
                .and_then(|k| k.parse().ok())
                .map(Difficulty::Blanks)
                .ok_or_else(|| {
                    Error::arg(
                        "sudoku::Difficulty",
                        format!("{s:?} is not easy, medium, hard or blanks<k>"),
                    )
                }),
        }
    }
}

/// `count` puzzles with unique solutions, rated by `Solver::rate`.
pub fn generate(
    geometry: Geometry,
    difficulty: Difficulty,
    count: usize,
    seed: u64,
) -> Result<Vec<Puzzle>> {
    let solver = Solver::new(geometry)?;
    let (min_blanks, max_blanks) = difficulty.blank_range(geometry);
    if max_blanks >= geometry.cells() || min_blanks > max_blanks {
        return Err(Error::arg(
            "sudoku::generate",
            format!(
                "{difficulty} asks for {min_blanks} blanks, a {geometry} grid has {} cells and needs at least one given",
                geometry.cells()
            ),
        ));
    }
    (0..count)
        .into_par_iter()
        .map(|index| generate_one(&solver, difficulty, seed, index))
        .collect()
}

fn generate_one(
    solver: &Solver,
    difficulty: Difficulty,
    seed: u64,
    index: usize,
) -> Result<Puzzle> {
    let geometry = solver.geometry();
    let (min_blanks, max_blanks) = difficulty.blank_range(geometry);
    let mut rng = puzzle_rng(seed, index);
    let mut most_blanks = 0;
    for _ in 0..MAX_GRIDS_PER_PUZZLE {
        let answer = solver.random_full_grid(&mut rng);
        let mut question = answer.clone();
        let mut order: Vec<usize> = (0..geometry.cells()).collect();
        order.shuffle(&mut rng);
        let mut blanks = 0;
        for cell in order {
            if blanks == max_blanks {
                break;
            }
            question[cell] = 0;
            if solver.count_solutions(&question, 2)? == 1 {
                blanks += 1;
            } else {
                question[cell] = answer[cell];
            }
        }
        if blanks >= min_blanks {
            let rating = solver
                .rate(&question)?
                .expect("a puzzle cut from a complete grid has that grid as a solution");
            let n = geometry.n();
            return Ok(Puzzle {
                geometry,
                question,
                answer,
                rating,
                source: format!("recur-generated-{n}x{n}-{difficulty}-seed{seed}-{index}"),
            });
        }
        most_blanks = most_blanks.max(blanks);
    }
    Err(Error::arg(
        "sudoku::generate",
        format!(
            "puzzle {index}: no unique {geometry} puzzle with {min_blanks} blanks in {MAX_GRIDS_PER_PUZZLE} random grids (best {most_blanks}); ask for fewer blanks"
        ),
    ))
}

/// The generator of puzzle `index`: the key holds the seed and the index side by side, so two
/// different (seed, index) pairs never share a stream.
fn puzzle_rng(seed: u64, index: usize) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    key[16..32].copy_from_slice(b"recur sudoku gen");
    StdRng::from_seed(key)
}
