//! Gradient checks (f64 central differences, proptest shapes), naive-loop values, dtype
//! agreement and error cases for `linear` and `matmul`.

use proptest::prelude::*;
use recur::testing::{check_close, rel_l2, GradCheck};
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn with_last(dims: &[usize], last: usize) -> Vec<usize> {
    let mut d = dims.to_vec();
    d.push(last);
    d
}

/// `x·Wᵀ + b` by the definition, row by row.
fn naive_linear(x: &[f64], w: &[f64], b: Option<&[f64]>, inf: usize, outf: usize) -> Vec<f64> {
    let rows = x.len() / inf;
    let mut y = vec![0.0; rows * outf];
    for r in 0..rows {
        for o in 0..outf {
            let dot: f64 = (0..inf).map(|i| x[r * inf + i] * w[o * inf + i]).sum();
            y[r * outf + o] = dot + b.map_or(0.0, |b| b[o]);
        }
    }
    y
}

/// `a·b` per batch item (`b_shared`: one `b` for every item), by the definition.
fn naive_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, b_shared: bool) -> Vec<f64> {
    let batch = a.len() / (m * k);
    let mut c = vec![0.0; batch * m * n];
    for t in 0..batch {
        let bt = if b_shared { 0 } else { t * k * n };
        for i in 0..m {
            for j in 0..n {
                c[(t * m + i) * n + j] = (0..k)
                    .map(|p| a[(t * m + i) * k + p] * b[bt + p * n + j])
                    .sum();
            }
        }
    }
    c
}

fn lead_dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn grad_linear_with_and_without_bias(lead in lead_dims(), inf in 1usize..6, outf in 1usize..6, seed in any::<u64>()) {
        let x = randn(&with_last(&lead, inf), seed);
        let w = randn(&[outf, inf], seed ^ 1);
        let b = randn(&[outf], seed ^ 2);
        GradCheck::new().run(&[x.clone(), w.clone(), b], |t, v| t.linear(&v[0], &v[1], Some(&v[2])))
            .map_err(TestCaseError::fail)?;
        GradCheck::new().run(&[x, w], |t, v| t.linear(&v[0], &v[1], None))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_matmul_batched(batch in lead_dims(), m in 1usize..5, k in 1usize..5, n in 1usize..5, seed in any::<u64>()) {
        let mut a_dims = batch.clone();
        a_dims.extend([m, k]);
        let mut b_dims = batch.clone();
        b_dims.extend([k, n]);
        GradCheck::new().run(&[randn(&a_dims, seed), randn(&b_dims, seed ^ 1)], |t, v| t.matmul(&v[0], &v[1]))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_matmul_shared_b(batch in lead_dims(), m in 1usize..5, k in 1usize..5, n in 1usize..5, seed in any::<u64>()) {
        let mut a_dims = batch.clone();
        a_dims.extend([m, k]);
        GradCheck::new().run(&[randn(&a_dims, seed), randn(&[k, n], seed ^ 1)], |t, v| t.matmul(&v[0], &v[1]))
            .map_err(TestCaseError::fail)?;
    }
}

/// Forward values and all three gradients against naive loops, for a problem large enough to
/// take the multi-threaded path (more than 2²⁰ multiply-adds).
#[test]
fn linear_large_matches_naive_loops_forward_and_backward() {
    let (rows, inf, outf) = (300, 64, 70);
    let (x, w, b) = (
        randn(&[3, 100, inf], 1),
        randn(&[outf, inf], 2),
        randn(&[outf], 3),
    );
    let dy = randn(&[3, 100, outf], 4);
    let tape = Tape::new();
    let (xv, wv, bv) = (
        tape.leaf(x.clone()),
        tape.leaf(w.clone()),
        tape.leaf(b.clone()),
    );
    let y = tape.linear(&xv, &wv, Some(&bv)).unwrap();
    assert_eq!(y.dims(), [3, 100, outf]);
    let (xs, ws, bs, g) = (f64s(&x), f64s(&w), f64s(&b), f64s(&dy));
    check_close(
        &f64s(y.value()),
        &naive_linear(&xs, &ws, Some(&bs), inf, outf),
        1e-10,
        1e-10,
    )
    .unwrap();

    let loss = tape
        .sum_all(&tape.mul(&y, &Var::constant(dy)).unwrap())
        .unwrap();
    let grads = tape.backward(&loss).unwrap();
    let mut dx = vec![0.0; rows * inf];
    let mut dw = vec![0.0; outf * inf];
    let mut db = vec![0.0; outf];
    for r in 0..rows {
        for o in 0..outf {
            db[o] += g[r * outf + o];
            for i in 0..inf {
                dx[r * inf + i] += g[r * outf + o] * ws[o * inf + i];
                dw[o * inf + i] += g[r * outf + o] * xs[r * inf + i];
            }
        }
    }
    check_close(&f64s(grads.get(&xv).unwrap()), &dx, 1e-10, 1e-10).unwrap();
    check_close(&f64s(grads.get(&wv).unwrap()), &dw, 1e-10, 1e-10).unwrap();
    check_close(&f64s(grads.get(&bv).unwrap()), &db, 1e-10, 1e-10).unwrap();
}

#[test]
fn matmul_large_matches_naive_loops_forward_and_backward() {
    let (batch, m, k, n) = (3, 100, 64, 80);
    for b_shared in [false, true] {
        let a = randn(&[batch, m, k], 5);
        let b = if b_shared {
            randn(&[k, n], 6)
        } else {
            randn(&[batch, k, n], 6)
        };
        let dy = randn(&[batch, m, n], 7);
        let tape = Tape::new();
        let (av, bv) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
        let y = tape.matmul(&av, &bv).unwrap();
        let (as_, bs, g) = (f64s(&a), f64s(&b), f64s(&dy));
        check_close(
            &f64s(y.value()),
            &naive_matmul(&as_, &bs, m, k, n, b_shared),
            1e-10,
            1e-10,
        )
        .unwrap();

        let loss = tape
            .sum_all(&tape.mul(&y, &Var::constant(dy)).unwrap())
            .unwrap();
        let grads = tape.backward(&loss).unwrap();
        let mut da = vec![0.0; batch * m * k];
        let mut db = vec![0.0; bs.len()];
        for t in 0..batch {
            let bt = if b_shared { 0 } else { t * k * n };
            for i in 0..m {
                for j in 0..n {
                    let gij = g[(t * m + i) * n + j];
                    for p in 0..k {
                        da[(t * m + i) * k + p] += gij * bs[bt + p * n + j];
                        db[bt + p * n + j] += gij * as_[(t * m + i) * k + p];
                    }
                }
            }
        }
        check_close(&f64s(grads.get(&av).unwrap()), &da, 1e-10, 1e-10).unwrap();
        check_close(&f64s(grads.get(&bv).unwrap()), &db, 1e-10, 1e-10).unwrap();
    }
}

#[test]
fn linear_hand_computed_values() {
    // x = [1, 2], W = [[1, 0], [0, 1], [1, 1]], b = [0.5, -1, 0] → [1.5, 1, 3].
    let t = Tape::new();
    let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], [1, 2]).unwrap());
    let w = Var::constant(Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2]).unwrap());
    let b = Var::constant(Tensor::from_vec(vec![0.5f32, -1.0, 0.0], [3]).unwrap());
    let y = t.linear(&x, &w, Some(&b)).unwrap();
    assert_eq!(y.dims(), [1, 3]);
    assert_eq!(y.value().to_vec_f32().unwrap(), [1.5, 1.0, 3.0]);
    // A 1-D input is one row.
    let x1 = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], [2]).unwrap());
    assert_eq!(
        t.linear(&x1, &w, None)
            .unwrap()
            .value()
            .to_vec_f32()
            .unwrap(),
        [1.0, 2.0, 3.0]
    );
}

#[test]
fn matmul_hand_computed_values() {
    let t = Tape::new();
    let a = Var::constant(Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    let b = Var::constant(Tensor::from_vec(vec![5.0f64, 6.0, 7.0, 8.0], [2, 2]).unwrap());
    assert_eq!(
        t.matmul(&a, &b).unwrap().value().to_vec_f64().unwrap(),
        [19.0, 22.0, 43.0, 50.0]
    );
}

#[test]
fn f32_agrees_with_f64_and_bf16_storage_works() {
    let (x, w, b) = (
        randn(&[4, 7, 33], 11),
        randn(&[19, 33], 12),
        randn(&[19], 13),
    );
    let t = Tape::new();
    let run = |dtype: DType| -> Tensor {
        let c = |v: &Tensor| Var::constant(v.to_dtype(dtype).unwrap());
        t.linear(&c(&x), &c(&w), Some(&c(&b))).unwrap().into_value()
    };
    let (y64, y32, y16) = (run(DType::F64), run(DType::F32), run(DType::BF16));
    assert_eq!(y32.dtype(), DType::F32);
    assert_eq!(y16.dtype(), DType::BF16);
    assert!(rel_l2(&f64s(&y32), &f64s(&y64)) < 1e-6);
    // bf16 inputs and output: about 3 significant digits.
    assert!(rel_l2(&f64s(&y16), &f64s(&y64)) < 2e-2);

    let (a, m) = (randn(&[2, 5, 9], 14), randn(&[2, 9, 6], 15));
    let mm = |dtype: DType| -> Vec<f64> {
        let c = |v: &Tensor| Var::constant(v.to_dtype(dtype).unwrap());
        f64s(t.matmul(&c(&a), &c(&m)).unwrap().value())
    };
    assert!(rel_l2(&mm(DType::F32), &mm(DType::F64)) < 1e-6);
    assert!(rel_l2(&mm(DType::BF16), &mm(DType::F64)) < 2e-2);
}

#[test]
fn only_gradients_that_are_needed_flow() {
    let t = Tape::new();
    let x = t.leaf(randn(&[3, 4], 1));
    let w = Var::constant(randn(&[2, 4], 2));
    let y = t.linear(&x, &w, None).unwrap();
    let grads = t.backward(&t.sum_all(&y).unwrap()).unwrap();
    // d(Σy)/dx = column sums of W, broadcast to every row.
    let ws = f64s(w.value());
    let expected: Vec<f64> = (0..12).map(|e| ws[e % 4] + ws[4 + e % 4]).collect();
    check_close(&f64s(grads.get(&x).unwrap()), &expected, 1e-10, 1e-10).unwrap();
    assert!(grads.get(&w).is_none());
}

#[test]
fn wrong_shapes_and_dtypes_are_errors() {
    let t = Tape::new();
    let c = |dims: &[usize], dtype: DType| Var::constant(Tensor::zeros(dims.to_vec(), dtype));
    let x = c(&[2, 3], DType::F32);
    let is_shape = |r: recur::Result<Var>| matches!(r, Err(Error::Shape { .. }));
    let is_dtype = |r: recur::Result<Var>| matches!(r, Err(Error::DType { .. }));
    assert!(is_shape(t.linear(&x, &c(&[3], DType::F32), None)));
    assert!(is_shape(t.linear(&x, &c(&[4, 2], DType::F32), None)));
    assert!(is_shape(t.linear(
        &x,
        &c(&[4, 3], DType::F32),
        Some(&c(&[3], DType::F32))
    )));
    assert!(is_shape(t.linear(
        &c(&[], DType::F32),
        &c(&[4, 3], DType::F32),
        None
    )));
    assert!(is_dtype(t.linear(&x, &c(&[4, 3], DType::F64), None)));
    assert!(is_dtype(t.linear(
        &x,
        &c(&[4, 3], DType::F32),
        Some(&c(&[4], DType::BF16))
    )));
    assert!(is_dtype(t.linear(
        &c(&[2, 3], DType::I32),
        &c(&[4, 3], DType::I32),
        None
    )));

    assert!(is_shape(
        t.matmul(&c(&[3], DType::F32), &c(&[3, 2], DType::F32))
    ));
    assert!(is_shape(t.matmul(&x, &c(&[2, 2], DType::F32))));
    assert!(is_shape(
        t.matmul(&c(&[2, 2, 3], DType::F32), &c(&[3, 3, 2], DType::F32))
    ));
    assert!(is_shape(t.matmul(&x, &c(&[1, 3, 2], DType::F32))));
    assert!(is_dtype(t.matmul(&x, &c(&[3, 2], DType::F64))));
}
