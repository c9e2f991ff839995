//! `linear` (PyTorch's `F.linear`, weight `[out, in]`) and batched `matmul`.
//!
//! Backward computes only the gradients of inputs that require one: the products are the most
//! expensive part of a step, and weights or inputs are often constants.
//!
//! On a kernel backend an f32 `linear` runs on the tiled GEMM of `kernels/matmul.cu`; a bf16 one
//! (the bf16 forward dtype) runs its three products on the tensor-core GEMM of `kernels/gemm.cu`
//! (`tensor_core`), the bias gradient on the column-sum kernel. `matmul` with a 2-D `b` is
//! `linear` with the weight `bᵀ` (one `transpose_last2` launch). A batched `b` (one matrix per
//! batch item) has no kernel yet and runs on the CPU reference (`docs/dispatch.md`).

use crate::device::cpu::linear as cpu;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::gemm::{gemm_bf16, Epilogue};
use crate::kernels::layout::transpose_last2_fwd;
use crate::kernels::matmul as kernels;
use crate::ops::dispatch::{on_device, on_reference, Compute};
use crate::shape::Shape;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn linear_fwd(compute: &Compute, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match compute.kernels() {
        None => cpu::linear_fwd(x, w, bias),
        Some(dev) if x.dtype() == DType::BF16 => {
            on_device(dev, (x, w, bias), |dev, (x, w, bias)| {
                tensor_core::linear_fwd(dev, &x, &w, bias.as_ref())
            })
        }
        Some(dev) => on_device(dev, (x, w, bias), |dev, (x, w, bias)| {
            kernels::linear_fwd(dev, &x, &w, bias.as_ref())
        }),
    }
}

/// What a `linear` backward needs: the weight for `dx`, the input for `dW`, and whether the bias
/// wants `db`. `None` where the gradient is not needed.
struct LinearSaved {
    w: Option<Tensor>,
    x: Option<Tensor>,
    x_shape: Shape,
    bias_grad: bool,
}

/// (dx, dW, db), each only where `saved` asks for it.
type LinearGrads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

fn linear_bwd(compute: &Compute, g: &Tensor, saved: &LinearSaved) -> Result<LinearGrads> {
    let LinearSaved {
        w,
        x,
        x_shape,
        bias_grad,
    } = saved;
    match compute.kernels() {
        None => Ok((
            w.as_ref()
                .map(|w| cpu::linear_bwd_input(g, w, x_shape))
                .transpose()?,
            x.as_ref()
                .map(|x| cpu::linear_bwd_weight(g, x))
                .transpose()?,
            bias_grad.then(|| cpu::linear_bwd_bias(g)).transpose()?,
        )),
        Some(dev) if g.dtype() == DType::BF16 => {
            // Every leading dimension folded into rows: the products are 2-D GEMMs.
            let rows = |t: &Tensor| t.reshape(flat_rows(t.shape()));
            let x2 = x.as_ref().map(rows).transpose()?;
            let (dx, dw, db) = on_device(
                dev,
                (&rows(g)?, w.as_ref(), x2.as_ref()),
                |dev, (g, w, x)| {
                    Ok((
                        w.map(|w| tensor_core::linear_bwd_input(dev, &g, &w))
                            .transpose()?,
                        x.map(|x| tensor_core::linear_bwd_weight(dev, &g, &x))
                            .transpose()?,
                        bias_grad
                            .then(|| kernels::linear_bwd_bias(dev, &g))
                            .transpose()?,
                    ))
                },
            )?;
            Ok((
                dx.map(|dx| dx.reshape(x_shape.clone())).transpose()?,
                dw,
                db,
            ))
        }
        Some(dev) => on_device(dev, (g, w.as_ref(), x.as_ref()), |dev, (g, w, x)| {
            Ok((
                w.map(|w| kernels::linear_bwd_input(dev, &g, &w, x_shape))
                    .transpose()?,
                x.map(|x| kernels::linear_bwd_weight(dev, &g, &x))
                    .transpose()?,
                bias_grad
                    .then(|| kernels::linear_bwd_bias(dev, &g))
                    .transpose()?,
            ))
        }),
    }
}

/// `[rows, last]`: every leading dimension of `shape` folded into rows.
fn flat_rows(shape: &Shape) -> [usize; 2] {
    let last = shape.dims().last().copied().unwrap_or(1);
    [shape.numel() / last.max(1), last]
}

/// The bf16 `linear` products on the tensor-core GEMM (`y = x·Wᵀ` with `W [N, K]`), bf16 out,
/// f32 accumulation: operands are transposed (one `transpose_last2` launch each) into the
/// layout the GEMM reads.
mod tensor_core {
    use super::*;

    /// `y = x·Wᵀ (+ bias)`: the GEMM with its bias epilogue.
    pub fn linear_fwd(
        dev: &dyn KernelBackend,
        x: &DeviceTensor,
        w: &DeviceTensor,
        bias: Option<&DeviceTensor>,
    ) -> Result<DeviceTensor> {
        let epilogue = bias.map_or(Epilogue::None, Epilogue::Bias);
        gemm_bf16(dev, x, w, epilogue, DType::BF16)
    }

    /// `dx [rows, in] = dy·W = dy·(Wᵀ)ᵀ`: the GEMM with the weight `Wᵀ [in, out]`.
    pub fn linear_bwd_input(
        dev: &dyn KernelBackend,
        dy: &DeviceTensor,
        w: &DeviceTensor,
    ) -> Result<DeviceTensor> {
        gemm_bf16(
            dev,
            dy,
            &transpose_last2_fwd(dev, w)?,
            Epilogue::None,
            DType::BF16,
        )
    }

    /// `dW [out, in] = dyᵀ·x`: the GEMM of `dyᵀ [out, rows]` with the weight `xᵀ [in, rows]`,
    /// reducing over the rows (`dy [rows, out]`, `x [rows, in]`).
    pub fn linear_bwd_weight(
        dev: &dyn KernelBackend,
        dy: &DeviceTensor,
        x: &DeviceTensor,
    ) -> Result<DeviceTensor> {
        let (dy_t, x_t) = (transpose_last2_fwd(dev, dy)?, transpose_last2_fwd(dev, x)?);
        gemm_bf16(dev, &dy_t, &x_t, Epilogue::None, DType::BF16)
    }
}

/// Whether `a·b` is one `linear` on the kernels: `a [..., m, k]` and a 2-D `b [k, n]`.
fn matmul_is_linear(a: &Shape, b: &Shape) -> bool {
    a.rank() >= 2 && b.rank() == 2 && a.dims().last() == b.dims().first()
}

/// `bᵀ` of a 2-D `b`: the `[n, k]` weight that makes `a·b` a `linear`.
fn as_weight(dev: &dyn KernelBackend, b: &DeviceTensor) -> Result<DeviceTensor> {
    transpose_last2_fwd(dev, b)
}

fn matmul_fwd(compute: &Compute, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match compute.kernels() {
        Some(dev) if matmul_is_linear(a.shape(), b.shape()) => {
            on_device(dev, (a, b), |dev, (a, b)| {
                kernels::linear_fwd(dev, &a, &as_weight(dev, &b)?, None)
            })
        }
        _ => on_reference(compute, "matmul", [a, b], |[a, b]| cpu::matmul_fwd(a, b)),
    }
}

/// `da = dy·bᵀ`, shaped `a_shape`.
fn matmul_bwd_a(compute: &Compute, dy: &Tensor, b: &Tensor, a_shape: &Shape) -> Result<Tensor> {
    match compute.kernels() {
        Some(dev) if matmul_is_linear(a_shape, b.shape()) => {
            on_device(dev, (dy, b), |dev, (dy, b)| {
                kernels::linear_bwd_input(dev, &dy, &as_weight(dev, &b)?, a_shape)
            })
        }
        _ => on_reference(compute, "matmul", [dy, b], |[dy, b]| {
            cpu::matmul_bwd_a(dy, b, a_shape)
        }),
    }
}

/// `db = aᵀ·dy` (summed over a shared `b`'s batch), shaped `b_shape`.
fn matmul_bwd_b(compute: &Compute, dy: &Tensor, a: &Tensor, b_shape: &Shape) -> Result<Tensor> {
    match compute.kernels() {
        // dW of the `linear` is (aᵀ·dy)ᵀ: transpose it back.
        Some(dev) if matmul_is_linear(a.shape(), b_shape) => {
            on_device(dev, (dy, a), |dev, (dy, a)| {
                transpose_last2_fwd(dev, &kernels::linear_bwd_weight(dev, &dy, &a)?)
            })
        }
        _ => on_reference(compute, "matmul", [dy, a], |[dy, a]| {
            cpu::matmul_bwd_b(dy, a, b_shape)
        }),
    }
}

impl Tape {
    /// `y = x·Wᵀ + bias`: `x [..., in]`, `w [out, in]`, `bias [out]` → `[..., out]`. The weight
    /// gradient sums over every leading dimension of `x`.
    pub fn linear(&self, x: &Var, w: &Var, bias: Option<&Var>) -> Result<Var> {
        let compute = self.compute().clone();
        let y = linear_fwd(&compute, x.value(), w.value(), bias.map(Var::value))?;
        let saved = LinearSaved {
            w: x.requires_grad().then(|| w.value().clone()),
            x: w.requires_grad().then(|| x.value().clone()),
            x_shape: x.shape().clone(),
            bias_grad: bias.is_some_and(Var::requires_grad),
        };
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        self.record("linear", y, &inputs, move |g| {
            let (dx, dw, db) = linear_bwd(&compute, g, &saved)?;
            let mut grads = vec![dx, dw];
            if has_bias {
                grads.push(db);
            }
            Ok(grads)
        })
    }

    /// Batched `a·b`: `a [..., m, k]` with `b [..., k, n]` of the same batch dimensions, or a 2-D
    /// `b [k, n]` shared by every batch item (its gradient then sums over the batch).
    pub fn matmul(&self, a: &Var, b: &Var) -> Result<Var> {
        let compute = self.compute().clone();
        let y = matmul_fwd(&compute, a.value(), b.value())?;
        let (a_shape, b_shape) = (a.shape().clone(), b.shape().clone());
        let a_val = b.requires_grad().then(|| a.value().clone());
        let b_val = a.requires_grad().then(|| b.value().clone());
        self.record("matmul", y, &[a, b], move |g| {
            let da = b_val
                .as_ref()
                .map(|b| matmul_bwd_a(&compute, g, b, &a_shape))
                .transpose()?;
            let db = a_val
                .as_ref()
                .map(|a| matmul_bwd_b(&compute, g, a, &b_shape))
                .transpose()?;
            Ok(vec![da, db])
        })
    }
}
