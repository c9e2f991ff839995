//! LDT's lattice round: hand-built boards for each status, givens never killed, decisions only
//! on undecided cells and alive values, the documented Philox layout, determinism, and the
//! empirical distributions of the cell and value choices.

use recur::device::cpu::lattice::{lattice_step, uniform_index};
use recur::ops::lattice::{ChainStatus, Decision, LatticeHeads, LatticeParams, LatticeStep};
use recur::rng::philox;
use recur::{DType, Tape, Tensor, Var};

/// Logits far enough from the thresholds that a test's outcome does not depend on them.
const KEEP: f64 = 5.0;
const KILL: f64 = -5.0;
const QUIET: f64 = -5.0;
const FIRE: f64 = 5.0;

/// A batch of boards with `S` cells of `C` values, built chain by chain.
struct Boards {
    cells: usize,
    values: usize,
    state: Vec<f64>,
    given: Vec<f64>,
    keep: Vec<f64>,
    value: Vec<f64>,
    conflict: Vec<f64>,
}

impl Boards {
    fn new(cells: usize, values: usize) -> Boards {
        Boards {
            cells,
            values,
            state: vec![],
            given: vec![],
            keep: vec![],
            value: vec![],
            conflict: vec![],
        }
    }

    /// Adds a chain: per cell its candidate set and given flag; keep logits `KEEP` everywhere
    /// except the (cell, value) pairs in `kills`; value logits `value_logits` for every cell.
    fn chain(
        &mut self,
        cells: &[(&[usize], bool)],
        kills: &[(usize, usize)],
        value_logits: &[f64],
        conflict_logit: f64,
    ) -> &mut Self {
        assert_eq!(cells.len(), self.cells);
        assert_eq!(value_logits.len(), self.values);
        for (s, (alive, given)) in cells.iter().enumerate() {
            for (c, &logit) in value_logits.iter().enumerate() {
                self.state.push(if alive.contains(&c) { 1.0 } else { 0.0 });
                self.keep
                    .push(if kills.contains(&(s, c)) { KILL } else { KEEP });
                self.value.push(logit);
            }
            self.given.push(if *given { 1.0 } else { 0.0 });
        }
        self.conflict.push(conflict_logit);
        self
    }

    fn batch(&self) -> usize {
        self.conflict.len()
    }

    fn tensors(&self) -> [Tensor; 5] {
        let (b, s, c) = (self.batch(), self.cells, self.values);
        [
            Tensor::from_vec(self.state.clone(), [b, s, c]).unwrap(),
            Tensor::from_vec(self.given.clone(), [b, s]).unwrap(),
            Tensor::from_vec(self.keep.clone(), [b, s, c]).unwrap(),
            Tensor::from_vec(self.value.clone(), [b, s, c]).unwrap(),
            Tensor::from_vec(self.conflict.clone(), [b]).unwrap(),
        ]
    }

    fn step(&self, params: &LatticeParams) -> LatticeStep {
        let [state, given, keep, value, conflict] = self.tensors();
        let heads = LatticeHeads {
            keep_logits: &keep,
            value_logits: &value,
            conflict_logits: &conflict,
        };
        lattice_step(&state, &given, &heads, params).unwrap()
    }
}

fn eval(seed: u64) -> LatticeParams {
    LatticeParams::eval(seed, 0)
}

fn chain_state(step: &LatticeStep, b: usize, cells: usize, values: usize) -> Vec<f64> {
    let n = cells * values;
    step.state.to_vec_f64().unwrap()[b * n..(b + 1) * n].to_vec()
}

const FLAT: [f64; 3] = [0.0; 3];

#[test]
fn solved_board_is_solved_and_unchanged() {
    let mut boards = Boards::new(3, 3);
    boards.chain(
        &[(&[0], true), (&[1], false), (&[2], false)],
        &[],
        &FLAT,
        QUIET,
    );
    let out = boards.step(&eval(1));
    assert_eq!(
        out.chains[0],
        ChainStatus {
            empty: false,
            conflict: false,
            solved: true,
            decision: None
        }
    );
    assert_eq!(out.n_alive.to_vec_i32().unwrap(), [1, 1, 1]);
    assert_eq!(chain_state(&out, 0, 3, 3), boards.state);
}

#[test]
fn deduction_that_empties_a_cell_is_a_conflict_without_decision() {
    let mut boards = Boards::new(3, 3);
    // Cell 1 loses both of its candidates; cell 2 is still undecided, but no decision is made.
    boards.chain(
        &[(&[0], true), (&[0, 1], false), (&[0, 1, 2], false)],
        &[(1, 0), (1, 1)],
        &FLAT,
        QUIET,
    );
    let out = boards.step(&eval(1));
    assert_eq!(
        out.chains[0],
        ChainStatus {
            empty: true,
            conflict: true,
            solved: false,
            decision: None
        }
    );
    assert_eq!(out.n_alive.to_vec_i32().unwrap(), [1, 0, 3]);
    assert_eq!(
        chain_state(&out, 0, 3, 3),
        [1., 0., 0., 0., 0., 0., 1., 1., 1.]
    );
}

#[test]
fn conflict_head_firing_blocks_solved_and_decisions() {
    let mut boards = Boards::new(2, 2);
    boards.chain(&[(&[0], false), (&[1], false)], &[], &[0.0; 2], FIRE);
    boards.chain(&[(&[0], false), (&[0, 1], false)], &[], &[0.0; 2], FIRE);
    let out = boards.step(&eval(1));
    for status in &out.chains {
        assert_eq!(
            *status,
            ChainStatus {
                empty: false,
                conflict: true,
                solved: false,
                decision: None
            }
        );
    }
    // The threshold is τ: σ(0.2) ≈ 0.55 fires at τ = 0.5 (training) but not at 0.6 (eval).
    let mut boards = Boards::new(1, 2);
    boards.chain(&[(&[1], false)], &[], &[0.0; 2], 0.2);
    assert!(boards.step(&LatticeParams::train(1, 0)).chains[0].conflict);
    assert!(boards.step(&eval(1)).chains[0].solved);
}

#[test]
fn kill_threshold_compares_the_keep_probability_with_theta() {
    // logit(0.1) ≈ −2.197: −2.3 is killed, −2.1 is kept.
    let mut boards = Boards::new(1, 3);
    boards.chain(&[(&[0, 1, 2], false)], &[], &FLAT, QUIET);
    boards.keep = vec![-2.3, -2.1, 0.0];
    let out = boards.step(&eval(3));
    assert_eq!(out.n_alive.to_vec_i32().unwrap(), [2]);
    let decision = out.chains[0].decision.unwrap();
    assert_ne!(decision.digit, 0);
}

#[test]
fn kill_never_touches_givens() {
    let mut boards = Boards::new(3, 3);
    // Every keep logit says kill; only the non-given cells lose candidates.
    let all: Vec<(usize, usize)> = (0..3).flat_map(|s| (0..3).map(move |c| (s, c))).collect();
    boards.chain(
        &[(&[2], true), (&[0, 1], true), (&[0, 1], false)],
        &all,
        &FLAT,
        QUIET,
    );
    let out = boards.step(&eval(1));
    assert_eq!(out.n_alive.to_vec_i32().unwrap(), [1, 2, 0]);
    assert_eq!(
        chain_state(&out, 0, 3, 3),
        [0., 0., 1., 1., 1., 0., 0., 0., 0.]
    );
    assert!(out.chains[0].empty);
}

#[test]
fn undecided_board_gets_one_decision_following_the_philox_layout() {
    let values = [0.5, -1.0, 2.0, 0.0];
    let mut boards = Boards::new(4, 4);
    boards.chain(
        &[
            (&[3], true),
            (&[0, 2, 3], false),
            (&[1], false),
            (&[0, 1, 2, 3], false),
        ],
        &[(3, 1)],
        &values,
        QUIET,
    );
    let (seed, round) = (42, 7);
    let out = boards.step(&LatticeParams {
        round,
        ..eval(seed)
    });
    let status = out.chains[0];
    assert!(!status.empty && !status.conflict && !status.solved);
    // n_alive is taken after deduction (cell 3 lost value 1) and before the decision.
    assert_eq!(out.n_alive.to_vec_i32().unwrap(), [1, 3, 1, 3]);
    // Recompute the decision from the documented layout: lane 0 picks the cell, lane 1 the value.
    let lanes = philox::block(seed, round, 0);
    let undecided = [1, 3];
    let cell = undecided[uniform_index(lanes[0], 2)];
    // Both undecided cells have the alive values {0, 2, 3}.
    let alive = [0usize, 2, 3];
    let weights: Vec<f64> = alive.iter().map(|&c| (values[c] / 1.5).exp()).collect();
    let u = philox::to_uniform(lanes[1]) as f64 * weights.iter().sum::<f64>();
    let mut running = 0.0;
    let digit = alive
        .iter()
        .zip(&weights)
        .find(|(_, w)| {
            running += *w;
            running > u
        })
        .map(|(&c, _)| c)
        .unwrap();
    assert_eq!(status.decision, Some(Decision { cell, digit }));
    // The state is the deduced state with that cell pinned to the one-hot.
    let state = chain_state(&out, 0, 4, 4);
    for c in 0..4 {
        assert_eq!(state[cell * 4 + c], if c == digit { 1.0 } else { 0.0 });
    }
    let other = 4 - cell;
    let other_alive: Vec<f64> = state[other * 4..other * 4 + 4].to_vec();
    assert_eq!(other_alive, [1., 0., 1., 1.]);
}

/// A batch of identical chains: only the chain index (and so the Philox block) differs.
fn replicated(chains: usize, cells: &[(&[usize], bool)], values: &[f64]) -> Boards {
    let mut boards = Boards::new(cells.len(), values.len());
    for _ in 0..chains {
        boards.chain(cells, &[], values, QUIET);
    }
    boards
}

#[test]
fn decisions_pick_only_undecided_cells_and_alive_values_deterministically() {
    let cells: &[(&[usize], bool)] = &[
        (&[0, 4], false),
        (&[2], true),
        (&[1, 2, 3], false),
        (&[3], false),
        (&[0, 1, 2, 3, 4], false),
    ];
    let boards = replicated(500, cells, &[0.3, 1.0, -0.5, 0.0, 2.0]);
    for seed in 0..4 {
        let out = boards.step(&eval(seed));
        for (b, status) in out.chains.iter().enumerate() {
            let d = status.decision.expect("every chain is undecided");
            assert!([0, 2, 4].contains(&d.cell), "chain {b}: {d:?}");
            assert!(cells[d.cell].0.contains(&d.digit), "chain {b}: {d:?}");
        }
        let again = boards.step(&eval(seed));
        assert_eq!(out.chains, again.chains);
        assert_eq!(
            out.state.to_vec_f64().unwrap(),
            again.state.to_vec_f64().unwrap()
        );
        let next_round = boards.step(&LatticeParams {
            round: 1,
            ..eval(seed)
        });
        assert_ne!(out.chains, next_round.chains);
    }
}

/// Pearson's χ² of observed counts against expected probabilities.
fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(probs)
        .map(|(&o, &p)| {
            let e = p * n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

#[test]
fn cell_choice_is_uniform_over_undecided_cells() {
    let cells: &[(&[usize], bool)] = &[
        (&[0, 1], false),
        (&[1], false),
        (&[0, 1], false),
        (&[0, 1], false),
        (&[0], true),
        (&[0, 1], false),
        (&[0, 1], false),
    ];
    let undecided = [0, 2, 3, 5, 6];
    let boards = replicated(20_000, cells, &[0.0, 0.0]);
    let mut counts = [0usize; 5];
    for seed in 0..2 {
        for status in boards.step(&eval(seed)).chains {
            let cell = status.decision.unwrap().cell;
            counts[undecided.iter().position(|&c| c == cell).unwrap()] += 1;
        }
    }
    // χ² with 4 degrees of freedom: 18.47 is the 0.1% critical value.
    let chi = chi_square(&counts, &[0.2; 5]);
    assert!(chi < 18.47, "χ² = {chi}, counts {counts:?}");
}

#[test]
fn value_choice_follows_the_tempered_softmax_over_alive_values() {
    let logits = [1.0, 3.0, -0.5, 0.0, 2.0];
    let alive = [0usize, 2, 3, 4];
    let boards = replicated(40_000, &[(&alive, false), (&[1], true)], &logits);
    let mut counts = [0usize; 5];
    for status in boards.step(&eval(11)).chains {
        let d = status.decision.unwrap();
        assert_eq!(d.cell, 0);
        counts[d.digit] += 1;
    }
    assert_eq!(counts[1], 0, "a dead value was chosen");
    let weights: Vec<f64> = alive.iter().map(|&c| (logits[c] / 1.5).exp()).collect();
    let total: f64 = weights.iter().sum();
    let probs: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let observed: Vec<usize> = alive.iter().map(|&c| counts[c]).collect();
    // χ² with 3 degrees of freedom: 16.27 is the 0.1% critical value.
    let chi = chi_square(&observed, &probs);
    assert!(
        chi < 16.27,
        "χ² = {chi}, counts {counts:?}, expected {probs:?}"
    );
    // A lower temperature sharpens the choice toward the top alive value (index 4).
    let sharp = boards.step(&LatticeParams {
        temperature: 0.1,
        ..eval(11)
    });
    let top = sharp
        .chains
        .iter()
        .filter(|s| s.decision.unwrap().digit == 4)
        .count();
    assert!(top as f64 > 0.99 * sharp.chains.len() as f64);
}

#[test]
fn tape_method_records_nothing_and_keeps_the_state_dtype() {
    let mut boards = Boards::new(2, 2);
    boards.chain(&[(&[0, 1], false), (&[1], true)], &[], &[0.0, 1.0], QUIET);
    let [state, _, keep, value, conflict] = boards.tensors();
    let tape = Tape::new();
    let state = tape.leaf(state.to_dtype(DType::BF16).unwrap());
    let given = Var::constant(Tensor::from_vec(vec![0i32, 1], [1, 2]).unwrap());
    let heads = [keep, value, conflict].map(|t| tape.leaf(t));
    let out = tape
        .lattice_step(&state, &given, &heads[0], &heads[1], &heads[2], &eval(5))
        .unwrap();
    assert!(tape.is_empty());
    assert_eq!(out.state.dtype(), DType::BF16);
    assert_eq!(out.n_alive.dtype(), DType::I32);
    assert_eq!(out.chains[0].decision.unwrap().cell, 0);
}

#[test]
fn bad_shapes_dtypes_and_params_are_errors() {
    let mut boards = Boards::new(2, 3);
    boards.chain(&[(&[0, 1], false), (&[1], true)], &[], &FLAT, QUIET);
    let [state, given, keep, value, conflict] = boards.tensors();
    let heads = LatticeHeads {
        keep_logits: &keep,
        value_logits: &value,
        conflict_logits: &conflict,
    };
    let p = eval(0);
    assert!(lattice_step(&state, &given, &heads, &p).is_ok());
    let flat = state.reshape([2, 3]).unwrap();
    assert!(matches!(
        lattice_step(&flat, &given, &heads, &p),
        Err(recur::Error::Shape { .. })
    ));
    let wrong_given = Tensor::zeros([1, 3], DType::F32);
    assert!(matches!(
        lattice_step(&state, &wrong_given, &heads, &p),
        Err(recur::Error::Shape { .. })
    ));
    let wrong_conflict = Tensor::zeros([2], DType::F64);
    let h = LatticeHeads {
        conflict_logits: &wrong_conflict,
        ..heads
    };
    assert!(matches!(
        lattice_step(&state, &given, &h, &p),
        Err(recur::Error::Shape { .. })
    ));
    let wrong_keep = Tensor::zeros([1, 2, 2], DType::F64);
    let h = LatticeHeads {
        keep_logits: &wrong_keep,
        ..heads
    };
    assert!(matches!(
        lattice_step(&state, &given, &h, &p),
        Err(recur::Error::Shape { .. })
    ));
    let int_state = Tensor::from_vec(vec![1i32; 6], [1, 2, 3]).unwrap();
    assert!(matches!(
        lattice_step(&int_state, &given, &heads, &p),
        Err(recur::Error::DType { .. })
    ));
    for bad in [
        LatticeParams {
            temperature: 0.0,
            ..p
        },
        LatticeParams {
            temperature: f64::NAN,
            ..p
        },
        LatticeParams {
            kill_threshold: 1.5,
            ..p
        },
        LatticeParams {
            conflict_threshold: -0.1,
            ..p
        },
    ] {
        assert!(matches!(
            lattice_step(&state, &given, &heads, &bad),
            Err(recur::Error::Arg { .. })
        ));
    }
    let no_values = Tensor::zeros([1, 2, 0], DType::F64);
    let h = LatticeHeads {
        keep_logits: &no_values,
        value_logits: &no_values,
        ..heads
    };
    assert!(lattice_step(&no_values, &given, &h, &p).is_err());
}
