//! `recur info`: lists every backend, says plainly when there is no GPU, and exits 0 either way;
//! `--kernels` prints the kernel gate's table when NVRTC is available.

use std::process::Command;

fn recur_info(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .arg("info")
        .args(args)
        .output()
        .expect("the recur binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn has_gpu(stdout: &str) -> bool {
    !stdout.contains("no GPU")
}

#[test]
fn info_lists_cpu_emu_and_the_gpu_or_why_there_is_none() {
    let (code, stdout, stderr) = recur_info(&[]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("  cpu "), "{stdout}");
    assert!(stdout.contains("  emu "), "{stdout}");
    let cuda_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cuda"))
        .unwrap_or_else(|| panic!("no cuda line in:\n{stdout}"));
    if has_gpu(&stdout) {
        assert!(cuda_line.contains("SMs"), "{cuda_line}");
    } else {
        // Development and CI machines: the reason follows, e.g. that libcuda is missing.
        assert!(cuda_line.contains("no GPU: "), "{cuda_line}");
        assert!(
            cuda_line.len() > "  cuda   no GPU: ".len() + 10,
            "{cuda_line}"
        );
    }
    assert!(stdout.contains("nvrtc"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn info_kernels_prints_the_resource_table_when_nvrtc_is_found() {
    let (_, plain, _) = recur_info(&[]);
    if plain.contains("NVRTC not found") {
        eprintln!("skipping: NVRTC not found");
        return;
    }
    let (code, stdout, stderr) = recur_info(&["--kernels"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let expected_arch = if has_gpu(&plain) {
        "kernels for sm_"
    } else {
        "kernels for sm_90"
    };
    assert!(stdout.contains(expected_arch), "{stdout}");
    assert!(
        stdout.contains("kernel") && stdout.contains("regs") && stdout.contains("spill st/ld"),
        "{stdout}"
    );
}

#[test]
fn info_rejects_unknown_options_without_panicking() {
    let (code, _, stderr) = recur_info(&["--no-such-option"]);
    assert_ne!(code, 0);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
