//! Gradient checks (f64 central differences, proptest shapes), hand-computed values, dtype
//! agreement and error cases for the pointwise activations and SwiGLU.

use proptest::prelude::*;
use recur::device::cpu::activation::Activation;
use recur::testing::{check_close, rel_l2, GradCheck};
use recur::{DType, Error, Tape, Tensor, Var};

const ALL: [Activation; 6] = [
    Activation::Silu,
    Activation::Relu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Exp,
];

fn randn(dims: &[usize], std: f64, seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), std, seed, DType::F64).unwrap()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 1..4)
}

/// Runs the named Tape method, so each public entry point is exercised.
fn apply(t: &Tape, act: Activation, x: &Var) -> recur::Result<Var> {
    match act {
        Activation::Silu => t.silu(x),
        Activation::Relu => t.relu(x),
        Activation::Gelu => t.gelu(x),
        Activation::Sigmoid => t.sigmoid(x),
        Activation::Softplus => t.softplus(x),
        Activation::Exp => t.exp(x),
    }
}

fn values(act: Activation, xs: &[f64]) -> Vec<f64> {
    let t = Tape::new();
    let x = Var::constant(Tensor::from_vec(xs.to_vec(), [xs.len()]).unwrap());
    apply(&t, act, &x).unwrap().value().to_vec_f64().unwrap()
}

fn grads(act: Activation, xs: &[f64]) -> Vec<f64> {
    let t = Tape::new();
    let x = t.leaf(Tensor::from_vec(xs.to_vec(), [xs.len()]).unwrap());
    let y = apply(&t, act, &x).unwrap();
    let g = t.backward(&t.sum_all(&y).unwrap()).unwrap();
    g.get(&x).unwrap().to_vec_f64().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn grad_every_activation(dims in shape(), seed in any::<u64>()) {
        // std 3 reaches well into every function's curved and flat regions.
        let x = randn(&dims, 3.0, seed);
        for act in ALL {
            // ReLU's gradient is zero wherever x < 0, which can be all of a small input.
            let check = if act == Activation::Relu { GradCheck::new().allow_zero() } else { GradCheck::new() };
            check.run(std::slice::from_ref(&x), |t, v| apply(t, act, &v[0]))
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", act.name())))?;
        }
    }

    #[test]
    fn grad_softplus_above_threshold(dims in shape(), seed in any::<u64>()) {
        let x = randn(&dims, 1.0, seed).to_vec_f64().unwrap();
        let x: Vec<f64> = x.iter().map(|v| 25.0 + v).collect();
        GradCheck::new().run(&[Tensor::from_vec(x, dims).unwrap()], |t, v| t.softplus(&v[0]))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_swiglu(lead in prop::collection::vec(1usize..5, 0..3), inter in 1usize..5, seed in any::<u64>()) {
        let mut dims = lead.clone();
        dims.push(2 * inter);
        GradCheck::new().run(&[randn(&dims, 2.0, seed)], |t, v| t.swiglu(&v[0]))
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn activations_match_hand_computed_values() {
    let xs = [-1.0, 0.0, 1.0, 2.0];
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let close = |a: &[f64], b: &[f64]| check_close(a, b, 1e-15, 1e-14).unwrap();
    close(&values(Activation::Sigmoid, &xs), &xs.map(sig));
    close(&values(Activation::Silu, &xs), &xs.map(|x| x * sig(x)));
    close(&values(Activation::Relu, &xs), &[0.0, 0.0, 1.0, 2.0]);
    close(&values(Activation::Exp, &xs), &xs.map(f64::exp));
    close(
        &values(Activation::Softplus, &xs),
        &xs.map(|x| (1.0 + x.exp()).ln()),
    );
    // Φ(±1) = 0.841344746068543 / 0.158655253931457 (tables of the normal CDF).
    close(
        &values(Activation::Gelu, &xs),
        &[
            -0.158655253931457,
            0.0,
            0.841344746068543,
            2.0 * 0.977249868051821,
        ],
    );
    // GELU′(x) = Φ(x) + x·φ(x); at 1: 0.841344746 + 0.241970725.
    close(
        &grads(Activation::Gelu, &[0.0, 1.0]),
        &[0.5, 0.841344746068543 + 0.241970724519143],
    );
    close(&grads(Activation::Silu, &[0.0]), &[0.5]);
    close(&grads(Activation::Sigmoid, &[0.0]), &[0.25]);
    // ReLU′(0) is 0, as in PyTorch.
    close(
        &grads(Activation::Relu, &[-1.0, 0.0, 3.0]),
        &[0.0, 0.0, 1.0],
    );
}

#[test]
fn softplus_is_the_identity_above_threshold_20() {
    // Above 20: exactly x, slope exactly 1. At or below: log1p(exp(x)) and slope σ(x).
    let xs = [19.5, 20.0, 20.5, 40.0, 1000.0];
    let v = values(Activation::Softplus, &xs);
    assert_eq!(&v[2..], &[20.5, 40.0, 1000.0]);
    assert_eq!(v[0], 19.5f64.exp().ln_1p());
    assert_eq!(v[1], 20.0f64.exp().ln_1p());
    assert_ne!(v[1], 20.0);
    let g = grads(Activation::Softplus, &xs);
    assert_eq!(&g[2..], &[1.0, 1.0, 1.0]);
    assert!(g[0] < 1.0 && g[0] > 1.0 - 1e-8);
}

#[test]
fn extreme_inputs_stay_finite() {
    let xs = [-1000.0, -80.0, 80.0, 1000.0];
    for act in [
        Activation::Silu,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Gelu,
        Activation::Relu,
    ] {
        assert!(
            values(act, &xs).iter().all(|v| v.is_finite()),
            "{}",
            act.name()
        );
        assert!(
            grads(act, &xs).iter().all(|v| v.is_finite()),
            "{}",
            act.name()
        );
    }
    assert_eq!(values(Activation::Sigmoid, &[-1000.0, 1000.0]), [0.0, 1.0]);
    assert_eq!(values(Activation::Softplus, &[-1000.0]), [0.0]);
}

#[test]
fn swiglu_takes_gate_from_the_first_half() {
    // gate = [1, -2], up = [3, 0.5] → [silu(1)·3, silu(−2)·0.5].
    let silu = |x: f64| x / (1.0 + (-x).exp());
    let t = Tape::new();
    let x = Var::constant(Tensor::from_vec(vec![1.0, -2.0, 3.0, 0.5], [1, 4]).unwrap());
    let y = t.swiglu(&x).unwrap();
    assert_eq!(y.dims(), [1, 2]);
    check_close(
        &y.value().to_vec_f64().unwrap(),
        &[silu(1.0) * 3.0, silu(-2.0) * 0.5],
        1e-15,
        1e-14,
    )
    .unwrap();
}

#[test]
fn swiglu_equals_silu_of_gate_times_up_with_gradients() {
    let x = randn(&[3, 5, 8], 1.5, 9);
    let run = |fused: bool| {
        let t = Tape::new();
        let v = t.leaf(x.clone());
        let y = if fused {
            t.swiglu(&v).unwrap()
        } else {
            let parts = t.split(&v, &[4, 4], -1).unwrap();
            t.mul(&t.silu(&parts[0]).unwrap(), &parts[1]).unwrap()
        };
        let w = Var::constant(randn(&[3, 5, 4], 1.0, 10));
        let g = t
            .backward(&t.sum_all(&t.mul(&y, &w).unwrap()).unwrap())
            .unwrap();
        (
            y.value().to_vec_f64().unwrap(),
            g.get(&v).unwrap().to_vec_f64().unwrap(),
        )
    };
    let ((y1, g1), (y2, g2)) = (run(true), run(false));
    check_close(&y1, &y2, 1e-14, 1e-13).unwrap();
    check_close(&g1, &g2, 1e-14, 1e-13).unwrap();
}

#[test]
fn f32_agrees_with_f64_and_bf16_storage_works() {
    let x = randn(&[7, 128], 3.0, 21);
    // bf16 results are compared with f64 on the same bf16-rounded inputs, so only the output's
    // rounding (8 significant bits) counts.
    let x16 = x.to_dtype(DType::BF16).unwrap();
    let x16_wide = x16.to_dtype(DType::F64).unwrap();
    let t = Tape::new();
    let run = |x: &Tensor, f: &dyn Fn(&Var) -> recur::Result<Var>| {
        let y = f(&Var::constant(x.clone())).unwrap();
        assert_eq!(y.dtype(), x.dtype());
        y.value().to_vec_f64().unwrap()
    };
    let x32 = x.to_dtype(DType::F32).unwrap();
    for act in ALL {
        let f = |v: &Var| apply(&t, act, v);
        assert!(
            rel_l2(&run(&x32, &f), &run(&x, &f)) < 1e-6,
            "{}",
            act.name()
        );
        assert!(
            rel_l2(&run(&x16, &f), &run(&x16_wide, &f)) < 4e-3,
            "{}",
            act.name()
        );
    }
    let f = |v: &Var| t.swiglu(v);
    assert!(rel_l2(&run(&x32, &f), &run(&x, &f)) < 1e-6);
    assert!(rel_l2(&run(&x16, &f), &run(&x16_wide, &f)) < 4e-3);
}

#[test]
fn wrong_dtypes_and_shapes_are_errors() {
    let t = Tape::new();
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2], [2]).unwrap());
    for act in ALL {
        assert!(
            matches!(apply(&t, act, &ids), Err(Error::DType { .. })),
            "{}",
            act.name()
        );
    }
    assert!(matches!(t.swiglu(&ids), Err(Error::DType { .. })));
    let odd = Var::constant(Tensor::zeros([2, 3], DType::F32));
    assert!(matches!(t.swiglu(&odd), Err(Error::Shape { .. })));
    let scalar = Var::constant(Tensor::scalar(1.0, DType::F32));
    assert!(matches!(t.swiglu(&scalar), Err(Error::Shape { .. })));
}
