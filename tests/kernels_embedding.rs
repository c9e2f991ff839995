//! kernels/embedding.cu against the CPU references `device::cpu::embedding` (lookup forward, and
//! the scatter-add backward into a dense table gradient) and `device::cpu::sparse_embedding`
//! (per-id sums of gradient rows), f32 and bf16, ragged sizes, NaN-poisoned outputs.

use recur::device::cpu::{embedding as reference, sparse_embedding};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::embedding::{self as k, RowSums};
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

/// A deterministic hash of (seed, i), uniform over u64 (splitmix64).
fn hash(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random ids in `0..vocab` of the given shape; with more positions than ids, many repeat.
fn random_ids(shape: &[usize], vocab: usize, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let ids: Vec<i32> = (0..n as u64)
        .map(|i| (hash(seed, i) % vocab as u64) as i32)
        .collect();
    Tensor::from_vec(ids, shape.to_vec()).unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// (ids shape, vocab, dim): a single lookup, repeats over a small vocabulary, rows narrower and
/// wider than a block, and no ids at all.
const CASES: [(&[usize], usize, usize); 5] = [
    (&[1], 1, 1),
    (&[3, 5], 7, 33),
    (&[2, 37], 97, 130),
    (&[260], 5, 7),
    (&[0], 3, 4),
];

fn check_embedding(dev: &dyn KernelBackend) {
    for dtype in [DType::F32, DType::BF16] {
        for (case, &(ids_shape, vocab, dim)) in CASES.iter().enumerate() {
            let seed = 10 * case as u64 + if dtype == DType::BF16 { 1 } else { 0 };
            let what = format!("embedding {dtype} ids={ids_shape:?} V={vocab} D={dim}");
            let ids = random_ids(ids_shape, vocab, seed);
            let table = Tensor::randn([vocab, dim], 1.0, seed + 1, dtype).unwrap();
            let out_shape = Shape::new([ids_shape, &[dim]].concat());
            let dy = Tensor::randn(out_shape.clone(), 1.0, seed + 2, dtype).unwrap();
            let ids_d = DeviceTensor::upload(dev, &ids).unwrap();
            let table_d = DeviceTensor::upload(dev, &table).unwrap();
            let dy_d = DeviceTensor::upload(dev, &dy).unwrap();

            // The forward is a copy: bit for bit the reference's rows.
            let mut out = DeviceTensor::poisoned(dev, out_shape.clone(), dtype).unwrap();
            k::embedding_fwd_into(dev, &ids_d, &table_d, &mut out).unwrap();
            let got = out.download(dev).unwrap();
            let want = reference::embedding_fwd(&ids, &table).unwrap();
            assert_eq!(
                got.to_bytes().unwrap(),
                want.to_bytes().unwrap(),
                "{what}: forward"
            );

            // The backward accumulates in f32 with atomics, in an unspecified order; against the
            // f64 reference the f32 tolerance holds for f32 and bf16 gradients alike (the bf16
            // values are exact in f32).
            let mut dtable = DeviceTensor::poisoned(dev, [vocab, dim], DType::F32).unwrap();
            k::embedding_bwd_into(dev, &ids_d, &dy_d, &mut dtable).unwrap();
            let got = dtable.download(dev).unwrap();
            let dy64 = dy.to_dtype(DType::F64).unwrap();
            let want = reference::embedding_bwd(&ids, &dy64, vocab).unwrap();
            let err = rel_l2(&f64s(&got), &f64s(&want));
            eprintln!("{what} backward: rel L2 {err:.2e}");
            assert!(err < 1e-5, "{what} backward: rel L2 {err:.3e}");
        }
    }
}
recur::kernel_test!(embedding, super::check_embedding);

/// Ids are not checked on the host: a bad id gives a NaN row forward, is skipped backward, and
/// nothing outside the table is touched.
fn check_embedding_bad_ids(dev: &dyn KernelBackend) {
    let (vocab, dim) = (4, 3);
    let ids = Tensor::from_vec(vec![1i32, -1, 4, 2], [4]).unwrap();
    let table = Tensor::randn([vocab, dim], 1.0, 5, DType::F32).unwrap();
    let ids_d = DeviceTensor::upload(dev, &ids).unwrap();
    let table_d = DeviceTensor::upload(dev, &table).unwrap();
    let out = k::embedding_fwd(dev, &ids_d, &table_d).unwrap();
    let out = f64s(&out.download(dev).unwrap());
    let t = f64s(&table);
    assert_eq!(&out[0..3], &t[3..6]);
    assert!(out[3..9].iter().all(|x| x.is_nan()), "{out:?}");
    assert_eq!(&out[9..12], &t[6..9]);

    let dy = DeviceTensor::upload(dev, &Tensor::ones([4, dim], DType::F32)).unwrap();
    let dtable = k::embedding_bwd(dev, &ids_d, &dy, vocab).unwrap();
    let dtable = f64s(&dtable.download(dev).unwrap());
    let want = [0., 0., 0., 1., 1., 1., 1., 1., 1., 0., 0., 0.];
    assert_eq!(dtable, want);
}
recur::kernel_test!(embedding_bad_ids, super::check_embedding_bad_ids);

/// Per-id sums by position: a first occurrence carries its id and the sum of all its rows, in
/// order of appearance (bitwise the reference's f32 sums), later ones −1 and zeros.
fn check_sparse_embedding_bwd(dev: &dyn KernelBackend) {
    for dtype in [DType::F32, DType::BF16] {
        for (case, &(n, num_ids, dim)) in [(1, 1, 1), (7, 3, 33), (97, 40, 130), (200, 7, 5)]
            .iter()
            .enumerate()
        {
            let seed = 50 + 10 * case as u64 + if dtype == DType::BF16 { 1 } else { 0 };
            let what = format!("sparse_embedding_bwd {dtype} n={n} ids<{num_ids} D={dim}");
            let ids = random_ids(&[n], num_ids, seed);
            let rows = Tensor::randn([n, dim], 1.0, seed + 1, dtype).unwrap();
            let ids_d = DeviceTensor::upload(dev, &ids).unwrap();
            let rows_d = DeviceTensor::upload(dev, &rows).unwrap();
            let mut out = RowSums {
                ids: DeviceTensor::poisoned(dev, [n], DType::I32).unwrap(),
                sums: DeviceTensor::poisoned(dev, [n, dim], DType::F32).unwrap(),
            };
            k::sparse_embedding_bwd_into(dev, &ids_d, &rows_d, &mut out).unwrap();
            let got_ids = out.ids.download(dev).unwrap().to_vec_i32().unwrap();
            let got_sums = out.sums.download(dev).unwrap().to_vec_f32().unwrap();

            let rows32 = rows.to_dtype(DType::F32).unwrap();
            let (unique, sums) = sparse_embedding::sum_rows_by_id(&ids, &rows32, num_ids).unwrap();
            let sums = sums.to_vec_f32().unwrap();
            let id_values = ids.to_vec_i32().unwrap();
            let mut seen = Vec::new();
            for p in 0..n {
                let row = &got_sums[p * dim..(p + 1) * dim];
                let first = !id_values[..p].contains(&id_values[p]);
                if first {
                    assert_eq!(got_ids[p], id_values[p], "{what}: position {p}");
                    let slot = unique.binary_search(&(id_values[p] as usize)).unwrap();
                    assert_eq!(row, &sums[slot * dim..(slot + 1) * dim], "{what}: row {p}");
                    seen.push(id_values[p] as usize);
                } else {
                    assert_eq!(got_ids[p], -1, "{what}: position {p}");
                    assert!(row.iter().all(|&x| x == 0.0), "{what}: row {p}");
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, unique, "{what}: the distinct ids");
        }
    }
}
recur::kernel_test!(sparse_embedding_bwd, super::check_sparse_embedding_bwd);

fn check_embedding_errors(dev: &dyn KernelBackend) {
    let up = |shape: &[usize], dtype| {
        DeviceTensor::upload(dev, &Tensor::zeros(shape.to_vec(), dtype)).unwrap()
    };
    let ids = up(&[2, 3], DType::I32);
    let table = up(&[5, 4], DType::F32);
    // Float ids, a rank-1 or f64 table, an output of the wrong shape or dtype.
    assert!(k::embedding_fwd(dev, &up(&[2, 3], DType::F32), &table).is_err());
    assert!(k::embedding_fwd(dev, &ids, &up(&[20], DType::F32)).is_err());
    assert!(k::embedding_fwd(dev, &ids, &up(&[5, 4], DType::F64)).is_err());
    let mut out = up(&[2, 3, 5], DType::F32);
    assert!(k::embedding_fwd_into(dev, &ids, &table, &mut out).is_err());
    let mut out = up(&[2, 3, 4], DType::BF16);
    assert!(k::embedding_fwd_into(dev, &ids, &table, &mut out).is_err());
    // Backward: dy that does not match the ids, a table gradient that is not f32.
    assert!(k::embedding_bwd(dev, &ids, &up(&[3, 3, 4], DType::F32), 5).is_err());
    assert!(k::embedding_bwd(dev, &ids, &up(&[2, 3, 4], DType::I32), 5).is_err());
    let mut dtable = up(&[5, 4], DType::BF16);
    assert!(k::embedding_bwd_into(dev, &ids, &up(&[2, 3, 4], DType::F32), &mut dtable).is_err());
    // Sparse: rank-2 ids, a row count that differs from the id count.
    assert!(k::sparse_embedding_bwd(dev, &ids, &up(&[6, 4], DType::F32)).is_err());
    assert!(k::sparse_embedding_bwd(dev, &up(&[6], DType::I32), &up(&[5, 4], DType::F32)).is_err());
}
recur::kernel_test!(embedding_errors, super::check_embedding_errors);
