//! The SwiGLU activation `silu(gate) ⊙ up` on the fused `gate_up_proj` output, forward and
//! backward. As the official `chunk(2)`: gate is the first half of the last dimension, up the
//! second.

use crate::device::cpu::activation::{silu_with_derivative, Activation};
use crate::device::cpu::{for_each_row, wide};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::{with_real, with_real2};

/// For a `[..., 2·inter]` input: the number of rows, `inter`, and the output shape `[..., inter]`
/// (at least one dimension, an even last one). The CUDA launchers in `kernels::activation`
/// validate with this too.
pub(crate) fn halves(op: &'static str, gate_up: &Shape) -> Result<(usize, usize, Shape)> {
    let (rows, cols) = gate_up.rows_cols(op)?;
    if cols % 2 != 0 {
        return Err(Error::shape(
            op,
            format!("last dimension must be even (gate | up), got {gate_up}"),
        ));
    }
    let mut dims = gate_up.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = cols / 2;
    }
    Ok((rows, cols / 2, Shape::new(dims)))
}

/// `gate_up [..., 2·inter]` → `silu(gate) ⊙ up`, `[..., inter]`.
pub fn swiglu_fwd(gate_up: &Tensor) -> Result<Tensor> {
    const OP: &str = "swiglu";
    let (rows, inter, y_shape) = halves(OP, gate_up.shape())?;
    with_real!(gate_up, OP, |v| {
        let mut y = vec![T::default(); rows * inter];
        for_each_row(&mut y, inter, |r, out| {
            let (gate, up) = v[r * 2 * inter..(r + 1) * 2 * inter].split_at(inter);
            wide(|| {
                for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                    *o = Activation::Silu.value(g) * u;
                }
            })
        });
        Ok(Tensor::from_real(y, y_shape, gate_up.dtype()))
    })
}

/// Backward of `swiglu_fwd`: `d gate = dy ⊙ up ⊙ silu′(gate)`, `d up = dy ⊙ silu(gate)`, laid
/// out like `gate_up`.
pub fn swiglu_bwd(gate_up: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "swiglu backward";
    let (rows, inter, y_shape) = halves(OP, gate_up.shape())?;
    dy.shape().expect_eq(OP, &y_shape)?;
    with_real2!(gate_up, dy, OP, |v, g| {
        let mut dx = vec![T::default(); rows * 2 * inter];
        for_each_row(&mut dx, 2 * inter, |r, out| {
            let (gate, up) = v[r * 2 * inter..(r + 1) * 2 * inter].split_at(inter);
            let dy_row = &g[r * inter..(r + 1) * inter];
            let (d_gate, d_up) = out.split_at_mut(inter);
            // One sigmoid per element serves SiLU and its derivative; zipped slices (no
            // indexing) let the loop vectorise.
            let inputs = gate.iter().zip(up).zip(dy_row);
            wide(|| {
                for ((dg, du), ((&g, &u), &d)) in d_gate.iter_mut().zip(d_up).zip(inputs) {
                    let (silu, silu_derivative) = silu_with_derivative(g);
                    *dg = d * u * silu_derivative;
                    *du = d * silu;
                }
            })
        });
        Ok(Tensor::from_real(
            dx,
            gate_up.shape().clone(),
            gate_up.dtype(),
        ))
    })
}
