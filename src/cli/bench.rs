//! `recur bench`: the roofline table of the kernels at TRM Sudoku's shapes, on the CPU reference,
//! the emulator or a GPU, with the copy-bandwidth ceiling measured in the same run.

use crate::bench::suite::{self, SuiteOptions};
use crate::bench::{copy_bandwidth_gbs, roofline_table};
use crate::device::cuda::Cuda;
use crate::device::emu::Emu;
use crate::error::{Error, Result};
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Emu,
    Cuda,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where to run: the CPU reference, the CUDA kernels emulated on the CPU, or a GPU.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// Batch size of the TRM Sudoku shapes ([B, 97, 512] activations).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Untimed warm-up runs per case.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
}

/// Size of the copy that measures the bandwidth ceiling: 4× an H100's 50 MB L2 on a GPU, smaller
/// on the CPU backends where it only sets the scale.
const GPU_CEILING_BYTES: usize = 256 << 20;
const CPU_CEILING_BYTES: usize = 64 << 20;

/// Why a cpu or emu run prints no cuBLASLt rows.
const NO_GPU_FOR_CUBLASLT: &str = "cuBLASLt runs only on a GPU (--device cuda); this run has none";

pub fn run(args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.runs == 0 {
        return Err(Error::arg("bench", "--batch and --runs must be positive"));
    }
    // A bad RECUR_GEMM fails now, not after the whole suite has run.
    crate::kernels::gemm_choice::GemmPolicy::from_env()?;
    let opts = SuiteOptions {
        batch: args.batch,
        warmup: args.warmup,
        runs: args.runs,
    };
    let (table, cublaslt) = match args.device {
        BenchDevice::Cpu => {
            let ceiling = suite::host_copy_bandwidth_gbs(CPU_CEILING_BYTES, args.runs)?;
            let rows = suite::cpu_suite(opts)?;
            (
                roofline_table(
                    &format!("cpu ({} threads)", rayon::current_num_threads()),
                    ceiling,
                    &rows,
                ),
                suite::cublaslt_section(Err(NO_GPU_FOR_CUBLASLT), opts)?,
            )
        }
        BenchDevice::Emu => {
            let dev = Emu::new()?;
            let ceiling = copy_bandwidth_gbs(&dev, CPU_CEILING_BYTES, args.runs)?;
            (
                roofline_table(
                    &crate::device::KernelBackend::name(&dev),
                    ceiling,
                    &suite::kernel_suite(&dev, opts)?,
                ),
                suite::cublaslt_section(Err(NO_GPU_FOR_CUBLASLT), opts)?,
            )
        }
        BenchDevice::Cuda => {
            let dev = Cuda::new(0)?;
            let ceiling = copy_bandwidth_gbs(&dev, GPU_CEILING_BYTES, args.runs)?;
            (
                roofline_table(
                    &crate::device::KernelBackend::name(&dev),
                    ceiling,
                    &suite::kernel_suite(&dev, opts)?,
                ),
                suite::cublaslt_section(Ok(&dev), opts)?,
            )
        }
    };
    println!("{table}\n{cublaslt}");
    Ok(())
}
