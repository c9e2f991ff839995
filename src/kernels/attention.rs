//! Launchers for `kernels/attention.cu`: fused multi-head attention on `[B, S, H, hd]` tensors
//! (non-causal, unmasked, head dim 32 or 64, f32 or bf16 storage with f32 math), forward and
//! backward, with an optional RoPE prologue. Validation follows `device::cpu::attention`; the
//! kernels do not implement dropout, so options asking for it are rejected. The bf16 forward runs
//! on tensor cores (`attention_fwd_tc_bf16`); the f32 forward and the backward are scalar.
//!
//! The forward writes `out` (the inputs' dtype) and the row log-sum-exp `lse` (f32 `[B, H, S]`),
//! as `cpu::attention::attention_fwd`. The backward runs two kernels: `attention_bwd_dq` (one block
//! per query tile) and `attention_bwd_dkv` (one block per key tile); both recompute the
//! probabilities from `lse` and `D = rowsum(dO ⊙ O)` from `out`, so they need no scratch memory and
//! no atomics.
//!
//! With an `AttentionRope`, q and k are rotated as the kernels load them, which equals
//! `cpu::rope::rope_fwd` on q and k followed by attention; the backward's dq and dk are then the
//! gradients with respect to the unrotated q and k.

use crate::device::{DeviceTensor, KernelArg, KernelBackend, LaunchConfig};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{dtype_suffix, expect_out, expect_same_dtype};
use crate::shape::Shape;
use crate::tensor::Tensor;

pub use crate::device::cpu::attention::AttentionOpts;
pub use crate::device::cpu::rope::{PairLayout, RopeTable};

const OP: &str = "attention";

/// Threads per block of the scalar attention kernels (their `__launch_bounds__`): 4 warps.
const THREADS: u32 = 128;
/// Threads per block of the tensor-core forward (2 warps of 16 query rows).
const TC_THREADS: u32 = 64;
/// The tensor-core forward pads its bf16 tile rows by 8 halves (16 bytes), so ldmatrix's rows
/// stay 16-byte aligned and fall in different banks.
const TC_ROW_PADDING: usize = 8;
/// Rows per tile: the block's own rows, and the rows streamed per step (one per lane).
const TILE: usize = 32;
/// Probabilities (or score gradients) a block stages per streamed tile: 4 warps × 8 rows × 32.
const STAGED_SCORES: usize = TILE * TILE;

/// The `rope_layout` kernel argument.
const ROPE_NONE: i32 = 0;
const ROPE_ROTATE_HALF: i32 = 1;
const ROPE_INTERLEAVED: i32 = 2;

/// A `RopeTable` on the device for the attention prologue: f32 `[positions, hd/2, 2]` holding
/// (cos, sin) of every (position, pair) angle.
pub struct AttentionRope {
    cos_sin: DeviceTensor,
    layout: PairLayout,
    head_dim: usize,
    positions: usize,
}

impl AttentionRope {
    /// Uploads `table` (rounded to f32, the kernels' compute type).
    pub fn upload(dev: &dyn KernelBackend, table: &RopeTable) -> Result<AttentionRope> {
        let (positions, half) = (table.positions(), table.head_dim() / 2);
        let values: Vec<f32> = (0..positions * half)
            .flat_map(|e| {
                let (cos, sin) = table.cos_sin(e / half, e % half);
                [cos as f32, sin as f32]
            })
            .collect();
        let host = Tensor::from_vec(values, [positions, half, 2])?;
        Ok(AttentionRope {
            cos_sin: DeviceTensor::upload(dev, &host)?,
            layout: table.layout(),
            head_dim: table.head_dim(),
            positions,
        })
    }

    fn layout_arg(&self) -> i32 {
        match self.layout {
            PairLayout::RotateHalf => ROPE_ROTATE_HALF,
            PairLayout::Interleaved => ROPE_INTERLEAVED,
        }
    }
}

/// The inputs of one attention call: q, k, v `[B, S, H, hd]` of one dtype, the options (scale;
/// dropout is rejected) and an optional RoPE prologue.
#[derive(Clone, Copy)]
pub struct AttentionInputs<'a> {
    pub q: &'a DeviceTensor,
    pub k: &'a DeviceTensor,
    pub v: &'a DeviceTensor,
    pub opts: AttentionOpts,
    pub rope: Option<&'a AttentionRope>,
}

impl<'a> AttentionInputs<'a> {
    /// q, k and v with the default options (scale `1/√hd`) and no RoPE.
    pub fn new(q: &'a DeviceTensor, k: &'a DeviceTensor, v: &'a DeviceTensor) -> Self {
        AttentionInputs {
            q,
            k,
            v,
            opts: AttentionOpts::default(),
            rope: None,
        }
    }
    pub fn with_opts(self, opts: AttentionOpts) -> Self {
        AttentionInputs { opts, ..self }
    }
    pub fn with_rope(self, rope: &'a AttentionRope) -> Self {
        AttentionInputs {
            rope: Some(rope),
            ..self
        }
    }
}

/// The validated sizes of one call.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
}

impl Geometry {
    fn lse_shape(&self) -> Shape {
        [self.batch, self.heads, self.seq].into()
    }
    /// One block per (batch·head, 32-row tile).
    fn blocks(&self) -> usize {
        self.batch * self.heads * self.seq.div_ceil(TILE)
    }
    fn launch(&self, shared_floats: usize) -> LaunchConfig {
        LaunchConfig::linear(self.blocks() as u32, THREADS)
            .with_shared_mem((shared_floats * std::mem::size_of::<f32>()) as u32)
    }
    /// A tile of 32 rows, `hd` floats each.
    fn tile(&self) -> usize {
        TILE * self.head_dim
    }
    /// A tile whose rows are padded to `hd + 1` floats (read one row per lane).
    fn padded_tile(&self) -> usize {
        TILE * (self.head_dim + 1)
    }
    /// Forward: q, v tiles, a padded k tile, the staged probabilities.
    fn fwd_shared_floats(&self) -> usize {
        2 * self.tile() + self.padded_tile() + STAGED_SCORES
    }
    /// dQ pass: q, dO tiles, padded k and v tiles, the staged score gradients.
    fn bwd_dq_shared_floats(&self) -> usize {
        2 * self.tile() + 2 * self.padded_tile() + STAGED_SCORES
    }
    /// dK/dV pass: k, v tiles, padded q and dO tiles, lse and D of a query tile, probabilities
    /// and score gradients.
    fn bwd_dkv_shared_floats(&self) -> usize {
        2 * self.tile() + 2 * self.padded_tile() + 2 * TILE + 2 * STAGED_SCORES
    }
}

/// Checks the inputs as `cpu::attention` does, plus what the kernels need (head dim 32 or 64, no
/// dropout, a RoPE table that fits); returns the sizes and the kernel-name suffix.
fn validate(inputs: &AttentionInputs<'_>) -> Result<(Geometry, &'static str)> {
    let AttentionInputs {
        q,
        k,
        v,
        opts,
        rope,
    } = *inputs;
    q.shape().expect_rank(OP, 4)?;
    k.shape().expect_eq(OP, q.shape())?;
    v.shape().expect_eq(OP, q.shape())?;
    let suffix = dtype_suffix(OP, q)?;
    expect_same_dtype(OP, k, q.dtype())?;
    expect_same_dtype(OP, v, q.dtype())?;
    let &[batch, seq, heads, head_dim] = q.dims() else {
        unreachable!("rank checked above")
    };
    if head_dim != 32 && head_dim != 64 {
        return Err(Error::arg(
            OP,
            format!("the fused kernels take head_dim 32 or 64, got {head_dim}"),
        ));
    }
    if opts.dropout.is_some() {
        return Err(Error::arg(
            OP,
            "the fused kernels do not implement dropout; use cpu::attention",
        ));
    }
    let scale = opts.scale.unwrap_or(1.0 / (head_dim as f64).sqrt());
    if !scale.is_finite() {
        return Err(Error::arg(OP, format!("scale must be finite, got {scale}")));
    }
    if let Some(rope) = rope {
        if rope.head_dim != head_dim {
            return Err(Error::shape(
                OP,
                format!("head_dim {head_dim} vs the RoPE table's {}", rope.head_dim),
            ));
        }
        if seq > rope.positions {
            return Err(Error::shape(
                OP,
                format!(
                    "sequence length {seq} exceeds the RoPE table's {} positions",
                    rope.positions
                ),
            ));
        }
    }
    let geometry = Geometry {
        batch,
        seq,
        heads,
        head_dim,
        scale: scale as f32,
    };
    if geometry.blocks() > i32::MAX as usize || seq > i32::MAX as usize {
        return Err(Error::arg(OP, format!("{} is too large", q.shape())));
    }
    Ok((geometry, suffix))
}

fn expect_lse(lse: &DeviceTensor, g: &Geometry) -> Result<()> {
    expect_out(OP, lse, &g.lse_shape(), DType::F32)
}

/// The kernels' trailing arguments: the RoPE table (a null pointer without one), the sizes, the
/// scale and the RoPE layout.
fn tail_args<'a>(g: &Geometry, rope: Option<&'a AttentionRope>) -> [KernelArg<'a>; 6] {
    [
        rope.map_or(KernelArg::U64(0), |r| KernelArg::In(&r.cos_sin.buf)),
        KernelArg::I32(g.seq as i32),
        KernelArg::I32(g.heads as i32),
        KernelArg::I32(g.head_dim as i32),
        KernelArg::F32(g.scale),
        KernelArg::I32(rope.map_or(ROPE_NONE, AttentionRope::layout_arg)),
    ]
}

/// Attention forward into `out` (shaped and typed like q) and `lse` (f32 `[B, H, S]`).
pub fn attention_fwd_into(
    dev: &dyn KernelBackend,
    inputs: &AttentionInputs<'_>,
    out: &mut DeviceTensor,
    lse: &mut DeviceTensor,
) -> Result<()> {
    let (g, suffix) = validate(inputs)?;
    expect_out(OP, out, inputs.q.shape(), inputs.q.dtype())?;
    expect_lse(lse, &g)?;
    if g.blocks() == 0 {
        return Ok(());
    }
    let mut args = vec![
        KernelArg::In(&inputs.q.buf),
        KernelArg::In(&inputs.k.buf),
        KernelArg::In(&inputs.v.buf),
        KernelArg::Out(&mut out.buf),
        KernelArg::Out(&mut lse.buf),
    ];
    args.extend(tail_args(&g, inputs.rope));
    // bf16 runs on tensor cores; f32 keeps the scalar kernel (mma.sync has no f32 operands).
    let (name, launch) = if inputs.q.dtype() == DType::BF16 {
        let bf16_tiles = 3 * TILE * (g.head_dim + TC_ROW_PADDING);
        let launch = LaunchConfig::linear(g.blocks() as u32, TC_THREADS)
            .with_shared_mem((bf16_tiles * std::mem::size_of::<u16>()) as u32);
        ("attention_fwd_tc_bf16".to_string(), launch)
    } else {
        (
            format!("attention_fwd_{suffix}"),
            g.launch(g.fwd_shared_floats()),
        )
    };
    dev.launch(&name, launch, &mut args)
}

/// The forward's results on the device: `out` `[B, S, H, hd]` and `lse` f32 `[B, H, S]`.
pub struct DeviceAttentionOutput {
    pub out: DeviceTensor,
    pub lse: DeviceTensor,
}

/// Attention forward (see `attention_fwd_into`).
pub fn attention_fwd(
    dev: &dyn KernelBackend,
    inputs: &AttentionInputs<'_>,
) -> Result<DeviceAttentionOutput> {
    let (g, _) = validate(inputs)?;
    let mut result = DeviceAttentionOutput {
        out: DeviceTensor::uninit(dev, inputs.q.shape().clone(), inputs.q.dtype())?,
        lse: DeviceTensor::uninit(dev, g.lse_shape(), DType::F32)?,
    };
    attention_fwd_into(dev, inputs, &mut result.out, &mut result.lse)?;
    Ok(result)
}

/// Gradients with respect to q, k and v, each shaped and typed like q.
pub struct DeviceAttentionGrads {
    pub dq: DeviceTensor,
    pub dk: DeviceTensor,
    pub dv: DeviceTensor,
}

impl DeviceAttentionGrads {
    /// Uninitialised gradients for `inputs` (the backward writes every element).
    pub fn uninit(dev: &dyn KernelBackend, inputs: &AttentionInputs<'_>) -> Result<Self> {
        let new = || DeviceTensor::uninit(dev, inputs.q.shape().clone(), inputs.q.dtype());
        Ok(DeviceAttentionGrads {
            dq: new()?,
            dk: new()?,
            dv: new()?,
        })
    }
}

/// Attention backward into `grads`, from the output gradient `dout`, the forward's `out` and
/// `lse`, and the same inputs (options and RoPE table included) the forward had.
pub fn attention_bwd_into(
    dev: &dyn KernelBackend,
    inputs: &AttentionInputs<'_>,
    forward: &DeviceAttentionOutput,
    dout: &DeviceTensor,
    grads: &mut DeviceAttentionGrads,
) -> Result<()> {
    let (g, suffix) = validate(inputs)?;
    let (shape, dtype) = (inputs.q.shape(), inputs.q.dtype());
    dout.shape().expect_eq(OP, shape)?;
    expect_same_dtype(OP, dout, dtype)?;
    forward.out.shape().expect_eq(OP, shape)?;
    expect_same_dtype(OP, &forward.out, dtype)?;
    forward.lse.shape().expect_eq(OP, &g.lse_shape())?;
    expect_same_dtype(OP, &forward.lse, DType::F32)?;
    for grad in [&grads.dq, &grads.dk, &grads.dv] {
        expect_out(OP, grad, shape, dtype)?;
    }
    if g.blocks() == 0 {
        return Ok(());
    }
    let saved = |dout| {
        [
            KernelArg::In(dout),
            KernelArg::In(&inputs.q.buf),
            KernelArg::In(&inputs.k.buf),
            KernelArg::In(&inputs.v.buf),
            KernelArg::In(&forward.out.buf),
            KernelArg::In(&forward.lse.buf),
        ]
    };

    let mut args = saved(&dout.buf).into_iter().collect::<Vec<_>>();
    args.push(KernelArg::Out(&mut grads.dq.buf));
    args.extend(tail_args(&g, inputs.rope));
    dev.launch(
        &format!("attention_bwd_dq_{suffix}"),
        g.launch(g.bwd_dq_shared_floats()),
        &mut args,
    )?;

    let mut args = saved(&dout.buf).into_iter().collect::<Vec<_>>();
    args.push(KernelArg::Out(&mut grads.dk.buf));
    args.push(KernelArg::Out(&mut grads.dv.buf));
    args.extend(tail_args(&g, inputs.rope));
    dev.launch(
        &format!("attention_bwd_dkv_{suffix}"),
        g.launch(g.bwd_dkv_shared_floats()),
        &mut args,
    )
}

/// Attention backward (see `attention_bwd_into`).
pub fn attention_bwd(
    dev: &dyn KernelBackend,
    inputs: &AttentionInputs<'_>,
    forward: &DeviceAttentionOutput,
    dout: &DeviceTensor,
) -> Result<DeviceAttentionGrads> {
    validate(inputs)?;
    let mut grads = DeviceAttentionGrads::uninit(dev, inputs)?;
    attention_bwd_into(dev, inputs, forward, dout, &mut grads)?;
    Ok(grads)
}
