//! rope.cu (RoPE forward and backward, 1D rotate-half and 2D interleaved tables) against
//! `device::cpu::rope`, on every backend: f32 and bf16, ragged shapes, NaN-poisoned outputs, the
//! f64 reference on the same inputs, the in-place forms, and the launchers' error cases.

mod basic_kernels;

use basic_kernels::{f64_of, poisoned, random, upload, Errors, DTYPES};
use recur::device::cpu::rope::{rope_bwd, rope_fwd, RopeTable};
use recur::device::KernelBackend;
use recur::kernels::rope::{self as k, DeviceRopeTable};
use recur::{DType, Tensor};

/// A 2D table for a `side × side` grid in row-major order, with `extra` positions beyond it (so
/// the table covers more positions than the tensor uses).
fn grid_table(side: usize, extra: usize, head_dim: usize, theta: f64) -> RopeTable {
    let cells = side * side + extra;
    let rows: Vec<usize> = (0..cells).map(|p| p / side).collect();
    let cols: Vec<usize> = (0..cells).map(|p| p % side).collect();
    RopeTable::two_d(&rows, &cols, head_dim, theta).unwrap()
}

/// (x dims [B, S, H, hd], table): TRM's 1D shape (97 positions, θ 10000), Sotaku's 2D shape
/// (81 cells, θ 10), and ragged ones, including S shorter than the table and hd = 2 / 4.
fn cases() -> Vec<([usize; 4], RopeTable)> {
    vec![
        ([2, 97, 3, 64], RopeTable::one_d(97, 64, 10000.0).unwrap()),
        ([1, 13, 5, 6], RopeTable::one_d(20, 6, 10000.0).unwrap()),
        ([3, 7, 1, 2], RopeTable::one_d(7, 2, 500.0).unwrap()),
        ([2, 81, 4, 32], grid_table(9, 0, 32, 10.0)),
        ([3, 20, 3, 12], grid_table(5, 3, 12, 10000.0)),
        ([1, 1, 2, 4], grid_table(1, 0, 4, 10.0)),
    ]
}

fn check_rope(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (c, (dims, table)) in cases().into_iter().enumerate() {
        let device_table = DeviceRopeTable::upload(dev, &table).unwrap();
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let seed = (100 * c + 10 * d) as u64;
            let x = random(dims, 1.0, seed, dtype);
            let dy = random(dims, 1.0, seed + 1, dtype);
            let (x64, dy64) = (f64_of(&x), f64_of(&dy));
            let want_y = rope_fwd(&x64, &table).unwrap();
            let want_dx = rope_bwd(&dy64, &table).unwrap();
            let (x_dev, dy_dev) = (upload(dev, &x), upload(dev, &dy));

            let mut y = poisoned(dev, dims, dtype);
            k::rope_fwd_into(dev, &x_dev, &device_table, &mut y).unwrap();
            errors.check("rope forward", dev, &y, &want_y);
            let mut dx = poisoned(dev, dims, dtype);
            k::rope_bwd_into(dev, &dy_dev, &device_table, &mut dx).unwrap();
            errors.check("rope backward", dev, &dx, &want_dx);

            let y = k::rope_fwd(dev, &x_dev, &device_table).unwrap();
            errors.check("rope forward (allocating)", dev, &y, &want_y);
            let dx = k::rope_bwd(dev, &dy_dev, &device_table).unwrap();
            errors.check("rope backward (allocating)", dev, &dx, &want_dx);

            let mut in_place = upload(dev, &x);
            k::rope_fwd_in_place(dev, &mut in_place, &device_table).unwrap();
            errors.check("rope forward (in place)", dev, &in_place, &want_y);
            let mut in_place = upload(dev, &dy);
            k::rope_bwd_in_place(dev, &mut in_place, &device_table).unwrap();
            errors.check("rope backward (in place)", dev, &in_place, &want_dx);
        }
    }
    errors.report("rope");
}
recur::kernel_test!(rope, super::check_rope);

/// The backward undoes the forward (the rotation is orthogonal): f32 round trip to 1e-6.
fn check_rope_round_trip(dev: &dyn KernelBackend) {
    let table = RopeTable::one_d(33, 16, 10000.0).unwrap();
    let device_table = DeviceRopeTable::upload(dev, &table).unwrap();
    let x = random([2, 33, 3, 16], 1.0, 9, DType::F32);
    let mut t = upload(dev, &x);
    k::rope_fwd_in_place(dev, &mut t, &device_table).unwrap();
    k::rope_bwd_in_place(dev, &mut t, &device_table).unwrap();
    let back = t.download(dev).unwrap().to_vec_f64().unwrap();
    let err = recur::testing::rel_l2(&back, &x.to_vec_f64().unwrap());
    assert!(err < 1e-6, "round trip error {err:.3e}");
}
recur::kernel_test!(rope_round_trip, super::check_rope_round_trip);

/// The uploaded table holds the reference's cos and sin rounded to f32.
#[test]
fn table_tensors_match_the_reference_table() {
    let table = grid_table(3, 1, 8, 10.0);
    let (cos, sin) = k::rope_table_tensors(&table).unwrap();
    assert_eq!(cos.dims(), &[10, 4]);
    let (cos, sin) = (cos.to_vec_f64().unwrap(), sin.to_vec_f64().unwrap());
    for p in 0..10 {
        for j in 0..4 {
            let (c, s) = table.cos_sin(p, j);
            assert_eq!(cos[p * 4 + j], c as f32 as f64);
            assert_eq!(sin[p * 4 + j], s as f32 as f64);
        }
    }
}

fn check_rope_errors(dev: &dyn KernelBackend) {
    let table = DeviceRopeTable::upload(dev, &RopeTable::one_d(8, 16, 10000.0).unwrap()).unwrap();
    let x = |dims: &[usize], dtype: DType| upload(dev, &random(dims, 1.0, 1, dtype));

    assert!(k::rope_fwd(dev, &x(&[2, 8, 3, 16], DType::F32), &table).is_ok());
    assert!(
        k::rope_fwd(dev, &x(&[2, 8, 3, 16], DType::F64), &table).is_err(),
        "f64"
    );
    assert!(
        k::rope_fwd(dev, &x(&[2, 9, 3, 16], DType::F32), &table).is_err(),
        "S beyond the table"
    );
    assert!(
        k::rope_fwd(dev, &x(&[2, 8, 3, 8], DType::F32), &table).is_err(),
        "head_dim vs table"
    );
    assert!(
        k::rope_bwd(dev, &x(&[8, 3, 16], DType::F32), &table).is_err(),
        "rank 3"
    );
    let i32_x = upload(dev, &Tensor::zeros([1, 2, 1, 16], DType::I32));
    assert!(k::rope_fwd(dev, &i32_x, &table).is_err(), "i32");
    let src = x(&[1, 8, 2, 16], DType::F32);
    let mut wrong_shape = poisoned(dev, [1, 8, 2, 8], DType::F32);
    assert!(k::rope_fwd_into(dev, &src, &table, &mut wrong_shape).is_err());
    let mut wrong_dtype = poisoned(dev, [1, 8, 2, 16], DType::BF16);
    assert!(k::rope_bwd_into(dev, &src, &table, &mut wrong_dtype).is_err());
    // An empty batch is a no-op, not an error.
    assert!(k::rope_fwd(dev, &x(&[0, 8, 2, 16], DType::BF16), &table).is_ok());
}
recur::kernel_test!(rope_errors, super::check_rope_errors);

/// The bench cases (TRM 1D, Sotaku 2D) run at batch 1 on Emu.
#[test]
fn bench_cases_run_on_emu() {
    let dev = recur::device::emu::Emu::new().unwrap();
    let mut cases = recur::bench::fused::rope::cases(&dev, 1).unwrap();
    assert_eq!(cases.len(), 4);
    for case in &mut cases {
        assert!(case.flops > 0.0 && case.bytes > 0.0, "{}", case.kernel);
        (case.run)().unwrap();
    }
}
