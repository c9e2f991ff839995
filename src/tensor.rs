//! `Tensor`: a shape, a dtype and contiguous row-major storage on a device.
//!
//! Storage is reference counted, so clones and reshapes are free; in-place updates (optimizers)
//! copy on write. Only the CPU exists in this layer so far; device backends add storage kinds.

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

#[derive(Clone)]
pub struct Tensor {
    shape: Shape,
    data: Arc<HostData>,
}

impl HostData {
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
        Ok(Tensor {
            shape,
            data: Arc::new(T::into_host(data)),
        })
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
            (_, DType::BF16) => {
                HostData::BF16(data.iter().map(|x| bf16::from_f64(x.f64())).collect())
            }
            (_, DType::F32) => HostData::F32(data.iter().map(|x| x.f64() as f32).collect()),
            (_, DType::F64) => HostData::F64(data.iter().map(|x| x.f64()).collect()),
            (_, DType::I32) => panic!("from_real cannot produce an integer tensor"),
        };
        Tensor {
            shape,
            data: Arc::new(data),
        }
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
        Tensor {
            shape,
            data: Arc::new(data),
        }
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
        self.data.dtype()
    }
    pub fn device(&self) -> Device {
        Device::Cpu
    }
    /// How many tensors share this storage (clones, reshapes, values held by a tape). Lets tests
    /// check that a dropped tape really released what it held.
    pub fn storage_refs(&self) -> usize {
        Arc::strong_count(&self.data)
    }
    /// True when both tensors share the same storage (a clone or a reshape of each other).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
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
            data: self.data.clone(),
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
        Ok(match &*self.data {
            HostData::F32(v) => RealData::F32(Cow::Borrowed(v)),
            HostData::BF16(v) => RealData::F32(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
            HostData::F64(v) => RealData::F64(v),
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
        match &*self.data {
            HostData::I32(v) => Ok(v),
            other => Err(Error::DType {
                op,
                expected: "i32",
                got: other.dtype(),
            }),
        }
    }

    /// Mutable f32 or f64 data for in-place updates (optimizers). Copies first if the storage is
    /// shared. Errors for bf16 and i32, which are never updated in place.
    pub fn real_data_mut(&mut self, op: &'static str) -> Result<RealDataMut<'_>> {
        let got = self.dtype();
        match Arc::make_mut(&mut self.data) {
            HostData::F32(v) => Ok(RealDataMut::F32(v)),
            HostData::F64(v) => Ok(RealDataMut::F64(v)),
            _ => Err(Error::DType {
                op,
                expected: "f32 or f64",
                got,
            }),
        }
    }

    /// The raw little-endian bytes of the storage, as a device copy needs them.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// The storage as little-endian bytes, without a copy.
    pub fn as_bytes(&self) -> &[u8] {
        match &*self.data {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::BF16(v) => bytemuck::cast_slice(v),
            HostData::F64(v) => bytemuck::cast_slice(v),
            HostData::I32(v) => bytemuck::cast_slice(v),
        }
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
        Ok(Tensor {
            shape,
            data: Arc::new(data),
        })
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
        Ok(match &*self.data {
            HostData::I32(v) => v[0] as f64,
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
        match &*self.data {
            HostData::I32(v) => write!(f, ", {:?}", &v[..n])?,
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
