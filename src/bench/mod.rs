//! The benchmark method of DESIGN.md, shared by `recur bench` and the criterion benches: warm up,
//! time many runs, take the median, and report achieved bandwidth and FLOP rate against a ceiling
//! measured on the same device in the same run. `step` times whole training steps of a config
//! (`recur bench step`, `docs/bench.md`), on `synthetic_data`, with `peak_memory`.

use crate::device::{DeviceBuffer, KernelBackend};
use crate::error::{Error, Result};
use crate::kernels::copy::copy_bytes;
use clap::ValueEnum;

/// Where a benchmark runs: `recur bench`'s and `recur bench step`'s `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// The CPU reference.
    Cpu,
    /// The CUDA kernels emulated on the CPU.
    Emu,
    /// GPU 0.
    Cuda,
}

impl BenchDevice {
    /// The flag's value, as the reports name the device.
    pub fn flag(self) -> &'static str {
        match self {
            BenchDevice::Cpu => "cpu",
            BenchDevice::Emu => "emu",
            BenchDevice::Cuda => "cuda",
        }
    }
}

/// The timing of one benchmarked call.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    pub median_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
}

/// Something that times work: a kernel backend (device time) or the host's wall clock.
pub trait Clock {
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64>;
}

/// A kernel backend's own timing (device events where it has them).
pub struct DeviceClock<'a>(pub &'a dyn KernelBackend);

impl Clock for DeviceClock<'_> {
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.0.time_ms(work)
    }
}

/// The host's wall clock, for timing the CPU reference.
pub struct WallClock;

impl Clock for WallClock {
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let start = std::time::Instant::now();
        work()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }
}

/// Runs `work` `warmup` times untimed, then `runs` times timed one by one; median and minimum.
pub fn measure(
    dev: &dyn Clock,
    warmup: usize,
    runs: usize,
    work: &mut dyn FnMut() -> Result<()>,
) -> Result<Measurement> {
    if runs == 0 {
        return Err(Error::arg("bench", "need at least one timed run"));
    }
    for _ in 0..warmup {
        work()?;
    }
    let mut times = (0..runs)
        .map(|_| dev.time_ms(work))
        .collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Ok(Measurement {
        median_ms: times[runs / 2],
        min_ms: times[0],
        runs,
    })
}

/// Copy bandwidth in GB/s (bytes read + bytes written, per second) for a `bytes`-byte copy: the
/// ceiling memory-bound kernels are reported against. Large enough buffers (≥ 4× the L2) measure
/// DRAM, not cache.
pub fn copy_bandwidth_gbs(dev: &dyn KernelBackend, bytes: usize, runs: usize) -> Result<f64> {
    let src: DeviceBuffer = dev.upload(&vec![1u8; bytes])?;
    let mut dst = dev.alloc(bytes)?;
    let m = measure(&DeviceClock(dev), 2, runs, &mut || {
        copy_bytes(dev, &mut dst, &src)
    })?;
    Ok(2.0 * bytes as f64 / (m.median_ms * 1e-3) / 1e9)
}

/// One row of the roofline table: a kernel at one shape, its cost model and its timing.
#[derive(Clone, Debug)]
pub struct RooflineRow {
    pub kernel: String,
    pub shape: String,
    pub flops: f64,
    /// The minimum bytes the call must move (each input read once, each output written once).
    pub bytes: f64,
    pub time: Measurement,
}

impl RooflineRow {
    pub fn gb_per_s(&self) -> f64 {
        self.bytes / (self.time.median_ms * 1e-3) / 1e9
    }
    pub fn tflop_per_s(&self) -> f64 {
        self.flops / (self.time.median_ms * 1e-3) / 1e12
    }
}

/// The table as markdown: time, achieved GB/s and TFLOP/s, and the percentage of the measured
/// copy bandwidth.
pub fn roofline_table(device: &str, copy_gbs: f64, rows: &[RooflineRow]) -> String {
    let mut out = format!(
        "device: {device}\nmeasured copy bandwidth (ceiling): {copy_gbs:.1} GB/s\n\n\
         | kernel | shape | median µs | GB/s | % of copy BW | GFLOP/s |\n|---|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.0}% | {:.1} |\n",
            r.kernel,
            r.shape,
            r.time.median_ms * 1e3,
            r.gb_per_s(),
            100.0 * r.gb_per_s() / copy_gbs,
            r.tflop_per_s() * 1e3
        ));
    }
    out
}

pub mod fused;
pub mod peak_memory;
pub mod step;
pub mod suite;
pub mod synthetic_data;
