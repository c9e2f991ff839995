//! `Tensor`: a shape, a dtype and contiguous row-major storage on the host or on a kernel
//! backend's device.
//!
//! Storage is reference counted and a tensor is a window (an element offset and a shape) into it,
//! so clones, reshapes and views into a larger buffer (an arena) are free. Host tensors update in
//! place by copy on write.
//!
//! Moves between host and device are explicit: `to_host()` downloads, `to_device(..)` uploads
//! (both go through the backend, which a counting wrapper can count). Asking a device tensor for
//! its host data is an `Error::NotOnHost` that says where it lives, never a hidden download.

use crate::device::backend::{DeviceBuffer, KernelBackend};
use crate::dtype::{DType, Real};
use crate::error::{Error, Result};
use crate::rng;
use crate::shape::Shape;
use half::bf16;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Where a tensor's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    /// The device memory of a kernel backend (Emu, Cuda or a wrapper of them).
    Kernels,
}

/// Host memory of one dtype.
#[derive(Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I32(Vec<i32>),
}

/// A float tensor's data as the type the CPU computes in: bf16 is widened to f32.
pub enum RealData<'a> {
    F32(Cow<'a, [f32]>),
    F64(&'a [f64]),
}

/// Element types a tensor can be built from directly.
pub trait HostElem: Copy + 'static {
    const DTYPE: DType;
    fn into_host(v: Vec<Self>) -> HostData;
}
impl HostElem for f32 {
    const DTYPE: DType = DType::F32;
    fn into_host(v: Vec<Self>) -> HostData {
        HostData::F32(v)
    }
}
impl HostElem for f64 {
    const DTYPE: DType = DType::F64;
    fn into_host(v: Vec<Self>) -> HostData {
        HostData::F64(v)
    }
}
impl HostElem for bf16 {
    const DTYPE: DType = DType::BF16;
    fn into_host(v: Vec<Self>) -> HostData {
        HostData::BF16(v)
    }
}
impl HostElem for i32 {
    const DTYPE: DType = DType::I32;
    fn into_host(v: Vec<Self>) -> HostData {
        HostData::I32(v)
    }
}

/// What a tensor's window looks into.
enum Storage {
    Host(HostData),
    Device(Resident),
}

/// Device memory and the backend that owns it (the only one that can read it).
struct Resident {
    buf: DeviceBuffer,
    backend: Arc<dyn KernelBackend>,
}

#[derive(Clone)]
pub struct Tensor {
    shape: Shape,
    dtype: DType,
    /// First element of this tensor in its storage.
    offset: usize,
    storage: Arc<Storage>,
}

impl HostData {
    fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::BF16(v) => v.len(),
            HostData::F64(v) => v.len(),
            HostData::I32(v) => v.len(),
        }
    }

    /// Elements `[start, start + len)` as a new owned block.
    fn slice(&self, start: usize, len: usize) -> HostData {
        let r = start..start + len;
        match self {
            HostData::F32(v) => HostData::F32(v[r].to_vec()),
            HostData::BF16(v) => HostData::BF16(v[r].to_vec()),
            HostData::F64(v) => HostData::F64(v[r].to_vec()),
            HostData::I32(v) => HostData::I32(v[r].to_vec()),
        }
    }

    fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::BF16(_) => DType::BF16,
            HostData::F64(_) => DType::F64,
            HostData::I32(_) => DType::I32,
        }
    }
}

impl Tensor {
    // ---- creation -------------------------------------------------------------------------

    /// A tensor from a Vec; errors if the length does not match the shape.
    pub fn from_vec<T: HostElem>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "Tensor::from_vec",
                format!("{} elements for shape {shape}", data.len()),
            ));
        }
        Ok(Tensor::host(T::into_host(data), shape))
    }

    /// Wraps data computed in `T` (f32 or f64), narrowing to `dtype` when that is bf16 or widening
    /// f32 to f64. This is how every CPU op hands its result back in the dtype of its inputs.
    pub fn from_real<T: Real>(data: Vec<T>, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        assert_eq!(data.len(), shape.numel(), "op produced the wrong length");
        let data = match (T::DTYPE, dtype) {
            (DType::F32, DType::F32) | (DType::F64, DType::F64) => {
                // Same type: reinterpret without copying.
                let any: Box<dyn std::any::Any> = Box::new(data);
                match any.downcast::<Vec<f32>>() {
                    Ok(v) => HostData::F32(*v),
                    Err(any) => HostData::F64(*any.downcast::<Vec<f64>>().expect("f64 data")),
                }
            }
            // f32 results round to nearest even straight from f32, bit for bit as the kernels'
            // `float_to_bf16`. Not through `bf16::from_f64`: it drops the low 32 bits of the f64,
            // which hold the last 3 bits of a widened f32, so a value whose only sticky bits are
            // there (low half 0x8001..0x8007) was taken for a tie and rounded down.
            (DType::F32, DType::BF16) => HostData::BF16(
                data.iter()
                    .map(|x| bf16::from_f32(x.f64() as f32))
                    .collect(),
            ),
            (_, DType::BF16) => {
                HostData::BF16(data.iter().map(|x| bf16::from_f64(x.f64())).collect())
            }
            (_, DType::F32) => HostData::F32(data.iter().map(|x| x.f64() as f32).collect()),
            (_, DType::F64) => HostData::F64(data.iter().map(|x| x.f64()).collect()),
            (_, DType::I32) => panic!("from_real cannot produce an integer tensor"),
        };
        Tensor::host(data, shape)
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let data = match dtype {
            DType::F32 => HostData::F32(vec![value as f32; n]),
            DType::BF16 => HostData::BF16(vec![bf16::from_f64(value); n]),
            DType::F64 => HostData::F64(vec![value; n]),
            DType::I32 => HostData::I32(vec![value as i32; n]),
        };
        Tensor::host(data, shape)
    }

    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Tensor::full(Shape::scalar(), value, dtype)
    }

    /// Normal(0, std²) from the Philox stream keyed by `seed` (see `rng::philox`), so the same seed
    /// gives the same values on every backend.
    pub fn randn(shape: impl Into<Shape>, std: f64, seed: u64, dtype: DType) -> Result<Tensor> {
        let shape = shape.into();
        float_dtype("Tensor::randn", dtype)?;
        let v: Vec<f64> = (0..shape.numel() as u64)
            .map(|i| std * rng::philox::normal(seed, 0, i) as f64)
            .collect();
        Ok(Tensor::from_real(v, shape, dtype))
    }

    /// The official JAX-style truncated normal whose realised std equals `std` (HRM
    /// `models/common.py`), drawn from the Philox stream keyed by `seed`.
    pub fn trunc_normal(
        shape: impl Into<Shape>,
        std: f64,
        seed: u64,
        dtype: DType,
    ) -> Result<Tensor> {
        let shape = shape.into();
        float_dtype("Tensor::trunc_normal", dtype)?;
        let v = rng::trunc_normal::sample(shape.numel(), std, -2.0, 2.0, seed)?;
        Ok(Tensor::from_real(v, shape, dtype))
    }

    // ---- metadata -------------------------------------------------------------------------

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Host(_) => Device::Cpu,
            Storage::Device(_) => Device::Kernels,
        }
    }
    pub fn is_on_host(&self) -> bool {
        self.device() == Device::Cpu
    }
    /// Where the data lives, in words: "host", or the backend's name ("emu (fibers)", ...).
    pub fn location(&self) -> String {
        match &*self.storage {
            Storage::Host(_) => "host".to_string(),
            Storage::Device(r) => r.backend.name(),
        }
    }
    /// How many tensors share this storage (clones, reshapes, values held by a tape). Lets tests
    /// check that a dropped tape really released what it held.
    pub fn storage_refs(&self) -> usize {
        Arc::strong_count(&self.storage)
    }
    /// True when both tensors share the same storage (a clone or a reshape of each other).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    // ---- host and device ------------------------------------------------------------------

    fn host(data: HostData, shape: Shape) -> Tensor {
        Tensor {
            dtype: data.dtype(),
            offset: 0,
            storage: Arc::new(Storage::Host(data)),
            shape,
        }
    }

    /// A device tensor over `buf` (which must hold `shape` × `dtype` bytes), owned by `backend`.
    pub fn from_device(
        buf: DeviceBuffer,
        shape: impl Into<Shape>,
        dtype: DType,
        backend: Arc<dyn KernelBackend>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let want = shape.numel() * dtype.size_in_bytes();
        if buf.len_bytes() != want {
            return Err(Error::shape(
                "Tensor::from_device",
                format!("{} bytes for {dtype} shape {shape}", buf.len_bytes()),
            ));
        }
        Ok(Tensor {
            shape,
            dtype,
            offset: 0,
            storage: Arc::new(Storage::Device(Resident { buf, backend })),
        })
    }

    /// The host data of this tensor's storage, or where it lives instead.
    fn host_storage(&self, op: &'static str) -> Result<&HostData> {
        match &*self.storage {
            Storage::Host(data) => Ok(data),
            Storage::Device(r) => Err(Error::NotOnHost {
                op,
                location: r.backend.name(),
            }),
        }
    }

    /// The element range of this window in its storage.
    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.numel()
    }

    /// This tensor's device memory (a view of its storage) and the backend that owns it, or
    /// `None` for a host tensor.
    pub fn device_buffer(&self) -> Option<(DeviceBuffer, &Arc<dyn KernelBackend>)> {
        match &*self.storage {
            Storage::Host(_) => None,
            Storage::Device(r) => {
                let size = self.dtype.size_in_bytes();
                let view = r
                    .buf
                    .view(self.offset * size, self.numel() * size)
                    .expect("a tensor's window lies inside its storage");
                Some((view, &r.backend))
            }
        }
    }

    /// A copy on the host (a download for a device tensor; a free clone for a host tensor).
    pub fn to_host(&self) -> Result<Tensor> {
        match self.device_buffer() {
            None => Ok(self.clone()),
            Some((buf, backend)) => {
                let bytes = backend.download(&buf)?;
                Tensor::from_bytes(&bytes, self.shape.clone(), self.dtype)
            }
        }
    }

    /// A copy in `backend`'s device memory (one upload for a host tensor). A tensor already on a
    /// device is returned as it is: moving between devices is not supported, and a launch on the
    /// wrong backend is an error naming the argument.
    pub fn to_device(&self, backend: &Arc<dyn KernelBackend>) -> Result<Tensor> {
        match &*self.storage {
            Storage::Device(_) => Ok(self.clone()),
            Storage::Host(_) => {
                let buf = backend.upload(self.as_bytes()?)?;
                Tensor::from_device(buf, self.shape.clone(), self.dtype, backend.clone())
            }
        }
    }

    /// `shape` elements starting at element `offset` of this tensor's data, sharing the storage
    /// (free on the host and on a device): how parameters and gradients view their arenas.
    pub fn view(&self, offset: usize, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if offset + shape.numel() > self.numel() {
            return Err(Error::shape(
                "Tensor::view",
                format!(
                    "{} elements at offset {offset} of a tensor of shape {}",
                    shape.numel(),
                    self.shape
                ),
            ));
        }
        Ok(Tensor {
            shape,
            dtype: self.dtype,
            offset: self.offset + offset,
            storage: self.storage.clone(),
        })
    }

    // ---- views and conversion -------------------------------------------------------------

    /// Same data, new shape with the same element count. Free: the storage is shared.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("cannot view {} as {shape}", self.shape),
            ));
        }
        Ok(Tensor {
            shape,
            ..self.clone()
        })
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        if dtype == DType::I32 || self.dtype() == DType::I32 {
            return Err(Error::arg(
                "to_dtype",
                format!("no conversion between {} and {dtype}", self.dtype()),
            ));
        }
        Ok(match self.real_data("to_dtype")? {
            RealData::F32(v) => Tensor::from_real(v.into_owned(), self.shape.clone(), dtype),
            RealData::F64(v) => Tensor::from_real(v.to_vec(), self.shape.clone(), dtype),
        })
    }

    /// The data as the type the CPU computes in. Errors for integer tensors.
    pub fn real_data(&self, op: &'static str) -> Result<RealData<'_>> {
        let r = self.range();
        Ok(match self.host_storage(op)? {
            HostData::F32(v) => RealData::F32(Cow::Borrowed(&v[r])),
            HostData::BF16(v) => {
                RealData::F32(Cow::Owned(v[r].iter().map(|x| x.to_f32()).collect()))
            }
            HostData::F64(v) => RealData::F64(&v[r]),
            HostData::I32(_) => {
                return Err(Error::DType {
                    op,
                    expected: "a float dtype",
                    got: DType::I32,
                })
            }
        })
    }

    /// Integer data (token ids, labels, indices).
    pub fn i32_data(&self, op: &'static str) -> Result<&[i32]> {
        let r = self.range();
        match self.host_storage(op)? {
            HostData::I32(v) => Ok(&v[r]),
            other => Err(Error::DType {
                op,
                expected: "i32",
                got: other.dtype(),
            }),
        }
    }

    /// Mutable f32 or f64 data for in-place updates (optimizers). Copies first if the storage is
    /// shared or larger than this window. Errors for bf16 and i32, which are never updated in
    /// place, and for device tensors.
    pub fn real_data_mut(&mut self, op: &'static str) -> Result<RealDataMut<'_>> {
        let got = self.dtype();
        let data = self.host_storage(op)?;
        let whole = self.offset == 0 && data.len() == self.numel();
        if !whole || Arc::get_mut(&mut self.storage).is_none() {
            let own = self.host_storage(op)?.slice(self.offset, self.numel());
            self.storage = Arc::new(Storage::Host(own));
            self.offset = 0;
        }
        let Some(Storage::Host(data)) = Arc::get_mut(&mut self.storage) else {
            unreachable!("the storage was made unique and on the host above")
        };
        match data {
            HostData::F32(v) => Ok(RealDataMut::F32(v)),
            HostData::F64(v) => Ok(RealDataMut::F64(v)),
            _ => Err(Error::DType {
                op,
                expected: "f32 or f64",
                got,
            }),
        }
    }

    /// The raw little-endian bytes of a host tensor, as a device copy or a file needs them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.as_bytes()?.to_vec())
    }

    /// A host tensor's data as little-endian bytes, without a copy.
    pub fn as_bytes(&self) -> Result<&[u8]> {
        let r = self.range();
        Ok(match self.host_storage("as_bytes")? {
            HostData::F32(v) => bytemuck::cast_slice(&v[r]),
            HostData::BF16(v) => bytemuck::cast_slice(&v[r]),
            HostData::F64(v) => bytemuck::cast_slice(&v[r]),
            HostData::I32(v) => bytemuck::cast_slice(&v[r]),
        })
    }

    /// A tensor from raw bytes of `dtype` (the inverse of `to_bytes`).
    pub fn from_bytes(bytes: &[u8], shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        let shape = shape.into();
        if bytes.len() != shape.numel() * dtype.size_in_bytes() {
            return Err(Error::shape(
                "Tensor::from_bytes",
                format!("{} bytes for {dtype} shape {shape}", bytes.len()),
            ));
        }
        // pod_collect_to_vec copies, so `bytes` needs no particular alignment.
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::BF16 => HostData::BF16(bytemuck::pod_collect_to_vec(bytes)),
            DType::F64 => HostData::F64(bytemuck::pod_collect_to_vec(bytes)),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec(bytes)),
        };
        Ok(Tensor::host(data, shape))
    }

    /// A zero-filled tensor of `dtype` whose bytes `fill` writes in place: layout ops build their
    /// output in its final storage instead of in a byte buffer that `from_bytes` would copy.
    pub fn from_bytes_with(
        shape: impl Into<Shape>,
        dtype: DType,
        fill: impl FnOnce(&mut [u8]),
    ) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let mut data = match dtype {
            DType::F32 => HostData::F32(vec![0.0; n]),
            DType::BF16 => HostData::BF16(vec![bf16::ZERO; n]),
            DType::F64 => HostData::F64(vec![0.0; n]),
            DType::I32 => HostData::I32(vec![0; n]),
        };
        fill(match &mut data {
            HostData::F32(v) => bytemuck::cast_slice_mut(v),
            HostData::BF16(v) => bytemuck::cast_slice_mut(v),
            HostData::F64(v) => bytemuck::cast_slice_mut(v),
            HostData::I32(v) => bytemuck::cast_slice_mut(v),
        });
        Tensor::host(data, shape)
    }

    /// Copies to a host Vec of f32 (bf16 and f64 converted). Errors for integer tensors.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        Ok(match self.real_data("to_vec_f32")? {
            RealData::F32(v) => v.into_owned(),
            RealData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        })
    }

    /// Copies to a host Vec of f64. Errors for integer tensors.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        Ok(match self.real_data("to_vec_f64")? {
            RealData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            RealData::F64(v) => v.to_vec(),
        })
    }

    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        Ok(self.i32_data("to_vec_i32")?.to_vec())
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("expected one element, got shape {}", self.shape),
            ));
        }
        Ok(match self.dtype {
            DType::I32 => self.i32_data("item")?[0] as f64,
            _ => self.to_vec_f64()?[0],
        })
    }

    /// Errors unless the tensor has `dtype` as one of `allowed`.
    pub fn expect_float(&self, op: &'static str) -> Result<()> {
        float_dtype(op, self.dtype())
    }
}

pub enum RealDataMut<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

fn float_dtype(op: &'static str, dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::DType {
            op,
            expected: "a float dtype",
            got: dtype,
        });
    }
    Ok(())
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}, {}", self.shape, self.dtype())?;
        let n = self.numel().min(8);
        if !self.is_on_host() {
            return write!(f, ", on {})", self.location());
        }
        match self.dtype {
            DType::I32 => write!(
                f,
                ", {:?}",
                &self.i32_data("Debug").unwrap_or_default()[..n]
            )?,
            _ => {
                let v = self.to_vec_f64().unwrap_or_default();
                write!(f, ", {:?}", &v[..n])?
            }
        }
        if self.numel() > 8 {
            write!(f, ", ...")?;
        }
        write!(f, ")")
    }
}

/// Runs `$body` with `$s` bound to a float tensor's data as a slice of the compute type, and the
/// type alias `T` naming that type (f32 for f32/bf16 storage, f64 for f64). The body is written
/// once and instantiated for both.
#[macro_export]
macro_rules! with_real {
    ($t:expr, $op:expr, |$s:ident| $body:expr) => {
        match $t.real_data($op)? {
            $crate::tensor::RealData::F32($s) => {
                #[allow(dead_code)]
                type T = f32;
                let $s: &[f32] = &$s;
                $body
            }
            $crate::tensor::RealData::F64($s) => {
                #[allow(dead_code)]
                type T = f64;
                $body
            }
        }
    };
}

/// `with_real!` for two tensors that must share a dtype.
#[macro_export]
macro_rules! with_real2 {
    ($a:expr, $b:expr, $op:expr, |$x:ident, $y:ident| $body:expr) => {{
        $crate::tensor::same_dtype($op, &[$a, $b])?;
        match ($a.real_data($op)?, $b.real_data($op)?) {
            ($crate::tensor::RealData::F32($x), $crate::tensor::RealData::F32($y)) => {
                #[allow(dead_code)]
                type T = f32;
                let ($x, $y): (&[f32], &[f32]) = (&$x, &$y);
                $body
            }
            ($crate::tensor::RealData::F64($x), $crate::tensor::RealData::F64($y)) => {
                #[allow(dead_code)]
                type T = f64;
                $body
            }
            _ => unreachable!("same_dtype checked the dtypes"),
        }
    }};
}

/// `with_real!` for three tensors that must share a dtype.
#[macro_export]
macro_rules! with_real3 {
    ($a:expr, $b:expr, $c:expr, $op:expr, |$x:ident, $y:ident, $z:ident| $body:expr) => {{
        $crate::tensor::same_dtype($op, &[$a, $b, $c])?;
        match ($a.real_data($op)?, $b.real_data($op)?, $c.real_data($op)?) {
            (
                $crate::tensor::RealData::F32($x),
                $crate::tensor::RealData::F32($y),
                $crate::tensor::RealData::F32($z),
            ) => {
                #[allow(dead_code)]
                type T = f32;
                let ($x, $y, $z): (&[f32], &[f32], &[f32]) = (&$x, &$y, &$z);
                $body
            }
            (
                $crate::tensor::RealData::F64($x),
                $crate::tensor::RealData::F64($y),
                $crate::tensor::RealData::F64($z),
            ) => {
                #[allow(dead_code)]
                type T = f64;
                $body
            }
            _ => unreachable!("same_dtype checked the dtypes"),
        }
    }};
}

/// Errors unless every tensor is a float tensor of the same dtype; returns that dtype.
pub fn same_dtype(op: &'static str, ts: &[&Tensor]) -> Result<DType> {
    let first = ts[0].dtype();
    float_dtype(op, first)?;
    for t in &ts[1..] {
        if t.dtype() != first {
            return Err(Error::DType {
                op,
                expected: first.name(),
                got: t.dtype(),
            });
        }
    }
    Ok(first)
}
