//! The tdoku sets shipped inside the binary (`data/sudoku/`, see its SOURCE.md): 99,764 hard 9x9
//! puzzles with solutions and tdoku ratings, in the Sudoku-Extreme CSV layout. Compiled in with
//! `include_bytes!` so a fresh machine needs no data folder; the linker drops the 5 MB when
//! nothing calls `bundled_tdoku`.

use super::loader::{parse_csv, LoadOptions};
use super::puzzle::Puzzle;
use crate::error::Result;

const TDOKU_GZ: &[u8] = include_bytes!("../../../data/sudoku/tdoku_sets_rated.csv.gz");

/// Number of puzzles in the bundled file.
pub const TDOKU_PUZZLES: usize = 99_764;

/// All bundled puzzles, in file order (17-clue, top1465, forum hardest 11+, forum hardest 1106).
pub fn bundled_tdoku() -> Result<Vec<Puzzle>> {
    let (puzzles, _) = parse_csv(
        TDOKU_GZ,
        "bundled data/sudoku/tdoku_sets_rated.csv.gz",
        LoadOptions::default(),
    )?;
    Ok(puzzles)
}
