//! Sudoku data for the HRM/TRM Sudoku-Extreme task, and for smaller 4x4 / 6x6 variants.
//!
//! - `geometry`: grid and box shape; `puzzle`: one example and its validity check;
//! - `loader`: the Sudoku-Extreme CSV layout (plain or gzip), with file:line errors;
//! - `bundled`: tdoku's 99,764 hard 9x9 puzzles compiled into the binary;
//! - `solver`: bitmask DFS solver, solution counter and guess-count rater;
//! - `generator`: seeded unique-solution puzzles at a chosen number of blanks;
//! - `encoding`: the official tokens (0 PAD, 1 blank, digit + 1), batching, text forms;
//! - `augment`: the official `shuffle_sudoku` symmetry augmentation;
//! - `split`: deduplicated train/test split and the seeded "1k" subsample, with metadata.

pub mod augment;
pub mod bundled;
pub mod encoding;
pub mod generator;
pub mod geometry;
pub mod loader;
pub mod puzzle;
pub mod solver;
pub mod split;

pub use augment::{augment, Symmetry};
pub use bundled::{bundled_tdoku, TDOKU_PUZZLES};
pub use encoding::{
    cell_token, decode_grid, encode, encode_batch, parse_puzzle_string, seq_len, vocab_size,
    BLANK_TOKEN, PAD_TOKEN,
};
pub use generator::{generate, Difficulty};
pub use geometry::Geometry;
pub use loader::{load_csv, parse_csv, LoadOptions, LoadReport};
pub use puzzle::{cells_to_string, Puzzle};
pub use solver::{count_solutions, rate, solve, Solver};
pub use split::{split, subsample, HeldOut, Split, SplitMeta};
