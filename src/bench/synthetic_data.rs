//! The puzzles `recur bench step` trains and evaluates on: random complete grids of the config's
//! geometry with random cells blanked, made in milliseconds whatever the preset's data source.
//! A step's work depends on the shapes (batch, cells, vocabulary), not on which puzzles fill
//! them, so the benchmark skips building the preset's dataset (the bundled tdoku set, or
//! thousands of generated puzzles whose uniqueness checks take seconds).
//!
//! The puzzles are valid Sudoku: each answer is a complete grid (`Solver::random_full_grid`) and
//! each question keeps its givens; unlike the generator's, a question may have several
//! solutions, which changes no shape.

use crate::data::sudoku::{Geometry, Puzzle, Solver, SplitMeta};
use crate::error::Result;
use crate::train::config::{DataSource, RunConfig};
use crate::train::dataset::{parse_difficulty, DatasetMeta, SudokuData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// What the benchmark's data is, in words (the report and docs say it).
pub const DESCRIPTION: &str = "synthetic: random complete grids of the config's geometry with \
     the preset difficulty's least number of blanks, one batch for training (drawn as \
     training draws it: with data.augment, a fresh augmentation each step) and one for evaluation; the preset's \
     dataset is not built";

/// The geometry the config's model trains on: `data.size` for generated puzzles, 9×9 for the
/// bundled tdoku set, and for a CSV the grid of `model.seq_len` cells (the file is not read).
pub fn geometry(cfg: &RunConfig) -> Result<Geometry> {
    match cfg.data.source {
        DataSource::Generated => Geometry::of_size(cfg.data.size),
        DataSource::Tdoku => Geometry::of_size(9),
        DataSource::Csv => Geometry::of_cells(cfg.model.seq_len),
    }
}

/// `batch` training and `batch` held-out puzzles for `cfg`, seeded by `data.seed`.
pub fn synthetic_data(cfg: &RunConfig, batch: usize) -> Result<SudokuData> {
    let geometry = geometry(cfg)?;
    let solver = Solver::new(geometry)?;
    let (blanks, _) = parse_difficulty(&cfg.data.difficulty)?.blank_range(geometry);
    let mut rng = StdRng::seed_from_u64(cfg.data.seed);
    let mut draw = |_| {
        let answer = solver.random_full_grid(&mut rng);
        let mut cells: Vec<usize> = (0..geometry.cells()).collect();
        cells.shuffle(&mut rng);
        let mut question = answer.clone();
        for &cell in &cells[..blanks] {
            question[cell] = 0;
        }
        Puzzle {
            geometry,
            question,
            answer,
            rating: 0,
            source: "synthetic".to_string(),
        }
    };
    let train: Vec<Puzzle> = (0..batch).map(&mut draw).collect();
    let test: Vec<Puzzle> = (0..batch).map(&mut draw).collect();
    let givens = (geometry.cells() - blanks) as f64;
    Ok(SudokuData {
        geometry,
        meta: DatasetMeta {
            source: DESCRIPTION.to_string(),
            split: SplitMeta {
                sources: vec!["synthetic".to_string()],
                split_seed: cfg.data.seed,
                subsample_seed: None,
                input_count: 2 * batch,
                duplicates_removed: 0,
                train_pool_count: batch,
                train_count: batch,
                test_count: batch,
                geometry,
                vocab_size: crate::data::sudoku::vocab_size(geometry),
                seq_len: crate::data::sudoku::seq_len(geometry),
            },
            skipped_rows: 0,
            train_mean_givens: givens,
            test_mean_givens: givens,
        },
        train,
        test,
    })
}
