//! reduce.cu (sum / mean over an axis, forward and backward; sum_all; argmax) against
//! `device::cpu::reduce` and `cpu::layout::argmax_fwd`, on every backend: f32 and bf16, ragged
//! shapes on every axis position, NaN-poisoned outputs, f64 reference (exact for argmax).

mod basic_kernels;

use basic_kernels::{check_exact, f64_of, poisoned, random, upload, Errors, DTYPES, SIZES};
use recur::device::cpu::layout::argmax_fwd;
use recur::device::cpu::reduce::{sum_all_fwd, sum_axis_bwd, sum_axis_fwd};
use recur::device::KernelBackend;
use recur::kernels::reduce as k;
use recur::{DType, Shape, Tensor};

/// (shape, axis): the last axis (inner = 1), the first, a middle one with inner sizes below,
/// at and above a warp, long axes, size-1 and empty axes.
const CASES: [(&[usize], isize); 11] = [
    (&[1000], 0),
    (&[7, 33], 1),
    (&[7, 33], 0),
    (&[3, 97, 5], 1),
    (&[2, 5, 40], -1),
    (&[4, 129, 33], 1),
    (&[1, 4133, 3], 1),
    (&[33, 1, 7], 1),
    (&[2, 300, 64], 0),
    (&[3, 0, 5], 1),
    (&[1], 0),
];

fn without_axis(shape: &[usize], axis: isize) -> Vec<usize> {
    let mut dims = shape.to_vec();
    dims.remove(Shape::new(shape).axis("test", axis).unwrap());
    dims
}

fn check_sum_mean(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (c, &(shape, axis)) in CASES.iter().enumerate() {
            let seed = (100 * d + 10 * c) as u64;
            let x = random(shape, 1.0, seed, dtype);
            let y_dims = without_axis(shape, axis);
            let dy = random(y_dims.clone(), 1.0, seed + 1, dtype);
            let (x64, dy64) = (f64_of(&x), f64_of(&dy));
            let (dx_dev, ddy) = (upload(dev, &x), upload(dev, &dy));
            for mean in [false, true] {
                let op = if mean { "mean" } else { "sum" };
                let mut y = poisoned(dev, y_dims.clone(), dtype);
                k::sum_axis_fwd_into(dev, &dx_dev, axis, mean, &mut y).unwrap();
                let want = sum_axis_fwd(&x64, axis, mean).unwrap();
                errors.check(&format!("{op} forward over axis {axis}"), dev, &y, &want);

                let mut dx = poisoned(dev, shape, dtype);
                k::sum_axis_bwd_into(dev, &ddy, x.shape(), axis, mean, &mut dx).unwrap();
                let want = sum_axis_bwd(&dy64, x.shape(), axis, mean).unwrap();
                errors.check(&format!("{op} backward over axis {axis}"), dev, &dx, &want);
            }
        }
        let x = random([5, 77], 1.0, 9, dtype);
        let y = k::sum_axis_fwd(dev, &upload(dev, &x), 0, true).unwrap();
        let want = sum_axis_fwd(&f64_of(&x), 0, true).unwrap();
        errors.check("mean (allocating)", dev, &y, &want);
        let dy = random([77], 1.0, 10, dtype);
        let dx = k::sum_axis_bwd(dev, &upload(dev, &dy), x.shape(), 0, false).unwrap();
        let want = sum_axis_bwd(&f64_of(&dy), x.shape(), 0, false).unwrap();
        errors.check("sum backward (allocating)", dev, &dx, &want);
    }
    errors.report("sum_mean");
}
recur::kernel_test!(sum_mean, super::check_sum_mean);

fn check_sum_all(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (s, &n) in SIZES.iter().chain(&[65_537]).enumerate() {
            let seed = (300 + 100 * d + 10 * s) as u64;
            // A nonzero mean, so the relative error of the total is meaningful.
            let v: Vec<f64> = random([n], 1.0, seed, DType::F64)
                .to_vec_f64()
                .unwrap()
                .iter()
                .map(|x| x + 0.25)
                .collect();
            let x = Tensor::from_vec(v, [n, 1])
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let mut y = poisoned(dev, Shape::scalar(), dtype);
            k::sum_all_fwd_into(dev, &upload(dev, &x), &mut y).unwrap();
            errors.check("sum_all", dev, &y, &sum_all_fwd(&f64_of(&x)).unwrap());

            let dy = Tensor::scalar(-1.5, dtype);
            let mut dx = poisoned(dev, [n, 1], dtype);
            k::sum_all_bwd_into(dev, &upload(dev, &dy), x.shape(), &mut dx).unwrap();
            let want = Tensor::full([n, 1], -1.5, DType::F64);
            errors.check("sum_all backward", dev, &dx, &want);
        }
        let x = random([3, 11], 1.0, 5, dtype);
        let y = k::sum_all_fwd(dev, &upload(dev, &x)).unwrap();
        errors.check(
            "sum_all (allocating)",
            dev,
            &y,
            &sum_all_fwd(&f64_of(&x)).unwrap(),
        );
        let dx = k::sum_all_bwd(dev, &upload(dev, &Tensor::scalar(2.0, dtype)), x.shape());
        let want = Tensor::full([3, 11], 2.0, DType::F64);
        errors.check("sum_all backward (allocating)", dev, &dx.unwrap(), &want);
    }
    errors.report("sum_all");
}
recur::kernel_test!(sum_all, super::check_sum_all);

/// Values with many ties (integers in -3..=3), and NaNs in some rows when `with_nan`.
fn tied_values(shape: &[usize], seed: u64, with_nan: bool, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = random([n], 1.5, seed, DType::F64)
        .to_vec_f64()
        .unwrap()
        .iter()
        .map(|x| x.round().clamp(-3.0, 3.0))
        .collect();
    if with_nan {
        for i in (5..n).step_by(37) {
            v[i] = f64::NAN;
        }
    }
    Tensor::from_vec(v, shape).unwrap().to_dtype(dtype).unwrap()
}

fn check_argmax(dev: &dyn KernelBackend) {
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (c, &(shape, axis)) in CASES.iter().enumerate() {
            if shape.contains(&0) {
                continue; // an empty axis is an error (checked below)
            }
            for (variant, x) in [
                random(shape, 1.0, (700 + 100 * d + 10 * c) as u64, dtype),
                tied_values(shape, (701 + 100 * d + 10 * c) as u64, false, dtype),
                tied_values(shape, (702 + 100 * d + 10 * c) as u64, true, dtype),
            ]
            .iter()
            .enumerate()
            {
                let mut y = poisoned(dev, without_axis(shape, axis), DType::I32);
                k::argmax_fwd_into(dev, &upload(dev, x), axis, &mut y).unwrap();
                let what = format!("argmax {dtype} {shape:?} axis {axis} variant {variant}");
                check_exact(&what, dev, &y, &argmax_fwd(x, axis).unwrap());
            }
        }
        let x = tied_values(&[9, 500], 3, true, dtype);
        let y = k::argmax_fwd(dev, &upload(dev, &x), -1).unwrap();
        check_exact("argmax (allocating)", dev, &y, &argmax_fwd(&x, -1).unwrap());
    }
}
recur::kernel_test!(argmax, super::check_argmax);

fn check_reduce_errors(dev: &dyn KernelBackend) {
    let x = upload(dev, &random([4, 6], 1.0, 1, DType::F32));
    let x_f64 = upload(dev, &random([4, 6], 1.0, 2, DType::F64));
    let empty_axis = upload(dev, &random([4, 0], 1.0, 3, DType::F32));
    let dy = upload(dev, &random([4], 1.0, 4, DType::F32));
    let shape = Shape::new([4, 6]);

    assert!(
        k::sum_axis_fwd(dev, &x, 2, false).is_err(),
        "axis out of range"
    );
    assert!(
        k::sum_axis_fwd(dev, &x, -3, true).is_err(),
        "axis out of range"
    );
    assert!(k::sum_axis_fwd(dev, &x_f64, 0, false).is_err(), "f64");
    assert!(k::sum_all_fwd(dev, &x_f64).is_err(), "f64");
    assert!(
        k::sum_axis_bwd(dev, &dy, &shape, 0, false).is_err(),
        "dy must be [6]"
    );
    assert!(
        k::sum_axis_bwd(dev, &dy, &shape, 1, false).is_ok(),
        "dy [4] fits axis 1"
    );
    assert!(
        k::sum_all_bwd(dev, &dy, &shape).is_err(),
        "dy must be a scalar"
    );
    let mut wrong = poisoned(dev, [4], DType::BF16);
    assert!(
        k::sum_axis_fwd_into(dev, &x, 1, false, &mut wrong).is_err(),
        "out dtype"
    );
    let mut wrong = poisoned(dev, [1], DType::F32);
    assert!(
        k::sum_all_fwd_into(dev, &x, &mut wrong).is_err(),
        "out must be a scalar"
    );

    assert!(k::argmax_fwd(dev, &empty_axis, 1).is_err(), "empty axis");
    assert!(k::argmax_fwd(dev, &x, 5).is_err(), "axis out of range");
    assert!(k::argmax_fwd(dev, &x_f64, 0).is_err(), "f64");
    let mut wrong = poisoned(dev, [4], DType::F32);
    assert!(
        k::argmax_fwd_into(dev, &x, 1, &mut wrong).is_err(),
        "out must be i32"
    );
}
recur::kernel_test!(reduce_errors, super::check_reduce_errors);
