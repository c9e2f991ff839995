//! The kernels `recur bench` times, at TRM Sudoku's shapes (97 positions = 81 cells + the 16-slot
//! puzzle prefix, hidden 512, SwiGLU inter 1536, vocab 11, 6.8M parameters), on the CUDA kernels
//! (Cuda or Emu) or on the CPU reference. Each case carries its FLOP and minimum-byte formulas;
//! `docs/kernels.md` states the same formulas.

use crate::bench::{measure, Clock, DeviceClock, RooflineRow, WallClock};
use crate::device::cpu;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::optim::AdamAtan2Config;

use crate::tensor::Tensor;

const SEQ: usize = 97;
const CELLS: usize = 81;
const HIDDEN: usize = 512;
const INTER: usize = 1536;
const VOCAB: usize = 11;
const TRM_ATT_PARAMS: usize = 6_828_034;

/// Which batch size and how many timed runs.
#[derive(Clone, Copy, Debug)]
pub struct SuiteOptions {
    pub batch: usize,
    pub warmup: usize,
    pub runs: usize,
}

/// One benchmark: what it is, its cost model, and the call to time.
struct Case<'a> {
    kernel: &'static str,
    shape: String,
    flops: f64,
    bytes: f64,
    run: Box<dyn FnMut() -> Result<()> + 'a>,
}

fn rows(opts: SuiteOptions, clock: &dyn Clock, cases: Vec<Case<'_>>) -> Result<Vec<RooflineRow>> {
    cases
        .into_iter()
        .map(|mut c| {
            let time = measure(clock, opts.warmup, opts.runs, &mut *c.run)?;
            Ok(RooflineRow {
                kernel: c.kernel.to_string(),
                shape: c.shape,
                flops: c.flops,
                bytes: c.bytes,
                time,
            })
        })
        .collect()
}

fn randn(dims: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    Tensor::randn(dims.to_vec(), 1.0, seed, dtype)
}

fn ids(n: &[usize], vocab: usize, seed: u64) -> Result<Tensor> {
    let count: usize = n.iter().product();
    let v = (0..count as u64)
        .map(|i| (crate::rng::philox::block(seed, 0, i)[0] % vocab as u32) as i32)
        .collect();
    Tensor::from_vec(v, n.to_vec())
}

/// The CUDA kernels on `dev` (Cuda or Emu), bf16 activations with f32 math as in training.
pub fn kernel_suite(dev: &dyn KernelBackend, opts: SuiteOptions) -> Result<Vec<RooflineRow>> {
    let b = opts.batch;
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    let up = |t: &Tensor| DeviceTensor::upload(dev, t);
    let bf = DType::BF16;
    let mut cases = Vec::new();

    let (z, y, x) = (up(&randn(&act, 1, bf)?)?, up(&randn(&act, 2, bf)?)?, up(&randn(&act, 3, bf)?)?);
    let mut out = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "inject_add_fwd_bf16 (3 terms)",
        shape: format!("{act:?}"),
        flops: 2.0 * n,
        bytes: 4.0 * n * 2.0,
        run: Box::new(move || kernels::elementwise::inject_add_fwd_into(dev, &[&z, &y, &x], &mut out)),
    });

    let gate_up = up(&randn(&[b, SEQ, 2 * INTER], 4, bf)?)?;
    let mut hidden = DeviceTensor::uninit(dev, [b, SEQ, INTER], bf)?;
    let m = (b * SEQ * INTER) as f64;
    cases.push(Case {
        kernel: "swiglu_fwd_bf16",
        shape: format!("[{b}, {SEQ}, {}]", 2 * INTER),
        flops: 6.0 * m,
        bytes: 3.0 * m * 2.0,
        run: Box::new(move || kernels::activation::swiglu_fwd_into(dev, &gate_up, &mut hidden)),
    });

    let h = up(&randn(&act, 5, bf)?)?;
    let mut ht = DeviceTensor::uninit(dev, [b, HIDDEN, SEQ], bf)?;
    cases.push(Case {
        kernel: "transpose_last2_fwd_bf16",
        shape: format!("{act:?}"),
        flops: 0.0,
        bytes: 2.0 * n * 2.0,
        run: Box::new(move || kernels::layout::transpose_last2_fwd_into(dev, &h, &mut ht)),
    });

    let tokens = up(&ids(&[b, SEQ], VOCAB, 6)?)?;
    let table = up(&randn(&[VOCAB, HIDDEN], 7, bf)?)?;
    let mut emb = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "embedding_fwd_bf16",
        shape: format!("ids [{b}, {SEQ}], table [{VOCAB}, {HIDDEN}]"),
        flops: 0.0,
        bytes: n * 2.0 + (b * SEQ * 4) as f64,
        run: Box::new(move || kernels::embedding::embedding_fwd_into(dev, &tokens, &table, &mut emb)),
    });

    let logits = up(&randn(&[b, CELLS, VOCAB], 8, bf)?)?;
    let labels = up(&ids(&[b, CELLS], VOCAB, 9)?)?;
    let mut loss = DeviceTensor::uninit(dev, [b], DType::F32)?;
    let l = (b * CELLS * VOCAB) as f64;
    cases.push(Case {
        kernel: "stablemax_ce_fwd_bf16",
        shape: format!("[{b}, {CELLS}, {VOCAB}]"),
        flops: 5.0 * l,
        bytes: l * 2.0 + (b * CELLS * 4 + b * 4) as f64,
        run: Box::new(move || {
            kernels::loss::sequence_ce_fwd_into(dev, &logits, &labels, cpu::loss::Normalizer::Stablemax, &mut loss)
        }),
    });

    let x2 = up(&randn(&[b * SEQ, HIDDEN], 10, bf)?)?;
    let w = up(&randn(&[3 * HIDDEN, HIDDEN], 11, bf)?)?;
    let mut qkv = DeviceTensor::uninit(dev, [b * SEQ, 3 * HIDDEN], bf)?;
    let (mm, nn, kk) = ((b * SEQ) as f64, (3 * HIDDEN) as f64, HIDDEN as f64);
    cases.push(Case {
        kernel: "linear_fwd_bf16 (qkv_proj, tiled)",
        shape: format!("[{}, {HIDDEN}] x [{}, {HIDDEN}]ᵀ", b * SEQ, 3 * HIDDEN),
        flops: 2.0 * mm * nn * kk,
        bytes: (mm * kk + nn * kk + mm * nn) * 2.0,
        run: Box::new(move || kernels::matmul::linear_fwd_into(dev, &x2, &w, None, &mut qkv)),
    });

    let p = TRM_ATT_PARAMS;
    let mut param = up(&randn(&[p], 12, DType::F32)?)?;
    let grad = up(&randn(&[p], 13, DType::F32)?)?;
    let mut m1 = up(&Tensor::zeros([p], DType::F32))?;
    let mut m2 = up(&Tensor::zeros([p], DType::F32))?;
    let cfg = AdamAtan2Config::default();
    let mut step = 0u64;
    cases.push(Case {
        kernel: "adam_atan2_step_f32",
        shape: format!("{p} params (TRM-Att)"),
        flops: 20.0 * p as f64,
        bytes: 7.0 * 4.0 * p as f64,
        run: Box::new(move || {
            step += 1;
            kernels::optim::adam_atan2_step(
                dev,
                &cfg,
                step,
                kernels::optim::AdamTensors {
                    param: &mut param,
                    grad: &grad,
                    exp_avg: &mut m1,
                    exp_avg_sq: &mut m2,
                },
            )
        }),
    });

    rows(opts, &DeviceClock(dev), cases)
}

/// The same operations on the CPU reference (f32), for the baseline row of each kernel.
pub fn cpu_suite(opts: SuiteOptions) -> Result<Vec<RooflineRow>> {
    let b = opts.batch;
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    let f = DType::F32;
    let mut cases = Vec::new();

    let (z, y, x) = (randn(&act, 1, f)?, randn(&act, 2, f)?, randn(&act, 3, f)?);
    cases.push(Case {
        kernel: "inject_add (3 terms)",
        shape: format!("{act:?}"),
        flops: 2.0 * n,
        bytes: 4.0 * n * 4.0,
        run: Box::new(move || cpu::elementwise::inject_add_fwd(&[&z, &y, &x]).map(drop)),
    });
    let gate_up = randn(&[b, SEQ, 2 * INTER], 4, f)?;
    let m = (b * SEQ * INTER) as f64;
    cases.push(Case {
        kernel: "swiglu",
        shape: format!("[{b}, {SEQ}, {}]", 2 * INTER),
        flops: 6.0 * m,
        bytes: 3.0 * m * 4.0,
        run: Box::new(move || cpu::swiglu::swiglu_fwd(&gate_up).map(drop)),
    });
    let h = randn(&act, 5, f)?;
    cases.push(Case {
        kernel: "transpose_last2",
        shape: format!("{act:?}"),
        flops: 0.0,
        bytes: 2.0 * n * 4.0,
        run: Box::new(move || cpu::layout::transpose_last2_fwd(&h).map(drop)),
    });
    let logits = randn(&[b, CELLS, VOCAB], 8, f)?;
    let labels = ids(&[b, CELLS], VOCAB, 9)?;
    let l = (b * CELLS * VOCAB) as f64;
    cases.push(Case {
        kernel: "stablemax_cross_entropy",
        shape: format!("[{b}, {CELLS}, {VOCAB}]"),
        flops: 5.0 * l,
        bytes: l * 4.0 + (b * CELLS * 4 + b * 4) as f64,
        run: Box::new(move || {
            cpu::loss::sequence_mean_ce_fwd(&logits, &labels, cpu::loss::Normalizer::Stablemax).map(drop)
        }),
    });
    let x2 = randn(&[b * SEQ, HIDDEN], 10, f)?;
    let w = randn(&[3 * HIDDEN, HIDDEN], 11, f)?;
    let (mm, nn, kk) = ((b * SEQ) as f64, (3 * HIDDEN) as f64, HIDDEN as f64);
    cases.push(Case {
        kernel: "linear (qkv_proj)",
        shape: format!("[{}, {HIDDEN}] x [{}, {HIDDEN}]ᵀ", b * SEQ, 3 * HIDDEN),
        flops: 2.0 * mm * nn * kk,
        bytes: (mm * kk + nn * kk + mm * nn) * 4.0,
        run: Box::new(move || cpu::linear::linear_fwd(&x2, &w, None).map(drop)),
    });
    rows(opts, &WallClock, cases)
}

/// Host memory copy bandwidth (read + write), the CPU rows' ceiling.
pub fn host_copy_bandwidth_gbs(bytes: usize, runs: usize) -> Result<f64> {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let t = measure(&WallClock, 1, runs, &mut || {
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
        Ok(())
    })?;
    Ok(2.0 * bytes as f64 / (t.median_ms * 1e-3) / 1e9)
}

