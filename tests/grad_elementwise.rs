//! Gradient checks (f64 central differences, proptest shapes) and error cases for the
//! elementwise and reduction ops.

use proptest::prelude::*;
use recur::testing::GradCheck;
use recur::{DType, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn grad_add_mul_scale(dims in shape(), seed in any::<u64>()) {
        let (a, b) = (randn(&dims, seed), randn(&dims, seed ^ 1));
        GradCheck::new().run(&[a, b], |t, v| {
            let s = t.add(&v[0], &v[1])?;
            let p = t.mul(&s, &v[1])?;
            t.scale(&p, -1.7)
        }).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_inject_add_two_and_three_terms(dims in shape(), seed in any::<u64>()) {
        let xs: Vec<Tensor> = (0..3).map(|i| randn(&dims, seed.wrapping_add(i))).collect();
        GradCheck::new().run(&xs, |t, v| {
            let two = t.inject_add(&[&v[0], &v[1]])?;
            let three = t.inject_add(&[&v[0], &v[1], &v[2]])?;
            t.mul(&two, &three)
        }).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_sum_mean_axis(dims in shape(), seed in any::<u64>(), axis in 0usize..3) {
        let axis = (axis % dims.len()) as isize;
        let x = randn(&dims, seed);
        GradCheck::new().run(std::slice::from_ref(&x), |t, v| t.sum(&v[0], axis)).map_err(TestCaseError::fail)?;
        GradCheck::new().run(std::slice::from_ref(&x), |t, v| t.mean(&v[0], axis - dims.len() as isize)).map_err(TestCaseError::fail)?;
        GradCheck::new().run(&[x], |t, v| t.sum_all(&v[0])).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn reductions_match_hand_computed_values() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let t = Tape::new();
    let v = Var::constant(x);
    assert_eq!(
        t.sum(&v, 0).unwrap().value().to_vec_f32().unwrap(),
        [5.0, 7.0, 9.0]
    );
    assert_eq!(
        t.mean(&v, -1).unwrap().value().to_vec_f32().unwrap(),
        [2.0, 5.0]
    );
    assert_eq!(t.sum_all(&v).unwrap().value().item().unwrap(), 21.0);
    assert_eq!(
        t.inject_add(&[&v, &v, &v])
            .unwrap()
            .value()
            .to_vec_f32()
            .unwrap()[5],
        18.0
    );
}

#[test]
fn mismatched_shapes_dtypes_and_axes_are_errors() {
    let t = Tape::new();
    let a = Var::constant(Tensor::zeros([2, 3], DType::F32));
    let b = Var::constant(Tensor::zeros([3, 2], DType::F32));
    let c = Var::constant(Tensor::zeros([2, 3], DType::F64));
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2], [2]).unwrap());
    assert!(matches!(t.add(&a, &b), Err(recur::Error::Shape { .. })));
    assert!(matches!(t.mul(&a, &c), Err(recur::Error::DType { .. })));
    assert!(matches!(
        t.scale(&ids, 2.0),
        Err(recur::Error::DType { .. })
    ));
    assert!(matches!(t.sum(&a, 2), Err(recur::Error::Arg { .. })));
    assert!(t.inject_add(&[&a, &a, &a, &a]).is_err());
    assert!(t.inject_add(&[]).is_err());
}

#[test]
fn bf16_storage_computes_in_f32_and_rounds_back() {
    let x = Tensor::from_vec(vec![1.0f32, 1.0 / 3.0], [2])
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let t = Tape::new();
    let y = t.scale(&Var::constant(x), 3.0).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let v = y.value().to_vec_f32().unwrap();
    assert_eq!(v[0], 3.0);
    // 1/3 in bf16 is 0.333984375; ×3 in f32 is 1 + 2⁻⁹, which bf16's 7-bit mantissa rounds to 1.
    assert_eq!(v[1], 1.0);
}
