//! The puzzles a run trains and evaluates on, built from `[data]`: generated, the bundled tdoku
//! set or a CSV; deduplicated, split into disjoint train and test sets, the training set
//! subsampled with a recorded seed.

use crate::data::sudoku::{
    bundled_tdoku, generate, load_csv, split, Difficulty, Geometry, HeldOut, LoadOptions, Puzzle,
    SplitMeta,
};
use crate::error::{Error, Result};
use crate::train::config::{DataConfig, DataSource};
use serde::Serialize;

#[derive(Clone)]
pub struct SudokuData {
    pub geometry: Geometry,
    pub train: Vec<Puzzle>,
    pub test: Vec<Puzzle>,
    pub meta: DatasetMeta,
}

/// What `dataset.json` in the run folder records, so a run's data can be rebuilt exactly.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetMeta {
    pub source: String,
    pub split: SplitMeta,
    /// Malformed CSV rows skipped (only with `skip_malformed`).
    pub skipped_rows: usize,
    pub train_mean_givens: f64,
    pub test_mean_givens: f64,
}

pub fn parse_difficulty(name: &str) -> Result<Difficulty> {
    match name {
        "easy" => Ok(Difficulty::Easy),
        "medium" => Ok(Difficulty::Medium),
        "hard" => Ok(Difficulty::Hard),
        other => other
            .strip_prefix("blanks:")
            .and_then(|n| n.parse().ok())
            .map(Difficulty::Blanks)
            .ok_or_else(|| {
                Error::arg(
                    "data.difficulty",
                    format!("{other:?}: expected easy, medium, hard or blanks:<count>"),
                )
            }),
    }
}

pub fn build(cfg: &DataConfig) -> Result<SudokuData> {
    let (puzzles, source, skipped_rows) = match cfg.source {
        DataSource::Generated => {
            let geometry = Geometry::of_size(cfg.size)?;
            let wanted = cfg.train_puzzles + cfg.test_puzzles.max(1);
            // A little slack: duplicates are dropped before splitting.
            let count = wanted + wanted / 20 + 8;
            let puzzles = generate(
                geometry,
                parse_difficulty(&cfg.difficulty)?,
                count,
                cfg.seed,
            )?;
            let source = format!("generated {}x{} {}", cfg.size, cfg.size, cfg.difficulty);
            (puzzles, source, 0)
        }
        DataSource::Tdoku => (bundled_tdoku()?, "bundled tdoku collections".into(), 0),
        DataSource::Csv => {
            let opts = LoadOptions {
                skip_malformed: cfg.skip_malformed,
                limit: None,
            };
            let (puzzles, report) = load_csv(std::path::Path::new(&cfg.csv), opts)?;
            (puzzles, cfg.csv.clone(), report.skipped)
        }
    };
    // With `test_puzzles = 0` the split itself holds out "all the rest": only it knows how many
    // distinct puzzles there are (the bundled set repeats 131 questions).
    let held_out = match cfg.test_puzzles {
        0 => HeldOut::AllBut(cfg.train_puzzles),
        n => HeldOut::Count(n),
    };
    if puzzles.is_empty() {
        return Err(Error::arg("dataset", format!("{source}: no puzzles")));
    }
    // The split's argument errors now all mean too few puzzles, the user's to fix in the config:
    // say which data and which fields.
    let too_few = |why: String| {
        Error::arg(
            "dataset",
            format!("{source}: {why}; lower data.train_puzzles or data.test_puzzles"),
        )
    };
    let parts = split(puzzles, held_out, cfg.seed).map_err(|e| match e {
        Error::Arg { msg, .. } => too_few(msg),
        other => other,
    })?;
    if parts.train.len() < cfg.train_puzzles {
        let m = &parts.meta;
        return Err(too_few(format!(
            "{} distinct questions ({} repeated questions dropped from {}) leave {} for training \
             after {} held out, {} asked",
            m.input_count - m.duplicates_removed,
            m.duplicates_removed,
            m.input_count,
            parts.train.len(),
            parts.test.len(),
            cfg.train_puzzles,
        )));
    }
    let parts = parts.subsample_train(cfg.train_puzzles, cfg.seed)?;
    let geometry = parts.train[0].geometry;
    let mean_givens =
        |ps: &[Puzzle]| ps.iter().map(|p| p.givens() as f64).sum::<f64>() / ps.len().max(1) as f64;
    Ok(SudokuData {
        geometry,
        meta: DatasetMeta {
            source,
            skipped_rows,
            train_mean_givens: mean_givens(&parts.train),
            test_mean_givens: mean_givens(&parts.test),
            split: parts.meta,
        },
        train: parts.train,
        test: parts.test,
    })
}
