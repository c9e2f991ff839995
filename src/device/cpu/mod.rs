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
