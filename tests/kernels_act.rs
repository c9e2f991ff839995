//! kernels/act.cu against the CPU reference `device::cpu::act` (today's host ACT code): the row
//! reset (f32, bf16, i32; fresh rows and a repeated init vector; out of place and in place), steps
//! and halting (both rules, training and evaluation, exploration draws equal to the host's Philox
//! draws), HRM's Q-continue target, the per-sequence scores with the halted sequences' metrics,
//! the metrics buffer, and evaluation's per-depth record. Integers and flags must match exactly,
//! the f64 metric sums to 1e-12.
//!
//! Inputs are drawn from a fresh seed per run (printed; `RECUR_TEST_SEED` repeats it), at ragged
//! batch and sequence sizes, and every output is poisoned before the launch.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::device::cpu::act::{self as reference, Fresh, HaltRule, SCORE_METRICS};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::act::{self as k, DeviceScores, HaltInputs};
use recur::rng::philox;
use recur::{DType, Tensor};

fn fresh_seed(test: &str) -> u64 {
    let seed = std::env::var("RECUR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    eprintln!("{test}: seed {seed} (RECUR_TEST_SEED={seed} repeats this run)");
    seed
}

fn up(dev: &dyn KernelBackend, t: &Tensor) -> DeviceTensor {
    DeviceTensor::upload(dev, t).unwrap()
}

fn down(dev: &dyn KernelBackend, t: &DeviceTensor) -> Tensor {
    t.download(dev).unwrap()
}

fn ints(v: Vec<i32>) -> Tensor {
    let n = v.len();
    Tensor::from_vec(v, [n]).unwrap()
}

fn flags(rng: &mut StdRng, b: usize, p_one: f64) -> Tensor {
    ints((0..b).map(|_| rng.random_bool(p_one) as i32).collect())
}

fn assert_same_bytes(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert!(
        got.to_bytes().unwrap() == want.to_bytes().unwrap(),
        "{what}: {:?}\n  want {:?}",
        got.to_vec_f64().ok(),
        want.to_vec_f64().ok()
    );
}

/// A random tensor of `dtype` (ids in 0..9 for i32).
fn random(rng: &mut StdRng, dims: &[usize], dtype: DType) -> Tensor {
    match dtype {
        DType::I32 => Tensor::from_vec(
            (0..dims.iter().product::<usize>())
                .map(|_| rng.random_range(0..9))
                .collect::<Vec<i32>>(),
            dims.to_vec(),
        )
        .unwrap(),
        _ => Tensor::randn(dims.to_vec(), 1.0, rng.random(), dtype).unwrap(),
    }
}

/// `t` (f32 or bf16, `[B]`) with element `at` NaN: every comparison with it is false, on the
/// host and on the device alike.
fn with_nan(t: Tensor, at: usize) -> Tensor {
    let mut v = t.to_vec_f32().unwrap();
    v[at] = f32::NAN;
    let dtype = t.dtype();
    Tensor::from_vec(v, t.shape().clone())
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

// ---- the row reset ------------------------------------------------------------------------------

fn check_select_rows(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("select_rows"));
    // (B, row dims, init period): the carry's states [B, L, H], the batch's [B, S] and [B].
    let cases: [(usize, &[usize], usize); 5] = [
        (1, &[1], 1),
        (3, &[7], 7),
        (5, &[17, 32], 32),
        (7, &[3, 97], 97),
        (2, &[], 1),
    ];
    for dtype in [DType::F32, DType::BF16, DType::I32] {
        for &(b, row, period) in &cases {
            let mut dims = vec![b];
            dims.extend_from_slice(row);
            let kept = random(&mut rng, &dims, dtype);
            let new = random(&mut rng, &dims, dtype);
            let init = random(&mut rng, &[period], dtype);
            let take = flags(&mut rng, b, 0.5);
            let (take_d, kept_d) = (up(dev, &take), up(dev, &kept));
            for repeated in [false, true] {
                if repeated && dims.len() == 1 {
                    continue; // a [B] tensor has one-element rows: nothing to repeat
                }
                let what = format!("select_rows {dtype} {dims:?} repeated={repeated}");
                let fresh = if repeated {
                    Fresh::Repeated(&init)
                } else {
                    Fresh::Rows(&new)
                };
                let fresh_d = up(dev, fresh.tensor());
                let rows = fresh.with(&fresh_d);
                let want = reference::select_rows(&take, fresh, &kept).unwrap();
                let mut out = DeviceTensor::poisoned(dev, dims.clone(), dtype).unwrap();
                k::select_rows_into(dev, &take_d, rows, &kept_d, &mut out).unwrap();
                assert_same_bytes(&what, &down(dev, &out), &want);

                // In place: the output is the kept tensor's own memory.
                let own = up(dev, &kept);
                let mut alias = own.clone();
                k::select_rows_into(dev, &take_d, rows, &own, &mut alias).unwrap();
                assert_same_bytes(&format!("{what} in place"), &down(dev, &own), &want);
            }
        }
    }
    // Every row fresh and none fresh, with an f32 state.
    let kept = random(&mut rng, &[4, 6], DType::F32);
    let new = random(&mut rng, &[4, 6], DType::F32);
    for all in [0, 1] {
        let take = ints(vec![all; 4]);
        let got = k::select_rows(
            dev,
            &up(dev, &take),
            Fresh::Rows(&up(dev, &new)),
            &up(dev, &kept),
        )
        .unwrap();
        let want = if all == 1 { &new } else { &kept };
        assert_same_bytes(&format!("select_rows all={all}"), &down(dev, &got), want);
    }
}
recur::kernel_test!(select_rows, super::check_select_rows);

/// The reset rejects a dtype mix and a mismatched row, as the reference does.
fn check_select_rows_errors(dev: &dyn KernelBackend) {
    let take = up(dev, &ints(vec![1, 0]));
    let kept = up(dev, &Tensor::zeros([2, 4], DType::F32));
    let bf = up(dev, &Tensor::zeros([2, 4], DType::BF16));
    assert!(k::select_rows(dev, &take, Fresh::Rows(&bf), &kept).is_err());
    let odd = up(dev, &Tensor::zeros([3], DType::F32));
    assert!(k::select_rows(dev, &take, Fresh::Repeated(&odd), &kept).is_err());
    let short = up(dev, &ints(vec![1]));
    assert!(k::select_rows(dev, &short, Fresh::Rows(&kept), &kept).is_err());
}
recur::kernel_test!(select_rows_errors, super::check_select_rows_errors);

// ---- steps and halting --------------------------------------------------------------------------

fn check_halt(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("halt"));
    for dtype in [DType::F32, DType::BF16] {
        for b in [1usize, 5, 37, 300] {
            for max_steps in [1usize, 2, 5, 16] {
                for prob in [0.0, 0.1, 0.5, 1.0] {
                    for (train, halt_only) in [(true, true), (true, false), (false, true)] {
                        let rule = HaltRule {
                            max_steps,
                            train,
                            halt_only,
                            exploration_prob: prob,
                        };
                        // Seeds and segments above 2^32 exercise the high words of the draw.
                        let (seed, segment) =
                            (rng.random::<u64>(), rng.random_range(0..1u64 << 40));
                        let draw = ints(reference::draw_words(seed, segment).to_vec());
                        let q_halt =
                            with_nan(Tensor::randn([b], 2.0, rng.random(), dtype).unwrap(), 0);
                        let q_cont =
                            with_nan(Tensor::randn([b], 2.0, rng.random(), dtype).unwrap(), b / 2);
                        let prev_halted = flags(&mut rng, b, 0.3);
                        let prev_steps = ints(
                            (0..b)
                                .map(|_| rng.random_range(0..=max_steps as i32))
                                .collect(),
                        );
                        let (want_h, want_s) = reference::halt(
                            &q_halt,
                            &q_cont,
                            &prev_halted,
                            &prev_steps,
                            &draw,
                            rule,
                        )
                        .unwrap();
                        let (qh, qc, ph, ps, dr) = (
                            up(dev, &q_halt),
                            up(dev, &q_cont),
                            up(dev, &prev_halted),
                            up(dev, &prev_steps),
                            up(dev, &draw),
                        );
                        let inputs = HaltInputs {
                            q_halt: &qh,
                            q_continue: &qc,
                            prev_halted: &ph,
                            prev_steps: &ps,
                            draw: &dr,
                        };
                        let mut halted = DeviceTensor::poisoned(dev, [b], DType::I32).unwrap();
                        let mut steps = DeviceTensor::poisoned(dev, [b], DType::I32).unwrap();
                        k::halt_into(dev, &inputs, rule, &mut halted, &mut steps).unwrap();
                        let what = format!("halt {dtype} B={b} {rule:?}");
                        assert_same_bytes(&format!("{what}: steps"), &down(dev, &steps), &want_s);
                        assert_same_bytes(&format!("{what}: halted"), &down(dev, &halted), &want_h);
                    }
                }
            }
        }
    }
}
recur::kernel_test!(halt, super::check_halt);

/// With every Q head asking to halt and exploration always on, a slot halts exactly when it has
/// run its explored minimum `randint(2, max + 1)`: the kernel's draws are the host's Philox
/// draws (elements 2·slot and 2·slot + 1 of the stream (seed, segment)).
fn check_exploration_draws(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("exploration_draws"));
    let (b, max_steps) = (257usize, 9usize);
    let rule = HaltRule {
        max_steps,
        train: true,
        halt_only: true,
        exploration_prob: 1.0,
    };
    for _ in 0..4 {
        let (seed, segment) = (rng.random::<u64>(), rng.random::<u64>());
        let q = up(dev, &Tensor::full([b], 5.0, DType::F32));
        let ph = up(dev, &ints(vec![0; b]));
        let prev: Vec<i32> = (0..b)
            .map(|_| rng.random_range(0..max_steps as i32 - 1))
            .collect();
        let ps = up(dev, &ints(prev.clone()));
        let dr = up(dev, &ints(reference::draw_words(seed, segment).to_vec()));
        let inputs = HaltInputs {
            q_halt: &q,
            q_continue: &q,
            prev_halted: &ph,
            prev_steps: &ps,
            draw: &dr,
        };
        let (halted, _) = k::halt(dev, &inputs, rule).unwrap();
        let halted = down(dev, &halted).to_vec_i32().unwrap();
        let mut drawn = [0usize; 10];
        for slot in 0..b {
            let u = philox::uniform(seed, segment, 2 * slot as u64 + 1) as f64;
            let least = 2 + ((u * (max_steps - 1) as f64) as u32).min(max_steps as u32 - 2);
            assert_eq!(
                least,
                reference::min_halt_steps(seed, segment, slot, 1.0, max_steps)
            );
            drawn[least as usize] += 1;
            let steps = prev[slot] as u32 + 1;
            assert_eq!(halted[slot], (steps >= least) as i32, "slot {slot}");
        }
        assert_eq!(drawn[0] + drawn[1], 0);
        assert!(drawn[2..=max_steps].iter().all(|&n| n > 0), "{drawn:?}");
    }
}
recur::kernel_test!(exploration_draws, super::check_exploration_draws);

// ---- HRM's Q-continue target --------------------------------------------------------------------

fn check_q_continue_target(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("q_continue_target"));
    for dtype in [DType::F32, DType::BF16] {
        for b in [1usize, 6, 300] {
            let max_steps = 4;
            let next_halt = Tensor::randn([b], 3.0, rng.random(), dtype).unwrap();
            let mut cont = Tensor::randn([b], 3.0, rng.random(), DType::F32)
                .unwrap()
                .to_vec_f32()
                .unwrap();
            cont[b / 2] = f32::NAN; // max() takes the other operand, on both sides
            let next_cont = Tensor::from_vec(cont, [b])
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let steps = ints(
                (0..b)
                    .map(|_| rng.random_range(1..=max_steps as i32))
                    .collect(),
            );
            let want = reference::q_continue_target(&next_halt, &next_cont, &steps, max_steps)
                .unwrap()
                .to_vec_f64()
                .unwrap();
            let mut got = DeviceTensor::poisoned(dev, [b], DType::F32).unwrap();
            k::q_continue_target_into(
                dev,
                &up(dev, &next_halt),
                &up(dev, &next_cont),
                &up(dev, &steps),
                max_steps,
                &mut got,
            )
            .unwrap();
            let got = down(dev, &got).to_vec_f64().unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-6, "{dtype} B={b} slot {i}: {g} vs {w}");
            }
        }
    }
}
recur::kernel_test!(q_continue_target, super::check_q_continue_target);

// ---- scores and metrics -------------------------------------------------------------------------

/// Labels with about a fifth ignored and sequence 1 entirely ignored; predictions equal to the
/// label with probability `p_right`, so some sequences are entirely right.
fn scored_batch(rng: &mut StdRng, b: usize, s: usize, p_right: f64) -> (Tensor, Tensor) {
    let mut labels = Vec::with_capacity(b * s);
    let mut preds = Vec::with_capacity(b * s);
    for i in 0..b * s {
        let y = rng.random_range(0..6);
        let ignored = i / s.max(1) == 1 || rng.random_bool(0.2);
        labels.push(if ignored { -100 } else { y });
        preds.push(if rng.random_bool(p_right) {
            y
        } else {
            rng.random_range(0..6)
        });
    }
    (
        Tensor::from_vec(preds, [b, s]).unwrap(),
        Tensor::from_vec(labels, [b, s]).unwrap(),
    )
}

fn check_score(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("score"));
    for dtype in [DType::F32, DType::BF16] {
        for &(b, s) in &[(1usize, 1usize), (3, 7), (37, 81), (300, 97), (9, 2)] {
            let what = format!("score {dtype} B={b} S={s}");
            let (preds, labels) = scored_batch(&mut rng, b, s, 0.97);
            let q_halt = with_nan(Tensor::randn([b], 1.0, rng.random(), dtype).unwrap(), b - 1);
            let halted = flags(&mut rng, b, 0.6);
            let steps = ints((0..b).map(|_| rng.random_range(1..=16)).collect());
            let want = reference::score(&preds, &labels, &q_halt, &halted, &steps).unwrap();
            let mut got = DeviceScores {
                valid: DeviceTensor::poisoned(dev, [b], DType::I32).unwrap(),
                correct: DeviceTensor::poisoned(dev, [b], DType::I32).unwrap(),
                seq_correct: DeviceTensor::poisoned(dev, [b], DType::F32).unwrap(),
                metrics: DeviceTensor::poisoned(dev, [SCORE_METRICS], DType::F64).unwrap(),
            };
            k::score_into(
                dev,
                &up(dev, &preds),
                &up(dev, &labels),
                &up(dev, &q_halt),
                &up(dev, &halted),
                &up(dev, &steps),
                &mut got,
            )
            .unwrap();
            assert_same_bytes(
                &format!("{what}: valid"),
                &down(dev, &got.valid),
                &want.valid,
            );
            assert_same_bytes(
                &format!("{what}: correct"),
                &down(dev, &got.correct),
                &want.correct,
            );
            assert_same_bytes(
                &format!("{what}: seq_correct"),
                &down(dev, &got.seq_correct),
                &want.seq_correct,
            );
            let (g, w) = (
                down(dev, &got.metrics).to_vec_f64().unwrap(),
                want.metrics.to_vec_f64().unwrap(),
            );
            for (slot, (g, w)) in g.iter().zip(&w).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "{what}: metric {slot}: {g} vs {w}"
                );
            }
            if b >= 37 {
                assert!(w[0] > 0.0, "{what}: some halted sequence is scored");
            }
        }
    }
}
recur::kernel_test!(score, super::check_score);

fn check_metrics(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("metrics"));
    let scores = Tensor::from_vec(
        (0..SCORE_METRICS)
            .map(|_| rng.random::<f64>() * 100.0)
            .collect::<Vec<_>>(),
        [SCORE_METRICS],
    )
    .unwrap();
    let loss = |rng: &mut StdRng| Tensor::scalar(rng.random::<f64>() * 10.0, DType::F32);
    let (lm, qh, qc) = (loss(&mut rng), loss(&mut rng), loss(&mut rng));
    for with_continue in [false, true] {
        let q_cont = with_continue.then_some(&qc);
        let want = reference::metrics(&scores, &lm, &qh, q_cont).unwrap();
        let mut got = DeviceTensor::poisoned(dev, [reference::ACT_METRICS], DType::F64).unwrap();
        let qc_d = up(dev, &qc);
        k::metrics_into(
            dev,
            &up(dev, &scores),
            &up(dev, &lm),
            &up(dev, &qh),
            with_continue.then_some(&qc_d),
            &mut got,
        )
        .unwrap();
        assert_same_bytes(
            &format!("metrics continue={with_continue}"),
            &down(dev, &got),
            &want,
        );
    }
}
recur::kernel_test!(metrics, super::check_metrics);

// ---- evaluation's record ------------------------------------------------------------------------

/// Every depth of an evaluation in turn, the halt steps and record carried from one depth to the
/// next on the device, against the reference doing the same on the host.
fn check_eval_depth(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(fresh_seed("eval_depth"));
    for dtype in [DType::F32, DType::BF16] {
        for b in [1usize, 7, 300] {
            for (max_steps, halt_only) in [(1usize, true), (4, true), (5, false)] {
                let rule = HaltRule {
                    max_steps,
                    train: false,
                    halt_only,
                    exploration_prob: 0.0,
                };
                let len = reference::eval_record_len(max_steps);
                let seed_record: Vec<i32> = (0..len).map(|_| rng.random_range(0..1000)).collect();
                let (mut halt_h, mut record_h) = (ints(vec![0; b]), ints(seed_record));
                let (mut halt_d, mut record_d) = (up(dev, &halt_h), up(dev, &record_h));
                for depth in 0..max_steps {
                    let what = format!("eval_depth {dtype} B={b} depth {depth} of {max_steps}");
                    let valid: Vec<i32> = (0..b).map(|_| rng.random_range(0..20)).collect();
                    let correct = ints(
                        valid
                            .iter()
                            .map(|&v| {
                                if rng.random_bool(0.5) {
                                    v
                                } else {
                                    rng.random_range(0..=v)
                                }
                            })
                            .collect(),
                    );
                    let valid = ints(valid);
                    let q_halt = Tensor::randn([b], 1.0, rng.random(), dtype).unwrap();
                    let q_cont = Tensor::randn([b], 1.0, rng.random(), dtype).unwrap();
                    let x = reference::EvalDepth {
                        valid: &valid,
                        correct: &correct,
                        q_halt: &q_halt,
                        q_continue: &q_cont,
                        prev_halt_step: &halt_h,
                        prev_record: &record_h,
                    };
                    (halt_h, record_h) = reference::eval_depth(x, depth, rule).unwrap();
                    let (v, c, qh, qc) = (
                        up(dev, &valid),
                        up(dev, &correct),
                        up(dev, &q_halt),
                        up(dev, &q_cont),
                    );
                    let x = k::EvalDepth {
                        valid: &v,
                        correct: &c,
                        q_halt: &qh,
                        q_continue: &qc,
                        prev_halt_step: &halt_d,
                        prev_record: &record_d,
                    };
                    let mut halt_out = DeviceTensor::poisoned(dev, [b], DType::I32).unwrap();
                    let mut record_out = DeviceTensor::poisoned(dev, [len], DType::I32).unwrap();
                    k::eval_depth_into(dev, x, depth, rule, &mut halt_out, &mut record_out)
                        .unwrap();
                    (halt_d, record_d) = (halt_out, record_out);
                    assert_same_bytes(&format!("{what}: halt steps"), &down(dev, &halt_d), &halt_h);
                    assert_same_bytes(&format!("{what}: record"), &down(dev, &record_d), &record_h);
                }
                // Every slot has a halt step after the last depth.
                assert!(halt_h.to_vec_i32().unwrap().iter().all(|&h| h >= 1));
            }
        }
    }
}
recur::kernel_test!(eval_depth, super::check_eval_depth);
