//! Layout ops that move elements without arithmetic: the last-two-dims transpose (TRM-MLP's
//! token mixing runs its RMSNorm over the sequence axis), `concat`, `narrow` (slicing the puzzle
//! prefix off the logits) and its zero-padding backward, plus `argmax`.
//!
//! They move raw elements (bytes of the dtype's width), so one routine serves every dtype,
//! including i32 ids, and bf16 is copied exactly: `concat` and `narrow` copy contiguous runs,
//! the transpose loops over each matrix.

use crate::device::cpu::collect_with;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::with_real;
use bytemuck::{cast_slice, cast_slice_mut};

/// The one dtype all `inputs` share (there must be at least one).
fn common_dtype(op: &'static str, inputs: &[&Tensor]) -> Result<DType> {
    let dtype = inputs
        .first()
        .map(|t| t.dtype())
        .ok_or_else(|| Error::arg(op, "needs at least one input"))?;
    match inputs.iter().find(|t| t.dtype() != dtype) {
        Some(t) => Err(Error::DType {
            op,
            expected: dtype.name(),
            got: t.dtype(),
        }),
        None => Ok(dtype),
    }
}

/// `[..., b, a]` for `[..., a, b]`, and (batch, a, b). The CUDA launchers in `kernels::layout`
/// validate with this too.
pub(crate) fn transposed(
    op: &'static str,
    shape: &Shape,
) -> Result<(Shape, (usize, usize, usize))> {
    let r = shape.rank();
    if r < 2 {
        return Err(Error::shape(
            op,
            format!("needs at least 2 dimensions, got {shape}"),
        ));
    }
    let (a, b) = (shape.dims()[r - 2], shape.dims()[r - 1]);
    let mut dims = shape.dims().to_vec();
    dims.swap(r - 2, r - 1);
    let batch = shape.numel() / (a * b).max(1);
    Ok((Shape::new(dims), (batch, a, b)))
}

/// One contiguous run of elements copied from input `input` at element `from` to the output at
/// element `to`.
struct Run {
    input: usize,
    from: usize,
    to: usize,
    len: usize,
}

/// Builds a tensor of `shape` from contiguous runs of `inputs` (all one dtype), copying bytes;
/// elements no run covers are zero. Slicing and joining move whole rows, so this is the fast
/// path for them (a per-element gather spends its time on index arithmetic).
fn copy_runs(op: &'static str, inputs: &[&Tensor], shape: Shape, runs: &[Run]) -> Result<Tensor> {
    let dtype = common_dtype(op, inputs)?;
    let size = dtype.size_in_bytes();
    let sources = inputs
        .iter()
        .map(|t| t.as_bytes())
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::from_bytes_with(shape, dtype, |out| {
        for r in runs {
            let src = &sources[r.input][r.from * size..(r.from + r.len) * size];
            out[r.to * size..(r.to + r.len) * size].copy_from_slice(src);
        }
    }))
}

/// Swaps the last two dimensions: `[..., a, b]` → `[..., b, a]`. It is its own backward.
pub fn transpose_last2_fwd(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "transpose_last2";
    let (y_shape, (items, a, b)) = transposed(OP, x.shape())?;
    // Moved as raw elements of the dtype's width: a transpose never looks at the values, and
    // plain loops beat the per-element index arithmetic of `gather` (TRM-MLP transposes twice
    // per block).
    // `as_bytes` and the output view storage allocated as the dtype itself, so both are aligned
    // for these casts.
    let bytes = x.as_bytes()?;
    Ok(Tensor::from_bytes_with(y_shape, x.dtype(), |out| {
        match x.dtype().size_in_bytes() {
            2 => transpose_items::<u16>(cast_slice(bytes), cast_slice_mut(out), items, a, b),
            4 => transpose_items::<u32>(cast_slice(bytes), cast_slice_mut(out), items, a, b),
            8 => transpose_items::<u64>(cast_slice(bytes), cast_slice_mut(out), items, a, b),
            n => unreachable!("no dtype is {n} bytes wide"),
        }
    }))
}

/// `items` row-major `[a, b]` matrices of `src`, each written transposed (`[b, a]`) to `out`.
fn transpose_items<T: Copy>(src: &[T], out: &mut [T], items: usize, a: usize, b: usize) {
    for (from, to) in src
        .chunks_exact(a * b)
        .zip(out.chunks_exact_mut(a * b))
        .take(items)
    {
        for i in 0..a {
            for j in 0..b {
                to[j * a + i] = from[i * b + j];
            }
        }
    }
}

/// Joins tensors along `axis`; every other dimension must agree.
pub fn concat_fwd(xs: &[&Tensor], axis: isize) -> Result<Tensor> {
    const OP: &str = "concat";
    let first = xs
        .first()
        .ok_or_else(|| Error::arg(OP, "needs at least one tensor"))?;
    let ax = first.shape().axis(OP, axis)?;
    for x in &xs[1..] {
        let same_elsewhere = x.rank() == first.rank()
            && (0..first.rank()).all(|d| d == ax || x.dims()[d] == first.dims()[d]);
        if !same_elsewhere {
            return Err(Error::shape(
                OP,
                format!(
                    "{} and {} differ outside axis {axis}",
                    first.shape(),
                    x.shape()
                ),
            ));
        }
    }
    let (outer, _, inner) = first.shape().around(OP, axis)?;
    let sizes: Vec<usize> = xs.iter().map(|x| x.dims()[ax]).collect();
    // offsets[t] = where input t starts along the axis; offsets[len] = the total.
    let offsets: Vec<usize> = std::iter::once(0)
        .chain(sizes.iter().scan(0, |acc, s| {
            *acc += s;
            Some(*acc)
        }))
        .collect();
    let total = offsets[sizes.len()];
    let mut dims = first.dims().to_vec();
    dims[ax] = total;
    let mut runs = Vec::with_capacity(outer * xs.len());
    for o in 0..outer {
        for (t, &n) in sizes.iter().enumerate() {
            runs.push(Run {
                input: t,
                from: o * n * inner,
                to: (o * total + offsets[t]) * inner,
                len: n * inner,
            });
        }
    }
    copy_runs(OP, xs, dims.into(), &runs)
}

/// Checks that `start..start + len` lies inside `axis` of `shape`; returns (outer, axis, inner).
/// The CUDA launchers in `kernels::layout` validate with this too.
pub(crate) fn narrow_range(
    op: &'static str,
    shape: &Shape,
    axis: isize,
    start: usize,
    len: usize,
) -> Result<(usize, usize, usize)> {
    let (outer, n, inner) = shape.around(op, axis)?;
    match start.checked_add(len) {
        Some(end) if end <= n => Ok((outer, n, inner)),
        _ => Err(Error::arg(
            op,
            format!("range {start}..{start}+{len} exceeds axis {axis} of {shape}"),
        )),
    }
}

/// The slice `start..start + len` of `axis`.
pub fn narrow_fwd(x: &Tensor, axis: isize, start: usize, len: usize) -> Result<Tensor> {
    const OP: &str = "narrow";
    let (outer, n, inner) = narrow_range(OP, x.shape(), axis, start, len)?;
    let mut dims = x.dims().to_vec();
    dims[x.shape().axis(OP, axis)?] = len;
    let runs: Vec<Run> = (0..outer)
        .map(|o| Run {
            input: 0,
            from: (o * n + start) * inner,
            to: o * len * inner,
            len: len * inner,
        })
        .collect();
    copy_runs(OP, &[x], dims.into(), &runs)
}

/// Backward of `narrow_fwd`: `dy` placed at `start` along `axis` of a zero tensor of `x_shape`.
pub fn narrow_bwd(dy: &Tensor, x_shape: &Shape, axis: isize, start: usize) -> Result<Tensor> {
    const OP: &str = "narrow backward";
    let ax = x_shape.axis(OP, axis)?;
    let len = dy.dims().get(ax).copied().unwrap_or(0);
    let (outer, n, inner) = narrow_range(OP, x_shape, axis, start, len)?;
    let mut expected = x_shape.dims().to_vec();
    expected[ax] = len;
    dy.shape().expect_eq(OP, &expected.into())?;
    let runs: Vec<Run> = (0..outer)
        .map(|o| Run {
            input: 0,
            from: o * len * inner,
            to: (o * n + start) * inner,
            len: len * inner,
        })
        .collect();
    copy_runs(OP, &[dy], x_shape.clone(), &runs)
}

/// The (outer, n, inner) view of `shape` around `axis`, which must not be empty, and the shape
/// without `axis`. The CUDA launchers in `kernels::reduce` validate with this too.
pub(crate) fn argmax_dims(
    op: &'static str,
    shape: &Shape,
    axis: isize,
) -> Result<(usize, usize, usize, Shape)> {
    let (outer, n, inner) = shape.around(op, axis)?;
    if n == 0 {
        return Err(Error::arg(op, format!("axis {axis} of {shape} is empty")));
    }
    let mut dims = shape.dims().to_vec();
    dims.remove(shape.axis(op, axis)?);
    Ok((outer, n, inner, Shape::new(dims)))
}

/// The index of the largest element along `axis` (removed from the shape), as i32. Ties go to
/// the first index, and NaN counts as the largest value, as in PyTorch.
pub fn argmax_fwd(x: &Tensor, axis: isize) -> Result<Tensor> {
    const OP: &str = "argmax";
    let (outer, n, inner, y_shape) = argmax_dims(OP, x.shape(), axis)?;
    let indices = with_real!(x, OP, |v| collect_with(outer * inner, |e| {
        let (o, i) = (e / inner, e % inner);
        let at = |k: usize| v[(o * n + k) * inner + i];
        let mut best = 0;
        for k in 1..n {
            let (cand, top) = (at(k), at(best));
            if cand > top || (cand.is_nan() && !top.is_nan()) {
                best = k;
            }
        }
        best as i32
    }));
    Tensor::from_vec(indices, y_shape)
}
