//! kernels/matmul.cu (the tiled GEMM behind `linear`) against the CPU reference
//! `device::cpu::linear`, computed in f64 from the same (bf16-rounded, for bf16) inputs, on
//! ragged sizes that are not multiples of the 64 × 64 × 16 tiles, with NaN-poisoned outputs.

use recur::device::cpu::linear as reference;
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::matmul as k;
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

/// (M = rows, N = out_features, K = in_features): every size in {1, 7, 33, 97, 130} appears on
/// each axis, and one case crosses several tiles on all three.
const SIZES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (7, 33, 97),
    (33, 130, 7),
    (97, 7, 130),
    (130, 97, 33),
    (130, 130, 130),
];

/// The DESIGN tolerance for relative L2 error against f64: f32 outputs 1e-5; bf16 outputs are
/// rounded to 8 bits of mantissa (about 2e-3 relative), so 1e-2.
fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn check(what: &str, dtype: DType, got: &DeviceTensor, dev: &dyn KernelBackend, want: &Tensor) {
    let got = got.download(dev).unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), dtype, "{what}: dtype");
    let err = rel_l2(&f64s(&got), &f64s(want));
    eprintln!("{what} {dtype}: rel L2 {err:.2e}");
    assert!(err < tolerance(dtype), "{what} {dtype}: rel L2 {err:.3e}");
}

fn check_linear(dev: &dyn KernelBackend) {
    for dtype in [DType::F32, DType::BF16] {
        for (case, &(m, n, kk)) in SIZES.iter().enumerate() {
            let seed = 100 * case as u64 + if dtype == DType::BF16 { 7 } else { 0 };
            // One case feeds a rank-3 input, whose leading dimensions fold into the rows.
            let x_shape = if m == 130 && n == 97 {
                Shape::new([10, 13, kk])
            } else {
                Shape::new([m, kk])
            };
            let x = Tensor::randn(x_shape.clone(), 1.0, seed, dtype).unwrap();
            let w = Tensor::randn([n, kk], 0.5, seed + 1, dtype).unwrap();
            let b = Tensor::randn([n], 1.0, seed + 2, dtype).unwrap();
            let y_shape = Shape::new([&x_shape.dims()[..x_shape.rank() - 1], &[n]].concat());
            let dy = Tensor::randn(y_shape.clone(), 1.0, seed + 3, dtype).unwrap();
            let as64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
            let (x64, w64, b64, dy64) = (as64(&x), as64(&w), as64(&b), as64(&dy));
            let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
            let (xd, wd, bd, dyd) = (up(&x), up(&w), up(&b), up(&dy));
            let label = |op: &str| format!("{op} M={m} N={n} K={kk}");

            let mut y = DeviceTensor::poisoned(dev, y_shape.clone(), dtype).unwrap();
            k::linear_fwd_into(dev, &xd, &wd, Some(&bd), &mut y).unwrap();
            let want = reference::linear_fwd(&x64, &w64, Some(&b64)).unwrap();
            check(&label("linear+bias"), dtype, &y, dev, &want);

            let mut y = DeviceTensor::poisoned(dev, y_shape.clone(), dtype).unwrap();
            k::linear_fwd_into(dev, &xd, &wd, None, &mut y).unwrap();
            let want = reference::linear_fwd(&x64, &w64, None).unwrap();
            check(&label("linear"), dtype, &y, dev, &want);

            let mut dx = DeviceTensor::poisoned(dev, x_shape.clone(), dtype).unwrap();
            k::linear_bwd_input_into(dev, &dyd, &wd, &mut dx).unwrap();
            let want = reference::linear_bwd_input(&dy64, &w64, &x_shape).unwrap();
            check(&label("dx"), dtype, &dx, dev, &want);

            let mut dw = DeviceTensor::poisoned(dev, [n, kk], dtype).unwrap();
            k::linear_bwd_weight_into(dev, &dyd, &xd, &mut dw).unwrap();
            let want = reference::linear_bwd_weight(&dy64, &x64).unwrap();
            check(&label("dW"), dtype, &dw, dev, &want);

            let mut db = DeviceTensor::poisoned(dev, [n], dtype).unwrap();
            k::linear_bwd_bias_into(dev, &dyd, &mut db).unwrap();
            let want = reference::linear_bwd_bias(&dy64).unwrap();
            check(&label("db"), dtype, &db, dev, &want);
        }
    }
}
recur::kernel_test!(linear, super::check_linear);

/// The allocating launchers give the same results as the `_into` ones.
fn check_allocating_launchers(dev: &dyn KernelBackend) {
    let x = Tensor::randn([5, 9], 1.0, 1, DType::F32).unwrap();
    let w = Tensor::randn([4, 9], 1.0, 2, DType::F32).unwrap();
    let dy = Tensor::randn([5, 4], 1.0, 3, DType::F32).unwrap();
    let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
    let (xd, wd, dyd) = (up(&x), up(&w), up(&dy));
    let as64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let y = k::linear_fwd(dev, &xd, &wd, None).unwrap();
    let want = reference::linear_fwd(&as64(&x), &as64(&w), None).unwrap();
    check("linear_fwd", DType::F32, &y, dev, &want);
    let dx = k::linear_bwd_input(dev, &dyd, &wd, x.shape()).unwrap();
    let want = reference::linear_bwd_input(&as64(&dy), &as64(&w), x.shape()).unwrap();
    check("linear_bwd_input", DType::F32, &dx, dev, &want);
    let dw = k::linear_bwd_weight(dev, &dyd, &xd).unwrap();
    let want = reference::linear_bwd_weight(&as64(&dy), &as64(&x)).unwrap();
    check("linear_bwd_weight", DType::F32, &dw, dev, &want);
    let db = k::linear_bwd_bias(dev, &dyd).unwrap();
    let want = reference::linear_bwd_bias(&as64(&dy)).unwrap();
    check("linear_bwd_bias", DType::F32, &db, dev, &want);
}
recur::kernel_test!(linear_allocating, super::check_allocating_launchers);

fn check_linear_errors(dev: &dyn KernelBackend) {
    let up = |shape: &[usize], dtype| {
        DeviceTensor::upload(dev, &Tensor::zeros(shape.to_vec(), dtype)).unwrap()
    };
    let x = up(&[3, 4], DType::F32);
    let w = up(&[5, 4], DType::F32);
    // in_features mismatch, a rank-1 weight, a wrong bias, mixed dtypes, f64 storage.
    assert!(k::linear_fwd(dev, &x, &up(&[5, 3], DType::F32), None).is_err());
    assert!(k::linear_fwd(dev, &x, &up(&[20], DType::F32), None).is_err());
    assert!(k::linear_fwd(dev, &x, &w, Some(&up(&[4], DType::F32))).is_err());
    assert!(k::linear_fwd(dev, &x, &up(&[5, 4], DType::BF16), None).is_err());
    assert!(k::linear_fwd(
        dev,
        &up(&[3, 4], DType::F64),
        &up(&[5, 4], DType::F64),
        None
    )
    .is_err());
    // A caller's output of the wrong shape or dtype.
    let mut y = up(&[3, 4], DType::F32);
    assert!(k::linear_fwd_into(dev, &x, &w, None, &mut y).is_err());
    let mut y = up(&[3, 5], DType::BF16);
    assert!(k::linear_fwd_into(dev, &x, &w, None, &mut y).is_err());
    // Backward: dy that does not match x or W.
    let dy = up(&[3, 5], DType::F32);
    assert!(k::linear_bwd_input(dev, &up(&[3, 6], DType::F32), &w, x.shape()).is_err());
    assert!(k::linear_bwd_input(dev, &dy, &w, &Shape::new([3, 7])).is_err());
    assert!(k::linear_bwd_weight(dev, &up(&[2, 5], DType::F32), &x).is_err());
    assert!(k::linear_bwd_weight(dev, &dy, &up(&[3, 4], DType::BF16)).is_err());
    let mut db = up(&[4], DType::F32);
    assert!(k::linear_bwd_bias_into(dev, &dy, &mut db).is_err());
    assert!(k::linear_bwd_bias(dev, &up(&[3, 5], DType::I32)).is_err());
}
recur::kernel_test!(linear_errors, super::check_linear_errors);
