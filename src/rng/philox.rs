//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
//! generator cuRAND and JAX use. It is a pure function of (counter, key), so any element of a
//! stream can be drawn independently: the GPU kernels compute exactly these integers.
//!
//! Stream layout, shared with the kernels (`kernels/` will include the same definition):
//! - key = (seed low 32 bits, seed high 32 bits);
//! - counter = (block low, block high, step low, step high), where `step` is the training step or
//!   any other stream selector and `block = element_index / 4`;
//! - element `i` takes lane `i % 4` of its block's four 32-bit outputs.
//!
//! Uniforms use the top 24 bits: `u = ((x >> 8) + 0.5) · 2⁻²⁴`, exact in f32 and never 0 or 1.
//! Normals use Box-Muller on lane pairs (0,1) and (2,3): the even lane takes `r·cos θ`, the odd
//! lane `r·sin θ`, with `r = sqrt(-2 ln u_even)` and `θ = 2π u_odd`, computed in f32 like the GPU.

use rayon::prelude::*;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The raw generator: ten rounds of Philox4x32 on `counter` under `key`.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The four 32-bit outputs of block `block` of the stream (seed, step).
#[inline]
pub fn block(seed: u64, step: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [
            block as u32,
            (block >> 32) as u32,
            step as u32,
            (step >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// A 32-bit integer to a uniform in (0, 1), exactly as the kernels do it.
#[inline]
pub fn to_uniform(x: u32) -> f32 {
    ((x >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// Box-Muller on one pair of 32-bit outputs, returning (r·cos θ, r·sin θ).
#[inline]
pub fn box_muller(a: u32, b: u32) -> (f32, f32) {
    let r = (-2.0 * to_uniform(a).ln()).sqrt();
    let theta = std::f32::consts::TAU * to_uniform(b);
    (r * theta.cos(), r * theta.sin())
}

/// Element `i` of the uniform stream (seed, step).
pub fn uniform(seed: u64, step: u64, i: u64) -> f32 {
    to_uniform(block(seed, step, i / 4)[(i % 4) as usize])
}

/// Element `i` of the standard normal stream (seed, step).
pub fn normal(seed: u64, step: u64, i: u64) -> f32 {
    let x = block(seed, step, i / 4);
    let lane = (i % 4) as usize;
    let pair = lane & !1;
    let (c, s) = box_muller(x[pair], x[pair + 1]);
    if lane % 2 == 0 {
        c
    } else {
        s
    }
}

/// Fills `out` with elements `offset..offset + out.len()` of the standard normal stream, one
/// Philox call per four elements, in parallel for large buffers.
pub fn fill_normal(seed: u64, step: u64, offset: u64, out: &mut [f32]) {
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let start = offset + (ci * CHUNK) as u64;
            let mut cached = (u64::MAX, [0f32; 4]);
            for (j, o) in chunk.iter_mut().enumerate() {
                let i = start + j as u64;
                if cached.0 != i / 4 {
                    let x = block(seed, step, i / 4);
                    let (a, b) = box_muller(x[0], x[1]);
                    let (c, d) = box_muller(x[2], x[3]);
                    cached = (i / 4, [a, b, c, d]);
                }
                *o = cached.1[(i % 4) as usize];
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from the Random123 distribution (`kat_vectors`, philox4x32 with 10
    /// rounds): an independent implementation's outputs.
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn fill_matches_elementwise_draws_at_any_offset() {
        let mut buf = vec![f32::NAN; 37];
        fill_normal(7, 3, 5, &mut buf);
        for (j, v) in buf.iter().enumerate() {
            assert_eq!(v.to_bits(), normal(7, 3, 5 + j as u64).to_bits());
        }
    }

    #[test]
    fn normal_stream_has_unit_moments_and_streams_differ() {
        let n = 200_000;
        let mut a = vec![0f32; n];
        fill_normal(1, 0, 0, &mut a);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        // A different step or seed is a different stream.
        assert_ne!(normal(1, 0, 0), normal(1, 1, 0));
        assert_ne!(normal(1, 0, 0), normal(2, 0, 0));
        let u: Vec<f32> = (0..1000).map(|i| uniform(3, 0, i)).collect();
        assert!(u.iter().all(|&x| x > 0.0 && x < 1.0));
    }
}
