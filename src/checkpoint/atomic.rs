//! Crash-safe file replacement: write everything to a temporary file next to the target, fsync it,
//! then rename it over the target. A rename within one directory is atomic on POSIX file systems,
//! so a reader (or a run restarted after a crash) sees either the complete old file or the
//! complete new one, never a truncated mix.

use crate::checkpoint::file_error::io_error;
use crate::error::Result;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `path` atomically: `write` fills a buffered temporary file in the same directory, which
/// is flushed, fsynced and renamed over `path`; the directory is then fsynced (best effort: some
/// platforms and file systems cannot sync a directory) so the rename itself survives a power cut.
///
/// If `write` returns an error or panics, or any step fails, the temporary file is removed and
/// `path` is left exactly as it was (absent, or the old contents).
pub fn write_atomically<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let path = path.as_ref();
    let (tmp_path, file) = create_temp_beside(path)?;
    let guard = RemoveOnDrop(&tmp_path);
    fill_and_sync(path, file, write)?;
    fs::rename(&tmp_path, path).map_err(|e| {
        io_error(
            path,
            io::Error::new(
                e.kind(),
                format!("renaming {} over it: {e}", tmp_path.display()),
            ),
        )
    })?;
    std::mem::forget(guard);
    sync_parent_dir(path);
    Ok(())
}

/// Deletes the temporary file when the write fails, whether by an error or a panic in the
/// caller's closure; `forget` it once the file has been renamed into place.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        // Failing to remove garbage must not hide the error that made it garbage.
        let _ = fs::remove_file(self.0);
    }
}

/// Runs the caller's writer on `file`, then pushes the bytes to stable storage.
fn fill_and_sync<F>(path: &Path, file: File, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let mut buffered = BufWriter::with_capacity(1 << 20, file);
    write(&mut buffered)?;
    let file = buffered
        .into_inner()
        .map_err(|e| io_error(path, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(path, e))
}

/// Creates a fresh temporary file in `path`'s directory. The name carries the process id and a
/// per-process counter, and `create_new` refuses to reuse an existing file, so concurrent writers
/// (threads, or two processes saving into one run directory) never share a temp file.
fn create_temp_beside(path: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        io_error(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.tmp.{}.{n}",
        file_name.to_string_lossy(),
        std::process::id()
    );
    let tmp_path = path.with_file_name(tmp_name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| {
            io_error(
                path,
                io::Error::new(
                    e.kind(),
                    format!("creating temporary file {}: {e}", tmp_path.display()),
                ),
            )
        })?;
    Ok((tmp_path, file))
}

/// Fsyncs the directory holding `path` so the new directory entry is durable. Best effort: the
/// file's data is already synced, and Windows or some network file systems cannot open or sync a
/// directory, which must not turn a successful save into an error.
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_unique_and_cleaned_up() {
        let dir = std::env::temp_dir().join(format!("recur-atomic-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("x.bin");
        for round in 0..3u8 {
            write_atomically(&target, |w| {
                w.write_all(&[round; 5]).map_err(|e| io_error(&target, e))
            })
            .unwrap();
            assert_eq!(fs::read(&target).unwrap(), vec![round; 5]);
        }
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "x.bin")
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
