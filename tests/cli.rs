//! The `recur` binary: a short demo run ends with an accuracy line; bad input exits non-zero with
//! a message and no panic.

use std::process::Command;

fn recur(args: &[&str]) -> (i32, String, String) {
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

#[test]
fn short_demo_run_reports_accuracy() {
    let (code, stdout, stderr) = recur(&[
        "demo",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--threads",
        "1",
    ]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("accuracy"), "last line: {last}");
    assert!(last.contains("3 steps"), "last line: {last}");
}

#[test]
fn bad_arguments_exit_non_zero_without_panicking() {
    for args in [
        vec!["demo", "--batch-size", "0"],
        vec!["demo", "--lr", "-1"],
        vec!["demo", "--steps", "many"],
        vec!["no-such-command"],
    ] {
        let (code, _, stderr) = recur(&args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(
            stderr.contains("error"),
            "{args:?} gave no error message: {stderr}"
        );
    }
}
