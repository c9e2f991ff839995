//! Dense products: `linear` (`y = x·Wᵀ + b` with the weight in PyTorch's `[out, in]` layout) and
//! batched `matmul`, forward and backward.
//!
//! Every product is `Real::gemm` on strided views, so the transposes that the backward passes
//! need cost nothing. Large products run on every rayon thread, split over batch items or, inside
//! the GEMM, over blocks of the output; neither splits a sum, so results do not depend on the
//! thread count.

use crate::device::cpu::PARALLEL_MIN_ELEMS;
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{with_real, with_real2, with_real3};
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on one thread.
const GEMM_PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// A batch of matrices in a slice, read through strides: a transpose is a stride swap, and a
/// batch stride of 0 repeats one matrix for every batch item.
#[derive(Clone, Copy)]
struct MatRef<'a, T> {
    data: &'a [T],
    batch_stride: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// Contiguous row-major `rows × cols` matrices, one after another.
    fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            batch_stride: rows * cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposes (`cols × rows` views) of contiguous row-major `rows × cols` matrices.
    fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            batch_stride: rows * cols,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Asserts that `batch` matrices of `rows × cols` through these strides lie inside the slice.
    fn assert_covers(&self, batch: usize, rows: usize, cols: usize) {
        if batch == 0 || rows == 0 || cols == 0 {
            return;
        }
        let last = (batch - 1) * self.batch_stride
            + (rows - 1) * self.row_stride
            + (cols - 1) * self.col_stride;
        assert!(
            last < self.data.len(),
            "GEMM operand view exceeds its storage"
        );
    }
}

/// `c[i] = a[i]·b[i]` (or `c[i] += a[i]·b[i]` when `accumulate`) for `batch` items, with `a[i]`
/// `m × k`, `b[i]` `k × n` and `c` contiguous `[batch, m, n]`.
#[allow(clippy::too_many_arguments)]
fn batched_gemm<T: Real>(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    accumulate: bool,
) {
    assert_eq!(c.len(), batch * m * n, "GEMM output has the wrong length");
    if c.is_empty() {
        return;
    }
    a.assert_covers(batch, m, k);
    b.assert_covers(batch, k, n);
    let beta = if accumulate { T::one() } else { T::zero() };
    // Computes item `item` into `ci` on `threads` threads.
    let run_item = |item: usize, ci: &mut [T], threads: usize| {
        // SAFETY: `assert_covers` checked that every element the views address lies inside
        // `a.data` and `b.data` (and k = 0 reads nothing); `ci` is an exclusive, contiguous
        // `m × n` slice.
        unsafe {
            T::gemm(
                m,
                k,
                n,
                T::one(),
                a.data
                    .as_ptr()
                    .add((item * a.batch_stride).min(a.data.len())),
                a.row_stride as isize,
                a.col_stride as isize,
                b.data
                    .as_ptr()
                    .add((item * b.batch_stride).min(b.data.len())),
                b.row_stride as isize,
                b.col_stride as isize,
                beta,
                ci.as_mut_ptr(),
                n as isize,
                1,
                threads,
            )
        }
    };
    let threads = rayon::current_num_threads();
    if batch * m * n * k < GEMM_PARALLEL_MIN_FLOPS || threads == 1 {
        c.chunks_mut(m * n)
            .enumerate()
            .for_each(|(item, ci)| run_item(item, ci, 1));
    } else if batch >= threads {
        // Enough items to keep every thread busy with whole products.
        c.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(item, ci)| run_item(item, ci, 1));
    } else {
        // The GEMM splits each product over blocks of its output itself, packing each operand
        // once rather than once per block.
        c.chunks_mut(m * n)
            .enumerate()
            .for_each(|(item, ci)| run_item(item, ci, threads));
    }
}

/// The sizes of one `linear` call: `rows` vectors of `in_features` mapped to `out_features`.
pub(crate) struct LinearDims {
    pub(crate) rows: usize,
    pub(crate) in_features: usize,
    pub(crate) out_features: usize,
}

/// Checks `x [..., in]` against `w [out, in]` (and `bias [out]`); errors name `op`. The CUDA
/// launchers in `kernels::matmul` validate with this too.
pub(crate) fn linear_dims(
    op: &'static str,
    x: &Shape,
    w: &Shape,
    bias: Option<&Shape>,
) -> Result<LinearDims> {
    let &[out_features, in_features] = w.dims() else {
        return Err(Error::shape(
            op,
            format!("weight must be [out, in], got {w}"),
        ));
    };
    let (rows, cols) = x.rows_cols(op)?;
    if cols != in_features {
        return Err(Error::shape(
            op,
            format!(
                "input {x} does not end in the weight's in_features {in_features} (weight {w})"
            ),
        ));
    }
    if let Some(b) = bias {
        if b.dims() != [out_features] {
            return Err(Error::shape(
                op,
                format!("bias must be [{out_features}], got {b}"),
            ));
        }
    }
    Ok(LinearDims {
        rows,
        in_features,
        out_features,
    })
}

/// The shape of `x` with its last dimension replaced by `last`.
pub(crate) fn with_last_dim(x: &Shape, last: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    if let Some(d) = dims.last_mut() {
        *d = last;
    }
    Shape::new(dims)
}

/// `x·Wᵀ (+ b)` on flat rows: the bias is written first and the product accumulated onto it.
fn linear_rows<T: Real>(x: &[T], w: &[T], bias: Option<&[T]>, d: &LinearDims) -> Vec<T> {
    let (rows, inf, outf) = (d.rows, d.in_features, d.out_features);
    let mut y = vec![T::default(); rows * outf];
    if let Some(b) = bias {
        y.chunks_mut(outf.max(1)).for_each(|r| r.copy_from_slice(b));
    }
    batched_gemm(
        1,
        rows,
        inf,
        outf,
        MatRef::row_major(x, rows, inf),
        MatRef::transposed(w, outf, inf),
        &mut y,
        bias.is_some(),
    );
    y
}

/// `y = x·Wᵀ + b`, PyTorch's `F.linear`: `x [..., in]`, `w [out, in]`, `bias [out]` →
/// `[..., out]`. All operands share one float dtype.
pub fn linear_fwd(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear";
    let d = linear_dims(OP, x.shape(), w.shape(), bias.map(Tensor::shape))?;
    let y_shape = with_last_dim(x.shape(), d.out_features);
    let y = match bias {
        None => with_real2!(x, w, OP, |xs, ws| Tensor::from_real(
            linear_rows::<T>(xs, ws, None, &d),
            y_shape,
            x.dtype()
        )),
        Some(b) => with_real3!(x, w, b, OP, |xs, ws, bs| Tensor::from_real(
            linear_rows::<T>(xs, ws, Some(bs), &d),
            y_shape,
            x.dtype()
        )),
    };
    Ok(y)
}

/// Backward of `linear` for the input: `dx = dy·W`, shaped like `x`.
pub fn linear_bwd_input(dy: &Tensor, w: &Tensor, x_shape: &Shape) -> Result<Tensor> {
    const OP: &str = "linear backward";
    let d = linear_dims("linear", x_shape, w.shape(), None)?;
    dy.shape()
        .expect_eq(OP, &with_last_dim(x_shape, d.out_features))?;
    with_real2!(dy, w, OP, |g, ws| {
        let mut dx = vec![T::default(); d.rows * d.in_features];
        batched_gemm(
            1,
            d.rows,
            d.out_features,
            d.in_features,
            MatRef::row_major(g, d.rows, d.out_features),
            MatRef::row_major(ws, d.out_features, d.in_features),
            &mut dx,
            false,
        );
        Ok(Tensor::from_real(dx, x_shape.clone(), dy.dtype()))
    })
}

/// Backward of `linear` for the weight: `dW = dyᵀ·x`, summed over every row, shaped `[out, in]`.
pub fn linear_bwd_weight(dy: &Tensor, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "linear backward";
    let (rows, in_features) = x.shape().rows_cols(OP)?;
    let (dy_rows, out_features) = dy.shape().rows_cols(OP)?;
    if dy.dims()[..dy.rank() - 1] != x.dims()[..x.rank() - 1] || dy_rows != rows {
        return Err(Error::shape(
            OP,
            format!(
                "output gradient {} does not match input {}",
                dy.shape(),
                x.shape()
            ),
        ));
    }
    with_real2!(dy, x, OP, |g, xs| {
        let mut dw = vec![T::default(); out_features * in_features];
        batched_gemm(
            1,
            out_features,
            rows,
            in_features,
            MatRef::transposed(g, rows, out_features),
            MatRef::row_major(xs, rows, in_features),
            &mut dw,
            false,
        );
        Ok(Tensor::from_real(
            dw,
            [out_features, in_features],
            dy.dtype(),
        ))
    })
}

/// Backward of `linear` for the bias: `db = Σ_rows dy`, shaped `[out]`. Sums accumulate in f64
/// over fixed blocks of rows, added in order, so the result does not depend on the thread count.
pub fn linear_bwd_bias(dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "linear backward";
    let (rows, cols) = dy.shape().rows_cols(OP)?;
    const BLOCK_ROWS: usize = 256;
    with_real!(dy, OP, |g| {
        let column_sums = |block: &[T]| -> Vec<f64> {
            let mut acc = vec![0.0f64; cols];
            for row in block.chunks(cols.max(1)) {
                acc.iter_mut().zip(row).for_each(|(a, v)| *a += v.f64());
            }
            acc
        };
        let block_len = (BLOCK_ROWS * cols).max(1);
        let partials: Vec<Vec<f64>> = if rows * cols >= PARALLEL_MIN_ELEMS {
            g.par_chunks(block_len).map(column_sums).collect()
        } else {
            g.chunks(block_len).map(column_sums).collect()
        };
        let mut total = vec![0.0f64; cols];
        for p in &partials {
            total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
        let db: Vec<T> = total.into_iter().map(T::of).collect();
        Ok(Tensor::from_real(db, [cols], dy.dtype()))
    })
}

/// The sizes of one `matmul` call as a batch of GEMMs. When `b` is one matrix shared by the whole
/// batch, `a`'s batch is folded into its rows, making one taller GEMM.
struct MatmulDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    out_shape: Shape,
}

fn matmul_dims(a: &Shape, b: &Shape) -> Result<MatmulDims> {
    const OP: &str = "matmul";
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::shape(
            OP,
            format!("operands need at least 2 dimensions, got {a} and {b}"),
        ));
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.dims()[ra - 2], a.dims()[ra - 1]);
    let (kb, n) = (b.dims()[rb - 2], b.dims()[rb - 1]);
    if k != kb {
        return Err(Error::shape(
            OP,
            format!("inner dimensions differ: {a} · {b}"),
        ));
    }
    let batch_dims = &a.dims()[..ra - 2];
    if rb > 2 && b.dims()[..rb - 2] != *batch_dims {
        return Err(Error::shape(
            OP,
            format!("batch dimensions differ: {a} · {b} (b must match a's batch or be 2-D)"),
        ));
    }
    let mut out = batch_dims.to_vec();
    out.extend([m, n]);
    let batch: usize = batch_dims.iter().product();
    Ok(if rb == 2 {
        MatmulDims {
            batch: 1,
            m: batch * m,
            k,
            n,
            out_shape: out.into(),
        }
    } else {
        MatmulDims {
            batch,
            m,
            k,
            n,
            out_shape: out.into(),
        }
    })
}

/// Batched `a·b`: `a [..., m, k]`, `b [..., k, n]` with the same batch dimensions, or `b [k, n]`
/// shared by every batch item → `[..., m, n]`.
pub fn matmul_fwd(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "matmul";
    let d = matmul_dims(a.shape(), b.shape())?;
    with_real2!(a, b, OP, |av, bv| {
        let mut c = vec![T::default(); d.batch * d.m * d.n];
        batched_gemm(
            d.batch,
            d.m,
            d.k,
            d.n,
            MatRef::row_major(av, d.m, d.k),
            MatRef::row_major(bv, d.k, d.n),
            &mut c,
            false,
        );
        Ok(Tensor::from_real(c, d.out_shape, a.dtype()))
    })
}

/// Backward of `matmul` for `a`: `da = dy·bᵀ`, shaped like `a`.
pub fn matmul_bwd_a(dy: &Tensor, b: &Tensor, a_shape: &Shape) -> Result<Tensor> {
    const OP: &str = "matmul backward";
    let d = matmul_dims(a_shape, b.shape())?;
    dy.shape().expect_eq(OP, &d.out_shape)?;
    with_real2!(dy, b, OP, |g, bv| {
        let mut da = vec![T::default(); d.batch * d.m * d.k];
        batched_gemm(
            d.batch,
            d.m,
            d.n,
            d.k,
            MatRef::row_major(g, d.m, d.n),
            MatRef::transposed(bv, d.k, d.n),
            &mut da,
            false,
        );
        Ok(Tensor::from_real(da, a_shape.clone(), dy.dtype()))
    })
}

/// Backward of `matmul` for `b`: `db = aᵀ·dy` per batch item, or summed over the batch when `b`
/// was shared; shaped like `b`.
pub fn matmul_bwd_b(dy: &Tensor, a: &Tensor, b_shape: &Shape) -> Result<Tensor> {
    const OP: &str = "matmul backward";
    let d = matmul_dims(a.shape(), b_shape)?;
    dy.shape().expect_eq(OP, &d.out_shape)?;
    with_real2!(dy, a, OP, |g, av| {
        let mut db = vec![T::default(); d.batch * d.k * d.n];
        batched_gemm(
            d.batch,
            d.k,
            d.m,
            d.n,
            MatRef::transposed(av, d.m, d.k),
            MatRef::row_major(g, d.m, d.n),
            &mut db,
            false,
        );
        Ok(Tensor::from_real(db, b_shape.clone(), dy.dtype()))
    })
}
