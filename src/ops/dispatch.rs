//! The one helper that runs an op on a kernel backend, `on_device`.
//!
//! A `Tape` owns a `Compute` (`device::compute`): `Compute::Cpu` runs every op on the pure-Rust
//! reference in `device::cpu`; `Compute::Kernels` runs the ops that have kernels on its backend
//! (`Emu`, or `Cuda` on a GPU). Backward closures capture the same `Compute`, so a backward pass
//! runs where its forward ran.
//!
//! Inputs that already live on the backend are borrowed (a view, no copy); only host tensors are
//! uploaded, each upload going through the backend (a counting backend counts it). Results stay
//! on the device as `Tensor`s. Ops that still run the CPU reference on a kernel tape say so with
//! `Compute::host_input` (counted as a fallback); `docs/dispatch.md` lists them.

pub use crate::device::compute::{Compute, Kernels};
use crate::device::cpu::norm::Norm;
use crate::device::{DeviceTensor, KernelBackend};
use crate::error::Result;
use crate::tensor::Tensor;

/// Values an op hands to a kernel backend: a tensor, or any nesting of options, arrays,
/// vectors, slices, tuples and `Norm`s of tensors. Resident tensors are borrowed, host tensors
/// uploaded; the structure is kept.
pub trait Upload {
    type OnDevice;
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice>;
}

/// Device results an op hands back: a `DeviceTensor`, or any nesting of options, arrays,
/// vectors and tuples of them. They become `Tensor`s that stay on the device; the structure is
/// kept.
pub trait Download {
    type OnHost;
    fn download(self, dev: &Kernels) -> Result<Self::OnHost>;
}

/// What every dispatched op does: borrows (or uploads) `inputs`, runs `launch` (which calls the
/// kernel launchers) on them, and wraps what it returns as device-resident tensors.
pub fn on_device<I: Upload, O: Download>(
    dev: &Kernels,
    inputs: I,
    launch: impl FnOnce(&dyn KernelBackend, I::OnDevice) -> Result<O>,
) -> Result<O::OnHost> {
    let resident = inputs.upload(dev)?;
    launch(dev.as_ref(), resident)?.download(dev)
}

/// Runs the CPU reference `f` for `op` on `compute`. On the CPU it is simply `f`. On a kernel
/// compute it is an explicit fallback: counted (`KernelBackend::note_fallback`), inputs copied
/// to the host, and the results placed back on the device so the next op finds them resident.
pub fn on_reference<const N: usize, O: Place>(
    compute: &Compute,
    op: &'static str,
    inputs: [&Tensor; N],
    f: impl FnOnce([&Tensor; N]) -> Result<O>,
) -> Result<O> {
    match compute {
        Compute::Cpu => f(inputs),
        Compute::Kernels(_) => {
            let host = reference_inputs(compute, op, &inputs)?;
            let refs: [&Tensor; N] = into_array(host.iter().collect());
            f(refs)?.place(compute)
        }
    }
}

/// The inputs of a CPU-reference fallback by `op`, copied to the host; on a kernel compute the
/// fallback is counted (`KernelBackend::note_fallback`).
pub fn reference_inputs(
    compute: &Compute,
    op: &'static str,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>> {
    if let Compute::Kernels(k) = compute {
        k.note_fallback(op);
    }
    inputs.iter().map(|t| t.to_host()).collect()
}

/// Results of a reference fallback that go back to where the compute reads them.
pub trait Place: Sized {
    fn place(self, compute: &Compute) -> Result<Self>;
}

impl Place for Tensor {
    fn place(self, compute: &Compute) -> Result<Tensor> {
        compute.place(&self)
    }
}

impl<T: Place, const N: usize> Place for [T; N] {
    fn place(self, compute: &Compute) -> Result<Self> {
        let placed: Vec<T> = self
            .into_iter()
            .map(|t| t.place(compute))
            .collect::<Result<_>>()?;
        Ok(into_array(placed))
    }
}

impl<A: Place, B: Place> Place for (A, B) {
    fn place(self, compute: &Compute) -> Result<Self> {
        Ok((self.0.place(compute)?, self.1.place(compute)?))
    }
}

impl Upload for &Tensor {
    type OnDevice = DeviceTensor;
    fn upload(self, dev: &Kernels) -> Result<DeviceTensor> {
        dev.resident(self)
    }
}

impl Download for DeviceTensor {
    type OnHost = Tensor;
    fn download(self, dev: &Kernels) -> Result<Tensor> {
        dev.tensor(self)
    }
}

impl<T: Upload> Upload for Option<T> {
    type OnDevice = Option<T::OnDevice>;
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
        self.map(|t| t.upload(dev)).transpose()
    }
}

impl<T: Download> Download for Option<T> {
    type OnHost = Option<T::OnHost>;
    fn download(self, dev: &Kernels) -> Result<Self::OnHost> {
        self.map(|t| t.download(dev)).transpose()
    }
}

impl<T: Upload> Upload for Vec<T> {
    type OnDevice = Vec<T::OnDevice>;
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
        self.into_iter().map(|t| t.upload(dev)).collect()
    }
}

impl<T: Upload + Copy> Upload for &[T] {
    type OnDevice = Vec<T::OnDevice>;
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
        self.iter().map(|t| t.upload(dev)).collect()
    }
}

impl<T: Download> Download for Vec<T> {
    type OnHost = Vec<T::OnHost>;
    fn download(self, dev: &Kernels) -> Result<Self::OnHost> {
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
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
        Ok(into_array(Vec::from(self).upload(dev)?))
    }
}

impl<T: Download, const N: usize> Download for [T; N] {
    type OnHost = [T::OnHost; N];
    fn download(self, dev: &Kernels) -> Result<Self::OnHost> {
        Ok(into_array(Vec::from(self).download(dev)?))
    }
}

impl<T: Upload> Upload for Norm<T> {
    type OnDevice = Norm<T::OnDevice>;
    fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
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
            fn upload(self, dev: &Kernels) -> Result<Self::OnDevice> {
                let ($($name,)+) = self;
                Ok(($($name.upload(dev)?,)+))
            }
        }
        impl<$($name: Download),+> Download for ($($name,)+) {
            type OnHost = ($($name::OnHost,)+);
            #[allow(non_snake_case)]
            fn download(self, dev: &Kernels) -> Result<Self::OnHost> {
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
