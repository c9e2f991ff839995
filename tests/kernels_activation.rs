//! activation.cu (every pointwise `Activation`, forward and backward, and SwiGLU) against
//! `device::cpu::activation` and `cpu::swiglu`, on every backend: f32 and bf16, ragged sizes,
//! NaN-poisoned outputs, f64 reference.

mod basic_kernels;

use basic_kernels::{f64_of, poisoned, random, upload, Errors, DTYPES, SIZES};
use recur::device::cpu::activation::{activation_bwd, activation_fwd};
use recur::device::cpu::swiglu::{swiglu_bwd, swiglu_fwd};
use recur::device::KernelBackend;
use recur::kernels::activation::{self as k, Activation};
use recur::{DType, Tensor};

const ACTIVATIONS: [Activation; 6] = [
    Activation::Silu,
    Activation::Relu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Exp,
];

/// Inputs where the formulas switch branch: ReLU′(0) = 0, the softplus threshold 20 (and the
/// values around it exactly representable in bf16), the far tails of sigmoid and GELU.
const EDGES: [f64; 10] = [
    0.0, -0.0, 19.875, 20.0, 20.125, 24.0, -30.0, -9.5, 9.5, 1e-4,
];

/// Random values with std 4 (so exp, softplus and the tails are exercised), edge values first.
fn inputs(n: usize, seed: u64, dtype: DType) -> Tensor {
    let mut v = random([n], 4.0, seed, DType::F64).to_vec_f64().unwrap();
    for (slot, &edge) in v.iter_mut().zip(&EDGES) {
        *slot = edge;
    }
    Tensor::from_vec(v, [n]).unwrap().to_dtype(dtype).unwrap()
}

fn check_activations(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (a, &act) in ACTIVATIONS.iter().enumerate() {
        for (d, &dtype) in DTYPES.iter().enumerate() {
            for (s, &n) in SIZES.iter().enumerate() {
                let seed = (1000 * a + 100 * d + 10 * s) as u64;
                let x = inputs(n, seed, dtype);
                let dy = random([n], 1.0, seed + 1, dtype);
                let (dx_dev, ddy) = (upload(dev, &x), upload(dev, &dy));
                let (x64, dy64) = (f64_of(&x), f64_of(&dy));

                let mut y = poisoned(dev, [n], dtype);
                k::activation_fwd_into(dev, act, &dx_dev, &mut y).unwrap();
                let what = format!("{} forward", act.name());
                errors.check(&what, dev, &y, &activation_fwd(act, &x64).unwrap());

                let mut dx = poisoned(dev, [n], dtype);
                k::activation_bwd_into(dev, act, &dx_dev, &ddy, &mut dx).unwrap();
                let what = format!("{} backward", act.name());
                errors.check(&what, dev, &dx, &activation_bwd(act, &x64, &dy64).unwrap());
            }
            // The allocating launchers, on a 2-D shape.
            let x = random([33, 31], 2.0, 77 + a as u64, dtype);
            let dy = random([33, 31], 1.0, 78 + a as u64, dtype);
            let (x64, dy64) = (f64_of(&x), f64_of(&dy));
            let y = k::activation_fwd(dev, act, &upload(dev, &x)).unwrap();
            errors.check(act.name(), dev, &y, &activation_fwd(act, &x64).unwrap());
            let dx = k::activation_bwd(dev, act, &upload(dev, &x), &upload(dev, &dy)).unwrap();
            let want = activation_bwd(act, &x64, &dy64).unwrap();
            errors.check(act.name(), dev, &dx, &want);
        }
    }
    errors.report("activations");
}
recur::kernel_test!(activations, super::check_activations);

fn check_swiglu(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    // (rows..., 2·inter): ragged rows and widths, a 3-D batch, and inter = 1.
    let shapes: [&[usize]; 6] = [
        &[1, 2],
        &[7, 66],
        &[33, 14],
        &[2, 5, 194],
        &[97, 2],
        &[3, 1000],
    ];
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for (s, &shape) in shapes.iter().enumerate() {
            let seed = (500 + 100 * d + 10 * s) as u64;
            let gate_up = random(shape, 2.0, seed, dtype);
            let mut y_dims = shape.to_vec();
            *y_dims.last_mut().unwrap() /= 2;
            let dy = random(y_dims.clone(), 1.0, seed + 1, dtype);
            let (gu64, dy64) = (f64_of(&gate_up), f64_of(&dy));
            let (dgu, ddy) = (upload(dev, &gate_up), upload(dev, &dy));

            let mut y = poisoned(dev, y_dims.clone(), dtype);
            k::swiglu_fwd_into(dev, &dgu, &mut y).unwrap();
            errors.check("swiglu forward", dev, &y, &swiglu_fwd(&gu64).unwrap());

            let mut dx = poisoned(dev, shape, dtype);
            k::swiglu_bwd_into(dev, &dgu, &ddy, &mut dx).unwrap();
            errors.check(
                "swiglu backward",
                dev,
                &dx,
                &swiglu_bwd(&gu64, &dy64).unwrap(),
            );

            let y = k::swiglu_fwd(dev, &dgu).unwrap();
            errors.check(
                "swiglu forward (allocating)",
                dev,
                &y,
                &swiglu_fwd(&gu64).unwrap(),
            );
            let dx = k::swiglu_bwd(dev, &dgu, &ddy).unwrap();
            let want = swiglu_bwd(&gu64, &dy64).unwrap();
            errors.check("swiglu backward (allocating)", dev, &dx, &want);
        }
    }
    errors.report("swiglu");
}
recur::kernel_test!(swiglu, super::check_swiglu);

fn check_activation_errors(dev: &dyn KernelBackend) {
    let x = upload(dev, &random([4, 6], 1.0, 1, DType::F32));
    let x_bf16 = upload(dev, &random([4, 6], 1.0, 2, DType::BF16));
    let x_f64 = upload(dev, &random([4, 6], 1.0, 3, DType::F64));
    let odd = upload(dev, &random([4, 5], 1.0, 4, DType::F32));
    let scalar = upload(dev, &Tensor::scalar(1.0, DType::F32));
    let dy_wrong = upload(dev, &random([4, 5], 1.0, 5, DType::F32));
    let dy_half = upload(dev, &random([4, 3], 1.0, 6, DType::F32));

    assert!(
        k::activation_fwd(dev, Activation::Gelu, &x_f64).is_err(),
        "f64"
    );
    assert!(
        k::activation_bwd(dev, Activation::Silu, &x, &dy_wrong).is_err(),
        "dy shape"
    );
    assert!(
        k::activation_bwd(dev, Activation::Silu, &x, &x_bf16).is_err(),
        "dy dtype"
    );
    let mut wrong_out = poisoned(dev, [4, 6], DType::BF16);
    assert!(k::activation_fwd_into(dev, Activation::Exp, &x, &mut wrong_out).is_err());

    assert!(k::swiglu_fwd(dev, &odd).is_err(), "odd last dimension");
    assert!(k::swiglu_fwd(dev, &scalar).is_err(), "scalar");
    assert!(k::swiglu_fwd(dev, &x_f64).is_err(), "f64");
    assert!(k::swiglu_bwd(dev, &x, &dy_wrong).is_err(), "dy shape");
    assert!(
        k::swiglu_bwd(dev, &x, &dy_half).is_ok(),
        "dy [4, 3] fits gate_up [4, 6]"
    );
    let mut wrong_out = poisoned(dev, [4, 6], DType::F32);
    assert!(
        k::swiglu_fwd_into(dev, &x, &mut wrong_out).is_err(),
        "y must be [4, 3]"
    );
}
recur::kernel_test!(activation_errors, super::check_activation_errors);
