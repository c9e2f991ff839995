//! Deep supervision with adaptive computation time (the official `*_ACTV1` wrapper,
//! `hrm_act_v1.py:216-283`, `trm.py:240-297`).
//!
//! The carry holds, per batch slot, the two states, a step counter, a halted flag and the example
//! the slot is working on. Each call is one supervision segment (one optimizer step in training):
//! halted slots restart from `H_init`/`L_init` with the new batch's example in that slot; the
//! others keep their example, and the new batch's example for that slot is dropped.

use crate::error::{Error, Result};
use crate::models::probe::Probe;
use crate::models::reasoner::{check_token_range, Reasoner, SegmentOutput};
use crate::ops::act::{self, Fresh, HaltRule};
use crate::params::Params;
use crate::tape::{Compute, Tape};
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

/// What a batch slot is working on between segments. `steps` and `halted` are i32 tensors
/// `[B]`, like the states kept where the tape's compute keeps values (on the device for the
/// kernels), so a segment never reads them back to the host.
#[derive(Clone, Debug)]
pub struct Carry {
    pub z_h: Tensor,
    pub z_l: Tensor,
    /// Segments each slot has run since it last restarted, i32 `[B]`.
    pub steps: Tensor,
    /// 1 where the slot halted in the last segment (it restarts in the next), else 0; i32 `[B]`.
    pub halted: Tensor,
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
            steps: Tensor::from_vec(vec![0i32; b], [b])?,
            halted: Tensor::from_vec(vec![1i32; b], [b])?,
            data: batch.clone(),
        })
    }
}

/// Training's halting exploration: with probability `halt_exploration_prob` a slot gets a
/// minimum of `randint(2, halt_max_steps + 1)` segments, redrawn every segment. Draws are
/// Philox keyed by (seed, segment index, slot), so a resumed run draws the same numbers
/// (`ops::act::min_halt_steps`; the kernels draw the same on the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exploration {
    pub seed: u64,
    /// Segments drawn so far.
    pub segment: u64,
}

impl Exploration {
    /// This segment's seed and segment as the halting op reads them: i32 `[4]`, written by the
    /// host each step (a value, not a launch argument, so a captured graph reads the new one).
    pub fn draw(&self) -> Result<Tensor> {
        Tensor::from_vec(act::draw_words(self.seed, self.segment).to_vec(), [4])
    }
}

/// How a segment decides halting.
pub enum Halting<'a> {
    /// Evaluation: only `halt_max_steps` halts, so every sequence runs every segment.
    Eval,
    /// Training: the Q head may halt early, subject to exploration.
    Train(&'a mut Exploration),
    /// Training, with this segment's draw (`Exploration::draw`) already where the step reads its
    /// inputs (staged with the batch), so the segment uploads nothing.
    TrainStaged(&'a mut Exploration, &'a Tensor),
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
    let b = carry.data.len();
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
    // The new batch's tokens are checked here, on the host, before they join the carry (which
    // may live on the device, where the model does not read them back).
    check_token_range(&batch.inputs, cfg.vocab_size)?;
    let compute = tape.compute();
    let reset = &carry.halted;
    let init =
        |v: &Tensor, kept: &Tensor| act::reset_rows(compute, reset, Fresh::Repeated(v), kept);
    let z_h = init(&model.buffers.h_init, &carry.z_h)?;
    let z_l = init(&model.buffers.l_init, &carry.z_l)?;
    let take =
        |new: &Tensor, kept: &Tensor| act::reset_rows(compute, reset, Fresh::Rows(new), kept);
    let data = Batch::new(
        take(&batch.inputs, &carry.data.inputs)?,
        take(&batch.labels, &carry.data.labels)?,
        take(&batch.puzzle_ids, &carry.data.puzzle_ids)?,
    )?;

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
    let rule = HaltRule {
        max_steps,
        train: !matches!(halting, Halting::Eval),
        halt_only: cfg.no_ACT_continue,
        exploration_prob: cfg.halt_exploration_prob,
    };
    let draw = match &halting {
        Halting::Train(explore) => explore.draw()?,
        Halting::TrainStaged(_, draw) => (*draw).clone(),
        Halting::Eval => no_draw(compute)?,
    };
    let (halted, steps) = act::halt(
        compute,
        output.q_halt.value(),
        output.q_continue.value(),
        &carry.halted,
        &carry.steps,
        &draw,
        rule,
    )?;
    let mut target_q_continue = None;
    if let Halting::Train(explore) | Halting::TrainStaged(explore, _) = halting {
        if max_steps > 1 {
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
                target_q_continue = Some(act::q_continue_target(
                    compute,
                    next.q_halt.value(),
                    next.q_continue.value(),
                    &steps,
                    max_steps,
                )?);
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

/// The draw evaluation passes to the halting op, which does not read it: zeros, a constant on
/// the kernels (uploaded once per compute).
fn no_draw(compute: &Compute) -> Result<Tensor> {
    let zeros = || Tensor::from_vec(vec![0i32; 4], [4]);
    match compute.kernels() {
        None => zeros(),
        Some(k) => k.constant("act: evaluation's exploration draw", zeros),
    }
}
