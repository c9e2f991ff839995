//! Gradient checks (f64 central differences, proptest shapes), hand-computed values, dtype
//! agreement and error cases for `rms_norm`, `layer_norm` and the fused `residual_norm`.

use proptest::prelude::*;
use recur::ops::norm::{Norm, DEFAULT_EPS};
use recur::testing::{check_close, rel_l2, GradCheck};
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

/// Leading dims of rank 0 to 2 and a last (normalised) dim of 3 to 8: with one or two elements
/// LayerNorm's output is constant (0 or ±1) and the check would prove nothing.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    (prop::collection::vec(1usize..4, 0..3), 3usize..9).prop_map(|(mut lead, d)| {
        lead.push(d);
        lead
    })
}

fn values(t: &Var) -> Vec<f64> {
    t.value().to_vec_f64().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_rms_norm(dims in shape(), seed in any::<u64>(), eps in prop::sample::select(vec![1e-5, 0.5])) {
        let x = randn(&dims, seed);
        GradCheck::new().run(&[x], |t, v| t.rms_norm(&v[0], eps)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_layer_norm(dims in shape(), seed in any::<u64>()) {
        let d = *dims.last().unwrap();
        let inputs = [randn(&dims, seed), randn(&[d], seed ^ 1), randn(&[d], seed ^ 2)];
        GradCheck::new()
            .run(&inputs, |t, v| t.layer_norm(&v[0], &v[1], &v[2], DEFAULT_EPS))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_residual_norm_rms_and_layer(dims in shape(), seed in any::<u64>()) {
        let d = *dims.last().unwrap();
        let (h, r) = (randn(&dims, seed), randn(&dims, seed ^ 3));
        GradCheck::new()
            .run(&[h.clone(), r.clone()], |t, v| t.residual_norm(&v[0], &v[1], Norm::rms(DEFAULT_EPS)))
            .map_err(TestCaseError::fail)?;
        let inputs = [h, r, randn(&[d], seed ^ 4), randn(&[d], seed ^ 5)];
        GradCheck::new()
            .run(&inputs, |t, v| {
                t.residual_norm(&v[0], &v[1], Norm::layer(&v[2], &v[3], DEFAULT_EPS))
            })
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn rms_norm_rows_have_unit_mean_square() {
    let x = Tensor::randn([5, 7, 32], 3.0, 11, DType::F64).unwrap();
    let y = values(&Tape::new().rms_norm(&Var::constant(x), 1e-12).unwrap());
    for row in y.chunks(32) {
        let ms = row.iter().map(|a| a * a).sum::<f64>() / 32.0;
        assert!((ms - 1.0).abs() < 1e-9, "mean square {ms}");
    }
}

#[test]
fn rms_norm_matches_hand_computation() {
    // Row (3, 4): mean square 12.5, so y = x / √(12.5 + eps).
    let x = Tensor::from_vec(vec![3.0f64, 4.0], [1, 2]).unwrap();
    let y = values(&Tape::new().rms_norm(&Var::constant(x), 0.5).unwrap());
    let r = 1.0 / 13.0f64.sqrt();
    check_close(&y, &[3.0 * r, 4.0 * r], 1e-15, 1e-14).unwrap();
}

#[test]
fn layer_norm_matches_hand_computation() {
    // Row (1, 2, 3, 6): mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5.
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 6.0], [1, 4]).unwrap();
    let w = Tensor::from_vec(vec![1.0f64, 2.0, -1.0, 0.5], [4]).unwrap();
    let b = Tensor::from_vec(vec![0.0f64, 1.0, 0.0, -2.0], [4]).unwrap();
    let eps = 0.5;
    let t = Tape::new();
    let y = t
        .layer_norm(&Var::constant(x), &Var::constant(w), &Var::constant(b), eps)
        .unwrap();
    let r = 1.0 / (3.5f64 + eps).sqrt(); // = 0.5
    let expected = [-2.0 * r, 2.0 * (-r) + 1.0, 0.0, 0.5 * 3.0 * r - 2.0];
    check_close(&values(&y), &expected, 1e-15, 1e-14).unwrap();
}

#[test]
fn residual_norm_equals_norm_of_the_sum_by_separate_ops() {
    let (h, r) = (randn(&[2, 5, 16], 1), randn(&[2, 5, 16], 2));
    let (w, b) = (randn(&[16], 3), randn(&[16], 4));
    let t = Tape::new();
    let [h, r, w, b] = [h, r, w, b].map(|x| t.leaf(x));
    let sum = t.add(&h, &r).unwrap();
    let pairs = [
        (
            t.residual_norm(&h, &r, Norm::rms(1e-5)).unwrap(),
            t.rms_norm(&sum, 1e-5).unwrap(),
        ),
        (
            t.residual_norm(&h, &r, Norm::layer(&w, &b, 1e-5)).unwrap(),
            t.layer_norm(&sum, &w, &b, 1e-5).unwrap(),
        ),
    ];
    for (fused, chained) in &pairs {
        check_close(&values(fused), &values(chained), 1e-14, 1e-13).unwrap();
    }
    // The fused backward agrees with the chain's too.
    let (fused, chained) = &pairs[1];
    let weights = Var::constant(randn(&[2, 5, 16], 5));
    let loss = |y: &Var| t.sum_all(&t.mul(y, &weights).unwrap()).unwrap();
    let (gf, gc) = (
        t.backward(&loss(fused)).unwrap(),
        t.backward(&loss(chained)).unwrap(),
    );
    for leaf in [&h, &r, &w, &b] {
        let (a, e) = (gf.get(leaf).unwrap(), gc.get(leaf).unwrap());
        check_close(
            &a.to_vec_f64().unwrap(),
            &e.to_vec_f64().unwrap(),
            1e-12,
            1e-10,
        )
        .unwrap();
    }
}

#[test]
fn f32_agrees_with_f64_and_bf16_storage_works() {
    let (h, r) = (randn(&[3, 4, 64], 7), randn(&[3, 4, 64], 8));
    let (w, b) = (randn(&[64], 9), randn(&[64], 10));
    let run = |dtype: DType| -> Vec<Vec<f64>> {
        let t = Tape::new();
        let c = |x: &Tensor| Var::constant(x.to_dtype(dtype).unwrap());
        let (h, r) = (c(&h), c(&r));
        // LayerNorm weights stay f64 master weights whatever the activation dtype.
        let (w, b) = (Var::constant(w.clone()), Var::constant(b.clone()));
        let outs = [
            t.rms_norm(&h, 1e-5).unwrap(),
            t.layer_norm(&h, &w, &b, 1e-5).unwrap(),
            t.residual_norm(&h, &r, Norm::rms(1e-5)).unwrap(),
            t.residual_norm(&h, &r, Norm::layer(&w, &b, 1e-5)).unwrap(),
        ];
        outs.iter()
            .map(|y| {
                assert_eq!(y.dtype(), dtype);
                values(y)
            })
            .collect()
    };
    let reference = run(DType::F64);
    for (dtype, tol) in [(DType::F32, 1e-6), (DType::BF16, 1e-2)] {
        for (got, want) in run(dtype).iter().zip(&reference) {
            let e = rel_l2(got, want);
            assert!(e < tol, "{dtype}: relative L2 error {e:.2e}");
        }
    }
}

#[test]
fn gradients_come_back_in_each_inputs_dtype() {
    let t = Tape::new();
    let x = t.leaf(randn(&[2, 8], 1).to_dtype(DType::BF16).unwrap());
    let w = t.leaf(Tensor::ones([8], DType::F32));
    let b = t.leaf(Tensor::zeros([8], DType::F32));
    let y = t.layer_norm(&x, &w, &b, 1e-5).unwrap();
    let y = t
        .mul(
            &y,
            &Var::constant(randn(&[2, 8], 2).to_dtype(DType::BF16).unwrap()),
        )
        .unwrap();
    let grads = t.backward(&t.sum_all(&y).unwrap()).unwrap();
    assert_eq!(grads.get(&x).unwrap().dtype(), DType::BF16);
    assert_eq!(grads.get(&w).unwrap().dtype(), DType::F32);
    assert_eq!(grads.get(&b).unwrap().dtype(), DType::F32);
}

#[test]
fn bad_eps_shapes_and_dtypes_are_errors() {
    let t = Tape::new();
    let x = Var::constant(Tensor::ones([2, 4], DType::F32));
    let w = Var::constant(Tensor::ones([4], DType::F32));
    let w3 = Var::constant(Tensor::ones([3], DType::F32));
    for eps in [0.0, -1e-5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(t.rms_norm(&x, eps), Err(Error::Arg { .. })),
            "eps {eps}"
        );
        assert!(matches!(
            t.layer_norm(&x, &w, &w, eps),
            Err(Error::Arg { .. })
        ));
    }
    assert!(matches!(
        t.layer_norm(&x, &w3, &w, 1e-5),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t.layer_norm(&x, &w, &w3, 1e-5),
        Err(Error::Shape { .. })
    ));
    let scalar = Var::constant(Tensor::scalar(1.0, DType::F32));
    assert!(matches!(
        t.rms_norm(&scalar, 1e-5),
        Err(Error::Shape { .. })
    ));
    let other = Var::constant(Tensor::ones([4, 2], DType::F32));
    assert!(matches!(
        t.residual_norm(&x, &other, Norm::rms(1e-5)),
        Err(Error::Shape { .. })
    ));
    let x64 = Var::constant(Tensor::ones([2, 4], DType::F64));
    assert!(matches!(
        t.residual_norm(&x, &x64, Norm::rms(1e-5)),
        Err(Error::DType { .. })
    ));
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2], [2]).unwrap());
    assert!(matches!(t.rms_norm(&ids, 1e-5), Err(Error::DType { .. })));
}
