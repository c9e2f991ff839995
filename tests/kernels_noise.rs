//! noise.cu (Philox Gaussian noise, PTRM's add_noise, GRAM's reparameterised sample, the Gaussian
//! KL with balanced gradients, and the fused sample + KL forward and backward) against
//! `device::cpu::noise`, `cpu::kl` and `rng::philox`, on every backend: f32 and bf16, ragged
//! sizes, NaN-poisoned outputs, the f64 reference on the same inputs; the exact Philox stream at
//! several seeds, steps and offsets; NaN for non-positive σ; and the launchers' error cases.

mod basic_kernels;

use basic_kernels::{f64_of, poisoned, random, upload, Errors, DTYPES, SIZES};
use recur::device::cpu::{kl, noise};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::noise::{self as k, KlGradScale, NoiseStream, ReparamKlGrads};
use recur::rng::philox;
use recur::{DType, Shape, Tensor};

/// Shapes for the elementwise ops: the ragged 1-D sizes and a 3-D one.
fn shapes() -> Vec<Shape> {
    let mut shapes: Vec<Shape> = SIZES.iter().map(|&n| Shape::from([n])).collect();
    shapes.push(Shape::from([3, 97, 5]));
    shapes
}

/// Streams with seeds and steps that use both 32-bit halves of the Philox key and counter.
const STREAMS: [NoiseStream; 3] = [
    NoiseStream { seed: 0, step: 0 },
    NoiseStream {
        seed: 0x1234_5678_9abc_def0,
        step: 7,
    },
    NoiseStream {
        seed: 42,
        step: (5 << 32) | 3,
    },
];

/// Positive standard deviations `exp(N(0, 0.5²))` stored in `dtype`.
fn sigmas(shape: &Shape, seed: u64, dtype: DType) -> Tensor {
    let v: Vec<f64> = random(shape.clone(), 0.5, seed, DType::F64)
        .to_vec_f64()
        .unwrap()
        .into_iter()
        .map(f64::exp)
        .collect();
    Tensor::from_vec(v, shape.clone())
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// The four KL operands `[μq, σq, μp, σp]` in `dtype`.
fn kl_operands(shape: &Shape, seed: u64, dtype: DType) -> [Tensor; 4] {
    [
        random(shape.clone(), 1.0, seed, dtype),
        sigmas(shape, seed + 1, dtype),
        random(shape.clone(), 1.0, seed + 2, dtype),
        sigmas(shape, seed + 3, dtype),
    ]
}

fn uploads<const N: usize>(dev: &dyn KernelBackend, ts: &[Tensor; N]) -> [DeviceTensor; N] {
    std::array::from_fn(|i| upload(dev, &ts[i]))
}

/// `noise(σ = 1)` equals `philox::normal` element by element, at stream offsets that start and
/// end inside a Philox block. The transform is f32 on both sides, so any difference is the
/// libm-vs-libdevice ulps of log/sqrt/sin/cos (none on Emu); bf16 is the exact rounding of it.
fn check_noise_stream(dev: &dyn KernelBackend) {
    let mut worst = 0f64;
    for stream in STREAMS {
        for (offset, n) in [
            (0u64, 1usize),
            (0, 4133),
            (1, 6),
            (3, 97),
            (5, 2),
            (1 << 33, 37),
        ] {
            for &dtype in &DTYPES {
                let mut out = poisoned(dev, [n], dtype);
                k::gaussian_noise_into(dev, 1.0, stream, offset, &mut out).unwrap();
                let got = out.download(dev).unwrap().to_vec_f64().unwrap();
                for (j, &g) in got.iter().enumerate() {
                    let want = philox::normal(stream.seed, stream.step, offset + j as u64);
                    let want = match dtype {
                        DType::BF16 => half::bf16::from_f32(want).to_f64(),
                        _ => want as f64,
                    };
                    // One bf16 ulp where a last-bit difference in ξ flips the rounding.
                    let tol = match dtype {
                        DType::BF16 => want.abs() / 128.0,
                        _ => 1e-5 * want.abs().max(1.0),
                    };
                    let diff = (g - want).abs();
                    assert!(
                        diff <= tol,
                        "{dtype} {stream:?} offset {offset}: element {j} = {g}, philox {want}"
                    );
                    if dtype == DType::F32 {
                        worst = worst.max(diff);
                    }
                }
            }
        }
    }
    println!("noise stream: max |Δ| vs philox::normal (f32): {worst:.2e}");
}
recur::kernel_test!(noise_stream, super::check_noise_stream);

fn check_gaussian_noise(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (s, shape) in shapes().into_iter().enumerate() {
        for &dtype in &DTYPES {
            let stream = STREAMS[s % STREAMS.len()];
            let sigma = 0.37 + s as f64;
            let want =
                noise::gaussian_noise(shape.clone(), sigma, stream.seed, stream.step, DType::F64)
                    .unwrap();
            let got = k::gaussian_noise(dev, shape.clone(), sigma, stream, dtype).unwrap();
            errors.check("gaussian_noise", dev, &got, &want);
        }
    }
    errors.report("gaussian_noise");
}
recur::kernel_test!(gaussian_noise, super::check_gaussian_noise);

fn check_add_noise(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (s, shape) in shapes().into_iter().enumerate() {
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let stream = STREAMS[(s + d) % STREAMS.len()];
            let sigma = 0.25 * (s + 1) as f64;
            let z = random(shape.clone(), 1.0, (10 * s + d) as u64, dtype);
            let want = noise::add_noise_fwd(&f64_of(&z), sigma, stream.seed, stream.step).unwrap();
            let z_dev = upload(dev, &z);

            let mut y = poisoned(dev, shape.clone(), dtype);
            k::add_noise_fwd_into(dev, &z_dev, sigma, stream, &mut y).unwrap();
            errors.check("add_noise", dev, &y, &want);
            let y = k::add_noise_fwd(dev, &z_dev, sigma, stream).unwrap();
            errors.check("add_noise (allocating)", dev, &y, &want);
            let mut in_place = upload(dev, &z);
            k::add_noise_fwd_in_place(dev, &mut in_place, sigma, stream).unwrap();
            errors.check("add_noise (in place)", dev, &in_place, &want);
        }
    }
    // σ = 0 adds nothing.
    let z = random([33], 1.0, 5, DType::F32);
    let y = k::add_noise_fwd(dev, &upload(dev, &z), 0.0, STREAMS[1]).unwrap();
    assert_eq!(
        y.download(dev).unwrap().to_vec_f64().unwrap(),
        z.to_vec_f64().unwrap()
    );
    errors.report("add_noise");
}
recur::kernel_test!(add_noise, super::check_add_noise);

fn check_reparam_sample(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (s, shape) in shapes().into_iter().enumerate() {
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let stream = STREAMS[(s + d) % STREAMS.len()];
            let seed = (100 + 10 * s + d) as u64;
            let mu = random(shape.clone(), 1.0, seed, dtype);
            let sigma = sigmas(&shape, seed + 1, dtype);
            let dy = random(shape.clone(), 1.0, seed + 2, dtype);
            let (mu64, sigma64, dy64) = (f64_of(&mu), f64_of(&sigma), f64_of(&dy));
            let want_y =
                noise::reparam_sample_fwd(&mu64, &sigma64, stream.seed, stream.step).unwrap();
            let want_ds = noise::reparam_sample_sigma_bwd(&dy64, stream.seed, stream.step).unwrap();
            let [mu_dev, sigma_dev, dy_dev] = uploads(dev, &[mu, sigma, dy]);

            let mut y = poisoned(dev, shape.clone(), dtype);
            k::reparam_sample_fwd_into(dev, &mu_dev, &sigma_dev, stream, &mut y).unwrap();
            errors.check("reparam_sample forward", dev, &y, &want_y);
            let y = k::reparam_sample_fwd(dev, &mu_dev, &sigma_dev, stream).unwrap();
            errors.check("reparam_sample forward (allocating)", dev, &y, &want_y);

            let mut ds = poisoned(dev, shape.clone(), dtype);
            k::reparam_sample_sigma_bwd_into(dev, &dy_dev, stream, &mut ds).unwrap();
            errors.check("reparam_sample sigma backward", dev, &ds, &want_ds);
            let ds = k::reparam_sample_sigma_bwd(dev, &dy_dev, stream).unwrap();
            errors.check(
                "reparam_sample sigma backward (allocating)",
                dev,
                &ds,
                &want_ds,
            );
        }
    }
    errors.report("reparam_sample");
}
recur::kernel_test!(reparam_sample, super::check_reparam_sample);

/// The KL scales: plain, GRAM's balancing (α = 0.8), and a stop-gradient side.
fn scales() -> [KlGradScale; 3] {
    [
        KlGradScale::PLAIN,
        KlGradScale::balanced(0.8).unwrap(),
        KlGradScale::balanced(1.0).unwrap(),
    ]
}

fn check_gaussian_kl(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (s, shape) in shapes().into_iter().enumerate() {
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let seed = (300 + 10 * s + d) as u64;
            let xs = kl_operands(&shape, seed, dtype);
            let dkl = random(shape.clone(), 1.0, seed + 7, dtype);
            let xs64 = xs.each_ref().map(f64_of);
            let dkl64 = f64_of(&dkl);
            let xs_dev = uploads(dev, &xs);
            let xs_ref = xs_dev.each_ref();
            let dkl_dev = upload(dev, &dkl);

            let want = kl::gaussian_kl_fwd(xs64.each_ref()).unwrap();
            let mut out = poisoned(dev, shape.clone(), dtype);
            k::gaussian_kl_fwd_into(dev, xs_ref, &mut out).unwrap();
            errors.check("gaussian_kl forward", dev, &out, &want);
            let out = k::gaussian_kl_fwd(dev, xs_ref).unwrap();
            errors.check("gaussian_kl forward (allocating)", dev, &out, &want);

            let scale = scales()[(s + d) % 3];
            let want = kl::gaussian_kl_bwd(&dkl64, xs64.each_ref(), scale).unwrap();
            let mut grads: [DeviceTensor; 4] =
                std::array::from_fn(|_| poisoned(dev, shape.clone(), dtype));
            k::gaussian_kl_bwd_into(dev, &dkl_dev, xs_ref, scale, grads.each_mut()).unwrap();
            let allocated = k::gaussian_kl_bwd(dev, &dkl_dev, xs_ref, scale).unwrap();
            for (i, name) in ["dμq", "dσq", "dμp", "dσp"].iter().enumerate() {
                let what = format!("gaussian_kl backward {name} ({scale:?})");
                if want[i].to_vec_f64().unwrap().iter().all(|&g| g == 0.0) {
                    // A zero scale: the kernel must write exact zeros.
                    basic_kernels::check_exact(
                        &what,
                        dev,
                        &grads[i],
                        &want[i].to_dtype(dtype).unwrap(),
                    );
                    continue;
                }
                errors.check(&what, dev, &grads[i], &want[i]);
                errors.check(&what, dev, &allocated[i], &want[i]);
            }
        }
    }
    errors.report("gaussian_kl");
}
recur::kernel_test!(gaussian_kl, super::check_gaussian_kl);

/// The fused GRAM kernels equal the composition of the reference ops: z from
/// `reparam_sample_fwd(μq, σq)`, KL from `gaussian_kl_fwd`, and the backward the KL gradients plus
/// the sample's (`dμq += dz`, `dσq += dz ⊙ ξ`).
fn check_reparam_kl(dev: &dyn KernelBackend) {
    let mut errors = Errors::default();
    for (s, shape) in shapes().into_iter().enumerate() {
        for (d, &dtype) in DTYPES.iter().enumerate() {
            let stream = STREAMS[(s + 2 * d) % STREAMS.len()];
            let seed = (500 + 10 * s + d) as u64;
            let xs = kl_operands(&shape, seed, dtype);
            let dz = random(shape.clone(), 1.0, seed + 8, dtype);
            let dkl = random(shape.clone(), 1.0, seed + 9, dtype);
            let xs64 = xs.each_ref().map(f64_of);
            let (dz64, dkl64) = (f64_of(&dz), f64_of(&dkl));
            let xs_dev = uploads(dev, &xs);
            let xs_ref = xs_dev.each_ref();
            let [dz_dev, dkl_dev] = uploads(dev, &[dz, dkl]);

            let want_z =
                noise::reparam_sample_fwd(&xs64[0], &xs64[1], stream.seed, stream.step).unwrap();
            let want_kl = kl::gaussian_kl_fwd(xs64.each_ref()).unwrap();
            let (mut z, mut kl_out) = (
                poisoned(dev, shape.clone(), dtype),
                poisoned(dev, shape.clone(), dtype),
            );
            k::reparam_kl_fwd_into(dev, xs_ref, stream, &mut z, &mut kl_out).unwrap();
            errors.check("reparam_kl forward z", dev, &z, &want_z);
            errors.check("reparam_kl forward kl", dev, &kl_out, &want_kl);
            let (z, kl_out) = k::reparam_kl_fwd(dev, xs_ref, stream).unwrap();
            errors.check("reparam_kl forward z (allocating)", dev, &z, &want_z);
            errors.check("reparam_kl forward kl (allocating)", dev, &kl_out, &want_kl);

            let scale = scales()[(s + d) % 2];
            let [dmq, dsq, dmp, dsp] = kl::gaussian_kl_bwd(&dkl64, xs64.each_ref(), scale).unwrap();
            let sample_dsigma =
                noise::reparam_sample_sigma_bwd(&dz64, stream.seed, stream.step).unwrap();
            let plus = |a: &Tensor, b: &Tensor| {
                let v: Vec<f64> = a
                    .to_vec_f64()
                    .unwrap()
                    .iter()
                    .zip(b.to_vec_f64().unwrap())
                    .map(|(x, y)| x + y)
                    .collect();
                Tensor::from_vec(v, shape.clone()).unwrap()
            };
            let want = [plus(&dmq, &dz64), plus(&dsq, &sample_dsigma), dmp, dsp];
            let upstream = ReparamKlGrads {
                dz: &dz_dev,
                dkl: &dkl_dev,
            };
            let mut grads: [DeviceTensor; 4] =
                std::array::from_fn(|_| poisoned(dev, shape.clone(), dtype));
            k::reparam_kl_bwd_into(dev, upstream, xs_ref, stream, scale, grads.each_mut()).unwrap();
            let allocated = k::reparam_kl_bwd(dev, upstream, xs_ref, stream, scale).unwrap();
            for (i, name) in ["dμq", "dσq", "dμp", "dσp"].iter().enumerate() {
                let what = format!("reparam_kl backward {name} ({scale:?})");
                errors.check(&what, dev, &grads[i], &want[i]);
                errors.check(&what, dev, &allocated[i], &want[i]);
            }
        }
    }
    errors.report("reparam_kl");
}
recur::kernel_test!(reparam_kl, super::check_reparam_kl);

/// Where the reference errors (σq or σp not positive, or NaN), the kernels write NaN for that
/// element's KL value and all four gradients, and the right values everywhere else.
fn check_kl_nonpositive_sigma(dev: &dyn KernelBackend) {
    let shape = Shape::from([37]);
    let bad = [(3usize, 0.0), (10, -1.5), (20, f64::NAN)];
    for &dtype in &DTYPES {
        for side in [1usize, 3] {
            let mut xs = kl_operands(&shape, 77, dtype);
            let good = xs.each_ref().map(f64_of);
            let mut sigma = xs[side].to_vec_f64().unwrap();
            for &(i, v) in &bad {
                sigma[i] = v;
            }
            xs[side] = Tensor::from_vec(sigma, shape.clone())
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            assert!(
                kl::gaussian_kl_fwd(xs.each_ref().map(f64_of).each_ref()).is_err(),
                "the reference errors"
            );
            let xs_dev = uploads(dev, &xs);
            let ones = upload(dev, &Tensor::full(shape.clone(), 1.0, dtype));
            let want_kl = kl::gaussian_kl_fwd(good.each_ref())
                .unwrap()
                .to_vec_f64()
                .unwrap();
            let kl_out = k::gaussian_kl_fwd(dev, xs_dev.each_ref()).unwrap();
            let upstream = ReparamKlGrads {
                dz: &ones,
                dkl: &ones,
            };
            let (_, fused_kl) = k::reparam_kl_fwd(dev, xs_dev.each_ref(), STREAMS[0]).unwrap();
            let mut outputs = vec![kl_out, fused_kl];
            outputs.extend(
                k::gaussian_kl_bwd(dev, &ones, xs_dev.each_ref(), KlGradScale::PLAIN).unwrap(),
            );
            outputs.extend(
                k::reparam_kl_bwd(
                    dev,
                    upstream,
                    xs_dev.each_ref(),
                    STREAMS[0],
                    KlGradScale::PLAIN,
                )
                .unwrap(),
            );
            for (o, out) in outputs.iter().enumerate() {
                let v = out.download(dev).unwrap().to_vec_f64().unwrap();
                for (i, x) in v.iter().enumerate() {
                    let is_bad = bad.iter().any(|&(b, _)| b == i);
                    assert_eq!(
                        x.is_nan(),
                        is_bad,
                        "{dtype} σ side {side}, output {o}, element {i}: {x}"
                    );
                }
                if o < 2 {
                    for (i, (x, w)) in v.iter().zip(&want_kl).enumerate() {
                        if !bad.iter().any(|&(b, _)| b == i) {
                            assert!(
                                (x - w).abs() <= 2e-2 * w.abs().max(1.0),
                                "{dtype} KL element {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}
recur::kernel_test!(kl_nonpositive_sigma, super::check_kl_nonpositive_sigma);

fn check_noise_errors(dev: &dyn KernelBackend) {
    let t = |dims: &[usize], dtype: DType| upload(dev, &random(dims, 1.0, 1, dtype));
    let s = STREAMS[1];
    let (a, b) = (t(&[4, 6], DType::F32), t(&[4, 6], DType::F32));
    let (c, d) = (t(&[4, 6], DType::F32), t(&[4, 6], DType::F32));
    let wrong_shape = t(&[4, 5], DType::F32);
    let wrong_dtype = t(&[4, 6], DType::BF16);
    let f64_t = t(&[4, 6], DType::F64);

    for sigma in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(
            k::gaussian_noise(dev, [3], sigma, s, DType::F32).is_err(),
            "σ {sigma}"
        );
        assert!(k::add_noise_fwd(dev, &a, sigma, s).is_err(), "σ {sigma}");
    }
    assert!(k::gaussian_noise(dev, [3], 1.0, s, DType::F64).is_err());
    assert!(k::gaussian_noise(dev, [3], 1.0, s, DType::I32).is_err());
    assert!(k::add_noise_fwd(dev, &f64_t, 1.0, s).is_err());
    let mut out = poisoned(dev, [4, 5], DType::F32);
    assert!(k::add_noise_fwd_into(dev, &a, 1.0, s, &mut out).is_err());

    assert!(k::reparam_sample_fwd(dev, &a, &wrong_shape, s).is_err());
    assert!(k::reparam_sample_fwd(dev, &a, &wrong_dtype, s).is_err());
    assert!(k::reparam_sample_sigma_bwd(dev, &f64_t, s).is_err());
    let mut out = poisoned(dev, [4, 6], DType::BF16);
    assert!(k::reparam_sample_sigma_bwd_into(dev, &a, s, &mut out).is_err());

    assert!(k::gaussian_kl_fwd(dev, [&a, &b, &c, &wrong_shape]).is_err());
    assert!(k::gaussian_kl_fwd(dev, [&a, &wrong_dtype, &c, &d]).is_err());
    let scale = KlGradScale::PLAIN;
    assert!(k::gaussian_kl_bwd(dev, &wrong_shape, [&a, &b, &c, &d], scale).is_err());
    assert!(k::gaussian_kl_bwd(dev, &wrong_dtype, [&a, &b, &c, &d], scale).is_err());
    assert!(k::reparam_kl_fwd(dev, [&f64_t, &b, &c, &d], s).is_err());
    let upstream = ReparamKlGrads {
        dz: &a,
        dkl: &wrong_shape,
    };
    assert!(k::reparam_kl_bwd(dev, upstream, [&a, &b, &c, &d], s, scale).is_err());
    let (mut z, mut kl_out) = (
        poisoned(dev, [4, 6], DType::F32),
        poisoned(dev, [4, 5], DType::F32),
    );
    assert!(k::reparam_kl_fwd_into(dev, [&a, &b, &c, &d], s, &mut z, &mut kl_out).is_err());
    // Empty tensors are a no-op, not an error.
    let empty = t(&[0, 3], DType::F32);
    assert!(k::reparam_kl_fwd(dev, [&empty, &empty, &empty, &empty], s).is_ok());
    assert!(k::gaussian_noise(dev, [0], 1.0, s, DType::BF16).is_ok());
}
recur::kernel_test!(noise_errors, super::check_noise_errors);

/// The bench cases (PTRM add_noise, GRAM fused and unfused) run at batch 1 on Emu.
#[test]
fn bench_cases_run_on_emu() {
    let dev = recur::device::emu::Emu::new().unwrap();
    let mut cases = recur::bench::fused::noise::cases(&dev, 1).unwrap();
    assert_eq!(cases.len(), 7);
    for case in &mut cases {
        assert!(case.flops > 0.0 && case.bytes > 0.0, "{}", case.kernel);
        (case.run)().unwrap();
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use recur::device::emu::Emu;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any seed, step, offset and length: the kernel's noise is the Philox stream.
        #[test]
        fn noise_is_the_philox_stream(
            seed in any::<u64>(),
            step in any::<u64>(),
            offset in 0u64..(1 << 40),
            n in 1usize..300,
        ) {
            let dev = Emu::new().unwrap();
            let mut out = poisoned(&dev, [n], DType::F32);
            let stream = NoiseStream { seed, step };
            k::gaussian_noise_into(&dev, 1.0, stream, offset, &mut out).unwrap();
            let got = out.download(&dev).unwrap().to_vec_f64().unwrap();
            for (j, g) in got.iter().enumerate() {
                let want = philox::normal(seed, step, offset + j as u64) as f64;
                prop_assert!((g - want).abs() <= 1e-5 * want.abs().max(1.0), "element {}", j);
            }
        }

        /// The fused GRAM forward on ragged shapes: z and KL match the reference ops.
        #[test]
        fn reparam_kl_forward_matches_the_reference(
            dims in prop::collection::vec(1usize..20, 1..4),
            seed in any::<u64>(),
            bf16 in any::<bool>(),
        ) {
            let dev = Emu::new().unwrap();
            let dtype = if bf16 { DType::BF16 } else { DType::F32 };
            let shape = Shape::from(dims);
            let xs = kl_operands(&shape, seed % 1000, dtype);
            let xs64 = xs.each_ref().map(f64_of);
            let stream = NoiseStream { seed, step: seed.rotate_left(17) };
            let xs_dev = uploads(&dev, &xs);
            let (z, kl_out) = k::reparam_kl_fwd(&dev, xs_dev.each_ref(), stream).unwrap();
            let want_z =
                noise::reparam_sample_fwd(&xs64[0], &xs64[1], stream.seed, stream.step).unwrap();
            let want_kl = kl::gaussian_kl_fwd(xs64.each_ref()).unwrap();
            let tol = basic_kernels::tolerance(dtype);
            for (got, want) in [(z, want_z), (kl_out, want_kl)] {
                let got = got.download(&dev).unwrap().to_vec_f64().unwrap();
                let err = recur::testing::rel_l2(&got, &want.to_vec_f64().unwrap());
                prop_assert!(err <= tol, "relative L2 error {:.3e}", err);
            }
        }
    }
}
