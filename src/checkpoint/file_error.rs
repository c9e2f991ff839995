//! `Error::Io` constructors for problems with a named file, shared by everything that reads or
//! writes run files (checkpoints, metrics, CSV, PNG). The message always starts with the path.

use crate::error::Error;
use std::io;
use std::path::Path;

/// The `Error::Io` for an I/O failure on `path`.
pub fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The `Error::Io` (kind `InvalidData`) for a file whose contents are malformed: `msg` says
/// what is wrong and where (a tensor name, a line number).
pub fn invalid_data(path: &Path, msg: impl Into<String>) -> Error {
    io_error(path, io::Error::new(io::ErrorKind::InvalidData, msg.into()))
}
