//! The CI kernel gate: NVRTC 13.0 compiles every kernel file to machine code for sm_90 (the
//! H100) and sm_80 (the oldest supported GPU), and the gate fails on a compile error, on any
//! register spill, or on a kernel using more registers than its `__launch_bounds__` allow.
//! No GPU is needed: NVRTC runs on the CPU, and ptxas's report comes back in its log.
//!
//! Without NVRTC the gate skips with the reason, unless `RECUR_REQUIRE_NVRTC=1` (CI and
//! tools/test.sh set it), where a missing NVRTC fails it.

use recur::device::cuda::kernel_report::KernelReport;
use recur::device::cuda::libraries;

fn gate(arch: &str) {
    if let Err(reason) = libraries::nvrtc() {
        if std::env::var("RECUR_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("RECUR_REQUIRE_NVRTC=1 but {reason}");
        }
        eprintln!("skipping the {arch} kernel gate: {reason}");
        return;
    }
    let started = std::time::Instant::now();
    let report = KernelReport::compile(arch);
    println!(
        "kernel gate, {arch} ({:.2} s):\n{}",
        started.elapsed().as_secs_f64(),
        report.table()
    );
    assert!(
        report.problems.is_empty(),
        "kernel gate failed for {arch}:\n{}",
        report.problems.join("\n")
    );
}

#[test]
fn every_kernel_compiles_for_sm_90_without_spills_within_its_launch_bounds() {
    gate("sm_90");
}

#[test]
fn every_kernel_compiles_for_sm_80_without_spills_within_its_launch_bounds() {
    gate("sm_80");
}

/// The gate itself must catch what it is for: a spill, registers over the launch bounds, and a
/// compile error (whose NVRTC log must be shown).
#[test]
fn the_gate_reports_spills_register_overruns_and_compile_errors() {
    if libraries::nvrtc().is_err() {
        eprintln!("skipping: no NVRTC");
        return;
    }
    // 40 live floats per thread cannot fit the 32 registers that 1024 threads × 2 blocks allow.
    let spilling = r#"
extern "C" __global__ void __launch_bounds__(1024, 2) squeeze(const float* x, float* y) {
    float a[40];
    #pragma unroll
    for (int i = 0; i < 40; i++) a[i] = x[i * blockDim.x + threadIdx.x];
    float t = 0.f;
    #pragma unroll
    for (int j = 0; j < 40; j++) {
        #pragma unroll
        for (int i = 0; i < 40; i++) t += a[i] * a[(i + j) % 40];
    }
    y[threadIdx.x] = t;
}"#;
    let broken = r#"extern "C" __global__ void broken() { undefined_function(); }"#;
    let report = KernelReport::compile_sources(
        "sm_90",
        [
            ("squeeze.cu".to_string(), Ok(spilling.to_string())),
            ("broken.cu".to_string(), Ok(broken.to_string())),
        ],
    );
    let problems = report.problems.join("\n");
    assert!(problems.contains("squeeze spills"), "{problems}");
    assert!(problems.contains("broken.cu (sm_90)"), "{problems}");
    assert!(
        problems.contains("undefined_function"),
        "the NVRTC log is shown: {problems}"
    );
    let squeeze = &report.rows[0];
    assert_eq!(squeeze.register_budget(), 32);
    assert!(report.table().contains("squeeze"));
}
