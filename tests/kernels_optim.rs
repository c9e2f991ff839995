//! kernels/optim.cu against the optimizers in `src/optim`: several steps on the same fresh random
//! gradients (f32 and bf16), then parameters, moments and shadows compared. The kernels repeat
//! the reference's f32 arithmetic, so they agree to a few ulps (fused multiply-adds and the GPU's
//! atan2f are the only differences); the bound is the DESIGN f32 tolerance, 1e-5.

use recur::device::cpu::optim::{sign_sgd_scalars, AdamCoefficients, AdamHyper};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::embedding::sparse_embedding_bwd;
use recur::kernels::optim::{self as k, AdamKind, AdamTensors};
use recur::optim::{AdamAtan2, AdamAtan2Config, AdamConfig, AdamW, AdamWConfig, Ema, SignSgd};
use recur::testing::rel_l2;
use recur::{DType, Params, Tensor};

const STEPS: u64 = 4;
const SIZES: [usize; 3] = [1, 33, 1031];

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

/// Compares the kernels' tensor with the reference's, and also their changes from `initial`:
/// a step moves a parameter by far less than its size, so only the change shows an error in
/// the update itself.
fn check(what: &str, got: &DeviceTensor, dev: &dyn KernelBackend, want: &Tensor, initial: &Tensor) {
    let got = f64s(&got.download(dev).unwrap());
    let (want, initial) = (f64s(want), f64s(initial));
    assert_eq!(got.len(), want.len(), "{what}: length");
    let change = |v: &[f64]| -> Vec<f64> { v.iter().zip(&initial).map(|(a, b)| a - b).collect() };
    let err = rel_l2(&got, &want);
    let change_err = rel_l2(&change(&got), &change(&want));
    eprintln!("{what}: rel L2 {err:.2e}, of the change {change_err:.2e}");
    assert!(err < 1e-5, "{what}: rel L2 {err:.3e}");
    assert!(
        change_err < 1e-5,
        "{what}: rel L2 of the change {change_err:.3e}"
    );
}

/// The reference optimizers behind one interface: step once, and read the moments back.
enum Reference {
    Atan2(AdamAtan2),
    W(AdamW),
}

impl Reference {
    fn step(&mut self, params: &mut Params) {
        match self {
            Reference::Atan2(o) => o.step(params).unwrap(),
            Reference::W(o) => o.step(params).unwrap(),
        }
    }
    fn moments(&self, params: &Params) -> (Tensor, Tensor) {
        let id = params.ids().next().unwrap();
        let (m, v) = match self {
            Reference::Atan2(o) => o.moments(id),
            Reference::W(o) => o.moments(id),
        }
        .unwrap();
        (m.clone(), v.clone())
    }
}

/// Runs `STEPS` steps of the kernel optimizer (`step_kernel`) and the reference side by side on
/// one parameter of each size, with gradients of `grad_dtype`.
fn run_adam(
    dev: &dyn KernelBackend,
    name: &str,
    mut reference: impl FnMut() -> Reference,
    step_kernel: &dyn Fn(&dyn KernelBackend, u64, AdamTensors<'_>),
) {
    for grad_dtype in [DType::F32, DType::BF16] {
        for (case, &n) in SIZES.iter().enumerate() {
            let seed = 1000 * case as u64 + if grad_dtype == DType::BF16 { 500 } else { 0 };
            let what = format!("{name} n={n} grad {grad_dtype} after {STEPS} steps");
            let initial = Tensor::randn([n], 1.0, seed, DType::F32).unwrap();
            let mut params = Params::new();
            let id = params.add("w", initial.clone()).unwrap();
            let mut opt = reference();
            let mut param = DeviceTensor::upload(dev, &initial).unwrap();
            let zeros = Tensor::zeros([n], DType::F32);
            let mut m = DeviceTensor::upload(dev, &zeros).unwrap();
            let mut v = DeviceTensor::upload(dev, &zeros).unwrap();
            for step in 1..=STEPS {
                // Gradients of varying scale, so the moments see more than one magnitude.
                let scale = 0.1 * step as f64;
                let grad = Tensor::randn([n], scale, seed + step, grad_dtype).unwrap();
                params.get_mut(id).grad = Some(grad.clone());
                opt.step(&mut params);
                let grad_d = DeviceTensor::upload(dev, &grad).unwrap();
                let tensors = AdamTensors {
                    param: &mut param,
                    grad: &grad_d,
                    exp_avg: &mut m,
                    exp_avg_sq: &mut v,
                    mirror: None,
                };
                step_kernel(dev, step, tensors);
            }
            let (want_m, want_v) = opt.moments(&params);
            check(
                &format!("{what}: param"),
                &param,
                dev,
                params.value(id),
                &initial,
            );
            check(&format!("{what}: m"), &m, dev, &want_m, &zeros);
            check(&format!("{what}: v"), &v, dev, &want_v, &zeros);
        }
    }
}

/// The step's scalars in device memory, as the kernels read them.
fn scalars(dev: &dyn KernelBackend, values: &[f32]) -> DeviceTensor {
    DeviceTensor::upload(
        dev,
        &Tensor::from_vec(values.to_vec(), [values.len()]).unwrap(),
    )
    .unwrap()
}

/// One kernel Adam step of `kind` at step count `step`.
fn kernel_adam_step(
    dev: &dyn KernelBackend,
    kind: AdamKind,
    h: &AdamHyper,
    step: u64,
    t: AdamTensors<'_>,
) {
    let s = scalars(dev, &AdamCoefficients::<f32>::new(h, step).kernel_scalars());
    k::adam_step(dev, kind, &s, t).unwrap()
}

fn check_adam_atan2(dev: &dyn KernelBackend) {
    // The HRM/TRM recipe, with a large enough lr that the steps are visible in f32.
    let config = AdamAtan2Config {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        weight_decay: 0.1,
    };
    run_adam(
        dev,
        "AdamAtan2",
        || Reference::Atan2(AdamAtan2::new(config).unwrap()),
        &|dev, step, t| kernel_adam_step(dev, AdamKind::Atan2, &config.hyper(), step, t),
    );
}
recur::kernel_test!(adam_atan2, super::check_adam_atan2);

fn check_adamw(dev: &dyn KernelBackend) {
    let config = AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::sotaku()
    };
    run_adam(
        dev,
        "AdamW",
        || Reference::W(AdamW::new(config).unwrap()),
        &|dev, step, t| kernel_adam_step(dev, AdamKind::W, &config.hyper(), step, t),
    );
}
recur::kernel_test!(adamw, super::check_adamw);

fn check_ema(dev: &dyn KernelBackend) {
    for (case, &n) in SIZES.iter().enumerate() {
        let seed = 77 + 100 * case as u64;
        let initial = Tensor::randn([n], 1.0, seed, DType::F32).unwrap();
        let mut params = Params::new();
        let id = params.add("w", initial.clone()).unwrap();
        // A small μ, so every update moves the shadow visibly.
        let decay = 0.6;
        let mut ema = Ema::new(&params, decay).unwrap();
        let mut shadow = DeviceTensor::upload(dev, params.value(id)).unwrap();
        for step in 1..=STEPS {
            let value = Tensor::randn([n], 1.0, seed + step, DType::F32).unwrap();
            params.get_mut(id).value = value.clone();
            ema.update(&params).unwrap();
            let param = DeviceTensor::upload(dev, &value).unwrap();
            k::ema_update(dev, decay, &mut shadow, &param).unwrap();
        }
        let want = ema.shadow().value(ema.shadow().id("w").unwrap());
        let what = format!("EMA n={n} after {STEPS} updates");
        check(&what, &shadow, dev, want, &initial);
    }
}
recur::kernel_test!(ema, super::check_ema);

/// Sparse sign-SGD: per step, random ids with repeats and their gradient rows; the kernels sum
/// the rows per id (`sparse_embedding_bwd`) and step the touched rows; the reference is
/// `SignSgd::step` on the same table.
fn check_sign_sgd(dev: &dyn KernelBackend) {
    let opt = SignSgd::new(1e-2, 0.1).unwrap();
    for grad_dtype in [DType::F32, DType::BF16] {
        for (case, &(num_ids, n, dim)) in [(1, 1, 1), (9, 12, 33), (50, 97, 130)].iter().enumerate()
        {
            let seed = 3000 + 100 * case as u64 + if grad_dtype == DType::BF16 { 50 } else { 0 };
            let what = format!("SignSgd {grad_dtype} ids<{num_ids} n={n} D={dim}");
            let initial = Tensor::randn([num_ids, dim], 1.0, seed, DType::F32).unwrap();
            let mut table = initial.clone();
            let mut table_d = DeviceTensor::upload(dev, &table).unwrap();
            for step in 1..=STEPS {
                let ids: Vec<i32> = (0..n)
                    .map(|i| ((i as u64 * 7 + step * 13 + seed) % num_ids as u64) as i32)
                    .collect();
                let ids = Tensor::from_vec(ids, [n]).unwrap();
                let rows = Tensor::randn([n, dim], 1.0, seed + step, grad_dtype).unwrap();
                opt.step(&mut table, &ids, &rows).unwrap();
                let ids_d = DeviceTensor::upload(dev, &ids).unwrap();
                let rows_d = DeviceTensor::upload(dev, &rows).unwrap();
                let sums = sparse_embedding_bwd(dev, &ids_d, &rows_d).unwrap();
                let s = scalars(dev, &opt.kernel_scalars());
                k::sign_sgd_step(dev, &s, &mut table_d, &sums).unwrap();
            }
            check(
                &format!("{what} after {STEPS} steps"),
                &table_d,
                dev,
                &table,
                &initial,
            );
        }
    }
}
recur::kernel_test!(sign_sgd, super::check_sign_sgd);

fn check_optim_errors(dev: &dyn KernelBackend) {
    let up = |n: usize, dtype| DeviceTensor::upload(dev, &Tensor::zeros([n], dtype)).unwrap();
    let good = scalars(dev, &[0.0; k::ADAM_SCALARS]);
    let (mut p, mut m, mut v) = (up(4, DType::F32), up(4, DType::F32), up(4, DType::F32));
    let grad = up(4, DType::F32);
    let mut step =
        |s: &DeviceTensor, p: &mut DeviceTensor, g: &DeviceTensor, m: &mut DeviceTensor| {
            let t = AdamTensors {
                param: p,
                grad: g,
                exp_avg: m,
                exp_avg_sq: &mut v,
                mirror: None,
            };
            k::adam_step(dev, AdamKind::Atan2, s, t)
        };
    // Scalars of the wrong count or dtype, a gradient of another shape or an integer dtype, a
    // bf16 parameter or moment.
    assert!(step(&up(5, DType::F32), &mut p, &grad, &mut m).is_err());
    assert!(step(&up(6, DType::BF16), &mut p, &grad, &mut m).is_err());
    assert!(step(&good, &mut p, &up(5, DType::F32), &mut m).is_err());
    assert!(step(&good, &mut p, &up(4, DType::I32), &mut m).is_err());
    assert!(step(&good, &mut up(4, DType::BF16), &grad, &mut m).is_err());
    assert!(step(&good, &mut p, &grad, &mut up(4, DType::BF16)).is_err());
    assert!(step(&good, &mut p, &grad, &mut m).is_ok());
    // EMA: μ = 1, shapes or dtypes that differ.
    let param = up(4, DType::F32);
    assert!(k::ema_update(dev, 1.0, &mut up(4, DType::F32), &param).is_err());
    assert!(k::ema_update(dev, 0.9, &mut up(5, DType::F32), &param).is_err());
    assert!(k::ema_update(dev, 0.9, &mut up(4, DType::BF16), &up(4, DType::BF16)).is_err());
    // Sign-SGD: a table of another width or dtype than the sums, scalars of the wrong count.
    let ids = DeviceTensor::upload(dev, &Tensor::from_vec(vec![0i32, 1], [2]).unwrap()).unwrap();
    let rows = DeviceTensor::upload(dev, &Tensor::zeros([2, 3], DType::F32)).unwrap();
    let sums = sparse_embedding_bwd(dev, &ids, &rows).unwrap();
    let s = scalars(dev, &sign_sgd_scalars(1e-2, 0.0));
    let mut table = DeviceTensor::upload(dev, &Tensor::zeros([4, 5], DType::F32)).unwrap();
    assert!(k::sign_sgd_step(dev, &s, &mut table, &sums).is_err());
    let mut table = DeviceTensor::upload(dev, &Tensor::zeros([4, 3], DType::BF16)).unwrap();
    assert!(k::sign_sgd_step(dev, &s, &mut table, &sums).is_err());
    let mut table = DeviceTensor::upload(dev, &Tensor::zeros([4, 3], DType::F32)).unwrap();
    assert!(k::sign_sgd_step(dev, &up(3, DType::F32), &mut table, &sums).is_err());
    assert!(k::sign_sgd_step(dev, &s, &mut table, &sums).is_ok());
}
recur::kernel_test!(optim_errors, super::check_optim_errors);
