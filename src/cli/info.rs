//! `recur info`: which backends this machine has (CPU, the CPU emulator, a GPU), which NVRTC
//! compiles the kernels, and with `--kernels` every kernel's registers, spills and shared memory
//! for this machine's GPU (sm_90 without one): the kernel gate's table.

use crate::device::cuda::kernel_report::KernelReport;
use crate::device::cuda::{image_cache, libraries, nvrtc, DeviceFacts};
use crate::device::emu::Emu;
use crate::device::KernelBackend;
use crate::error::{Error, Result};

/// The architecture `--kernels` compiles for when there is no GPU: the H100's.
const DEFAULT_ARCH: &str = "sm_90";

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Also compile every kernel (for this machine's GPU, or sm_90 without one) and print each
    /// one's registers, spills, stack and shared memory.
    #[arg(long)]
    pub kernels: bool,
    /// Which GPU to describe.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

pub fn run(args: InfoArgs) -> Result<()> {
    println!("recur {}", env!("CARGO_PKG_VERSION"));
    println!("backends:");
    println!(
        "  cpu    pure-Rust reference ops, {} threads",
        rayon::current_num_threads()
    );
    let emu = Emu::new()?;
    println!(
        "  emu    CUDA kernels on the CPU, {}: {} kernels",
        emu.name(),
        Emu::kernel_names().len()
    );
    for (file, _) in Emu::excluded_files() {
        println!("         left out of the CPU build (compile errors): {file}");
    }
    let gpu = DeviceFacts::query(args.device);
    match &gpu {
        Ok(f) => println!(
            "  cuda   GPU {}: {} (sm_{}{}), {} SMs, {:.1} GiB, driver for CUDA {}.{}",
            f.ordinal,
            f.name,
            f.compute_capability.0,
            f.compute_capability.1,
            f.multiprocessors,
            f.memory_bytes as f64 / (1u64 << 30) as f64,
            f.driver_version.0,
            f.driver_version.1
        ),
        Err(e) => println!("  cuda   no GPU: {}", reason(e)),
    }
    let compiler = libraries::nvrtc();
    match &compiler {
        Ok(n) => println!(
            "nvrtc    {}.{} ({}), targets sm_{}",
            n.version.0,
            n.version.1,
            n.path
                .as_ref()
                .map_or("found by the loader".to_string(), |p| p
                    .display()
                    .to_string()),
            n.supported_archs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" sm_")
        ),
        Err(e) => println!("nvrtc    {e}"),
    }
    match image_cache::cache_dir() {
        Some(dir) => println!("kernel cache  {}", dir.display()),
        None => println!("kernel cache  off (in memory only)"),
    }

    if args.kernels {
        let nvrtc_found = compiler.map_err(|e| Error::arg("info --kernels", e))?;
        let arch = match &gpu {
            Ok(f) => nvrtc::target_for_device(f.compute_capability, &nvrtc_found.supported_archs)
                .ok()
                .filter(|a| a.starts_with("sm_"))
                .unwrap_or_else(|| DEFAULT_ARCH.to_string()),
            Err(_) => DEFAULT_ARCH.to_string(),
        };
        let report = KernelReport::compile(&arch);
        println!("\nkernels for {arch}:\n{}", report.table());
        if !report.problems.is_empty() {
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            return Err(Error::arg(
                "info --kernels",
                format!("{} kernel problem(s), listed above", report.problems.len()),
            ));
        }
    }
    Ok(())
}

/// The message of a backend error without the `cuda: invalid argument:` framing.
fn reason(e: &Error) -> String {
    match e {
        Error::Arg { msg, .. } => msg.clone(),
        other => other.to_string(),
    }
}
