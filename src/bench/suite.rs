//! The kernels `recur bench` times, at TRM Sudoku's shapes (97 positions = 81 cells + the 16-slot
//! puzzle prefix, hidden 512, SwiGLU inter 1536, vocab 11, 6.8M parameters), on the CUDA kernels
//! (Cuda or Emu) or on the CPU reference. Each case carries its FLOP and minimum-byte formulas;
//! `docs/kernels.md` states the same formulas.

use crate::bench::{measure, Clock, DeviceClock, RooflineRow, WallClock};
use crate::device::cpu;
use crate::device::cpu::optim::{AdamCoefficients, AdamHyper};
use crate::device::cuda::cublaslt::CublasLt;
use crate::device::cuda::Cuda;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels;
use crate::kernels::gemm_choice::{GemmPolicy, GEMM_POLICY_VAR, OURS_MARGIN};
use crate::optim::{AdamAtan2Config, AdamConfig};

use crate::shape::Shape;
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

/// One benchmark: what it is, its cost model (FLOPs, minimum bytes moved), and the call to time.
pub struct Case<'a> {
    pub kernel: &'static str,
    pub shape: String,
    pub flops: f64,
    pub bytes: f64,
    pub run: Box<dyn FnMut() -> Result<()> + 'a>,
}

/// A case's cost model: the shape it reports, its FLOPs and the minimum bytes it moves.
struct Cost {
    shape: String,
    flops: f64,
    bytes: f64,
}

impl<'a> Case<'a> {
    fn costed(kernel: &'static str, cost: Cost, run: impl FnMut() -> Result<()> + 'a) -> Self {
        Case {
            kernel,
            shape: cost.shape,
            flops: cost.flops,
            bytes: cost.bytes,
            run: Box::new(run),
        }
    }
}

// The cost models of the cases both suites time, for elements of `eb` bytes (2 for the bf16
// kernels, 4 for the f32 CPU reference).

/// Injecting 3 terms of `[b, SEQ, HIDDEN]`: 2 adds an element, 3 reads and a write.
fn inject_add_cost(b: usize, eb: f64) -> Cost {
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    Cost {
        shape: format!("{act:?}"),
        flops: 2.0 * n,
        bytes: 4.0 * n * eb,
    }
}

/// SwiGLU of `[b, SEQ, 2·INTER]`.
fn swiglu_cost(b: usize, eb: f64) -> Cost {
    let m = (b * SEQ * INTER) as f64;
    Cost {
        shape: format!("[{b}, {SEQ}, {}]", 2 * INTER),
        flops: 6.0 * m,
        bytes: 3.0 * m * eb,
    }
}

/// Transposing `[b, SEQ, HIDDEN]`: one read and one write an element.
fn transpose_cost(b: usize, eb: f64) -> Cost {
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    Cost {
        shape: format!("{act:?}"),
        flops: 0.0,
        bytes: 2.0 * n * eb,
    }
}

/// Stablemax cross-entropy of `[b, CELLS, VOCAB]` logits against i32 labels, one f32 loss per
/// sequence.
fn stablemax_ce_cost(b: usize, eb: f64) -> Cost {
    let l = (b * CELLS * VOCAB) as f64;
    Cost {
        shape: format!("[{b}, {CELLS}, {VOCAB}]"),
        flops: 5.0 * l,
        bytes: l * eb + (b * CELLS * 4 + b * 4) as f64,
    }
}

/// The qkv projection `[b·SEQ, HIDDEN] × [3·HIDDEN, HIDDEN]ᵀ`.
fn qkv_linear_cost(b: usize, eb: f64) -> Cost {
    let (mm, nn, kk) = ((b * SEQ) as f64, (3 * HIDDEN) as f64, HIDDEN as f64);
    Cost {
        shape: format!("[{}, {HIDDEN}] x [{}, {HIDDEN}]ᵀ", b * SEQ, 3 * HIDDEN),
        flops: 2.0 * mm * nn * kk,
        bytes: (mm * kk + nn * kk + mm * nn) * eb,
    }
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

/// The CUDA kernels on `dev` (Cuda or Emu), timed: one row per case.
pub fn kernel_suite(dev: &dyn KernelBackend, opts: SuiteOptions) -> Result<Vec<RooflineRow>> {
    rows(opts, &DeviceClock(dev), kernel_cases(dev, opts.batch)?)
}

/// The CPU reference, timed: one row per case.
pub fn cpu_suite(opts: SuiteOptions) -> Result<Vec<RooflineRow>> {
    rows(opts, &WallClock, cpu_cases(opts.batch)?)
}

/// The kernel cases at batch `b`: bf16 activations with f32 math, as in training.
pub fn kernel_cases(dev: &dyn KernelBackend, b: usize) -> Result<Vec<Case<'_>>> {
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    let up = |t: &Tensor| DeviceTensor::upload(dev, t);
    let bf = DType::BF16;
    let mut cases = Vec::new();

    let (z, y, x) = (
        up(&randn(&act, 1, bf)?)?,
        up(&randn(&act, 2, bf)?)?,
        up(&randn(&act, 3, bf)?)?,
    );
    let mut out = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case::costed(
        "inject_add_fwd_bf16 (3 terms)",
        inject_add_cost(b, 2.0),
        move || kernels::elementwise::inject_add_fwd_into(dev, &[&z, &y, &x], &mut out),
    ));

    let gate_up = up(&randn(&[b, SEQ, 2 * INTER], 4, bf)?)?;
    let mut hidden = DeviceTensor::uninit(dev, [b, SEQ, INTER], bf)?;
    cases.push(Case::costed(
        "swiglu_fwd_bf16",
        swiglu_cost(b, 2.0),
        move || kernels::activation::swiglu_fwd_into(dev, &gate_up, &mut hidden),
    ));

    let h = up(&randn(&act, 5, bf)?)?;
    let mut ht = DeviceTensor::uninit(dev, [b, HIDDEN, SEQ], bf)?;
    cases.push(Case::costed(
        "transpose_last2_fwd_bf16",
        transpose_cost(b, 2.0),
        move || kernels::layout::transpose_last2_fwd_into(dev, &h, &mut ht),
    ));

    let tokens = up(&ids(&[b, SEQ], VOCAB, 6)?)?;
    let table = up(&randn(&[VOCAB, HIDDEN], 7, bf)?)?;
    let mut emb = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "embedding_fwd_bf16",
        shape: format!("ids [{b}, {SEQ}], table [{VOCAB}, {HIDDEN}]"),
        flops: 0.0,
        bytes: n * 2.0 + (b * SEQ * 4) as f64,
        run: Box::new(move || {
            kernels::embedding::embedding_fwd_into(dev, &tokens, &table, &mut emb)
        }),
    });

    let logits = up(&randn(&[b, CELLS, VOCAB], 8, bf)?)?;
    let labels = up(&ids(&[b, CELLS], VOCAB, 9)?)?;
    let mut loss = DeviceTensor::uninit(dev, [b], DType::F32)?;
    cases.push(Case::costed(
        "stablemax_ce_fwd_bf16",
        stablemax_ce_cost(b, 2.0),
        move || {
            kernels::loss::sequence_ce_fwd_into(
                dev,
                &logits,
                &labels,
                cpu::loss::Normalizer::Stablemax,
                &mut loss,
            )
        },
    ));

    let x2 = up(&randn(&[b * SEQ, HIDDEN], 10, bf)?)?;
    let w = up(&randn(&[3 * HIDDEN, HIDDEN], 11, bf)?)?;
    let mut qkv = DeviceTensor::uninit(dev, [b * SEQ, 3 * HIDDEN], bf)?;
    cases.push(Case::costed(
        "linear_fwd_bf16 (qkv_proj, tiled)",
        qkv_linear_cost(b, 2.0),
        move || kernels::matmul::linear_fwd_into(dev, &x2, &w, None, &mut qkv),
    ));

    let hyper = AdamAtan2Config::default().hyper();
    cases.push(adam_case(dev, "adam_atan2_step_f32", &hyper, 20.0, 12)?);

    more_kernel_cases(dev, b, &mut cases)?;
    for fused in [
        crate::bench::fused::fused_step::cases,
        crate::bench::fused::rope::cases,
        crate::bench::fused::attention::cases,
        crate::bench::fused::noise::cases,
        crate::bench::fused::lattice::cases,
        crate::bench::fused::gemm::cases,
    ] {
        cases.extend(fused(dev, b)?);
    }
    Ok(cases)
}

/// The rest of the basic kernels, one case each, so every kernel file has its benchmark rows.
/// An optimizer step over TRM-Att's parameters (f32, drawn with `seed`; the gradient with
/// `seed + 1`) with zeroed Adam moments: `flops_per_param` FLOPs and 7 f32 accesses a parameter.
/// `step_fn` gets the 1-based step count and the tensors.
/// One Adam step over TRM-Att's parameter count. The step's scalars sit in device memory as in
/// training; they are step 1's throughout, which changes nothing in the kernel's cost.
fn adam_case<'a>(
    dev: &'a dyn KernelBackend,
    kernel: &'static str,
    hyper: &AdamHyper,
    flops_per_param: f64,
    seed: u64,
) -> Result<Case<'a>> {
    let p = TRM_ATT_PARAMS;
    let up = |t: &Tensor| DeviceTensor::upload(dev, t);
    let mut param = up(&randn(&[p], seed, DType::F32)?)?;
    let grad = up(&randn(&[p], seed + 1, DType::F32)?)?;
    let mut m1 = up(&Tensor::zeros([p], DType::F32))?;
    let mut m2 = up(&Tensor::zeros([p], DType::F32))?;
    let values = AdamCoefficients::<f32>::new(hyper, 1).kernel_scalars();
    let scalars = up(&Tensor::from_vec(values.to_vec(), [values.len()])?)?;
    let kind = if hyper.eps.is_some() {
        kernels::optim::AdamKind::W
    } else {
        kernels::optim::AdamKind::Atan2
    };
    let cost = Cost {
        shape: format!("{p} params (TRM-Att)"),
        flops: flops_per_param * p as f64,
        bytes: 7.0 * 4.0 * p as f64,
    };
    Ok(Case::costed(kernel, cost, move || {
        kernels::optim::adam_step(
            dev,
            kind,
            &scalars,
            kernels::optim::AdamTensors {
                param: &mut param,
                grad: &grad,
                exp_avg: &mut m1,
                exp_avg_sq: &mut m2,
                mirror: None,
            },
        )
    }))
}

fn more_kernel_cases<'a>(
    dev: &'a dyn KernelBackend,
    b: usize,
    cases: &mut Vec<Case<'a>>,
) -> Result<()> {
    use crate::device::cpu::activation::Activation;
    use kernels::{
        activation as ka, elementwise as ke, embedding as kb, layout as kl, loss as ks,
        matmul as km, reduce as kr,
    };
    let up = |t: &Tensor| DeviceTensor::upload(dev, t);
    let bf = DType::BF16;
    let act = [b, SEQ, HIDDEN];
    let n = (b * SEQ * HIDDEN) as f64;
    let s = 2.0; // bytes per bf16 element

    let (a1, a2) = (up(&randn(&act, 20, bf)?)?, up(&randn(&act, 21, bf)?)?);
    let mut o = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "mul_fwd_bf16",
        shape: format!("{act:?}"),
        flops: n,
        bytes: 3.0 * s * n,
        run: Box::new(move || ke::mul_fwd_into(dev, &a1, &a2, &mut o)),
    });
    let a3 = up(&randn(&act, 22, bf)?)?;
    let mut o = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "scale_fwd_bf16",
        shape: format!("{act:?}"),
        flops: n,
        bytes: 2.0 * s * n,
        run: Box::new(move || ke::scale_fwd_into(dev, &a3, 0.5, &mut o)),
    });

    let wide = [b, SEQ, INTER];
    let m = (b * SEQ * INTER) as f64;
    let (x, dy) = (up(&randn(&wide, 23, bf)?)?, up(&randn(&wide, 24, bf)?)?);
    let mut y = DeviceTensor::uninit(dev, wide, bf)?;
    let mut dx = DeviceTensor::uninit(dev, wide, bf)?;
    let x2 = up(&randn(&wide, 25, bf)?)?;
    cases.push(Case {
        kernel: "silu_fwd_bf16 (every activation_fwd)",
        shape: format!("{wide:?}"),
        flops: 4.0 * m,
        bytes: 2.0 * s * m,
        run: Box::new(move || ka::activation_fwd_into(dev, Activation::Silu, &x2, &mut y)),
    });
    cases.push(Case {
        kernel: "silu_bwd_bf16 (every activation_bwd)",
        shape: format!("{wide:?}"),
        flops: 6.0 * m,
        bytes: 3.0 * s * m,
        run: Box::new(move || ka::activation_bwd_into(dev, Activation::Silu, &x, &dy, &mut dx)),
    });
    let gu = up(&randn(&[b, SEQ, 2 * INTER], 26, bf)?)?;
    let dh = up(&randn(&wide, 27, bf)?)?;
    let mut dgu = DeviceTensor::uninit(dev, [b, SEQ, 2 * INTER], bf)?;
    cases.push(Case {
        kernel: "swiglu_bwd_bf16",
        shape: format!("[{b}, {SEQ}, {}]", 2 * INTER),
        flops: 12.0 * m,
        bytes: 5.0 * s * m,
        run: Box::new(move || ka::swiglu_bwd_into(dev, &gu, &dh, &mut dgu)),
    });

    let h = up(&randn(&act, 28, bf)?)?;
    let mut red = DeviceTensor::uninit(dev, [b, SEQ], bf)?;
    cases.push(Case {
        kernel: "mean_fwd_bf16 (sum_fwd: same body)",
        shape: format!("{act:?}, last axis"),
        flops: n,
        bytes: s * (n + (b * SEQ) as f64),
        run: Box::new(move || kr::sum_axis_fwd_into(dev, &h, -1, true, &mut red)),
    });
    let g = up(&randn(&[b, SEQ], 29, bf)?)?;
    let mut gx = DeviceTensor::uninit(dev, act, bf)?;
    let act_shape = Shape::new(act.to_vec());
    cases.push(Case {
        kernel: "mean_bwd_bf16 (sum_bwd: same body)",
        shape: format!("{act:?}, last axis"),
        flops: n,
        bytes: s * (n + (b * SEQ) as f64),
        run: Box::new(move || kr::sum_axis_bwd_into(dev, &g, &act_shape, -1, true, &mut gx)),
    });
    let logits = up(&randn(&[b, CELLS, VOCAB], 30, bf)?)?;
    let mut am = DeviceTensor::uninit(dev, [b, CELLS], DType::I32)?;
    let l = (b * CELLS * VOCAB) as f64;
    cases.push(Case {
        kernel: "argmax_fwd_bf16",
        shape: format!("[{b}, {CELLS}, {VOCAB}], last axis"),
        flops: l,
        bytes: s * l + (4 * b * CELLS) as f64,
        run: Box::new(move || kr::argmax_fwd_into(dev, &logits, -1, &mut am)),
    });

    // The puzzle prefix: slice it off, put its gradient back, and prepend it.
    let prefix = SEQ - CELLS;
    let cells = (b * CELLS * HIDDEN) as f64;
    let full = up(&randn(&act, 31, bf)?)?;
    let mut part = DeviceTensor::uninit(dev, [b, CELLS, HIDDEN], bf)?;
    cases.push(Case {
        kernel: "narrow_fwd_bf16",
        shape: format!("{act:?} -> [{b}, {CELLS}, {HIDDEN}]"),
        flops: 0.0,
        bytes: 2.0 * s * cells,
        run: Box::new(move || kl::narrow_fwd_into(dev, &full, 1, prefix, CELLS, &mut part)),
    });
    let dpart = up(&randn(&[b, CELLS, HIDDEN], 32, bf)?)?;
    let mut dfull = DeviceTensor::uninit(dev, act, bf)?;
    let act_shape = Shape::new(act.to_vec());
    cases.push(Case {
        kernel: "narrow_bwd_bf16",
        shape: format!("[{b}, {CELLS}, {HIDDEN}] -> {act:?}"),
        flops: 0.0,
        bytes: s * (cells + n),
        run: Box::new(move || kl::narrow_bwd_into(dev, &dpart, &act_shape, 1, prefix, &mut dfull)),
    });
    let (pre, body) = (
        up(&randn(&[b, prefix, HIDDEN], 33, bf)?)?,
        up(&randn(&[b, CELLS, HIDDEN], 34, bf)?)?,
    );
    let mut cat = DeviceTensor::uninit(dev, act, bf)?;
    cases.push(Case {
        kernel: "concat_fwd_bf16",
        shape: format!("[{b}, {prefix}|{CELLS}, {HIDDEN}]"),
        flops: 0.0,
        bytes: 2.0 * s * n,
        run: Box::new(move || kl::concat_fwd_into(dev, &[&pre, &body], 1, &mut cat)),
    });

    let tokens = up(&ids(&[b, SEQ], VOCAB, 35)?)?;
    let demb = up(&randn(&act, 36, bf)?)?;
    let mut dtable = DeviceTensor::uninit(dev, [VOCAB, HIDDEN], DType::F32)?;
    cases.push(Case {
        kernel: "embedding_bwd_bf16 (+ clear)",
        shape: format!("ids [{b}, {SEQ}] -> [{VOCAB}, {HIDDEN}]"),
        flops: n,
        bytes: s * n + (4 * b * SEQ) as f64 + 8.0 * (VOCAB * HIDDEN) as f64,
        run: Box::new(move || kb::embedding_bwd_into(dev, &tokens, &demb, &mut dtable)),
    });

    let logits = up(&randn(&[b, CELLS, VOCAB], 37, bf)?)?;
    let labels = up(&ids(&[b, CELLS], VOCAB, 38)?)?;
    let dloss = up(&randn(&[b], 39, DType::F32)?)?;
    let mut dlogits = DeviceTensor::uninit(dev, [b, CELLS, VOCAB], bf)?;
    cases.push(Case {
        kernel: "stablemax_ce_bwd_bf16",
        shape: format!("[{b}, {CELLS}, {VOCAB}]"),
        flops: 8.0 * l,
        bytes: 2.0 * s * l + (4 * b * CELLS + 4 * b) as f64,
        run: Box::new(move || {
            ks::sequence_ce_bwd_into(
                dev,
                &dloss,
                &logits,
                &labels,
                cpu::loss::Normalizer::Stablemax,
                &mut dlogits,
            )
        }),
    });

    // Sotaku's loss: masked CE over the 9 digits of the 81 cells.
    let sl = (b * CELLS * 9) as f64;
    let slog = up(&randn(&[b, CELLS, 9], 40, bf)?)?;
    let stgt = up(&ids(&[b, CELLS], 9, 41)?)?;
    let smask = up(&Tensor::ones([b, CELLS], bf))?;
    let mut sl_out = DeviceTensor::uninit(dev, Shape::scalar(), DType::F32)?;
    let (slog2, stgt2, smask2) = (
        up(&randn(&[b, CELLS, 9], 40, bf)?)?,
        up(&ids(&[b, CELLS], 9, 41)?)?,
        up(&Tensor::ones([b, CELLS], bf))?,
    );
    cases.push(Case {
        kernel: "masked_ce_fwd_bf16",
        shape: format!("[{b}, {CELLS}, 9]"),
        flops: 5.0 * sl,
        bytes: s * sl + (6 * b * CELLS) as f64,
        run: Box::new(move || ks::masked_ce_fwd_into(dev, &slog, &stgt, &smask, &mut sl_out)),
    });
    let sdy = up(&Tensor::ones(Shape::scalar(), DType::F32))?;
    let mut sdl = DeviceTensor::uninit(dev, [b, CELLS, 9], bf)?;
    cases.push(Case {
        kernel: "masked_ce_bwd_bf16 (+ scale)",
        shape: format!("[{b}, {CELLS}, 9]"),
        flops: 8.0 * sl,
        bytes: 2.0 * s * sl + (6 * b * CELLS) as f64,
        run: Box::new(move || ks::masked_ce_bwd_into(dev, &sdy, &slog2, &stgt2, &smask2, &mut sdl)),
    });

    // LDT's keep/eliminate head: BCE over every (cell, digit).
    let (bl, bt) = (
        up(&randn(&[b, CELLS, 9], 42, bf)?)?,
        up(&Tensor::ones([b, CELLS, 9], bf))?,
    );
    let mut bo = DeviceTensor::uninit(dev, [b, CELLS, 9], bf)?;
    let w = cpu::loss::BceWeights {
        positive: 4.0,
        negative: 0.5,
    };
    cases.push(Case {
        kernel: "bce_with_logits_fwd_bf16",
        shape: format!("[{b}, {CELLS}, 9]"),
        flops: 6.0 * sl,
        bytes: 3.0 * s * sl,
        run: Box::new(move || ks::bce_with_logits_fwd_into(dev, &bl, &bt, w, &mut bo)),
    });
    let (bl2, bt2, bdy) = (
        up(&randn(&[b, CELLS, 9], 42, bf)?)?,
        up(&Tensor::ones([b, CELLS, 9], bf))?,
        up(&randn(&[b, CELLS, 9], 43, bf)?)?,
    );
    let mut bdl = DeviceTensor::uninit(dev, [b, CELLS, 9], bf)?;
    let mut bdt = DeviceTensor::uninit(dev, [b, CELLS, 9], bf)?;
    cases.push(Case {
        kernel: "bce_with_logits_bwd_bf16",
        shape: format!("[{b}, {CELLS}, 9]"),
        flops: 8.0 * sl,
        bytes: 5.0 * s * sl,
        run: Box::new(move || {
            ks::bce_with_logits_bwd_into(dev, &bdy, &bl2, &bt2, w, &mut bdl, &mut bdt)
        }),
    });

    let hyper = crate::optim::AdamWConfig::default().hyper();
    cases.push(adam_case(dev, "adamw_step_f32", &hyper, 18.0, 44)?);
    let p = TRM_ATT_PARAMS;
    let mut shadow = up(&randn(&[p], 46, DType::F32)?)?;
    let live = up(&randn(&[p], 47, DType::F32)?)?;
    cases.push(Case {
        kernel: "ema_update_f32",
        shape: format!("{p} params (TRM-Att)"),
        flops: 3.0 * p as f64,
        bytes: 3.0 * 4.0 * p as f64,
        run: Box::new(move || kernels::optim::ema_update(dev, 0.999, &mut shadow, &live)),
    });

    // The puzzle embedding of Sudoku: one id shared by the whole batch, [1, 512] table.
    let pids = up(&Tensor::from_vec(vec![0i32; b], [b])?)?;
    let prows = up(&randn(&[b, HIDDEN], 48, DType::F32)?)?;
    let mut sums = kb::sparse_embedding_bwd(dev, &pids, &prows)?;
    let (pids2, prows2) = (
        up(&Tensor::from_vec(vec![0i32; b], [b])?)?,
        up(&randn(&[b, HIDDEN], 48, DType::F32)?)?,
    );
    let pr = (b * HIDDEN) as f64;
    cases.push(Case {
        kernel: "sparse_embedding_bwd_f32",
        shape: format!("ids [{b}], rows [{b}, {HIDDEN}]"),
        flops: pr,
        bytes: 8.0 * pr + (8 * b) as f64,
        run: Box::new(move || kb::sparse_embedding_bwd_into(dev, &pids2, &prows2, &mut sums)),
    });
    let sums2 = kb::sparse_embedding_bwd(dev, &pids, &prows)?;
    let mut table = up(&Tensor::zeros([1, HIDDEN], DType::F32))?;
    let sgd = crate::optim::SignSgd::new(1e-4, 1.0)?.kernel_scalars();
    let sgd = up(&Tensor::from_vec(sgd.to_vec(), [sgd.len()])?)?;
    cases.push(Case {
        kernel: "sign_sgd_step_f32",
        shape: format!("[1, {HIDDEN}] table, {b} rows"),
        flops: 4.0 * pr,
        bytes: 4.0 * pr + 8.0 * HIDDEN as f64,
        run: Box::new(move || kernels::optim::sign_sgd_step(dev, &sgd, &mut table, &sums2)),
    });

    // qkv_proj's backward: dx = dy·W, dW = dyᵀ·x, and a bias gradient as a Linear with bias has.
    let (mm, nn, kk) = ((b * SEQ) as f64, (3 * HIDDEN) as f64, HIDDEN as f64);
    let dq = up(&randn(&[b * SEQ, 3 * HIDDEN], 49, bf)?)?;
    let wq = up(&randn(&[3 * HIDDEN, HIDDEN], 50, bf)?)?;
    let mut dxq = DeviceTensor::uninit(dev, [b * SEQ, HIDDEN], bf)?;
    cases.push(Case {
        kernel: "linear_input_bwd_bf16 (tiled)",
        shape: format!("dy [{}, {}]", b * SEQ, 3 * HIDDEN),
        flops: 2.0 * mm * nn * kk,
        bytes: s * (mm * nn + nn * kk + mm * kk),
        run: Box::new(move || km::linear_bwd_input_into(dev, &dq, &wq, &mut dxq)),
    });
    let (dq2, xq) = (
        up(&randn(&[b * SEQ, 3 * HIDDEN], 49, bf)?)?,
        up(&randn(&[b * SEQ, HIDDEN], 51, bf)?)?,
    );
    let mut dwq = DeviceTensor::uninit(dev, [3 * HIDDEN, HIDDEN], bf)?;
    cases.push(Case {
        kernel: "linear_weight_bwd_bf16 (tiled)",
        shape: format!("dy [{}, {}]", b * SEQ, 3 * HIDDEN),
        flops: 2.0 * mm * nn * kk,
        bytes: s * (mm * nn + mm * kk + nn * kk),
        run: Box::new(move || km::linear_bwd_weight_into(dev, &dq2, &xq, &mut dwq)),
    });
    let dq3 = up(&randn(&[b * SEQ, 3 * HIDDEN], 49, bf)?)?;
    let mut dbq = DeviceTensor::uninit(dev, [3 * HIDDEN], bf)?;
    cases.push(Case {
        kernel: "linear_bias_bwd_bf16",
        shape: format!("dy [{}, {}]", b * SEQ, 3 * HIDDEN),
        flops: mm * nn,
        bytes: s * (mm * nn + nn),
        run: Box::new(move || km::linear_bwd_bias_into(dev, &dq3, &mut dbq)),
    });
    Ok(())
}

/// The same operations on the CPU reference (f32) at batch `b`, the baseline of each kernel.
pub fn cpu_cases(b: usize) -> Result<Vec<Case<'static>>> {
    let act = [b, SEQ, HIDDEN];
    let f = DType::F32;
    let mut cases = Vec::new();

    let (z, y, x) = (randn(&act, 1, f)?, randn(&act, 2, f)?, randn(&act, 3, f)?);
    cases.push(Case::costed(
        "inject_add (3 terms)",
        inject_add_cost(b, 4.0),
        move || cpu::elementwise::inject_add_fwd(&[&z, &y, &x]).map(drop),
    ));
    let gate_up = randn(&[b, SEQ, 2 * INTER], 4, f)?;
    cases.push(Case::costed("swiglu", swiglu_cost(b, 4.0), move || {
        cpu::swiglu::swiglu_fwd(&gate_up).map(drop)
    }));
    let h = randn(&act, 5, f)?;
    cases.push(Case::costed(
        "transpose_last2",
        transpose_cost(b, 4.0),
        move || cpu::layout::transpose_last2_fwd(&h).map(drop),
    ));
    let logits = randn(&[b, CELLS, VOCAB], 8, f)?;
    let labels = ids(&[b, CELLS], VOCAB, 9)?;
    cases.push(Case::costed(
        "stablemax_cross_entropy",
        stablemax_ce_cost(b, 4.0),
        move || {
            cpu::loss::sequence_mean_ce_fwd(&logits, &labels, cpu::loss::Normalizer::Stablemax)
                .map(drop)
        },
    ));
    let x2 = randn(&[b * SEQ, HIDDEN], 10, f)?;
    let w = randn(&[3 * HIDDEN, HIDDEN], 11, f)?;
    cases.push(Case::costed(
        "linear (qkv_proj)",
        qkv_linear_cost(b, 4.0),
        move || cpu::linear::linear_fwd(&x2, &w, None).map(drop),
    ));
    Ok(cases)
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

/// The section `recur bench` prints after the roofline table: our GEMM against cuBLASLt at every
/// model's products (`bench::fused::gemm::cublaslt_rows`), with the selection rule's pick under
/// `RECUR_GEMM`. `gpu` is the CUDA backend, or `Err(why)` for a run without one; without a GPU
/// or without libcuBLASLt the section says why it has no rows instead of leaving them out.
pub fn cublaslt_section(
    gpu: std::result::Result<&Cuda, &str>,
    opts: SuiteOptions,
) -> Result<String> {
    const TITLE: &str = "ours vs cuBLASLt (bf16 GEMM, the selection rule's input)";
    let policy = GemmPolicy::from_env()?;
    let cuda = match gpu {
        Ok(cuda) => cuda,
        Err(why) => return Ok(format!("{TITLE}: rows omitted: {why}")),
    };
    let lt = match CublasLt::new(cuda) {
        Ok(lt) => lt,
        Err(e) => {
            return Ok(format!(
                "{TITLE}: rows omitted: {e}\n(the rule picks ours for every product)"
            ))
        }
    };
    let library = lt.library();
    let header = format!(
        "{TITLE}\ncuBLASLt {} ({}); batch {}; medians of {} interleaved runs after {} warm-ups; \
         bf16 outputs; {GEMM_POLICY_VAR}={policy:?}; ours wins when cuBLASLt / ours >= \
         {OURS_MARGIN:.2}",
        library.version,
        library
            .path
            .as_ref()
            .map_or("path unknown".to_string(), |p| p.display().to_string()),
        opts.batch,
        opts.runs,
        opts.warmup,
    );
    let rows = crate::bench::fused::gemm::cublaslt_rows(
        cuda,
        &lt,
        opts.batch,
        opts.warmup,
        opts.runs,
        policy,
    )?;
    Ok(crate::bench::fused::gemm::cublaslt_table(&header, &rows))
}
