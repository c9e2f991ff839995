//! The GPUs a profile's roofline is drawn for, as model constants (datasheet peaks, not
//! measurements), and the lower bound on a kernel's time they give.

use crate::error::{Error, Result};
use serde::Serialize;

/// A named GPU's peaks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gpu {
    pub name: &'static str,
    /// HBM bandwidth, bytes per second.
    pub hbm_bytes_per_s: f64,
    /// Dense bf16 tensor-core peak, FLOP/s (no sparsity).
    pub bf16_tensor_flops: f64,
    /// f32 peak on the CUDA cores (no tensor cores), FLOP/s: what the scalar kernels can reach.
    pub f32_flops: f64,
}

/// H100 SXM5 (NVIDIA H100 datasheet): 3.35 TB/s HBM3, 989 TFLOP/s dense bf16 tensor, 67 TFLOP/s
/// FP32 (non-tensor).
pub const H100: Gpu = Gpu {
    name: "h100",
    hbm_bytes_per_s: 3.35e12,
    bf16_tensor_flops: 989e12,
    f32_flops: 67e12,
};

/// H200 SXM (NVIDIA H200 datasheet): the H100's compute with 4.8 TB/s HBM3e.
pub const H200: Gpu = Gpu {
    name: "h200",
    hbm_bytes_per_s: 4.8e12,
    ..H100
};

impl Gpu {
    /// Parses `--gpu`: `h100` or `h200`.
    pub fn from_flag(flag: &str) -> Result<Gpu> {
        match flag.trim().to_ascii_lowercase().as_str() {
            "h100" => Ok(H100),
            "h200" => Ok(H200),
            other => Err(Error::arg(
                "--gpu",
                format!("expected h100 or h200, got {other:?}"),
            )),
        }
    }

    /// The FLOP peak a kernel can reach: the tensor-core peak for the kernels that issue
    /// `mma` (`cost::uses_tensor_cores`), the CUDA-core f32 peak for the rest.
    pub fn flops_peak(&self, tensor_cores: bool) -> f64 {
        if tensor_cores {
            self.bf16_tensor_flops
        } else {
            self.f32_flops
        }
    }

    /// The roofline lower bound on the time of work that moves `bytes` and computes `flops`:
    /// neither the memory system nor the arithmetic units can go faster than their peak.
    pub fn seconds(&self, bytes: f64, flops: f64, tensor_cores: bool) -> f64 {
        (bytes / self.hbm_bytes_per_s).max(flops / self.flops_peak(tensor_cores))
    }
}
