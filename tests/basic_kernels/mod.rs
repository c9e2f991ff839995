//! Shared by the basic kernel tests (`kernels_elementwise`, `kernels_activation`,
//! `kernels_reduce`, `kernels_layout`): random inputs rounded to the storage dtype, NaN-poisoned
//! outputs, and the comparison with the CPU reference computed in f64 on the same inputs.
#![allow(dead_code)] // each test file uses its own subset

use recur::device::{DeviceTensor, KernelBackend};
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

/// The storage dtypes every basic kernel has.
pub const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

/// Element counts that are not multiples of the 256-thread block (1 and 7 are below one warp).
pub const SIZES: [usize; 6] = [1, 7, 33, 97, 1000, 4133];

/// The largest relative L2 error vs the f64 reference (DESIGN.md): f32 math on f32 storage stays
/// below 1e-5; bf16 storage rounds every output (unit roundoff 2⁻⁸ ≈ 3.9e-3 at worst, about 1e-3
/// RMS over many elements), so a single bf16 value (sum_all) can sit near 4e-3.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => 5e-3,
        _ => 1e-5,
    }
}

/// Normal(0, std²) values stored in `dtype` (so bf16 inputs are already rounded).
pub fn random(shape: impl Into<Shape>, std: f64, seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(shape, std, seed, dtype).expect("randn of a float dtype")
}

/// The same values widened to f64, the reference's input.
pub fn f64_of(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).expect("float tensors widen to f64")
}

pub fn upload(dev: &dyn KernelBackend, t: &Tensor) -> DeviceTensor {
    DeviceTensor::upload(dev, t).expect("upload")
}

/// A NaN-filled (i32::MIN for i32) output, so an element the kernel skips fails the check.
pub fn poisoned(dev: &dyn KernelBackend, shape: impl Into<Shape>, dtype: DType) -> DeviceTensor {
    DeviceTensor::poisoned(dev, shape, dtype).expect("poisoned output")
}

/// Tracks the worst relative L2 error of a test per dtype, and prints it at the end.
#[derive(Default)]
pub struct Errors {
    worst: Vec<(DType, f64)>,
}

impl Errors {
    /// Asserts that the kernel output `got` matches the f64 reference `want` within the dtype's
    /// tolerance (NaN never passes), and records the error.
    pub fn check(
        &mut self,
        what: &str,
        dev: &dyn KernelBackend,
        got: &DeviceTensor,
        want: &Tensor,
    ) {
        let dtype = got.dtype();
        let host = got.download(dev).expect("download");
        assert_eq!(host.shape(), want.shape(), "{what}: shape");
        let (g, w) = (host.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
        let err = rel_l2(&g, &w);
        assert!(
            err <= tolerance(dtype),
            "{what} ({dtype}, {}): relative L2 error {err:.3e} > {:.0e}\n got  {:?}\n want {:?}",
            want.shape(),
            tolerance(dtype),
            &g[..g.len().min(6)],
            &w[..w.len().min(6)]
        );
        match self.worst.iter_mut().find(|(d, _)| *d == dtype) {
            Some((_, e)) => *e = e.max(err),
            None => self.worst.push((dtype, err)),
        }
    }

    /// Prints the worst error per dtype (shown with `--nocapture`).
    pub fn report(&self, test: &str) {
        for (dtype, err) in &self.worst {
            println!("{test}: max relative L2 error {dtype}: {err:.2e}");
        }
    }
}

/// Asserts bit-for-bit equality with the reference for ops that only move elements; NaN (an
/// unwritten poisoned element) never passes.
pub fn check_exact(what: &str, dev: &dyn KernelBackend, got: &DeviceTensor, want: &Tensor) {
    let host = got.download(dev).expect("download");
    assert_eq!(host.shape(), want.shape(), "{what}: shape");
    assert_eq!(host.dtype(), want.dtype(), "{what}: dtype");
    if host.dtype() == DType::I32 {
        assert_eq!(
            host.to_vec_i32().unwrap(),
            want.to_vec_i32().unwrap(),
            "{what}"
        );
        return;
    }
    let (g, w) = (host.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    assert!(g.iter().all(|v| !v.is_nan()), "{what}: NaN in the output");
    assert_eq!(g, w, "{what} ({}, {})", host.dtype(), want.shape());
}
