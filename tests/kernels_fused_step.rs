//! fused_step.cu (`y = norm(a [+ b [+ c]])`, RMSNorm or LayerNorm, forward and backward) against
//! the CPU reference `inject_add_fwd` → `norm_fwd` / `norm_bwd` in f64 on the same
//! storage-rounded inputs: f32 and bf16, 1 to 3 terms, ragged rows (1..2500) and widths
//! D ∈ {1, 7, 33, 128, 129, 512, 1024} (every width class), NaN-poisoned outputs; plus the error cases, and a proptest
//! property on Emu.

mod basic_kernels;

use basic_kernels::{f64_of, poisoned, random, upload, Errors, DTYPES};
use proptest::prelude::*;
use recur::device::cpu::elementwise::inject_add_fwd;
use recur::device::cpu::norm::{norm_bwd, norm_fwd, Norm};
use recur::device::emu::Emu;
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::fused_step as k;
use recur::{DType, Shape, Tensor};

/// RMSNorm's eps for a width: with one column its backward is `rstd·g·eps/(x² + eps)`, a
/// cancellation `1 − x̂²` that f32 cannot resolve for eps = 1e-5 (the reference in f32 could not
/// either), so D = 1 uses eps = 1.
fn eps_for(cols: usize) -> f64 {
    if cols == 1 {
        1.0
    } else {
        1e-5
    }
}

/// One configuration's inputs on the host (storage-rounded) and the f64 reference's outputs.
struct Case {
    terms: Vec<Tensor>,
    dy: Tensor,
    /// LayerNorm's (weight, bias); None for RMSNorm.
    affine: Option<(Tensor, Tensor)>,
    eps: f64,
}

impl Case {
    fn new(shape: &[usize], n_terms: usize, layer: bool, dtype: DType, seed: u64) -> Case {
        let cols = *shape.last().unwrap();
        let terms = (0..n_terms as u64)
            .map(|i| random(shape, 1.0, seed + i, dtype))
            .collect();
        let affine = layer.then(|| {
            let ones = Tensor::full([cols], 1.0, DType::F64);
            let jitter = random([cols], 0.3, seed + 10, DType::F64);
            let weight = recur::device::cpu::elementwise::add_tensors(&ones, &jitter).unwrap();
            (
                weight.to_dtype(dtype).unwrap(),
                random([cols], 0.5, seed + 11, dtype),
            )
        });
        Case {
            terms,
            dy: random(shape, 1.0, seed + 20, dtype),
            affine,
            eps: eps_for(cols),
        }
    }

    fn host_norm<'a>(&self, wide: &'a Option<(Tensor, Tensor)>) -> Norm<&'a Tensor> {
        match wide {
            Some((w, b)) => Norm::layer(w, b, self.eps),
            None => Norm::rms(self.eps),
        }
    }

    /// Runs the kernels (the `_into` launchers on poisoned outputs, or the allocating ones) and
    /// checks every output against the reference.
    fn check(&self, dev: &dyn KernelBackend, into: bool, errors: &mut Errors, what: &str) {
        let wide_terms: Vec<Tensor> = self.terms.iter().map(f64_of).collect();
        let sum = inject_add_fwd(&wide_terms.iter().collect::<Vec<_>>()).unwrap();
        let wide_affine = self.affine.as_ref().map(|(w, b)| (f64_of(w), f64_of(b)));
        let host_norm = self.host_norm(&wide_affine);
        let want = norm_fwd(&sum, &host_norm).unwrap();
        let want_grads = norm_bwd(&f64_of(&self.dy), &sum, &want.stats, &host_norm).unwrap();

        let d_terms: Vec<DeviceTensor> = self.terms.iter().map(|t| upload(dev, t)).collect();
        let terms: Vec<&DeviceTensor> = d_terms.iter().collect();
        let d_affine = self
            .affine
            .as_ref()
            .map(|(w, b)| (upload(dev, w), upload(dev, b)));
        let norm = match &d_affine {
            Some((w, b)) => Norm::layer(w, b, self.eps),
            None => Norm::rms(self.eps),
        };
        let dy = upload(dev, &self.dy);
        let (shape, dtype) = (self.terms[0].shape().clone(), self.terms[0].dtype());
        let rows = want.stats.dims()[0];
        let cols = *shape.dims().last().unwrap();

        let (y, stats, grads) = if into {
            let mut y = poisoned(dev, shape.clone(), dtype);
            let mut stats = poisoned(dev, [rows, 2], DType::F32);
            k::step_norm_fwd_into(dev, &terms, &norm, &mut y, &mut stats).unwrap();
            let mut dx = poisoned(dev, shape.clone(), dtype);
            let mut affine = d_affine
                .as_ref()
                .map(|_| (poisoned(dev, [cols], dtype), poisoned(dev, [cols], dtype)));
            let outs = affine.as_mut().map(|(w, b)| (w, b));
            k::step_norm_bwd_into(dev, &dy, &terms, &stats, &norm, &mut dx, outs).unwrap();
            (y, stats, k::StepNormGrads { dx, affine })
        } else {
            let out = k::step_norm_fwd(dev, &terms, &norm).unwrap();
            let grads = k::step_norm_bwd(dev, &dy, &terms, &out.stats, &norm).unwrap();
            (out.y, out.stats, grads)
        };
        errors.check(&format!("{what} y"), dev, &y, &want.y);
        errors.check(&format!("{what} stats"), dev, &stats, &want.stats);
        errors.check(&format!("{what} dx"), dev, &grads.dx, &want_grads.dx);
        match (&grads.affine, &want_grads.affine) {
            (Some((dw, db)), Some((want_dw, want_db))) => {
                errors.check(&format!("{what} dweight"), dev, dw, want_dw);
                errors.check(&format!("{what} dbias"), dev, db, want_db);
            }
            (None, None) => {}
            _ => panic!("{what}: affine gradients present on one side only"),
        }
    }
}

/// (rows, D): every width at 1 row, a ragged count and 200 rows; a 3-D batch; 129 (just past
/// the 128-wide kernels) and 1024 columns (the widest class); and 2500 rows, more than the LayerNorm backward's 264 blocks × 8 warps, so warps stride.
fn shapes() -> Vec<Vec<usize>> {
    let mut shapes = Vec::new();
    for cols in [1, 7, 33, 128, 512] {
        for rows in [1, 37, 200] {
            shapes.push(vec![rows, cols]);
        }
    }
    shapes.extend([vec![2, 97, 33], vec![5, 129], vec![3, 1024], vec![2500, 7]]);
    shapes
}

fn check_step_norm(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (d, &dtype) in DTYPES.iter().enumerate() {
        for layer in [false, true] {
            for (s, shape) in shapes().iter().enumerate() {
                // Cycle the term count over the shapes so each width sees 1, 2 and 3 terms.
                let n_terms = 1 + (s + usize::from(layer)) % 3;
                let seed = (10_000 * d + 1000 * usize::from(layer) + 10 * s) as u64;
                let kind = if layer { "layernorm" } else { "rmsnorm" };
                let what = format!("{kind} {n_terms} terms {shape:?}");
                let case = Case::new(shape, n_terms, layer, dtype, seed);
                case.check(dev, s % 2 == 0, &mut errors, &what);
            }
        }
    }
    errors.report("step_norm");
}
recur::kernel_test!(step_norm, super::check_step_norm);

/// The bench shapes at batch 1: TRM's 3-term injection + RMSNorm at [97, 512] and LDT's
/// LayerNorm residual at [81, 128].
fn check_step_norm_model_shapes(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for &dtype in &DTYPES {
        Case::new(&[1, 97, 512], 3, false, dtype, 7).check(dev, true, &mut errors, "trm inject");
        Case::new(&[1, 81, 128], 2, true, dtype, 8).check(dev, false, &mut errors, "ldt residual");
    }
    errors.report("step_norm_model_shapes");
}
recur::kernel_test!(step_norm_model_shapes, super::check_step_norm_model_shapes);

fn check_step_norm_errors(dev: &dyn KernelBackend) {
    let t = |shape: &[usize], dtype: DType| upload(dev, &random(shape, 1.0, 1, dtype));
    let (a, b, c) = (
        t(&[4, 6], DType::F32),
        t(&[4, 6], DType::F32),
        t(&[4, 6], DType::F32),
    );
    let (w, bias, w_bad) = (
        t(&[6], DType::F32),
        t(&[6], DType::F32),
        t(&[5], DType::F32),
    );
    let rms = Norm::rms(1e-5);
    let layer = Norm::layer(&w, &bias, 1e-5);
    assert!(k::step_norm_fwd(dev, &[], &rms).is_err(), "no terms");
    assert!(
        k::step_norm_fwd(dev, &[&a, &b, &c, &a], &rms).is_err(),
        "4 terms"
    );
    let other_shape = t(&[4, 5], DType::F32);
    assert!(
        k::step_norm_fwd(dev, &[&a, &other_shape], &rms).is_err(),
        "shapes differ"
    );
    let other_dtype = t(&[4, 6], DType::BF16);
    assert!(
        k::step_norm_fwd(dev, &[&a, &other_dtype], &rms).is_err(),
        "dtypes differ"
    );
    assert!(
        k::step_norm_fwd(dev, &[&t(&[4, 6], DType::F64)], &rms).is_err(),
        "f64"
    );
    assert!(
        k::step_norm_fwd(dev, &[&t(&[2, 1025], DType::F32)], &rms).is_err(),
        "D > 1024"
    );
    let scalar = upload(dev, &Tensor::scalar(1.0, DType::F32));
    assert!(k::step_norm_fwd(dev, &[&scalar], &rms).is_err(), "scalar");
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            k::step_norm_fwd(dev, &[&a], &Norm::rms(eps)).is_err(),
            "eps {eps}"
        );
    }
    assert!(
        k::step_norm_fwd(dev, &[&a], &Norm::layer(&w_bad, &bias, 1e-5)).is_err(),
        "weight shape"
    );
    let w_bf16 = t(&[6], DType::BF16);
    assert!(
        k::step_norm_fwd(dev, &[&a], &Norm::layer(&w_bf16, &bias, 1e-5)).is_err(),
        "weight dtype"
    );
    let mut y_wrong = poisoned(dev, [4, 6], DType::BF16);
    let mut stats = poisoned(dev, [4, 2], DType::F32);
    assert!(k::step_norm_fwd_into(dev, &[&a], &rms, &mut y_wrong, &mut stats).is_err());
    let mut y = poisoned(dev, [4, 6], DType::F32);
    let mut stats_wrong = poisoned(dev, [4, 2], DType::BF16);
    assert!(k::step_norm_fwd_into(dev, &[&a], &rms, &mut y, &mut stats_wrong).is_err());

    let out = k::step_norm_fwd(dev, &[&a, &b], &layer).unwrap();
    assert!(k::step_norm_bwd(dev, &b, &[&a, &b], &out.stats, &layer).is_ok());
    assert!(
        k::step_norm_bwd(dev, &other_shape, &[&a], &out.stats, &layer).is_err(),
        "dy"
    );
    let short_stats = poisoned(dev, [3, 2], DType::F32);
    assert!(
        k::step_norm_bwd(dev, &b, &[&a], &short_stats, &layer).is_err(),
        "stats"
    );
    let mut dx = poisoned(dev, [4, 6], DType::F32);
    assert!(
        k::step_norm_bwd_into(dev, &b, &[&a], &out.stats, &layer, &mut dx, None).is_err(),
        "LayerNorm without dweight/dbias"
    );
    let (mut dw, mut db) = (
        poisoned(dev, [6], DType::F32),
        poisoned(dev, [6], DType::F32),
    );
    let affine = Some((&mut dw, &mut db));
    assert!(
        k::step_norm_bwd_into(dev, &b, &[&a], &out.stats, &rms, &mut dx, affine).is_err(),
        "RMSNorm with dweight/dbias"
    );
}
recur::kernel_test!(step_norm_errors, super::check_step_norm_errors);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Any rows × D (D ≤ 1024), 1 to 3 terms, either norm, either dtype, on Emu.
    #[test]
    fn emu_step_norm_matches_reference(
        rows in 1usize..70,
        cols in 1usize..=1024,
        n_terms in 1usize..=3,
        layer: bool,
        bf16: bool,
        seed in 0u64..1_000_000,
    ) {
        let dev = Emu::new().unwrap();
        let dtype = if bf16 { DType::BF16 } else { DType::F32 };
        let shape = Shape::new([rows, cols]);
        let case = Case::new(shape.dims(), n_terms, layer, dtype, seed);
        case.check(&dev, seed % 2 == 0, &mut Errors::default(), "proptest");
    }
}

/// The bench cases build and run once at batch 1 on Emu, with costs for every case.
#[test]
fn emu_bench_cases_run() {
    let dev = Emu::new().unwrap();
    let mut cases = recur::bench::fused::fused_step::cases(&dev, 1).unwrap();
    assert_eq!(cases.len(), 5);
    for case in &mut cases {
        assert!(case.flops > 0.0 && case.bytes > 0.0, "{}", case.kernel);
        (case.run)().unwrap();
    }
}
