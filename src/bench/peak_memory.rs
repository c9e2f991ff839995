//! The peak memory of `recur bench step`'s timed steps. On the CPU reference and Emu (whose
//! device memory is host memory) it is the process's peak resident set: Linux's `VmHWM`, reset
//! by writing `5` to `/proc/self/clear_refs` just before the timed steps and read just after. On
//! a GPU it is the growth of the device's used memory (`cuMemGetInfo`) from before the trainer
//! is built to the end of the timed steps: the allocator keeps the blocks it frees, so that is
//! at least the most its blocks held at once (it does not count a peak itself).

use crate::device::cuda::Cuda;
use serde::Serialize;
use std::sync::Arc;

/// A measured peak, or `None` with the reason it could not be measured.
#[derive(Clone, Debug, Serialize)]
pub struct PeakMemory {
    pub bytes: Option<u64>,
    /// What `bytes` counts, or why it is `None`.
    pub what: String,
}

/// How the peak is taken on the benchmarked device.
pub enum MemoryProbe {
    /// The process's resident set (CPU reference, Emu). `reset` holds why the reset failed.
    Resident { reset: Result<(), String> },
    /// A GPU's used memory, and how much was used when the probe was made.
    Gpu {
        cuda: Arc<Cuda>,
        used_before: Result<usize, String>,
    },
}

const CLEAR_REFS: &str = "/proc/self/clear_refs";
const STATUS: &str = "/proc/self/status";

impl MemoryProbe {
    pub fn resident() -> MemoryProbe {
        MemoryProbe::Resident {
            reset: Err("the timed steps have not started".to_string()),
        }
    }

    /// Made before the trainer is built, so its parameters and optimizer state count.
    pub fn gpu(cuda: Arc<Cuda>) -> MemoryProbe {
        let used_before = cuda.memory_used_bytes().map_err(|e| e.to_string());
        MemoryProbe::Gpu { cuda, used_before }
    }

    /// Called just before the timed steps: the resident peak restarts from the current resident
    /// set, so warm-up and setup (the trace of the step among them) do not count.
    pub fn start(&mut self) {
        if let MemoryProbe::Resident { reset } = self {
            *reset = std::fs::write(CLEAR_REFS, "5")
                .map_err(|e| format!("cannot reset the peak resident set ({CLEAR_REFS}: {e})"));
        }
    }

    /// The peak since `start` (resident) or since the probe was made (GPU).
    pub fn finish(&self) -> PeakMemory {
        let measured = match self {
            MemoryProbe::Resident { reset } => {
                reset.clone().and_then(|()| vm_hwm_bytes()).map(|b| {
                    (
                        b,
                        "peak resident set of the process during the timed steps (VmHWM after \
                     clear_refs): model, optimizer state and activations"
                            .to_string(),
                    )
                })
            }
            MemoryProbe::Gpu { cuda, used_before } => used_before.clone().and_then(|before| {
                let after = cuda.memory_used_bytes().map_err(|e| e.to_string())?;
                Ok((
                    after.saturating_sub(before) as u64,
                    "GPU memory used at the end of the timed steps minus before the trainer \
                         was built (cuMemGetInfo): parameters, optimizer state, the allocator's \
                         pool (it keeps freed blocks, so at least the step's peak) and loaded \
                         kernels; other processes on the GPU would add to it"
                        .to_string(),
                ))
            }),
        };
        match measured {
            Ok((bytes, what)) => PeakMemory {
                bytes: Some(bytes),
                what,
            },
            Err(why) => PeakMemory {
                bytes: None,
                what: why,
            },
        }
    }
}

/// `VmHWM` of `/proc/self/status`, in bytes.
fn vm_hwm_bytes() -> Result<u64, String> {
    let status =
        std::fs::read_to_string(STATUS).map_err(|e| format!("cannot read {STATUS}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("{STATUS} has no VmHWM line in kB"))
}
