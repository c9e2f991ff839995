//! `attention`: multi-head, non-causal scaled dot-product attention with optional dropout on the
//! probabilities, as one op with its own backward.
//!
//! On a kernel backend it runs the fused kernels of `kernels/attention.cu` (head dim 32 or 64, no
//! dropout). Attention with dropout (Sotaku, LDT) or another head dim has no kernel yet and runs
//! on the CPU reference on every backend (`docs/dispatch.md`).

use crate::device::cpu::attention as cpu;
use crate::error::Result;
use crate::kernels::attention as kernels;
use crate::kernels::attention::{AttentionInputs, DeviceAttentionOutput};
use crate::ops::dispatch::{on_device, on_reference, Compute};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use crate::device::cpu::attention::{AttentionDropout, AttentionOpts};

/// The head dims the fused kernels are written for.
const KERNEL_HEAD_DIMS: [usize; 2] = [32, 64];

/// Maps the output gradient to (dq, dk, dv).
type AttentionBackward = Box<dyn Fn(&Tensor) -> Result<[Tensor; 3]>>;

/// Whether the fused kernels implement this call.
fn kernels_cover(q: &Tensor, opts: &AttentionOpts) -> bool {
    let head_dim = q.dims().get(3).copied();
    opts.dropout.is_none() && head_dim.is_some_and(|hd| KERNEL_HEAD_DIMS.contains(&hd))
}

/// The forward, and the backward that goes with it: the CPU reference keeps q, k, v and the row
/// log-sum-exp; the kernels' backward also reads the forward's output.
fn attention_fwd(
    compute: &Compute,
    [q, k, v]: [&Tensor; 3],
    opts: AttentionOpts,
) -> Result<(Tensor, AttentionBackward)> {
    let saved = [q.clone(), k.clone(), v.clone()];
    match compute {
        Compute::Kernels(dev) if kernels_cover(q, &opts) => {
            let (out, lse) = on_device(dev, [q, k, v], |dev, [q, k, v]| {
                let inputs = AttentionInputs::new(&q, &k, &v).with_opts(opts);
                let forward = kernels::attention_fwd(dev, &inputs)?;
                Ok((forward.out, forward.lse))
            })?;
            let (dev, saved_out) = (dev.clone(), out.clone());
            let backward = move |g: &Tensor| {
                let [q, k, v] = &saved;
                let transfers = ([q, k, v], &saved_out, &lse, g);
                on_device(&dev, transfers, |dev, ([q, k, v], out, lse, g)| {
                    let inputs = AttentionInputs::new(&q, &k, &v).with_opts(opts);
                    let forward = DeviceAttentionOutput { out, lse };
                    let grads = kernels::attention_bwd(dev, &inputs, &forward, &g)?;
                    Ok([grads.dq, grads.dk, grads.dv])
                })
            };
            Ok((out, Box::new(backward)))
        }
        _ => {
            let (out, lse) = on_reference(compute, "attention", [q, k, v], |[q, k, v]| {
                let forward = cpu::attention_fwd(q, k, v, &opts)?;
                Ok((forward.out, forward.lse))
            })?;
            let compute = compute.clone();
            let backward = move |g: &Tensor| {
                let [q, k, v] = &saved;
                on_reference(
                    &compute,
                    "attention",
                    [g, q, k, v, &lse],
                    |[g, q, k, v, lse]| {
                        let grads = cpu::attention_bwd(g, q, k, v, lse, &opts)?;
                        Ok([grads.dq, grads.dk, grads.dv])
                    },
                )
            };
            Ok((out, Box::new(backward)))
        }
    }
}

impl Tape {
    /// `softmax(scale·Q·Kᵀ)·V` per (batch, head) for `q`, `k`, `v` of shape `[B, S, H, hd]` (one
    /// dtype), returning `[B, S, H, hd]`. `opts` sets the scale (default `1/√hd`) and dropout on
    /// the probabilities (see `device::cpu::attention` for the Philox mask contract). The backward
    /// keeps q, k, v and the row log-sum-exp, and regenerates the mask from the same seed and step.
    pub fn attention(&self, q: &Var, k: &Var, v: &Var, opts: &AttentionOpts) -> Result<Var> {
        let (out, backward) =
            attention_fwd(self.compute(), [q.value(), k.value(), v.value()], *opts)?;
        self.record("attention", out, &[q, k, v], move |g| {
            Ok(backward(g)?.map(Some).into())
        })
    }
}
