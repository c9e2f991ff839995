//! Reader for the Sudoku-Extreme CSV layout (HF `sapientinc/sudoku-extreme`, and the bundled tdoku
//! file): a header `source,question,answer,rating`, then one puzzle per line with no quoting.
//! `question` has one character per cell, `.` or `0` for blanks; `answer` one digit per cell;
//! `rating` a non-negative integer. Plain text or gzip (recognised by its magic bytes, whatever
//! the file is called).
//!
//! The side of the grid comes from the question's length (16, 36 or 81 cells) and must be the same
//! on every row. Each row is checked completely: a puzzle that loads is valid (`Puzzle::validate`).

use super::geometry::Geometry;
use super::puzzle::Puzzle;
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

pub const CSV_HEADER: &str = "source,question,answer,rating";

/// How many skipped rows `LoadReport` describes in words; the rest are only counted.
pub const MAX_SKIP_REASONS: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Count malformed rows and go on, instead of failing on the first one.
    pub skip_malformed: bool,
    /// Stop after this many puzzles have loaded.
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Data rows read (header excluded), skipped ones included.
    pub rows: usize,
    /// Malformed rows left out (only with `skip_malformed`).
    pub skipped: usize,
    /// "file: line N: reason" for the first `MAX_SKIP_REASONS` skipped rows.
    pub first_skip_reasons: Vec<String>,
}

/// Reads a Sudoku-Extreme CSV file, plain or gzipped.
pub fn load_csv(path: &Path, opts: LoadOptions) -> Result<(Vec<Puzzle>, LoadReport)> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    parse_csv(file, &name, opts)
}

/// Reads the CSV layout from any reader (plain or gzipped). `name` stands for the source in error
/// messages ("name: line N: reason").
pub fn parse_csv(
    reader: impl Read,
    name: &str,
    opts: LoadOptions,
) -> Result<(Vec<Puzzle>, LoadReport)> {
    let io_error = |source: io::Error| Error::Io {
        path: name.to_string(),
        source,
    };
    let mut plain = BufReader::new(reader);
    let gzipped = plain
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    let mut lines: Box<dyn BufRead> = if gzipped {
        Box::new(BufReader::new(MultiGzDecoder::new(plain)))
    } else {
        Box::new(plain)
    };

    let mut line = Vec::new();
    if lines.read_until(b'\n', &mut line).map_err(io_error)? == 0 {
        return Err(malformed(name, 1, "empty file, expected the header line"));
    }
    if trim_line_end(&line) != CSV_HEADER.as_bytes() {
        return Err(malformed(
            name,
            1,
            &format!(
                "header is {:?}, expected {CSV_HEADER:?}",
                String::from_utf8_lossy(trim_line_end(&line))
            ),
        ));
    }

    let mut puzzles = Vec::new();
    let mut report = LoadReport::default();
    let mut file_geometry: Option<Geometry> = None;
    let mut line_no = 1;
    while opts.limit.map_or(true, |limit| puzzles.len() < limit) {
        line.clear();
        if lines.read_until(b'\n', &mut line).map_err(io_error)? == 0 {
            break;
        }
        line_no += 1;
        report.rows += 1;
        match parse_row(trim_line_end(&line), &mut file_geometry) {
            Ok(puzzle) => puzzles.push(puzzle),
            Err(reason) if opts.skip_malformed => {
                report.skipped += 1;
                if report.first_skip_reasons.len() < MAX_SKIP_REASONS {
                    report
                        .first_skip_reasons
                        .push(format!("{name}: line {line_no}: {reason}"));
                }
            }
            Err(reason) => return Err(malformed(name, line_no, &reason)),
        }
    }
    Ok((puzzles, report))
}

/// A content error, reported like an I/O error on the file: "name: line N: reason".
fn malformed(name: &str, line_no: usize, reason: &str) -> Error {
    Error::Io {
        path: name.to_string(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line_no}: {reason}"),
        ),
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One data row, or why it is malformed. The first good row fixes the geometry of the file.
fn parse_row(row: &[u8], file_geometry: &mut Option<Geometry>) -> Result<Puzzle, String> {
    if row.is_empty() {
        return Err("empty line".into());
    }
    let columns: Vec<&[u8]> = row.split(|&b| b == b',').collect();
    let [source, question, answer, rating] = columns[..] else {
        return Err(format!(
            "expected 4 comma-separated columns ({CSV_HEADER}), found {}",
            columns.len()
        ));
    };
    let source = std::str::from_utf8(source).map_err(|_| "source is not valid UTF-8")?;
    let geometry = Geometry::of_cells(question.len()).map_err(|_| {
        format!(
            "question has {} characters, expected 81 (or 16 / 36 for 4x4 / 6x6)",
            question.len()
        )
    })?;
    if let Some(expected) = file_geometry {
        if *expected != geometry {
            return Err(format!(
                "question has {} cells, earlier rows have {}",
                geometry.cells(),
                expected.cells()
            ));
        }
    }
    let question = parse_cells(question, geometry, "question", true)?;
    let answer = if answer.len() == geometry.cells() {
        parse_cells(answer, geometry, "answer", false)?
    } else {
        return Err(format!(
            "answer has {} characters, expected {}",
            answer.len(),
            geometry.cells()
        ));
    };
    let rating = std::str::from_utf8(rating)
        .ok()
        .and_then(|r| r.parse::<u32>().ok())
        .ok_or_else(|| {
            format!(
                "rating {:?} is not a non-negative integer",
                String::from_utf8_lossy(rating)
            )
        })?;
    let puzzle = Puzzle {
        geometry,
        question,
        answer,
        rating,
        source: source.to_string(),
    };
    if let Some(problem) = puzzle.problem() {
        return Err(problem);
    }
    *file_geometry = Some(geometry);
    Ok(puzzle)
}

/// Characters to cell values: `1`..=n digits, and `.`/`0` blanks where `blanks_allowed`.
pub(crate) fn parse_cells(
    text: &[u8],
    geometry: Geometry,
    what: &str,
    blanks_allowed: bool,
) -> Result<Vec<u8>, String> {
    let n = geometry.n() as u8;
    text.iter()
        .enumerate()
        .map(|(i, &c)| match c {
            b'.' | b'0' if blanks_allowed => Ok(0),
            b'1'..=b'9' if c - b'0' <= n => Ok(c - b'0'),
            _ => Err(format!(
                "{what} character {:?} at position {} is not {}a digit 1..={n}",
                char::from(c),
                i + 1,
                if blanks_allowed { "'.', '0' or " } else { "" }
            )),
        })
        .collect()
}
