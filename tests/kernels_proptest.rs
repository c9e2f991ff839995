//! Property tests of the basic kernels on Emu: proptest draws ragged shapes (and axes, activation
//! kinds, label patterns), fresh random inputs fill them, outputs start as NaN, and every result is
//! compared with the CPU reference computed in f64 on the same (storage-rounded) inputs. The
//! fixed-size tests in `kernels_*.rs` run the same kernels on CUDA too.

use proptest::prelude::*;
use recur::device::cpu;
use recur::device::cpu::activation::Activation;
use recur::device::cpu::loss::Normalizer;
use recur::device::emu::Emu;
use recur::device::DeviceTensor;
use recur::kernels;
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};

fn dtype(bf16: bool) -> DType {
    if bf16 {
        DType::BF16
    } else {
        DType::F32
    }
}

fn random(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(dims.to_vec(), 1.0, seed, dtype).unwrap()
}

fn f64_of(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).unwrap()
}

fn up(dev: &Emu, t: &Tensor) -> DeviceTensor {
    DeviceTensor::upload(dev, t).unwrap()
}

fn poisoned(dev: &Emu, shape: impl Into<Shape>, dtype: DType) -> DeviceTensor {
    DeviceTensor::poisoned(dev, shape, dtype).unwrap()
}

/// Relative L2 error within the DESIGN tolerance of the output's dtype; NaN never passes.
fn close(what: &str, dev: &Emu, got: &DeviceTensor, want: &Tensor) -> Result<(), TestCaseError> {
    let got_host = got.download(dev).unwrap();
    let tol = if got.dtype() == DType::BF16 {
        5e-3
    } else {
        1e-5
    };
    let err = rel_l2(&got_host.to_vec_f64().unwrap(), &want.to_vec_f64().unwrap());
    prop_assert!(
        err <= tol,
        "{what}: relative L2 error {err:.3e} > {tol:.0e} at shape {}",
        want.shape()
    );
    Ok(())
}

fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..24, 1..4)
}

const ACTIVATIONS: [Activation; 6] = [
    Activation::Silu,
    Activation::Relu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Exp,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn emu_inject_add_matches_reference(dims in dims(), terms in 1usize..=3, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let xs: Vec<Tensor> = (0..terms as u64).map(|i| random(&dims, seed ^ i, dtype(bf16))).collect();
        let d: Vec<DeviceTensor> = xs.iter().map(|x| up(&dev, x)).collect();
        let mut out = poisoned(&dev, dims.clone(), dtype(bf16));
        kernels::elementwise::inject_add_fwd_into(&dev, &d.iter().collect::<Vec<_>>(), &mut out).unwrap();
        // The reference in the storage dtype, not f64: for bf16, injection rounds the partial sum
        // `a + b` to storage before adding `c` (as the official bf16 code adds two tensors at a
        // time), and with cancellation against `c` that first rounding alone can exceed the bf16
        // tolerance relative to an exact f64 sum.
        let want = cpu::elementwise::inject_add_fwd(&xs.iter().collect::<Vec<_>>()).unwrap();
        close("inject_add", &dev, &out, &want)?;
    }

    #[test]
    fn emu_activations_match_reference(dims in dims(), which in 0usize..6, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let act = ACTIVATIONS[which];
        let (x, dy) = (random(&dims, seed, dtype(bf16)), random(&dims, seed ^ 1, dtype(bf16)));
        let (xd, dyd) = (up(&dev, &x), up(&dev, &dy));
        let mut y = poisoned(&dev, dims.clone(), dtype(bf16));
        kernels::activation::activation_fwd_into(&dev, act, &xd, &mut y).unwrap();
        close(act.name(), &dev, &y, &cpu::activation::activation_fwd(act, &f64_of(&x)).unwrap())?;
        let mut dx = poisoned(&dev, dims.clone(), dtype(bf16));
        kernels::activation::activation_bwd_into(&dev, act, &xd, &dyd, &mut dx).unwrap();
        let want = cpu::activation::activation_bwd(act, &f64_of(&x), &f64_of(&dy)).unwrap();
        close(act.name(), &dev, &dx, &want)?;
    }

    #[test]
    fn emu_swiglu_matches_reference(rows in 1usize..40, inter in 1usize..70, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let gu = random(&[rows, 2 * inter], seed, dtype(bf16));
        let dy = random(&[rows, inter], seed ^ 1, dtype(bf16));
        let (gud, dyd) = (up(&dev, &gu), up(&dev, &dy));
        let mut y = poisoned(&dev, [rows, inter], dtype(bf16));
        kernels::activation::swiglu_fwd_into(&dev, &gud, &mut y).unwrap();
        close("swiglu", &dev, &y, &cpu::swiglu::swiglu_fwd(&f64_of(&gu)).unwrap())?;
        let mut dgu = poisoned(&dev, [rows, 2 * inter], dtype(bf16));
        kernels::activation::swiglu_bwd_into(&dev, &gud, &dyd, &mut dgu).unwrap();
        close("swiglu_bwd", &dev, &dgu, &cpu::swiglu::swiglu_bwd(&f64_of(&gu), &f64_of(&dy)).unwrap())?;
    }

    #[test]
    fn emu_sum_and_mean_match_reference(dims in dims(), axis in 0usize..3, mean: bool, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let axis = (axis % dims.len()) as isize;
        let x = random(&dims, seed, dtype(bf16));
        let want = cpu::reduce::sum_axis_fwd(&f64_of(&x), axis, mean).unwrap();
        let mut out = poisoned(&dev, want.shape().clone(), dtype(bf16));
        kernels::reduce::sum_axis_fwd_into(&dev, &up(&dev, &x), axis, mean, &mut out).unwrap();
        close("sum", &dev, &out, &want)?;
        let dy = random(want.dims(), seed ^ 1, dtype(bf16));
        let shape = Shape::new(dims.clone());
        let mut dx = poisoned(&dev, dims.clone(), dtype(bf16));
        kernels::reduce::sum_axis_bwd_into(&dev, &up(&dev, &dy), &shape, axis, mean, &mut dx).unwrap();
        close("sum_bwd", &dev, &dx, &cpu::reduce::sum_axis_bwd(&f64_of(&dy), &shape, axis, mean).unwrap())?;
    }

    #[test]
    fn emu_layout_ops_are_exact(dims in prop::collection::vec(1usize..20, 2..4), start in 0usize..20, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let x = random(&dims, seed, dtype(bf16));
        let xd = up(&dev, &x);
        let t = cpu::layout::transpose_last2_fwd(&x).unwrap();
        let mut td = poisoned(&dev, t.shape().clone(), dtype(bf16));
        kernels::layout::transpose_last2_fwd_into(&dev, &xd, &mut td).unwrap();
        prop_assert_eq!(td.download(&dev).unwrap().to_bytes().unwrap(), t.to_bytes().unwrap());
        let n = dims[1];
        let start = start % n;
        let len = n - start;
        let s = cpu::layout::narrow_fwd(&x, 1, start, len).unwrap();
        let mut sd = poisoned(&dev, s.shape().clone(), dtype(bf16));
        kernels::layout::narrow_fwd_into(&dev, &xd, 1, start, len, &mut sd).unwrap();
        prop_assert_eq!(sd.download(&dev).unwrap().to_bytes().unwrap(), s.to_bytes().unwrap());
        let c = cpu::layout::concat_fwd(&[&s, &x], 1).unwrap();
        let mut cd = poisoned(&dev, c.shape().clone(), dtype(bf16));
        kernels::layout::concat_fwd_into(&dev, &[&sd, &xd], 1, &mut cd).unwrap();
        prop_assert_eq!(cd.download(&dev).unwrap().to_bytes().unwrap(), c.to_bytes().unwrap());
    }

    #[test]
    fn emu_linear_matches_reference(m in 1usize..70, k in 1usize..70, n in 1usize..70, bias: bool, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let dt = dtype(bf16);
        let (x, w, b, dy) = (random(&[m, k], seed, dt), random(&[n, k], seed ^ 1, dt), random(&[n], seed ^ 2, dt), random(&[m, n], seed ^ 3, dt));
        let (xd, wd, bd, dyd) = (up(&dev, &x), up(&dev, &w), up(&dev, &b), up(&dev, &dy));
        let mut y = poisoned(&dev, [m, n], dt);
        kernels::matmul::linear_fwd_into(&dev, &xd, &wd, bias.then_some(&bd), &mut y).unwrap();
        let bw = f64_of(&b);
        close("linear", &dev, &y, &cpu::linear::linear_fwd(&f64_of(&x), &f64_of(&w), bias.then_some(&bw)).unwrap())?;
        let mut dx = poisoned(&dev, [m, k], dt);
        kernels::matmul::linear_bwd_input_into(&dev, &dyd, &wd, &mut dx).unwrap();
        close("linear dx", &dev, &dx, &cpu::linear::linear_bwd_input(&f64_of(&dy), &f64_of(&w), x.shape()).unwrap())?;
        let mut dw = poisoned(&dev, [n, k], dt);
        kernels::matmul::linear_bwd_weight_into(&dev, &dyd, &xd, &mut dw).unwrap();
        close("linear dw", &dev, &dw, &cpu::linear::linear_bwd_weight(&f64_of(&dy), &f64_of(&x)).unwrap())?;
        let mut db = poisoned(&dev, [n], dt);
        kernels::matmul::linear_bwd_bias_into(&dev, &dyd, &mut db).unwrap();
        close("linear db", &dev, &db, &cpu::linear::linear_bwd_bias(&f64_of(&dy)).unwrap())?;
    }

    #[test]
    fn emu_cross_entropy_matches_reference(b in 1usize..5, s in 1usize..20, v in 2usize..15, stablemax: bool, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let norm = if stablemax { Normalizer::Stablemax } else { Normalizer::Softmax };
        let logits = random(&[b, s, v], seed, dtype(bf16));
        // Labels in range, with about one in five ignored (−100).
        let labels: Vec<i32> = (0..(b * s) as u64)
            .map(|i| {
                let r = recur::rng::philox::block(seed, 7, i)[0];
                if r % 5 == 0 { -100 } else { (r % v as u32) as i32 }
            })
            .collect();
        let labels = Tensor::from_vec(labels, [b, s]).unwrap();
        let (ld, lab) = (up(&dev, &logits), up(&dev, &labels));
        let want = cpu::loss::sequence_mean_ce_fwd(&f64_of(&logits), &labels, norm).unwrap();
        let mut loss = poisoned(&dev, [b], DType::F32);
        kernels::loss::sequence_ce_fwd_into(&dev, &ld, &lab, norm, &mut loss).unwrap();
        close("ce", &dev, &loss, &want)?;
        let dy = random(&[b], seed ^ 1, DType::F32);
        let want = cpu::loss::sequence_mean_ce_bwd(&f64_of(&dy), &f64_of(&logits), &labels, norm).unwrap();
        let mut dl = poisoned(&dev, [b, s, v], dtype(bf16));
        kernels::loss::sequence_ce_bwd_into(&dev, &up(&dev, &dy), &ld, &lab, norm, &mut dl).unwrap();
        close("ce_bwd", &dev, &dl, &want)?;
    }

    #[test]
    fn emu_embedding_matches_reference(n in prop::collection::vec(1usize..12, 1..3), vocab in 1usize..20, dim in 1usize..40, bf16: bool, seed: u64) {
        let dev = Emu::new().unwrap();
        let count: usize = n.iter().product();
        let ids: Vec<i32> = (0..count as u64).map(|i| (recur::rng::philox::block(seed, 3, i)[1] % vocab as u32) as i32).collect();
        let ids = Tensor::from_vec(ids, n.clone()).unwrap();
        let table = random(&[vocab, dim], seed, dtype(bf16));
        let want = cpu::embedding::embedding_fwd(&ids, &f64_of(&table)).unwrap();
        let mut out = poisoned(&dev, want.shape().clone(), dtype(bf16));
        kernels::embedding::embedding_fwd_into(&dev, &up(&dev, &ids), &up(&dev, &table), &mut out).unwrap();
        close("embedding", &dev, &out, &want)?;
    }
}
