//! Test support shared by the unit, integration and kernel tests: the finite-difference gradient
//! check, and tolerance comparisons in the llm.c style.

use crate::dtype::DType;
use crate::error::Result;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Relative L2 error `‖a − b‖ / ‖b‖` (absolute when `b` is zero). NaN anywhere gives infinity, so
/// NaN never passes a tolerance.
pub fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Errors (with the worst element) unless every `|a − b| ≤ atol + rtol·|b|`; NaN never passes.
pub fn check_close(a: &[f64], b: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("length {} vs {}", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if !(x.is_finite() && y.is_finite()) || (x - y).abs() > atol + rtol * y.abs() {
            return Err(format!("element {i}: got {x}, expected {y}"));
        }
    }
    Ok(())
}

/// Checks the tape's gradients of `f` against f64 central finite differences (five-point).
///
/// `f` maps leaves (one per input tensor) to an output of any shape; the check differentiates
/// the scalar `Σ out ⊙ R` for a fixed random `R`, so every output element matters with its own
/// weight. Inputs must be f64; with the five-point stencil the differences are accurate to
/// about `eps⁴` plus rounding of `1e-16·|f|/eps`: about 1e-12 relative at the default step, well
/// under the default tolerance, so a gradient's last bits cannot decide a check.
pub struct GradCheck {
    eps: f64,
    tol: f64,
    seed: u64,
    allow_zero: bool,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-4,
            tol: 1e-6,
            seed: 0x5eed,
            allow_zero: false,
        }
    }
}

impl GradCheck {
    pub fn new() -> GradCheck {
        GradCheck::default()
    }
    /// The finite-difference step.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// The largest relative L2 error accepted, per input.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// The seed of the output weights `R`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Accept inputs whose gradient is zero everywhere. Off by default, so a check cannot pass
    /// just because nothing flowed.
    pub fn allow_zero(mut self) -> Self {
        self.allow_zero = true;
        self
    }

    pub fn run(
        &self,
        inputs: &[Tensor],
        f: impl Fn(&Tape, &[Var]) -> Result<Var>,
    ) -> Result<(), String> {
        let err = |e: crate::Error| e.to_string();
        if let Some(t) = inputs.iter().find(|t| t.dtype() != DType::F64) {
            return Err(format!(
                "gradient check inputs must be f64, got {}",
                t.dtype()
            ));
        }
        let tape = Tape::new();
        let leaves: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
        let out = f(&tape, &leaves).map_err(err)?;
        let weights =
            Tensor::randn(out.shape().clone(), 1.0, self.seed, DType::F64).map_err(err)?;
        let weighted = tape
            .mul(&out, &Var::constant(weights.clone()))
            .map_err(err)?;
        let loss = tape.sum_all(&weighted).map_err(err)?;
        let grads = tape.backward(&loss).map_err(err)?;
        let w = weights.to_vec_f64().map_err(err)?;

        let objective = |xs: &[Tensor]| -> Result<f64> {
            let t = Tape::new();
            let consts: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
            let y = f(&t, &consts)?.into_value().to_vec_f64()?;
            Ok(y.iter().zip(&w).map(|(a, b)| a * b).sum())
        };

        for (k, (input, leaf)) in inputs.iter().zip(&leaves).enumerate() {
            let analytic = match grads.get(leaf) {
                Some(g) => g.to_vec_f64().map_err(err)?,
                None => vec![0.0; input.numel()],
            };
            let base = input.to_vec_f64().map_err(err)?;
            let mut numeric = vec![0.0; base.len()];
            for j in 0..base.len() {
                let at = |delta: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += delta;
                    let mut xs = inputs.to_vec();
                    xs[k] = Tensor::from_vec(v, input.shape().clone())?;
                    objective(&xs)
                };
                // The five-point stencil: its truncation error is O(eps⁴), so a step large
                // enough to keep f64 rounding (ε·|f|/eps) far below the tolerance stays exact.
                let h = self.eps;
                let near = at(h).map_err(err)? - at(-h).map_err(err)?;
                let far = at(2.0 * h).map_err(err)? - at(-2.0 * h).map_err(err)?;
                numeric[j] = (8.0 * near - far) / (12.0 * h);
            }
            let e = rel_l2(&analytic, &numeric);
            if e.is_nan() || e > self.tol {
                return Err(format!(
                    "input {k} (shape {}): relative L2 error {e:.3e} > {:.1e}\n analytic {:?}\n numeric  {:?}",
                    input.shape(),
                    self.tol,
                    &analytic[..analytic.len().min(8)],
                    &numeric[..numeric.len().min(8)]
                ));
            }
            if !self.allow_zero && numeric.iter().all(|&x| x.abs() < 1e-12) && !base.is_empty() {
                return Err(format!(
                    "input {k}: the gradient is zero everywhere, so the check proves nothing"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `RECUR_REQUIRE_CUDA` (its value, if set) asks that a `::cuda` twin fail instead of
/// skipping: only `1` does. The GPU runner (tools/gpu_run.py) sets it, so a GPU that cannot be
/// used shows up as failures there instead of as silently skipped tests.
pub fn cuda_required(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim() == "1")
}

/// What a `::cuda` twin does when it cannot run (`reason`: no GPU, no NVRTC, no cuBLASLt, ...):
/// prints `skipping <test>::cuda: <reason>` (the line the GPU runner counts), or panics with the
/// reason under `RECUR_REQUIRE_CUDA=1`. `test` is the twin's module path (`module_path!()`).
pub fn skip_cuda(test: &str, reason: impl std::fmt::Display) {
    if cuda_required(std::env::var("RECUR_REQUIRE_CUDA").ok().as_deref()) {
        panic!("RECUR_REQUIRE_CUDA=1 but {test}::cuda cannot run: {reason}");
    }
    eprintln!("skipping {test}::cuda: {reason}");
}

/// Defines one kernel test, run on every backend: `<name>::emu` on the CPU emulator (always) and
/// `<name>::cuda` on a GPU (skipped with a printed reason when there is none, a failure under
/// `RECUR_REQUIRE_CUDA=1`: [`skip_cuda`]). `cargo test emu` selects the emulator runs. The body
/// is a function `fn(&dyn KernelBackend)`.
#[macro_export]
macro_rules! kernel_test {
    ($name:ident, $body:path) => {
        mod $name {
            // The body is named from the enclosing test file, as written there.
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn emu() {
                let dev = $crate::device::emu::Emu::new().expect("the CPU emulator always exists");
                $body(&dev);
            }
            #[test]
            fn cuda() {
                match $crate::device::cuda::Cuda::new(0) {
                    Ok(dev) => $body(&dev),
                    Err(e) => $crate::testing::skip_cuda(module_path!(), e),
                }
            }
        }
    };
}

/// `kernel_test!` for tests that count what a backend does: the body is a function
/// `fn(&Arc<Counting>)`, given a `device::counting::Counting` around Emu (`<name>::emu`) or around
/// GPU 0 (`<name>::cuda`, skipped as `kernel_test!` skips).
#[macro_export]
macro_rules! counting_test {
    ($name:ident, $body:path) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn emu() {
                let emu = std::sync::Arc::new($crate::device::emu::Emu::default());
                $body(&$crate::device::counting::Counting::new(emu));
            }
            #[test]
            fn cuda() {
                match $crate::device::cuda::Cuda::new(0) {
                    Ok(gpu) => $body(&$crate::device::counting::Counting::new(
                        std::sync::Arc::new(gpu),
                    )),
                    Err(e) => $crate::testing::skip_cuda(module_path!(), e),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_require_cuda_1_turns_a_skip_into_a_failure() {
        assert!(cuda_required(Some("1")));
        assert!(cuda_required(Some(" 1\n")));
        for value in [
            None,
            Some(""),
            Some("0"),
            Some("yes"),
            Some("true"),
            Some("10"),
        ] {
            assert!(!cuda_required(value), "{value:?}");
        }
    }
}
