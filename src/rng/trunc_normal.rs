//! The official truncated-normal initialiser (HRM `models/common.py::trunc_normal_init_`), a JAX
//! port: draw uniform in (erf(l/√2), erf(u/√2)), apply erfinv, scale by √2·comp_std and clip to
//! [l·comp_std, u·comp_std]. `comp_std` is chosen so the realised std equals the requested one,
//! which PyTorch's own `trunc_normal_` does not do.

use crate::error::{Error, Result};
use crate::rng::philox;
use std::f64::consts::{PI, SQRT_2};

/// The Philox step that selects the initialiser's stream, apart from `Tensor::randn`'s step 0.
const STREAM: u64 = 1;

/// The std of the underlying normal that makes the truncated one have std `std`.
pub fn compensated_std(std: f64, lower: f64, upper: f64) -> f64 {
    let z = (libm::erf(upper / SQRT_2) - libm::erf(lower / SQRT_2)) / 2.0;
    let c = (2.0 * PI).powf(-0.5);
    // The official names these the other way round; the bounds are symmetric so it does not matter.
    let pdf_l = c * (-0.5 * lower * lower).exp();
    let pdf_u = c * (-0.5 * upper * upper).exp();
    std / (1.0 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z).powi(2)).sqrt()
}

/// `n` draws with std `std`, truncated to [lower, upper] standard deviations of the underlying
/// normal. `std == 0` gives zeros, as the official.
pub fn sample(n: usize, std: f64, lower: f64, upper: f64, seed: u64) -> Result<Vec<f64>> {
    if !(std >= 0.0 && std.is_finite()) || lower >= upper {
        return Err(Error::arg(
            "trunc_normal",
            format!("need std >= 0 and lower < upper, got std {std}, bounds [{lower}, {upper}]"),
        ));
    }
    if std == 0.0 {
        return Ok(vec![0.0; n]);
    }
    let comp = compensated_std(std, lower, upper);
    let a = libm::erf(lower / SQRT_2);
    let b = libm::erf(upper / SQRT_2);
    Ok((0..n as u64)
        .map(|i| {
            let x = philox::block(seed, STREAM, i / 2);
            let pair = 2 * (i % 2) as usize;
            // 53 random bits from a lane pair, for a uniform in [0, 1) with full f64 resolution.
            let bits = ((x[pair] as u64) << 21) ^ (x[pair + 1] as u64 >> 11);
            let u = bits as f64 / (1u64 << 53) as f64;
            let v = erfinv(a + (b - a) * u) * SQRT_2 * comp;
            v.clamp(lower * comp, upper * comp)
        })
        .collect())
}

/// Inverse error function on (-1, 1): Giles' approximation ("Approximating the erfinv function",
/// GPU Gems 2012) refined by two Newton steps on `libm::erf`, which brings it to f64 precision.
pub fn erfinv(y: f64) -> f64 {
    if y <= -1.0 {
        return f64::NEG_INFINITY;
    }
    if y >= 1.0 {
        return f64::INFINITY;
    }
    let w = -((1.0 - y) * (1.0 + y)).ln();
    let mut x = if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p * y
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p * y
    };
    let two_over_sqrt_pi = 2.0 / PI.sqrt();
    for _ in 0..2 {
        let err = libm::erf(x) - y;
        x -= err / (two_over_sqrt_pi * (-x * x).exp());
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfinv_inverts_erf() {
        for i in 1..200 {
            let y = -0.995 + 1.99 * i as f64 / 200.0;
            assert!((libm::erf(erfinv(y)) - y).abs() < 1e-14, "y {y}");
        }
    }

    #[test]
    fn realised_std_equals_requested_and_values_are_clipped() {
        let std = 0.02;
        let v = sample(400_000, std, -2.0, 2.0, 11).unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((var.sqrt() / std - 1.0).abs() < 5e-3, "std {}", var.sqrt());
        let bound = 2.0 * compensated_std(std, -2.0, 2.0);
        assert!(v.iter().all(|x| x.abs() <= bound));
        // The compensation is real: the underlying normal is wider than requested (≈1.1368×).
        assert!((compensated_std(1.0, -2.0, 2.0) - 1.1368).abs() < 1e-3);
    }

    #[test]
    fn zero_std_gives_zeros_and_bad_arguments_error() {
        assert!(sample(5, 0.0, -2.0, 2.0, 0)
            .unwrap()
            .iter()
            .all(|&x| x == 0.0));
        assert!(sample(5, -1.0, -2.0, 2.0, 0).is_err());
        assert!(sample(5, 1.0, 2.0, -2.0, 0).is_err());
    }
}
