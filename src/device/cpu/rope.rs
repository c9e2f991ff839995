//! Rotary position embeddings on `[B, S, H, hd]` tensors: each position rotates `hd/2` pairs of a
//! head's coordinates, `(a, b) → (a·cos φ − b·sin φ, a·sin φ + b·cos φ)`. Two conventions:
//!
//! - **1D rotate-half** (HRM, TRM; NeoX): pair `j` is `(x[j], x[j + hd/2])` and rotates by
//!   `φ = pos·inv_freq[j]`, `inv_freq[j] = θ^(−2j/hd)`. This is exactly the official
//!   `x·cos + rotate_half(x)·sin` with `rotate_half(x) = cat(−x2, x1)` and `emb = cat(freqs,
//!   freqs)`. Positions are `0..S−1` with the puzzle-embedding prefix first.
//! - **2D interleaved** (Sotaku θ = 10, LDT maze θ = 10000): pair `i` is `(x[2i], x[2i+1])`; pairs
//!   `0..hd/4` rotate by `row·f_k`, pairs `hd/4..hd/2` by `col·f_k`, with `k = i mod hd/4` and
//!   `f_k = θ^(−2k/(hd/2))`.
//!
//! A `RopeTable` holds cos and sin of every (position, pair) angle, computed in f64 (the official
//! caches fp32 products `pos·inv_freq`, so ours is the more accurate of the two). The rotation
//! itself runs in the compute type, as the official upcasts q and k to fp32. The backward is the
//! transposed rotation, `φ → −φ`.

use crate::device::cpu::{for_each_row, wide};
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::with_real;
use std::sync::Arc;

/// Which coordinates of a head form rotation pair `j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairLayout {
    /// `(x[j], x[j + hd/2])`: NeoX rotate-half, used by the 1D tables.
    RotateHalf,
    /// `(x[2j], x[2j + 1])`: used by the 2D tables.
    Interleaved,
}

/// Precomputed cos and sin for every (position, pair), plus the pair layout. Cloning is cheap (the
/// tables are shared), so backward closures keep a clone.
#[derive(Clone, Debug)]
pub struct RopeTable {
    layout: PairLayout,
    head_dim: usize,
    positions: usize,
    /// `cos[p·hd/2 + j]` for position `p`, pair `j`; the same for `sin`.
    cos: Arc<[f64]>,
    sin: Arc<[f64]>,
    /// A hash of all of the above, computed once: the key under which a kernel compute keeps
    /// its uploaded copy.
    fingerprint: u64,
}

/// FNV-1a over the layout, sizes and the bits of every value of a table.
fn fingerprint_of(layout: PairLayout, head_dim: usize, positions: usize, values: &[&[f64]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(matches!(layout, PairLayout::RotateHalf) as u64);
    eat(head_dim as u64);
    eat(positions as u64);
    for v in values.iter().flat_map(|v| v.iter()) {
        eat(v.to_bits());
    }
    h
}

fn check_theta(op: &'static str, theta: f64) -> Result<()> {
    if !(theta > 0.0 && theta.is_finite()) {
        return Err(Error::arg(
            op,
            format!("theta must be positive and finite, got {theta}"),
        ));
    }
    Ok(())
}

impl RopeTable {
    /// The 1D rotate-half table for positions `0..positions` (pass prefix + sequence length).
    /// `head_dim` must be even and positive.
    pub fn one_d(positions: usize, head_dim: usize, theta: f64) -> Result<RopeTable> {
        let op = "rope_1d";
        check_theta(op, theta)?;
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(Error::arg(
                op,
                format!("head_dim must be even and positive, got {head_dim}"),
            ));
        }
        let inv_freq: Vec<f64> = (0..head_dim / 2)
            .map(|j| theta.powf(-((2 * j) as f64) / head_dim as f64))
            .collect();
        Ok(Self::from_angles(
            PairLayout::RotateHalf,
            head_dim,
            positions,
            |p, j| p as f64 * inv_freq[j],
        ))
    }

    /// The 2D interleaved table: position `p` of the sequence sits at grid cell
    /// `(rows[p], cols[p])`. `head_dim` must be a positive multiple of 4.
    pub fn two_d(rows: &[usize], cols: &[usize], head_dim: usize, theta: f64) -> Result<RopeTable> {
        let op = "rope_2d";
        check_theta(op, theta)?;
        if head_dim == 0 || head_dim % 4 != 0 {
            return Err(Error::arg(
                op,
                format!("head_dim must be a positive multiple of 4, got {head_dim}"),
            ));
        }
        if rows.len() != cols.len() {
            return Err(Error::shape(
                op,
                format!(
                    "{} row positions vs {} column positions",
                    rows.len(),
                    cols.len()
                ),
            ));
        }
        let quarter = head_dim / 4;
        let freq: Vec<f64> = (0..quarter)
            .map(|k| theta.powf(-((2 * k) as f64) / (head_dim / 2) as f64))
            .collect();
        Ok(Self::from_angles(
            PairLayout::Interleaved,
            head_dim,
            rows.len(),
            |p, i| {
                let coordinate = if i < quarter { rows[p] } else { cols[p] };
                coordinate as f64 * freq[i % quarter]
            },
        ))
    }

    fn from_angles(
        layout: PairLayout,
        head_dim: usize,
        positions: usize,
        angle: impl Fn(usize, usize) -> f64,
    ) -> RopeTable {
        let half = head_dim / 2;
        let angles: Vec<f64> = (0..positions * half)
            .map(|e| angle(e / half, e % half))
            .collect();
        let cos: Arc<[f64]> = angles.iter().map(|a| a.cos()).collect();
        let sin: Arc<[f64]> = angles.iter().map(|a| a.sin()).collect();
        RopeTable {
            fingerprint: fingerprint_of(layout, head_dim, positions, &[&cos, &sin]),
            layout,
            head_dim,
            positions,
            cos,
            sin,
        }
    }

    /// A hash of the table's layout, sizes and values (see the field).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn layout(&self) -> PairLayout {
        self.layout
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    /// How many positions the table covers; a tensor's S may be at most this.
    pub fn positions(&self) -> usize {
        self.positions
    }
    /// (cos, sin) of pair `j` at position `p`.
    pub fn cos_sin(&self, p: usize, j: usize) -> (f64, f64) {
        let e = p * self.head_dim / 2 + j;
        (self.cos[e], self.sin[e])
    }

    /// Coordinates of pair `j` within a head.
    fn pair(&self, j: usize) -> (usize, usize) {
        match self.layout {
            PairLayout::RotateHalf => (j, j + self.head_dim / 2),
            PairLayout::Interleaved => (2 * j, 2 * j + 1),
        }
    }
}

/// Rotates every head of `x` `[B, S, H, hd]` by the table's angles, or by their negatives when
/// `transpose` (the backward).
fn rotate(op: &'static str, x: &Tensor, table: &RopeTable, transpose: bool) -> Result<Tensor> {
    x.shape().expect_rank(op, 4)?;
    let &[_, seq, heads, head_dim] = x.dims() else {
        unreachable!("rank checked above")
    };
    if head_dim != table.head_dim {
        return Err(Error::shape(
            op,
            format!("head_dim {head_dim} vs the table's {}", table.head_dim),
        ));
    }
    if seq > table.positions {
        return Err(Error::shape(
            op,
            format!(
                "sequence length {seq} exceeds the table's {} positions",
                table.positions
            ),
        ));
    }
    let sign = if transpose { -1.0 } else { 1.0 };
    with_real!(x, op, |v| {
        let mut out = vec![T::default(); v.len()];
        for_each_row(&mut out, head_dim, |row, o| {
            let position = (row / heads) % seq;
            let xs = &v[row * head_dim..(row + 1) * head_dim];
            wide(|| {
                for j in 0..head_dim / 2 {
                    let (cos, sin) = table.cos_sin(position, j);
                    let (cos, sin) = (T::of(cos), T::of(sign * sin));
                    let (ia, ib) = table.pair(j);
                    let (a, b) = (xs[ia], xs[ib]);
                    o[ia] = a * cos - b * sin;
                    o[ib] = a * sin + b * cos;
                }
            })
        });
        Ok(Tensor::from_real(out, x.shape().clone(), x.dtype()))
    })
}

/// RoPE forward on `x` `[B, S, H, hd]`: position `s` uses row `s` of the table.
pub fn rope_fwd(x: &Tensor, table: &RopeTable) -> Result<Tensor> {
    rotate("rope", x, table, false)
}

/// RoPE backward: the transposed (inverse) rotation of the output gradient.
pub fn rope_bwd(dy: &Tensor, table: &RopeTable) -> Result<Tensor> {
    rotate("rope", dy, table, true)
}
