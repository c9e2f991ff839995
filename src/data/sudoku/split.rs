//! Train/test splits and the seeded training subsample.
//!
//! The official builds split nothing themselves: Sudoku-Extreme ships train.csv and test.csv, and
//! `build_sudoku_dataset.py --subsample-size 1000` draws the "1k" training set with an *unseeded*
//! `np.random.choice`, so every build trains on a different 1k. Here both the split and the
//! subsample are seeded and the seeds are recorded in `SplitMeta`, so a run can be rebuilt.
//!
//! Puzzles are deduplicated by question before splitting, so no question is in both sets.
//! (Sudoku-Extreme goes further and keeps symmetry-equivalent puzzles on one side; that needs a
//! canonical form under the symmetry group and is not done here.) Because only the split knows how
//! many distinct puzzles there are, "hold out all but N" is asked of it (`HeldOut::AllBut`) rather
//! than counted by the caller: a caller counting rows, or deduplicating by a rule of its own, would
//! leave fewer than N for training whenever the input repeats a question.

use super::encoding::{seq_len, vocab_size};
use super::geometry::Geometry;
use super::puzzle::Puzzle;
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<Puzzle>,
    pub test: Vec<Puzzle>,
    pub meta: SplitMeta,
}

/// What a split was built from and how; written next to a run so it can be rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMeta {
    /// The distinct `source` names of the input puzzles, sorted.
    pub sources: Vec<String>,
    pub split_seed: u64,
    /// Set by `Split::subsample_train`.
    pub subsample_seed: Option<u64>,
    /// Puzzles passed to `split`, before deduplication.
    pub input_count: usize,
    /// Puzzles dropped because an earlier one had the same question.
    pub duplicates_removed: usize,
    /// Training puzzles before any subsample.
    pub train_pool_count: usize,
    pub train_count: usize,
    pub test_count: usize,
    pub geometry: Geometry,
    pub vocab_size: usize,
    pub seq_len: usize,
}

/// How many of the distinct puzzles `split` holds out for testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldOut {
    /// Exactly this many.
    Count(usize),
    /// Every distinct puzzle but this many, which stay for training; at least one is held out.
    /// Counted after deduplication, so training gets exactly this many.
    AllBut(usize),
}

/// Deduplicates by question (keeping the first), then puts `held_out` random puzzles in `test`
/// and the rest in `train`. Both keep the input order.
pub fn split(puzzles: Vec<Puzzle>, held_out: HeldOut, seed: u64) -> Result<Split> {
    const OP: &str = "sudoku::split";
    let geometry = common_geometry(OP, &puzzles)?;
    let input_count = puzzles.len();
    let mut seen = HashSet::with_capacity(input_count);
    let unique: Vec<Puzzle> = puzzles
        .into_iter()
        .filter(|p| seen.insert(p.question.clone()))
        .collect();
    let distinct = unique.len();
    let repeats = match input_count - distinct {
        0 => String::new(),
        n => format!(" ({n} repeated questions dropped from {input_count})"),
    };
    let test_count = match held_out {
        HeldOut::Count(n) if n <= distinct => n,
        HeldOut::AllBut(train) if train < distinct => distinct - train,
        HeldOut::Count(n) => {
            return Err(Error::arg(
                OP,
                format!("{n} test puzzles asked, only {distinct} distinct questions{repeats}"),
            ))
        }
        HeldOut::AllBut(train) => {
            return Err(Error::arg(
                OP,
                format!(
                    "{train} training puzzles and at least 1 held-out one asked, only {distinct} \
                     distinct questions{repeats}"
                ),
            ))
        }
    };
    let mut in_test = vec![false; unique.len()];
    for i in pick(unique.len(), test_count, seed) {
        in_test[i] = true;
    }
    let sources: BTreeSet<&str> = unique.iter().map(|p| p.source.as_str()).collect();
    let sources = sources.into_iter().map(str::to_string).collect();
    let duplicates_removed = input_count - distinct;
    let (test, train): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .zip(in_test)
        .partition(|(_, is_test)| *is_test);
    let train: Vec<Puzzle> = train.into_iter().map(|(p, _)| p).collect();
    let test: Vec<Puzzle> = test.into_iter().map(|(p, _)| p).collect();
    Ok(Split {
        meta: SplitMeta {
            sources,
            split_seed: seed,
            subsample_seed: None,
            input_count,
            duplicates_removed,
            train_pool_count: train.len(),
            train_count: train.len(),
            test_count: test.len(),
            geometry,
            vocab_size: vocab_size(geometry),
            seq_len: seq_len(geometry),
        },
        train,
        test,
    })
}

impl Split {
    /// Keeps `n` random training puzzles (the seeded version of the official "1k" draw); the test
    /// set is untouched, as in the official build.
    pub fn subsample_train(self, n: usize, seed: u64) -> Result<Split> {
        let train = subsample(&self.train, n, seed)?;
        Ok(Split {
            meta: SplitMeta {
                subsample_seed: Some(seed),
                train_count: train.len(),
                ..self.meta
            },
            train,
            test: self.test,
        })
    }
}

/// `n` distinct puzzles drawn at random without replacement, in input order.
pub fn subsample(puzzles: &[Puzzle], n: usize, seed: u64) -> Result<Vec<Puzzle>> {
    if n > puzzles.len() {
        return Err(Error::arg(
            "sudoku::subsample",
            format!("{n} puzzles asked from {}", puzzles.len()),
        ));
    }
    Ok(pick(puzzles.len(), n, seed)
        .into_iter()
        .map(|i| puzzles[i].clone())
        .collect())
}

/// `n` distinct indices below `len`, sorted, chosen by a shuffle seeded with `seed`.
fn pick(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..len).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(seed));
    indices.truncate(n);
    indices.sort_unstable();
    indices
}

fn common_geometry(op: &'static str, puzzles: &[Puzzle]) -> Result<Geometry> {
    let first = puzzles
        .first()
        .ok_or_else(|| Error::arg(op, "no puzzles"))?;
    if let Some((i, p)) = puzzles
        .iter()
        .enumerate()
        .find(|(_, p)| p.geometry != first.geometry)
    {
        return Err(Error::shape(
            op,
            format!(
                "puzzle {i} is {}, puzzle 0 is {}",
                p.geometry, first.geometry
            ),
        ));
    }
    Ok(first.geometry)
}
