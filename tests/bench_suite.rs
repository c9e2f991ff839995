//! `recur bench`'s suite runs end to end on the emulator and the CPU reference, and its rows are
//! sane: positive times, costs that match the formulas' inputs.

use recur::bench::suite::{cpu_suite, kernel_suite, SuiteOptions};
use recur::bench::{copy_bandwidth_gbs, roofline_table};
use recur::device::emu::Emu;

#[test]
fn emu_suite_times_every_kernel_case() {
    let dev = Emu::new().unwrap();
    let opts = SuiteOptions {
        batch: 1,
        warmup: 0,
        runs: 1,
    };
    let rows = kernel_suite(&dev, opts).unwrap();
    assert!(rows.len() >= 25, "{} rows", rows.len());
    for r in &rows {
        assert!(
            r.time.median_ms > 0.0 && r.time.median_ms.is_finite(),
            "{}",
            r.kernel
        );
        assert!(r.bytes > 0.0, "{} moves no bytes", r.kernel);
        assert!(r.flops >= 0.0);
    }
    // The qkv_proj GEMM at batch 1: 2·97·1536·512 FLOPs.
    let gemm = rows
        .iter()
        .find(|r| r.kernel.starts_with("linear_fwd"))
        .unwrap();
    assert_eq!(gemm.flops, 2.0 * 97.0 * 1536.0 * 512.0);
    let ceiling = copy_bandwidth_gbs(&dev, 1 << 20, 1).unwrap();
    assert!(ceiling > 0.0);
    let table = roofline_table("emu", ceiling, &rows);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        rows.len() + 1
    );
}

#[test]
fn cpu_suite_runs() {
    let rows = cpu_suite(SuiteOptions {
        batch: 1,
        warmup: 0,
        runs: 1,
    })
    .unwrap();
    assert!(rows.iter().all(|r| r.time.median_ms > 0.0));
    assert!(cpu_suite(SuiteOptions {
        batch: 1,
        warmup: 0,
        runs: 0
    })
    .is_err());
}
