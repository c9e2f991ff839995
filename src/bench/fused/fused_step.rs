//! Bench cases of `kernels/fused_step.cu` in bf16 at the model shapes: TRM's 3-term input
//! injection + RMSNorm and its post-norm residual RMSNorm on `[B, 97, 512]`, and LDT/Sotaku's
//! post-norm residual LayerNorm on `[B, 81, 128]`, forward and backward.
//!
//! Cost model per element of the `n = rows·D` activations, for `t` terms (docs/kernels.md):
//! FLOPs: RMS forward `t + 2`, LayerNorm forward `t + 7`, RMS backward `t + 6`, LayerNorm
//! backward `t + 12`. Minimum bytes: each term, `dy` and the output once (2 bytes each), the f32
//! `(mean, rstd)` once (8 bytes a row), and for LayerNorm weight and bias (and their gradients)
//! once; the backward's per-block f64 partials are excluded (they are not required traffic).

use crate::bench::suite::Case;
use crate::device::cpu::norm::Norm;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::fused_step::{step_norm_bwd_into, step_norm_fwd, step_norm_fwd_into};
use crate::tensor::Tensor;

const TRM: [usize; 2] = [97, 512];
const LDT: [usize; 2] = [81, 128];
const EPS: f64 = 1e-5;
/// Bytes per stored bf16 element.
const S: f64 = 2.0;

/// Which direction a case times.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Forward,
    Backward,
}

/// FLOPs and minimum bytes of one case on `[rows, cols]` with `terms` terms.
fn cost(rows: usize, cols: usize, terms: usize, layer: bool, dir: Direction) -> (f64, f64) {
    let (n, t) = ((rows * cols) as f64, terms as f64);
    let per_element = match (layer, dir) {
        (false, Direction::Forward) => t + 2.0,
        (true, Direction::Forward) => t + 7.0,
        (false, Direction::Backward) => t + 6.0,
        (true, Direction::Backward) => t + 12.0,
    };
    // Terms in, output out; the backward also reads dy.
    let tensors = t + 1.0 + if dir == Direction::Backward { 1.0 } else { 0.0 };
    let stats = 8.0 * rows as f64;
    // LayerNorm's `[D]` vectors: forward, weight and bias read; backward, weight read and
    // dweight, dbias written.
    let affine_vectors = match (layer, dir) {
        (false, _) => 0.0,
        (true, Direction::Forward) => 2.0,
        (true, Direction::Backward) => 3.0,
    };
    let affine = affine_vectors * cols as f64 * S;
    (per_element * n, tensors * n * S + stats + affine)
}

/// The uploaded inputs of a case: the terms, LayerNorm's weight and bias, and `dy`.
struct Inputs {
    terms: Vec<DeviceTensor>,
    weight: DeviceTensor,
    bias: DeviceTensor,
    dy: DeviceTensor,
}

impl Inputs {
    fn new(dev: &dyn KernelBackend, dims: [usize; 3], terms: usize) -> Result<Inputs> {
        let cols = dims[2];
        let up = |seed: u64, shape: &[usize]| -> Result<DeviceTensor> {
            DeviceTensor::upload(dev, &Tensor::randn(shape.to_vec(), 1.0, seed, DType::BF16)?)
        };
        Ok(Inputs {
            terms: (0..terms as u64)
                .map(|i| up(i + 1, &dims))
                .collect::<Result<_>>()?,
            weight: up(10, &[cols])?,
            bias: up(11, &[cols])?,
            dy: up(12, &dims)?,
        })
    }

    fn terms(&self) -> Vec<&DeviceTensor> {
        self.terms.iter().collect()
    }

    fn norm(&self, layer: bool) -> Norm<&DeviceTensor> {
        if layer {
            Norm::layer(&self.weight, &self.bias, EPS)
        } else {
            Norm::rms(EPS)
        }
    }
}

/// The bench names of one (terms, norm): its forward case, and its backward case if timed.
struct Names {
    forward: &'static str,
    backward: Option<&'static str>,
}

/// The cases of one (shape, terms, norm).
fn norm_cases<'a>(
    dev: &'a dyn KernelBackend,
    dims: [usize; 3],
    terms: usize,
    layer: bool,
    names: Names,
) -> Result<Vec<Case<'a>>> {
    let (rows, cols) = (dims[0] * dims[1], dims[2]);
    let shape = format!("{dims:?}");
    let mut cases = Vec::new();

    let x = Inputs::new(dev, dims, terms)?;
    let mut y = DeviceTensor::uninit(dev, dims, DType::BF16)?;
    let mut stats = DeviceTensor::uninit(dev, [rows, 2], DType::F32)?;
    let (flops, bytes) = cost(rows, cols, terms, layer, Direction::Forward);
    cases.push(Case {
        kernel: names.forward,
        shape: shape.clone(),
        flops,
        bytes,
        run: Box::new(move || {
            step_norm_fwd_into(dev, &x.terms(), &x.norm(layer), &mut y, &mut stats)
        }),
    });
    let Some(backward) = names.backward else {
        return Ok(cases);
    };

    let x = Inputs::new(dev, dims, terms)?;
    let saved = step_norm_fwd(dev, &x.terms(), &x.norm(layer))?.stats;
    let mut dx = DeviceTensor::uninit(dev, dims, DType::BF16)?;
    let mut dweight = DeviceTensor::uninit(dev, [cols], DType::BF16)?;
    let mut dbias = DeviceTensor::uninit(dev, [cols], DType::BF16)?;
    let (flops, bytes) = cost(rows, cols, terms, layer, Direction::Backward);
    cases.push(Case {
        kernel: backward,
        shape,
        flops,
        bytes,
        run: Box::new(move || {
            let affine = layer.then_some((&mut dweight, &mut dbias));
            step_norm_bwd_into(
                dev,
                &x.dy,
                &x.terms(),
                &saved,
                &x.norm(layer),
                &mut dx,
                affine,
            )
        }),
    });
    Ok(cases)
}

/// The step-fusion cases at batch `batch`: TRM's 3-term injection + RMSNorm (forward), TRM's
/// post-norm residual RMSNorm (forward and backward), LDT/Sotaku's residual LayerNorm (forward and
/// backward).
pub fn cases(dev: &dyn KernelBackend, batch: usize) -> Result<Vec<Case<'_>>> {
    let trm = [batch, TRM[0], TRM[1]];
    let ldt = [batch, LDT[0], LDT[1]];
    let inject = Names {
        forward: "step_rmsnorm_fwd_bf16 (inject z + y + x)",
        backward: None,
    };
    let trm_residual = Names {
        forward: "step_rmsnorm_fwd_bf16 (residual h + r)",
        backward: Some("step_rmsnorm_bwd_bf16 (residual h + r)"),
    };
    let ldt_residual = Names {
        forward: "step_layernorm_fwd_bf16 (residual h + r)",
        backward: Some("step_layernorm_bwd_bf16 (residual h + r)"),
    };
    let mut cases = norm_cases(dev, trm, 3, false, inject)?;
    cases.extend(norm_cases(dev, trm, 2, false, trm_residual)?);
    cases.extend(norm_cases(dev, ldt, 2, true, ldt_residual)?);
    Ok(cases)
}
