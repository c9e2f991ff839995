//! Optimizers, EMA and the learning-rate schedule against steps computed by hand. The expected
//! values are written with the textbook recurrences in f64, independently of the library's
//! fused update.

use recur::optim::{
    cosine_schedule_with_warmup, AdamAtan2, AdamAtan2Config, AdamW, AdamWConfig, Ema, SignSgd,
    WarmupCosine,
};
use recur::{DType, Error, ParamId, Params, Tensor};
use std::f64::consts::PI;

fn f32_tensor(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_vec(
        v.iter().map(|&x| x as f32).collect::<Vec<f32>>(),
        dims.to_vec(),
    )
    .unwrap()
}

fn set_grad(params: &mut Params, id: ParamId, g: &[f64], dtype: DType) {
    let dims = params.value(id).dims().to_vec();
    let t = Tensor::from_vec(g.to_vec(), dims)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    params.get_mut(id).grad = Some(t);
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "element {i}: got {g}, expected {w}"
        );
    }
}

/// One textbook Adam step in f64 on plain vectors: returns nothing, updates p, m, v.
#[allow(clippy::too_many_arguments)]
fn reference_adam_step(
    p: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    t: i32,
    lr: f64,
    (beta1, beta2): (f64, f64),
    wd: f64,
    eps: Option<f64>,
) {
    for i in 0..p.len() {
        p[i] *= 1.0 - lr * wd;
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
        let m_hat = m[i] / (1.0 - beta1.powi(t));
        let v_hat_sqrt = (v[i] / (1.0 - beta2.powi(t))).sqrt();
        p[i] -= lr
            * match eps {
                Some(eps) => m_hat / (v_hat_sqrt + eps),
                // atan2(m, √v̂)/(1−β1^t) as spec §4.1 writes it.
                None => (m[i].atan2(v_hat_sqrt)) / (1.0 - beta1.powi(t)),
            };
    }
}

const GRADS: [[f64; 3]; 4] = [
    [0.5, -1.0, 0.0],
    [-0.25, 2.0, 0.125],
    [0.1, 0.0, -3.0],
    [1.5, -0.5, 0.25],
];
const P0: [f64; 3] = [1.0, -2.0, 0.5];

// ---- AdamW ----------------------------------------------------------------------------------

#[test]
fn adamw_first_step_is_lr_times_sign_after_decay() {
    // t = 1: m̂ = g and √v̂ = |g|, so the step is lr·g/(|g| + ε) ≈ lr·sign(g); a zero gradient
    // only decays.
    let (lr, wd) = (0.1, 0.5);
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&P0, &[3])).unwrap();
    set_grad(&mut params, id, &GRADS[0], DType::F32);
    let mut opt = AdamW::new(AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: wd,
    })
    .unwrap();
    opt.step(&mut params).unwrap();
    let want = [
        1.0 * (1.0 - 0.05) - 0.1 * 0.5 / (0.5 + 1e-8),
        -2.0 * (1.0 - 0.05) + 0.1 * 1.0 / (1.0 + 1e-8),
        0.5 * (1.0 - 0.05),
    ];
    assert_close(&params.value(id).to_vec_f64().unwrap(), &want, 1e-6);
    assert_eq!(opt.step_count(id), 1);
    let (m, v) = opt.moments(id).unwrap();
    assert_close(&m.to_vec_f64().unwrap(), &[0.05, -0.1, 0.0], 1e-7);
    assert_close(
        &v.to_vec_f64().unwrap(),
        &[0.01 * 0.25, 0.01 * 1.0, 0.0],
        1e-7,
    );
}

#[test]
fn adamw_matches_textbook_recurrence_over_several_steps_f32_and_f64() {
    let (lr, betas, wd, eps) = (0.05, (0.9, 0.95), 0.1, 1e-8);
    for (dtype, tol) in [(DType::F32, 2e-6), (DType::F64, 1e-13)] {
        let mut params = Params::new();
        let id = params
            .add("w", f32_tensor(&P0, &[3]).to_dtype(dtype).unwrap())
            .unwrap();
        let mut opt = AdamW::new(AdamWConfig {
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps,
            weight_decay: wd,
        })
        .unwrap();
        let (mut p, mut m, mut v) = (P0.to_vec(), vec![0.0; 3], vec![0.0; 3]);
        for (t, g) in GRADS.iter().enumerate() {
            set_grad(&mut params, id, g, dtype);
            opt.step(&mut params).unwrap();
            reference_adam_step(
                &mut p,
                &mut m,
                &mut v,
                g,
                t as i32 + 1,
                lr,
                betas,
                wd,
                Some(eps),
            );
            assert_close(&params.value(id).to_vec_f64().unwrap(), &p, tol);
        }
        assert_eq!(params.value(id).dtype(), dtype);
        let (m_got, v_got) = opt.moments(id).unwrap();
        assert_close(&m_got.to_vec_f64().unwrap(), &m, tol);
        assert_close(&v_got.to_vec_f64().unwrap(), &v, tol);
    }
}

#[test]
fn adamw_sotaku_config_and_changing_lr() {
    let c = AdamWConfig::sotaku();
    assert_eq!(
        (c.lr, c.beta1, c.beta2, c.eps, c.weight_decay),
        (2e-3, 0.9, 0.95, 1e-8, 0.01)
    );
    // lr = 0 changes nothing, not even by weight decay; then a new lr takes effect.
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&[1.0], &[1])).unwrap();
    let mut opt = AdamW::new(AdamWConfig { lr: 0.0, ..c }).unwrap();
    set_grad(&mut params, id, &[2.0], DType::F32);
    opt.step(&mut params).unwrap();
    assert_eq!(params.value(id).to_vec_f64().unwrap(), [1.0]);
    opt.set_lr(0.5).unwrap();
    assert_eq!(opt.lr(), 0.5);
    opt.step(&mut params).unwrap();
    // t = 2 with a constant gradient: m̂ = g and v̂ = g², so again a step of lr·sign(g).
    let want = 1.0 * (1.0 - 0.5 * 0.01) - 0.5 * 2.0 / (2.0 + 1e-8);
    assert_close(&params.value(id).to_vec_f64().unwrap(), &[want], 1e-6);
}

#[test]
fn parameters_without_gradient_are_skipped_and_keep_their_own_step_count() {
    // "a" has a gradient every step; "b" only from step 2, so its first step is its own t = 1
    // (bias correction from scratch), as PyTorch's lazily created per-parameter state.
    let (lr, betas, wd) = (0.01, (0.9, 0.95), 0.1);
    let mut params = Params::new();
    let a = params.add("a", f32_tensor(&[1.0, 2.0], &[2])).unwrap();
    let b = params.add("b", f32_tensor(&[-1.0], &[1])).unwrap();
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr,
        beta1: betas.0,
        beta2: betas.1,
        weight_decay: wd,
    })
    .unwrap();
    set_grad(&mut params, a, &[0.3, -0.2], DType::F32);
    opt.step(&mut params).unwrap();
    assert_eq!(params.value(b).to_vec_f64().unwrap(), [-1.0]);
    assert_eq!((opt.step_count(a), opt.step_count(b)), (1, 0));
    assert!(opt.moments(b).is_none());

    set_grad(&mut params, b, &[-4.0], DType::F32);
    opt.step(&mut params).unwrap();
    assert_eq!((opt.step_count(a), opt.step_count(b)), (2, 1));
    // t = 1 for "b": (lr/0.1)·atan2(0.1·(−4), 4) = −lr·atan(0.1)/0.1.
    let want_b = -(1.0 - lr * wd) + lr * 0.1f64.atan() / 0.1;
    assert_close(&params.value(b).to_vec_f64().unwrap(), &[want_b], 1e-6);

    params.zero_grad().unwrap();
    let before = params.value(a).to_vec_f64().unwrap();
    opt.step(&mut params).unwrap();
    assert_eq!(params.value(a).to_vec_f64().unwrap(), before);
    assert_eq!(opt.step_count(a), 2);
}

// ---- AdamAtan2 ------------------------------------------------------------------------------

#[test]
fn adam_atan2_first_step_is_sign_like() {
    // t = 1: m = (1−β1)·g and √v/√(1−β2) = |g|, so the step is
    // (lr/(1−β1))·atan2((1−β1)·g, |g|) = lr·sign(g)·atan(1−β1)/(1−β1): the same size for every
    // nonzero gradient, whatever its scale, with no ε; a zero gradient gives atan2(0, 0) = 0.
    let (lr, wd, beta1) = (0.1, 1.0, 0.9);
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&P0, &[3])).unwrap();
    set_grad(&mut params, id, &GRADS[0], DType::F32);
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr,
        beta1,
        beta2: 0.95,
        weight_decay: wd,
    })
    .unwrap();
    opt.step(&mut params).unwrap();
    let decay = 1.0 - 0.1 * 1.0;
    let step = 0.1 * 0.1f64.atan() / 0.1;
    let want = [1.0 * decay - step, -2.0 * decay + step, 0.5 * decay];
    assert_close(&params.value(id).to_vec_f64().unwrap(), &want, 1e-6);
    // Scaling the gradient by 1000 moves the parameter by the same amount.
    let mut big = Params::new();
    let id_big = big.add("w", f32_tensor(&P0, &[3])).unwrap();
    let scaled: Vec<f64> = GRADS[0].iter().map(|g| g * 1000.0).collect();
    set_grad(&mut big, id_big, &scaled, DType::F32);
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr,
        beta1,
        beta2: 0.95,
        weight_decay: wd,
    })
    .unwrap();
    opt.step(&mut big).unwrap();
    assert_close(&big.value(id_big).to_vec_f64().unwrap(), &want, 1e-6);
}

#[test]
fn adam_atan2_matches_spec_recurrence_over_several_steps_f32_and_f64() {
    let (lr, betas, wd) = (0.02, (0.9, 0.95), 0.1);
    for (dtype, tol) in [(DType::F32, 2e-6), (DType::F64, 1e-13)] {
        let mut params = Params::new();
        let id = params
            .add("w", f32_tensor(&P0, &[3]).to_dtype(dtype).unwrap())
            .unwrap();
        let mut opt = AdamAtan2::new(AdamAtan2Config {
            lr,
            beta1: betas.0,
            beta2: betas.1,
            weight_decay: wd,
        })
        .unwrap();
        let (mut p, mut m, mut v) = (P0.to_vec(), vec![0.0; 3], vec![0.0; 3]);
        for (t, g) in GRADS.iter().enumerate() {
            set_grad(&mut params, id, g, dtype);
            opt.step(&mut params).unwrap();
            reference_adam_step(&mut p, &mut m, &mut v, g, t as i32 + 1, lr, betas, wd, None);
            assert_close(&params.value(id).to_vec_f64().unwrap(), &p, tol);
        }
        let (m_got, v_got) = opt.moments(id).unwrap();
        assert_close(&m_got.to_vec_f64().unwrap(), &m, tol);
        assert_close(&v_got.to_vec_f64().unwrap(), &v, tol);
    }
}

#[test]
fn large_parameters_take_the_parallel_path_with_the_same_result() {
    // 2^15 elements is above the CPU backend's threading threshold.
    let n = 1 << 15;
    let p0: Vec<f64> = (0..n).map(|i| ((i % 17) as f64 - 8.0) * 0.1).collect();
    let grads: Vec<Vec<f64>> = (0..3)
        .map(|t| {
            (0..n)
                .map(|i| (((i * 7 + t * 3) % 11) as f64 - 5.0) * 0.01)
                .collect()
        })
        .collect();
    let (lr, betas, wd) = (0.01, (0.9, 0.95), 0.1);
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&p0, &[n])).unwrap();
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr,
        beta1: betas.0,
        beta2: betas.1,
        weight_decay: wd,
    })
    .unwrap();
    let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
    for (t, g) in grads.iter().enumerate() {
        set_grad(&mut params, id, g, DType::F32);
        opt.step(&mut params).unwrap();
        reference_adam_step(&mut p, &mut m, &mut v, g, t as i32 + 1, lr, betas, wd, None);
    }
    assert_close(&params.value(id).to_vec_f64().unwrap(), &p, 2e-6);
}

#[test]
fn adam_atan2_second_step_by_hand() {
    // Element with g1 = 1, g2 = −1, β = (0.5, 0.75), lr = 0.1, no decay, p0 = 0:
    // t=1: m = 0.5, v = 0.25, step = (0.1/0.5)·atan2(0.5, 0.5/0.5) = 0.2·atan(0.5).
    // t=2: m = 0.5 + 0.5(−1 − 0.5) = −0.25, v = 0.25 + 0.25(1 − 0.25) = 0.4375,
    //      √v/√(1−0.5625) = √(0.4375/0.4375) = 1, step = (0.1/0.75)·atan2(−0.25, 1).
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&[0.0], &[1])).unwrap();
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr: 0.1,
        beta1: 0.5,
        beta2: 0.75,
        weight_decay: 0.0,
    })
    .unwrap();
    set_grad(&mut params, id, &[1.0], DType::F32);
    opt.step(&mut params).unwrap();
    let p1 = -0.2 * 0.5f64.atan();
    assert_close(&params.value(id).to_vec_f64().unwrap(), &[p1], 1e-6);
    set_grad(&mut params, id, &[-1.0], DType::F32);
    opt.step(&mut params).unwrap();
    let p2 = p1 - (0.1 / 0.75) * (-0.25f64).atan2(1.0);
    assert_close(&params.value(id).to_vec_f64().unwrap(), &[p2], 1e-6);
}

#[test]
fn bf16_gradients_of_f32_parameters_compute_in_f32() {
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&[1.0], &[1])).unwrap();
    set_grad(&mut params, id, &[-0.5], DType::BF16);
    let mut opt = AdamAtan2::new(AdamAtan2Config {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        weight_decay: 0.0,
    })
    .unwrap();
    opt.step(&mut params).unwrap();
    // −0.5 is exact in bf16; t = 1 moves by lr·atan(1−β1)/(1−β1) against the gradient's sign.
    assert_close(
        &params.value(id).to_vec_f64().unwrap(),
        &[1.0 + 0.1 * 0.1f64.atan() / 0.1],
        1e-6,
    );
    assert_eq!(params.value(id).dtype(), DType::F32);
}

#[test]
fn bad_hyperparameters_are_errors() {
    let w = AdamWConfig::default();
    for bad in [
        AdamWConfig { beta1: 1.0, ..w },
        AdamWConfig { beta2: -0.1, ..w },
        AdamWConfig { lr: -1e-3, ..w },
        AdamWConfig { lr: f64::NAN, ..w },
        AdamWConfig { eps: -1.0, ..w },
        AdamWConfig {
            weight_decay: -0.1,
            ..w
        },
    ] {
        assert!(matches!(AdamW::new(bad), Err(Error::Arg { .. })), "{bad:?}");
    }
    let a = AdamAtan2Config::default();
    for bad in [
        AdamAtan2Config { beta1: 1.5, ..a },
        AdamAtan2Config { beta2: 1.0, ..a },
        AdamAtan2Config {
            lr: f64::INFINITY,
            ..a
        },
        AdamAtan2Config {
            weight_decay: -1.0,
            ..a
        },
    ] {
        assert!(
            matches!(AdamAtan2::new(bad), Err(Error::Arg { .. })),
            "{bad:?}"
        );
    }
    assert!(AdamW::new(w).unwrap().set_lr(-1.0).is_err());
    assert!(AdamAtan2::new(a).unwrap().set_lr(f64::NAN).is_err());
    assert!(SignSgd::new(-0.1, 0.0).is_err());
    assert!(SignSgd::new(0.1, -1.0).is_err());
    assert!(SignSgd::new(0.1, 0.1).unwrap().set_lr(-2.0).is_err());
}

#[test]
fn gradient_shape_or_dtype_mismatch_is_an_error_that_changes_nothing() {
    let mut params = Params::new();
    let ok = params.add("ok", f32_tensor(&[1.0, 2.0], &[2])).unwrap();
    let bad = params.add("bad", f32_tensor(&[1.0, 2.0], &[2])).unwrap();
    set_grad(&mut params, ok, &[1.0, 1.0], DType::F32);
    params.get_mut(bad).grad = Some(Tensor::zeros([2, 1], DType::F32));
    let mut opt = AdamW::new(AdamWConfig::default()).unwrap();
    assert!(matches!(opt.step(&mut params), Err(Error::Shape { .. })));
    assert_eq!(params.value(ok).to_vec_f64().unwrap(), [1.0, 2.0]);
    assert_eq!(opt.step_count(ok), 0);

    let mut params = Params::new();
    let id = params.add("w", Tensor::ones([2], DType::BF16)).unwrap();
    set_grad(&mut params, id, &[1.0, 1.0], DType::BF16);
    let mut opt = AdamAtan2::new(AdamAtan2Config::default()).unwrap();
    assert!(matches!(opt.step(&mut params), Err(Error::DType { .. })));

    let mut params = Params::new();
    let id = params.add("w", Tensor::ones([2], DType::F32)).unwrap();
    params.get_mut(id).grad = Some(Tensor::from_vec(vec![1i32, 1], [2]).unwrap());
    assert!(matches!(opt.step(&mut params), Err(Error::DType { .. })));
}

#[test]
fn stepping_other_params_with_the_same_optimizer_is_an_error() {
    let mut first = Params::new();
    let id = first.add("a", f32_tensor(&[1.0], &[1])).unwrap();
    set_grad(&mut first, id, &[1.0], DType::F32);
    let mut opt = AdamAtan2::new(AdamAtan2Config::default()).unwrap();
    opt.step(&mut first).unwrap();
    let mut second = Params::new();
    let id = second.add("b", f32_tensor(&[1.0], &[1])).unwrap();
    set_grad(&mut second, id, &[1.0], DType::F32);
    assert!(matches!(opt.step(&mut second), Err(Error::Arg { .. })));
}

// ---- SignSGD --------------------------------------------------------------------------------

#[test]
fn sign_sgd_sums_duplicate_ids_and_leaves_untouched_rows_bit_identical() {
    // Table 5×2; ids [2, 0, 2, 4] with gradient rows summed per id:
    // id 0: [−3, 0]; id 2: [1 − 2, −1 + 0.5] = [−1, −0.5]; id 4: [0.25, −0.25].
    let table0 = [0.3, -0.7, 1.1, 2.2, -0.4, 0.9, 3.3, -4.4, 0.6, 0.0];
    let mut table = f32_tensor(&table0, &[5, 2]);
    let ids = Tensor::from_vec(vec![2i32, 0, 2, 4], [4]).unwrap();
    let grads = f32_tensor(&[1.0, -1.0, -3.0, 0.0, -2.0, 0.5, 0.25, -0.25], &[4, 2]);
    let (lr, wd) = (0.1, 0.5);
    let before = table.to_vec_f32().unwrap();
    SignSgd::new(lr, wd)
        .unwrap()
        .step(&mut table, &ids, &grads)
        .unwrap();
    let after = table.to_vec_f32().unwrap();
    let keep = 1.0 - 0.1 * 0.5;
    let want_touched = [
        (0, 0.3 * keep + 0.1),
        (1, -0.7 * keep),
        (4, -0.4 * keep + 0.1),
        (5, 0.9 * keep + 0.1),
        (8, 0.6 * keep - 0.1),
        (9, 0.0 * keep + 0.1),
    ];
    for (i, want) in want_touched {
        assert!(
            (after[i] as f64 - want).abs() < 1e-6,
            "element {i}: {} vs {want}",
            after[i]
        );
    }
    for i in [2, 3, 6, 7] {
        assert_eq!(
            after[i].to_bits(),
            before[i].to_bits(),
            "untouched element {i} moved"
        );
    }
}

#[test]
fn sign_sgd_cancelling_gradients_only_decay() {
    let mut table = Tensor::from_vec(vec![2.0f64, -2.0], [1, 2]).unwrap();
    let ids = Tensor::from_vec(vec![0i32, 0], [2]).unwrap();
    let grads = Tensor::from_vec(vec![1.0f64, -0.5, -1.0, 0.5], [2, 2]).unwrap();
    SignSgd::new(0.25, 0.4)
        .unwrap()
        .step(&mut table, &ids, &grads)
        .unwrap();
    assert_eq!(table.to_vec_f64().unwrap(), [2.0 * 0.9, -2.0 * 0.9]);
}

#[test]
fn sign_sgd_rejects_bad_ids_and_shapes() {
    let mut table = Tensor::zeros([3, 2], DType::F32);
    let opt = SignSgd::new(0.1, 0.1).unwrap();
    let grads = Tensor::zeros([1, 2], DType::F32);
    for bad in [3i32, -1] {
        let ids = Tensor::from_vec(vec![bad], [1]).unwrap();
        let err = opt.step(&mut table, &ids, &grads).unwrap_err();
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    let ids = Tensor::from_vec(vec![0i32, 1], [2]).unwrap();
    assert!(matches!(
        opt.step(&mut table, &ids, &grads),
        Err(Error::Shape { .. })
    ));
    let wide = Tensor::zeros([2, 3], DType::F32);
    assert!(matches!(
        opt.step(&mut table, &ids, &wide),
        Err(Error::Shape { .. })
    ));
    let float_ids = Tensor::zeros([2], DType::F32);
    assert!(matches!(
        opt.step(&mut table, &float_ids, &Tensor::zeros([2, 2], DType::F32)),
        Err(Error::DType { .. })
    ));
    let mut bf16_table = Tensor::zeros([3, 2], DType::BF16);
    assert!(matches!(
        opt.step(&mut bf16_table, &ids, &Tensor::zeros([2, 2], DType::F32)),
        Err(Error::DType { .. })
    ));
    assert_eq!(table.to_vec_f32().unwrap(), [0.0; 6]);
}

// ---- EMA ------------------------------------------------------------------------------------

#[test]
fn ema_after_k_steps_equals_the_closed_form() {
    // shadow_k = μ^k·p0 + (1−μ)·Σ_{i=1..k} μ^(k−i)·p_i.
    let mu = 0.9;
    let values: [[f64; 2]; 5] = [
        [1.0, -1.0],
        [2.0, 0.5],
        [-3.0, 4.0],
        [0.25, 0.0],
        [5.0, -2.5],
    ];
    let mut params = Params::new();
    let id = params.add("w", f32_tensor(&[0.5, 3.0], &[2])).unwrap();
    let mut ema = Ema::new(&params, mu).unwrap();
    for v in &values {
        params.get_mut(id).value = f32_tensor(v, &[2]);
        ema.update(&params).unwrap();
    }
    let k = values.len() as i32;
    let want: Vec<f64> = (0..2)
        .map(|j| {
            let p0 = [0.5, 3.0][j];
            mu.powi(k) * p0
                + (1.0 - mu)
                    * values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| mu.powi(k - 1 - i as i32) * v[j])
                        .sum::<f64>()
        })
        .collect();
    let sid = ema.shadow().id("w").unwrap();
    assert_close(&ema.shadow().value(sid).to_vec_f64().unwrap(), &want, 1e-6);
    assert_eq!(Ema::DEFAULT_DECAY, 0.999);
}

#[test]
fn ema_of_constant_weights_stays_put_and_swap_copy_round_trip() {
    let mut params = Params::new();
    let id = params
        .add("w", Tensor::from_vec(vec![1.5f64, -2.0], [2]).unwrap())
        .unwrap();
    let mut ema = Ema::new(&params, Ema::DEFAULT_DECAY).unwrap();
    for _ in 0..3 {
        ema.update(&params).unwrap();
    }
    assert_close(
        &ema.shadow()
            .value(ema.shadow().id("w").unwrap())
            .to_vec_f64()
            .unwrap(),
        &[1.5, -2.0],
        1e-14,
    );

    params.get_mut(id).value = Tensor::from_vec(vec![0.0f64, 0.0], [2]).unwrap();
    ema.update(&params).unwrap();
    let shadow = [1.5 * 0.999, -2.0 * 0.999];
    ema.swap(&mut params).unwrap();
    assert_close(&params.value(id).to_vec_f64().unwrap(), &shadow, 1e-14);
    ema.swap(&mut params).unwrap();
    assert_eq!(params.value(id).to_vec_f64().unwrap(), [0.0, 0.0]);
    ema.copy_to(&mut params).unwrap();
    assert_close(&params.value(id).to_vec_f64().unwrap(), &shadow, 1e-14);
}

#[test]
fn ema_errors_on_bad_decay_and_mismatched_params() {
    let mut params = Params::new();
    params.add("w", Tensor::zeros([2], DType::F32)).unwrap();
    assert!(matches!(Ema::new(&params, 1.0), Err(Error::Arg { .. })));
    assert!(matches!(Ema::new(&params, -0.5), Err(Error::Arg { .. })));
    let mut ema = Ema::new(&params, 0.99).unwrap();

    let mut renamed = Params::new();
    renamed.add("v", Tensor::zeros([2], DType::F32)).unwrap();
    assert!(matches!(ema.update(&renamed), Err(Error::Arg { .. })));
    assert!(ema.copy_to(&mut renamed).is_err());

    let mut reshaped = Params::new();
    reshaped.add("w", Tensor::zeros([3], DType::F32)).unwrap();
    assert!(matches!(ema.swap(&mut reshaped), Err(Error::Shape { .. })));

    let mut retyped = Params::new();
    retyped.add("w", Tensor::zeros([2], DType::F64)).unwrap();
    assert!(matches!(ema.update(&retyped), Err(Error::DType { .. })));

    let mut extra = Params::new();
    extra.add("w", Tensor::zeros([2], DType::F32)).unwrap();
    extra.add("x", Tensor::zeros([2], DType::F32)).unwrap();
    assert!(ema.update(&extra).is_err());
}

// ---- schedule -------------------------------------------------------------------------------

#[test]
fn schedule_values_at_warmup_peak_middle_and_end() {
    let s = WarmupCosine::new(1.0, 10, 110, 0.1).unwrap();
    assert_eq!(s.lr(0), 0.0);
    assert!((s.lr(1) - 0.1).abs() < 1e-15);
    assert!((s.lr(5) - 0.5).abs() < 1e-15);
    assert_eq!(s.lr(10), 1.0);
    // Half-way through the decay: 0.1 + 0.9·½(1 + cos(π/2)) = 0.55.
    assert!((s.lr(60) - 0.55).abs() < 1e-12);
    // A quarter: 0.1 + 0.9·½(1 + cos(π/4)).
    assert!((s.lr(35) - (0.1 + 0.45 * (1.0 + (PI / 4.0).cos()))).abs() < 1e-12);
    assert!((s.lr(110) - 0.1).abs() < 1e-12);
    // Past the end the rate stays at the floor.
    assert!((s.lr(500) - 0.1).abs() < 1e-12);
    assert_eq!(s.lr(77), cosine_schedule_with_warmup(77, 1.0, 10, 110, 0.1));
}

#[test]
fn schedule_is_monotone_up_then_down() {
    let s = WarmupCosine::new(3e-4, 20, 200, 0.0).unwrap();
    for step in 0..20 {
        assert!(
            s.lr(step + 1) > s.lr(step),
            "warmup not increasing at {step}"
        );
    }
    for step in 20..250 {
        assert!(
            s.lr(step + 1) <= s.lr(step),
            "decay not decreasing at {step}"
        );
    }
    assert!(s.lr(200).abs() < 1e-20);
}

#[test]
fn schedule_min_ratio_one_is_constant_after_warmup_and_presets() {
    let s = WarmupCosine::hrm_trm(1e-4, 10_000).unwrap();
    assert!((s.lr(1000) - 0.5e-4).abs() < 1e-18);
    for step in [2000, 2001, 5000, 10_000, 20_000] {
        assert_eq!(s.lr(step), 1e-4);
    }
    let sotaku = WarmupCosine::sotaku();
    assert_eq!(sotaku.lr(1400), 2e-3);
    assert!((sotaku.lr(700) - 1e-3).abs() < 1e-18);
    assert!((sotaku.lr(50_000) - 2e-5).abs() < 1e-18);
    // No warmup: the first step already runs at the base rate.
    assert_eq!(cosine_schedule_with_warmup(0, 0.5, 0, 10, 0.0), 0.5);
}

#[test]
fn schedule_rejects_bad_settings() {
    assert!(matches!(
        WarmupCosine::new(-1e-3, 0, 10, 0.1),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        WarmupCosine::new(f64::NAN, 0, 10, 0.1),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        WarmupCosine::new(1e-3, 0, 10, 1.5),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        WarmupCosine::new(1e-3, 0, 10, -0.1),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        WarmupCosine::new(1e-3, 20, 10, 0.1),
        Err(Error::Arg { .. })
    ));
}
