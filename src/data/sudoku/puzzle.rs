//! One Sudoku example: the question (givens and blanks), its solution, and where it came from.

use super::geometry::Geometry;
use crate::error::{Error, Result};

/// Cells are stored row-major, one byte per cell: 0 = blank, 1..=n = a digit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Puzzle {
    pub geometry: Geometry,
    pub question: Vec<u8>,
    pub answer: Vec<u8>,
    /// Difficulty: tdoku's guess count for loaded Sudoku-Extreme rows, this crate's rater
    /// (`solver::Solver::rate`) for generated puzzles.
    pub rating: u32,
    /// Collection the puzzle came from (the CSV `source` column, or a generator tag).
    pub source: String,
}

impl Puzzle {
    /// Errors unless the answer is a complete valid grid and agrees with every given.
    pub fn validate(&self) -> Result<()> {
        self.problem()
            .map_or(Ok(()), |msg| Err(Error::arg("Puzzle::validate", msg)))
    }

    /// What is wrong with the puzzle, in words, or `None`. The CSV loader prefixes this with the
    /// file and line.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Err(e) = self.geometry.check() {
            return Some(e.to_string());
        }
        let cells = self.geometry.cells();
        if self.question.len() != cells {
            return Some(format!(
                "question has {} cells, a {} grid has {cells}",
                self.question.len(),
                self.geometry
            ));
        }
        if let Some(msg) = full_grid_problem(&self.answer, self.geometry) {
            return Some(format!("answer is not a valid grid: {msg}"));
        }
        let n = self.geometry.n() as u8;
        for (cell, (&given, &solved)) in self.question.iter().zip(&self.answer).enumerate() {
            if given > n {
                return Some(format!(
                    "question cell {} holds {given}, digits go up to {n}",
                    cell + 1
                ));
            }
            if given != 0 && given != solved {
                let (row, col) = (cell / self.geometry.n() + 1, cell % self.geometry.n() + 1);
                return Some(format!(
                    "answer contradicts the givens at row {row} column {col} (given {given}, answer {solved})"
                ));
            }
        }
        None
    }

    /// Number of given (non-blank) cells.
    pub fn givens(&self) -> usize {
        self.question.iter().filter(|&&d| d != 0).count()
    }

    /// The question as one line, `.` for blanks (the Sudoku-Extreme CSV form).
    pub fn question_string(&self) -> String {
        cells_to_string(&self.question)
    }

    pub fn answer_string(&self) -> String {
        cells_to_string(&self.answer)
    }
}

/// Cells as one line of characters: `.` for 0, the digit otherwise.
pub fn cells_to_string(cells: &[u8]) -> String {
    cells
        .iter()
        .map(|&d| match d {
            0 => '.',
            d if d <= 9 => char::from(b'0' + d),
            _ => '?',
        })
        .collect()
}

/// Why `grid` is not a complete valid solution grid for `geometry`, or `None` if it is one. One
/// pass with a bitmask per row, column and box: n cells whose bits OR to all n digits are
/// necessarily all different.
pub(crate) fn full_grid_problem(grid: &[u8], geometry: Geometry) -> Option<String> {
    let n = geometry.n();
    if grid.len() != geometry.cells() {
        return Some(format!(
            "{} cells, a {geometry} grid has {}",
            grid.len(),
            geometry.cells()
        ));
    }
    let mut rows = [0u16; Geometry::MAX_N];
    let mut cols = [0u16; Geometry::MAX_N];
    let mut boxes = [0u16; Geometry::MAX_N];
    for (cell, &d) in grid.iter().enumerate() {
        if d == 0 || d as usize > n {
            return Some(format!(
                "cell {} holds {d}, expected a digit 1..={n}",
                cell + 1
            ));
        }
        let bit = 1u16 << (d - 1);
        let (row, col) = (cell / n, cell % n);
        rows[row] |= bit;
        cols[col] |= bit;
        boxes[geometry.box_of(row, col)] |= bit;
    }
    let all = (1u16 << n) - 1;
    let units = [("row", &rows), ("column", &cols), ("box", &boxes)];
    for (kind, masks) in units {
        if let Some(i) = masks[..n].iter().position(|&m| m != all) {
            let missing = (0..n).find(|&d| masks[i] & (1 << d) == 0).unwrap_or(0) + 1;
            return Some(format!(
                "{kind} {} repeats a digit (digit {missing} is missing)",
                i + 1
            ));
        }
    }
    None
}
