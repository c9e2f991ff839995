//! Running the `recur` binary from integration tests.

use std::process::Command;

/// Runs `recur args…` and returns its exit code (-1 when killed by a signal), stdout and stderr.
pub fn recur(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
