//! Normalisation over the last dimension: RMSNorm without a learned scale (HRM, TRM), affine
//! LayerNorm (Sotaku, LDT), and the fused post-norm residual `norm(h + r)`.
//!
//! Both kinds share one row kernel: `x̂ = (x − mean)·rstd`, `y = x̂·w + b`, where RMSNorm has
//! `mean = 0`, `rstd = 1/√(mean(x²) + eps)` and no `w`, `b`, and LayerNorm has the biased variance
//! `rstd = 1/√(mean((x − mean)²) + eps)`. Row statistics accumulate in f64 whatever the compute
//! type (the official code upcasts to fp32; this is at least as accurate).
//!
//! The forward returns, besides `y`, the per-row statistics `[rows, 2] = (mean, rstd)` in the
//! compute type (f32 for f32 and bf16 storage, f64 for f64), the layout the kernels save too. The
//! backward takes them with the normalised input:
//!
//! - `ĝ = g·w` (or `g` for RMSNorm);
//! - `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, without the `mean(ĝ)` term for RMSNorm;
//! - `dw = Σ_rows g·x̂`, `db = Σ_rows g`.

use crate::device::cpu::{collect_with, for_each_row, wide};
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{with_real, with_real2, with_real3};

/// The eps of HRM's and TRM's `rms_norm` and of `nn.LayerNorm`'s default.
pub const DEFAULT_EPS: f64 = 1e-5;

/// Which normalisation, with its parameters. `W` is how the LayerNorm weight and bias are held:
/// `&Tensor` on the device, `&Var` on the tape, `Tensor` when a backward closure keeps them.
#[derive(Clone, Copy, Debug)]
pub enum Norm<W> {
    /// `x·rsqrt(mean(x²) + eps)`, no learned scale.
    Rms { eps: f64 },
    /// `(x − mean)·rsqrt(var + eps)·weight + bias`, weight and bias of shape `[D]`.
    Layer { weight: W, bias: W, eps: f64 },
}

impl<W> Norm<W> {
    pub fn rms(eps: f64) -> Self {
        Norm::Rms { eps }
    }
    pub fn layer(weight: W, bias: W, eps: f64) -> Self {
        Norm::Layer { weight, bias, eps }
    }
    pub fn eps(&self) -> f64 {
        match self {
            Norm::Rms { eps } | Norm::Layer { eps, .. } => *eps,
        }
    }
    /// The same kind with its weight and bias mapped by `f`.
    pub fn map<U>(self, mut f: impl FnMut(W) -> U) -> Norm<U> {
        match self {
            Norm::Rms { eps } => Norm::Rms { eps },
            Norm::Layer { weight, bias, eps } => Norm::Layer {
                weight: f(weight),
                bias: f(bias),
                eps,
            },
        }
    }
    /// Borrows the weight and bias.
    pub fn as_ref(&self) -> Norm<&W> {
        match self {
            Norm::Rms { eps } => Norm::Rms { eps: *eps },
            Norm::Layer { weight, bias, eps } => Norm::Layer {
                weight,
                bias,
                eps: *eps,
            },
        }
    }
    /// The op name used in errors and on the tape.
    pub fn name(&self) -> &'static str {
        match self {
            Norm::Rms { .. } => "rms_norm",
            Norm::Layer { .. } => "layer_norm",
        }
    }
}

/// Gradients of a normalisation: `dx`, and `(dweight, dbias)` for LayerNorm.
pub struct NormGrads {
    pub dx: Tensor,
    pub affine: Option<(Tensor, Tensor)>,
}

/// The checked, f64 form of a `Norm<&Tensor>` that the row kernels read.
struct RowParams {
    eps: f64,
    centered: bool,
    /// (weight, bias) as f64, whatever their storage dtype.
    affine: Option<(Vec<f64>, Vec<f64>)>,
}

impl RowParams {
    /// Validates eps and the weight and bias shapes against a last dimension of `cols`.
    fn new(norm: &Norm<&Tensor>, cols: usize) -> Result<RowParams> {
        let op = norm.name();
        let eps = norm.eps();
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::arg(
                op,
                format!("eps must be positive and finite, got {eps}"),
            ));
        }
        let affine = match norm {
            Norm::Rms { .. } => None,
            Norm::Layer { weight, bias, .. } => {
                let expected = Shape::new([cols]);
                weight.shape().expect_eq(op, &expected)?;
                bias.shape().expect_eq(op, &expected)?;
                Some((weight.to_vec_f64()?, bias.to_vec_f64()?))
            }
        };
        Ok(RowParams {
            eps,
            centered: matches!(norm, Norm::Layer { .. }),
            affine,
        })
    }

    /// (mean, rstd) of one row, accumulated in f64.
    fn stats<T: Real>(&self, row: &[T]) -> (f64, f64) {
        let n = row.len().max(1) as f64;
        let mean = if self.centered {
            row.iter().map(|x| x.f64()).sum::<f64>() / n
        } else {
            0.0
        };
        let var = row.iter().map(|x| (x.f64() - mean).powi(2)).sum::<f64>() / n;
        (mean, 1.0 / (var + self.eps).sqrt())
    }
}

/// Normalises each row of `x` (a slice of the compute type with rows of `cols`), returning `y` and
/// the `[rows, 2]` statistics.
fn forward_rows<T: Real>(x: &[T], cols: usize, params: &RowParams) -> (Vec<T>, Vec<T>) {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    let stats: Vec<(f64, f64)> = collect_with(rows, |r| params.stats(&x[r * cols..(r + 1) * cols]));
    let mut y = vec![T::default(); x.len()];
    for_each_row(&mut y, cols, |r, out| {
        let (mean, rstd) = stats[r];
        let row = &x[r * cols..(r + 1) * cols];
        wide(|| {
            for (j, (o, &xj)) in out.iter_mut().zip(row).enumerate() {
                let xhat = (xj.f64() - mean) * rstd;
                *o = T::of(match &params.affine {
                    Some((w, b)) => xhat * w[j] + b[j],
                    None => xhat,
                });
            }
        })
    });
    let flat = stats
        .iter()
        .flat_map(|&(m, s)| [T::of(m), T::of(s)])
        .collect();
    (y, flat)
}

/// Output of `norm_fwd`: `y` in the input's dtype and the `[rows, 2]` (mean, rstd) statistics in
/// the compute type.
pub struct NormOutput {
    pub y: Tensor,
    pub stats: Tensor,
}

/// `norm(x)` over the last dimension.
pub fn norm_fwd(x: &Tensor, norm: &Norm<&Tensor>) -> Result<NormOutput> {
    let (rows, cols) = x.shape().rows_cols(norm.name())?;
    let params = RowParams::new(norm, cols)?;
    with_real!(x, norm.name(), |v| {
        let (y, stats) = forward_rows(v, cols, &params);
        Ok(NormOutput {
            y: Tensor::from_real(y, x.shape().clone(), x.dtype()),
            stats: Tensor::from_real(stats, [rows, 2], T::DTYPE),
        })
    })
}

/// Output of `residual_norm_fwd`: `norm_fwd`'s, plus the sum `h + r` that the backward needs, in
/// the compute type (so bf16 inputs are not rounded before normalising).
pub struct ResidualNormOutput {
    pub y: Tensor,
    pub sum: Tensor,
    pub stats: Tensor,
}

/// The post-norm residual `norm(h + r)` in one pass: the sum is formed in the compute type and
/// normalised without a round trip through the storage dtype.
pub fn residual_norm_fwd(
    h: &Tensor,
    r: &Tensor,
    norm: &Norm<&Tensor>,
) -> Result<ResidualNormOutput> {
    let op = "residual_norm";
    h.shape().expect_eq(op, r.shape())?;
    let (rows, cols) = h.shape().rows_cols(op)?;
    let params = RowParams::new(norm, cols)?;
    with_real2!(h, r, op, |a, b| {
        let sum: Vec<T> = collect_with(a.len(), |i| a[i] + b[i]);
        let (y, stats) = forward_rows(&sum, cols, &params);
        Ok(ResidualNormOutput {
            y: Tensor::from_real(y, h.shape().clone(), h.dtype()),
            sum: Tensor::from_real(sum, h.shape().clone(), T::DTYPE),
            stats: Tensor::from_real(stats, [rows, 2], T::DTYPE),
        })
    })
}

/// Backward of `norm_fwd` (and of `residual_norm_fwd`, whose `h` and `r` both get `dx`).
///
/// `x` is the normalised input (`sum` for the residual form), `stats` the forward's statistics;
/// `dx` comes back in `dy`'s dtype, `dweight` and `dbias` in the weight's and bias's dtypes.
pub fn norm_bwd(
    dy: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    norm: &Norm<&Tensor>,
) -> Result<NormGrads> {
    let op = norm.name();
    dy.shape().expect_eq(op, x.shape())?;
    let (rows, cols) = x.shape().rows_cols(op)?;
    stats.shape().expect_eq(op, &Shape::new([rows, 2]))?;
    let params = RowParams::new(norm, cols)?;
    // Widen everything to the statistics' compute type (a no-op unless storage is bf16).
    let compute = stats.dtype();
    let (dy_c, x_c) = (dy.to_dtype(compute)?, x.to_dtype(compute)?);
    let (dx, affine) = with_real3!(&dy_c, &x_c, stats, op, |g, xs, st| {
        let (dx, affine) = backward_rows(g, xs, st, cols, &params);
        (Tensor::from_real(dx, x.shape().clone(), dy.dtype()), affine)
    });
    let affine = match (norm, affine) {
        (Norm::Layer { weight, bias, .. }, Some((dw, db))) => Some((
            Tensor::from_real(dw, [cols], weight.dtype()),
            Tensor::from_real(db, [cols], bias.dtype()),
        )),
        _ => None,
    };
    Ok(NormGrads { dx, affine })
}

/// `(dweight, dbias)` accumulated in f64.
type AffineGrads = (Vec<f64>, Vec<f64>);

/// The row kernel of `norm_bwd`: `dx` in `T`, and `(dw, db)` in f64 for LayerNorm.
fn backward_rows<T: Real>(
    g: &[T],
    x: &[T],
    stats: &[T],
    cols: usize,
    params: &RowParams,
) -> (Vec<T>, Option<AffineGrads>) {
    let row_stats = |r: usize| (stats[2 * r].f64(), stats[2 * r + 1].f64());
    let mut dx = vec![T::default(); x.len()];
    for_each_row(&mut dx, cols, |r, out| {
        wide(|| {
            let (mean, rstd) = row_stats(r);
            let (gr, xr) = (&g[r * cols..(r + 1) * cols], &x[r * cols..(r + 1) * cols]);
            let xhat = |j: usize| (xr[j].f64() - mean) * rstd;
            let ghat = |j: usize| match &params.affine {
                Some((w, _)) => gr[j].f64() * w[j],
                None => gr[j].f64(),
            };
            let n = cols as f64;
            let mean_ghat_xhat = (0..cols).map(|j| ghat(j) * xhat(j)).sum::<f64>() / n;
            let mean_ghat = if params.centered {
                (0..cols).map(ghat).sum::<f64>() / n
            } else {
                0.0
            };
            for (j, o) in out.iter_mut().enumerate() {
                *o = T::of(rstd * (ghat(j) - mean_ghat - xhat(j) * mean_ghat_xhat));
            }
        })
    });
    let affine = params.affine.as_ref().map(|_| {
        let mut dw = vec![0.0; cols];
        let mut db = vec![0.0; cols];
        for r in 0..g.len().checked_div(cols).unwrap_or(0) {
            let (mean, rstd) = row_stats(r);
            for j in 0..cols {
                let gj = g[r * cols + j].f64();
                dw[j] += gj * (x[r * cols + j].f64() - mean) * rstd;
                db[j] += gj;
            }
        }
        (dw, db)
    });
    (dx, affine)
}
