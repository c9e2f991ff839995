//! The `recur` binary: a short demo run ends with an accuracy line; bad input exits non-zero with
//! a message and no panic.

#[path = "common/cli.rs"]
mod cli_runner;
use cli_runner::recur;

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

#[test]
fn bench_prints_a_roofline_table_on_emu_and_cpu() {
    for device in ["emu", "cpu"] {
        let (code, stdout, stderr) = recur(&[
            "bench", "--device", device, "--batch", "1", "--runs", "1", "--warmup", "0",
        ]);
        assert_eq!(code, 0, "{device}: {stderr}");
        assert!(
            stdout.contains("measured copy bandwidth"),
            "{device}: {stdout}"
        );
        assert!(stdout.contains("| kernel | shape | median µs | GB/s | % of copy BW | GFLOP/s |"));
        assert!(
            stdout.lines().filter(|l| l.starts_with("| ")).count() > 5,
            "{stdout}"
        );
    }
}

#[test]
fn bench_without_a_gpu_or_with_bad_sizes_fails_cleanly() {
    let mut cases = vec![
        vec!["bench", "--batch", "0"],
        vec!["bench", "--device", "tpu"],
    ];
    if recur::device::cuda::Cuda::new(0).is_err() {
        cases.push(vec!["bench", "--device", "cuda"]);
    }
    for args in cases {
        let (code, _, stderr) = recur(&args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}
