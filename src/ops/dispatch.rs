//! Where a tape's ops run, and the one helper that runs an op on a kernel backend.
//!
//! A `Tape` owns a `Compute`: `Compute::Cpu` (the default) runs every op on the pure-Rust
//! reference in `device::cpu`; `Compute::Kernels(backend)` runs the ops that have kernels on that
//! `KernelBackend` (`Emu`, or `Cuda` on a GPU) through the launchers in `kernels`. Backward
//! closures capture the same `Compute`, so a backward pass runs where its forward ran.
//!
//! Tensors stay host tensors (`Tensor`) for now: on a kernel backend an op uploads its inputs,
//! launches its kernel(s) and downloads the results, all inside `on_device`. On `Emu` device
//! memory is host memory, so this costs copies only; on `Cuda` every op round-trips over PCIe and
//! synchronises, which is correct but slow. Device-resident tensors are the next step; see
//! `docs/dispatch.md`, which also lists the ops (and the cases) that still run on the CPU.

use crate::device::cpu::norm::Norm;
use crate::device::cuda::Cuda;
use crate::device::emu::Emu;
use crate::device::{DeviceTensor, KernelBackend};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;
use std::sync::Arc;

/// Where a tape's ops run.
#[derive(Clone, Default)]
pub enum Compute {
    /// The pure-Rust reference (`device::cpu`): the executable spec.
    #[default]
    Cpu,
    /// The CUDA kernels on a kernel backend: `Emu` (the kernels run on the CPU) or `Cuda`.
    Kernels(Arc<dyn KernelBackend>),
}

impl Compute {
    /// The CUDA kernels run on the CPU by the emulator (always available).
    pub fn emu() -> Compute {
        Compute::Kernels(Arc::new(Emu))
    }

    /// The CUDA kernels on GPU 0, or an error saying what is missing (driver, GPU or NVRTC).
    pub fn cuda() -> Result<Compute> {
        Ok(Compute::Kernels(Arc::new(Cuda::new(0)?)))
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
            "cuda" => Compute::cuda().map_err(|e| {
                let why = match e {
                    Error::Device { msg, .. } => msg,
                    other => other.to_string(),
                };
                Error::device(
                    "cuda",
                    format!("--device cuda was requested, but no GPU is usable: {why}"),
                )
            }),
            other => Err(Error::arg(
                "--device",
                format!("expected cpu, emu or cuda, got {other:?}"),
            )),
        }
    }

    /// The kernel backend, or `None` for the CPU reference.
    pub fn kernels(&self) -> Option<&dyn KernelBackend> {
        match self {
            Compute::Cpu => None,
            Compute::Kernels(dev) => Some(dev.as_ref()),
        }
    }

    /// "cpu", or the backend's name ("emu (fibers)", "cuda:0 NVIDIA H100 ...").
    pub fn name(&self) -> String {
        match self {
            Compute::Cpu => "cpu".to_string(),
            Compute::Kernels(dev) => dev.name(),
        }
    }
}

impl fmt::Debug for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compute({})", self.name())
    }
}

/// Host values an op hands to a kernel backend: a tensor, or any nesting of options, arrays,
/// vectors, slices, tuples and `Norm`s of tensors. Uploading keeps the structure.
pub trait Upload {
    type OnDevice;
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice>;
}

/// Device results an op hands back: a `DeviceTensor`, or any nesting of options, arrays,
/// vectors and tuples of them. Downloading keeps the structure.
pub trait Download {
    type OnHost;
    fn download(self, dev: &dyn KernelBackend) -> Result<Self::OnHost>;
}

/// The upload / launch / download dance of every dispatched op: uploads `inputs`, runs `launch`
/// (which calls the kernel launchers) on them, and downloads what it returns.
pub fn on_device<I: Upload, O: Download>(
    dev: &dyn KernelBackend,
    inputs: I,
    launch: impl FnOnce(&dyn KernelBackend, I::OnDevice) -> Result<O>,
) -> Result<O::OnHost> {
    let uploaded = inputs.upload(dev)?;
    launch(dev, uploaded)?.download(dev)
}

impl Upload for &Tensor {
    type OnDevice = DeviceTensor;
    fn upload(self, dev: &dyn KernelBackend) -> Result<DeviceTensor> {
        DeviceTensor::upload(dev, self)
    }
}

impl Download for DeviceTensor {
    type OnHost = Tensor;
    fn download(self, dev: &dyn KernelBackend) -> Result<Tensor> {
        DeviceTensor::download(&self, dev)
    }
}

impl<T: Upload> Upload for Option<T> {
    type OnDevice = Option<T::OnDevice>;
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
        self.map(|t| t.upload(dev)).transpose()
    }
}

impl<T: Download> Download for Option<T> {
    type OnHost = Option<T::OnHost>;
    fn download(self, dev: &dyn KernelBackend) -> Result<Self::OnHost> {
        self.map(|t| t.download(dev)).transpose()
    }
}

impl<T: Upload> Upload for Vec<T> {
    type OnDevice = Vec<T::OnDevice>;
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
        self.into_iter().map(|t| t.upload(dev)).collect()
    }
}

impl<T: Upload + Copy> Upload for &[T] {
    type OnDevice = Vec<T::OnDevice>;
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
        self.iter().map(|t| t.upload(dev)).collect()
    }
}

impl<T: Download> Download for Vec<T> {
    type OnHost = Vec<T::OnHost>;
    fn download(self, dev: &dyn KernelBackend) -> Result<Self::OnHost> {
        self.into_iter().map(|t| t.download(dev)).collect()
    }
}

/// An array of `N` values from a vector known to hold `N`.
fn into_array<T, const N: usize>(items: Vec<T>) -> [T; N] {
    items
        .try_into()
        .unwrap_or_else(|_: Vec<T>| unreachable!("mapping an array of {N} gives {N} items"))
}

impl<T: Upload, const N: usize> Upload for [T; N] {
    type OnDevice = [T::OnDevice; N];
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
        Ok(into_array(Vec::from(self).upload(dev)?))
    }
}

impl<T: Download, const N: usize> Download for [T; N] {
    type OnHost = [T::OnHost; N];
    fn download(self, dev: &dyn KernelBackend) -> Result<Self::OnHost> {
        Ok(into_array(Vec::from(self).download(dev)?))
    }
}

impl<T: Upload> Upload for Norm<T> {
    type OnDevice = Norm<T::OnDevice>;
    fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
        Ok(match self {
            Norm::Rms { eps } => Norm::Rms { eps },
            Norm::Layer { weight, bias, eps } => Norm::Layer {
                weight: weight.upload(dev)?,
                bias: bias.upload(dev)?,
                eps,
            },
        })
    }
}

/// `Upload` and `Download` for tuples, element by element.
macro_rules! tuple_transfers {
    ($($name:ident),+) => {
        impl<$($name: Upload),+> Upload for ($($name,)+) {
            type OnDevice = ($($name::OnDevice,)+);
            #[allow(non_snake_case)]
            fn upload(self, dev: &dyn KernelBackend) -> Result<Self::OnDevice> {
                let ($($name,)+) = self;
                Ok(($($name.upload(dev)?,)+))
            }
        }
        impl<$($name: Download),+> Download for ($($name,)+) {
            type OnHost = ($($name::OnHost,)+);
            #[allow(non_snake_case)]
            fn download(self, dev: &dyn KernelBackend) -> Result<Self::OnHost> {
                let ($($name,)+) = self;
                Ok(($($name.download(dev)?,)+))
            }
        }
    };
}
tuple_transfers!(A, B);
tuple_transfers!(A, B, C);
tuple_transfers!(A, B, C, D);
tuple_transfers!(A, B, C, D, E);

/// Borrows each device tensor, as the launchers that take `&[&DeviceTensor]` want them.
pub(crate) fn refs(tensors: &[DeviceTensor]) -> Vec<&DeviceTensor> {
    tensors.iter().collect()
}
