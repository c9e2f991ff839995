//! elementwise.cu (inject_add / add, mul, scale) against `device::cpu::elementwise`, on every
//! backend: f32 and bf16, ragged sizes, NaN-poisoned outputs, f64 reference.

mod basic_kernels;

use basic_kernels::{f64_of, poisoned, random, upload, Errors, DTYPES, SIZES};
use recur::device::cpu::elementwise::{add_tensors, inject_add_fwd, mul_tensors, scale_tensor};
use recur::device::KernelBackend;
use recur::kernels::elementwise as k;
use recur::{DType, Tensor};

fn check_add_mul_scale(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (s, &n) in SIZES.iter().enumerate() {
            let seed = (100 * d + 10 * s) as u64;
            let shape = [3, n];
            let (a, b) = (
                random(shape, 1.0, seed, dtype),
                random(shape, 1.0, seed + 1, dtype),
            );
            let (da, db) = (upload(dev, &a), upload(dev, &b));
            let (a64, b64) = (f64_of(&a), f64_of(&b));

            let mut out = poisoned(dev, shape, dtype);
            k::add_fwd_into(dev, &da, &db, &mut out).unwrap();
            errors.check("add", dev, &out, &add_tensors(&a64, &b64).unwrap());

            let mut out = poisoned(dev, shape, dtype);
            k::mul_fwd_into(dev, &da, &db, &mut out).unwrap();
            errors.check("mul", dev, &out, &mul_tensors(&a64, &b64).unwrap());

            let mut out = poisoned(dev, shape, dtype);
            k::scale_fwd_into(dev, &da, -0.37, &mut out).unwrap();
            errors.check("scale", dev, &out, &scale_tensor(&a64, -0.37).unwrap());
        }
        // The allocating launchers return the same results.
        let (a, b) = (random([1001], 1.0, 7, dtype), random([1001], 1.0, 8, dtype));
        let (da, db) = (upload(dev, &a), upload(dev, &b));
        let (a64, b64) = (f64_of(&a), f64_of(&b));
        let sum = k::add_fwd(dev, &da, &db).unwrap();
        errors.check(
            "add (allocating)",
            dev,
            &sum,
            &add_tensors(&a64, &b64).unwrap(),
        );
        let prod = k::mul_fwd(dev, &da, &db).unwrap();
        errors.check(
            "mul (allocating)",
            dev,
            &prod,
            &mul_tensors(&a64, &b64).unwrap(),
        );
        let scaled = k::scale_fwd(dev, &da, 3.0).unwrap();
        errors.check(
            "scale (allocating)",
            dev,
            &scaled,
            &scale_tensor(&a64, 3.0).unwrap(),
        );
    }
    errors.report("add_mul_scale");
}
recur::kernel_test!(add_mul_scale, super::check_add_mul_scale);

fn check_inject_add(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (s, &n) in SIZES.iter().enumerate() {
            let shape = [n, 5];
            let terms: Vec<Tensor> = (0..3)
                .map(|t| random(shape, 1.0, (1000 + 100 * d + 10 * s + t) as u64, dtype))
                .collect();
            let uploaded: Vec<_> = terms.iter().map(|t| upload(dev, t)).collect();
            let wide: Vec<Tensor> = terms.iter().map(f64_of).collect();
            for count in 1..=3 {
                let on_device: Vec<_> = uploaded[..count].iter().collect();
                let mut out = poisoned(dev, shape, dtype);
                k::inject_add_fwd_into(dev, &on_device, &mut out).unwrap();
                let reference: Vec<&Tensor> = wide[..count].iter().collect();
                let what = format!("inject_add of {count} terms");
                errors.check(&what, dev, &out, &inject_add_fwd(&reference).unwrap());
            }
        }
        let x = random([97], 1.0, 9, dtype);
        let dx = upload(dev, &x);
        let out = k::inject_add_fwd(dev, &[&dx, &dx, &dx]).unwrap();
        let x64 = f64_of(&x);
        let want = inject_add_fwd(&[&x64, &x64, &x64]).unwrap();
        errors.check("inject_add (allocating)", dev, &out, &want);
    }
    errors.report("inject_add");
}
recur::kernel_test!(inject_add, super::check_inject_add);

fn check_elementwise_errors(dev: &dyn KernelBackend) {
    let f32_7 = upload(dev, &random([7], 1.0, 1, DType::F32));
    let f32_8 = upload(dev, &random([8], 1.0, 2, DType::F32));
    let bf16_7 = upload(dev, &random([7], 1.0, 3, DType::BF16));
    let f64_7 = upload(dev, &random([7], 1.0, 4, DType::F64));
    let i32_7 = upload(dev, &Tensor::from_vec(vec![1i32; 7], [7]).unwrap());

    assert!(k::add_fwd(dev, &f32_7, &f32_8).is_err(), "shape mismatch");
    assert!(k::add_fwd(dev, &f32_7, &bf16_7).is_err(), "dtype mismatch");
    assert!(k::mul_fwd(dev, &f32_7, &f32_8).is_err(), "shape mismatch");
    assert!(k::mul_fwd(dev, &bf16_7, &f32_7).is_err(), "dtype mismatch");
    assert!(
        k::mul_fwd(dev, &f64_7, &f64_7).is_err(),
        "f64 has no kernel"
    );
    assert!(
        k::scale_fwd(dev, &i32_7, 2.0).is_err(),
        "i32 is not a float"
    );
    assert!(k::inject_add_fwd(dev, &[]).is_err(), "no terms");
    let four = [&f32_7, &f32_7, &f32_7, &f32_7];
    assert!(k::inject_add_fwd(dev, &four).is_err(), "four terms");
    assert!(
        k::inject_add_fwd(dev, &[&f32_7, &f32_7, &f32_8]).is_err(),
        "shape mismatch"
    );

    let mut wrong_shape = poisoned(dev, [8], DType::F32);
    assert!(k::add_fwd_into(dev, &f32_7, &f32_7, &mut wrong_shape).is_err());
    let mut wrong_dtype = poisoned(dev, [7], DType::BF16);
    assert!(k::scale_fwd_into(dev, &f32_7, 2.0, &mut wrong_dtype).is_err());
}
recur::kernel_test!(elementwise_errors, super::check_elementwise_errors);
