//! FLOPs of one recorded launch, from the formulas of `docs/kernels.md`. A launch does not carry
//! its tensors' shapes, but its arguments do: the GEMMs' `(m, n, k)` and attention's sequence
//! length are scalar arguments, and element counts follow from buffer lengths and the storage
//! dtype in the kernel's name. A kernel without a formula here gives `None`, and the report lists
//! it under "no FLOP formula" instead of counting it as free.

use crate::device::counting::{ArgRecord, Launch};

/// Bytes per stored element, from the `_f32` / `_bf16` suffix of a kernel name.
fn storage_bytes(name: &str) -> Option<usize> {
    if name.ends_with("_bf16") {
        Some(2)
    } else if name.ends_with("_f32") {
        Some(4)
    } else {
        None
    }
}

/// The kernel's name without its storage suffix: `linear_fwd_f32` → `linear_fwd`.
fn base_name(name: &str) -> &str {
    name.strip_suffix("_bf16")
        .or_else(|| name.strip_suffix("_f32"))
        .unwrap_or(name)
}

/// A launch's arguments, read the way the formulas need them.
struct Args<'a> {
    launch: &'a Launch,
    elem: f64,
}

impl Args<'_> {
    /// The 32- and 64-bit signed and 32-bit unsigned integer scalars, in parameter order: the
    /// sizes. `U64` arguments are left out: the launchers pass null device pointers (an absent
    /// bias, RoPE table or term) and Philox seeds as `U64`, never a size.
    fn ints(&self) -> Vec<f64> {
        self.launch
            .args
            .iter()
            .filter(|a| !matches!(a, ArgRecord::U64(_)))
            .filter_map(ArgRecord::int)
            .map(|v| v as f64)
            .collect()
    }
    /// Elements of the `i`-th input buffer (`In`, in parameter order; null pointers are not
    /// buffers), in the kernel's storage dtype.
    fn input_elems(&self, i: usize) -> Option<f64> {
        let bytes = self
            .launch
            .args
            .iter()
            .filter_map(|a| match a {
                ArgRecord::In(b) => Some(*b),
                _ => None,
            })
            .nth(i)?;
        Some(bytes as f64 / self.elem)
    }
    /// Elements of the `i`-th output buffer (`Out`), in the kernel's storage dtype.
    fn output_elems(&self, i: usize) -> Option<f64> {
        let bytes = self
            .launch
            .args
            .iter()
            .filter_map(|a| match a {
                ArgRecord::Out(b) => Some(*b),
                _ => None,
            })
            .nth(i)?;
        Some(bytes as f64 / self.elem)
    }
    /// The last `N` size scalars (`ints`).
    fn last_ints<const N: usize>(&self) -> Option<[f64; N]> {
        let ints = self.ints();
        let tail = ints.get(ints.len().checked_sub(N)?..)?;
        tail.try_into().ok()
    }
}

/// FLOPs per element of the elementwise activations, forward / backward (`docs/kernels.md`,
/// activation.cu).
fn activation_flops(base: &str) -> Option<f64> {
    let (act, direction) = base.rsplit_once('_')?;
    let (fwd, bwd) = match act {
        "silu" => (4.0, 7.0),
        "relu" => (1.0, 2.0),
        "gelu" => (4.0, 9.0),
        "sigmoid" => (3.0, 6.0),
        "softplus" => (3.0, 4.0),
        "exp" => (1.0, 2.0),
        _ => return None,
    };
    match direction {
        "fwd" => Some(fwd),
        "bwd" => Some(bwd),
        _ => None,
    }
}

/// FLOPs of `launch`, or `None` when no formula covers its kernel.
pub fn launch_flops(launch: &Launch) -> Option<f64> {
    let name = launch.name.as_str();
    let base = base_name(name);
    // Kernels whose storage dtype is fixed have no suffix to read it from: f32.
    let a = Args {
        launch,
        elem: storage_bytes(name).unwrap_or(4) as f64,
    };
    // Pure data movement: no arithmetic at all.
    if matches!(
        base,
        "copy_bytes"
            | "transpose_last2_fwd"
            | "narrow_fwd"
            | "narrow_bwd"
            | "concat_fwd"
            | "embedding_fwd"
            | "embedding_bwd_clear"
            | "sum_bwd"
    ) {
        return Some(0.0);
    }
    if let Some(per) = activation_flops(base) {
        return Some(per * a.output_elems(0)?);
    }
    if let Some(rest) = base.strip_prefix("step_rmsnorm_") {
        // (t + 2)·n forward, (t + 6)·n backward; `t` (terms) is the last integer argument.
        let [t] = a.last_ints::<1>()?;
        let per = if rest.starts_with("fwd") { 2.0 } else { 6.0 };
        return Some((t + per) * a.output_elems(0)?);
    }
    if let Some(rest) = base.strip_prefix("step_layernorm_") {
        if rest.starts_with("affine_reduce") {
            // Counted in the backward's (t + 12)·n.
            return Some(0.0);
        }
        let [t] = a.last_ints::<1>()?;
        let per = if rest.starts_with("fwd") { 7.0 } else { 12.0 };
        return Some((t + per) * a.output_elems(0)?);
    }
    Some(match base {
        // GEMMs: 2·M·N·K from the (m, n, k) scalar arguments; `linear_fwd`'s bias adds M·N.
        "linear_fwd" | "linear_input_bwd" | "linear_weight_bwd" => {
            let [m, n, k] = a.last_ints::<3>()?;
            let bias = matches!(launch.args.get(2), Some(ArgRecord::In(_)));
            2.0 * m * n * k
                + if base == "linear_fwd" && bias {
                    m * n
                } else {
                    0.0
                }
        }
        "gemm_bf16_fwd" => {
            let [m, n, k] = a.last_ints::<3>()?;
            2.0 * m * n * k
        }
        // `n` is the output's columns, I; the product is [M, 2·I].
        "gemm_bf16_swiglu_fwd" => {
            let [m, n, k] = a.last_ints::<3>()?;
            2.0 * m * 2.0 * n * k
        }
        "linear_bias_bwd" => {
            let [rows, cols] = a.last_ints::<2>()?;
            rows * cols
        }
        // Attention: N = B·S·H·hd elements of q (the first input; dO for the backward), S the
        // first integer argument. Forward 4·B·H·S²·hd; backward 10 (dK/dV pass 8, dQ pass 2:
        // the dQ pass's recomputed products are not counted, as in docs/kernels.md).
        "attention_fwd" | "attention_fwd_tc" => 4.0 * a.input_elems(0)? * first_int(&a)?,
        "attention_bwd_dkv" => 8.0 * a.input_elems(0)? * first_int(&a)?,
        "attention_bwd_dq" => 2.0 * a.input_elems(0)? * first_int(&a)?,
        "inject_add_fwd" => {
            let [n, terms] = a.last_ints::<2>()?;
            (terms - 1.0) * n
        }
        "mul_fwd" | "scale_fwd" => a.output_elems(0)?,
        "swiglu_fwd" => 5.0 * a.output_elems(0)?,
        // d gate_up is [rows, 2·inter]; the formula counts M = rows·inter.
        "swiglu_bwd" => 11.0 * a.output_elems(0)? / 2.0,
        "rope_fwd" | "rope_bwd" => 3.0 * a.output_elems(0)?,
        "sum_fwd" | "argmax_fwd" => a.input_elems(0)?,
        "mean_fwd" => a.input_elems(0)? + a.output_elems(0)?,
        "mean_bwd" => a.output_elems(0)?,
        // Ids are i32 and the gradient rows are in the storage dtype.
        "embedding_bwd" => a.input_elems(1)?,
        "sparse_embedding_bwd" => a.input_elems(1)?,
        "stablemax_ce_fwd" => 3.0 * a.input_elems(0)?,
        "softmax_ce_fwd" => 4.0 * a.input_elems(0)?,
        "stablemax_ce_bwd" | "softmax_ce_bwd" => 8.0 * a.output_elems(0)?,
        "masked_ce_fwd" => 4.0 * a.input_elems(0)?,
        "masked_ce_bwd_scale" => a.input_elems(1)?,
        "masked_ce_bwd" => 8.0 * a.output_elems(0)?,
        "bce_with_logits_fwd" => 14.0 * a.input_elems(0)?,
        "bce_with_logits_bwd" => 30.0 * a.input_elems(0)?,
        // Optimizers: parameters, moments and shadows are f32 whatever the gradient's dtype.
        "adam_atan2_step" | "adamw_step" => 15.0 * f32_elems(launch, 0)?,
        "ema_update" => 3.0 * f32_elems(launch, 0)?,
        "sign_sgd_step" => 3.0 * f32_input_elems(launch, 1)?,
        "gaussian_noise_fwd" => 5.0 * a.output_elems(0)?,
        "add_noise_fwd" | "reparam_sample_fwd" => 6.0 * a.output_elems(0)?,
        "reparam_sample_sigma_bwd" => 5.0 * a.output_elems(0)?,
        "gaussian_kl_fwd" => 11.0 * a.output_elems(0)?,
        "gaussian_kl_bwd" => 20.0 * a.output_elems(0)?,
        "reparam_kl_fwd" => 17.0 * a.output_elems(0)?,
        "reparam_kl_bwd" => 27.0 * a.output_elems(0)?,
        "lattice_step" | "lattice_step_float_given" => a.output_elems(0)?,
        _ => return None,
    })
}

fn first_int(a: &Args<'_>) -> Option<f64> {
    a.ints().first().copied()
}

/// Elements of the `i`-th output buffer read as f32 (optimizer state).
fn f32_elems(launch: &Launch, i: usize) -> Option<f64> {
    Args { launch, elem: 4.0 }.output_elems(i)
}

fn f32_input_elems(launch: &Launch, i: usize) -> Option<f64> {
    Args { launch, elem: 4.0 }.input_elems(i)
}

/// Whether the kernel issues tensor-core `mma` (its roofline uses the bf16 tensor peak).
pub fn uses_tensor_cores(name: &str) -> bool {
    name.starts_with("gemm_bf16_") || name.starts_with("attention_fwd_tc_")
}
