//! Noise ops: agreement with the Philox normal stream element by element, moments, gradient
//! checks of `add_noise` and `reparam_sample`, and error cases.

use proptest::prelude::*;
use recur::device::cpu::noise::gaussian_noise;
use recur::rng::philox;
use recur::testing::GradCheck;
use recur::{DType, Tape, Tensor, Var};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, DType::F64).unwrap()
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    #[test]
    fn grad_add_noise_passes_straight_through(dims in shape(), seed in any::<u64>(), step in 0u64..100) {
        let z = randn(&dims, seed);
        GradCheck::new().run(&[z], |t, v| {
            let y = t.add_noise(&v[0], 0.3, seed, step)?;
            t.mul(&y, &y)
        }).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn grad_reparam_sample(dims in shape(), seed in any::<u64>(), step in 0u64..100) {
        let mu = randn(&dims, seed);
        let sigma = Tensor::randn(dims.clone(), 0.5, seed ^ 9, DType::F64).unwrap();
        GradCheck::new().run(&[mu, sigma], |t, v| {
            let y = t.reparam_sample(&v[0], &v[1], seed, step)?;
            t.mul(&y, &v[1])
        }).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn noise_equals_the_philox_normal_stream_element_by_element() {
    let (seed, step, sigma) = (1234u64, 17u64, 0.3);
    let n = gaussian_noise([3, 5, 7], sigma, seed, step, DType::F32).unwrap();
    assert_eq!(n.dims(), [3, 5, 7]);
    let got = n.to_vec_f32().unwrap();
    for (i, v) in got.iter().enumerate() {
        let expect = sigma as f32 * philox::normal(seed, step, i as u64);
        assert_eq!(v.to_bits(), expect.to_bits(), "element {i}");
    }
    let n64 = gaussian_noise([10], 2.0, seed, step, DType::F64)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (i, v) in n64.iter().enumerate() {
        assert_eq!(*v, 2.0 * philox::normal(seed, step, i as u64) as f64);
    }
    // add_noise and reparam_sample use the same draws.
    let z = Tensor::from_vec(vec![1.0f64; 10], [10]).unwrap();
    let t = Tape::new();
    let added = t
        .add_noise(&Var::constant(z.clone()), 2.0, seed, step)
        .unwrap();
    let sampled = t
        .reparam_sample(
            &Var::constant(z),
            &Var::constant(Tensor::full([10], 2.0, DType::F64)),
            seed,
            step,
        )
        .unwrap();
    let expect: Vec<f64> = n64.iter().map(|v| 1.0 + v).collect();
    assert_eq!(added.value().to_vec_f64().unwrap(), expect);
    assert_eq!(sampled.value().to_vec_f64().unwrap(), expect);
}

#[test]
fn noise_has_the_requested_mean_and_std_and_streams_are_keyed() {
    let sigma = 0.7;
    let v = gaussian_noise([200_000], sigma, 5, 0, DType::F64)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.01 * sigma * 1.5, "mean {mean}");
    assert!((std - sigma).abs() < 0.01 * sigma, "std {std}");
    let a = gaussian_noise([8], 1.0, 5, 0, DType::F32)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let same = gaussian_noise([8], 1.0, 5, 0, DType::F32)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let next_step = gaussian_noise([8], 1.0, 5, 1, DType::F32)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let other_seed = gaussian_noise([8], 1.0, 6, 0, DType::F32)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(a, same);
    assert_ne!(a, next_step);
    assert_ne!(a, other_seed);
}

#[test]
fn zero_sigma_returns_the_input_exactly() {
    let mu = Tensor::randn([4, 6], 1.0, 3, DType::F32).unwrap();
    let t = Tape::new();
    let zero = Var::constant(Tensor::zeros([4, 6], DType::F32));
    let sample = t
        .reparam_sample(&Var::constant(mu.clone()), &zero, 9, 2)
        .unwrap();
    assert_eq!(
        sample.value().to_vec_f32().unwrap(),
        mu.to_vec_f32().unwrap()
    );
    let added = t.add_noise(&Var::constant(mu.clone()), 0.0, 9, 2).unwrap();
    assert_eq!(
        added.value().to_vec_f32().unwrap(),
        mu.to_vec_f32().unwrap()
    );
}

#[test]
fn reparam_sigma_gradient_is_the_regenerated_noise() {
    let t = Tape::new();
    let mu = t.leaf(Tensor::zeros([2, 3], DType::F64));
    let sigma = t.leaf(Tensor::ones([2, 3], DType::F64));
    let y = t.reparam_sample(&mu, &sigma, 77, 4).unwrap();
    let loss = t.sum_all(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    assert_eq!(g.get(&mu).unwrap().to_vec_f64().unwrap(), vec![1.0; 6]);
    let xi: Vec<f64> = (0..6).map(|i| philox::normal(77, 4, i) as f64).collect();
    assert_eq!(g.get(&sigma).unwrap().to_vec_f64().unwrap(), xi);
}

#[test]
fn bf16_noise_is_computed_in_f32_and_rounded() {
    let z = Tensor::zeros([16], DType::BF16);
    let t = Tape::new();
    let y = t.add_noise(&Var::constant(z), 1.0, 1, 1).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let got = y.value().to_vec_f32().unwrap();
    for (i, v) in got.iter().enumerate() {
        let expect = half::bf16::from_f32(philox::normal(1, 1, i as u64)).to_f32();
        assert_eq!(*v, expect);
    }
}

#[test]
fn bad_sigmas_dtypes_and_shapes_are_errors() {
    let t = Tape::new();
    let z = Var::constant(Tensor::zeros([3], DType::F32));
    for sigma in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            t.add_noise(&z, sigma, 0, 0),
            Err(recur::Error::Arg { .. })
        ));
        assert!(gaussian_noise([3], sigma, 0, 0, DType::F32).is_err());
    }
    assert!(matches!(
        gaussian_noise([3], 1.0, 0, 0, DType::I32),
        Err(recur::Error::DType { .. })
    ));
    let ids = Var::constant(Tensor::from_vec(vec![1i32, 2, 3], [3]).unwrap());
    assert!(matches!(
        t.add_noise(&ids, 1.0, 0, 0),
        Err(recur::Error::DType { .. })
    ));
    let wrong_shape = Var::constant(Tensor::ones([4], DType::F32));
    assert!(matches!(
        t.reparam_sample(&z, &wrong_shape, 0, 0),
        Err(recur::Error::Shape { .. })
    ));
    let wrong_dtype = Var::constant(Tensor::ones([3], DType::F64));
    assert!(matches!(
        t.reparam_sample(&z, &wrong_dtype, 0, 0),
        Err(recur::Error::DType { .. })
    ));
}
