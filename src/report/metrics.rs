//! Metrics as JSON Lines: one JSON object per line, appended as training goes.
//!
//! Each record goes to the operating system with a single `write` as soon as it is written (no
//! user-space buffer), so a run that is killed loses no record it finished writing. Records are
//! not fsynced one by one (that would cost a disk flush per step); a power cut may lose the last
//! few, which the next checkpoint's atomic save bounds anyway.

use crate::checkpoint::file_error::{invalid_data, io_error};
use crate::error::{Error, Result};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Starts a new metrics file at `path`, replacing any existing one.
    pub fn create(path: impl AsRef<Path>) -> Result<MetricsWriter> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continues the metrics file at `path` (creating it if absent), for a resumed run. If the
    /// last line was cut off (the previous run was killed mid-write) and is not valid JSON, it
    /// is dropped, so every line of the file stays a complete record.
    pub fn append(path: impl AsRef<Path>) -> Result<MetricsWriter> {
        let path = path.as_ref();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let contents = fs::read(path).map_err(|e| io_error(path, e))?;
        if contents.last().is_some_and(|&b| b != b'\n') {
            let line_start = contents
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let tail = &contents[line_start..];
            if serde_json::from_slice::<serde_json::Value>(tail).is_ok() {
                file.write_all(b"\n").map_err(|e| io_error(path, e))?;
            } else {
                file.set_len(line_start as u64)
                    .map_err(|e| io_error(path, e))?;
            }
        }
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record`, which must serialize to a JSON object, as one line. Non-finite floats
    /// become `null`, as JSON has no NaN.
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        let value = serde_json::to_value(record).map_err(|e| {
            Error::arg(
                "MetricsWriter::write",
                format!(
                    "{}: record cannot be written as JSON: {e}",
                    self.path.display()
                ),
            )
        })?;
        if !value.is_object() {
            return Err(Error::arg(
                "MetricsWriter::write",
                format!(
                    "{}: a metrics record must be a JSON object, got {value}",
                    self.path.display()
                ),
            ));
        }
        let mut line = value.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| io_error(&self.path, e))
    }
}

/// Reads a JSON Lines file back: one value per non-empty line. Errors name the file and line.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<serde_json::Value>> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| invalid_data(path, format!("line {}: not JSON: {e}", i + 1)))
        })
        .collect()
}
