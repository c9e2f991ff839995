//! Gradient checks (f64 central differences, proptest shapes), hand-computed values and error
//! cases for the layout ops: `transpose_last2`, `concat`, `split`, `narrow`, `argmax`.

use proptest::prelude::*;
use recur::testing::GradCheck;
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

fn shape(min_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, min_rank..4)
}

fn f32s(v: &Var) -> Vec<f32> {
    v.value().to_vec_f32().unwrap()
}

fn iota(dims: &[usize]) -> Var {
    let n: usize = dims.iter().product();
    Var::constant(
        Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), dims.to_vec()).unwrap(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn grad_transpose_last2(dims in shape(2), seed in any::<u64>()) {
        GradCheck::new().run(&[randn(&dims, seed)], |t, v| t.transpose_last2(&v[0]))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_concat(dims in shape(1), extra in prop::collection::vec(1usize..4, 2..4), axis in 0usize..3, seed in any::<u64>()) {
        let ax = axis % dims.len();
        let inputs: Vec<Tensor> = extra.iter().enumerate().map(|(i, &len)| {
            let mut d = dims.clone();
            d[ax] = len;
            randn(&d, seed.wrapping_add(i as u64))
        }).collect();
        let neg = ax as isize - dims.len() as isize;
        GradCheck::new().run(&inputs, |t, v| {
            let refs: Vec<&Var> = v.iter().collect();
            t.concat(&refs, neg)
        }).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_split_and_narrow(dims in shape(1), axis in 0usize..3, cut in 0usize..5, seed in any::<u64>()) {
        let ax = axis % dims.len();
        let n = dims[ax];
        let cut = cut % (n + 1);
        let x = randn(&dims, seed);
        // Rejoin the pieces in reverse order, so every element moves.
        GradCheck::new().run(std::slice::from_ref(&x), |t, v| {
            let p = t.split(&v[0], &[cut, n - cut], ax as isize)?;
            t.concat(&[&p[1], &p[0]], ax as isize)
        }).map_err(TestCaseError::fail)?;
        let len = n - cut;
        if len > 0 {
            GradCheck::new().run(&[x], |t, v| t.narrow(&v[0], ax as isize, cut, len))
                .map_err(TestCaseError::fail)?;
        }
    }
}

#[test]
fn transpose_last2_hand_computed() {
    let t = Tape::new();
    // [2, 2, 3] → [2, 3, 2]: item 0 is [[0,1,2],[3,4,5]] → [[0,3],[1,4],[2,5]].
    let y = t.transpose_last2(&iota(&[2, 2, 3])).unwrap();
    assert_eq!(y.dims(), [2, 3, 2]);
    assert_eq!(f32s(&y), [0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);
}

#[test]
fn concat_split_narrow_hand_computed() {
    let t = Tape::new();
    let a = iota(&[2, 2]);
    let b = Var::constant(Tensor::from_vec(vec![9.0f32, 8.0], [2, 1]).unwrap());
    let c = t.concat(&[&a, &b], 1).unwrap();
    assert_eq!(c.dims(), [2, 3]);
    assert_eq!(f32s(&c), [0., 1., 9., 2., 3., 8.]);
    let r = t.concat(&[&a, &a], 0).unwrap();
    assert_eq!(f32s(&r), [0., 1., 2., 3., 0., 1., 2., 3.]);

    let parts = t.split(&c, &[1, 0, 2], -1).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(f32s(&parts[0]), [0., 2.]);
    assert_eq!(parts[1].dims(), [2, 0]);
    assert_eq!(f32s(&parts[2]), [1., 9., 3., 8.]);

    // Slicing a puzzle prefix of P = 2 off [B = 2, P + S = 5, V = 1].
    let logits = iota(&[2, 5, 1]);
    let s = t.narrow(&logits, 1, 2, 3).unwrap();
    assert_eq!(s.dims(), [2, 3, 1]);
    assert_eq!(f32s(&s), [2., 3., 4., 7., 8., 9.]);
}

#[test]
fn unused_split_pieces_get_zero_gradient() {
    let t = Tape::new();
    let x = t.leaf(Tensor::zeros([2, 6], DType::F64));
    let parts = t.split(&x, &[2, 3, 1], 1).unwrap();
    let g = t.backward(&t.sum_all(&parts[1]).unwrap()).unwrap();
    let row = [0., 0., 1., 1., 1., 0.];
    assert_eq!(
        g.get(&x).unwrap().to_vec_f64().unwrap(),
        [row, row].concat()
    );

    let t = Tape::new();
    let x = t.leaf(Tensor::zeros([4, 2], DType::F64));
    let s = t.narrow(&x, 0, 1, 2).unwrap();
    let g = t.backward(&t.sum_all(&s).unwrap()).unwrap();
    assert_eq!(
        g.get(&x).unwrap().to_vec_f64().unwrap(),
        [0., 0., 1., 1., 1., 1., 0., 0.]
    );
}

#[test]
fn argmax_picks_the_first_maximum_and_treats_nan_as_largest() {
    let t = Tape::new();
    let x = Var::constant(
        Tensor::from_vec(
            vec![
                1.0f32,
                3.0,
                3.0,
                -1.0,
                0.0,
                0.0,
                f32::NAN,
                5.0,
                2.0,
                7.0,
                7.0,
                7.0,
            ],
            [4, 3],
        )
        .unwrap(),
    );
    let rows = t.argmax(&x, -1).unwrap();
    assert_eq!(rows.dtype(), DType::I32);
    assert_eq!(rows.dims(), [4]);
    assert_eq!(rows.to_vec_i32().unwrap(), [1, 1, 0, 0]);
    let cols = t.argmax(&x, 0).unwrap();
    assert_eq!(cols.to_vec_i32().unwrap(), [2, 3, 3]);
    let bf = Var::constant(x.value().to_dtype(DType::BF16).unwrap());
    assert_eq!(
        t.argmax(&bf, 1).unwrap().to_vec_i32().unwrap(),
        [1, 1, 0, 0]
    );
}

#[test]
fn integer_and_bf16_tensors_move_unchanged() {
    let t = Tape::new();
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], [2, 3]).unwrap());
    assert_eq!(
        t.narrow(&ids, 1, 1, 2)
            .unwrap()
            .value()
            .to_vec_i32()
            .unwrap(),
        [2, 3, 5, 6]
    );
    assert_eq!(
        t.transpose_last2(&ids)
            .unwrap()
            .value()
            .to_vec_i32()
            .unwrap(),
        [1, 4, 2, 5, 3, 6]
    );
    assert_eq!(t.concat(&[&ids, &ids], 0).unwrap().dims(), [4, 3]);

    let x = Tensor::from_vec(vec![1.0f32, 1.0 / 3.0, -7.5, 1e-3, 2.71, 65504.0], [2, 3])
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let y = t
        .transpose_last2(&t.transpose_last2(&Var::constant(x.clone())).unwrap())
        .unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_eq!(y.value().to_vec_f32().unwrap(), x.to_vec_f32().unwrap());
}

#[test]
fn bad_shapes_axes_and_ranges_are_errors() {
    let t = Tape::new();
    let x = Var::constant(Tensor::zeros([2, 3], DType::F32));
    let v = Var::constant(Tensor::zeros([3], DType::F32));
    let is_shape = |r: recur::Result<Var>| matches!(r, Err(Error::Shape { .. }));
    let is_arg = |r: recur::Result<Var>| matches!(r, Err(Error::Arg { .. }));
    assert!(is_shape(t.transpose_last2(&v)));

    assert!(is_shape(t.concat(
        &[&x, &Var::constant(Tensor::zeros([3, 3], DType::F32))],
        1
    )));
    assert!(is_shape(t.concat(&[&x, &v], 0)));
    assert!(t.concat(&[], 0).is_err());
    assert!(is_arg(t.concat(&[&x, &x], 2)));
    assert!(matches!(
        t.concat(&[&x, &Var::constant(Tensor::zeros([2, 3], DType::F64))], 0),
        Err(Error::DType { .. })
    ));

    assert!(matches!(t.split(&x, &[1, 1], 1), Err(Error::Arg { .. })));
    assert!(matches!(t.split(&x, &[3], -3), Err(Error::Arg { .. })));
    assert!(is_arg(t.narrow(&x, 1, 2, 2)));
    assert!(is_arg(t.narrow(&x, 1, usize::MAX, 2)));
    assert!(is_arg(t.narrow(&x, 2, 0, 1)));

    assert!(matches!(t.argmax(&x, 5), Err(Error::Arg { .. })));
    assert!(matches!(
        t.argmax(&Var::constant(Tensor::zeros([2, 0], DType::F32)), 1),
        Err(Error::Arg { .. })
    ));
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2], [2]).unwrap());
    assert!(matches!(t.argmax(&ids, 0), Err(Error::DType { .. })));
}
