//! Gaussian KL: gradient checks of the plain KL, balanced gradients against finite differences
//! of the plain KL scaled per input, values against the formula and a numerical integral, and
//! error cases.

use proptest::prelude::*;
use recur::testing::{check_close, rel_l2, GradCheck};
use recur::{DType, Tape, Tensor, Var};

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..4)
}

/// `[μq, σq, μp, σp]` with positive standard deviations `exp(N(0, 0.5²))`.
fn kl_inputs(dims: &[usize], seed: u64) -> Vec<Tensor> {
    (0..4u64)
        .map(|k| {
            let t = Tensor::randn(
                dims.to_vec(),
                if k % 2 == 0 { 1.0 } else { 0.5 },
                seed ^ k,
                DType::F64,
            )
            .unwrap();
            if k % 2 == 0 {
                t
            } else {
                let v: Vec<f64> = t.to_vec_f64().unwrap().iter().map(|x| x.exp()).collect();
                Tensor::from_vec(v, dims.to_vec()).unwrap()
            }
        })
        .collect()
}

fn plain(t: &Tape, v: &[Var]) -> recur::Result<Var> {
    t.gaussian_kl(&v[0], &v[1], &v[2], &v[3])
}

/// Central finite differences of `Σ_i w_i · KL_i` (the plain KL) with respect to input `k`.
fn numeric_grad(inputs: &[Tensor], weights: &[f64], k: usize) -> Vec<f64> {
    let objective = |xs: &[Tensor]| -> f64 {
        let t = Tape::new();
        let vars: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
        let y = plain(&t, &vars).unwrap().into_value().to_vec_f64().unwrap();
        y.iter().zip(weights).map(|(a, b)| a * b).sum()
    };
    let eps = 1e-6;
    let base = inputs[k].to_vec_f64().unwrap();
    (0..base.len())
        .map(|j| {
            let at = |d: f64| {
                let mut v = base.clone();
                v[j] += d;
                let mut xs = inputs.to_vec();
                xs[k] = Tensor::from_vec(v, inputs[k].shape().clone()).unwrap();
                objective(&xs)
            };
            (at(eps) - at(-eps)) / (2.0 * eps)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_gaussian_kl(dims in shape(), seed in any::<u64>()) {
        GradCheck::new().run(&kl_inputs(&dims, seed), plain).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_gaussian_kl_balanced_scales_q_and_p(dims in shape(), seed in any::<u64>(), alpha in 0.0f64..1.0) {
        let inputs = kl_inputs(&dims, seed);
        let tape = Tape::new();
        let leaves: Vec<Var> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let kl = tape.gaussian_kl_balanced(&leaves[0], &leaves[1], &leaves[2], &leaves[3], alpha).unwrap();
        let weights = Tensor::randn(kl.shape().clone(), 1.0, seed ^ 99, DType::F64).unwrap();
        let w = weights.to_vec_f64().unwrap();
        let loss = tape.sum_all(&tape.mul(&kl, &Var::constant(weights)).unwrap()).unwrap();
        let grads = tape.backward(&loss).unwrap();
        for (k, scale) in [1.0 - alpha, 1.0 - alpha, alpha, alpha].into_iter().enumerate() {
            let analytic = grads.get(&leaves[k]).unwrap().to_vec_f64().unwrap();
            let expect: Vec<f64> = numeric_grad(&inputs, &w, k).iter().map(|g| scale * g).collect();
            let e = rel_l2(&analytic, &expect);
            prop_assert!(e < 1e-6 || analytic.iter().zip(&expect).all(|(a, b)| (a - b).abs() < 1e-9),
                "input {k}: error {e}");
        }
    }
}

#[test]
fn kl_matches_the_formula_and_a_numerical_integral() {
    let (mq, sq, mp, sp) = (0.3, 0.8, -0.4, 1.7);
    let x = |v: f64| Var::constant(Tensor::from_vec(vec![v], [1]).unwrap());
    let t = Tape::new();
    let got = t
        .gaussian_kl(&x(mq), &x(sq), &x(mp), &x(sp))
        .unwrap()
        .value()
        .item()
        .unwrap();
    let formula = (sp / sq).ln() + (sq * sq + (mq - mp) * (mq - mp)) / (2.0 * sp * sp) - 0.5;
    assert!((got - formula).abs() < 1e-14);
    // ∫ q log(q/p) dx by the midpoint rule over ±12σq.
    let log_pdf = |z: f64, m: f64, s: f64| {
        -0.5 * ((z - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
    };
    let (lo, hi, n) = (mq - 12.0 * sq, mq + 12.0 * sq, 200_000);
    let h = (hi - lo) / n as f64;
    let integral: f64 = (0..n)
        .map(|i| {
            let z = lo + (i as f64 + 0.5) * h;
            let lq = log_pdf(z, mq, sq);
            lq.exp() * (lq - log_pdf(z, mp, sp)) * h
        })
        .sum();
    assert!((got - integral).abs() < 1e-8, "{got} vs {integral}");
}

#[test]
fn kl_of_identical_gaussians_is_zero_and_balanced_has_the_same_value() {
    let dims = [3, 4];
    let inputs = kl_inputs(&dims, 5);
    let t = Tape::new();
    let v: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
    let same = t
        .gaussian_kl(&v[0], &v[1], &v[0], &v[1])
        .unwrap()
        .value()
        .to_vec_f64()
        .unwrap();
    assert!(same.iter().all(|x| x.abs() < 1e-15), "{same:?}");
    let a = plain(&t, &v).unwrap().value().to_vec_f64().unwrap();
    let b = t
        .gaussian_kl_balanced(&v[0], &v[1], &v[2], &v[3], 0.8)
        .unwrap();
    check_close(&b.value().to_vec_f64().unwrap(), &a, 0.0, 0.0).unwrap();
    assert!(a.iter().all(|&x| x >= 0.0));
}

#[test]
fn f32_and_bf16_inputs_keep_their_dtype() {
    let t = Tape::new();
    for dtype in [DType::F32, DType::BF16] {
        let v: Vec<Var> = kl_inputs(&[5], 1)
            .into_iter()
            .map(|x| t.leaf(x.to_dtype(dtype).unwrap()))
            .collect();
        let kl = plain(&t, &v).unwrap();
        assert_eq!(kl.dtype(), dtype);
        let g = t.backward(&t.sum_all(&kl).unwrap()).unwrap();
        assert_eq!(g.get(&v[3]).unwrap().dtype(), dtype);
    }
}

#[test]
fn non_positive_sigmas_bad_alpha_and_mismatches_are_errors() {
    let t = Tape::new();
    let ok = Var::constant(Tensor::ones([2], DType::F64));
    for bad in [0.0, -1.0, f64::NAN] {
        let s = Var::constant(Tensor::from_vec(vec![1.0, bad], [2]).unwrap());
        assert!(matches!(
            t.gaussian_kl(&ok, &s, &ok, &ok),
            Err(recur::Error::Arg { .. })
        ));
        assert!(matches!(
            t.gaussian_kl(&ok, &ok, &ok, &s),
            Err(recur::Error::Arg { .. })
        ));
        assert!(t.gaussian_kl_balanced(&ok, &s, &ok, &ok, 0.8).is_err());
    }
    for alpha in [-0.1, 1.5, f64::NAN] {
        assert!(matches!(
            t.gaussian_kl_balanced(&ok, &ok, &ok, &ok, alpha),
            Err(recur::Error::Arg { .. })
        ));
    }
    let long = Var::constant(Tensor::ones([3], DType::F64));
    assert!(matches!(
        t.gaussian_kl(&ok, &ok, &long, &ok),
        Err(recur::Error::Shape { .. })
    ));
    let f32s = Var::constant(Tensor::ones([2], DType::F32));
    assert!(matches!(
        t.gaussian_kl(&ok, &ok, &ok, &f32s),
        Err(recur::Error::DType { .. })
    ));
}
