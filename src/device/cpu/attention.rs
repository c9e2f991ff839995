//! Multi-head scaled dot-product attention, non-causal and unmasked (HRM, TRM, Sotaku, LDT), with
//! optional dropout on the probabilities (Sotaku, LDT). Tensors are `[B, S, H, hd]`, as the
//! official `flash_attn_func` takes them.
//!
//! Per (batch, head), with `scale = 1/√hd` unless overridden:
//!
//! - `Sc = scale·Q·Kᵀ`, `P = softmax(Sc)` row-wise, `lse_i = log Σ_j exp(Sc_ij)`;
//! - `P̃ = P ⊙ M` with the dropout factor `M_ij ∈ {0, 1/(1−p)}`; `O = P̃·V`.
//!
//! The forward saves only the row log-sum-exp `[B, H, S]`, as a flash kernel does; the backward
//! recomputes `P = exp(Sc − lse)` and applies
//! `dV = P̃ᵀ·dO`, `dP = (dO·Vᵀ) ⊙ M`, `dSc = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale·dSc·K`,
//! `dK = scale·dScᵀ·Q`. (`rowsum(dP ⊙ P)` equals `rowsum(dO ⊙ O)`, which kernels may use instead.)
//! Exponentials are computed once per score in the compute type (`Real::vexp`, which vectorises
//! in f32) and the softmax sums accumulate in f64; the products are `Real::gemm` on strided views
//! of the `[B, S, H, hd]` storage, one (batch, head) per rayon task.
//!
//! # Dropout stream contract (shared with the GPU kernels)
//!
//! Element `(b, h, i, j)` of the `[B, H, S, S]` probabilities is kept iff
//! `philox::uniform(seed, step, ((b·H + h)·S + i)·S + j) >= (p as f32)`, compared in f32; kept
//! values are multiplied by `1/(1−p)` (computed in f64, then rounded to the compute type). The
//! mask is a pure function of `(seed, step)`, so the backward regenerates it rather than storing
//! it, and the same seed and step give the same mask on every backend.

use crate::device::cpu::PARALLEL_MIN_ELEMS;
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::rng::philox;
use crate::tensor::Tensor;
use crate::with_real3;
use rayon::prelude::*;

/// Dropout on the attention probabilities, keyed by a Philox stream (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDropout {
    /// The drop probability, in `[0, 1)`.
    pub p: f64,
    pub seed: u64,
    /// The stream selector: the training step, or anything that must give a fresh mask.
    pub step: u64,
}

/// Options of `attention`; the default is scale `1/√hd` and no dropout.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttentionOpts {
    /// The softmax scale; `None` means `1/√hd`.
    pub scale: Option<f64>,
    pub dropout: Option<AttentionDropout>,
}

impl AttentionOpts {
    pub fn with_scale(self, scale: f64) -> Self {
        AttentionOpts {
            scale: Some(scale),
            ..self
        }
    }
    pub fn with_dropout(self, p: f64, seed: u64, step: u64) -> Self {
        AttentionOpts {
            dropout: Some(AttentionDropout { p, seed, step }),
            ..self
        }
    }
}

/// Sizes of one attention call, and where each (batch, head) lives in `[B, S, H, hd]` storage.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
}

impl Geometry {
    /// Offset of head `bh = b·H + h`'s first element.
    fn head_offset(&self, bh: usize) -> usize {
        let (b, h) = (bh / self.heads, bh % self.heads);
        (b * self.seq * self.heads + h) * self.head_dim
    }
    /// Stride between consecutive tokens of one head.
    fn token_stride(&self) -> isize {
        (self.heads * self.head_dim) as isize
    }
    /// Heads per rayon task: all of them when the call is too small to be worth splitting.
    fn heads_per_task(&self) -> usize {
        let work = self.batch * self.heads * self.seq * self.seq * self.head_dim;
        if work < PARALLEL_MIN_ELEMS {
            usize::MAX
        } else {
            1
        }
    }
    /// Reorders per-head blocks `[B, H, S, hd]` into the `[B, S, H, hd]` layout.
    fn heads_to_tokens<T: Real>(&self, blocks: &[T]) -> Vec<T> {
        let (s, h, d) = (self.seq, self.heads, self.head_dim);
        // Row copies of d elements: the per-element index arithmetic cost more than the math.
        let mut out = vec![T::default(); blocks.len()];
        for (row, dst) in out.chunks_mut(d).enumerate() {
            let (b, i, head) = (row / (s * h), (row / h) % s, row % h);
            let src = ((b * h + head) * s + i) * d;
            dst.copy_from_slice(&blocks[src..src + d]);
        }
        out
    }
}

/// The validated options: the scale, and the dropout mask generator if any.
#[derive(Clone, Copy)]
struct Resolved {
    scale: f64,
    dropout: Option<AttentionDropout>,
}

impl Resolved {
    /// The dropout factor `M_ij` of element (i, j) of head `bh`: 0 or `1/(1−p)`, 1 without dropout.
    fn mask(&self, geometry: &Geometry, bh: usize, i: usize, j: usize) -> f64 {
        match self.dropout {
            None => 1.0,
            Some(d) => {
                let s = geometry.seq;
                let index = ((bh * s + i) * s + j) as u64;
                if philox::uniform(d.seed, d.step, index) >= d.p as f32 {
                    1.0 / (1.0 - d.p)
                } else {
                    0.0
                }
            }
        }
    }
}

fn validate(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOpts,
) -> Result<(Geometry, Resolved)> {
    let op = "attention";
    q.shape().expect_rank(op, 4)?;
    q.shape().expect_eq(op, k.shape())?;
    q.shape().expect_eq(op, v.shape())?;
    let &[batch, seq, heads, head_dim] = q.dims() else {
        unreachable!("rank checked above")
    };
    if head_dim == 0 {
        return Err(Error::arg(op, "head_dim must be positive"));
    }
    let scale = opts.scale.unwrap_or(1.0 / (head_dim as f64).sqrt());
    if !scale.is_finite() {
        return Err(Error::arg(op, format!("scale must be finite, got {scale}")));
    }
    if let Some(d) = opts.dropout {
        if !(0.0..1.0).contains(&d.p) {
            return Err(Error::arg(
                op,
                format!("dropout p must be in [0, 1), got {}", d.p),
            ));
        }
    }
    let geometry = Geometry {
        batch,
        seq,
        heads,
        head_dim,
    };
    Ok((
        geometry,
        Resolved {
            scale,
            dropout: opts.dropout,
        },
    ))
}

/// `out = scale·Q·Kᵀ` (`S × S`, row-major) for head `bh`.
fn scores<T: Real>(q: &[T], k: &[T], g: &Geometry, bh: usize, scale: f64, out: &mut [T]) {
    let (s, ld, offset) = (g.seq, g.token_stride(), g.head_offset(bh));
    // SAFETY: head `bh`'s rows lie at offset + i·ld + c for i < S, c < hd, all inside q and k
    // (which have the [B, S, H, hd] shape `g` describes); `out` holds S·S elements.
    unsafe {
        T::gemm(
            s,
            g.head_dim,
            s,
            T::of(scale),
            q.as_ptr().add(offset),
            ld,
            1,
            k.as_ptr().add(offset),
            1,
            ld,
            T::default(),
            out.as_mut_ptr(),
            s as isize,
            1,
            1,
        );
    }
}

/// `out (S × hd) = alpha·A·X_bh` where `A` is `S × S` (transposed when `transpose_a`) and `X_bh`
/// is head `bh` of a `[B, S, H, hd]` tensor.
#[allow(clippy::too_many_arguments)]
fn times_head<T: Real>(
    a: &[T],
    transpose_a: bool,
    x: &[T],
    g: &Geometry,
    bh: usize,
    alpha: f64,
    out: &mut [T],
) {
    let (s, ld) = (g.seq, g.token_stride());
    let (rsa, csa) = if transpose_a {
        (1, s as isize)
    } else {
        (s as isize, 1)
    };
    // SAFETY: `a` holds S·S elements, head `bh` of `x` is in bounds as in `scores`, and `out`
    // holds S·hd elements.
    unsafe {
        T::gemm(
            s,
            s,
            g.head_dim,
            T::of(alpha),
            a.as_ptr(),
            rsa,
            csa,
            x.as_ptr().add(g.head_offset(bh)),
            ld,
            1,
            T::default(),
            out.as_mut_ptr(),
            g.head_dim as isize,
            1,
            1,
        );
    }
}

/// Output of `attention_fwd`: `out` `[B, S, H, hd]` in the inputs' dtype, and the row log-sum-exp
/// `[B, H, S]` in the compute type.
pub struct AttentionOutput {
    pub out: Tensor,
    pub lse: Tensor,
}

/// Attention forward.
pub fn attention_fwd(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOpts,
) -> Result<AttentionOutput> {
    let (g, resolved) = validate(q, k, v, opts)?;
    let (s, hd, bh_count) = (g.seq, g.head_dim, g.batch * g.heads);
    with_real3!(q, k, v, "attention", |qs, ks, vs| {
        let mut blocks = vec![T::default(); bh_count * s * hd];
        let mut lse = vec![T::default(); bh_count * s];
        blocks
            .par_chunks_mut((s * hd).max(1))
            .zip(lse.par_chunks_mut(s.max(1)))
            .enumerate()
            .with_min_len(g.heads_per_task())
            .for_each(|(bh, (o, lse_rows))| {
                let mut probs = vec![T::default(); s * s];
                scores(qs, ks, &g, bh, resolved.scale, &mut probs);
                for (i, row) in probs.chunks_mut(s).enumerate() {
                    let max = row.iter().fold(T::of(f64::NEG_INFINITY), |m, &x| m.max(x));
                    row.iter_mut().for_each(|x| *x = (*x - max).vexp());
                    let sum: f64 = row.iter().map(|x| x.f64()).sum();
                    lse_rows[i] = T::of(max.f64() + sum.ln());
                    let inv_sum = T::of(1.0 / sum);
                    row.iter_mut().for_each(|x| *x *= inv_sum);
                    if resolved.dropout.is_some() {
                        for (j, x) in row.iter_mut().enumerate() {
                            *x = T::of(x.f64() * resolved.mask(&g, bh, i, j));
                        }
                    }
                }
                times_head(&probs, false, vs, &g, bh, 1.0, o);
            });
        Ok(AttentionOutput {
            out: Tensor::from_real(g.heads_to_tokens(&blocks), q.shape().clone(), q.dtype()),
            lse: Tensor::from_real(lse, [g.batch, g.heads, s], T::DTYPE),
        })
    })
}

/// Gradients of attention with respect to q, k and v, each `[B, S, H, hd]` in the inputs' dtype.
pub struct AttentionGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
}

/// Attention backward, from the output gradient `dout`, the inputs, the forward's `lse` and the
/// same `opts` (so the dropout mask is regenerated identically).
pub fn attention_bwd(
    dout: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    lse: &Tensor,
    opts: &AttentionOpts,
) -> Result<AttentionGrads> {
    let op = "attention";
    let (g, resolved) = validate(q, k, v, opts)?;
    dout.shape().expect_eq(op, q.shape())?;
    lse.shape()
        .expect_eq(op, &[g.batch, g.heads, g.seq].into())?;
    let (s, hd, bh_count) = (g.seq, g.head_dim, g.batch * g.heads);
    with_real3!(q, k, v, op, |qs, ks, vs| {
        let dos: Vec<T> = dout.to_vec_f64()?.into_iter().map(T::of).collect();
        let lse: Vec<T> = lse.to_vec_f64()?.into_iter().map(T::of).collect();
        let block = (s * hd).max(1);
        let mut dq = vec![T::default(); bh_count * s * hd];
        let mut dk = dq.clone();
        let mut dv = dq.clone();
        dq.par_chunks_mut(block)
            .zip(dk.par_chunks_mut(block))
            .zip(dv.par_chunks_mut(block))
            .enumerate()
            .with_min_len(g.heads_per_task())
            .for_each(|(bh, ((dq_h, dk_h), dv_h))| {
                // probs = P, mask = M (none without dropout), dropped = P̃ = P ⊙ M.
                let mask: Option<Vec<T>> = resolved.dropout.map(|_| {
                    (0..s * s)
                        .map(|e| T::of(resolved.mask(&g, bh, e / s, e % s)))
                        .collect()
                });
                let mut probs = vec![T::default(); s * s];
                scores(qs, ks, &g, bh, resolved.scale, &mut probs);
                for (row, &row_lse) in probs.chunks_mut(s).zip(&lse[bh * s..(bh + 1) * s]) {
                    row.iter_mut().for_each(|p| *p = (*p - row_lse).vexp());
                }
                let dropped = mask.as_ref().map(|m| {
                    probs
                        .iter()
                        .zip(m)
                        .map(|(&p, &m)| p * m)
                        .collect::<Vec<T>>()
                });
                times_head(
                    dropped.as_ref().unwrap_or(&probs),
                    true,
                    &dos,
                    &g,
                    bh,
                    1.0,
                    dv_h,
                );

                // d_scores = dP = (dO·Vᵀ) ⊙ M, then dSc = P ⊙ (dP − rowsum(dP ⊙ P)) in place.
                let mut d_scores = vec![T::default(); s * s];
                scores(&dos, vs, &g, bh, 1.0, &mut d_scores);
                if let Some(m) = &mask {
                    d_scores.iter_mut().zip(m).for_each(|(d, &m)| *d *= m);
                }
                for (row, p_row) in d_scores.chunks_mut(s).zip(probs.chunks(s)) {
                    let dot: f64 = row.iter().zip(p_row).map(|(d, p)| d.f64() * p.f64()).sum();
                    let dot = T::of(dot);
                    row.iter_mut()
                        .zip(p_row)
                        .for_each(|(d, &p)| *d = p * (*d - dot));
                }
                times_head(&d_scores, false, ks, &g, bh, resolved.scale, dq_h);
                times_head(&d_scores, true, qs, &g, bh, resolved.scale, dk_h);
            });
        let grad = |blocks: &[T]| {
            Tensor::from_real(g.heads_to_tokens(blocks), q.shape().clone(), dout.dtype())
        };
        Ok(AttentionGrads {
            dq: grad(&dq),
            dk: grad(&dk),
            dv: grad(&dv),
        })
    })
}
