//! `DeviceTensor`: a shape and dtype over a `DeviceBuffer`, with the copies between host tensors
//! and devices that kernel tests and launchers need.

use crate::device::backend::{DeviceBuffer, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use half::bf16;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct DeviceTensor {
    pub buf: DeviceBuffer,
    shape: Shape,
    dtype: DType,
}

impl DeviceTensor {
    /// Copies a host tensor to `dev`.
    pub fn upload(dev: &dyn KernelBackend, t: &Tensor) -> Result<DeviceTensor> {
        Ok(DeviceTensor {
            buf: dev.upload(t.as_bytes()?)?,
            shape: t.shape().clone(),
            dtype: t.dtype(),
        })
    }

    /// Copies back to a host tensor.
    pub fn download(&self, dev: &dyn KernelBackend) -> Result<Tensor> {
        Tensor::from_bytes(&dev.download(&self.buf)?, self.shape.clone(), self.dtype)
    }

    /// A tensor filled with a poison value (NaN for floats, `i32::MIN` for integers), so a
    /// kernel that leaves an element unwritten fails its test.
    pub fn poisoned(
        dev: &dyn KernelBackend,
        shape: impl Into<Shape>,
        dtype: DType,
    ) -> Result<DeviceTensor> {
        let shape = shape.into();
        let host = match dtype {
            DType::I32 => Tensor::from_vec(vec![i32::MIN; shape.numel()], shape.clone())?,
            DType::BF16 => Tensor::from_vec(vec![bf16::NAN; shape.numel()], shape.clone())?,
            _ => Tensor::full(shape.clone(), f64::NAN, dtype),
        };
        DeviceTensor::upload(dev, &host)
    }

    /// Uninitialised device memory for a tensor (kernels that write every element use this).
    pub fn uninit(
        dev: &dyn KernelBackend,
        shape: impl Into<Shape>,
        dtype: DType,
    ) -> Result<DeviceTensor> {
        let shape = shape.into();
        Ok(DeviceTensor {
            buf: dev.alloc(shape.numel() * dtype.size_in_bytes())?,
            shape,
            dtype,
        })
    }

    /// The device memory of a tensor that lives on a kernel backend, as the launchers take it
    /// (a view: no copy), or `None` for a host tensor.
    pub fn borrow(t: &Tensor) -> Option<DeviceTensor> {
        t.device_buffer().map(|(buf, _)| DeviceTensor {
            buf,
            shape: t.shape().clone(),
            dtype: t.dtype(),
        })
    }

    /// The same memory as a `Tensor` owned by `backend`: how a launcher's result stays resident.
    pub fn into_tensor(self, backend: &Arc<dyn KernelBackend>) -> Result<Tensor> {
        Tensor::from_device(self.buf, self.shape, self.dtype, backend.clone())
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Errors unless the dtype is one of `allowed`.
    pub fn expect_dtype(&self, op: &'static str, allowed: &[DType]) -> Result<()> {
        if !allowed.contains(&self.dtype) {
            return Err(Error::DType {
                op,
                expected: "f32 or bf16",
                got: self.dtype,
            });
        }
        Ok(())
    }
}
