//! layout.cu (transpose_last2, narrow forward and backward, concat) against
//! `device::cpu::layout`, on every backend: f32 and bf16, ragged shapes, NaN-poisoned outputs.
//! These kernels only move elements, so they must match the reference bit for bit.

mod basic_kernels;

use basic_kernels::{check_exact, poisoned, random, upload, DTYPES};
use recur::device::cpu::layout::{concat_fwd, narrow_bwd, narrow_fwd, transpose_last2_fwd};
use recur::device::KernelBackend;
use recur::kernels::layout as k;
use recur::{DType, Shape, Tensor};

fn check_transpose_last2(dev: &dyn KernelBackend) {
    // Square, ragged and thin matrices, tiles that straddle both edges, and batches.
    let shapes: [&[usize]; 8] = [
        &[1, 1],
        &[7, 33],
        &[33, 7],
        &[97, 1],
        &[1, 1000],
        &[3, 65, 31],
        &[2, 2, 40, 33],
        &[81, 128],
    ];
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (s, &shape) in shapes.iter().enumerate() {
            let x = random(shape, 1.0, (100 * d + s) as u64, dtype);
            let want = transpose_last2_fwd(&x).unwrap();
            let mut y = poisoned(dev, want.shape().clone(), dtype);
            k::transpose_last2_fwd_into(dev, &upload(dev, &x), &mut y).unwrap();
            check_exact("transpose_last2", dev, &y, &want);
            let y = k::transpose_last2_fwd(dev, &upload(dev, &x)).unwrap();
            check_exact("transpose_last2 (allocating)", dev, &y, &want);
        }
    }
}
recur::kernel_test!(transpose_last2, super::check_transpose_last2);

/// (shape, axis, start, len) for narrow: every axis position, ragged ranges, full and empty
/// slices.
const NARROWS: [(&[usize], isize, usize, usize); 8] = [
    (&[1000], 0, 7, 900),
    (&[7, 33], 1, 3, 17),
    (&[7, 33], 0, 6, 1),
    (&[3, 97, 5], 1, 0, 97),
    (&[3, 97, 5], -1, 2, 3),
    (&[2, 83, 40], 1, 81, 2),
    (&[4, 10, 3], 1, 4, 0),
    (&[5, 1], 1, 0, 1),
];

fn check_narrow(dev: &dyn KernelBackend) {
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (c, &(shape, axis, start, len)) in NARROWS.iter().enumerate() {
            let seed = (200 + 100 * d + 10 * c) as u64;
            let x = random(shape, 1.0, seed, dtype);
            let want = narrow_fwd(&x, axis, start, len).unwrap();
            let mut y = poisoned(dev, want.shape().clone(), dtype);
            k::narrow_fwd_into(dev, &upload(dev, &x), axis, start, len, &mut y).unwrap();
            check_exact("narrow", dev, &y, &want);
            let y = k::narrow_fwd(dev, &upload(dev, &x), axis, start, len).unwrap();
            check_exact("narrow (allocating)", dev, &y, &want);

            let dy = random(want.shape().clone(), 1.0, seed + 1, dtype);
            let want = narrow_bwd(&dy, x.shape(), axis, start).unwrap();
            let mut dx = poisoned(dev, shape, dtype);
            k::narrow_bwd_into(dev, &upload(dev, &dy), x.shape(), axis, start, &mut dx).unwrap();
            check_exact("narrow backward", dev, &dx, &want);
            let dx = k::narrow_bwd(dev, &upload(dev, &dy), x.shape(), axis, start).unwrap();
            check_exact("narrow backward (allocating)", dev, &dx, &want);
        }
    }
}
recur::kernel_test!(narrow, super::check_narrow);

fn check_concat(dev: &dyn KernelBackend) {
    // (shapes of the inputs, axis): 1 to 4 inputs, ragged sizes along the axis, an empty input.
    let cases: [(&[&[usize]], isize); 6] = [
        (&[&[7]], 0),
        (&[&[1000], &[33], &[1]], 0),
        (&[&[7, 33], &[7, 1], &[7, 97]], 1),
        (&[&[3, 5], &[97, 5]], 0),
        (&[&[2, 3, 40], &[2, 0, 40], &[2, 9, 40], &[2, 1, 40]], -2),
        (&[&[4, 6, 3], &[4, 6, 5]], 2),
    ];
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (c, &(shapes, axis)) in cases.iter().enumerate() {
            let xs: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .map(|(t, &s)| random(s, 1.0, (400 + 100 * d + 10 * c + t) as u64, dtype))
                .collect();
            let refs: Vec<&Tensor> = xs.iter().collect();
            let want = concat_fwd(&refs, axis).unwrap();
            let uploaded: Vec<_> = xs.iter().map(|x| upload(dev, x)).collect();
            let on_device: Vec<_> = uploaded.iter().collect();
            let mut y = poisoned(dev, want.shape().clone(), dtype);
            k::concat_fwd_into(dev, &on_device, axis, &mut y).unwrap();
            check_exact("concat", dev, &y, &want);
            let y = k::concat_fwd(dev, &on_device, axis).unwrap();
            check_exact("concat (allocating)", dev, &y, &want);
        }
    }
}
recur::kernel_test!(concat, super::check_concat);

fn check_layout_errors(dev: &dyn KernelBackend) {
    let x = upload(dev, &random([4, 6], 1.0, 1, DType::F32));
    let x_bf16 = upload(dev, &random([4, 6], 1.0, 2, DType::BF16));
    let x_f64 = upload(dev, &random([4, 6], 1.0, 3, DType::F64));
    let other = upload(dev, &random([5, 7], 1.0, 4, DType::F32));
    let rank1 = upload(dev, &random([6], 1.0, 5, DType::F32));

    assert!(k::transpose_last2_fwd(dev, &rank1).is_err(), "rank 1");
    assert!(k::transpose_last2_fwd(dev, &x_f64).is_err(), "f64");
    let mut wrong = poisoned(dev, [4, 6], DType::F32);
    assert!(
        k::transpose_last2_fwd_into(dev, &x, &mut wrong).is_err(),
        "y must be [6, 4]"
    );

    assert!(k::concat_fwd(dev, &[], 0).is_err(), "no inputs");
    assert!(
        k::concat_fwd(dev, &[&x, &other], 0).is_err(),
        "differ outside the axis"
    );
    assert!(
        k::concat_fwd(dev, &[&x, &rank1], 0).is_err(),
        "rank mismatch"
    );
    assert!(
        k::concat_fwd(dev, &[&x, &x_bf16], 0).is_err(),
        "dtype mismatch"
    );
    assert!(
        k::concat_fwd(dev, &[&x, &x], 2).is_err(),
        "axis out of range"
    );

    assert!(
        k::narrow_fwd(dev, &x, 1, 4, 3).is_err(),
        "range past the end"
    );
    assert!(
        k::narrow_fwd(dev, &x, 1, usize::MAX, 2).is_err(),
        "overflowing range"
    );
    assert!(
        k::narrow_fwd(dev, &x, 2, 0, 1).is_err(),
        "axis out of range"
    );
    assert!(k::narrow_fwd(dev, &x_f64, 1, 0, 1).is_err(), "f64");
    let shape = Shape::new([4, 3]);
    assert!(
        k::narrow_bwd(dev, &x, &shape, 1, 0).is_err(),
        "dy wider than x"
    );
    assert!(
        k::narrow_bwd(dev, &other, &Shape::new([4, 9]), 1, 0).is_err(),
        "dy rows"
    );
    assert!(
        k::narrow_bwd(dev, &x, &Shape::new([4, 9]), 1, 3).is_ok(),
        "dy fits at 3"
    );
    assert!(
        k::narrow_bwd(dev, &x, &Shape::new([4, 9]), 1, 4).is_err(),
        "dy past the end"
    );
}
recur::kernel_test!(layout_errors, super::check_layout_errors);
