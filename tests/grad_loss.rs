//! Losses: gradient checks (f64 central differences on proptest shapes), values against naive
//! formulas written here, the ignore label and per-sequence mean, masking, and error cases.

use proptest::prelude::*;
use recur::device::cpu::loss::BceWeights;
use recur::rng::philox;
use recur::testing::{check_close, GradCheck};
use recur::{DType, Tape, Tensor, Var};

fn randn(dims: &[usize], std: f64, seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), std, seed, DType::F64).unwrap()
}

/// Labels in `0..classes`, with about a quarter replaced by the ignore label −100.
fn labels(n: usize, classes: usize, seed: u64) -> Vec<i32> {
    (0..n as u64)
        .map(|i| {
            if philox::uniform(seed, 1, i) < 0.25 {
                -100
            } else {
                (philox::uniform(seed, 2, i) * classes as f32) as i32 % classes as i32
            }
        })
        .collect()
}

fn f64s(t: &Var) -> Vec<f64> {
    t.value().to_vec_f64().unwrap()
}

/// `−log p_label` from the probabilities `s(x)/Σ s(x)`, written out directly.
fn naive_ce(row: &[f64], label: usize, s: impl Fn(f64) -> f64) -> f64 {
    let total: f64 = row.iter().map(|&x| s(x)).sum();
    -(s(row[label]) / total).ln()
}

fn naive_stablemax(x: f64) -> f64 {
    if x >= 0.0 {
        x + 1.0
    } else {
        1.0 / (1.0 - x + 1e-30)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_softmax_cross_entropy(b in 1usize..4, s in 1usize..5, v in 1usize..6, seed in any::<u64>()) {
        let x = randn(&[b, s, v], 2.0, seed);
        let y = Tensor::from_vec(labels(b * s, v, seed), [b, s]).unwrap();
        // A sequence may be entirely ignored, so a zero gradient is legitimate.
        GradCheck::new().allow_zero().run(&[x], |t, xs| t.softmax_cross_entropy(&xs[0], &y))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_stablemax_cross_entropy(b in 1usize..4, s in 1usize..5, v in 1usize..6, seed in any::<u64>()) {
        let x = randn(&[b, s, v], 2.0, seed);
        let y = Tensor::from_vec(labels(b * s, v, seed), [b, s]).unwrap();
        GradCheck::new().allow_zero().run(&[x], |t, xs| t.stablemax_cross_entropy(&xs[0], &y))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_masked_cross_entropy(
        dims in prop::collection::vec(1usize..4, 1..3),
        classes in 1usize..6,
        seed in any::<u64>(),
    ) {
        let n: usize = dims.iter().product();
        let mut logit_dims = dims.clone();
        logit_dims.push(classes);
        let x = randn(&logit_dims, 1.5, seed);
        let targets: Vec<i32> = labels(n, classes, seed).iter().map(|&l| l.max(0)).collect();
        let mut mask: Vec<f64> = (0..n as u64).map(|i| [0.0, 0.5, 1.0, 2.0][(philox::block(seed, 3, i)[0] % 4) as usize]).collect();
        mask[0] = 1.0;
        let targets = Tensor::from_vec(targets, dims.clone()).unwrap();
        let mask = Tensor::from_vec(mask, dims.clone()).unwrap();
        GradCheck::new().allow_zero().run(&[x], |t, xs| t.masked_cross_entropy(&xs[0], &targets, &mask))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_bce_with_logits_plain_and_weighted(
        dims in prop::collection::vec(1usize..5, 1..4),
        seed in any::<u64>(),
    ) {
        let x = randn(&dims, 3.0, seed);
        let n = x.numel();
        let t: Vec<f64> = (0..n as u64).map(|i| philox::uniform(seed, 4, i) as f64).collect();
        let t = Tensor::from_vec(t, dims.clone()).unwrap();
        GradCheck::new().run(&[x.clone(), t.clone()], |tape, v| tape.bce_with_logits(&v[0], &v[1]))
            .map_err(TestCaseError::fail)?;
        let w = BceWeights { positive: 4.0, negative: 0.5 };
        GradCheck::new().run(&[x, t], |tape, v| tape.bce_with_logits_weighted(&v[0], &v[1], w))
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn softmax_and_stablemax_match_naive_formulas_and_differ() {
    let rows = [
        [0.3, -1.2, 2.0],
        [-0.5, -0.5, 4.0],
        [1.0, 0.0, -3.0],
        [0.0, 0.0, 0.0],
    ];
    let lab = [2usize, 0, 1, 1];
    let x = Tensor::from_vec(rows.concat(), [2, 2, 3]).unwrap();
    let y = Tensor::from_vec(lab.iter().map(|&l| l as i32).collect::<Vec<_>>(), [2, 2]).unwrap();
    let t = Tape::new();
    let soft = f64s(
        &t.softmax_cross_entropy(&Var::constant(x.clone()), &y)
            .unwrap(),
    );
    let stable = f64s(&t.stablemax_cross_entropy(&Var::constant(x), &y).unwrap());
    let mean_of = |s: &dyn Fn(f64) -> f64, seq: usize| {
        (0..2)
            .map(|k| naive_ce(&rows[seq * 2 + k], lab[seq * 2 + k], s))
            .sum::<f64>()
            / 2.0
    };
    let expect_soft: Vec<f64> = (0..2).map(|b| mean_of(&f64::exp, b)).collect();
    let expect_stable: Vec<f64> = (0..2).map(|b| mean_of(&naive_stablemax, b)).collect();
    check_close(&soft, &expect_soft, 1e-12, 1e-12).unwrap();
    check_close(&stable, &expect_stable, 1e-12, 1e-12).unwrap();
    assert!((soft[0] - stable[0]).abs() > 1e-3, "{soft:?} vs {stable:?}");
}

#[test]
fn ignored_tokens_contribute_nothing_and_all_ignored_sequence_gives_zero() {
    let x = randn(&[3, 4, 5], 1.0, 7);
    let lab = vec![
        1, -100, 3, 0, /* all ignored: */ -100, -100, -100, -100, 4, 4, -100, 2,
    ];
    let y = Tensor::from_vec(lab.clone(), [3, 4]).unwrap();
    let tape = Tape::new();
    let leaf = tape.leaf(x.clone());
    let per_seq = tape.softmax_cross_entropy(&leaf, &y).unwrap();
    let loss = tape.sum_all(&per_seq).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let per = f64s(&per_seq);
    assert_eq!(per[1], 0.0);
    // Ignored tokens get no gradient; scored ones do.
    let g = grads.get(&leaf).unwrap().to_vec_f64().unwrap();
    for (token, &l) in lab.iter().enumerate() {
        let row = &g[token * 5..(token + 1) * 5];
        assert_eq!(row.iter().all(|&v| v == 0.0), l == -100, "token {token}");
    }
    // The per-sequence mean over valid tokens, by hand: sequence 0 has 3 valid tokens.
    let xv = x.to_vec_f64().unwrap();
    let ce = |tok: usize, l: usize| naive_ce(&xv[tok * 5..tok * 5 + 5], l, f64::exp);
    let seq0 = (ce(0, 1) + ce(2, 3) + ce(3, 0)) / 3.0;
    check_close(&per[..1], &[seq0], 1e-12, 1e-12).unwrap();
    // Changing an ignored token's logits or label (to another ignored one) changes nothing.
    let mut xv2 = xv.clone();
    xv2[5..10].copy_from_slice(&[9.0, -9.0, 3.0, 0.0, 1.0]);
    let again = tape
        .softmax_cross_entropy(
            &Var::constant(Tensor::from_vec(xv2, [3, 4, 5]).unwrap()),
            &y,
        )
        .unwrap();
    assert_eq!(f64s(&again), per);
    // The official lm_loss is the sum of the per-sequence means.
    assert!((loss.value().item().unwrap() - per.iter().sum::<f64>()).abs() < 1e-12);
}

#[test]
fn bf16_and_f32_logits_give_an_f32_loss_computed_in_f64() {
    let x = Tensor::from_vec(vec![30.0f32, -30.0, 0.0, 1e4, 1e4 + 1.0, 0.0], [1, 2, 3]).unwrap();
    let y = Tensor::from_vec(vec![1i32, 1], [1, 2]).unwrap();
    let t = Tape::new();
    for dtype in [DType::F32, DType::BF16] {
        let v = t.leaf(x.to_dtype(dtype).unwrap());
        let out = t.softmax_cross_entropy(&v, &y).unwrap();
        assert_eq!(out.dtype(), DType::F32);
        let got = out.value().item().unwrap();
        assert!(got.is_finite() && got > 29.0, "{dtype}: {got}");
        let loss = t.sum_all(&out).unwrap();
        let g = t.backward(&loss).unwrap();
        assert_eq!(g.get(&v).unwrap().dtype(), dtype);
    }
    let f64_out = t
        .stablemax_cross_entropy(&Var::constant(x.to_dtype(DType::F64).unwrap()), &y)
        .unwrap();
    assert_eq!(f64_out.dtype(), DType::F64);
}

#[test]
fn out_of_range_labels_are_errors_naming_the_label() {
    let t = Tape::new();
    let x = Var::constant(Tensor::zeros([1, 2, 4], DType::F32));
    for bad in [4, -1, -99, 1000] {
        let y = Tensor::from_vec(vec![0, bad], [1, 2]).unwrap();
        for r in [
            t.softmax_cross_entropy(&x, &y),
            t.stablemax_cross_entropy(&x, &y),
        ] {
            let e = r.unwrap_err();
            assert!(matches!(e, recur::Error::Arg { .. }), "{e}");
            assert!(e.to_string().contains(&format!("label {bad}")), "{e}");
        }
    }
    let ok = Tensor::from_vec(vec![3, -100], [1, 2]).unwrap();
    assert!(t.softmax_cross_entropy(&x, &ok).is_ok());
    // Shapes and dtypes.
    let short = Tensor::from_vec(vec![0i32], [1, 1]).unwrap();
    assert!(matches!(
        t.softmax_cross_entropy(&x, &short),
        Err(recur::Error::Shape { .. })
    ));
    let float_labels = Tensor::zeros([1, 2], DType::F32);
    assert!(matches!(
        t.softmax_cross_entropy(&x, &float_labels),
        Err(recur::Error::DType { .. })
    ));
    let rank2 = Var::constant(Tensor::zeros([2, 4], DType::F32));
    let y2 = Tensor::from_vec(vec![0i32, 1], [2]).unwrap();
    assert!(t.softmax_cross_entropy(&rank2, &y2).is_err());
}

#[test]
fn masked_cross_entropy_matches_naive_and_skips_masked_targets() {
    let rows = [[0.3, -1.2, 2.0], [1.0, 0.5, 0.0], [0.0, 3.0, 1.0]];
    let x = Tensor::from_vec(rows.concat(), [3, 3]).unwrap();
    // The middle target is masked out, so even an out-of-range value is never read.
    let targets = Tensor::from_vec(vec![2, 77, 0], [3]).unwrap();
    let mask = Tensor::from_vec(vec![1.0, 0.0, 3.0], [3]).unwrap();
    let t = Tape::new();
    let leaf = t.leaf(x);
    let loss = t.masked_cross_entropy(&leaf, &targets, &mask).unwrap();
    let expect = (naive_ce(&rows[0], 2, f64::exp) + 3.0 * naive_ce(&rows[2], 0, f64::exp)) / 4.0;
    assert!(loss.dims().is_empty());
    check_close(&f64s(&loss), &[expect], 1e-12, 1e-12).unwrap();
    let g = t.backward(&loss).unwrap();
    let g = g.get(&leaf).unwrap().to_vec_f64().unwrap();
    assert!(g[3..6].iter().all(|&v| v == 0.0));
}

#[test]
fn masked_cross_entropy_with_empty_mask_is_zero_with_zero_gradient() {
    let t = Tape::new();
    let leaf = t.leaf(randn(&[2, 3, 4], 1.0, 3));
    let targets = Tensor::from_vec(vec![0i32; 6], [2, 3]).unwrap();
    let loss = t
        .masked_cross_entropy(&leaf, &targets, &Tensor::zeros([2, 3], DType::F64))
        .unwrap();
    assert_eq!(loss.value().item().unwrap(), 0.0);
    let g = t.backward(&loss).unwrap();
    assert!(g
        .get(&leaf)
        .unwrap()
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn masked_cross_entropy_rejects_bad_masks_targets_and_shapes() {
    let t = Tape::new();
    let x = Var::constant(Tensor::zeros([2, 3], DType::F32));
    let targets = Tensor::from_vec(vec![0i32, 1], [2]).unwrap();
    let neg = Tensor::from_vec(vec![1.0f32, -1.0], [2]).unwrap();
    let nan = Tensor::from_vec(vec![1.0f32, f32::NAN], [2]).unwrap();
    let ones = Tensor::ones([2], DType::F32);
    assert!(matches!(
        t.masked_cross_entropy(&x, &targets, &neg),
        Err(recur::Error::Arg { .. })
    ));
    assert!(t.masked_cross_entropy(&x, &targets, &nan).is_err());
    let bad = Tensor::from_vec(vec![0i32, 3], [2]).unwrap();
    let e = t.masked_cross_entropy(&x, &bad, &ones).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    let ignore = Tensor::from_vec(vec![0i32, -100], [2]).unwrap();
    assert!(t.masked_cross_entropy(&x, &ignore, &ones).is_err());
    assert!(matches!(
        t.masked_cross_entropy(&x, &targets, &Tensor::ones([3], DType::F32)),
        Err(recur::Error::Shape { .. })
    ));
}

#[test]
fn bce_matches_naive_formula_and_is_stable_at_extremes() {
    let xs = [-3.0, -0.2, 0.0, 0.7, 5.0];
    let ts = [0.0, 1.0, 0.5, 0.3, 1.0];
    let x = Tensor::from_vec(xs.to_vec(), [5]).unwrap();
    let tt = Tensor::from_vec(ts.to_vec(), [5]).unwrap();
    let t = Tape::new();
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let plain = f64s(
        &t.bce_with_logits(&Var::constant(x.clone()), &Var::constant(tt.clone()))
            .unwrap(),
    );
    let expect: Vec<f64> = xs
        .iter()
        .zip(&ts)
        .map(|(&x, &t)| -(t * sig(x).ln() + (1.0 - t) * (1.0 - sig(x)).ln()))
        .collect();
    check_close(&plain, &expect, 1e-12, 1e-12).unwrap();
    let w = BceWeights {
        positive: 4.0,
        negative: 0.5,
    };
    let weighted = f64s(
        &t.bce_with_logits_weighted(&Var::constant(x), &Var::constant(tt), w)
            .unwrap(),
    );
    let expect: Vec<f64> = xs
        .iter()
        .zip(&ts)
        .map(|(&x, &t)| -(4.0 * t * sig(x).ln() + 0.5 * (1.0 - t) * sig(-x).ln()))
        .collect();
    check_close(&weighted, &expect, 1e-12, 1e-12).unwrap();

    let big = Tensor::from_vec(vec![1000.0f32, -1000.0, 1000.0], [3]).unwrap();
    let targets = Tensor::from_vec(vec![0.0f32, 1.0, 1.0], [3]).unwrap();
    let out = t
        .bce_with_logits(&Var::constant(big), &Var::constant(targets))
        .unwrap();
    assert_eq!(out.value().to_vec_f32().unwrap(), [1000.0, 1000.0, 0.0]);
}

#[test]
fn bce_rejects_mismatched_shapes_and_dtypes() {
    let t = Tape::new();
    let a = Var::constant(Tensor::zeros([2, 3], DType::F32));
    assert!(matches!(
        t.bce_with_logits(&a, &Var::constant(Tensor::zeros([3, 2], DType::F32))),
        Err(recur::Error::Shape { .. })
    ));
    assert!(matches!(
        t.bce_with_logits(&a, &Var::constant(Tensor::zeros([2, 3], DType::F64))),
        Err(recur::Error::DType { .. })
    ));
}
