//! CSV tables (RFC 4180: comma-separated, fields with a comma, quote or line break quoted, quotes
//! doubled), written atomically so a table is never seen half-written, and read back.

use crate::checkpoint::atomic::write_atomically;
use crate::checkpoint::file_error::{invalid_data, io_error};
use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// Writes a header line and `rows` to `path`, atomically. Every row must have one field per
/// header column.
pub fn write_csv(path: impl AsRef<Path>, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let path = path.as_ref();
    if header.is_empty() {
        return Err(Error::arg(
            "write_csv",
            format!("{}: the header has no columns", path.display()),
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        if row.len() != header.len() {
            return Err(Error::arg(
                "write_csv",
                format!(
                    "{}: row {i} has {} fields but the header has {} columns",
                    path.display(),
                    row.len(),
                    header.len()
                ),
            ));
        }
    }
    write_atomically(path, |w| {
        let mut put_line = |fields: &mut dyn Iterator<Item = &str>| {
            let line: Vec<String> = fields.map(quote_field).collect();
            w.write_all(line.join(",").as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| io_error(path, e))
        };
        put_line(&mut header.iter().copied())?;
        for row in rows {
            put_line(&mut row.iter().map(String::as_str))?;
        }
        Ok(())
    })
}

/// `write_csv` for numbers. Values are written in Rust's shortest form that parses back to the
/// same f64 (`0.1`, `1e-7`, `NaN`, `inf`), so the table loses nothing.
pub fn write_csv_f64(path: impl AsRef<Path>, header: &[&str], rows: &[Vec<f64>]) -> Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|v| format!("{v:?}")).collect())
        .collect();
    write_csv(path, header, &rows)
}

/// Reads a CSV file written by `write_csv` (or any RFC 4180 file, with `\n` or `\r\n` line
/// ends): the header and the rows. Errors name the file and line for an unterminated quote or
/// a row whose field count differs from the header's.
pub fn read_csv(path: impl AsRef<Path>) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut records = parse_records(&text).map_err(|msg| invalid_data(path, msg))?;
    if records.is_empty() {
        return Err(invalid_data(path, "empty file: no header line"));
    }
    let (_, header) = records.remove(0);
    for (line, record) in &records {
        if record.len() != header.len() {
            return Err(invalid_data(
                path,
                format!(
                    "line {line}: {} fields but the header has {} columns",
                    record.len(),
                    header.len()
                ),
            ));
        }
    }
    Ok((header, records.into_iter().map(|(_, r)| r).collect()))
}

/// Quotes a field if it holds a comma, a quote or a line break; doubles inner quotes.
fn quote_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Splits CSV text into records, each with the line number it starts on.
fn parse_records(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut record_line = 1;
    let mut in_quotes = false;
    let mut quote_line = 0;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                quote_line = line;
            }
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                records.push((record_line, std::mem::take(&mut fields)));
                line += 1;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(format!("line {quote_line}: a quoted field is never closed"));
    }
    // A last line without a line break is still a record.
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((record_line, fields));
    }
    Ok(records)
}
