//! Deep supervision with adaptive computation time (the official `*_ACTV1` wrapper,
//! `hrm_act_v1.py:216-283`, `trm.py:240-297`).
//!
//! The carry holds, per batch slot, the two states, a step counter, a halted flag and the example
//! the slot is working on. Each call is one supervision segment (one optimizer step in training):
//! halted slots restart from `H_init`/`L_init` with the new batch's example in that slot; the
//! others keep their example, and the new batch's example for that slot is dropped.

use crate::error::{Error, Result};
use crate::models::probe::Probe;
use crate::models::reasoner::{Reasoner, SegmentOutput};
use crate::params::Params;
use crate::rng::philox;
use crate::tape::Tape;
use crate::tensor::Tensor;

/// One batch of examples: i32 `inputs [B, S]`, `labels [B, S]` (−100 = ignored) and
/// `puzzle_ids [B]`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub inputs: Tensor,
    pub labels: Tensor,
    pub puzzle_ids: Tensor,
}

impl Batch {
    pub fn new(inputs: Tensor, labels: Tensor, puzzle_ids: Tensor) -> Result<Batch> {
        let b = inputs.dims().first().copied().unwrap_or(0);
        if inputs.rank() != 2 || labels.dims() != inputs.dims() || puzzle_ids.dims() != [b] {
            return Err(Error::shape(
                "batch",
                format!(
                    "inputs {}, labels {} and puzzle ids {} must be [B, S], [B, S] and [B]",
                    inputs.shape(),
                    labels.shape(),
                    puzzle_ids.shape()
                ),
            ));
        }
        Ok(Batch {
            inputs,
            labels,
            puzzle_ids,
        })
    }

    pub fn len(&self) -> usize {
        self.inputs.dims()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn seq_len(&self) -> usize {
        self.inputs.dims()[1]
    }
}

#[derive(Clone, Debug)]
pub struct Carry {
    pub z_h: Tensor,
    pub z_l: Tensor,
    pub steps: Vec<u32>,
    pub halted: Vec<bool>,
    pub data: Batch,
}

impl Carry {
    /// The official `initial_carry`: every slot halted, so the first segment loads the whole
    /// batch and starts from the init vectors.
    pub fn initial(model: &Reasoner, batch: &Batch) -> Result<Carry> {
        let b = batch.len();
        Ok(Carry {
            z_h: model.initial_state(&model.buffers.h_init, b)?,
            z_l: model.initial_state(&model.buffers.l_init, b)?,
            steps: vec![0; b],
            halted: vec![true; b],
            data: batch.clone(),
        })
    }

    pub fn all_halted(&self) -> bool {
        self.halted.iter().all(|&h| h)
    }
}

/// Training's halting exploration: with probability `halt_exploration_prob` a slot gets a
/// minimum of `randint(2, halt_max_steps + 1)` segments, redrawn every segment. Draws are
/// Philox keyed by (seed, segment index, slot), so a resumed run draws the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exploration {
    pub seed: u64,
    /// Segments drawn so far.
    pub segment: u64,
}

impl Exploration {
    fn min_halt_steps(&self, slot: usize, prob: f64, max_steps: usize) -> u32 {
        let explore = (philox::uniform(self.seed, self.segment, 2 * slot as u64) as f64) < prob;
        if !explore {
            return 0;
        }
        let u = philox::uniform(self.seed, self.segment, 2 * slot as u64 + 1) as f64;
        let span = (max_steps - 1) as f64; // values 2..=max_steps
        2 + ((u * span) as u32).min(max_steps as u32 - 2)
    }
}

/// How a segment decides halting.
pub enum Halting<'a> {
    /// Evaluation: only `halt_max_steps` halts, so every sequence runs every segment.
    Eval,
    /// Training: the Q head may halt early, subject to exploration.
    Train(&'a mut Exploration),
}

pub struct ActStep {
    pub carry: Carry,
    pub output: SegmentOutput,
    /// HRM's bootstrapped Q-continue target (sigmoid of the next segment's Q logits), computed
    /// by an extra no-grad forward from the new carry; None for TRM's halt-only rule and in
    /// evaluation.
    pub target_q_continue: Option<Tensor>,
}

/// One supervision segment: reset halted slots, run the model, update steps and halting.
pub fn act_step(
    model: &Reasoner,
    tape: &Tape,
    params: &Params,
    carry: Carry,
    batch: &Batch,
    halting: Halting<'_>,
    probe: &Probe,
) -> Result<ActStep> {
    let cfg = model.config();
    let b = carry.halted.len();
    if batch.len() != b || batch.seq_len() != carry.data.seq_len() {
        return Err(Error::shape(
            "act_step",
            format!(
                "a batch of {} × {} for a carry of {} × {}",
                batch.len(),
                batch.seq_len(),
                b,
                carry.data.seq_len()
            ),
        ));
    }
    let reset = &carry.halted;
    let z_h = select_rows(
        reset,
        &model.initial_state(&model.buffers.h_init, b)?,
        &carry.z_h,
    )?;
    let z_l = select_rows(
        reset,
        &model.initial_state(&model.buffers.l_init, b)?,
        &carry.z_l,
    )?;
    let data = Batch::new(
        select_rows(reset, &batch.inputs, &carry.data.inputs)?,
        select_rows(reset, &batch.labels, &carry.data.labels)?,
        select_rows(reset, &batch.puzzle_ids, &carry.data.puzzle_ids)?,
    )?;
    let steps: Vec<u32> = carry
        .steps
        .iter()
        .zip(reset)
        .map(|(&s, &r)| if r { 1 } else { s + 1 })
        .collect();

    let output = model.segment(
        tape,
        params,
        &z_h,
        &z_l,
        &data.inputs,
        &data.puzzle_ids,
        probe,
    )?;

    let max_steps = cfg.halt_max_steps;
    let is_last: Vec<bool> = steps.iter().map(|&s| s as usize >= max_steps).collect();
    let mut halted = is_last.clone();
    let mut target_q_continue = None;
    if let Halting::Train(explore) = halting {
        if max_steps > 1 {
            // Host reads of the Q logits (explicit downloads on a kernel compute).
            let q_halt = output.q_halt.value().to_host()?.to_vec_f32()?;
            let q_cont = output.q_continue.value().to_host()?.to_vec_f32()?;
            for slot in 0..b {
                let wants_halt = cfg.q_head_halts(q_halt[slot], q_cont[slot]);
                let min_halt = explore.min_halt_steps(slot, cfg.halt_exploration_prob, max_steps);
                halted[slot] = (halted[slot] || wants_halt) && steps[slot] >= min_halt;
            }
            explore.segment += 1;
            if !cfg.no_ACT_continue {
                let next = tape.no_grad(|| {
                    model.segment(
                        tape,
                        params,
                        &output.z_h,
                        &output.z_l,
                        &data.inputs,
                        &data.puzzle_ids,
                        &Probe::off(),
                    )
                })?;
                let next_halt = next.q_halt.value().to_host()?.to_vec_f32()?;
                let next_cont = next.q_continue.value().to_host()?.to_vec_f32()?;
                let target: Vec<f32> = (0..b)
                    .map(|i| {
                        let logit = if is_last[i] {
                            next_halt[i]
                        } else {
                            next_halt[i].max(next_cont[i])
                        };
                        1.0 / (1.0 + (-logit).exp())
                    })
                    .collect();
                target_q_continue = Some(Tensor::from_vec(target, [b])?);
            }
        }
    }
    Ok(ActStep {
        carry: Carry {
            z_h: output.z_h.clone(),
            z_l: output.z_l.clone(),
            steps,
            halted,
            data,
        },
        output,
        target_q_continue,
    })
}

/// Row `i` of the result is row `i` of `fresh` where `take_fresh[i]`, else of `kept` (the
/// official `torch.where(halted, new, old)` over the batch axis).
fn select_rows(take_fresh: &[bool], fresh: &Tensor, kept: &Tensor) -> Result<Tensor> {
    if fresh.dims() != kept.dims() || fresh.dtype() != kept.dtype() {
        return Err(Error::shape(
            "act_step",
            format!(
                "cannot mix rows of {} {:?} and {} {:?}",
                fresh.shape(),
                fresh.dtype(),
                kept.shape(),
                kept.dtype()
            ),
        ));
    }
    let row_bytes = fresh.numel() * fresh.dtype().size_in_bytes() / take_fresh.len().max(1);
    let (f, k) = (fresh.to_host()?.to_bytes()?, kept.to_host()?.to_bytes()?);
    let mut out = Vec::with_capacity(f.len());
    for (i, &fresh_row) in take_fresh.iter().enumerate() {
        let src = if fresh_row { &f } else { &k };
        out.extend_from_slice(&src[i * row_bytes..(i + 1) * row_bytes]);
    }
    Tensor::from_bytes(&out, fresh.shape().clone(), fresh.dtype())
}
