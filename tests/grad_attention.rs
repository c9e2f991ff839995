//! Gradient checks (f64 central differences, proptest shapes, with and without dropout) and
//! independent checks of `attention`: a naive per-element softmax loop, the Philox dropout
//! contract, dtype agreement and error cases.

use proptest::prelude::*;
use recur::ops::attention::AttentionOpts;
use recur::rng::philox;
use recur::testing::{check_close, rel_l2, GradCheck};
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

/// `[B, S, H, hd]` with S ≤ 7 and hd ∈ {4, 8}.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    (
        1usize..3,
        1usize..8,
        1usize..4,
        prop::sample::select(vec![4usize, 8]),
    )
        .prop_map(|(b, s, h, hd)| vec![b, s, h, hd])
}

fn attend(q: &Tensor, k: &Tensor, v: &Tensor, opts: &AttentionOpts) -> Tensor {
    let [q, k, v] = [q, k, v].map(|x| Var::constant(x.clone()));
    Tape::new()
        .attention(&q, &k, &v, opts)
        .unwrap()
        .into_value()
}

/// Attention written out element by element from the definition and the dropout contract.
fn naive_attention(q: &Tensor, k: &Tensor, v: &Tensor, opts: &AttentionOpts) -> Vec<f64> {
    let &[b, s, h, hd] = q.dims() else {
        panic!("rank 4")
    };
    let [q, k, v] = [q, k, v].map(|x| x.to_vec_f64().unwrap());
    let at =
        |x: &[f64], bi: usize, i: usize, hi: usize, d: usize| x[((bi * s + i) * h + hi) * hd + d];
    let scale = opts.scale.unwrap_or(1.0 / (hd as f64).sqrt());
    let mut out = vec![0.0; b * s * h * hd];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..s {
                let logits: Vec<f64> = (0..s)
                    .map(|j| {
                        scale
                            * (0..hd)
                                .map(|d| at(&q, bi, i, hi, d) * at(&k, bi, j, hi, d))
                                .sum::<f64>()
                    })
                    .collect();
                let z: f64 = logits.iter().map(|l| l.exp()).sum();
                for (j, logit) in logits.iter().enumerate() {
                    let mut p = logit.exp() / z;
                    if let Some(drop) = opts.dropout {
                        let index = (((bi * h + hi) * s + i) * s + j) as u64;
                        let keep = philox::uniform(drop.seed, drop.step, index) >= drop.p as f32;
                        p = if keep { p / (1.0 - drop.p) } else { 0.0 };
                    }
                    for d in 0..hd {
                        out[((bi * s + i) * h + hi) * hd + d] += p * at(&v, bi, j, hi, d);
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_attention(
        dims in shape(),
        seed in any::<u64>(),
        scale in prop::option::of(0.1f64..1.5),
        dropout in prop::option::of((prop::sample::select(vec![0.0, 0.2, 0.5]), any::<u64>(), 0u64..100)),
    ) {
        let mut opts = AttentionOpts { scale, ..Default::default() };
        if let Some((p, drop_seed, step)) = dropout {
            opts = opts.with_dropout(p, drop_seed, step);
        }
        let inputs = [randn(&dims, seed), randn(&dims, seed ^ 1), randn(&dims, seed ^ 2)];
        // With S = 1 the probabilities are constant, so q and k get no gradient; so may a head
        // whose mask dropped everything.
        let check = if dims[1] == 1 || dropout.is_some() { GradCheck::new().allow_zero() } else { GradCheck::new() };
        check.run(&inputs, |t, v| t.attention(&v[0], &v[1], &v[2], &opts)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn attention_matches_the_naive_loop(dims in shape(), seed in any::<u64>(), p in prop::sample::select(vec![0.0, 0.3])) {
        let (q, k, v) = (randn(&dims, seed), randn(&dims, seed ^ 1), randn(&dims, seed ^ 2));
        let opts = AttentionOpts::default().with_dropout(p, seed, 7);
        let got = attend(&q, &k, &v, &opts).to_vec_f64().unwrap();
        check_close(&got, &naive_attention(&q, &k, &v, &opts), 1e-13, 1e-11).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn large_calls_take_the_parallel_path_and_still_match() {
    // 1·2·16·16·32 = 2¹⁴ multiply-adds per product (Sotaku's head dim): the threshold at which
    // heads go to separate rayon tasks.
    let dims = [1, 16, 2, 32];
    let (q, k, v) = (randn(&dims, 1), randn(&dims, 2), randn(&dims, 3));
    let opts = AttentionOpts::default()
        .with_dropout(0.1, 4, 5)
        .with_scale(0.3);
    let got = attend(&q, &k, &v, &opts).to_vec_f64().unwrap();
    check_close(&got, &naive_attention(&q, &k, &v, &opts), 1e-13, 1e-11).unwrap();
    GradCheck::new()
        .run(&[q, k, v], |t, x| t.attention(&x[0], &x[1], &x[2], &opts))
        .unwrap();
}

#[test]
fn dropout_p_zero_equals_no_dropout() {
    let dims = [2, 5, 3, 8];
    let (q, k, v) = (randn(&dims, 1), randn(&dims, 2), randn(&dims, 3));
    let plain = attend(&q, &k, &v, &AttentionOpts::default())
        .to_vec_f64()
        .unwrap();
    let p0 = attend(
        &q,
        &k,
        &v,
        &AttentionOpts::default().with_dropout(0.0, 9, 9),
    )
    .to_vec_f64()
    .unwrap();
    assert_eq!(plain, p0);
}

/// Attention whose output exposes the dropped probabilities: with q = k = 0 every probability is
/// 1/S, and with v_j = e_j (hd = S) output row i is row i of P̃.
fn exposed_probabilities(b: usize, s: usize, h: usize, p: f64, seed: u64, step: u64) -> Vec<f64> {
    let zeros = Tensor::zeros([b, s, h, s], DType::F64);
    let eye: Vec<f64> = (0..b * s * h * s)
        .map(|e| f64::from(u8::from((e / (h * s)) % s == e % s)))
        .collect();
    let v = Tensor::from_vec(eye, [b, s, h, s]).unwrap();
    attend(
        &zeros,
        &zeros,
        &v,
        &AttentionOpts::default().with_dropout(p, seed, step),
    )
    .to_vec_f64()
    .unwrap()
}

#[test]
fn dropout_keeps_about_one_minus_p_and_scales_the_kept() {
    let (b, s, h, p) = (2, 48, 2, 0.3);
    let out = exposed_probabilities(b, s, h, p, 11, 3);
    let kept = out.iter().filter(|&&x| x != 0.0).count();
    let fraction = kept as f64 / out.len() as f64;
    // 9216 Bernoulli(0.7) draws: the standard deviation of the fraction is about 0.005.
    assert!((fraction - (1.0 - p)).abs() < 0.025, "kept {fraction}");
    let kept_value = 1.0 / (s as f64 * (1.0 - p));
    assert!(out
        .iter()
        .all(|&x| x == 0.0 || (x - kept_value).abs() < 1e-15));
    // Element (b, i, h, j) of the output is kept exactly when the contract says so.
    for (e, &x) in out.iter().enumerate() {
        let (bi, i, hi, j) = (e / (s * h * s), (e / (h * s)) % s, (e / s) % h, e % s);
        let index = (((bi * h + hi) * s + i) * s + j) as u64;
        assert_eq!(x != 0.0, philox::uniform(11, 3, index) >= p as f32);
    }
}

#[test]
fn dropout_is_deterministic_per_seed_and_step() {
    let a = exposed_probabilities(1, 16, 2, 0.5, 1, 0);
    assert_eq!(a, exposed_probabilities(1, 16, 2, 0.5, 1, 0));
    assert_ne!(
        a,
        exposed_probabilities(1, 16, 2, 0.5, 2, 0),
        "another seed"
    );
    assert_ne!(
        a,
        exposed_probabilities(1, 16, 2, 0.5, 1, 1),
        "another step"
    );
}

#[test]
fn default_scale_is_one_over_sqrt_head_dim() {
    let dims = [1, 4, 2, 8];
    let (q, k, v) = (randn(&dims, 1), randn(&dims, 2), randn(&dims, 3));
    let default = attend(&q, &k, &v, &AttentionOpts::default())
        .to_vec_f64()
        .unwrap();
    let explicit = attend(
        &q,
        &k,
        &v,
        &AttentionOpts::default().with_scale(1.0 / 8f64.sqrt()),
    );
    assert_eq!(default, explicit.to_vec_f64().unwrap());
}

#[test]
fn f32_agrees_with_f64_and_bf16_storage_works() {
    let dims = [2, 7, 3, 8];
    let (q, k, v) = (randn(&dims, 4), randn(&dims, 5), randn(&dims, 6));
    let opts = AttentionOpts::default().with_dropout(0.2, 3, 1);
    let run = |dtype: DType| {
        let t = Tape::new();
        let [q, k, v] = [&q, &k, &v].map(|x| t.leaf(x.to_dtype(dtype).unwrap()));
        let y = t.attention(&q, &k, &v, &opts).unwrap();
        assert_eq!(y.dtype(), dtype);
        let weights = Var::constant(randn(&dims, 7).to_dtype(dtype).unwrap());
        let grads = t
            .backward(&t.sum_all(&t.mul(&y, &weights).unwrap()).unwrap())
            .unwrap();
        let mut all = vec![y.value().to_vec_f64().unwrap()];
        for x in [&q, &k, &v] {
            let g = grads.get(x).unwrap();
            assert_eq!(g.dtype(), dtype);
            all.push(g.to_vec_f64().unwrap());
        }
        all
    };
    let reference = run(DType::F64);
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 2e-2)] {
        for (got, want) in run(dtype).iter().zip(&reference) {
            let e = rel_l2(got, want);
            assert!(e < tol, "{dtype}: relative L2 error {e:.2e}");
        }
    }
}

#[test]
fn bad_shapes_options_and_dtypes_are_errors() {
    let t = Tape::new();
    let x = |dims: &[usize], dtype: DType| Var::constant(Tensor::zeros(dims.to_vec(), dtype));
    let q = x(&[1, 4, 2, 8], DType::F32);
    let ok = AttentionOpts::default();
    assert!(matches!(
        t.attention(&x(&[4, 2, 8], DType::F32), &q, &q, &ok),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t.attention(&q, &x(&[1, 5, 2, 8], DType::F32), &q, &ok),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t.attention(&q, &q, &x(&[1, 4, 2, 4], DType::F32), &ok),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t.attention(&q, &q, &x(&[1, 4, 2, 8], DType::F64), &ok),
        Err(Error::DType { .. })
    ));
    for p in [1.0, 1.5, -0.1, f64::NAN] {
        let opts = ok.with_dropout(p, 0, 0);
        assert!(
            matches!(t.attention(&q, &q, &q, &opts), Err(Error::Arg { .. })),
            "p = {p}"
        );
    }
    for scale in [f64::NAN, f64::INFINITY] {
        assert!(matches!(
            t.attention(&q, &q, &q, &ok.with_scale(scale)),
            Err(Error::Arg { .. })
        ));
    }
    let empty_heads = x(&[1, 4, 2, 0], DType::F32);
    assert!(matches!(
        t.attention(&empty_heads, &empty_heads, &empty_heads, &ok),
        Err(Error::Arg { .. })
    ));
}
