//! The inner model shared by TRM and HRM (`*_Inner` in the official code): input embeddings
//! with the puzzle prefix, the recursion over (z_H, z_L), and the two heads.
//!
//! Parameters live in a `Params` store under their official state-dict names. The puzzle table
//! and the `H_init` / `L_init` vectors are buffers, as in the official code: they are not
//! parameters, not counted, not in AdamATan2 and not EMA-averaged.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::models::config::{Arch, ModelConfig, PosEncoding};
use crate::models::probe::Probe;
use crate::models::reasoning_module::ReasoningModule;
use crate::nn::{init_seed, Embedding, Linear};
use crate::ops::cast::cast_tensor;
use crate::ops::rope::RopeTable;
use crate::params::Params;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The non-parameter state a checkpoint carries, under the official names.
#[derive(Clone, Debug)]
pub struct Buffers {
    /// `H_init`, `L_init` `[D]`: fixed random vectors every reset state starts from.
    pub h_init: Tensor,
    pub l_init: Tensor,
    /// `puzzle_emb.weights` `[num_puzzle_identifiers, puzzle_emb_ndim]`, zero-initialised and
    /// trained by SignSGD (absent when `puzzle_emb_ndim` is 0).
    pub puzzle_emb: Option<Tensor>,
}

impl Buffers {
    pub const H_INIT: &'static str = "H_init";
    pub const L_INIT: &'static str = "L_init";
    pub const PUZZLE_EMB: &'static str = "puzzle_emb.weights";
}

/// One segment's outputs. The carried states are plain tensors: the official code detaches them
/// between segments, and so does this by construction.
pub struct SegmentOutput {
    pub z_h: Tensor,
    pub z_l: Tensor,
    /// `[B, seq_len, vocab]`, the puzzle prefix dropped.
    pub logits: Var,
    /// `[B]` each, read from position 0 of z_H.
    pub q_halt: Var,
    pub q_continue: Var,
    /// The gathered puzzle-table rows `[B, puzzle_emb_ndim]` (the official `local_weights`), a
    /// leaf whose gradient SignSGD applies; None without a prefix.
    pub puzzle_rows: Option<Var>,
}

pub struct Reasoner {
    cfg: ModelConfig,
    embed_tokens: Embedding,
    embed_pos: Option<Embedding>,
    lm_head: Linear,
    q_head: Linear,
    l_level: ReasoningModule,
    h_level: Option<ReasoningModule>,
    rope: Option<RopeTable>,
    pub buffers: Buffers,
}

impl Reasoner {
    /// Builds the model with the official init: truncated-normal weights (std 1/√in, embeddings
    /// 1/√D), `q_head` weight 0 and bias −5, a zero puzzle table, `H_init`/`L_init` drawn with
    /// std 1. Parameters are registered in `params`.
    pub fn new(params: &mut Params, cfg: ModelConfig, seed: u64) -> Result<Reasoner> {
        cfg.validate()?;
        let d = cfg.hidden_size;
        let embed_std = 1.0 / (d as f64).sqrt();
        let embed_tokens =
            Embedding::new(params, "embed_tokens.", cfg.vocab_size, d, embed_std, seed)?;
        let embed_pos = match cfg.pos_encodings {
            PosEncoding::Learned => Some(Embedding::new(
                params,
                "embed_pos.",
                cfg.total_len(),
                d,
                embed_std,
                seed,
            )?),
            _ => None,
        };
        let lm_head = Linear::new(params, "lm_head.", d, cfg.vocab_size, false, seed)?;
        let q_head = Linear::new(params, "q_head.", d, 2, true, seed)?;
        // The official init makes every Q logit exactly −5, so training sequences run all
        // segments until the head learns.
        params.get_mut(q_head.weight).value = Tensor::zeros([2, d], DType::F32);
        params
            .get_mut(q_head.bias.expect("q_head has a bias"))
            .value = Tensor::full([2], -5.0, DType::F32);
        let (h_level, l_level) = match cfg.arch {
            // HRM registers H_level first, as its state dict lists it.
            Arch::Hrm => (
                Some(ReasoningModule::new(
                    params,
                    "H_level",
                    cfg.H_layers,
                    &cfg,
                    seed,
                )?),
                ReasoningModule::new(params, "L_level", cfg.L_layers, &cfg, seed)?,
            ),
            Arch::Trm => (
                None,
                ReasoningModule::new(params, "L_level", cfg.L_layers, &cfg, seed)?,
            ),
        };
        let rope = match (cfg.pos_encodings, cfg.mlp_t) {
            (PosEncoding::Rope, false) => Some(RopeTable::one_d(
                cfg.total_len(),
                cfg.head_dim(),
                cfg.rope_theta,
            )?),
            _ => None,
        };
        let init = |name: &str| Tensor::trunc_normal([d], 1.0, init_seed(seed, name), DType::F32);
        let buffers = Buffers {
            h_init: init(Buffers::H_INIT)?,
            l_init: init(Buffers::L_INIT)?,
            puzzle_emb: (cfg.puzzle_emb_ndim > 0).then(|| {
                Tensor::zeros(
                    [cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim],
                    DType::F32,
                )
            }),
        };
        // A bf16 forward binds a bf16 copy of the weights, which the optimizer refreshes.
        if cfg.forward_dtype.dtype() != DType::F32 {
            params.keep_mirror(cfg.forward_dtype.dtype())?;
        }
        Ok(Reasoner {
            cfg,
            embed_tokens,
            embed_pos,
            lm_head,
            q_head,
            l_level,
            h_level,
            rope,
            buffers,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Replaces the buffers (from a checkpoint), checking their shapes.
    pub fn set_buffers(&mut self, buffers: Buffers) -> Result<()> {
        let d = self.cfg.hidden_size;
        let expect = |name: &str, t: &Tensor, dims: &[usize]| {
            if t.dims() != dims {
                return Err(Error::shape(
                    "model buffers",
                    format!("{name} has shape {}, the model needs {dims:?}", t.shape()),
                ));
            }
            Ok(())
        };
        expect(Buffers::H_INIT, &buffers.h_init, &[d])?;
        expect(Buffers::L_INIT, &buffers.l_init, &[d])?;
        match (&buffers.puzzle_emb, self.cfg.puzzle_emb_ndim) {
            (None, 0) => {}
            (Some(t), ndim) if ndim > 0 => expect(
                Buffers::PUZZLE_EMB,
                t,
                &[self.cfg.num_puzzle_identifiers, ndim],
            )?,
            (None, _) => {
                return Err(Error::arg(
                    "model buffers",
                    format!("{} is missing", Buffers::PUZZLE_EMB),
                ))
            }
            (Some(_), _) => {
                return Err(Error::arg(
                    "model buffers",
                    format!("{} given, but puzzle_emb_ndim is 0", Buffers::PUZZLE_EMB),
                ))
            }
        }
        self.buffers = Buffers {
            h_init: buffers.h_init.to_dtype(DType::F32)?,
            l_init: buffers.l_init.to_dtype(DType::F32)?,
            puzzle_emb: buffers
                .puzzle_emb
                .map(|t| t.to_dtype(DType::F32))
                .transpose()?,
        };
        Ok(())
    }

    /// `[B, P + S, D]`: the puzzle vector zero-padded into the prefix slots, then the token
    /// embeddings, (learned positions,) all scaled by √D, in the forward dtype (as the official
    /// code: bf16 table rows, the f32 puzzle rows cast, the sum and scale stored in bf16).
    pub fn input_embeddings(
        &self,
        tape: &Tape,
        params: &Params,
        inputs: &Tensor,
        puzzle_ids: &Tensor,
    ) -> Result<(Var, Option<Var>)> {
        let cfg = &self.cfg;
        let (b, s) = match inputs.dims() {
            &[b, s] if s == cfg.seq_len => (b, s),
            _ => {
                return Err(Error::shape(
                    "model inputs",
                    format!(
                        "inputs must be [B, {}], got {}",
                        cfg.seq_len,
                        inputs.shape()
                    ),
                ))
            }
        };
        if puzzle_ids.dims() != [b] {
            return Err(Error::shape(
                "model inputs",
                format!(
                    "puzzle identifiers must be [{b}], got {}",
                    puzzle_ids.shape()
                ),
            ));
        }
        // Resident inputs were checked where the batch was built (`check_batch`): reading them
        // back here would synchronise inside the step.
        if inputs.is_on_host() {
            check_token_range(inputs, cfg.vocab_size)?;
        }
        let d = cfg.hidden_size;
        let dtype = cfg.forward_dtype.dtype();
        let tokens = self.embed_tokens.forward_as(tape, params, inputs, dtype)?;
        let (mut emb, rows) = match &self.buffers.puzzle_emb {
            None => (tokens, None),
            Some(table) => {
                let rows = tape.sparse_embedding(table, puzzle_ids)?;
                let p = cfg.prefix_len();
                let padding = p * d - cfg.puzzle_emb_ndim;
                // The gathered rows stay the f32 leaf SignSGD reads; the model sees them cast.
                let cast_rows = tape.cast(&rows, dtype)?;
                let padded = if padding == 0 {
                    cast_rows
                } else {
                    let zeros = constant(
                        tape,
                        &format!("puzzle padding {b}x{padding} {dtype}"),
                        || Ok(Tensor::zeros([b, padding], dtype)),
                    )?;
                    tape.concat(&[&cast_rows, &Var::constant(zeros)], 1)?
                };
                let prefix = tape.reshape(&padded, [b, p, d])?;
                (tape.concat(&[&prefix, &tokens], 1)?, Some(rows))
            }
        };
        if let Some(pos) = &self.embed_pos {
            let len = cfg.total_len();
            let positions = constant(tape, &format!("positions {b}x{len}"), || {
                let positions: Vec<i32> = (0..b).flat_map(|_| 0..(len as i32)).collect();
                Tensor::from_vec(positions, [b, len])
            })?;
            let pos = pos.forward_as(tape, params, &positions, dtype)?;
            // The official constant 0.707106781, i.e. 1/√2 (so the sum keeps unit variance).
            emb = tape.scale(&tape.add(&emb, &pos)?, std::f64::consts::FRAC_1_SQRT_2)?;
        }
        debug_assert_eq!(emb.dims(), &[b, s + cfg.prefix_len(), d]);
        Ok((tape.scale(&emb, (d as f64).sqrt())?, rows))
    }

    /// One supervision segment from the carried states (`[B, P + S, D]` each): the recursion,
    /// then the heads. Only the calls the official code backpropagates through are recorded;
    /// everything before them runs under `no_grad`.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &self,
        tape: &Tape,
        params: &Params,
        z_h: &Tensor,
        z_l: &Tensor,
        inputs: &Tensor,
        puzzle_ids: &Tensor,
        probe: &Probe,
    ) -> Result<SegmentOutput> {
        let (x, puzzle_rows) = self.input_embeddings(tape, params, inputs, puzzle_ids)?;
        probe.record(|| "input_embeddings".into(), x.value());
        let expected = [inputs.dims()[0], self.cfg.total_len(), self.cfg.hidden_size];
        for (name, z) in [("z_H", z_h), ("z_L", z_l)] {
            if z.dims() != expected {
                return Err(Error::shape(
                    "model carry",
                    format!("{name} is {}, expected {expected:?}", z.shape()),
                ));
            }
        }
        // The recurrent state is stored in the forward dtype; it goes back to the caller's carry
        // dtype, which holds bf16 values exactly, so a bf16 state round-trips unchanged.
        let compute = tape.compute();
        let (carry_dtype, dtype) = (z_h.dtype(), self.cfg.forward_dtype.dtype());
        let z_h = &cast_tensor(compute, z_h, dtype)?;
        let z_l = &cast_tensor(compute, z_l, dtype)?;
        let (z_h, z_l) = match self.cfg.arch {
            Arch::Trm => self.trm_recursion(tape, params, z_h, z_l, &x, probe)?,
            Arch::Hrm => self.hrm_recursion(tape, params, z_h, z_l, &x, probe)?,
        };
        let (logits, q_halt, q_continue) = self.heads(tape, params, &z_h)?;
        Ok(SegmentOutput {
            z_h: cast_tensor(compute, z_h.value(), carry_dtype)?,
            z_l: cast_tensor(compute, z_l.value(), carry_dtype)?,
            logits,
            q_halt,
            q_continue,
            puzzle_rows,
        })
    }

    /// TRM (`trm.py:205-221`): `H_cycles − 1` cycles without gradient, then one cycle with full
    /// backprop; a cycle is `L_cycles` updates `z_L = net(z_L + z_H + x)` and one
    /// `z_H = net(z_H + z_L)`, all with the same network.
    fn trm_recursion(
        &self,
        tape: &Tape,
        params: &Params,
        z_h: &Tensor,
        z_l: &Tensor,
        x: &Var,
        probe: &Probe,
    ) -> Result<(Var, Var)> {
        let net = &self.l_level;
        let rope = self.rope.as_ref();
        let mut call = 0;
        let mut cycle = |z_h: Var, z_l: Var| -> Result<(Var, Var)> {
            let mut z_l = z_l;
            for _ in 0..self.cfg.L_cycles {
                z_l = net.forward(tape, params, &[&z_l, &z_h, x], rope, probe, call)?;
                call += 1;
            }
            let z_h = net.forward(tape, params, &[&z_h, &z_l], rope, probe, call)?;
            call += 1;
            Ok((z_h, z_l))
        };
        let (mut h, mut l) = (Var::constant(z_h.clone()), Var::constant(z_l.clone()));
        for _ in 1..self.cfg.H_cycles {
            (h, l) = tape.no_grad(|| cycle(h.clone(), l.clone()))?;
        }
        cycle(h, l)
    }

    /// HRM (`hrm_act_v1.py:180-213`): every L and H call but the last of each without
    /// gradient, then `z_L = f_L(z_L + z_H + x)`, `z_H = f_H(z_H + z_L)` with gradient.
    fn hrm_recursion(
        &self,
        tape: &Tape,
        params: &Params,
        z_h: &Tensor,
        z_l: &Tensor,
        x: &Var,
        probe: &Probe,
    ) -> Result<(Var, Var)> {
        let (f_l, f_h) = (
            &self.l_level,
            self.h_level.as_ref().expect("HRM builds an H_level"),
        );
        let rope = self.rope.as_ref();
        let (n, t) = (self.cfg.H_cycles, self.cfg.L_cycles);
        let mut call = 0;
        let (mut h, mut l) = (Var::constant(z_h.clone()), Var::constant(z_l.clone()));
        tape.no_grad(|| -> Result<()> {
            for h_step in 0..n {
                for l_step in 0..t {
                    if h_step + 1 < n || l_step + 1 < t {
                        l = f_l.forward(tape, params, &[&l, &h, x], rope, probe, call)?;
                        call += 1;
                    }
                }
                if h_step + 1 < n {
                    h = f_h.forward(tape, params, &[&h, &l], rope, probe, call)?;
                    call += 1;
                }
            }
            Ok(())
        })?;
        let l = f_l.forward(tape, params, &[&l, &h, x], rope, probe, call)?;
        let h = f_h.forward(tape, params, &[&h, &l], rope, probe, call + 1)?;
        Ok((h, l))
    }

    /// `lm_head(z_H)[:, P:]` and the two Q logits from position 0 of z_H, both f32 whatever the
    /// forward dtype (the official `.to(float32)` of the Q logits; the loss upcasts the logits).
    fn heads(&self, tape: &Tape, params: &Params, z_h: &Var) -> Result<(Var, Var, Var)> {
        let (b, d) = (z_h.dims()[0], self.cfg.hidden_size);
        let p = self.cfg.prefix_len();
        // Slicing before the head computes the same logits without the prefix rows.
        let tokens = tape.narrow(z_h, 1, p, self.cfg.seq_len)?;
        let logits = tape.cast(&self.lm_head.forward(tape, params, &tokens)?, DType::F32)?;
        let first = tape.reshape(&tape.narrow(z_h, 1, 0, 1)?, [b, d])?;
        let q = tape.cast(&self.q_head.forward(tape, params, &first)?, DType::F32)?;
        let halves = tape.split(&q, &[1, 1], 1)?;
        let q_halt = tape.reshape(&halves[0], [b])?;
        let q_continue = tape.reshape(&halves[1], [b])?;
        Ok((logits, q_halt, q_continue))
    }

    /// `[B, P + S, D]` states all equal to `init` (`H_init` or `L_init`) broadcast.
    /// The checks a batch must pass before it goes to a device, where the kernels cannot report
    /// a bad value without a synchronisation: every token inside the vocabulary, every label a
    /// class or the ignore label −100, every puzzle id a row of the puzzle table. The messages
    /// are the ones the CPU ops give.
    pub fn check_batch(&self, inputs: &Tensor, labels: &Tensor, puzzle_ids: &Tensor) -> Result<()> {
        let cfg = &self.cfg;
        check_token_range(inputs, cfg.vocab_size)?;
        crate::device::cpu::loss::check_labels(
            "labels",
            labels.i32_data("labels")?,
            cfg.vocab_size,
            true,
            |_| true,
        )?;
        if cfg.puzzle_emb_ndim > 0 {
            crate::device::cpu::sparse_embedding::row_indices(
                "puzzle identifiers",
                puzzle_ids,
                cfg.num_puzzle_identifiers,
            )?;
        }
        Ok(())
    }

    pub fn initial_state(&self, init: &Tensor, batch: usize) -> Result<Tensor> {
        // A resident init vector is read back once here (a carry's first segment, before any
        // step is captured); the segments themselves reset rows from it on the device.
        let row = init.to_host()?.to_vec_f32()?;
        let n = self.cfg.total_len() * batch;
        let data: Vec<f32> = (0..n).flat_map(|_| row.iter().copied()).collect();
        Tensor::from_vec(data, [batch, self.cfg.total_len(), self.cfg.hidden_size])
    }
}

/// A constant input of the model: built on the host, and on a kernel tape uploaded once per
/// compute under `key` (`Kernels::constant`), so a step uploads nothing but its batch.
fn constant(tape: &Tape, key: &str, make: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    match tape.compute().kernels() {
        None => make(),
        Some(kernels) => kernels.constant(&format!("model: {key}"), make),
    }
}

/// Token ids must index the embedding table; a wrong vocabulary is a clear error, not an
/// out-of-bounds read deep inside the gather. Ids already on the device are not read back (that
/// would be a copy inside a training step): they were checked on the host where their batch
/// was built (`models::act::act_step` checks each new batch), and the gather kernel turns a bad
/// one into NaNs rather than reading out of bounds.
pub(crate) fn check_token_range(inputs: &Tensor, vocab: usize) -> Result<()> {
    if !inputs.is_on_host() {
        return Ok(());
    }
    let ids = inputs.i32_data("model inputs")?;
    if let Some((i, &t)) = ids
        .iter()
        .enumerate()
        .find(|(_, &t)| t < 0 || t as usize >= vocab)
    {
        return Err(Error::arg(
            "model inputs",
            format!(
                "token {t} at position {i} is outside the vocabulary 0..{vocab} (wrong dataset \
                 or vocab_size?)"
            ),
        ));
    }
    Ok(())
}
