//! Bench cases of `kernels/rope.cu` at the model shapes: TRM's q/k `[B, 97, 8, 64]` with the 1D
//! rotate-half table (θ 10000, the 16-slot puzzle prefix included in the 97 positions) and
//! Sotaku's `[B, 81, 4, 32]` with the 2D interleaved table of its 9×9 grid (θ 10); forward and
//! backward, bf16. Cost model (docs/kernels-rope-noise.md): 3 FLOPs per element (4 multiplies and
//! 2 adds per pair); minimum bytes 2·s·N for x and y plus the two f32 tables, 4·S·hd bytes.

use crate::bench::suite::Case;
use crate::device::cpu::rope::RopeTable;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::rope::{rope_bwd_into, rope_fwd_into, DeviceRopeTable};
use crate::tensor::Tensor;

const BF16_BYTES: f64 = 2.0;

/// One model's RoPE: its `[S, H, hd]` and table.
struct RopeShape {
    name: &'static str,
    seq: usize,
    heads: usize,
    head_dim: usize,
    table: RopeTable,
}

impl RopeShape {
    /// The forward and backward cases at batch `batch`, on fresh random bf16 inputs.
    fn cases<'a>(
        self,
        dev: &'a dyn KernelBackend,
        batch: usize,
        seed: u64,
        kernels: [&'static str; 2],
    ) -> Result<[Case<'a>; 2]> {
        let dims = [batch, self.seq, self.heads, self.head_dim];
        let n = dims.iter().product::<usize>() as f64;
        let table_bytes = (4 * self.seq * self.head_dim) as f64;
        let shape = format!("{dims:?} {}", self.name);
        let case = |kernel: &'static str, seed: u64, backward: bool| -> Result<Case<'a>> {
            let x = DeviceTensor::upload(dev, &Tensor::randn(dims, 1.0, seed, DType::BF16)?)?;
            let mut y = DeviceTensor::uninit(dev, dims, DType::BF16)?;
            let table = DeviceRopeTable::upload(dev, &self.table)?;
            Ok(Case {
                kernel,
                shape: shape.clone(),
                flops: 3.0 * n,
                bytes: 2.0 * BF16_BYTES * n + table_bytes,
                run: Box::new(move || {
                    if backward {
                        rope_bwd_into(dev, &x, &table, &mut y)
                    } else {
                        rope_fwd_into(dev, &x, &table, &mut y)
                    }
                }),
            })
        };
        Ok([
            case(kernels[0], seed, false)?,
            case(kernels[1], seed + 1, true)?,
        ])
    }
}

/// The RoPE cases at batch `batch`: TRM 1D and Sotaku 2D, forward and backward.
pub fn cases(dev: &dyn KernelBackend, batch: usize) -> Result<Vec<Case<'_>>> {
    let (side, trm_seq) = (9, 97);
    let cells = side * side;
    let rows: Vec<usize> = (0..cells).map(|p| p / side).collect();
    let cols: Vec<usize> = (0..cells).map(|p| p % side).collect();
    let trm = RopeShape {
        name: "TRM 1D θ 10000",
        seq: trm_seq,
        heads: 8,
        head_dim: 64,
        table: RopeTable::one_d(trm_seq, 64, 10000.0)?,
    };
    let sotaku = RopeShape {
        name: "Sotaku 2D θ 10",
        seq: cells,
        heads: 4,
        head_dim: 32,
        table: RopeTable::two_d(&rows, &cols, 32, 10.0)?,
    };
    let mut cases = Vec::new();
    cases.extend(trm.cases(
        dev,
        batch,
        60,
        ["rope_fwd_bf16 (TRM q/k)", "rope_bwd_bf16 (TRM q/k)"],
    )?);
    cases.extend(sotaku.cases(
        dev,
        batch,
        62,
        ["rope_fwd_bf16 (Sotaku 2D)", "rope_bwd_bf16 (Sotaku 2D)"],
    )?);
    Ok(cases)
}
