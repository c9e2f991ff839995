//! Gradient checks (f64 central differences, proptest shapes) and independent checks of the two
//! RoPE conventions: hand-computed rotations, the official rotate-half formula, pair norms,
//! relative-position invariance, dtype agreement and error cases.

use proptest::prelude::*;
use recur::ops::rope::RopeTable;
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

fn rope_1d(x: &Tensor, table: &RopeTable) -> Vec<f64> {
    let y = Tape::new()
        .rope_1d(&Var::constant(x.clone()), table)
        .unwrap();
    y.value().to_vec_f64().unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_rope_1d(dims in shape(), extra in 0usize..3, seed in any::<u64>(), theta in prop::sample::select(vec![10.0, 10000.0])) {
        let table = RopeTable::one_d(dims[1] + extra, dims[3], theta).unwrap();
        GradCheck::new().run(&[randn(&dims, seed)], |t, v| t.rope_1d(&v[0], &table)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_rope_2d(dims in shape(), seed in any::<u64>(), grid in prop::collection::vec((0usize..9, 0usize..9), 7)) {
        let (rows, cols): (Vec<usize>, Vec<usize>) = grid[..dims[1]].iter().copied().unzip();
        GradCheck::new()
            .run(&[randn(&dims, seed)], |t, v| t.rope_2d(&v[0], &rows, &cols, 10.0))
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn rope_1d_matches_hand_computed_rotation() {
    // hd = 4, θ = 100: inv_freq = (1, 1/10); pairs are (x0, x2) by pos and (x1, x3) by pos/10.
    let table = RopeTable::one_d(3, 4, 100.0).unwrap();
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [1, 1, 1, 4]).unwrap();
    let at_position = |p: usize| {
        // Put x at position p of a length-3 sequence and read it back.
        let mut v = vec![0.0; 12];
        v[4 * p..4 * p + 4].copy_from_slice(&x.to_vec_f64().unwrap());
        let y = rope_1d(&Tensor::from_vec(v, [1, 3, 1, 4]).unwrap(), &table);
        y[4 * p..4 * p + 4].to_vec()
    };
    check_close(&at_position(0), &[1.0, 2.0, 3.0, 4.0], 0.0, 0.0).unwrap();
    let (c1, s1) = (2.0f64.cos(), 2.0f64.sin()); // position 2, pair 0: angle 2
    let (c2, s2) = (0.2f64.cos(), 0.2f64.sin()); // position 2, pair 1: angle 0.2
    let expected = [
        1.0 * c1 - 3.0 * s1,
        2.0 * c2 - 4.0 * s2,
        1.0 * s1 + 3.0 * c1,
        2.0 * s2 + 4.0 * c2,
    ];
    check_close(&at_position(2), &expected, 1e-15, 1e-14).unwrap();
}

#[test]
fn rope_1d_matches_the_official_rotate_half_formula() {
    // x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x2, x1), emb = cat(freqs, freqs),
    // written out independently of the table's pair layout.
    let (b, s, h, hd, theta) = (2, 5, 3, 8, 10000.0f64);
    let x = randn(&[b, s, h, hd], 3);
    let got = rope_1d(&x, &RopeTable::one_d(s, hd, theta).unwrap());
    let xs = x.to_vec_f64().unwrap();
    let mut expected = vec![0.0; xs.len()];
    for (row, (out, v)) in expected.chunks_mut(hd).zip(xs.chunks(hd)).enumerate() {
        let pos = ((row / h) % s) as f64;
        let inv_freq: Vec<f64> = (0..hd)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f64 / hd as f64))
            .collect();
        let emb: Vec<f64> = inv_freq.iter().chain(&inv_freq).map(|f| pos * f).collect();
        let rotate_half: Vec<f64> = v[hd / 2..]
            .iter()
            .map(|a| -a)
            .chain(v[..hd / 2].iter().copied())
            .collect();
        for d in 0..hd {
            out[d] = v[d] * emb[d].cos() + rotate_half[d] * emb[d].sin();
        }
    }
    check_close(&got, &expected, 1e-14, 1e-12).unwrap();
}

#[test]
fn rope_2d_matches_hand_computed_rotation() {
    // hd = 8, θ = 10: f = (1, 10^−½); pairs (x0,x1), (x2,x3) by row·f_k; (x4,x5), (x6,x7) by col·f_k.
    let xs: Vec<f64> = (1..=8).map(f64::from).collect();
    let x = Var::constant(Tensor::from_vec(xs.clone(), [1, 1, 1, 8]).unwrap());
    let (row, col) = (2.0, 3.0);
    let y = Tape::new()
        .rope_2d(&x, &[2], &[3], 10.0)
        .unwrap()
        .into_value()
        .to_vec_f64()
        .unwrap();
    let f1 = 10f64.powf(-0.5);
    let angles = [row, row * f1, col, col * f1];
    let mut expected = vec![0.0; 8];
    for (k, angle) in angles.iter().enumerate() {
        let (a, b) = (xs[2 * k], xs[2 * k + 1]);
        expected[2 * k] = a * angle.cos() - b * angle.sin();
        expected[2 * k + 1] = a * angle.sin() + b * angle.cos();
    }
    check_close(&y, &expected, 1e-14, 1e-13).unwrap();
}

#[test]
fn sotaku_table_has_the_published_frequencies() {
    // Sotaku: hd = 32, θ = 10 gives f_k = 10^(−k/8) ≈ {1, .750, .562, .422, .316, .237, .178, .133}.
    let table = RopeTable::two_d(&[1, 0], &[0, 1], 32, 10.0).unwrap();
    let published = [1.0, 0.750, 0.562, 0.422, 0.316, 0.237, 0.178, 0.133];
    for (k, f) in published.iter().enumerate() {
        // Cell (1, 0): row pairs k turn by f_k, column pairs not at all; cell (0, 1) the reverse.
        let (cos, sin) = table.cos_sin(0, k);
        assert!((sin.atan2(cos) - f).abs() < 5e-4, "pair {k}");
        assert_eq!(table.cos_sin(0, 8 + k), (1.0, 0.0));
        assert_eq!(table.cos_sin(1, k), (1.0, 0.0));
        let (cos, sin) = table.cos_sin(1, 8 + k);
        assert!((sin.atan2(cos) - 10f64.powf(-(k as f64) / 8.0)).abs() < 1e-15);
    }
}

#[test]
fn rope_preserves_every_pair_norm() {
    let x = randn(&[2, 6, 2, 8], 5);
    let xs = x.to_vec_f64().unwrap();
    let one_d = rope_1d(&x, &RopeTable::one_d(6, 8, 10000.0).unwrap());
    let rows = [0, 1, 2, 3, 4, 5];
    let cols = [5, 3, 1, 0, 2, 4];
    let two_d = Tape::new()
        .rope_2d(&Var::constant(x), &rows, &cols, 10.0)
        .unwrap();
    let two_d = two_d.value().to_vec_f64().unwrap();
    let norm2 = |v: &[f64], a: usize, b: usize| v[a] * v[a] + v[b] * v[b];
    for base in (0..xs.len()).step_by(8) {
        for j in 0..4 {
            let (a, b) = (base + j, base + j + 4); // rotate-half pairs
            assert!((norm2(&one_d, a, b) - norm2(&xs, a, b)).abs() < 1e-12);
            let (a, b) = (base + 2 * j, base + 2 * j + 1); // interleaved pairs
            assert!((norm2(&two_d, a, b) - norm2(&xs, a, b)).abs() < 1e-12);
        }
    }
}

/// Puts `q` at every position of a `[1, S, 1, hd]` tensor.
fn repeated(q: &[f64], seq: usize) -> Tensor {
    Tensor::from_vec(q.repeat(seq), [1, seq, 1, q.len()]).unwrap()
}

#[test]
fn rope_1d_scores_depend_only_on_relative_position() {
    let (seq, hd) = (7, 8);
    let q = randn(&[hd], 1).to_vec_f64().unwrap();
    let k = randn(&[hd], 2).to_vec_f64().unwrap();
    let table = RopeTable::one_d(seq, hd, 10.0).unwrap();
    let (qr, kr) = (
        rope_1d(&repeated(&q, seq), &table),
        rope_1d(&repeated(&k, seq), &table),
    );
    let score = |m: usize, n: usize| dot(&qr[m * hd..(m + 1) * hd], &kr[n * hd..(n + 1) * hd]);
    for m in 0..seq {
        for n in 0..seq {
            // Shift both positions to the smallest pair with the same offset.
            let shift = m.min(n);
            assert!(
                (score(m, n) - score(m - shift, n - shift)).abs() < 1e-12,
                "({m}, {n})"
            );
        }
    }
    // And the rotation really does depend on the offset.
    assert!((score(0, 1) - score(0, 2)).abs() > 1e-3);
}

#[test]
fn rope_2d_scores_depend_only_on_the_grid_offset() {
    let hd = 8;
    let q = randn(&[hd], 3).to_vec_f64().unwrap();
    let k = randn(&[hd], 4).to_vec_f64().unwrap();
    let cells: Vec<(usize, usize)> = (0..3).flat_map(|r| (0..3).map(move |c| (r, c))).collect();
    let (rows, cols): (Vec<usize>, Vec<usize>) = cells.iter().copied().unzip();
    let apply = |x: &[f64]| {
        let y = Tape::new()
            .rope_2d(&Var::constant(repeated(x, 9)), &rows, &cols, 10.0)
            .unwrap();
        y.value().to_vec_f64().unwrap()
    };
    let (qr, kr) = (apply(&q), apply(&k));
    let score = |m: usize, n: usize| dot(&qr[m * hd..(m + 1) * hd], &kr[n * hd..(n + 1) * hd]);
    for m in 0..9 {
        for n in 0..9 {
            let offset = |a: usize, b: usize| {
                (
                    cells[b].0 as i64 - cells[a].0 as i64,
                    cells[b].1 as i64 - cells[a].1 as i64,
                )
            };
            for m2 in 0..9 {
                for n2 in 0..9 {
                    if offset(m, n) == offset(m2, n2) {
                        assert!((score(m, n) - score(m2, n2)).abs() < 1e-12);
                    }
                }
            }
        }
    }
    assert!(
        (score(0, 1) - score(0, 3)).abs() > 1e-3,
        "row and column offsets differ"
    );
}

#[test]
fn f32_agrees_with_f64_and_bf16_storage_works() {
    let x = randn(&[2, 7, 3, 8], 9);
    let table = RopeTable::one_d(7, 8, 10000.0).unwrap();
    let (rows, cols) = ([0, 0, 1, 1, 2, 2, 3], [0, 1, 0, 1, 0, 1, 0]);
    let run = |dtype: DType| {
        let t = Tape::new();
        let v = Var::constant(x.to_dtype(dtype).unwrap());
        [
            t.rope_1d(&v, &table).unwrap(),
            t.rope_2d(&v, &rows, &cols, 10.0).unwrap(),
        ]
        .map(|y| {
            assert_eq!(y.dtype(), dtype);
            y.value().to_vec_f64().unwrap()
        })
    };
    let reference = run(DType::F64);
    for (dtype, tol) in [(DType::F32, 1e-6), (DType::BF16, 1e-2)] {
        for (got, want) in run(dtype).iter().zip(&reference) {
            let e = rel_l2(got, want);
            assert!(e < tol, "{dtype}: relative L2 error {e:.2e}");
        }
    }
}

#[test]
fn backward_is_the_inverse_rotation() {
    // The rotation is orthogonal, so the gradient of Σ rope(x)·rope(x)/2 is x itself.
    let x = randn(&[1, 5, 2, 8], 6);
    let t = Tape::new();
    let leaf = t.leaf(x.clone());
    let y = t
        .rope_1d(&leaf, &RopeTable::one_d(5, 8, 10.0).unwrap())
        .unwrap();
    let half_square = t.scale(&t.mul(&y, &y).unwrap(), 0.5).unwrap();
    let grads = t.backward(&t.sum_all(&half_square).unwrap()).unwrap();
    let g = grads.get(&leaf).unwrap().to_vec_f64().unwrap();
    check_close(&g, &x.to_vec_f64().unwrap(), 1e-14, 1e-13).unwrap();
}

#[test]
fn bad_tables_and_shapes_are_errors() {
    assert!(matches!(
        RopeTable::one_d(4, 7, 10000.0),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        RopeTable::one_d(4, 0, 10000.0),
        Err(Error::Arg { .. })
    ));
    for theta in [0.0, -10.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            RopeTable::one_d(4, 8, theta),
            Err(Error::Arg { .. })
        ));
        assert!(matches!(
            RopeTable::two_d(&[0], &[0], 8, theta),
            Err(Error::Arg { .. })
        ));
    }
    assert!(matches!(
        RopeTable::two_d(&[0], &[0], 6, 10.0),
        Err(Error::Arg { .. })
    ));
    assert!(matches!(
        RopeTable::two_d(&[0, 1], &[0], 8, 10.0),
        Err(Error::Shape { .. })
    ));

    let t = Tape::new();
    let table = RopeTable::one_d(4, 8, 10000.0).unwrap();
    let x = |dims: &[usize]| Var::constant(Tensor::zeros(dims.to_vec(), DType::F32));
    assert!(
        matches!(t.rope_1d(&x(&[4, 2, 8]), &table), Err(Error::Shape { .. })),
        "rank 3"
    );
    assert!(
        matches!(
            t.rope_1d(&x(&[1, 5, 2, 8]), &table),
            Err(Error::Shape { .. })
        ),
        "S > positions"
    );
    assert!(
        matches!(
            t.rope_1d(&x(&[1, 4, 2, 4]), &table),
            Err(Error::Shape { .. })
        ),
        "hd mismatch"
    );
    let grid = RopeTable::two_d(&[0, 1], &[1, 0], 8, 10.0).unwrap();
    assert!(
        matches!(t.rope_1d(&x(&[1, 2, 1, 8]), &grid), Err(Error::Arg { .. })),
        "2D table"
    );
    assert!(matches!(
        t.rope_2d(&x(&[1, 3, 1, 8]), &[0, 1], &[1, 0], 10.0),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        t.rope_2d(&x(&[1, 2, 1, 6]), &[0, 1], &[1, 0], 10.0),
        Err(Error::Arg { .. })
    ));
    let ids = Var::constant(Tensor::from_vec(vec![0i32; 8], [1, 1, 1, 8]).unwrap());
    assert!(matches!(t.rope_1d(&ids, &table), Err(Error::DType { .. })));
}
