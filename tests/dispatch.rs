//! The tape's ops on a kernel backend (`Compute::Kernels`) against the same ops on the CPU
//! reference (`Compute::Cpu`): forward values and the gradients of every input, on fresh random
//! inputs at ragged sizes (S = 97, hidden 64, head dims 32 and 64), in f32 (relative L2 below
//! 1e-5, DESIGN.md) and, where the kernels have it, bf16 storage (1e-2).
//!
//! Every kernel launch goes through `Recording`, which writes down its name, and every check
//! asserts exactly which kernels the op launched forward and backward. An op that silently fell
//! back to the CPU reference launches nothing and fails; the documented fallbacks
//! (`docs/dispatch.md`) are asserted to launch nothing.
//!
//! Each test runs on Emu (`<name>::emu`) and on a GPU (`<name>::cuda`, skipped with a printed
//! reason without one). Inputs are drawn from a fresh seed per run, printed with every failure;
//! `RECUR_TEST_SEED=<seed>` repeats a run.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::device::counting::Counting;
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::KernelBackend;
use recur::nn::block::{BlockConfig, PostNormBlock};
use recur::ops::attention::AttentionOpts;
use recur::ops::norm::Norm;
use recur::ops::rope::RopeTable;
use recur::tape::Compute;
use recur::testing::rel_l2;
use recur::{DType, Error, Params, Result, Shape, Tape, Tensor, Var};
use std::collections::BTreeMap;
use std::sync::Arc;

// ---- the recording backend and the test macro ---------------------------------------------------

/// The counting backend (`device::counting`) around Emu or Cuda: it writes down every kernel
/// launched, so a test can tell that an op really ran its kernels.
type Recording = Counting;

trait RecordingExt {
    fn compute(&self) -> Compute;
    fn take_names(&self) -> Vec<String>;
}

impl RecordingExt for Arc<Counting> {
    /// A compute that runs on this backend.
    fn compute(&self) -> Compute {
        Compute::on(self.clone())
    }
    /// The kernels launched since the last call, in order.
    fn take_names(&self) -> Vec<String> {
        self.take().kernel_names()
    }
}

// ---- inputs -------------------------------------------------------------------------------------

/// A fresh seed per run (or `RECUR_TEST_SEED`), printed so a failure can be repeated.
fn fresh_seed(test: &str) -> u64 {
    let seed = std::env::var("RECUR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    eprintln!("{test}: seed {seed} (RECUR_TEST_SEED={seed} repeats this run)");
    seed
}

fn randn(shape: impl Into<Shape>, std: f64, seed: u64, dtype: DType) -> Tensor {
    Tensor::randn(shape, std, seed, dtype).unwrap()
}

/// Random i32 values in `0..below`, with `ignored` of them replaced by −100 (ignored labels).
fn random_ids(shape: impl Into<Shape>, below: i32, ignored: usize, seed: u64) -> Tensor {
    let shape = shape.into();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ids: Vec<i32> = (0..shape.numel())
        .map(|_| rng.random_range(0..below))
        .collect();
    for _ in 0..ignored {
        let at = rng.random_range(0..ids.len());
        ids[at] = -100;
    }
    Tensor::from_vec(ids, shape).unwrap()
}

/// The relative L2 error each dtype is held to (DESIGN.md).
fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

/// The kernel name for a storage dtype: `kernel("linear_fwd", BF16)` = `"linear_fwd_bf16"`.
fn kernel(base: &str, dtype: DType) -> String {
    format!("{base}_{}", dtype.name())
}

fn kernels(bases: &[&str], dtype: DType) -> Vec<String> {
    bases.iter().map(|b| kernel(b, dtype)).collect()
}

// ---- the comparison -----------------------------------------------------------------------------

/// What one op does on one compute: its outputs, the gradient of every input, and (on the
/// kernels) the kernels launched by the op's forward and by its backward.
struct Outcome {
    /// What crossed between host and device in the forward and in the backward.
    moves: [Moves; 2],
    outputs: Vec<Tensor>,
    grads: Vec<Option<Tensor>>,
    forward_launches: Vec<String>,
    backward_launches: Vec<String>,
}

/// Host↔device traffic of one pass: (uploads, downloads, synchronisations, fallbacks).
#[derive(Debug, Default, PartialEq)]
struct Moves {
    uploads: usize,
    downloads: usize,
    syncs: usize,
    fallbacks: Vec<&'static str>,
}

impl Moves {
    fn of(c: &recur::device::counting::Counts) -> Moves {
        Moves {
            uploads: c.uploads,
            downloads: c.downloads,
            syncs: c.syncs,
            fallbacks: c.fallbacks.clone(),
        }
    }
}

/// The op under test: leaves in, outputs out.
type OpFn<'a> = &'a dyn Fn(&Tape, &[Var]) -> Result<Vec<Var>>;

/// Runs `op` on `compute` with `inputs` as leaves, and backpropagates the scalar
/// `Σ_i Σ out_i ⊙ R_i` for fixed random weights `R_i`, so every output element matters.
fn run_op(
    compute: Compute,
    recording: Option<&Arc<Recording>>,
    inputs: &[Tensor],
    seed: u64,
    op: OpFn<'_>,
) -> Result<Outcome> {
    let counts = || recording.map(|r| r.take()).unwrap_or_default();
    let tape = Tape::with_compute(compute.clone());
    // The leaves live where the compute reads them, so the op itself must move nothing.
    let leaves: Vec<Var> = inputs
        .iter()
        .map(|t| Ok(tape.leaf(compute.place(t)?)))
        .collect::<Result<_>>()?;
    counts();
    let outs = op(&tape, &leaves)?;
    let forward = counts();
    let forward_launches = forward.kernel_names();
    let mut loss: Option<Var> = None;
    for (i, out) in outs.iter().enumerate() {
        let weights = randn(
            out.shape().clone(),
            1.0,
            seed ^ (0xfeed + i as u64),
            out.dtype(),
        );
        let weights = compute.place(&weights)?;
        let term = tape.sum_all(&tape.mul(out, &Var::constant(weights))?)?;
        loss = Some(match loss {
            None => term,
            Some(acc) => tape.add(&acc, &term)?,
        });
    }
    let loss = loss.expect("the op has an output");
    // The backward's seed is a constant uploaded once per compute: upload it before counting.
    compute.ones(loss.shape(), loss.dtype())?;
    counts();
    let grads = tape.backward(&loss)?;
    let backward = counts();
    let mut backward_launches = backward.kernel_names();
    // The weighted sum's own backward: per output, sum_all's broadcast and mul's two products
    // (`add` passes gradients through without a kernel).
    for out in &outs {
        for base in ["sum_bwd", "mul_fwd", "mul_fwd"] {
            let name = kernel(base, out.dtype());
            if let Some(at) = backward_launches.iter().position(|k| *k == name) {
                backward_launches.remove(at);
            }
        }
    }
    Ok(Outcome {
        moves: [forward, backward].map(|c| Moves::of(&c)),
        outputs: outs.into_iter().map(Var::into_value).collect(),
        grads: leaves.iter().map(|l| grads.get(l).cloned()).collect(),
        forward_launches,
        backward_launches,
    })
}

/// Counts of each name, so launch lists compare as multisets.
fn multiset(names: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in names {
        *counts.entry(n.clone()).or_insert(0) += 1;
    }
    counts
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let got = got.to_host().unwrap();
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let err = rel_l2(&g, &w);
    eprintln!("{what}: relative L2 error {err:.1e}"); // the measured errors, with --nocapture
    assert!(
        err <= tol,
        "{what}: relative L2 error {err:.3e} > {tol:.0e}\n kernels {:?}\n cpu     {:?}",
        &g[..g.len().min(6)],
        &w[..w.len().min(6)]
    );
}

/// One op checked on the kernels against the CPU reference.
struct OpCheck {
    what: String,
    inputs: Vec<Tensor>,
    forward: Vec<String>,
    backward: Vec<String>,
    tol: f64,
    /// Host tensors the op closure captures (labels, ids), each uploaded when the op reads it.
    host_inputs: usize,
}

impl OpCheck {
    /// `what` names the case in failures; `inputs` become the op's leaves; the tolerance is the
    /// first input's dtype's.
    fn new(what: impl Into<String>, inputs: Vec<Tensor>) -> OpCheck {
        let tol = tolerance(inputs[0].dtype());
        OpCheck {
            what: what.into(),
            inputs,
            forward: Vec::new(),
            backward: Vec::new(),
            tol,
            host_inputs: 0,
        }
    }

    /// The kernels the op must launch, forward and backward (each list as a multiset).
    fn launches(mut self, forward: Vec<String>, backward: Vec<String>) -> OpCheck {
        self.forward = forward;
        self.backward = backward;
        self
    }

    /// The op closure captures `n` host tensors (labels, ids), which it may upload.
    fn host_inputs(mut self, n: usize) -> OpCheck {
        self.host_inputs = n;
        self
    }

    /// Runs `op` on both computes and compares outputs, gradients and launches.
    fn run(self, dev: &Arc<Recording>, seed: u64, op: impl Fn(&Tape, &[Var]) -> Result<Vec<Var>>) {
        let what = format!("{} on {} (seed {seed})", self.what, dev.name());
        let cpu = run_op(Compute::Cpu, None, &self.inputs, seed, &op)
            .unwrap_or_else(|e| panic!("{what}: the CPU reference failed: {e}"));
        let gpu = run_op(dev.compute(), Some(dev), &self.inputs, seed, &op)
            .unwrap_or_else(|e| panic!("{what}: the kernels failed: {e}"));
        assert_eq!(
            multiset(&gpu.forward_launches),
            multiset(&self.forward),
            "{what}: kernels launched by the forward"
        );
        assert_eq!(
            multiset(&gpu.backward_launches),
            multiset(&self.backward),
            "{what}: kernels launched by the backward"
        );
        for (pass, moves) in ["forward", "backward"].iter().zip(&gpu.moves) {
            if self.host_inputs > 0 || !moves.fallbacks.is_empty() {
                // A documented fallback, or host constants (labels, ids) uploaded by the op.
                assert!(
                    moves.uploads <= self.host_inputs || !moves.fallbacks.is_empty(),
                    "{what}: {pass} uploads {moves:?}"
                );
                continue;
            }
            assert_eq!(
                *moves,
                Moves::default(),
                "{what}: the {pass} on resident inputs moved data between host and device"
            );
        }
        assert_eq!(gpu.outputs.len(), cpu.outputs.len(), "{what}: outputs");
        for (i, (g, c)) in gpu.outputs.iter().zip(&cpu.outputs).enumerate() {
            assert_close(&format!("{what}: output {i}"), g, c, self.tol);
        }
        for (i, (g, c)) in gpu.grads.iter().zip(&cpu.grads).enumerate() {
            match (g, c) {
                (Some(g), Some(c)) => {
                    assert_close(&format!("{what}: gradient of input {i}"), g, c, self.tol)
                }
                (None, None) => {}
                _ => panic!(
                    "{what}: input {i} has a gradient on one compute only (kernels: {}, cpu: {})",
                    g.is_some(),
                    c.is_some()
                ),
            }
        }
    }
}

const FLOAT_DTYPES: [DType; 2] = [DType::F32, DType::BF16];

// ---- elementwise, activations, reductions -------------------------------------------------------

fn check_elementwise(dev: &Arc<Recording>) {
    let seed = fresh_seed("elementwise");
    for dt in FLOAT_DTYPES {
        let shape = [2, 97, 64];
        let xs = |k: u64| randn(shape, 1.0, seed + k, dt);
        OpCheck::new(format!("add {dt}"), vec![xs(1), xs(2)])
            .launches(kernels(&["inject_add_fwd"], dt), vec![])
            .run(dev, seed, |t, v| Ok(vec![t.add(&v[0], &v[1])?]));
        OpCheck::new(format!("inject_add of 3 {dt}"), vec![xs(3), xs(4), xs(5)])
            .launches(kernels(&["inject_add_fwd"], dt), vec![])
            .run(dev, seed, |t, v| {
                Ok(vec![t.inject_add(&[&v[0], &v[1], &v[2]])?])
            });
        OpCheck::new(format!("mul {dt}"), vec![xs(6), xs(7)])
            .launches(
                kernels(&["mul_fwd"], dt),
                kernels(&["mul_fwd", "mul_fwd"], dt),
            )
            .run(dev, seed, |t, v| Ok(vec![t.mul(&v[0], &v[1])?]));
        OpCheck::new(format!("scale {dt}"), vec![xs(8)])
            .launches(kernels(&["scale_fwd"], dt), kernels(&["scale_fwd"], dt))
            .run(dev, seed, |t, v| Ok(vec![t.scale(&v[0], -0.37)?]));
    }
}
recur::counting_test!(elementwise, super::check_elementwise);

fn check_activations(dev: &Arc<Recording>) {
    let seed = fresh_seed("activations");
    type Act = fn(&Tape, &Var) -> Result<Var>;
    let acts: [(&str, Act); 6] = [
        ("silu", |t, x| t.silu(x)),
        ("relu", |t, x| t.relu(x)),
        ("gelu", |t, x| t.gelu(x)),
        ("sigmoid", |t, x| t.sigmoid(x)),
        ("softplus", |t, x| t.softplus(x)),
        ("exp", |t, x| t.exp(x)),
    ];
    for dt in FLOAT_DTYPES {
        for (k, (name, act)) in acts.iter().enumerate() {
            let x = randn([3, 97, 33], 2.0, seed + k as u64, dt);
            OpCheck::new(format!("{name} {dt}"), vec![x])
                .launches(
                    vec![kernel(&format!("{name}_fwd"), dt)],
                    vec![kernel(&format!("{name}_bwd"), dt)],
                )
                .run(dev, seed, |t, v| Ok(vec![act(t, &v[0])?]));
        }
        let gate_up = randn([2, 97, 2 * 96], 1.5, seed + 10, dt);
        OpCheck::new(format!("swiglu {dt}"), vec![gate_up])
            .launches(kernels(&["swiglu_fwd"], dt), kernels(&["swiglu_bwd"], dt))
            .run(dev, seed, |t, v| Ok(vec![t.swiglu(&v[0])?]));
    }
}
recur::counting_test!(activations, super::check_activations);

fn check_reductions(dev: &Arc<Recording>) {
    let seed = fresh_seed("reductions");
    for dt in FLOAT_DTYPES {
        let x = || randn([2, 97, 33], 1.0, seed, dt);
        OpCheck::new(format!("sum_all {dt}"), vec![x()])
            .launches(kernels(&["sum_fwd"], dt), kernels(&["sum_bwd"], dt))
            .run(dev, seed, |t, v| Ok(vec![t.sum_all(&v[0])?]));
        OpCheck::new(format!("sum over axis 1 {dt}"), vec![x()])
            .launches(kernels(&["sum_fwd"], dt), kernels(&["sum_bwd"], dt))
            .run(dev, seed, |t, v| Ok(vec![t.sum(&v[0], 1)?]));
        OpCheck::new(format!("mean over the last axis {dt}"), vec![x()])
            .launches(kernels(&["mean_fwd"], dt), kernels(&["mean_bwd"], dt))
            .run(dev, seed, |t, v| Ok(vec![t.mean(&v[0], -1)?]));
    }
}
recur::counting_test!(reductions, super::check_reductions);

// ---- layout -------------------------------------------------------------------------------------

fn check_layout(dev: &Arc<Recording>) {
    let seed = fresh_seed("layout");
    for dt in FLOAT_DTYPES {
        let x = |shape: &[usize], k: u64| randn(shape.to_vec(), 1.0, seed + k, dt);
        OpCheck::new(format!("reshape {dt}"), vec![x(&[2, 97, 64], 0)])
            .launches(vec![], vec![])
            .run(dev, seed, |t, v| {
                Ok(vec![t.reshape(&v[0], [2, 97, 2, 32])?])
            });
        OpCheck::new(format!("transpose_last2 {dt}"), vec![x(&[2, 97, 64], 1)])
            .launches(
                kernels(&["transpose_last2_fwd"], dt),
                kernels(&["transpose_last2_fwd"], dt),
            )
            .run(dev, seed, |t, v| Ok(vec![t.transpose_last2(&v[0])?]));
        let pieces = vec![x(&[2, 5, 64], 2), x(&[2, 97, 64], 3), x(&[2, 1, 64], 4)];
        OpCheck::new(format!("concat of 3 along axis 1 {dt}"), pieces)
            .launches(
                kernels(&["concat_fwd", "concat_fwd", "concat_fwd"], dt),
                kernels(&["narrow_fwd", "narrow_fwd", "narrow_fwd"], dt),
            )
            .run(dev, seed, |t, v| {
                Ok(vec![t.concat(&[&v[0], &v[1], &v[2]], 1)?])
            });
        // The third piece is unused: its part of the gradient must come back as zeros.
        OpCheck::new(
            format!("split in 3, two used {dt}"),
            vec![x(&[2, 97, 96], 5)],
        )
        .launches(
            kernels(&["narrow_fwd", "narrow_fwd", "narrow_fwd"], dt),
            // The tape adds the two pieces' gradients on the device (`add` is two-term
            // injection).
            kernels(&["narrow_bwd", "narrow_bwd", "inject_add_fwd"], dt),
        )
        .run(dev, seed, |t, v| {
            let parts = t.split(&v[0], &[32, 33, 31], -1)?;
            Ok(vec![parts[0].clone(), parts[1].clone()])
        });
        OpCheck::new(
            format!("narrow off a prefix {dt}"),
            vec![x(&[2, 97, 11], 6)],
        )
        .launches(kernels(&["narrow_fwd"], dt), kernels(&["narrow_bwd"], dt))
        .run(dev, seed, |t, v| Ok(vec![t.narrow(&v[0], 1, 16, 81)?]));
    }
}
recur::counting_test!(layout, super::check_layout);

fn check_argmax(dev: &Arc<Recording>) {
    let seed = fresh_seed("argmax");
    let x = randn([2, 97, 11], 1.0, seed, DType::F32);
    let want = Tape::new().argmax(&Var::constant(x.clone()), -1).unwrap();
    dev.take_names();
    let got = Tape::with_compute(dev.compute())
        .argmax(&Var::constant(x), -1)
        .unwrap();
    assert_eq!(dev.take_names(), ["argmax_fwd_f32"], "seed {seed}");
    assert_eq!(got.shape(), want.shape());
    assert_eq!(
        got.to_host().unwrap().to_vec_i32().unwrap(),
        want.to_vec_i32().unwrap(),
        "seed {seed}"
    );
}
recur::counting_test!(argmax, super::check_argmax);

// ---- linear, matmul, embedding ------------------------------------------------------------------

fn check_linear(dev: &Arc<Recording>) {
    let seed = fresh_seed("linear");
    for dt in FLOAT_DTYPES {
        let x = randn([2, 97, 64], 1.0, seed, dt);
        let w = randn([96, 64], 0.125, seed + 1, dt);
        let b = randn([96], 1.0, seed + 2, dt);
        // bf16 runs its products on the tensor-core GEMM (dx after transposing W, dW after
        // transposing dy and x); f32 on the tiled kernels.
        let (product, dx, dw) = if dt == DType::BF16 {
            let gemm = vec!["gemm_bf16_fwd_bf16".to_string()];
            let t = "transpose_last2_fwd_bf16".to_string();
            let dx = [vec![t.clone()], gemm.clone()].concat();
            let dw = [vec![t.clone(), t], gemm.clone()].concat();
            (gemm, dx, dw)
        } else {
            (
                kernels(&["linear_fwd"], dt),
                kernels(&["linear_input_bwd"], dt),
                kernels(&["linear_weight_bwd"], dt),
            )
        };
        OpCheck::new(
            format!("linear with bias {dt}"),
            vec![x.clone(), w.clone(), b],
        )
        .launches(
            product.clone(),
            [dx, dw.clone(), kernels(&["linear_bias_bwd"], dt)].concat(),
        )
        .run(dev, seed, |t, v| {
            Ok(vec![t.linear(&v[0], &v[1], Some(&v[2]))?])
        });
        // A constant input needs no dx: only the weight's product runs.
        OpCheck::new(format!("linear, no bias, constant input {dt}"), vec![x, w])
            .launches(product, dw)
            .run(dev, seed, |t, v| {
                Ok(vec![t.linear(&v[0].detach(), &v[1], None)?])
            });
    }
    let a = randn([2, 97, 64], 1.0, seed + 3, DType::F32);
    let b = randn([64, 33], 0.125, seed + 4, DType::F32);
    OpCheck::new("matmul with a shared 2-D b", vec![a.clone(), b])
        .launches(
            kernels(&["transpose_last2_fwd", "linear_fwd"], DType::F32),
            kernels(
                &[
                    "transpose_last2_fwd",
                    "linear_input_bwd",
                    "linear_weight_bwd",
                    "transpose_last2_fwd",
                ],
                DType::F32,
            ),
        )
        .run(dev, seed, |t, v| Ok(vec![t.matmul(&v[0], &v[1])?]));
    // A batched b has no kernel (docs/dispatch.md): the reference runs, nothing is launched.
    let batched_b = randn([2, 64, 33], 0.125, seed + 5, DType::F32);
    OpCheck::new("matmul with a batched b (CPU fallback)", vec![a, batched_b])
        .launches(vec![], vec![])
        .run(dev, seed, |t, v| Ok(vec![t.matmul(&v[0], &v[1])?]));
}
recur::counting_test!(linear, super::check_linear);

fn check_embedding(dev: &Arc<Recording>) {
    let seed = fresh_seed("embedding");
    let ids = random_ids([2, 97], 11, 0, seed);
    for dt in FLOAT_DTYPES {
        let table = randn([11, 64], 1.0, seed + 1, dt);
        // The ids ride along as a second leaf so that they, too, are resident on the kernels
        // (they receive no gradient on either compute).
        OpCheck::new(format!("embedding {dt}"), vec![table, ids.clone()])
            .launches(
                kernels(&["embedding_fwd"], dt),
                // The f32 table gradient is cast back to bf16 storage for bf16.
                [
                    vec!["embedding_bwd_clear_f32".to_string()],
                    kernels(&["embedding_bwd"], dt),
                    (dt == DType::BF16)
                        .then(|| "cast_to_bf16_f32".to_string())
                        .into_iter()
                        .collect(),
                ]
                .concat(),
            )
            .run(dev, seed, |t, v| {
                Ok(vec![t.embedding(v[1].value(), &v[0])?])
            });
    }
    // The kernels would write a NaN row for a bad id; the tape checks the host ids first.
    let mut bad = ids.to_vec_i32().unwrap();
    bad[150] = 11;
    let bad = Tensor::from_vec(bad, [2, 97]).unwrap();
    let tape = Tape::with_compute(dev.compute());
    let table = tape.leaf(randn([11, 64], 1.0, seed, DType::F32));
    match tape.embedding(&bad, &table) {
        Err(Error::Arg {
            op: "embedding",
            msg,
        }) => assert!(msg.contains("11"), "{msg}"),
        other => panic!("expected an argument error naming the id, got {other:?}"),
    }
}
recur::counting_test!(embedding, super::check_embedding);

// ---- rope, attention, norms ---------------------------------------------------------------------

fn check_rope(dev: &Arc<Recording>) {
    let seed = fresh_seed("rope");
    for dt in FLOAT_DTYPES {
        for (k, dims) in [[2, 97, 2, 32], [1, 97, 3, 64]].into_iter().enumerate() {
            let table = RopeTable::one_d(100, dims[3], 10000.0).unwrap();
            let x = randn(dims.to_vec(), 1.0, seed + k as u64, dt);
            OpCheck::new(format!("rope_1d {dims:?} {dt}"), vec![x])
                .launches(kernels(&["rope_fwd"], dt), kernels(&["rope_bwd"], dt))
                // The table (cos and sin) is a constant uploaded on its first use by a compute, then reused.
                .host_inputs(2)
                .run(dev, seed, |t, v| Ok(vec![t.rope_1d(&v[0], &table)?]));
        }
        // Sotaku's 9 × 9 grid, 2D interleaved pairs.
        let (rows, cols): (Vec<usize>, Vec<usize>) = (0..81).map(|p| (p / 9, p % 9)).unzip();
        let x = randn([2, 81, 2, 32], 1.0, seed + 7, dt);
        OpCheck::new(format!("rope_2d 9×9 {dt}"), vec![x])
            .launches(kernels(&["rope_fwd"], dt), kernels(&["rope_bwd"], dt))
            .host_inputs(2)
            .run(dev, seed, |t, v| {
                Ok(vec![t.rope_2d(&v[0], &rows, &cols, 10.0)?])
            });
    }
}
recur::counting_test!(rope, super::check_rope);

fn check_attention(dev: &Arc<Recording>) {
    let seed = fresh_seed("attention");
    for dt in FLOAT_DTYPES {
        let forward = if dt == DType::BF16 {
            // bf16 runs the tensor-core forward.
            vec!["attention_fwd_tc_bf16".to_string()]
        } else {
            kernels(&["attention_fwd"], dt)
        };
        let backward = kernels(&["attention_bwd_dq", "attention_bwd_dkv"], dt);
        for (k, dims) in [[2, 97, 2, 32], [1, 97, 2, 64]].into_iter().enumerate() {
            let qkv = (0..3)
                .map(|i| randn(dims.to_vec(), 1.0, seed + 10 * k as u64 + i, dt))
                .collect();
            let opts = AttentionOpts::default().with_scale(0.3);
            OpCheck::new(format!("attention {dims:?} {dt}"), qkv)
                .launches(forward.clone(), backward.clone())
                .run(dev, seed, |t, v| {
                    Ok(vec![t.attention(&v[0], &v[1], &v[2], &opts)?])
                });
        }
    }
    // No kernel for dropout or head dim 16 (docs/dispatch.md): the reference runs.
    let qkv = |hd: usize| {
        (0..3)
            .map(|i| randn([2, 33, 2, hd], 1.0, seed + 50 + i, DType::F32))
            .collect::<Vec<_>>()
    };
    let dropout = AttentionOpts::default().with_dropout(0.25, seed, 3);
    OpCheck::new("attention with dropout (CPU fallback)", qkv(32))
        .launches(vec![], vec![])
        .run(dev, seed, |t, v| {
            Ok(vec![t.attention(&v[0], &v[1], &v[2], &dropout)?])
        });
    OpCheck::new("attention with head dim 16 (CPU fallback)", qkv(16))
        .launches(vec![], vec![])
        .run(dev, seed, |t, v| {
            Ok(vec![t.attention(
                &v[0],
                &v[1],
                &v[2],
                &AttentionOpts::default(),
            )?])
        });
}
recur::counting_test!(attention, super::check_attention);

fn check_norms(dev: &Arc<Recording>) {
    let seed = fresh_seed("norms");
    for dt in FLOAT_DTYPES {
        for (k, hidden) in [64usize, 200].into_iter().enumerate() {
            let width = if hidden <= 128 { "d128" } else { "d512" };
            let rms_fwd = kernel(&format!("step_rmsnorm_fwd_{width}"), dt);
            let rms_bwd = kernel(&format!("step_rmsnorm_bwd_{width}"), dt);
            let x = |i: u64| randn([2, 97, hidden], 1.5, seed + 10 * k as u64 + i, dt);
            OpCheck::new(format!("rms_norm [2, 97, {hidden}] {dt}"), vec![x(0)])
                .launches(vec![rms_fwd.clone()], vec![rms_bwd.clone()])
                .run(dev, seed, |t, v| Ok(vec![t.rms_norm(&v[0], 1e-5)?]));
            OpCheck::new(
                format!("residual rms_norm [2, 97, {hidden}] {dt}"),
                vec![x(1), x(2)],
            )
            .launches(vec![rms_fwd], vec![rms_bwd])
            .run(dev, seed, |t, v| {
                Ok(vec![t.residual_norm(&v[0], &v[1], Norm::rms(1e-5))?])
            });
            let (w, b) = (
                randn([hidden], 0.5, seed + 5, dt),
                randn([hidden], 0.5, seed + 6, dt),
            );
            let layer_bwd = vec![
                kernel(&format!("step_layernorm_bwd_{width}"), dt),
                kernel("step_layernorm_affine_reduce", dt),
            ];
            OpCheck::new(
                format!("residual layer_norm [2, 97, {hidden}] {dt}"),
                vec![x(3), x(4), w, b],
            )
            .launches(
                vec![kernel(&format!("step_layernorm_fwd_{width}"), dt)],
                layer_bwd,
            )
            .run(dev, seed, |t, v| {
                let norm = Norm::layer(&v[2], &v[3], 1e-5);
                Ok(vec![t.residual_norm(&v[0], &v[1], norm)?])
            });
        }
    }
}
recur::counting_test!(norms, super::check_norms);

// ---- losses -------------------------------------------------------------------------------------

fn check_losses(dev: &Arc<Recording>) {
    let seed = fresh_seed("losses");
    // 97 tokens a sequence, 11 classes, a few ignored labels.
    let labels = random_ids([2, 97], 11, 9, seed);
    for dt in FLOAT_DTYPES {
        let logits = randn([2, 97, 11], 2.0, seed + 1, dt);
        for (name, base) in [("softmax", "softmax_ce"), ("stablemax", "stablemax_ce")] {
            // The labels ride along as a second leaf, resident on the kernels like the logits.
            let inputs = vec![logits.clone(), labels.clone()];
            OpCheck::new(format!("{name} cross-entropy {dt}"), inputs)
                // The per-sequence losses are f32 whatever the logits' storage.
                .launches(
                    vec![kernel(&format!("{base}_fwd"), dt)],
                    vec![kernel(&format!("{base}_bwd"), dt)],
                )
                .run(dev, seed, move |t, v| {
                    Ok(vec![if name == "softmax" {
                        t.softmax_cross_entropy(&v[0], v[1].value())?
                    } else {
                        t.stablemax_cross_entropy(&v[0], v[1].value())?
                    }])
                });
        }
        let x = randn([2, 97, 5], 3.0, seed + 2, dt);
        let targets = Tensor::randn([2, 97, 5], 1.0, seed + 3, DType::F64)
            .unwrap()
            .to_vec_f64()
            .unwrap()
            .into_iter()
            .map(|z| 1.0 / (1.0 + (-z).exp()))
            .collect::<Vec<_>>();
        let targets = Tensor::from_vec(targets, [2, 97, 5])
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        OpCheck::new(
            format!("bce_with_logits, soft targets {dt}"),
            vec![x, targets],
        )
        .launches(
            kernels(&["bce_with_logits_fwd"], dt),
            kernels(&["bce_with_logits_bwd"], dt),
        )
        .run(dev, seed, |t, v| Ok(vec![t.bce_with_logits(&v[0], &v[1])?]));
    }
    // A label outside 0..V (and not −100) is the reference's error, not a NaN loss.
    let mut bad = labels.to_vec_i32().unwrap();
    bad[100] = 11;
    let bad = Tensor::from_vec(bad, [2, 97]).unwrap();
    let tape = Tape::with_compute(dev.compute());
    let logits = tape.leaf(randn([2, 97, 11], 1.0, seed, DType::F32));
    dev.take_names();
    match tape.stablemax_cross_entropy(&logits, &bad) {
        Err(Error::Arg { msg, .. }) => assert!(msg.contains("label 11"), "{msg}"),
        other => panic!("expected an argument error naming the label, got {other:?}"),
    }
    assert!(
        dev.take_names().is_empty(),
        "nothing is launched for bad labels"
    );
}
recur::counting_test!(losses, super::check_losses);

// ---- a whole block ------------------------------------------------------------------------------

/// The HRM/TRM post-norm block with RoPE, forward and backward to every parameter gradient:
/// a training step's worth of ops on the kernels equals the same step on the CPU.
fn check_post_norm_block(dev: &Arc<Recording>) {
    let seed = fresh_seed("post_norm_block");
    for (k, num_heads) in [2usize, 1].into_iter().enumerate() {
        let what = format!(
            "PostNormBlock hidden 64, head dim {} on {} (seed {seed})",
            64 / num_heads,
            dev.name()
        );
        let cfg = BlockConfig {
            hidden_size: 64,
            num_heads,
            expansion: 4.0,
            rms_norm_eps: 1e-5,
        };
        let mut params = Params::new();
        let block =
            PostNormBlock::new(&mut params, "L_level.layers.0.", cfg, seed + k as u64).unwrap();
        let rope = RopeTable::one_d(97, 64 / num_heads, 10000.0).unwrap();
        let x = randn([2, 97, 64], 1.0, seed + 10 + k as u64, DType::F32);
        let weights = randn([2, 97, 64], 1.0, seed + 20 + k as u64, DType::F32);

        let step = |compute: Compute| {
            let tape = Tape::with_compute(compute);
            let h = tape.leaf(x.clone());
            let out = block.forward(&tape, &params, &h, Some(&rope)).unwrap();
            let weighted = tape.mul(&out, &Var::constant(weights.clone())).unwrap();
            let loss = tape.sum_all(&weighted).unwrap();
            let grads = tape.backward(&loss).unwrap();
            let mut param_grads: Vec<(String, Tensor)> = grads
                .param_grads()
                .map(|(id, g)| (params.get(id).name.clone(), g.clone()))
                .collect();
            param_grads.sort_by(|a, b| a.0.cmp(&b.0));
            (
                loss.value().clone(),
                out.value().clone(),
                grads.get(&h).unwrap().clone(),
                param_grads,
            )
        };
        let (cpu_loss, cpu_out, cpu_dx, cpu_grads) = step(Compute::Cpu);
        dev.take_names();
        let (loss, out, dx, grads) = step(dev.compute());
        let launched = dev.take_names();

        assert_close(&format!("{what}: loss"), &loss, &cpu_loss, 1e-5);
        assert_close(&format!("{what}: output"), &out, &cpu_out, 1e-5);
        assert_close(&format!("{what}: input gradient"), &dx, &cpu_dx, 1e-5);
        let names: Vec<&String> = grads.iter().map(|(n, _)| n).collect();
        let cpu_names: Vec<&String> = cpu_grads.iter().map(|(n, _)| n).collect();
        assert_eq!(names, cpu_names, "{what}: parameters with gradients");
        assert_eq!(
            names.len(),
            4,
            "{what}: qkv, o, gate_up and down projections"
        );
        for ((name, g), (_, c)) in grads.iter().zip(&cpu_grads) {
            assert_close(&format!("{what}: gradient of {name}"), g, c, 1e-5);
        }
        for expected in [
            "linear_fwd_f32",
            "narrow_fwd_f32",
            "rope_fwd_f32",
            "attention_fwd_f32",
            "step_rmsnorm_fwd_d128_f32",
            "swiglu_fwd_f32",
            "linear_input_bwd_f32",
            "linear_weight_bwd_f32",
            "narrow_bwd_f32",
            "rope_bwd_f32",
            "attention_bwd_dq_f32",
            "attention_bwd_dkv_f32",
            "step_rmsnorm_bwd_d128_f32",
            "swiglu_bwd_f32",
        ] {
            assert!(
                launched.iter().any(|k| k == expected),
                "{what}: {expected} was never launched; launched {launched:?}"
            );
        }
    }
}
recur::counting_test!(post_norm_block, super::check_post_norm_block);

// ---- compute selection and errors ---------------------------------------------------------------

#[test]
fn device_flags_parse_and_cuda_without_a_gpu_is_an_error() {
    assert!(matches!(Compute::from_flag("cpu").unwrap(), Compute::Cpu));
    assert!(
        Tape::new().compute().kernels().is_none(),
        "tapes default to the CPU"
    );
    let emu = Compute::from_flag("emu").unwrap();
    assert!(emu.name().starts_with("emu"), "{}", emu.name());
    assert!(matches!(
        Compute::from_flag("gpu"),
        Err(Error::Arg { op: "--device", .. })
    ));
    match (Cuda::new(0), Compute::from_flag("cuda")) {
        (Ok(_), Ok(cuda)) => assert!(cuda.name().starts_with("cuda"), "{}", cuda.name()),
        (
            Err(_),
            Err(Error::Device {
                backend: "cuda",
                msg,
            }),
        ) => {
            assert!(msg.contains("--device cuda"), "{msg}")
        }
        (gpu, flag) => panic!(
            "--device cuda disagrees with Cuda::new: {:?} vs {flag:?}",
            gpu.map(|g| g.name())
        ),
    }
    // The CLI default is the GPU exactly when one is usable.
    let auto = Compute::auto();
    assert_eq!(Cuda::new(0).is_ok(), auto.kernels().is_some(), "{auto:?}");
}

#[test]
fn f64_on_the_kernels_is_a_dtype_error() {
    let tape = Tape::with_compute(Compute::emu());
    let x = tape.leaf(Tensor::ones([3, 4], DType::F64));
    match tape.silu(&x) {
        Err(Error::DType {
            got: DType::F64, ..
        }) => {}
        other => panic!("expected a dtype error, got {other:?}"),
    }
}

#[test]
fn no_grad_runs_on_the_kernels_and_records_nothing() {
    let dev = Counting::new(Arc::new(Emu::default()));
    let tape = Tape::with_compute(dev.compute());
    let x = tape.leaf(randn([5, 64], 1.0, fresh_seed("no_grad"), DType::F32));
    let y = tape.no_grad(|| tape.rms_norm(&x, 1e-5)).unwrap();
    assert!(!y.requires_grad() && tape.is_empty());
    assert_eq!(dev.take_names(), ["step_rmsnorm_fwd_d128_f32"]);
    let want = Tape::new().rms_norm(&x.detach(), 1e-5).unwrap();
    assert_close("no_grad rms_norm", y.value(), want.value(), 1e-5);
}
