//! The official HRM/TRM token encoding (`dataset/build_sudoku_dataset.py`): one token per cell,
//! row-major, `0` = PAD (never produced for Sudoku), `1` = blank, digit d -> d + 1. Labels are the
//! answer digits + 1 on every cell, so all cells are supervised (the ignore label 0 never occurs).
//! Also the text forms: a pretty grid for printing and a one-line puzzle parser.

use super::geometry::Geometry;
use super::loader::parse_cells;
use super::puzzle::Puzzle;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub const PAD_TOKEN: i32 = 0;
pub const BLANK_TOKEN: i32 = 1;

/// Token of a cell value (0 = blank): `value + 1`.
pub fn cell_token(value: u8) -> i32 {
    i32::from(value) + 1
}

/// PAD, blank and the n digits: 11 for 9x9.
pub fn vocab_size(geometry: Geometry) -> usize {
    geometry.n() + 2
}

/// Sequence length: one token per cell.
pub fn seq_len(geometry: Geometry) -> usize {
    geometry.cells()
}

/// `(inputs, labels)` for one puzzle: question tokens and answer tokens.
pub fn encode(puzzle: &Puzzle) -> (Vec<i32>, Vec<i32>) {
    let tokens = |cells: &[u8]| cells.iter().map(|&v| cell_token(v)).collect();
    (tokens(&puzzle.question), tokens(&puzzle.answer))
}

/// A batch as two i32 tensors of shape `[B, cells]`: inputs and labels. All puzzles must share a
/// geometry; digits must be in range.
pub fn encode_batch(puzzles: &[Puzzle]) -> Result<(Tensor, Tensor)> {
    const OP: &str = "sudoku::encode_batch";
    let first = puzzles
        .first()
        .ok_or_else(|| Error::arg(OP, "empty batch"))?;
    let geometry = first.geometry;
    geometry.check()?;
    let (cells, n) = (geometry.cells(), geometry.n() as u8);
    let mut inputs = Vec::with_capacity(puzzles.len() * cells);
    let mut labels = Vec::with_capacity(puzzles.len() * cells);
    for (i, puzzle) in puzzles.iter().enumerate() {
        if puzzle.geometry != geometry {
            return Err(Error::shape(
                OP,
                format!("puzzle {i} is {}, puzzle 0 is {geometry}", puzzle.geometry),
            ));
        }
        if puzzle.question.len() != cells || puzzle.answer.len() != cells {
            return Err(Error::shape(
                OP,
                format!(
                    "puzzle {i} has {} question and {} answer cells, a {geometry} grid has {cells}",
                    puzzle.question.len(),
                    puzzle.answer.len()
                ),
            ));
        }
        if puzzle.question.iter().any(|&v| v > n) || puzzle.answer.iter().any(|&v| v == 0 || v > n)
        {
            return Err(Error::arg(
                OP,
                format!("puzzle {i} has a cell outside 0..={n} (question) or 1..={n} (answer)"),
            ));
        }
        let (x, y) = encode(puzzle);
        inputs.extend(x);
        labels.extend(y);
    }
    let shape = [puzzles.len(), cells];
    Ok((
        Tensor::from_vec(inputs, shape)?,
        Tensor::from_vec(labels, shape)?,
    ))
}

/// Tokens as a multi-line grid with box separators, for printing: `.` blank, `_` PAD, `?` any
/// token outside the vocabulary. For 9x9:
/// ```text
/// 5 . . | . 2 7 | . . 9
/// ...
/// ------+-------+------
/// ```
pub fn decode_grid(tokens: &[i32], geometry: Geometry) -> Result<String> {
    geometry.check()?;
    let n = geometry.n();
    if tokens.len() != geometry.cells() {
        return Err(Error::shape(
            "sudoku::decode_grid",
            format!(
                "{} tokens, a {geometry} grid has {}",
                tokens.len(),
                geometry.cells()
            ),
        ));
    }
    let symbol = |t: i32| match t {
        PAD_TOKEN => '_',
        BLANK_TOKEN => '.',
        t if t >= 2 && t <= n as i32 + 1 => char::from(b'0' + (t - 1) as u8),
        _ => '?',
    };
    let mut lines: Vec<String> = Vec::new();
    for (row, cells) in tokens.chunks(n).enumerate() {
        if row > 0 && row % geometry.box_rows == 0 {
            // Same width as a row: '+' under the box bars, '-' elsewhere.
            let rule = lines[0]
                .chars()
                .map(|c| if c == '|' { '+' } else { '-' })
                .collect();
            lines.push(rule);
        }
        let mut line = String::new();
        for (col, &t) in cells.iter().enumerate() {
            if col > 0 {
                line.push_str(if col % geometry.box_cols == 0 {
                    " | "
                } else {
                    " "
                });
            }
            line.push(symbol(t));
        }
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

/// A puzzle typed by a user: one character per cell, row-major, `.` or `0` for blanks, 16 / 36 / 81
/// cells for 4x4 / 6x6 / 9x9. Whitespace and the box-separator characters `|`, `+`, `-` are
/// ignored, so a grid printed by `decode_grid` (of question tokens) parses back.
pub fn parse_puzzle_string(text: &str) -> Result<(Geometry, Vec<u8>)> {
    const OP: &str = "sudoku::parse_puzzle_string";
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(Error::arg(OP, format!("unexpected character {c:?}")));
    }
    let cells: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && !matches!(b, b'|' | b'+' | b'-'))
        .collect();
    let geometry = Geometry::of_cells(cells.len()).map_err(|_| {
        Error::arg(
            OP,
            format!(
                "{} cells, expected 81 (9x9), 36 (6x6) or 16 (4x4)",
                cells.len()
            ),
        )
    })?;
    let values =
        parse_cells(&cells, geometry, "puzzle", true).map_err(|msg| Error::arg(OP, msg))?;
    Ok((geometry, values))
}
