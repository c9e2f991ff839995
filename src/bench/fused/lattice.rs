//! Bench case of `kernels/lattice.cu`: one LDT lattice round on a Sudoku pool of 512 chains of
//! 81 cells × 9 values (f32 state and heads, i32 givens), the size of the pool a round advances;
//! the batch size does not change it.
//!
//! Cost model (docs/kernels.md), for `B` chains of `S` cells × `C` values, `s` bytes per stored
//! element: one threshold comparison per candidate, `B·S·C` FLOPs; minimum bytes: the state and
//! keep logits read and the new state written (`3·B·S·C·s`), the givens read and n_alive written
//! (`8·B·S`), the conflict logit read (`B·s`), one cell's value logits read (`B·C·s`), and the
//! flags and decision written (`20·B`).

use crate::bench::suite::Case;
use crate::device::cpu::lattice::LatticeParams;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::lattice::{lattice_step_into, DeviceLatticeHeads, DeviceLatticeStep};
use crate::tensor::Tensor;

const CHAINS: usize = 512;
const CELLS: usize = 81;
const VALUES: usize = 9;

/// The lattice round case (`batch` is ignored: the pool size is fixed).
pub fn cases(dev: &dyn KernelBackend, _batch: usize) -> Result<Vec<Case<'_>>> {
    let (b, s, c) = (CHAINS, CELLS, VALUES);
    let candidates = b * s * c;
    let up = |t: &Tensor| DeviceTensor::upload(dev, t);
    // A mid-search pool: about 84% of candidates alive (normal draws above −1), keep logits
    // N(2, 2²) so a few percent die, no givens.
    let draws = Tensor::randn([candidates], 1.0, 1, DType::F64)?.to_vec_f64()?;
    let alive: Vec<f32> = draws
        .iter()
        .map(|&x| f32::from(u8::from(x > -1.0)))
        .collect();
    let state = up(&Tensor::from_vec(alive, [b, s, c])?)?;
    let given = up(&Tensor::zeros([b, s], DType::I32))?;
    let keep = up(&(Tensor::randn([b, s, c], 2.0, 2, DType::F32)?))?;
    let value = up(&Tensor::randn([b, s, c], 2.0, 3, DType::F32)?)?;
    let conflict = up(&Tensor::randn([b], 1.0, 4, DType::F32)?)?;
    let mut out = DeviceLatticeStep {
        state: DeviceTensor::uninit(dev, [b, s, c], DType::F32)?,
        n_alive: DeviceTensor::uninit(dev, [b, s], DType::I32)?,
        flags: DeviceTensor::uninit(dev, [b, 3], DType::I32)?,
        decision: DeviceTensor::uninit(dev, [b, 2], DType::I32)?,
    };
    let params = LatticeParams::eval(5, 0);
    let bytes = 3.0 * candidates as f64 * 4.0
        + 8.0 * (b * s) as f64
        + (b * 4) as f64
        + (b * c * 4) as f64
        + 20.0 * b as f64;
    Ok(vec![Case {
        kernel: "lattice_step_f32",
        shape: format!("[{b} chains, {s}, {c}]"),
        flops: candidates as f64,
        bytes,
        run: Box::new(move || {
            let heads = DeviceLatticeHeads {
                keep_logits: &keep,
                value_logits: &value,
                conflict_logits: &conflict,
            };
            lattice_step_into(dev, &state, &given, &heads, &params, &mut out)
        }),
    }])
}
