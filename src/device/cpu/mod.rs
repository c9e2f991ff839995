//! The CPU reference backend. One file per op family; each exposes tensor-level `*_fwd` /
//! `*_bwd` functions (the spec the kernels are compared with) built on generic slice code that
//! runs in f32 (bf16 storage widened) or f64 (for gradient checks).
//!
//! Parallelism: rayon over rows or batch items, only when the work is large enough that thread
//! start-up does not dominate.

pub mod act;
pub mod activation;
pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod kl;
pub mod lattice;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod noise;
pub mod norm;
pub mod optim;
pub mod reduce;
pub mod rope;
pub mod sparse_embedding;
pub mod swiglu;

use rayon::prelude::*;

/// Below this many elements an op stays on one thread.
pub const PARALLEL_MIN_ELEMS: usize = 1 << 14;

/// Runs `f` compiled for AVX2 and FMA where this x86-64 CPU has them, else as it is (SSE2 on
/// x86-64). Hot elementwise loops run inside it: twice the baseline's vector width, and the same
/// bits either way, since Rust never contracts `a·b + c` into an fma (only explicit `mul_add`
/// becomes one instruction instead of a libm call, with the same correctly rounded result).
/// Features do not cross into rayon tasks, so call it inside the per-row closure.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has both features, checked just above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

/// Calls `f(row_index, row)` for each `cols`-wide row of `out`, in parallel when `out` is large.
pub fn for_each_row<T: Send>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if cols == 0 {
        return;
    }
    if out.len() >= PARALLEL_MIN_ELEMS {
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(cols).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// `out[i] = f(i)` for every element, in parallel when large.
pub fn fill_with<T: Send>(out: &mut [T], f: impl Fn(usize) -> T + Sync) {
    if out.len() >= PARALLEL_MIN_ELEMS {
        out.par_iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    } else {
        out.iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    }
}

/// A Vec of `n` elements with `out[i] = f(i)`.
pub fn collect_with<T: Send + Default + Clone>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::default(); n];
    fill_with(&mut out, f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::activation::silu_with_derivative;

    /// SwiGLU's backward arithmetic over `x`, as a hot loop would run it.
    fn silu_terms(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            let (silu, derivative) = silu_with_derivative(v);
            *o = silu * 0.75 - derivative * v;
        }
    }

    #[test]
    fn wide_loops_give_the_baseline_bits() {
        let x: Vec<f32> = (0..4099).map(|i| (i as f32 * 0.37).sin() * 30.0).collect();
        let (mut base, mut widened) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
        silu_terms(&x, &mut base);
        wide(|| silu_terms(&x, &mut widened));
        let differing = base
            .iter()
            .zip(&widened)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "of {} elements", x.len());
        assert!(base.iter().all(|v| v.is_finite()));
    }
}
