//! lattice.cu (one LDT lattice round per launch) against `device::cpu::lattice::lattice_step`:
//! hand-built boards for every status, random batches at ragged (B, S, C) in f32 and bf16 with
//! i32 and float givens, keep logits on the exact kill boundary, NaN-poisoned outputs. The new
//! state, n_alive, the flags and the decided cell must match exactly; the sampled digit may
//! differ only where u·W lies within f64 `exp` rounding of a running-sum boundary (never seen;
//! the test allows one in a thousand decisions and prints the count). Plus the error cases.

mod basic_kernels;

use basic_kernels::{poisoned, random, upload};
use recur::device::cpu::lattice::{lattice_step, ChainStatus, LatticeHeads, LatticeParams};
use recur::device::{DeviceTensor, KernelBackend};
use recur::kernels::lattice::{self as k, DeviceLatticeHeads, DeviceLatticeStep};
use recur::{DType, Tensor};

/// A round's host inputs.
struct Round {
    state: Tensor,
    given: Tensor,
    keep: Tensor,
    value: Tensor,
    conflict: Tensor,
}

impl Round {
    /// Inputs from f64 data, stored as `dtype` (`given` as i32 when `int_given`).
    fn from_data(
        [b, s, c]: [usize; 3],
        data: [Vec<f64>; 5],
        dtype: DType,
        int_given: bool,
    ) -> Round {
        let [state, given, keep, value, conflict] = data;
        let float = |v: Vec<f64>, shape: &[usize]| {
            Tensor::from_vec(v, shape.to_vec())
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        let given = if int_given {
            let flags: Vec<i32> = given.iter().map(|&g| i32::from(g > 0.5)).collect();
            Tensor::from_vec(flags, [b, s]).unwrap()
        } else {
            float(given, &[b, s])
        };
        Round {
            state: float(state, &[b, s, c]),
            given,
            keep: float(keep, &[b, s, c]),
            value: float(value, &[b, s, c]),
            conflict: float(conflict, &[b]),
        }
    }

    /// Random chains: about 84% of candidates alive, 11% given cells, keep logits N(1, 2²) (about
    /// 5% killed at θ = 0.1) with a few placed exactly on the f32 kill threshold and just below
    /// it, value logits N(0, 2²), conflict logits N(0, 1). Every fifth chain starts as one-hot
    /// cells (mostly solved), so every status occurs.
    fn random(
        dims: [usize; 3],
        dtype: DType,
        int_given: bool,
        seed: u64,
        p: &LatticeParams,
    ) -> Round {
        let [b, s, c] = dims;
        let normal = |n: usize, k: u64| {
            random([n], 1.0, seed * 16 + k, DType::F64)
                .to_vec_f64()
                .unwrap()
        };
        let (coins, cell_coins) = (normal(b * s * c, 0), normal(b * s, 1));
        let state: Vec<f64> = (0..b * s * c)
            .map(|i| {
                let (chain, value) = (i / (s * c), i % c);
                let alive = if chain % 5 == 0 {
                    value == (i / c) % c
                } else {
                    coins[i] > -1.0
                };
                f64::from(u8::from(alive))
            })
            .collect();
        let given = cell_coins
            .iter()
            .map(|&x| f64::from(u8::from(x > 1.2)))
            .collect();
        let (keep_min, _) = k::logit_thresholds(p);
        let below = f32::from_bits(keep_min.to_bits().wrapping_add(if keep_min < 0.0 {
            1
        } else {
            u32::MAX
        }));
        let keep = normal(b * s * c, 2)
            .iter()
            .enumerate()
            .map(|(i, &x)| match i % 37 {
                3 => keep_min as f64,
                4 => below as f64,
                _ => 1.0 + 2.0 * x,
            })
            .collect();
        let value = normal(b * s * c, 3).iter().map(|x| 2.0 * x).collect();
        let conflict = normal(b, 4);
        Round::from_data(
            dims,
            [state, given, keep, value, conflict],
            dtype,
            int_given,
        )
    }

    fn dims(&self) -> [usize; 3] {
        let d = self.state.dims();
        [d[0], d[1], d[2]]
    }

    /// Runs the kernel on poisoned outputs (or the allocating launcher), compares with the
    /// reference, and returns (decisions made, digits that differ).
    fn check(
        &self,
        dev: &dyn KernelBackend,
        p: &LatticeParams,
        into: bool,
        what: &str,
    ) -> (usize, usize) {
        let heads = LatticeHeads {
            keep_logits: &self.keep,
            value_logits: &self.value,
            conflict_logits: &self.conflict,
        };
        let want = lattice_step(&self.state, &self.given, &heads, p).unwrap();

        let [b, s, c] = self.dims();
        let up = |t: &Tensor| upload(dev, t);
        let (state, given) = (up(&self.state), up(&self.given));
        let (keep, value, conflict) = (up(&self.keep), up(&self.value), up(&self.conflict));
        let d_heads = DeviceLatticeHeads {
            keep_logits: &keep,
            value_logits: &value,
            conflict_logits: &conflict,
        };
        let got = if into {
            let mut out = DeviceLatticeStep {
                state: poisoned(dev, [b, s, c], self.state.dtype()),
                n_alive: poisoned(dev, [b, s], DType::I32),
                flags: poisoned(dev, [b, 3], DType::I32),
                decision: poisoned(dev, [b, 2], DType::I32),
            };
            k::lattice_step_into(dev, &state, &given, &d_heads, p, &mut out).unwrap();
            out
        } else {
            k::lattice_step(dev, &state, &given, &d_heads, p).unwrap()
        };
        let down = |t: &DeviceTensor| t.download(dev).unwrap();
        let n_alive = down(&got.n_alive).to_vec_i32().unwrap();
        assert_eq!(
            n_alive,
            want.n_alive.to_vec_i32().unwrap(),
            "{what}: n_alive"
        );
        let chains = k::chain_statuses(&down(&got.flags), &down(&got.decision)).unwrap();
        let new_state = down(&got.state).to_vec_f64().unwrap();
        let want_state = want.state.to_vec_f64().unwrap();
        let (mut decisions, mut digit_mismatches) = (0, 0);
        for (chain, (g, w)) in chains.iter().zip(&want.chains).enumerate() {
            let same_but_digit =
                |x: &ChainStatus| (x.empty, x.conflict, x.solved, x.decision.map(|d| d.cell));
            assert_eq!(
                same_but_digit(g),
                same_but_digit(w),
                "{what}: chain {chain} status"
            );
            let span = chain * s * c..(chain + 1) * s * c;
            let mut skip_cell = None;
            if let (Some(gd), Some(wd)) = (g.decision, w.decision) {
                decisions += 1;
                if gd.digit != wd.digit {
                    digit_mismatches += 1;
                    skip_cell = Some(gd.cell);
                }
            }
            for (i, (x, y)) in new_state[span.clone()]
                .iter()
                .zip(&want_state[span])
                .enumerate()
            {
                if skip_cell != Some(i / c) {
                    assert_eq!(
                        x,
                        y,
                        "{what}: chain {chain} state at cell {}, value {}",
                        i / c,
                        i % c
                    );
                }
            }
        }
        (decisions, digit_mismatches)
    }
}

fn params() -> [LatticeParams; 3] {
    [
        LatticeParams::eval(11, 0),
        LatticeParams::train(12, 3),
        LatticeParams {
            kill_threshold: 0.5,
            conflict_threshold: 0.53,
            temperature: 0.7,
            seed: 0xdead_beef_1234,
            round: 1 << 40,
        },
    ]
}

fn check_lattice_random(dev: &dyn KernelBackend) {
    let shapes = [
        [64, 81, 9],
        [5, 1, 1],
        [7, 7, 3],
        [3, 33, 4],
        [2, 300, 5],
        [4, 40, 30],
    ];
    let (mut decisions, mut mismatches) = (0, 0);
    for (d, dtype) in [DType::F32, DType::BF16].into_iter().enumerate() {
        for (i, dims) in shapes.into_iter().enumerate() {
            for (j, p) in params().iter().enumerate() {
                let int_given = (i + j + d) % 2 == 0;
                let seed = (100 * d + 10 * i + j) as u64;
                let round = Round::random(dims, dtype, int_given, seed, p);
                let what = format!("{dtype} {dims:?} params {j} int_given {int_given}");
                let (n, m) = round.check(dev, p, (i + j) % 2 == 0, &what);
                decisions += n;
                mismatches += m;
            }
        }
    }
    println!(
        "lattice: {decisions} decisions, {mismatches} sampled digits differ from the reference"
    );
    assert!(
        decisions > 100,
        "the random batches must exercise the decision"
    );
    assert!(
        mismatches * 1000 <= decisions,
        "{mismatches} of {decisions} digits differ"
    );
}
recur::kernel_test!(lattice_random, super::check_lattice_random);

/// Five one-chain boards of 3 cells × 4 values, one per status, with their expected results.
fn check_lattice_boards(dev: &dyn KernelBackend) {
    const KEEP: f64 = 5.0;
    const KILL: f64 = -5.0;
    let (b, s, c) = (5, 3, 4);
    let mut data: [Vec<f64>; 5] = Default::default();
    // (cells' candidates, given cells, killed (cell, value) pairs, value logits, conflict logit)
    type Board<'a> = (
        &'a [&'a [usize]],
        &'a [usize],
        &'a [(usize, usize)],
        [f64; 4],
        f64,
    );
    let boards: [Board; 5] = [
        // solved: every cell a singleton, the head quiet
        (&[&[0], &[1], &[2]], &[], &[], [0.0; 4], -5.0),
        // empty: cell 1 loses its only candidate
        (&[&[0], &[1], &[2]], &[], &[(1, 1)], [0.0; 4], -5.0),
        // the conflict head fires (σ(5) > 0.6) on a board that is otherwise undecided
        (&[&[0, 1], &[1], &[2]], &[], &[], [0.0; 4], 5.0),
        // one undecided cell (1), value 2 carries all the weight: decision (1, 2)
        (
            &[&[0], &[1, 2, 3], &[3]],
            &[],
            &[],
            [0.0, -60.0, 60.0, -60.0],
            -5.0,
        ),
        // kills everywhere: the given cell 0 keeps both candidates, cell 2 drops to one, so
        // cell 0 is the only undecided one: decision (0, 3)
        (
            &[&[1, 3], &[0], &[2, 3]],
            &[0],
            &[(0, 1), (0, 3), (2, 3)],
            [0.0, -60.0, 0.0, 60.0],
            -5.0,
        ),
    ];
    for (alive, given, kills, logits, conflict) in boards {
        for (cell, candidates) in alive.iter().enumerate() {
            for (v, logit) in logits.iter().enumerate() {
                data[0].push(f64::from(u8::from(candidates.contains(&v))));
                data[2].push(if kills.contains(&(cell, v)) {
                    KILL
                } else {
                    KEEP
                });
                data[3].push(*logit);
            }
            data[1].push(f64::from(u8::from(given.contains(&cell))));
        }
        data[4].push(conflict);
    }
    let p = LatticeParams::eval(3, 9);
    for dtype in [DType::F32, DType::BF16] {
        for int_given in [false, true] {
            let round = Round::from_data([b, s, c], data.clone(), dtype, int_given);
            let what = format!("boards {dtype} int_given {int_given}");
            assert_eq!(round.check(dev, &p, int_given, &what), (2, 0), "{what}");
            let heads = DeviceLatticeHeads {
                keep_logits: &upload(dev, &round.keep),
                value_logits: &upload(dev, &round.value),
                conflict_logits: &upload(dev, &round.conflict),
            };
            let out = k::lattice_step(
                dev,
                &upload(dev, &round.state),
                &upload(dev, &round.given),
                &heads,
                &p,
            )
            .unwrap();
            let flags = out.flags.download(dev).unwrap().to_vec_i32().unwrap();
            assert_eq!(
                flags,
                [0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
                "{what}: flags"
            );
            let decision = out.decision.download(dev).unwrap().to_vec_i32().unwrap();
            assert_eq!(
                decision,
                [-1, -1, -1, -1, -1, -1, 1, 2, 0, 3],
                "{what}: decisions"
            );
            let n_alive = out.n_alive.download(dev).unwrap().to_vec_i32().unwrap();
            assert_eq!(
                n_alive,
                [1, 1, 1, 1, 0, 1, 2, 1, 1, 1, 3, 1, 2, 1, 1],
                "{what}: n_alive"
            );
            let state = out.state.download(dev).unwrap().to_vec_f64().unwrap();
            assert_eq!(
                &state[3 * 12 + 4..3 * 12 + 8],
                &[0.0, 0.0, 1.0, 0.0],
                "{what}: pinned"
            );
            assert_eq!(
                &state[4 * 12..4 * 12 + 4],
                &[0.0, 0.0, 0.0, 1.0],
                "{what}: pinned given"
            );
        }
    }
}
recur::kernel_test!(lattice_boards, super::check_lattice_boards);

fn check_lattice_errors(dev: &dyn KernelBackend) {
    let p = LatticeParams::eval(1, 0);
    let t = |shape: &[usize], dtype: DType| upload(dev, &random(shape, 1.0, 1, dtype));
    let state = t(&[2, 3, 4], DType::F32);
    let given = upload(dev, &Tensor::zeros([2, 3], DType::I32));
    let (keep, value, conflict) = (
        t(&[2, 3, 4], DType::F32),
        t(&[2, 3, 4], DType::F32),
        t(&[2], DType::F32),
    );
    let heads = DeviceLatticeHeads {
        keep_logits: &keep,
        value_logits: &value,
        conflict_logits: &conflict,
    };
    assert!(k::lattice_step(dev, &state, &given, &heads, &p).is_ok());
    let bad_params = [
        LatticeParams {
            kill_threshold: 1.5,
            ..p
        },
        LatticeParams {
            conflict_threshold: -0.1,
            ..p
        },
        LatticeParams {
            temperature: 0.0,
            ..p
        },
        LatticeParams {
            temperature: f64::NAN,
            ..p
        },
    ];
    for bad in bad_params {
        assert!(
            k::lattice_step(dev, &state, &given, &heads, &bad).is_err(),
            "{bad:?}"
        );
    }
    let flat = t(&[2, 12], DType::F32);
    assert!(
        k::lattice_step(dev, &flat, &given, &heads, &p).is_err(),
        "rank 2 state"
    );
    let no_values = upload(dev, &Tensor::zeros([2, 3, 0], DType::F32));
    assert!(
        k::lattice_step(dev, &no_values, &given, &heads, &p).is_err(),
        "C = 0"
    );
    let f64_state = t(&[2, 3, 4], DType::F64);
    assert!(
        k::lattice_step(dev, &f64_state, &given, &heads, &p).is_err(),
        "f64 state"
    );
    let wrong_given = upload(dev, &Tensor::zeros([2, 4], DType::I32));
    assert!(
        k::lattice_step(dev, &state, &wrong_given, &heads, &p).is_err(),
        "given shape"
    );
    let bf16_given = t(&[2, 3], DType::BF16);
    assert!(
        k::lattice_step(dev, &state, &bf16_given, &heads, &p).is_err(),
        "given dtype"
    );
    let bf16_keep = t(&[2, 3, 4], DType::BF16);
    let mixed = DeviceLatticeHeads {
        keep_logits: &bf16_keep,
        ..heads
    };
    assert!(
        k::lattice_step(dev, &state, &given, &mixed, &p).is_err(),
        "keep dtype"
    );
    let short_conflict = t(&[3], DType::F32);
    let wrong = DeviceLatticeHeads {
        conflict_logits: &short_conflict,
        ..heads
    };
    assert!(
        k::lattice_step(dev, &state, &given, &wrong, &p).is_err(),
        "conflict shape"
    );
    let mut out = DeviceLatticeStep {
        state: poisoned(dev, [2, 3, 4], DType::F32),
        n_alive: poisoned(dev, [2, 3], DType::F32),
        flags: poisoned(dev, [2, 3], DType::I32),
        decision: poisoned(dev, [2, 2], DType::I32),
    };
    assert!(
        k::lattice_step_into(dev, &state, &given, &heads, &p, &mut out).is_err(),
        "n_alive dtype"
    );
}
recur::kernel_test!(lattice_errors, super::check_lattice_errors);

/// The thresholds decide exactly as the reference's f64 sigmoid, on both sides of the boundary.
#[test]
fn logit_thresholds_split_the_f32_line_where_the_sigmoid_does() {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    for theta in [0.0, 0.1, 0.5, 0.53, 0.6, 0.9, 1.0] {
        let p = LatticeParams {
            kill_threshold: theta,
            conflict_threshold: theta,
            ..LatticeParams::eval(0, 0)
        };
        let (keep_min, conflict_min) = k::logit_thresholds(&p);
        assert!(sigmoid(keep_min as f64) >= theta, "θ = {theta}");
        if keep_min > f32::NEG_INFINITY {
            let below = f32::from_bits(keep_min.to_bits().wrapping_add(if keep_min <= 0.0 {
                1
            } else {
                u32::MAX
            }));
            assert!(
                sigmoid(below as f64) < theta,
                "θ = {theta}: {below} below {keep_min}"
            );
        }
        if theta < 1.0 {
            assert!(sigmoid(conflict_min as f64) > theta, "τ = {theta}");
        } else {
            assert!(conflict_min.is_nan(), "σ never exceeds 1");
        }
    }
}

/// The bench case builds and runs once on Emu.
#[test]
fn emu_bench_case_runs() {
    let dev = recur::device::emu::Emu::new().unwrap();
    let mut cases = recur::bench::fused::lattice::cases(&dev, 1).unwrap();
    assert_eq!(cases.len(), 1);
    for case in &mut cases {
        assert!(case.flops > 0.0 && case.bytes > 0.0, "{}", case.kernel);
        (case.run)().unwrap();
    }
}
