//! The shape of a Sudoku: an n×n grid cut into boxes of `box_rows × box_cols` cells, with
//! n = box_rows·box_cols so every row, column and box holds each digit 1..=n once.
//!
//! Vocabulary used across this module: a *band* is a horizontal strip of `box_rows` rows (one row
//! of boxes), a *stack* a vertical strip of `box_cols` columns (one column of boxes).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Geometry {
    pub box_rows: usize,
    pub box_cols: usize,
}

impl Geometry {
    /// The largest supported side. Puzzles travel as one character per cell (`1`..`9`), and the
    /// solver keeps candidates in `u16` bitmasks, so 9 is the limit.
    pub const MAX_N: usize = 9;

    /// The classic 9×9 Sudoku with 3×3 boxes.
    pub const CLASSIC: Geometry = Geometry {
        box_rows: 3,
        box_cols: 3,
    };

    /// Any box shape with 2 ≤ n ≤ 9 (for example 2×4 boxes for an 8×8 grid).
    pub fn new(box_rows: usize, box_cols: usize) -> Result<Geometry> {
        let geometry = Geometry { box_rows, box_cols };
        geometry.check()?;
        Ok(geometry)
    }

    /// The standard geometry for side `n`: 4 (2×2 boxes), 6 (boxes of 2 rows × 3 columns) or 9
    /// (3×3 boxes).
    pub fn of_size(n: usize) -> Result<Geometry> {
        match n {
            4 => Geometry::new(2, 2),
            6 => Geometry::new(2, 3),
            9 => Geometry::new(3, 3),
            _ => Err(Error::arg(
                "Geometry::of_size",
                format!("no standard Sudoku of side {n}; supported sides are 4, 6 and 9"),
            )),
        }
    }

    /// The standard geometry whose grid has `cells` cells (16, 36 or 81), for readers that only
    /// see a string's length.
    pub fn of_cells(cells: usize) -> Result<Geometry> {
        match cells {
            16 => Geometry::of_size(4),
            36 => Geometry::of_size(6),
            81 => Geometry::of_size(9),
            _ => Err(Error::arg(
                "Geometry::of_cells",
                format!("{cells} cells is not a 4x4, 6x6 or 9x9 grid (16, 36 or 81 cells)"),
            )),
        }
    }

    /// Errors unless the boxes tile a grid of side 2..=9. The fields are public, so every public
    /// function that takes a `Geometry` calls this first.
    pub fn check(&self) -> Result<()> {
        let ok = self.box_rows >= 1
            && self.box_cols >= 1
            && self.box_rows <= Geometry::MAX_N
            && self.box_cols <= Geometry::MAX_N
            && (2..=Geometry::MAX_N).contains(&(self.box_rows * self.box_cols));
        if ok {
            Ok(())
        } else {
            Err(Error::arg(
                "sudoku::Geometry",
                format!(
                    "boxes of {}x{} do not make a grid of side 2..={}",
                    self.box_rows,
                    self.box_cols,
                    Geometry::MAX_N
                ),
            ))
        }
    }

    /// Side of the grid, which is also the number of digits.
    pub fn n(&self) -> usize {
        self.box_rows * self.box_cols
    }

    pub fn cells(&self) -> usize {
        self.n() * self.n()
    }

    /// Number of bands (horizontal strips of `box_rows` rows).
    pub fn bands(&self) -> usize {
        self.n() / self.box_rows
    }

    /// Number of stacks (vertical strips of `box_cols` columns).
    pub fn stacks(&self) -> usize {
        self.n() / self.box_cols
    }

    /// Index of the box holding (row, col), boxes numbered row-major.
    pub fn box_of(&self, row: usize, col: usize) -> usize {
        (row / self.box_rows) * self.stacks() + col / self.box_cols
    }
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.n();
        write!(f, "{n}x{n} ({}x{} boxes)", self.box_rows, self.box_cols)
    }
}
