//! Element types. Tensors store f32, bf16, f64 or i32. The CPU reference computes in f32 (bf16 is
//! widened to f32, as the official code upcasts for norms and RoPE) or in f64, which the gradient
//! checks use so finite differences are accurate.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    F64,
    /// Token ids, labels (with the official ignore label -100) and indices.
    I32,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I32 => "i32",
        }
    }
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::BF16 => 2,
            DType::F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        !matches!(self, DType::I32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A real type the CPU reference computes in: f32 or f64. Ops are written once, generic over it.
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + Default
    + Send
    + Sync
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + fmt::Debug
    + 'static
{
    /// The dtype a tensor computed in this type has when no narrower storage was asked for.
    const DTYPE: DType;

    fn of(x: f64) -> Self;
    fn f64(self) -> f64;

    /// `eˣ` for hot loops: `exp::exp_f32` (within 2 ulp, vectorises) in f32, the exact `exp` in
    /// f64, where the gradient checks want every bit.
    fn vexp(self) -> Self;

    /// `c = alpha * a·b + beta * c` for row/column-strided matrices (a: m×k, b: k×n, c: m×n),
    /// on `threads` rayon threads (1: the calling thread only). The result does not depend on
    /// `threads`: the product is split over blocks of `c`, never over `k`.
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-overlapping (for `c`) memory.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
        threads: usize,
    );
}

impl Real for f32 {
    const DTYPE: DType = DType::F32;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn vexp(self) -> f32 {
        crate::exp::exp_f32(self)
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        threads: usize,
    ) {
        strided_gemm(
            m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, threads,
        )
    }
}

impl Real for f64 {
    const DTYPE: DType = DType::F64;
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn vexp(self) -> f64 {
        self.exp()
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
        threads: usize,
    ) {
        strided_gemm(
            m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, threads,
        )
    }
}

/// `Real::gemm` on faer's `gemm` crate, which beat `matrixmultiply` at every product of a TRM
/// step (`cargo bench --bench gemm_crates`, docs/cpu-speed.md) and splits the work over blocks of
/// `c` only, so its sums are the same on any number of threads.
///
/// # Safety
/// As `Real::gemm`.
#[allow(clippy::too_many_arguments)]
unsafe fn strided_gemm<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: *const T,
    rsa: isize,
    csa: isize,
    b: *const T,
    rsb: isize,
    csb: isize,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
    threads: usize,
) {
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // The crate's convention is `dst = alpha·dst + beta·lhs·rhs`, with `dst` read only when asked;
    // its strides come column first.
    let read_c = beta != T::default();
    gemm::gemm(
        m,
        n,
        k,
        c,
        csc,
        rsc,
        read_c,
        a,
        csa,
        rsa,
        b,
        csb,
        rsb,
        beta,
        alpha,
        false,
        false,
        false,
        parallelism,
    )
}
