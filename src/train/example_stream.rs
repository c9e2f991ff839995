//! The order training examples are drawn in, as the official loader: each epoch visits every
//! training puzzle once in a fresh random order, the last partial batch is dropped, and with
//! augmentation each draw is a fresh random symmetry of the puzzle (the official build stores
//! 1000 augmented copies per puzzle and picks one at random; drawing the symmetry on the fly
//! samples the same distribution without the copies).
//!
//! Everything is a function of (seed, epoch, position), so the stream's whole state is two
//! integers, and a resumed run draws exactly what the interrupted one would have.

use crate::data::sudoku::{augment, Puzzle};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    pub epoch: u64,
    /// Examples of this epoch already drawn.
    pub cursor: usize,
}

pub struct ExampleStream {
    seed: u64,
    augment: bool,
    pos: StreamPosition,
    order: Vec<usize>,
}

fn rng_for(seed: u64, epoch: u64, salt: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

impl ExampleStream {
    pub fn new(seed: u64, augment: bool, train_len: usize, pos: StreamPosition) -> ExampleStream {
        let mut s = ExampleStream {
            seed,
            augment,
            pos,
            order: Vec::new(),
        };
        s.shuffle(train_len);
        s
    }

    fn shuffle(&mut self, n: usize) {
        self.order = (0..n).collect();
        self.order
            .shuffle(&mut rng_for(self.seed, self.pos.epoch, u64::MAX));
    }

    pub fn position(&self) -> StreamPosition {
        self.pos
    }

    /// The next `batch` examples.
    pub fn next_batch(&mut self, train: &[Puzzle], batch: usize) -> Result<Vec<Puzzle>> {
        if batch == 0 || batch > train.len() {
            return Err(Error::arg(
                "training data",
                format!(
                    "a batch of {batch} needs at least that many training puzzles, there are {}",
                    train.len()
                ),
            ));
        }
        if self.order.len() != train.len() {
            self.shuffle(train.len());
        }
        if self.pos.cursor + batch > train.len() {
            self.pos = StreamPosition {
                epoch: self.pos.epoch + 1,
                cursor: 0,
            };
            self.shuffle(train.len());
        }
        let start = self.pos.cursor;
        self.pos.cursor += batch;
        (start..start + batch)
            .map(|k| {
                let puzzle = &train[self.order[k]];
                if self.augment {
                    augment(puzzle, &mut rng_for(self.seed, self.pos.epoch, k as u64))
                } else {
                    Ok(puzzle.clone())
                }
            })
            .collect()
    }
}
