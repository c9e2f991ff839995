//! The bf16 forward dtype (the official `forward_dtype = bfloat16`, `docs/training-state.md`
//! "bf16 autocast"): f32 master weights with a bf16 mirror the optimizer refreshes, the mirror
//! bound by the tape, bf16 gradients added into the f32 gradient arena, and bf16 `linear` on the
//! tensor-core GEMM.
//!
//! - A tiny TRM and HRM training segment in bf16 on the kernels against the CPU reference running
//!   the same model code with bf16 storage: loss and every gradient within 1e-2 (relative L2).
//! - The mirror equals the f32 master rounded to bf16, bit for bit, after several AdamATan2 steps,
//!   on the CPU and on resident parameters, refreshed by ONE cast launch over the arena.
//! - A bf16 `linear` (forward and backward) launches the tensor-core GEMM, never the tiled one.
//!
//! Kernel tests are `<name>::emu` / `<name>::cuda`; the GPU twin skips with a printed reason
//! without a GPU.

use recur::data::sudoku::{encode_batch, generate, Difficulty, Geometry};
use recur::device::counting::Counting;
use recur::device::{Compute, KernelBackend};
use recur::models::{
    act_loss, act_step, Arch, Batch, Carry, Exploration, ForwardDtype, Halting, ModelConfig,
    PosEncoding, Probe, Reasoner,
};
use recur::optim::{AdamAtan2, AdamAtan2Config};
use recur::testing::rel_l2;
use recur::train::{dataset, RunConfig, Trainer};
use recur::{DType, Params, Tape, Tensor};
use std::sync::Arc;

fn host(t: &Tensor) -> Vec<f64> {
    t.to_host().unwrap().to_vec_f64().unwrap()
}

// ---- a training segment -----------------------------------------------------------------------

/// A tiny model: 4x4 Sudoku, hidden 64 in two heads of 32 (the attention kernel's smallest),
/// one prefix slot, one recursion call with gradient. Each extra call through bf16 storage
/// compounds the two paths' different rounding points (the attention kernel rounds its
/// probabilities to bf16 for P·V as FlashAttention does; the reference keeps them f32), so a
/// deeper recursion drifts past 1e-2 while staying as close as bf16 is to f32.
fn tiny_configs(forward_dtype: ForwardDtype) -> [(&'static str, ModelConfig); 3] {
    let trm = ModelConfig {
        hidden_size: 64,
        num_heads: 2,
        puzzle_emb_ndim: 64,
        puzzle_emb_len: 1,
        H_cycles: 1,
        L_cycles: 1,
        L_layers: 1,
        vocab_size: 6,
        seq_len: 16,
        forward_dtype,
        ..ModelConfig::trm_att_sudoku()
    };
    let mlp = ModelConfig {
        mlp_t: true,
        pos_encodings: PosEncoding::None,
        ..trm.clone()
    };
    let hrm = ModelConfig {
        arch: Arch::Hrm,
        H_layers: 1,
        no_ACT_continue: false,
        ..trm.clone()
    };
    [("TRM-Att", trm), ("TRM-MLP", mlp), ("HRM", hrm)]
}

/// Loss, every parameter gradient (f32, by name) and the puzzle-row gradient of one segment.
struct Segment {
    loss: f64,
    grads: Vec<(String, Vec<f64>)>,
    puzzle_rows: Vec<f64>,
}

fn one_segment(compute: Compute, cfg: ModelConfig) -> Segment {
    let mut params = Params::new();
    let mut model = Reasoner::new(&mut params, cfg, 3).unwrap();
    // The official init zeroes the Q head and the puzzle table, which would hide both paths.
    // Q logits of order 1: a saturated sigmoid would turn the bf16 rounding of a large logit
    // (an ulp of 0.03 at 4) into a several-percent change of its tiny gradient.
    for name in ["q_head.weight", "q_head.bias"] {
        let id = params.id(name).unwrap();
        let shape = params.value(id).shape().clone();
        params.get_mut(id).value = Tensor::randn(shape, 0.05, 5, DType::F32).unwrap();
    }
    params.refresh_mirror().unwrap();
    let mut buffers = model.buffers.clone();
    let shape = buffers.puzzle_emb.as_ref().unwrap().shape().clone();
    buffers.puzzle_emb = Some(Tensor::randn(shape, 0.5, 6, DType::F32).unwrap());
    model.set_buffers(buffers).unwrap();
    params.make_resident(&compute).unwrap();

    let puzzles = generate(Geometry::of_size(4).unwrap(), Difficulty::Hard, 8, 9).unwrap();
    let (inputs, labels) = encode_batch(&puzzles).unwrap();
    let ids = Tensor::from_vec(vec![0i32; 8], [8]).unwrap();
    let batch = Batch::new(inputs, labels, ids).unwrap();
    let tape = Tape::with_compute(compute);
    let carry = Carry::initial(&model, &batch).unwrap();
    let mut explore = Exploration {
        seed: 1,
        segment: 0,
    };
    let train = Halting::Train(&mut explore);
    let step = act_step(&model, &tape, &params, carry, &batch, train, &Probe::off()).unwrap();
    let loss = act_loss(&tape, &step).unwrap();
    let g = tape.backward(&loss.total).unwrap();
    params.zero_grad().unwrap();
    params.accumulate(tape.compute(), g.param_grads()).unwrap();
    let grads = params
        .iter()
        .map(|p| {
            let grad = p.grad.as_ref().unwrap();
            assert_eq!(
                grad.dtype(),
                DType::F32,
                "{}: master gradients are f32",
                p.name
            );
            (p.name.clone(), host(grad))
        })
        .collect();
    let rows = g.get(step.output.puzzle_rows.as_ref().unwrap()).unwrap();
    assert_eq!(rows.dtype(), DType::F32, "SignSGD reads f32 puzzle rows");
    Segment {
        loss: loss.total.value().to_host().unwrap().item().unwrap(),
        grads,
        puzzle_rows: host(rows),
    }
}

/// The bf16 segment on the kernels against the CPU bf16 segment, TRM-Att, TRM-MLP and HRM: loss and
/// every parameter gradient within 1e-2; and the bf16 segment differs from the f32 one (so bf16
/// storage really ran).
fn check_bf16_segment_matches_cpu(dev: &Arc<Counting>) {
    let f32_configs = tiny_configs(ForwardDtype::Float32);
    for ((arch, cfg), (_, f32_cfg)) in tiny_configs(ForwardDtype::Bfloat16)
        .into_iter()
        .zip(f32_configs)
    {
        let cpu = one_segment(Compute::Cpu, cfg.clone());
        let kernels = one_segment(Compute::on(dev.clone()), cfg);
        let counts = dev.take();
        assert!(
            counts.fallbacks.is_empty(),
            "{arch}: CPU fallbacks {:?}",
            counts.fallbacks
        );
        let names = counts.kernel_names();
        assert!(
            names.iter().any(|n| n == "gemm_bf16_fwd_bf16"),
            "{arch}: no tensor-core GEMM in {names:?}"
        );
        let err = (kernels.loss - cpu.loss).abs() / cpu.loss.abs();
        assert!(err < 1e-2, "{arch}: loss {} vs {}", kernels.loss, cpu.loss);
        for ((name, a), (_, b)) in kernels.grads.iter().zip(&cpu.grads) {
            let err = rel_l2(a, b);
            assert!(err < 1e-2, "{arch} {name}: relative L2 {err:.2e}");
        }
        // The puzzle rows' gradient is an activation's, at one position per sequence: no sum
        // over positions averages the two paths' rounding differences, and it arrives rounded to
        // bf16 (the gradient of the cast). HRM's reaches it through both levels' blocks and
        // lands near 1.1e-2, so it gets twice the parameters' bound.
        let err = rel_l2(&kernels.puzzle_rows, &cpu.puzzle_rows);
        assert!(err < 2e-2, "{arch} puzzle rows: relative L2 {err:.2e}");

        let f32 = one_segment(Compute::Cpu, f32_cfg);
        assert_ne!(f32.loss, cpu.loss, "{arch}: the bf16 segment ran in f32");
        let err = (f32.loss - cpu.loss).abs() / f32.loss.abs();
        assert!(
            err < 5e-2,
            "{arch}: bf16 loss {} far from f32 {}",
            cpu.loss,
            f32.loss
        );
    }
}

recur::counting_test!(bf16_segment_matches_cpu, check_bf16_segment_matches_cpu);

/// `auto` is float32 for a model built directly and bfloat16 once resolved on a GPU.
#[test]
fn auto_forward_dtype_is_bf16_only_on_a_gpu() {
    assert_eq!(ForwardDtype::Auto.dtype(), DType::F32);
    assert_eq!(ForwardDtype::Auto.resolve(true), ForwardDtype::Bfloat16);
    assert_eq!(ForwardDtype::Auto.resolve(false), ForwardDtype::Float32);
    assert_eq!(ForwardDtype::Float32.resolve(true), ForwardDtype::Float32);
    assert_eq!(
        ForwardDtype::Bfloat16.resolve(false),
        ForwardDtype::Bfloat16
    );
    let cfg = RunConfig::load("trm-cpu", &[]).unwrap();
    assert_eq!(cfg.model.forward_dtype, ForwardDtype::Float32);
    let cfg = RunConfig::load("trm-att-sudoku", &[]).unwrap();
    assert_eq!(cfg.model.forward_dtype, ForwardDtype::Auto);
    let set = ["model.forward_dtype=bfloat16".to_string()];
    let cfg = RunConfig::load("trm-cpu", &set).unwrap();
    assert_eq!(cfg.model.forward_dtype, ForwardDtype::Bfloat16);
    let bad = ["model.forward_dtype=float16".to_string()];
    assert!(RunConfig::load("trm-cpu", &bad).is_err());
}

// ---- whole training steps ----------------------------------------------------------------------

/// A small run of `preset` (4x4 Sudoku, batch 8, hidden 64) with `forward_dtype` set.
fn small_run(preset: &str, forward_dtype: &str) -> RunConfig {
    let overrides: Vec<String> = [
        "data.size=4",
        "train_puzzles=32",
        "test_puzzles=8",
        "global_batch_size=8",
        "total_steps=3",
        "eval_interval=0",
        "checkpoint_interval=0",
        "halt_max_steps=2",
        "lr_warmup_steps=1",
        &format!("model.forward_dtype={forward_dtype}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    RunConfig::load(preset, &overrides).unwrap()
}

fn trainer_on(cfg: RunConfig, compute: Compute) -> Trainer {
    let data = dataset::build(&cfg.data).unwrap();
    Trainer::new(cfg, data, compute).unwrap()
}

/// Three whole bf16 training steps of TRM and HRM with the state resident on the kernels (the
/// second captured as a graph, the third its replay) against the CPU bf16 trainer: the mirror
/// lives in the arena and equals the rounded master,
/// every loss agrees within 1e-2, and every live weight within 1e-2 (not the Q head, whose
/// official zero init makes its first AdamATan2 steps follow the sign of gradients that are zero
/// up to rounding, as `tests/train.rs` explains).
fn check_bf16_trainer_matches_cpu(dev: &Arc<Counting>) {
    for preset in ["trm-cpu", "hrm-cpu"] {
        let cfg = small_run(preset, "bfloat16");
        let mut cpu = trainer_on(cfg.clone(), Compute::Cpu);
        let mut kernels = trainer_on(cfg, Compute::on(dev.clone()));
        for t in [&cpu, &kernels] {
            assert_eq!(t.cfg.model.forward_dtype, ForwardDtype::Bfloat16);
            assert_eq!(t.params.mirror_dtype(), Some(DType::BF16), "{preset}");
        }
        for step in 1..=3 {
            let (a, b) = (cpu.train_step().unwrap(), kernels.train_step().unwrap());
            let err = (a.loss - b.loss).abs() / a.loss.abs();
            assert!(
                err < 1e-2,
                "{preset} step {step}: loss {} vs {}",
                b.loss,
                a.loss
            );
        }
        // Step 2 was captured and step 3 replayed it: the replayed Adam launch wrote the mirror.
        assert!(
            kernels.is_replaying(),
            "{preset}: the bf16 step replays as a graph"
        );
        assert_mirror_is_master_rounded(&kernels.params, 3);
        assert_mirror_is_master_rounded(&cpu.params, 3);
        for (a, b) in cpu.params.iter().zip(kernels.params.iter()) {
            if !a.name.starts_with("q_head") {
                let err = rel_l2(&host(&b.value), &host(&a.value));
                assert!(err < 1e-2, "{preset} {}: relative L2 {err:.2e}", a.name);
            }
        }
    }
}

recur::counting_test!(bf16_trainer_matches_cpu, check_bf16_trainer_matches_cpu);

/// `auto` trains in f32 off a GPU (no mirror), and `float32` everywhere.
#[test]
fn auto_trains_in_f32_on_the_cpu_and_emu() {
    for (dtype, compute) in [("auto", Compute::Cpu), ("auto", Compute::emu())] {
        let t = trainer_on(small_run("trm-cpu", dtype), compute);
        assert_eq!(t.cfg.model.forward_dtype, ForwardDtype::Float32);
        assert_eq!(t.params.mirror_dtype(), None);
    }
}

// ---- the mirror -------------------------------------------------------------------------------

const SHAPES: [&[usize]; 3] = [&[7, 5], &[13], &[3, 2, 4]];
const STEPS: u64 = 4;

/// Parameters with a bf16 mirror, resident on `compute`.
fn mirrored_params(compute: &Compute) -> Params {
    let mut params = Params::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        let value = Tensor::randn(shape.to_vec(), 1.0, 40 + i as u64, DType::F32).unwrap();
        params.add(format!("p{i}"), value).unwrap();
    }
    params.keep_mirror(DType::BF16).unwrap();
    params.make_resident(compute).unwrap();
    params
}

/// Every mirror value equals its master rounded to bf16, bit for bit, and is what the tape binds.
fn assert_mirror_is_master_rounded(params: &Params, step: u64) {
    let tape = Tape::new();
    for id in params.ids() {
        let master = params.value(id).to_host().unwrap();
        let want = master.to_dtype(DType::BF16).unwrap().to_bytes().unwrap();
        let mirror = params
            .mirror(id, DType::BF16)
            .expect("an up-to-date mirror");
        assert_eq!(mirror.dtype(), DType::BF16);
        let got = mirror.to_host().unwrap().to_bytes().unwrap();
        assert_eq!(got, want, "step {step}, {}", params.get(id).name);
        let bound = tape.param_as(params, id, DType::BF16).unwrap();
        assert_eq!(bound.value().to_host().unwrap().to_bytes().unwrap(), want);
    }
}

/// AdamATan2 over `STEPS` steps of bf16 gradients: the mirror follows the master every step, a
/// resident step adds each bf16 gradient into the f32 arena with one `accumulate_f32_bf16` and
/// writes the mirror in its one Adam launch (no refresh launch), and the masters move exactly as with f32 gradients of the same values.
fn check_mirror_follows_master(compute: Compute, counting: Option<&Arc<Counting>>) {
    let mut params = mirrored_params(&compute);
    let mut reference = mirrored_params(&Compute::Cpu);
    assert_mirror_is_master_rounded(&params, 0);
    let config = AdamAtan2Config {
        lr: 1e-2,
        ..AdamAtan2Config::default()
    };
    let mut opt = AdamAtan2::new(config).unwrap();
    let mut ref_opt = AdamAtan2::new(config).unwrap();
    for step in 1..=STEPS {
        let grads: Vec<Tensor> = SHAPES
            .iter()
            .enumerate()
            .map(|(i, shape)| {
                Tensor::randn(shape.to_vec(), 1.0, 100 * step + i as u64, DType::BF16).unwrap()
            })
            .collect();
        if let Some(dev) = counting {
            dev.take();
        }
        params.zero_grad().unwrap();
        let ids: Vec<_> = params.ids().collect();
        let placed: Vec<Tensor> = grads.iter().map(|g| compute.place(g).unwrap()).collect();
        params
            .accumulate(&compute, ids.iter().copied().zip(&placed))
            .unwrap();
        opt.step(&mut params).unwrap();
        if let Some(dev) = counting {
            let names = dev.take().kernel_names();
            let casts = |name: &str| names.iter().filter(|n| *n == name).count();
            assert_eq!(casts("accumulate_f32_bf16"), SHAPES.len(), "{names:?}");
            assert_eq!(casts("cast_to_f32_bf16"), 0, "{names:?}");
            // The one Adam launch over the arena writes the mirror as it writes the masters.
            assert_eq!(casts("adam_atan2_step_f32"), 1, "{names:?}");
            assert_eq!(
                casts("cast_to_bf16_f32"),
                0,
                "no separate refresh: {names:?}"
            );
        }
        assert_mirror_is_master_rounded(&params, step);

        // The reference takes the same gradients widened to f32 on the host.
        reference.zero_grad().unwrap();
        let widened: Vec<Tensor> = grads
            .iter()
            .map(|g| g.to_dtype(DType::F32).unwrap())
            .collect();
        reference
            .accumulate(&Compute::Cpu, ids.iter().copied().zip(&widened))
            .unwrap();
        ref_opt.step(&mut reference).unwrap();
        for id in params.ids() {
            let a = host(params.value(id));
            let b = host(reference.value(id));
            // Emu and the CPU agree bit for bit; a GPU's atan2f may differ by an ulp.
            let tol = if counting.is_some_and(|d| d.name().starts_with("cuda")) {
                1e-5
            } else {
                0.0
            };
            assert!(rel_l2(&a, &b) <= tol, "step {step}: masters differ");
        }
    }
}

#[test]
fn mirror_follows_master_on_the_cpu() {
    check_mirror_follows_master(Compute::Cpu, None);
}

fn mirror_follows_master_resident(dev: &Arc<Counting>) {
    check_mirror_follows_master(Compute::on(dev.clone()), Some(dev));
}

recur::counting_test!(mirror_follows_master, mirror_follows_master_resident);

/// A value changed behind the mirror's back is never bound from the stale copy.
#[test]
fn a_stale_mirror_is_not_bound() {
    let mut params = mirrored_params(&Compute::Cpu);
    let id = params.ids().next().unwrap();
    params.get_mut(id).value = Tensor::full([7, 5], 3.0, DType::F32);
    assert!(params.mirror(id, DType::BF16).is_none());
    let bound = Tape::new().param_as(&params, id, DType::BF16).unwrap();
    assert_eq!(host(bound.value()), vec![3.0; 35]);
    params.refresh_mirror().unwrap();
    assert_eq!(host(params.mirror(id, DType::BF16).unwrap()), vec![3.0; 35]);
}

// ---- bf16 linear on the tensor-core GEMM ------------------------------------------------------

/// `linear` with a bias in bf16 (x `[2, 5, 24]`, W `[40, 24]`), forward and backward: the GEMM
/// `gemm_bf16_fwd_bf16` runs all three products and no tiled `linear_*` product kernel runs; the
/// results agree with the CPU reference in bf16.
fn check_bf16_linear_uses_tensor_cores(dev: &Arc<Counting>) {
    let run = |compute: Compute| {
        let tape = Tape::with_compute(compute);
        let x = tape.leaf(Tensor::randn([2, 5, 24], 1.0, 1, DType::BF16).unwrap());
        let w = tape.leaf(Tensor::randn([40, 24], 0.2, 2, DType::BF16).unwrap());
        let b = tape.leaf(Tensor::randn([40], 0.5, 3, DType::BF16).unwrap());
        let y = tape.linear(&x, &w, Some(&b)).unwrap();
        let loss = tape.sum_all(&tape.mul(&y, &y.detach()).unwrap()).unwrap();
        let g = tape.backward(&loss).unwrap();
        let out: Vec<Vec<f64>> = [y.value(), g.get(&x).unwrap(), g.get(&w).unwrap()]
            .into_iter()
            .chain([g.get(&b).unwrap()])
            .map(host)
            .collect();
        out
    };
    let cpu = run(Compute::Cpu);
    dev.take();
    let kernels = run(Compute::on(dev.clone()));
    let names = dev.take().kernel_names();
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count("gemm_bf16_fwd_bf16"), 3, "forward, dx, dW: {names:?}");
    for tiled in [
        "linear_fwd_bf16",
        "linear_input_bwd_bf16",
        "linear_weight_bwd_bf16",
    ] {
        assert_eq!(count(tiled), 0, "{tiled} ran: {names:?}");
    }
    for (what, (a, b)) in ["y", "dx", "dW", "db"].iter().zip(kernels.iter().zip(&cpu)) {
        let err = rel_l2(a, b);
        assert!(err < 1e-2, "{what}: relative L2 {err:.2e}");
    }
}

recur::counting_test!(
    bf16_linear_uses_tensor_cores,
    check_bf16_linear_uses_tensor_cores
);

/// `Tape::cast` rounds f32 to the nearest bf16 (ties to even) and hands the gradient back in the
/// input's dtype, on the CPU and on Emu alike.
#[test]
fn cast_rounds_to_nearest_even_and_casts_the_gradient_back() {
    // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷ (ties to the even 1); 1 + 3·2⁻⁸ rounds up to
    // 1 + 2⁻⁶ (even); 1 + 2⁻⁸ + 2⁻¹² is above the halfway point.
    let values = [
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        1.0 + 2f32.powi(-8) + 2f32.powi(-12),
    ];
    let rounded = [1.0, 1.0 + 2f64.powi(-6), 1.0 + 2f64.powi(-7)];
    for compute in [Compute::Cpu, Compute::emu()] {
        let tape = Tape::with_compute(compute);
        let x = tape.leaf(Tensor::from_vec(values.to_vec(), [3]).unwrap());
        let y = tape.cast(&x, DType::BF16).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        assert_eq!(host(y.value()), rounded);
        let loss = tape.sum_all(&tape.cast(&y, DType::F32).unwrap()).unwrap();
        let g = tape.backward(&loss).unwrap();
        let dx = g.get(&x).unwrap();
        assert_eq!(dx.dtype(), DType::F32);
        assert_eq!(host(dx), vec![1.0; 3]);
    }
}

/// f32 → bf16 rounds to nearest even on the host exactly as the `cast_to_bf16_f32` kernel, also
/// when the only bits past the round bit are the last three of the f32 (which a conversion
/// through f64 by `half::bf16::from_f64` loses, taking the value for a tie).
#[test]
fn host_and_kernel_round_f32_to_bf16_alike() {
    let bits: [u32; 6] = [
        0xbcc6_8006,
        0x3d80_8007,
        0xbe60_8002,
        0x3f80_8000,
        0x3f81_8000,
        0x3f80_7fff,
    ];
    let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let want: Vec<u16> = vec![0xbcc7, 0x3d81, 0xbe61, 0x3f80, 0x3f82, 0x3f80];
    let t = Tensor::from_vec(values, [6]).unwrap();
    let on_host = t.to_dtype(DType::BF16).unwrap().to_bytes().unwrap();
    let on_emu = recur::ops::cast::cast_tensor(&Compute::emu(), &t, DType::BF16)
        .unwrap()
        .to_host()
        .unwrap()
        .to_bytes()
        .unwrap();
    let want: Vec<u8> = want.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(on_host, want, "host");
    assert_eq!(on_emu, want, "emu");
}

/// The tensor-core GEMM reads a weight that is a view at any element of a larger buffer (a
/// parameter of an arena), and the output into a view at an odd element, giving the same bits
/// as from and into their own allocations: misaligned rows are loaded element by element.
fn check_gemm_reads_unaligned_views(dev: &Arc<Counting>) {
    use recur::device::DeviceTensor;
    use recur::kernels::gemm::{gemm_bf16, gemm_bf16_into, Epilogue};
    let backend: Arc<dyn KernelBackend> = dev.clone();
    let x = Tensor::randn([9, 24], 1.0, 1, DType::BF16).unwrap();
    let w = Tensor::randn([40, 24], 0.2, 2, DType::BF16).unwrap();
    let mut padded = vec![0.0f32];
    padded.extend(w.to_vec_f32().unwrap());
    let padded = Tensor::from_vec(padded, [1 + 40 * 24])
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap()
        .to_device(&backend)
        .unwrap();
    let x_dev = DeviceTensor::upload(dev.as_ref(), &x).unwrap();
    let w_dev = DeviceTensor::upload(dev.as_ref(), &w).unwrap();
    let w_view = DeviceTensor::borrow(&padded.view(1, [40, 24]).unwrap()).unwrap();
    let aligned = gemm_bf16(dev.as_ref(), &x_dev, &w_dev, Epilogue::None, DType::BF16).unwrap();
    let from_view = gemm_bf16(dev.as_ref(), &x_dev, &w_view, Epilogue::None, DType::BF16).unwrap();
    let out = DeviceTensor::uninit(dev.as_ref(), [1 + 9 * 40], DType::BF16)
        .unwrap()
        .into_tensor(&backend)
        .unwrap();
    let mut into_view = DeviceTensor::borrow(&out.view(1, [9, 40]).unwrap()).unwrap();
    gemm_bf16_into(
        dev.as_ref(),
        &x_dev,
        &w_view,
        Epilogue::None,
        &mut into_view,
    )
    .unwrap();
    let bytes = |t: &DeviceTensor| t.download(dev.as_ref()).unwrap().to_bytes().unwrap();
    assert_eq!(
        bytes(&from_view),
        bytes(&aligned),
        "weight view at element 1"
    );
    assert_eq!(
        bytes(&into_view),
        bytes(&aligned),
        "output view at element 1"
    );
}

recur::counting_test!(gemm_reads_unaligned_views, check_gemm_reads_unaligned_views);
