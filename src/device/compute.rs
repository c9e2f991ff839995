//! `Compute`: where a tape's ops run, the CPU reference or the kernels of one backend, and the
//! few device-level operations the tape and the parameters need (the gradient `+=`, the loss
//! seed), so neither calls the CPU reference directly.
//!
//! A `Kernels` compute owns its backend and a cache of constants (RoPE tables, the loss seed `1`)
//! that are uploaded once per compute, not once per call.

use crate::device::cpu::elementwise as cpu;
use crate::device::cuda::Cuda;
use crate::device::emu::Emu;
use crate::device::{DeviceBuffer, DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise as kernels;
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a tape's ops run.
#[derive(Clone, Default)]
pub enum Compute {
    /// The pure-Rust reference (`device::cpu`): the executable spec.
    #[default]
    Cpu,
    /// The CUDA kernels on a kernel backend: `Emu` (the kernels run on the CPU) or `Cuda`.
    Kernels(Kernels),
}

/// A kernel backend and the constants uploaded to it. Derefs to the backend.
#[derive(Clone)]
pub struct Kernels {
    backend: Arc<dyn KernelBackend>,
    constants: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl Kernels {
    pub fn new(backend: Arc<dyn KernelBackend>) -> Kernels {
        Kernels {
            backend,
            constants: Arc::default(),
        }
    }

    pub fn backend(&self) -> &Arc<dyn KernelBackend> {
        &self.backend
    }

    /// The device copy of the constant named `key`, built by `make` and uploaded the first time
    /// it is asked for, then shared (RoPE tables, the loss seed).
    pub fn constant(&self, key: &str, make: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
        let mut constants = self
            .constants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = constants.get(key) {
            return Ok(t.clone());
        }
        let t = make()?.to_device(&self.backend)?;
        constants.insert(key.to_string(), t.clone());
        Ok(t)
    }

    /// `t` as a launcher takes it: a view of its device memory when it already lives on a
    /// device, otherwise one upload (which a counting backend counts).
    pub fn resident(&self, t: &Tensor) -> Result<DeviceTensor> {
        match DeviceTensor::borrow(t) {
            Some(view) => Ok(view),
            None => DeviceTensor::upload(self.backend.as_ref(), t),
        }
    }

    /// A launcher's result as a `Tensor` that stays on this backend.
    pub fn tensor(&self, t: DeviceTensor) -> Result<Tensor> {
        t.into_tensor(&self.backend)
    }

    /// Host tensors copied to the device in ONE upload: packed back to back (`PackedLayout`)
    /// into one buffer, and returned as views of it, in order. How a step brings its batch and
    /// per-step scalars over in a single copy on a backend without pinned staging.
    pub fn upload_packed(&self, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
        let layout = PackedLayout::of(tensors);
        let mut bytes = vec![0u8; layout.bytes];
        for (t, &offset) in tensors.iter().zip(&layout.offsets) {
            let b = t.as_bytes()?;
            bytes[offset..offset + b.len()].copy_from_slice(b);
        }
        let buf = self.backend.upload(&bytes)?;
        layout.views(self, &buf, tensors)
    }
}

/// Where packed tensors sit in one buffer: each at a `PACK_ALIGN`-byte boundary, in order.
pub struct PackedLayout {
    /// Each tensor's first byte.
    pub offsets: Vec<usize>,
    /// The packed length.
    pub bytes: usize,
}

impl PackedLayout {
    pub fn of(tensors: &[&Tensor]) -> PackedLayout {
        let mut offsets = Vec::with_capacity(tensors.len());
        let mut end = 0usize;
        for t in tensors {
            end = end.next_multiple_of(PACK_ALIGN);
            offsets.push(end);
            end += t.numel() * t.dtype().size_in_bytes();
        }
        PackedLayout {
            offsets,
            bytes: end,
        }
    }

    /// The tensors (shapes and dtypes of `tensors`) as views of `buf`, which holds them packed.
    pub fn views(
        &self,
        kernels: &Kernels,
        buf: &DeviceBuffer,
        tensors: &[&Tensor],
    ) -> Result<Vec<Tensor>> {
        tensors
            .iter()
            .zip(&self.offsets)
            .map(|(t, &offset)| {
                let len = t.numel() * t.dtype().size_in_bytes();
                Tensor::from_device(
                    buf.view(offset, len)?,
                    t.shape().clone(),
                    t.dtype(),
                    kernels.backend().clone(),
                )
            })
            .collect()
    }
}

/// Where a packed tensor starts: the widest vector load a kernel makes
/// (and cudaMalloc's own alignment), so a packed view is as aligned as its own allocation.
pub const PACK_ALIGN: usize = 256;

impl Deref for Kernels {
    type Target = Arc<dyn KernelBackend>;
    fn deref(&self) -> &Arc<dyn KernelBackend> {
        &self.backend
    }
}

impl Compute {
    /// The kernels of `backend`.
    pub fn on(backend: Arc<dyn KernelBackend>) -> Compute {
        Compute::Kernels(Kernels::new(backend))
    }

    /// The CUDA kernels run on the CPU by the emulator (always available).
    pub fn emu() -> Compute {
        Compute::on(Arc::new(Emu::default()))
    }

    /// The CUDA kernels on GPU 0, or an error saying what is missing (driver, GPU or NVRTC).
    pub fn cuda() -> Result<Compute> {
        Ok(Compute::on(Arc::new(Cuda::new(0)?)))
    }

    /// The default for training from the command line: the GPU when one and NVRTC are usable,
    /// otherwise the CPU reference. `Compute::cuda()` gives the reason when it falls back.
    pub fn auto() -> Compute {
        Compute::cuda().unwrap_or(Compute::Cpu)
    }

    /// Parses a `--device` value: `cpu`, `emu` or `cuda`. Asking for `cuda` on a machine without
    /// a usable GPU is an error that says why, never a silent fallback.
    pub fn from_flag(device: &str) -> Result<Compute> {
        match device.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Compute::Cpu),
            "emu" => Ok(Compute::emu()),
            "cuda" => Ok(Compute::on(Arc::new(requested_cuda()?))),
            other => Err(Error::arg(
                "--device",
                format!("expected cpu, emu or cuda, got {other:?}"),
            )),
        }
    }

    /// The kernels, or `None` for the CPU reference.
    pub fn kernels(&self) -> Option<&Kernels> {
        match self {
            Compute::Cpu => None,
            Compute::Kernels(k) => Some(k),
        }
    }

    /// "cpu", or the backend's name ("emu (fibers)", "cuda:0 NVIDIA H100 ...").
    pub fn name(&self) -> String {
        match self {
            Compute::Cpu => "cpu".to_string(),
            Compute::Kernels(k) => k.name(),
        }
    }

    /// `t` where this compute's ops read it: unchanged if it is already there, else moved (one
    /// upload to the kernels, or one download to the CPU).
    pub fn place(&self, t: &Tensor) -> Result<Tensor> {
        match self {
            Compute::Cpu => t.to_host(),
            Compute::Kernels(k) => t.to_device(k),
        }
    }

    /// `a + b` (same shape and dtype), where the tape adds the gradients of a value used twice
    /// and `Params` accumulates gradients across passes.
    pub fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Compute::Cpu => cpu::add_tensors(a, b),
            Compute::Kernels(k) => {
                let (a, b) = (k.resident(a)?, k.resident(b)?);
                k.tensor(kernels::add_fwd(k.as_ref(), &a, &b)?)
            }
        }
    }

    /// A tensor of ones: the seed of a backward pass. On the kernels it is a constant uploaded
    /// once per shape and dtype, so a step makes no upload for it.
    pub fn ones(&self, shape: &Shape, dtype: DType) -> Result<Tensor> {
        match self {
            Compute::Cpu => Ok(Tensor::ones(shape.clone(), dtype)),
            Compute::Kernels(k) => k.constant(&format!("ones {dtype} {shape}"), || {
                Ok(Tensor::ones(shape.clone(), dtype))
            }),
        }
    }
}

/// GPU 0 because `--device cuda` asked for it: an error that says why no GPU is usable, never a
/// silent fallback. `recur bench step` keeps the `Cuda` itself to read its memory use.
pub fn requested_cuda() -> Result<Cuda> {
    Cuda::new(0).map_err(|e| {
        let why = match e {
            Error::Device { msg, .. } => msg,
            other => other.to_string(),
        };
        Error::device(
            "cuda",
            format!("--device cuda was requested, but no GPU is usable: {why}"),
        )
    })
}

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compute({})", self.name())
    }
}
