//! Bench cases of `kernels/attention.cu` at the models' attention shapes, bf16 storage: TRM
//! Sudoku (`[B, 97, 8, 64]`), ARC (`[B, 916, 8, 64]`) and Sotaku (`[B, 81, 4, 32]`), forward and
//! backward each.
//!
//! Cost model, with `N = B·S·H·hd` elements per tensor and 2-byte elements:
//! - forward: `4·B·H·S²·hd` FLOPs (`Q·Kᵀ` and `P·V`); bytes: q, k, v read and o written once
//!   (`4·N·2`) plus the f32 lse (`4·B·H·S`);
//! - backward: `10·B·H·S²·hd` FLOPs (recomputing `Q·Kᵀ`, then `dO·Vᵀ`, `dS·K`, `dSᵀ·Q`, `Pᵀ·dO`;
//!   the dQ pass's second `Q·Kᵀ` and `dO·Vᵀ` are not counted); bytes: q, k, v, o, dO read and dq,
//!   dk, dv written once (`8·N·2`) plus the lse.

use crate::bench::suite::Case;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::attention::{self, AttentionInputs, DeviceAttentionGrads};
use crate::tensor::Tensor;
use std::rc::Rc;

/// One model's attention shape: sequence length, heads, head dim.
struct Shape {
    model: &'static str,
    /// Whether the case runs on Emu: ARC's 916 positions take about 6 s a run there (the
    /// emulator runs the scalar kernel at well under 1 GFLOP/s), so they run on a GPU only.
    on_emu: bool,
    seq: usize,
    heads: usize,
    head_dim: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        model: "TRM Sudoku",
        on_emu: true,
        seq: 97,
        heads: 8,
        head_dim: 64,
    },
    Shape {
        model: "ARC",
        on_emu: false,
        seq: 916,
        heads: 8,
        head_dim: 64,
    },
    Shape {
        model: "Sotaku",
        on_emu: true,
        seq: 81,
        heads: 4,
        head_dim: 32,
    },
];

/// The forward and backward cases of every shape, at batch `batch` (on Emu, of the shapes that
/// run there in seconds).
pub fn cases(dev: &dyn KernelBackend, batch: usize) -> Result<Vec<Case<'_>>> {
    let on_emu = dev.name().starts_with("emu");
    let mut cases = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        if on_emu && !shape.on_emu {
            continue;
        }
        let dims = [batch, shape.seq, shape.heads, shape.head_dim];
        let tensor = |seed: u64| -> Result<DeviceTensor> {
            let host = Tensor::randn(dims.to_vec(), 1.0, 10 * i as u64 + seed, DType::BF16)?;
            DeviceTensor::upload(dev, &host)
        };
        // Both cases read the same q, k, v; the backward also the forward's out and lse.
        let qkv = Rc::new([tensor(1)?, tensor(2)?, tensor(3)?]);
        let dout = tensor(4)?;
        let [q, k, v] = &*qkv;
        let forward = attention::attention_fwd(dev, &AttentionInputs::new(q, k, v))?;
        let mut out = DeviceTensor::uninit(dev, dims, DType::BF16)?;
        let mut lse = DeviceTensor::uninit(dev, [batch, shape.heads, shape.seq], DType::F32)?;
        let mut grads = DeviceAttentionGrads::uninit(dev, &AttentionInputs::new(q, k, v))?;

        let elements = dims.iter().product::<usize>() as f64;
        let square = (batch * shape.heads * shape.seq * shape.seq * shape.head_dim) as f64;
        let lse_bytes = (4 * batch * shape.heads * shape.seq) as f64;
        let label = format!("{} {dims:?}", shape.model);

        let fwd_qkv = Rc::clone(&qkv);
        cases.push(Case {
            kernel: "attention_fwd_tc_bf16",
            shape: label.clone(),
            flops: 4.0 * square,
            bytes: 4.0 * elements * 2.0 + lse_bytes,
            run: Box::new(move || {
                let [q, k, v] = &*fwd_qkv;
                let inputs = AttentionInputs::new(q, k, v);
                attention::attention_fwd_into(dev, &inputs, &mut out, &mut lse)
            }),
        });
        cases.push(Case {
            kernel: "attention_bwd_bf16 (dq + dkv passes)",
            shape: label,
            flops: 10.0 * square,
            bytes: 8.0 * elements * 2.0 + lse_bytes,
            run: Box::new(move || {
                let [q, k, v] = &*qkv;
                let inputs = AttentionInputs::new(q, k, v);
                attention::attention_bwd_into(dev, &inputs, &forward, &dout, &mut grads)
            }),
        });
    }
    Ok(cases)
}
