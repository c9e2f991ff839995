//! The official Sudoku augmentation (HRM/TRM `build_sudoku_dataset.py::shuffle_sudoku`), for any
//! box shape: relabel the digits by a random permutation of 1..=n, transpose with probability 1/2,
//! permute the bands and the rows inside each band, permute the stacks and the columns inside each
//! stack. Each of these maps a valid grid to a valid grid, and the same map is applied to the
//! question and the answer, so the pair stays consistent.
//!
//! Transposing swaps the roles of box rows and box columns, so it only keeps a grid valid when the
//! boxes are square; for 6x6 (2x3 boxes) it is never drawn.
//!
//! Order of operations, as in the original: transpose first, then cell (i, j) of the result takes
//! cell `(row_perm[i], col_perm[j])` of the (possibly transposed) grid, then the digits are
//! relabelled.

use super::geometry::Geometry;
use super::puzzle::Puzzle;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::Rng;

/// One element of the Sudoku symmetry group used for augmentation. Built only by `random` or
/// `identity`, so the permutations always respect the band/stack structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symmetry {
    geometry: Geometry,
    /// `digit_map[d]` is the new digit for d; `digit_map[0] = 0` keeps blanks blank.
    digit_map: Vec<u8>,
    transpose: bool,
    row_perm: Vec<usize>,
    col_perm: Vec<usize>,
}

impl Symmetry {
    pub fn identity(geometry: Geometry) -> Result<Symmetry> {
        geometry.check()?;
        let n = geometry.n();
        Ok(Symmetry {
            geometry,
            digit_map: (0..=n as u8).collect(),
            transpose: false,
            row_perm: (0..n).collect(),
            col_perm: (0..n).collect(),
        })
    }

    /// A random symmetry, drawn in the official order: digits, transpose, bands and rows, stacks
    /// and columns.
    pub fn random<R: Rng + ?Sized>(geometry: Geometry, rng: &mut R) -> Result<Symmetry> {
        geometry.check()?;
        let mut digits: Vec<u8> = (1..=geometry.n() as u8).collect();
        digits.shuffle(rng);
        let digit_map = std::iter::once(0).chain(digits).collect();
        let transpose = geometry.box_rows == geometry.box_cols && rng.random_bool(0.5);
        let row_perm = block_permutation(geometry.bands(), geometry.box_rows, rng);
        let col_perm = block_permutation(geometry.stacks(), geometry.box_cols, rng);
        Ok(Symmetry {
            geometry,
            digit_map,
            transpose,
            row_perm,
            col_perm,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    pub fn digit_map(&self) -> &[u8] {
        &self.digit_map
    }
    pub fn transposed(&self) -> bool {
        self.transpose
    }
    /// Row i of the result comes from row `row_perm[i]` (of the transposed grid if transposed).
    pub fn row_perm(&self) -> &[usize] {
        &self.row_perm
    }
    pub fn col_perm(&self) -> &[usize] {
        &self.col_perm
    }

    /// The symmetry applied to one grid of cell values (0 = blank).
    pub fn apply_cells(&self, cells: &[u8]) -> Result<Vec<u8>> {
        const OP: &str = "sudoku::Symmetry::apply";
        let n = self.geometry.n();
        if cells.len() != self.geometry.cells() {
            return Err(Error::shape(
                OP,
                format!(
                    "{} cells, a {} grid has {}",
                    cells.len(),
                    self.geometry,
                    self.geometry.cells()
                ),
            ));
        }
        if let Some(&v) = cells.iter().find(|&&v| v as usize > n) {
            return Err(Error::arg(
                OP,
                format!("cell value {v}, digits go up to {n}"),
            ));
        }
        let mut out = Vec::with_capacity(cells.len());
        for &r in &self.row_perm {
            for &c in &self.col_perm {
                let source = if self.transpose { c * n + r } else { r * n + c };
                out.push(self.digit_map[cells[source] as usize]);
            }
        }
        Ok(out)
    }

    /// The symmetry applied to question and answer alike; rating and source are kept (note that
    /// a guess-count rating is not exactly invariant under symmetries).
    pub fn apply(&self, puzzle: &Puzzle) -> Result<Puzzle> {
        if puzzle.geometry != self.geometry {
            return Err(Error::shape(
                "sudoku::Symmetry::apply",
                format!(
                    "symmetry of a {} grid applied to a {} puzzle",
                    self.geometry, puzzle.geometry
                ),
            ));
        }
        Ok(Puzzle {
            geometry: puzzle.geometry,
            question: self.apply_cells(&puzzle.question)?,
            answer: self.apply_cells(&puzzle.answer)?,
            rating: puzzle.rating,
            source: puzzle.source.clone(),
        })
    }
}

/// `blocks` blocks of `size` consecutive lines: the blocks in random order, and the lines inside
/// each block in random order (`b * size + perm(size)` for each b of a permutation of the blocks).
fn block_permutation<R: Rng + ?Sized>(blocks: usize, size: usize, rng: &mut R) -> Vec<usize> {
    let mut order: Vec<usize> = (0..blocks).collect();
    order.shuffle(rng);
    let mut perm = Vec::with_capacity(blocks * size);
    for block in order {
        let mut inner: Vec<usize> = (0..size).collect();
        inner.shuffle(rng);
        perm.extend(inner.into_iter().map(|i| block * size + i));
    }
    perm
}

/// One random official augmentation of `puzzle`.
pub fn augment<R: Rng + ?Sized>(puzzle: &Puzzle, rng: &mut R) -> Result<Puzzle> {
    Symmetry::random(puzzle.geometry, rng)?.apply(puzzle)
}
