//! Criterion benches of the CUDA kernels, per case of `recur bench` (TRM Sudoku shapes), on the
//! CPU reference, the emulator and, when a GPU is present, on CUDA. The emulator numbers measure the shim, not a GPU;
//! they are here so the harness runs everywhere and regressions in Emu speed show.
//!
//! Run: `cargo bench --bench kernels` (filter with `-- cpu`, `-- emu` or `-- cuda`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use recur::bench::suite::{cpu_cases, kernel_cases};
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::KernelBackend;

fn bench_backend(c: &mut Criterion, label: &str, dev: &dyn KernelBackend, batch: usize) {
    let mut group = c.benchmark_group(format!("{label}_b{batch}"));
    for mut case in kernel_cases(dev, batch).expect("bench inputs") {
        group.throughput(Throughput::Bytes(case.bytes as u64));
        group.bench_function(case.kernel, |b| {
            b.iter(|| {
                (case.run)().expect("launch");
                dev.synchronize().expect("synchronize");
            })
        });
    }
    group.finish();
}

/// The same cases on the CPU reference, the baseline each kernel is compared with.
fn cpu_reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_b8");
    for mut case in cpu_cases(8).expect("bench inputs") {
        group.throughput(Throughput::Bytes(case.bytes as u64));
        group.bench_function(case.kernel, |b| b.iter(|| (case.run)().expect("cpu op")));
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let emu = Emu::new().expect("the emulator always exists");
    bench_backend(c, "emu", &emu, 1);
    match Cuda::new(0) {
        Ok(gpu) => bench_backend(c, "cuda", &gpu, 64),
        Err(e) => eprintln!("skipping the cuda benches: {e}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(300));
    targets = cpu_reference, kernels
}
criterion_main!(benches);
