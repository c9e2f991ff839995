//! kernels/loss.cu against the CPU reference `device::cpu::loss`, computed in f64 from the same
//! (bf16-rounded, for bf16) inputs: per-sequence softmax and stablemax cross-entropy with ignored
//! tokens, the mask-weighted cross-entropy, and weighted BCE with logits; forward and backward,
//! f32 and bf16, ragged sizes, NaN-poisoned outputs.

use recur::device::cpu::loss as reference;
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::loss::{self as k, BceWeights, Normalizer, IGNORE_LABEL};
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

/// The DESIGN tolerance for relative L2 error against f64: 1e-5 for f32 outputs (losses are f32
/// whatever the logits' storage), 1e-2 for outputs stored in bf16.
fn tolerance(out_dtype: DType) -> f64 {
    match out_dtype {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

/// A deterministic hash of (seed, i), uniform over u64 (splitmix64).
fn hash(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [0, 1).
fn unit(seed: u64, i: u64) -> f64 {
    (hash(seed, i) >> 11) as f64 / (1u64 << 53) as f64
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn as64(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).unwrap()
}

fn check(what: &str, got: &DeviceTensor, dev: &dyn KernelBackend, want: &Tensor) {
    let got = got.download(dev).unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let err = rel_l2(&f64s(&got), &f64s(want));
    eprintln!("{what} ({} out): rel L2 {err:.2e}", got.dtype());
    assert!(err < tolerance(got.dtype()), "{what}: rel L2 {err:.3e}");
}

/// Labels `[B, S]` in `0..classes`, about a fifth of them −100, and the whole of sequence 1
/// (when there is one) ignored, so the `max(1, #valid)` guard is exercised.
fn sequence_labels(batch: usize, seq: usize, classes: usize, seed: u64) -> Tensor {
    let labels: Vec<i32> = (0..batch * seq)
        .map(|i| {
            let ignored = i / seq == 1 || hash(seed, i as u64) % 5 == 0;
            if ignored {
                IGNORE_LABEL
            } else {
                (hash(seed + 1, i as u64) % classes as u64) as i32
            }
        })
        .collect();
    Tensor::from_vec(labels, [batch, seq]).unwrap()
}

/// (B, S, V): the task vocabularies (6, 11) and sizes that leave warps and blocks part-full.
const SEQUENCE_SIZES: [(usize, usize, usize); 4] = [(1, 1, 1), (3, 7, 11), (5, 33, 6), (2, 97, 40)];

fn check_sequence_ce(dev: &dyn KernelBackend) {
    for norm in [Normalizer::Softmax, Normalizer::Stablemax] {
        for dtype in [DType::F32, DType::BF16] {
            for (case, &(b, s, v)) in SEQUENCE_SIZES.iter().enumerate() {
                let seed = 10 * case as u64 + if dtype == DType::BF16 { 5 } else { 0 };
                let what = format!("{norm:?} CE {dtype} B={b} S={s} V={v}");
                let logits = Tensor::randn([b, s, v], 2.0, seed, dtype).unwrap();
                let labels = sequence_labels(b, s, v, seed);
                let dy = Tensor::randn([b], 1.0, seed + 1, DType::F32).unwrap();
                let logits_d = DeviceTensor::upload(dev, &logits).unwrap();
                let labels_d = DeviceTensor::upload(dev, &labels).unwrap();
                let dy_d = DeviceTensor::upload(dev, &dy).unwrap();

                let mut loss = DeviceTensor::poisoned(dev, [b], DType::F32).unwrap();
                k::sequence_ce_fwd_into(dev, &logits_d, &labels_d, norm, &mut loss).unwrap();
                let want = reference::sequence_mean_ce_fwd(&as64(&logits), &labels, norm).unwrap();
                check(&format!("{what} fwd"), &loss, dev, &want);

                let mut dlogits = DeviceTensor::poisoned(dev, [b, s, v], dtype).unwrap();
                k::sequence_ce_bwd_into(dev, &dy_d, &logits_d, &labels_d, norm, &mut dlogits)
                    .unwrap();
                let want =
                    reference::sequence_mean_ce_bwd(&as64(&dy), &as64(&logits), &labels, norm)
                        .unwrap();
                check(&format!("{what} bwd"), &dlogits, dev, &want);
            }
        }
    }
}
recur::kernel_test!(sequence_ce, super::check_sequence_ce);

/// A label outside the classes is not checked on the host: it makes its sequence's loss and
/// gradient rows NaN, and leaves the other sequences exact.
fn check_sequence_ce_bad_label(dev: &dyn KernelBackend) {
    let (b, s, v) = (3, 4, 5);
    let logits = Tensor::randn([b, s, v], 1.0, 3, DType::F32).unwrap();
    let mut labels = vec![1i32; b * s];
    labels[s + 2] = v as i32; // sequence 1, token 2
    let labels = Tensor::from_vec(labels, [b, s]).unwrap();
    let logits_d = DeviceTensor::upload(dev, &logits).unwrap();
    let labels_d = DeviceTensor::upload(dev, &labels).unwrap();
    let loss = k::sequence_ce_fwd(dev, &logits_d, &labels_d, Normalizer::Softmax).unwrap();
    let loss = loss.download(dev).unwrap().to_vec_f64().unwrap();
    assert!(loss[1].is_nan(), "the bad label's sequence: {loss:?}");
    assert!(loss[0].is_finite() && loss[2].is_finite(), "{loss:?}");
    let dy = DeviceTensor::upload(dev, &Tensor::ones([b], DType::F32)).unwrap();
    let grad = k::sequence_ce_bwd(dev, &dy, &logits_d, &labels_d, Normalizer::Softmax).unwrap();
    let grad = grad.download(dev).unwrap().to_vec_f64().unwrap();
    let row = |r: usize| &grad[r * v..(r + 1) * v];
    assert!(row(s + 2).iter().all(|g| g.is_nan()), "{:?}", row(s + 2));
    assert!(row(0).iter().all(|g| g.is_finite()));
}
recur::kernel_test!(sequence_ce_bad_label, super::check_sequence_ce_bad_label);

/// Targets in `0..classes`, except an out-of-range −1 wherever the mask is 0 (such targets must
/// never be read), and a mask of 0, 0.5, 1 or 2.
fn masked_inputs(rows: &[usize], classes: usize, seed: u64, dtype: DType) -> (Tensor, Tensor) {
    let n: usize = rows.iter().product();
    let mask: Vec<f64> = (0..n as u64)
        .map(|i| [0.0, 0.5, 1.0, 2.0][(hash(seed, i) % 4) as usize])
        .collect();
    let targets: Vec<i32> = (0..n)
        .map(|i| {
            if mask[i] == 0.0 {
                -1
            } else {
                (hash(seed + 1, i as u64) % classes as u64) as i32
            }
        })
        .collect();
    (
        Tensor::from_vec(targets, rows.to_vec()).unwrap(),
        Tensor::from_vec(mask, rows.to_vec())
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
}

fn check_masked_ce(dev: &dyn KernelBackend) {
    let cases: [(&[usize], usize); 4] = [(&[1], 1), (&[4, 9], 9), (&[3, 37], 7), (&[300], 33)];
    for dtype in [DType::F32, DType::BF16] {
        for (case, &(rows, classes)) in cases.iter().enumerate() {
            let seed = 20 * case as u64 + if dtype == DType::BF16 { 3 } else { 0 };
            let what = format!("masked CE {dtype} rows={rows:?} C={classes}");
            let logit_shape = Shape::new([rows, &[classes]].concat());
            let logits = Tensor::randn(logit_shape.clone(), 2.0, seed, dtype).unwrap();
            let (targets, mask) = masked_inputs(rows, classes, seed, dtype);
            let dy = Tensor::full(Shape::scalar(), 0.75, DType::F32);
            let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
            let (logits_d, targets_d, mask_d, dy_d) =
                (up(&logits), up(&targets), up(&mask), up(&dy));

            let mut loss = DeviceTensor::poisoned(dev, Shape::scalar(), DType::F32).unwrap();
            k::masked_ce_fwd_into(dev, &logits_d, &targets_d, &mask_d, &mut loss).unwrap();
            let want = reference::masked_ce_fwd(&as64(&logits), &targets, &as64(&mask)).unwrap();
            check(&format!("{what} fwd"), &loss, dev, &want);

            let mut dlogits = DeviceTensor::poisoned(dev, logit_shape.clone(), dtype).unwrap();
            k::masked_ce_bwd_into(dev, &dy_d, &logits_d, &targets_d, &mask_d, &mut dlogits)
                .unwrap();
            let want = reference::masked_ce_bwd(&as64(&dy), &as64(&logits), &targets, &as64(&mask))
                .unwrap();
            check(&format!("{what} bwd"), &dlogits, dev, &want);
        }
    }
}
recur::kernel_test!(masked_ce, super::check_masked_ce);

/// With nothing masked in, the loss and every gradient are exactly zero.
fn check_masked_ce_empty_mask(dev: &dyn KernelBackend) {
    let logits = Tensor::randn([6, 5], 1.0, 4, DType::F32).unwrap();
    let targets = Tensor::from_vec(vec![-1i32; 6], [6]).unwrap();
    let mask = Tensor::zeros([6], DType::F32);
    let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
    let (logits_d, targets_d, mask_d) = (up(&logits), up(&targets), up(&mask));
    let loss = k::masked_ce_fwd(dev, &logits_d, &targets_d, &mask_d).unwrap();
    assert_eq!(loss.download(dev).unwrap().item().unwrap(), 0.0);
    let dy = up(&Tensor::ones(Shape::scalar(), DType::F32));
    let grad = k::masked_ce_bwd(dev, &dy, &logits_d, &targets_d, &mask_d).unwrap();
    let grad = grad.download(dev).unwrap().to_vec_f64().unwrap();
    assert!(grad.iter().all(|&g| g == 0.0), "{grad:?}");
}
recur::kernel_test!(masked_ce_empty_mask, super::check_masked_ce_empty_mask);

fn check_bce(dev: &dyn KernelBackend) {
    let weights = [
        BceWeights::PLAIN,
        BceWeights {
            positive: 4.0,
            negative: 0.5,
        },
    ];
    for dtype in [DType::F32, DType::BF16] {
        for (case, &n) in [1usize, 33, 1000].iter().enumerate() {
            for w in weights {
                let seed = 30 * case as u64 + if dtype == DType::BF16 { 9 } else { 0 };
                let what = format!("BCE {dtype} n={n} w=({}, {})", w.positive, w.negative);
                // Logits spread over the saturated tails; soft targets in [0, 1] with some
                // hard 0s and 1s.
                let logits = Tensor::randn([n], 4.0, seed, dtype).unwrap();
                let targets: Vec<f64> = (0..n as u64)
                    .map(|i| match hash(seed, i) % 4 {
                        0 => 0.0,
                        1 => 1.0,
                        _ => unit(seed + 1, i),
                    })
                    .collect();
                let targets = Tensor::from_vec(targets, [n])
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let dy = Tensor::randn([n], 1.0, seed + 2, dtype).unwrap();
                let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
                let (logits_d, targets_d, dy_d) = (up(&logits), up(&targets), up(&dy));

                let mut out = DeviceTensor::poisoned(dev, [n], dtype).unwrap();
                k::bce_with_logits_fwd_into(dev, &logits_d, &targets_d, w, &mut out).unwrap();
                let want =
                    reference::bce_with_logits_fwd(&as64(&logits), &as64(&targets), w).unwrap();
                check(&format!("{what} fwd"), &out, dev, &want);

                let mut dlogits = DeviceTensor::poisoned(dev, [n], dtype).unwrap();
                let mut dtargets = DeviceTensor::poisoned(dev, [n], dtype).unwrap();
                k::bce_with_logits_bwd_into(
                    dev,
                    &dy_d,
                    &logits_d,
                    &targets_d,
                    w,
                    &mut dlogits,
                    &mut dtargets,
                )
                .unwrap();
                let (want_dx, want_dt) =
                    reference::bce_with_logits_bwd(&as64(&dy), &as64(&logits), &as64(&targets), w)
                        .unwrap();
                check(&format!("{what} d logits"), &dlogits, dev, &want_dx);
                check(&format!("{what} d targets"), &dtargets, dev, &want_dt);
            }
        }
    }
}
recur::kernel_test!(bce_with_logits, super::check_bce);

fn check_loss_errors(dev: &dyn KernelBackend) {
    let up = |shape: &[usize], dtype| {
        DeviceTensor::upload(dev, &Tensor::zeros(shape.to_vec(), dtype)).unwrap()
    };
    let sm = Normalizer::Softmax;
    let logits = up(&[2, 3, 4], DType::F32);
    let labels = up(&[2, 3], DType::I32);
    // Sequence CE: rank-2 logits, float labels, mismatched labels, no classes, f64 logits.
    assert!(k::sequence_ce_fwd(dev, &up(&[6, 4], DType::F32), &up(&[6], DType::I32), sm).is_err());
    assert!(k::sequence_ce_fwd(dev, &logits, &up(&[2, 3], DType::F32), sm).is_err());
    assert!(k::sequence_ce_fwd(dev, &logits, &up(&[2, 4], DType::I32), sm).is_err());
    assert!(k::sequence_ce_fwd(dev, &up(&[2, 3, 0], DType::F32), &labels, sm).is_err());
    assert!(k::sequence_ce_fwd(dev, &up(&[2, 3, 4], DType::F64), &labels, sm).is_err());
    // A loss output of the wrong shape; dy of the wrong shape or dtype; dlogits of another dtype.
    let mut loss = up(&[3], DType::F32);
    assert!(k::sequence_ce_fwd_into(dev, &logits, &labels, sm, &mut loss).is_err());
    assert!(k::sequence_ce_bwd(dev, &up(&[3], DType::F32), &logits, &labels, sm).is_err());
    assert!(k::sequence_ce_bwd(dev, &up(&[2], DType::BF16), &logits, &labels, sm).is_err());
    let mut dlogits = up(&[2, 3, 4], DType::BF16);
    let dy = up(&[2], DType::F32);
    assert!(k::sequence_ce_bwd_into(dev, &dy, &logits, &labels, sm, &mut dlogits).is_err());
    // Masked CE: a mask of another shape or dtype, dy that is not one f32.
    let flat = up(&[2, 3], DType::F32);
    assert!(k::masked_ce_fwd(dev, &logits, &labels, &up(&[6], DType::F32)).is_err());
    assert!(k::masked_ce_fwd(dev, &logits, &labels, &up(&[2, 3], DType::BF16)).is_err());
    assert!(k::masked_ce_bwd(dev, &up(&[2], DType::F32), &logits, &labels, &flat).is_err());
    // BCE: shapes or dtypes that differ.
    let w = BceWeights::PLAIN;
    let x = up(&[5], DType::F32);
    assert!(k::bce_with_logits_fwd(dev, &x, &up(&[4], DType::F32), w).is_err());
    assert!(k::bce_with_logits_fwd(dev, &x, &up(&[5], DType::BF16), w).is_err());
    assert!(k::bce_with_logits_bwd(dev, &up(&[4], DType::F32), &x, &x, w).is_err());
}
recur::kernel_test!(loss_errors, super::check_loss_errors);
