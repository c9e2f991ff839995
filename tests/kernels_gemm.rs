//! kernels/gemm.cu (the tensor-core GEMM with fused epilogues) against the CPU reference
//! `device::cpu::linear::linear_fwd` (+ `add_tensors`, + `swiglu_fwd`), computed in f64 from the
//! same bf16 inputs, on ragged sizes that are not multiples of the 64 × 64 × 32 tiles (K also not
//! a multiple of the mma's 16 or of the 8-element load chunks), with NaN-poisoned outputs.

use recur::device::cpu::{elementwise, linear, swiglu};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::gemm::{self as k, Epilogue};
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

/// (M, N, K): every size in {1, 7, 33, 97, 130} on each axis, K ∈ {7, 16, 40, 97, 130} covers a
/// partial chunk, an exact mma step, a partial 32-step, and several steps; one case crosses
/// several tiles on all three axes. SwiGLU runs where N is even (gate | up); its I = N / 2 is odd
/// in two cases, and N = 97 is odd for the plain epilogues, so unpaired stores are covered.
const SIZES: [(usize, usize, usize); 7] = [
    (1, 2, 16),
    (33, 97, 50),
    (7, 34, 97),
    (33, 130, 7),
    (97, 8, 130),
    (130, 98, 40),
    (130, 130, 130),
];

/// bf16 operands are exact in f32 and the reference uses the same bf16 values, so an f32 output
/// differs only by the f32 sum (DESIGN's f32 bound, 1e-5); a bf16 output is rounded to 8 mantissa
/// bits (about 2e-3 relative), so 1e-2.
fn tolerance(out: DType) -> f64 {
    match out {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

fn as64(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).unwrap()
}

fn check(what: &str, got: &DeviceTensor, dev: &dyn KernelBackend, want: &Tensor) -> f64 {
    let got = got.download(dev).unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let err = rel_l2(&got.to_vec_f64().unwrap(), &want.to_vec_f64().unwrap());
    eprintln!("{what}: rel L2 {err:.2e}");
    assert!(err < tolerance(got.dtype()), "{what}: rel L2 {err:.3e}");
    err
}

/// Every epilogue, both output dtypes, every size: the kernel against the f64 reference on the
/// same bf16 inputs.
fn check_epilogues(dev: &dyn KernelBackend) {
    let bf = DType::BF16;
    let mut worst = [0.0f64; 2];
    for (case, &(m, n, kk)) in SIZES.iter().enumerate() {
        let seed = 100 * case as u64;
        // One case feeds a rank-3 input, whose leading dimensions fold into the rows.
        let x_shape = if m == 130 && n == 98 {
            Shape::new([10, 13, kk])
        } else {
            Shape::new([m, kk])
        };
        let lead = &x_shape.dims()[..x_shape.rank() - 1];
        let y_shape = Shape::new([lead, &[n]].concat());
        let x = Tensor::randn(x_shape.clone(), 1.0, seed, bf).unwrap();
        let w = Tensor::randn([n, kk], 0.5, seed + 1, bf).unwrap();
        let b = Tensor::randn([n], 1.0, seed + 2, bf).unwrap();
        let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
        let (xd, wd, bd) = (up(&x), up(&w), up(&b));
        let product = linear::linear_fwd(&as64(&x), &as64(&w), None).unwrap();

        for (slot, out) in [DType::BF16, DType::F32].into_iter().enumerate() {
            let label = |what: &str| format!("{what} M={m} N={n} K={kk} -> {out}");
            let r = Tensor::randn(y_shape.clone(), 1.0, seed + 3, out).unwrap();
            let rd = up(&r);
            let with_bias = linear::linear_fwd(&as64(&x), &as64(&w), Some(&as64(&b))).unwrap();
            let with_residual = elementwise::add_tensors(&product, &as64(&r)).unwrap();
            // SwiGLU needs an even N; odd-N cases compare it with a placeholder it never reaches.
            let (gated, gated_bias) = if n % 2 == 0 {
                (
                    swiglu::swiglu_fwd(&product).unwrap(),
                    swiglu::swiglu_fwd(&with_bias).unwrap(),
                )
            } else {
                (product.clone(), product.clone())
            };
            let cases = [
                ("gemm", Epilogue::None, &product),
                ("gemm+bias", Epilogue::Bias(&bd), &with_bias),
                ("gemm+residual", Epilogue::Residual(&rd), &with_residual),
                ("gemm+swiglu", Epilogue::SwiGlu, &gated),
                ("gemm+bias+swiglu", Epilogue::SwiGluBias(&bd), &gated_bias),
            ];
            // The SwiGLU cases (the last two) need an even N.
            let runnable = if n % 2 == 0 { 5 } else { 3 };
            for (what, epilogue, want) in cases.into_iter().take(runnable) {
                let mut y = DeviceTensor::poisoned(dev, want.shape().clone(), out).unwrap();
                k::gemm_bf16_into(dev, &xd, &wd, epilogue, &mut y).unwrap();
                let err = check(&label(what), &y, dev, want);
                worst[slot] = worst[slot].max(err);
            }
        }
    }
    eprintln!(
        "worst rel L2: bf16 out {:.2e}, f32 out {:.2e}",
        worst[0], worst[1]
    );
}
recur::kernel_test!(gemm_bf16_epilogues, super::check_epilogues);

/// The allocating launcher gives the shapes and values of the `_into` one.
fn check_allocating(dev: &dyn KernelBackend) {
    let x = Tensor::randn([2, 5, 24], 1.0, 1, DType::BF16).unwrap();
    let w = Tensor::randn([12, 24], 1.0, 2, DType::BF16).unwrap();
    let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
    let (xd, wd) = (up(&x), up(&w));
    let product = linear::linear_fwd(&as64(&x), &as64(&w), None).unwrap();
    let y = k::gemm_bf16(dev, &xd, &wd, Epilogue::None, DType::F32).unwrap();
    check("gemm_bf16", &y, dev, &product);
    let y = k::gemm_bf16(dev, &xd, &wd, Epilogue::SwiGlu, DType::BF16).unwrap();
    assert_eq!(y.dims(), &[2, 5, 6]);
    check(
        "gemm_bf16 swiglu",
        &y,
        dev,
        &swiglu::swiglu_fwd(&product).unwrap(),
    );
}
recur::kernel_test!(gemm_bf16_allocating, super::check_allocating);

fn check_errors(dev: &dyn KernelBackend) {
    let up = |shape: &[usize], dtype| {
        DeviceTensor::upload(dev, &Tensor::zeros(shape.to_vec(), dtype)).unwrap()
    };
    let bf = DType::BF16;
    let x = up(&[3, 4], bf);
    let w = up(&[6, 4], bf);
    let gemm = |x: &DeviceTensor, w: &DeviceTensor, e: Epilogue<'_>| k::gemm_bf16(dev, x, w, e, bf);
    // K mismatch, a rank-1 weight, f32 operands, an odd gate_up for SwiGLU.
    assert!(gemm(&x, &up(&[6, 3], bf), Epilogue::None).is_err());
    assert!(gemm(&x, &up(&[24], bf), Epilogue::None).is_err());
    assert!(gemm(&up(&[3, 4], DType::F32), &w, Epilogue::None).is_err());
    assert!(gemm(&x, &up(&[6, 4], DType::F32), Epilogue::None).is_err());
    assert!(gemm(&x, &up(&[5, 4], bf), Epilogue::SwiGlu).is_err());
    // A bias of the wrong length or dtype; a residual of the wrong shape or dtype.
    assert!(gemm(&x, &w, Epilogue::Bias(&up(&[4], bf))).is_err());
    assert!(gemm(&x, &w, Epilogue::Bias(&up(&[6], DType::F32))).is_err());
    assert!(gemm(&x, &w, Epilogue::SwiGluBias(&up(&[3], bf))).is_err());
    assert!(gemm(&x, &w, Epilogue::Residual(&up(&[3, 4], bf))).is_err());
    assert!(gemm(&x, &w, Epilogue::Residual(&up(&[3, 6], DType::F32))).is_err());
    // A caller's output of the wrong shape, or an f64 / i32 output.
    let mut y = up(&[3, 6], bf);
    assert!(k::gemm_bf16_into(dev, &x, &w, Epilogue::SwiGlu, &mut y).is_err());
    assert!(k::gemm_bf16(dev, &x, &w, Epilogue::None, DType::F64).is_err());
    assert!(k::gemm_bf16(dev, &x, &w, Epilogue::None, DType::I32).is_err());
}
recur::kernel_test!(gemm_bf16_errors, super::check_errors);
