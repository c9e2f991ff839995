//! Gradient checks (f64 central differences, proptest shapes and ids), hand-computed values and
//! error cases for the dense `embedding` lookup.

use proptest::prelude::*;
use recur::testing::{check_close, GradCheck};
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn grad_embedding_table(
        id_dims in prop::collection::vec(1usize..5, 0..3),
        vocab in 1usize..6,
        dim in 1usize..5,
        raw_ids in prop::collection::vec(any::<u32>(), 16),
        seed in any::<u64>(),
    ) {
        let n: usize = id_dims.iter().product();
        let ids: Vec<i32> = (0..n).map(|i| (raw_ids[i % 16] as usize % vocab) as i32).collect();
        let ids = Tensor::from_vec(ids, id_dims).unwrap();
        // Rows whose id never occurs get a zero gradient, which is correct here.
        GradCheck::new().allow_zero().run(&[randn(&[vocab, dim], seed)], |t, v| t.embedding(&ids, &v[0]))
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn lookup_and_scatter_add_hand_computed() {
    let t = Tape::new();
    let table =
        t.leaf(Tensor::from_vec((0..8).map(f64::from).collect::<Vec<_>>(), [4, 2]).unwrap());
    let ids = Tensor::from_vec(vec![1i32, 1, 3], [3]).unwrap();
    let y = t.embedding(&ids, &table).unwrap();
    assert_eq!(y.dims(), [3, 2]);
    assert_eq!(y.value().to_vec_f64().unwrap(), [2., 3., 2., 3., 6., 7.]);
    let w = Var::constant(
        Tensor::from_vec(vec![1.0, 10.0, 100.0, 1000.0, -1.0, -2.0], [3, 2]).unwrap(),
    );
    let g = t
        .backward(&t.sum_all(&t.mul(&y, &w).unwrap()).unwrap())
        .unwrap();
    // Row 1 collects positions 0 and 1, row 3 position 2; rows 0 and 2 are unused.
    assert_eq!(
        g.get(&table).unwrap().to_vec_f64().unwrap(),
        [0., 0., 101., 1010., 0., 0., -1., -2.]
    );
}

#[test]
fn scalar_and_nested_id_shapes() {
    let t = Tape::new();
    let table = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).unwrap());
    let one = Tensor::from_vec(vec![1i32], Vec::<usize>::new()).unwrap();
    let y = t.embedding(&one, &table).unwrap();
    assert_eq!(y.dims(), [2]);
    assert_eq!(y.value().to_vec_f32().unwrap(), [3.0, 4.0]);
    let grid = Tensor::from_vec(vec![0i32, 1, 1, 0, 0, 0], [2, 3]).unwrap();
    assert_eq!(t.embedding(&grid, &table).unwrap().dims(), [2, 3, 2]);
}

/// Enough positions to take the multi-threaded path, compared with a serial scatter in f64.
#[test]
fn large_scatter_add_matches_serial_sum() {
    let (vocab, dim, n) = (11, 16, 4000);
    let ids: Vec<i32> = (0..n).map(|i| ((i * 7 + i / 13) % vocab) as i32).collect();
    let ids_t = Tensor::from_vec(ids.clone(), [40, 100]).unwrap();
    let t = Tape::new();
    let table = t.leaf(randn(&[vocab, dim], 1));
    let y = t.embedding(&ids_t, &table).unwrap();
    let w = randn(&[40, 100, dim], 2);
    let g = t
        .backward(
            &t.sum_all(&t.mul(&y, &Var::constant(w.clone())).unwrap())
                .unwrap(),
        )
        .unwrap();
    let wv = w.to_vec_f64().unwrap();
    let mut expected = vec![0.0; vocab * dim];
    for (p, &id) in ids.iter().enumerate() {
        for d in 0..dim {
            expected[id as usize * dim + d] += wv[p * dim + d];
        }
    }
    check_close(
        &g.get(&table).unwrap().to_vec_f64().unwrap(),
        &expected,
        1e-12,
        1e-12,
    )
    .unwrap();
    let tv = table.value().to_vec_f64().unwrap();
    let yv = y.value().to_vec_f64().unwrap();
    for (p, &id) in ids.iter().enumerate() {
        assert_eq!(
            yv[p * dim..(p + 1) * dim],
            tv[id as usize * dim..(id as usize + 1) * dim]
        );
    }
}

#[test]
fn bf16_table_gives_bf16_rows_and_gradient() {
    let t = Tape::new();
    let table = Tensor::from_vec(vec![0.1f32, 0.2, 0.3, 0.4], [2, 2])
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let tv = t.leaf(table.clone());
    let ids = Tensor::from_vec(vec![1i32, 0, 1], [3]).unwrap();
    let y = t.embedding(&ids, &tv).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let rows = table.to_vec_f32().unwrap();
    assert_eq!(
        y.value().to_vec_f32().unwrap(),
        [&rows[2..], &rows[..2], &rows[2..]].concat()
    );
    let g = t.backward(&t.sum_all(&y).unwrap()).unwrap();
    let g = g.get(&tv).unwrap();
    assert_eq!(g.dtype(), DType::BF16);
    assert_eq!(g.to_vec_f32().unwrap(), [1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn bad_ids_and_tables_are_errors() {
    let t = Tape::new();
    let table = Var::constant(Tensor::zeros([5, 3], DType::F32));
    for bad in [5, -1, i32::MAX, i32::MIN] {
        let ids = Tensor::from_vec(vec![0, bad, 2], [3]).unwrap();
        match t.embedding(&ids, &table) {
            Err(Error::Arg { msg, .. }) => assert!(msg.contains(&format!("id {bad} ")), "{msg}"),
            other => panic!("id {bad}: expected Error::Arg, got {other:?}"),
        }
    }
    let float_ids = Tensor::zeros([3], DType::F32);
    assert!(matches!(
        t.embedding(&float_ids, &table),
        Err(Error::DType { .. })
    ));
    let ids = Tensor::from_vec(vec![0i32], [1]).unwrap();
    let flat = Var::constant(Tensor::zeros([5], DType::F32));
    assert!(matches!(t.embedding(&ids, &flat), Err(Error::Shape { .. })));
    let int_table = Var::constant(Tensor::from_vec(vec![0i32; 4], [2, 2]).unwrap());
    assert!(matches!(
        t.embedding(&ids, &int_table),
        Err(Error::DType { .. })
    ));
}
