//! LDT's lattice round (`experiments/sudoku/dpll.py::dpll_step`, spec §2.3) for a batch of
//! chains: deduce (kill candidates the keep head rejects), take the status, and for undecided
//! chains make one random decision. No gradient flows through it.
//!
//! Per chain `b`, with candidate mask `state [S, C]` (a cell is alive in value `c` when
//! `state > 0.5`):
//! 1. `kill = σ(keep) < θ ∧ state ∧ ¬given`, `state' = state ∧ ¬kill` (givens are never touched);
//! 2. `n_alive[s] = Σ_c state'[s, c]`, `empty = ∃s n_alive = 0`,
//!    `conflict = empty ∨ σ(conflict_logit) > τ`, `solved = ∀s n_alive = 1 ∧ ¬conflict`;
//! 3. if neither conflicting nor solved: pick a cell uniformly among those with `n_alive > 1`,
//!    sample a value from `softmax(value_logits[cell] / T)` restricted to its alive values, and
//!    pin the cell to that one-hot. The status describes `state'`, before the decision.
//!
//! Randomness (shared with the kernels): chain `b` draws one Philox block,
//! `[x0, x1, x2, x3] = philox::block(seed, round, b)`.
//! - Lane 0 picks the cell: with `n` undecided cells in ascending cell order, the cell of rank
//!   `(x0 · n) >> 32` (64-bit product; an exact integer map, uniform to within `n / 2³²`).
//! - Lane 1 picks the value: `u = philox::to_uniform(x1)`; with weights
//!   `w_c = exp((v_c − max_alive v) / T)` over alive values in ascending order and `W = Σ w_c`,
//!   the first value whose running sum exceeds `u·W` (the last alive value if rounding leaves
//!   none). Weights are computed in f64 here.
//! - Lanes 2 and 3 are unused.

use crate::error::{Error, Result};
use crate::rng::philox;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// The thresholds and temperature of a round, with the random stream it draws from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatticeParams {
    /// θ: a candidate is killed when `σ(keep_logit) < θ` (0.10 for Sudoku and Snowflake, 0.5 for
    /// Maze).
    pub kill_threshold: f64,
    /// τ_cls: the conflict head fires when `σ(conflict_logit) > τ` (0.6 at eval, 0.5 in
    /// training, 0.53 for Maze).
    pub conflict_threshold: f64,
    /// T: the decision samples from `softmax(value_logits / T)` (1.5).
    pub temperature: f64,
    /// Philox key of the decisions.
    pub seed: u64,
    /// The round number: the Philox stream selector, so every round draws afresh.
    pub round: u64,
}

impl LatticeParams {
    /// The evaluation settings for Sudoku: θ = 0.10, τ = 0.6, T = 1.5.
    pub fn eval(seed: u64, round: u64) -> LatticeParams {
        LatticeParams {
            kill_threshold: 0.10,
            conflict_threshold: 0.6,
            temperature: 1.5,
            seed,
            round,
        }
    }

    /// The training (pool advance) settings for Sudoku: as `eval` with τ = 0.5.
    pub fn train(seed: u64, round: u64) -> LatticeParams {
        LatticeParams {
            conflict_threshold: 0.5,
            ..LatticeParams::eval(seed, round)
        }
    }

    /// Errors unless θ and τ are in [0, 1] and T is positive and finite (the kernel launcher
    /// checks the same way).
    pub(crate) fn validate(&self) -> Result<()> {
        let probability = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::arg(OP, format!("{name} must be in [0, 1], got {v}")))
            }
        };
        probability("kill_threshold", self.kill_threshold)?;
        probability("conflict_threshold", self.conflict_threshold)?;
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::arg(
                OP,
                format!("temperature must be positive, got {}", self.temperature),
            ));
        }
        Ok(())
    }
}

/// The network outputs a round reads, all for the same batch of chains.
#[derive(Clone, Copy, Debug)]
pub struct LatticeHeads<'a> {
    /// Per (cell, value) keep/eliminate logits, `[B, S, C]`.
    pub keep_logits: &'a Tensor,
    /// Per-cell value logits, `[B, S, C]`.
    pub value_logits: &'a Tensor,
    /// The UNSAT logit of each chain, `[B]`.
    pub conflict_logits: &'a Tensor,
}

/// A decision: `cell` (index in `0..S`) pinned to the value `digit` (index in `0..C`; a
/// Sudoku digit minus one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub cell: usize,
    pub digit: usize,
}

/// One chain's status after deduction, and its decision if it made one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainStatus {
    /// Some cell has no candidate left.
    pub empty: bool,
    /// `empty`, or the conflict head fired.
    pub conflict: bool,
    /// Every cell is a singleton and there is no conflict.
    pub solved: bool,
    /// The decision, made only when neither `conflict` nor `solved`.
    pub decision: Option<Decision>,
}

/// The result of a round.
#[derive(Clone, Debug)]
pub struct LatticeStep {
    /// The new candidate mask `[B, S, C]` (0/1, in the input state's dtype), after deduction and
    /// the decision.
    pub state: Tensor,
    /// Alive candidates per cell after deduction, before the decision: i32 `[B, S]`.
    pub n_alive: Tensor,
    /// Per chain, in batch order.
    pub chains: Vec<ChainStatus>,
}

const OP: &str = "lattice_step";

/// A tensor's elements as booleans: `> 0.5` for floats, `≠ 0` for i32.
fn flags(t: &Tensor) -> Result<Vec<bool>> {
    Ok(match t.i32_data(OP) {
        Ok(ids) => ids.iter().map(|&v| v != 0).collect(),
        Err(_) => t.to_vec_f64()?.iter().map(|&v| v > 0.5).collect(),
    })
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The sizes (B, S, C), after checking every shape.
fn check_shapes(state: &Tensor, given: &Tensor, heads: &LatticeHeads<'_>) -> Result<[usize; 3]> {
    state.shape().expect_rank(OP, 3)?;
    state.expect_float(OP)?;
    let [b, s, c] = [state.dims()[0], state.dims()[1], state.dims()[2]];
    if c == 0 {
        return Err(Error::shape(
            OP,
            "the state has no candidate values (C = 0)",
        ));
    }
    for t in [heads.keep_logits, heads.value_logits] {
        t.shape().expect_eq(OP, state.shape())?;
        t.expect_float(OP)?;
    }
    given.shape().expect_eq(OP, &[b, s].into())?;
    heads.conflict_logits.shape().expect_eq(OP, &[b].into())?;
    heads.conflict_logits.expect_float(OP)?;
    Ok([b, s, c])
}

/// The index among `0..n` that Philox output `x` selects: `(x · n) >> 32`.
pub fn uniform_index(x: u32, n: usize) -> usize {
    ((x as u64 * n as u64) >> 32) as usize
}

/// The alive value that uniform `u` selects from `softmax(logits / temperature)` over `alive`.
fn sample_value(logits: &[f64], alive: &[bool], temperature: f64, u: f64) -> usize {
    let candidates: Vec<usize> = (0..logits.len()).filter(|&c| alive[c]).collect();
    let max = candidates
        .iter()
        .map(|&c| logits[c])
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = candidates
        .iter()
        .map(|&c| ((logits[c] - max) / temperature).exp())
        .collect();
    let target = u * weights.iter().sum::<f64>();
    let mut running = 0.0;
    for (&c, w) in candidates.iter().zip(&weights) {
        running += w;
        if running > target {
            return c;
        }
    }
    *candidates
        .last()
        .expect("a cell with n_alive > 1 has candidates")
}

/// One chain's slices of the inputs.
struct ChainInputs<'a> {
    state: &'a [bool],
    given: &'a [bool],
    keep: &'a [f64],
    value: &'a [f64],
    conflict_logit: f64,
}

/// Runs the round on one chain; returns its new mask, `n_alive` and status.
fn step_chain(
    chain: usize,
    x: ChainInputs<'_>,
    cells: usize,
    values: usize,
    p: &LatticeParams,
) -> (Vec<bool>, Vec<i32>, ChainStatus) {
    let mut state: Vec<bool> = (0..cells * values)
        .map(|i| x.state[i] && (x.given[i / values] || sigmoid(x.keep[i]) >= p.kill_threshold))
        .collect();
    let n_alive: Vec<i32> = state
        .chunks(values)
        .map(|cell| cell.iter().filter(|&&a| a).count() as i32)
        .collect();
    let empty = n_alive.contains(&0);
    let conflict = empty || sigmoid(x.conflict_logit) > p.conflict_threshold;
    let solved = !conflict && n_alive.iter().all(|&n| n == 1);
    let mut decision = None;
    if !conflict && !solved {
        let undecided: Vec<usize> = (0..cells).filter(|&s| n_alive[s] > 1).collect();
        let lanes = philox::block(p.seed, p.round, chain as u64);
        let cell = undecided[uniform_index(lanes[0], undecided.len())];
        let row = cell * values..(cell + 1) * values;
        let u = philox::to_uniform(lanes[1]) as f64;
        let digit = sample_value(&x.value[row.clone()], &state[row.clone()], p.temperature, u);
        for (c, alive) in state[row].iter_mut().enumerate() {
            *alive = c == digit;
        }
        decision = Some(Decision { cell, digit });
    }
    let status = ChainStatus {
        empty,
        conflict,
        solved,
        decision,
    };
    (state, n_alive, status)
}

/// One lattice round over a batch of chains: `state [B, S, C]` (0/1 floats), `given [B, S]`
/// (float > 0.5 or i32 ≠ 0 marks a given cell), and the network's `heads`. Chains run in
/// parallel when the batch is large.
pub fn lattice_step(
    state: &Tensor,
    given: &Tensor,
    heads: &LatticeHeads<'_>,
    params: &LatticeParams,
) -> Result<LatticeStep> {
    params.validate()?;
    let [batch, cells, values] = check_shapes(state, given, heads)?;
    let alive = flags(state)?;
    let givens = flags(given)?;
    let keep = heads.keep_logits.to_vec_f64()?;
    let value = heads.value_logits.to_vec_f64()?;
    let conflict = heads.conflict_logits.to_vec_f64()?;
    let per_chain = cells * values;
    let run = |b: usize| {
        let span = b * per_chain..(b + 1) * per_chain;
        let inputs = ChainInputs {
            state: &alive[span.clone()],
            given: &givens[b * cells..(b + 1) * cells],
            keep: &keep[span.clone()],
            value: &value[span],
            conflict_logit: conflict[b],
        };
        step_chain(b, inputs, cells, values, params)
    };
    let results: Vec<_> = if alive.len() >= super::PARALLEL_MIN_ELEMS {
        (0..batch).into_par_iter().map(run).collect()
    } else {
        (0..batch).map(run).collect()
    };
    let mut new_state = Vec::with_capacity(alive.len());
    let mut n_alive = Vec::with_capacity(batch * cells);
    let mut chains = Vec::with_capacity(batch);
    for (s, n, status) in results {
        new_state.extend(s.into_iter().map(|a| if a { 1.0 } else { 0.0 }));
        n_alive.extend(n);
        chains.push(status);
    }
    Ok(LatticeStep {
        state: Tensor::from_real(new_state, state.shape().clone(), state.dtype()),
        n_alive: Tensor::from_vec(n_alive, [batch, cells])?,
        chains,
    })
}
