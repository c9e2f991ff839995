//! `exp` without a libm call, so that loops over it vectorise.
//!
//! glibc's `expf` is a function call per element: in SwiGLU's SiLU and the attention softmax it
//! was 8-10% of a CPU training step. This one is branch-free (selects, no calls), so the compiler
//! turns a loop of it into SIMD code.
//!
//! Method (Cephes' `expf`): `eˣ = 2ⁿ·eʳ` with `n = round(x·log₂e)` and
//! `r = x − n·ln2` (ln2 split in two so `r` is exact), `eʳ` by a degree-6 polynomial on
//! `|r| ≤ ln2/2`, and `2ⁿ` built in the exponent bits. Error ≤ 2 ulp over the normal range
//! (tested against f64 `exp`); `+∞` above 88.72, `0` below −87.33 (no subnormals), NaN stays NaN.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n·LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this `eˣ` overflows f32.
const OVERFLOW: f32 = 88.722_84;
/// Below this `eˣ` is subnormal; returned as 0.
const UNDERFLOW: f32 = -87.336_55;
/// Adding then subtracting 1.5·2²³ rounds an f32 of magnitude < 2²² to the nearest integer
/// without a rounding instruction SSE2 lacks.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `eˣ` in f32, within 2 ulp of the exact value (see the module docs for the range).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let clamped = x.clamp(UNDERFLOW, OVERFLOW);
    let shifted = clamped * LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    // Minimax coefficients of Cephes' expf for eʳ − 1 − r on |r| ≤ ln2/2.
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let er = p * (r * r) + r + 1.0;
    // n as an integer straight from `shifted`'s mantissa bits (a float-to-int cast would add
    // saturation checks); 2ⁿ from the exponent bits, in two halves because n reaches 128.
    let n = shifted.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let half = n >> 1;
    let scale_a = f32::from_bits(((half + 127) as u32) << 23);
    let scale_b = f32::from_bits(((n - half + 127) as u32) << 23);
    let y = er * scale_a * scale_b;
    // A NaN input is NaN here already (clamp keeps it); the range ends are selects.
    if x > OVERFLOW {
        f32::INFINITY
    } else if x < UNDERFLOW {
        0.0
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between an f32 and the exact value.
    fn ulps(got: f32, exact: f64) -> f64 {
        let rounded = exact as f32;
        let ulp = (f32::from_bits(rounded.to_bits() + 1) - rounded) as f64;
        (got as f64 - exact).abs() / ulp
    }

    #[test]
    fn within_two_ulp_over_the_normal_range() {
        let mut worst = 0.0f64;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = UNDERFLOW + (OVERFLOW - UNDERFLOW) * (i as f32 / steps as f32);
            let exact = (x as f64).exp();
            if exact < f32::MIN_POSITIVE as f64 || exact > f32::MAX as f64 {
                continue;
            }
            worst = worst.max(ulps(exp_f32(x), exact));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn small_arguments_and_exact_points() {
        for &x in &[
            0.0f32, -0.0, 1e-8, -1e-8, 1e-3, 0.5, -0.5, 1.0, -1.0, 10.0, -10.0,
        ] {
            assert!(ulps(exp_f32(x), (x as f64).exp()) <= 2.0, "x = {x}");
        }
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn range_ends_and_nan() {
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-88.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.7).is_finite() && exp_f32(88.7) > 3e38);
    }
}
