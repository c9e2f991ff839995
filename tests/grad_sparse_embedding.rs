//! The puzzle-identifier embedding: forward gather, gradient checks (f64 central differences,
//! proptest shapes, duplicate ids), the leaf-gradient route into `SignSgd`, and error cases.

use proptest::prelude::*;
use recur::device::cpu::sparse_embedding::{gather_rows, scatter_add_rows, sum_rows_by_id};
use recur::optim::SignSgd;
use recur::testing::GradCheck;
use recur::{DType, Error, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

fn ids(v: &[i32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

/// (num_ids, dim, ids) with ids drawn from the table, so duplicates are common.
fn table_and_ids() -> impl Strategy<Value = (usize, usize, Vec<i32>)> {
    (1usize..6, 1usize..5).prop_flat_map(|(num_ids, dim)| {
        (
            Just(num_ids),
            Just(dim),
            prop::collection::vec(0..num_ids as i32, 1..9),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn grad_sparse_embedding_dense((num_ids, dim, id_list) in table_and_ids(), seed in any::<u64>()) {
        let table = randn(&[num_ids, dim], seed);
        let ids = ids(&id_list);
        GradCheck::new()
            .run(&[table], |t, v| t.sparse_embedding_dense(&v[0], &ids))
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn leaf_gradient_scatter_added_equals_the_dense_gradient(
        (num_ids, dim, id_list) in table_and_ids(), seed in any::<u64>()
    ) {
        // A downstream nonlinearity, so the row gradients depend on the rows.
        let table = randn(&[num_ids, dim], seed);
        let ids = ids(&id_list);
        let weights = Var::constant(randn(&[id_list.len(), dim], seed ^ 7));
        let loss_of = |t: &Tape, rows: &Var| -> recur::Result<Var> {
            let sq = t.mul(rows, rows)?;
            let w = t.mul(&sq, &weights)?;
            t.sum_all(&w)
        };

        let tape = Tape::new();
        let local = tape.sparse_embedding(&table, &ids).unwrap();
        prop_assert!(local.requires_grad());
        let grads = tape.backward(&loss_of(&tape, &local).unwrap()).unwrap();
        let sparse = scatter_add_rows(&ids, grads.get(&local).unwrap(), num_ids).unwrap();

        let tape = Tape::new();
        let leaf = tape.leaf(table.clone());
        let rows = tape.sparse_embedding_dense(&leaf, &ids).unwrap();
        let grads = tape.backward(&loss_of(&tape, &rows).unwrap()).unwrap();
        let dense = grads.get(&leaf).unwrap();
        prop_assert_eq!(sparse.to_vec_f64().unwrap(), dense.to_vec_f64().unwrap());
    }
}

#[test]
fn gather_reads_rows_in_id_order_with_duplicates() {
    let table = Tensor::from_vec((0..8).map(|x| x as f32).collect::<Vec<_>>(), [4, 2]).unwrap();
    let rows = gather_rows(&table, &ids(&[3, 0, 3])).unwrap();
    assert_eq!(rows.dims(), [3, 2]);
    assert_eq!(rows.to_vec_f32().unwrap(), [6.0, 7.0, 0.0, 1.0, 6.0, 7.0]);
    assert_eq!(rows.dtype(), DType::F32);
    let empty = gather_rows(&table, &ids(&[])).unwrap();
    assert_eq!(empty.dims(), [0, 2]);
}

#[test]
fn sum_rows_by_id_gives_sorted_unique_ids_and_sums() {
    let grads = Tensor::from_vec(vec![1.0f32, 2.0, 10.0, 20.0, 100.0, 200.0], [3, 2]).unwrap();
    let (unique, sums) = sum_rows_by_id(&ids(&[4, 1, 4]), &grads, 5).unwrap();
    assert_eq!(unique, [1, 4]);
    assert_eq!(sums.to_vec_f32().unwrap(), [10.0, 20.0, 101.0, 202.0]);
    let dense = scatter_add_rows(&ids(&[4, 1, 4]), &grads, 5).unwrap();
    assert_eq!(dense.dims(), [5, 2]);
    assert_eq!(
        dense.to_vec_f32().unwrap(),
        [0.0, 0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 101.0, 202.0]
    );
}

#[test]
fn no_grad_gives_constant_rows() {
    let table = Tensor::ones([2, 3], DType::F32);
    let tape = Tape::new();
    let rows = tape
        .no_grad(|| tape.sparse_embedding(&table, &ids(&[1])))
        .unwrap();
    assert!(!rows.requires_grad());
    assert_eq!(rows.value().to_vec_f32().unwrap(), [1.0; 3]);
}

#[test]
fn out_of_range_ids_and_bad_shapes_are_errors() {
    let table = Tensor::zeros([3, 2], DType::F32);
    let tape = Tape::new();
    for bad in [3, -7] {
        let err = tape.sparse_embedding(&table, &ids(&[0, bad])).unwrap_err();
        assert!(matches!(err, Error::Arg { .. }));
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    let two_d_ids = Tensor::from_vec(vec![0i32, 1], [1, 2]).unwrap();
    assert!(matches!(
        tape.sparse_embedding(&table, &two_d_ids),
        Err(Error::Shape { .. })
    ));
    let float_ids = Tensor::zeros([2], DType::F32);
    assert!(matches!(
        tape.sparse_embedding(&table, &float_ids),
        Err(Error::DType { .. })
    ));
    let flat_table = Tensor::zeros([6], DType::F32);
    assert!(matches!(
        tape.sparse_embedding(&flat_table, &ids(&[0])),
        Err(Error::Shape { .. })
    ));
    let leaf = tape.leaf(Tensor::zeros([3, 2], DType::F64));
    assert!(tape.sparse_embedding_dense(&leaf, &ids(&[5])).is_err());
    let grads = Tensor::zeros([2, 2], DType::F32);
    assert!(matches!(
        sum_rows_by_id(&ids(&[0]), &grads, 3),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn training_step_moves_only_the_rows_in_the_batch() {
    // Forward through the official route (leaf rows), backward, SignSGD on the table.
    let mut table = Tensor::from_vec(vec![0.5f32; 8], [4, 2]).unwrap();
    let batch = ids(&[1, 1, 3]);
    let tape = Tape::new();
    let local = tape.sparse_embedding(&table, &batch).unwrap();
    let scaled = tape.scale(&local, -1.0).unwrap();
    let loss = tape.sum_all(&scaled).unwrap();
    let grads = tape.backward(&loss).unwrap();
    let row_grads = grads.get(&local).unwrap();
    assert_eq!(row_grads.to_vec_f32().unwrap(), [-1.0; 6]);
    SignSgd::new(0.1, 1.0)
        .unwrap()
        .step(&mut table, &batch, row_grads)
        .unwrap();
    // Touched rows: 0.5·(1 − 0.1) + 0.1 = 0.55; the others stay 0.5 exactly.
    let v = table.to_vec_f32().unwrap();
    for (row, want) in [(0, 0.5f32), (1, 0.55), (2, 0.5), (3, 0.55)] {
        for j in 0..2 {
            assert!(
                (v[row * 2 + j] - want).abs() < 1e-7,
                "row {row}: {}",
                v[row * 2 + j]
            );
        }
    }
    assert_eq!(v[0], 0.5);
    assert_eq!(v[4], 0.5);
}
