//! Which implementation computes a bf16 product `y = epilogue(x·Wᵀ)`: our tensor-core GEMM
//! (`kernels::gemm`) or cuBLASLt (`device::cuda::cublaslt`). The rule (docs/kernels.md, "Choosing
//! between this kernel and cuBLASLt"):
//!
//! 1. A fused epilogue (SwiGLU, residual) runs on ours: cuBLASLt cannot fuse it, and ours saves
//!    the intermediate's round trip through memory. So does anything else cuBLASLt cannot do
//!    (`cublaslt::unsupported`: a bf16 bias into an f32 output, K = 0).
//! 2. `RECUR_GEMM=ours|cublaslt|auto` (unset: auto) can force either for the remaining plain and
//!    bias products. Forcing cuBLASLt where it is missing is an error, not a silent fallback.
//! 3. In auto, without cuBLASLt (no library, or a backend other than CUDA), ours.
//! 4. Otherwise both are measured once per (M, N, K, epilogue, output dtype), at the first call of
//!    that shape: a trial call of cuBLASLt (an error there means ours, with the reason kept),
//!    warm-up runs of both, then timed runs interleaved, medians compared. Ours wins only when
//!    cuBLASLt's median is at least `OURS_MARGIN` times ours; a tie or anything closer goes to
//!    cuBLASLt, NVIDIA's tuned library. The decision is cached for the dispatcher's life.
//!
//! The decisions are pure functions of the policy, the product's class and the measurements
//! (`decide_before_measuring`, `decide_from_medians`, `decide`), so they are tested without a
//! GPU; `GemmChooser` adds the cache and `GemmDispatch` the measuring and the launch. Measuring
//! synchronises with the device, so the first call of each shape must come before a CUDA graph
//! capture (as any warm-up does).

use crate::bench::{Clock, DeviceClock, Measurement};
use crate::device::cuda::cublaslt::{self, CublasLt};
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::gemm::{check_operands, gemm_bf16_into, Epilogue};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// The environment variable that forces an implementation: `ours`, `cublaslt` or `auto`.
pub const GEMM_POLICY_VAR: &str = "RECUR_GEMM";

/// Ours must be this much faster to win: cuBLASLt's median ≥ `OURS_MARGIN` × ours. The 10 %
/// absorbs the run-to-run noise of a shared GPU, so a near tie does not flip between processes.
pub const OURS_MARGIN: f64 = 1.10;

/// Untimed runs of each implementation before timing, and timed runs of each.
pub const TUNE_WARMUP: usize = 3;
pub const TUNE_RUNS: usize = 7;

/// An implementation of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmImpl {
    /// `kernels::gemm::gemm_bf16_into`.
    Ours,
    /// `CublasLt::gemm_bf16_into`.
    CublasLt,
}

impl GemmImpl {
    pub fn name(self) -> &'static str {
        match self {
            GemmImpl::Ours => "ours",
            GemmImpl::CublasLt => "cuBLASLt",
        }
    }
}

/// What `RECUR_GEMM` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPolicy {
    /// Measure both per shape and apply the rule.
    Auto,
    /// Always ours.
    Ours,
    /// cuBLASLt for every product it can compute (fused epilogues stay on ours).
    CublasLt,
}

impl GemmPolicy {
    /// `ours`, `cublaslt` or `auto` (any case, surrounding blanks ignored).
    pub fn parse(value: &str) -> Result<GemmPolicy> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GemmPolicy::Auto),
            "ours" => Ok(GemmPolicy::Ours),
            "cublaslt" => Ok(GemmPolicy::CublasLt),
            _ => Err(Error::arg(
                GEMM_POLICY_VAR,
                format!("{value:?} is not a GEMM policy: use ours, cublaslt or auto"),
            )),
        }
    }

    /// The policy `RECUR_GEMM` sets; unset or empty means auto.
    pub fn from_env() -> Result<GemmPolicy> {
        match std::env::var(GEMM_POLICY_VAR) {
            Ok(v) if !v.trim().is_empty() => GemmPolicy::parse(&v),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(GemmPolicy::Auto),
            Err(std::env::VarError::NotUnicode(v)) => Err(Error::arg(
                GEMM_POLICY_VAR,
                format!("{v:?} is not a GEMM policy: use ours, cublaslt or auto"),
            )),
        }
    }
}

/// A product as the rule sees it; the cache's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmKey {
    /// Output rows (leading dimensions folded).
    pub m: usize,
    /// Weight rows (`2·I` for SwiGLU).
    pub n: usize,
    pub k: usize,
    pub epilogue: EpilogueClass,
    pub out: DType,
}

/// The epilogue as far as the rule cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpilogueClass {
    None,
    Bias,
    SwiGlu,
    SwiGluBias,
    Residual,
}

impl EpilogueClass {
    pub fn of(epilogue: &Epilogue<'_>) -> EpilogueClass {
        match epilogue {
            Epilogue::None => EpilogueClass::None,
            Epilogue::Bias(_) => EpilogueClass::Bias,
            Epilogue::SwiGlu => EpilogueClass::SwiGlu,
            Epilogue::SwiGluBias(_) => EpilogueClass::SwiGluBias,
            Epilogue::Residual(_) => EpilogueClass::Residual,
        }
    }

    /// True for the epilogues only our kernel fuses.
    pub fn is_fused(self) -> bool {
        matches!(
            self,
            EpilogueClass::SwiGlu | EpilogueClass::SwiGluBias | EpilogueClass::Residual
        )
    }
}

impl GemmKey {
    /// Why cuBLASLt cannot compute this product, if it cannot.
    pub fn cublaslt_unsupported(&self) -> Option<&'static str> {
        cublaslt::unsupported(self.epilogue, self.out, self.k)
    }
}

/// Why an implementation was chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// `RECUR_GEMM` forced it.
    Forced,
    /// The epilogue is fused only by ours.
    FusedEpilogue,
    /// cuBLASLt cannot compute this product.
    Unsupported(&'static str),
    /// cuBLASLt is not available (no library, or not a CUDA backend).
    CublasLtUnavailable(String),
    /// cuBLASLt's trial call failed (for example no algorithm for this shape).
    CublasLtFailed(String),
    /// Both were timed; the medians in milliseconds.
    Measured { ours_ms: f64, cublaslt_ms: f64 },
}

/// The implementation a product runs on, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmDecision {
    pub chosen: GemmImpl,
    pub reason: Reason,
}

impl fmt::Display for GemmDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chosen = self.chosen.name();
        match &self.reason {
            Reason::Forced => write!(f, "{chosen} (forced by {GEMM_POLICY_VAR})"),
            Reason::FusedEpilogue => write!(f, "{chosen} (fused epilogue)"),
            Reason::Unsupported(why) => write!(f, "{chosen} ({why})"),
            Reason::CublasLtUnavailable(why) => write!(f, "{chosen} (no cuBLASLt: {why})"),
            Reason::CublasLtFailed(why) => write!(f, "{chosen} (cuBLASLt failed: {why})"),
            Reason::Measured {
                ours_ms,
                cublaslt_ms,
            } => write!(
                f,
                "{chosen} (measured: cuBLASLt/ours = {:.2}, ours wins from {OURS_MARGIN:.2})",
                cublaslt_ms / ours_ms
            ),
        }
    }
}

/// What measuring a product found.
#[derive(Clone, Debug, PartialEq)]
pub enum Trial {
    /// cuBLASLt's trial call failed with this message; ours was not timed.
    CublasLtFailed(String),
    /// Both ran; their medians in milliseconds.
    Medians { ours_ms: f64, cublaslt_ms: f64 },
}

/// The rule's steps that need no measurement (1–3 of the module doc): `Some` decision, or `None`
/// when the product must be measured. `cublaslt` is `Err(why)` when cuBLASLt is unavailable.
/// Forcing cuBLASLt while it is unavailable is an error.
pub fn decide_before_measuring(
    policy: GemmPolicy,
    key: &GemmKey,
    cublaslt: std::result::Result<(), &str>,
) -> Result<Option<GemmDecision>> {
    let decision = |chosen, reason| Ok(Some(GemmDecision { chosen, reason }));
    if key.epilogue.is_fused() {
        return decision(GemmImpl::Ours, Reason::FusedEpilogue);
    }
    if let Some(why) = key.cublaslt_unsupported() {
        return decision(GemmImpl::Ours, Reason::Unsupported(why));
    }
    match (policy, cublaslt) {
        (GemmPolicy::Ours, _) => decision(GemmImpl::Ours, Reason::Forced),
        (GemmPolicy::CublasLt, Ok(())) => decision(GemmImpl::CublasLt, Reason::Forced),
        (GemmPolicy::CublasLt, Err(why)) => Err(forced_but_missing(why)),
        (GemmPolicy::Auto, Err(why)) => {
            decision(GemmImpl::Ours, Reason::CublasLtUnavailable(why.into()))
        }
        (GemmPolicy::Auto, Ok(())) => Ok(None),
    }
}

fn forced_but_missing(why: &str) -> Error {
    Error::device(
        "cublaslt",
        format!("{GEMM_POLICY_VAR}=cublaslt, but cuBLASLt is unavailable: {why}"),
    )
}

/// Step 4 of the rule from two medians (milliseconds, finite and positive, else an error: a
/// broken timer is not a preference).
pub fn decide_from_medians(ours_ms: f64, cublaslt_ms: f64) -> Result<GemmDecision> {
    for (who, ms) in [("ours", ours_ms), ("cuBLASLt", cublaslt_ms)] {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(Error::arg(
                "gemm_choice",
                format!("{who}'s median time {ms} ms is not a positive, finite time"),
            ));
        }
    }
    let chosen = if cublaslt_ms / ours_ms >= OURS_MARGIN {
        GemmImpl::Ours
    } else {
        GemmImpl::CublasLt
    };
    Ok(GemmDecision {
        chosen,
        reason: Reason::Measured {
            ours_ms,
            cublaslt_ms,
        },
    })
}

/// The whole rule: `measure` is called only when the product has to be measured.
pub fn decide(
    policy: GemmPolicy,
    key: &GemmKey,
    cublaslt: std::result::Result<(), &str>,
    measure: impl FnOnce() -> Result<Trial>,
) -> Result<GemmDecision> {
    if let Some(decision) = decide_before_measuring(policy, key, cublaslt)? {
        return Ok(decision);
    }
    match measure()? {
        Trial::CublasLtFailed(why) => Ok(GemmDecision {
            chosen: GemmImpl::Ours,
            reason: Reason::CublasLtFailed(why),
        }),
        Trial::Medians {
            ours_ms,
            cublaslt_ms,
        } => decide_from_medians(ours_ms, cublaslt_ms),
    }
}

/// The rule with its per-shape cache: each product is decided (and measured) once.
pub struct GemmChooser {
    policy: GemmPolicy,
    cublaslt: std::result::Result<(), String>,
    decisions: Mutex<HashMap<GemmKey, GemmDecision>>,
}

impl GemmChooser {
    /// A chooser under `policy`; `cublaslt` is `Err(why)` when cuBLASLt is unavailable. Forcing
    /// cuBLASLt while it is unavailable is an error here, before any product.
    pub fn new(
        policy: GemmPolicy,
        cublaslt: std::result::Result<(), String>,
    ) -> Result<GemmChooser> {
        if let (GemmPolicy::CublasLt, Err(why)) = (policy, &cublaslt) {
            return Err(forced_but_missing(why));
        }
        Ok(GemmChooser {
            policy,
            cublaslt,
            decisions: Mutex::new(HashMap::new()),
        })
    }

    pub fn policy(&self) -> GemmPolicy {
        self.policy
    }

    /// The decision for `key`: the cached one, else `decide` (calling `measure` if the rule needs
    /// measurements), cached. An error is not cached, so a later call tries again.
    pub fn choose(
        &self,
        key: &GemmKey,
        measure: impl FnOnce() -> Result<Trial>,
    ) -> Result<GemmDecision> {
        if let Some(done) = self.lock().get(key) {
            return Ok(done.clone());
        }
        // Decided without the lock held: measuring runs GEMMs, and a decision is deterministic
        // enough that two threads racing on one new shape only measure it twice.
        let available = self.cublaslt.as_ref().map(|_| ()).map_err(String::as_str);
        let decision = decide(self.policy, key, available, measure)?;
        Ok(self.lock().entry(*key).or_insert(decision).clone())
    }

    /// Every decision made so far, in no particular order.
    pub fn decisions(&self) -> Vec<(GemmKey, GemmDecision)> {
        self.lock().iter().map(|(k, d)| (*k, d.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GemmKey, GemmDecision>> {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Times `ours` and `theirs` alternately on `clock`: `warmup` untimed runs of each, then `runs`
/// timed runs of each, interleaved so that clock boost and thermal drift fall on both alike.
/// Medians and minima, like `bench::measure`.
pub fn measure_pair(
    clock: &dyn Clock,
    warmup: usize,
    runs: usize,
    ours: &mut dyn FnMut() -> Result<()>,
    theirs: &mut dyn FnMut() -> Result<()>,
) -> Result<(Measurement, Measurement)> {
    if runs == 0 {
        return Err(Error::arg("measure_pair", "need at least one timed run"));
    }
    for _ in 0..warmup {
        ours()?;
        theirs()?;
    }
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        a.push(clock.time_ms(ours)?);
        b.push(clock.time_ms(theirs)?);
    }
    Ok((summarise(a), summarise(b)))
}

fn summarise(mut times: Vec<f64>) -> Measurement {
    times.sort_by(f64::total_cmp);
    Measurement {
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        runs: times.len(),
    }
}

/// Runs bf16 products on the implementation the rule picks, measuring each new shape once.
pub struct GemmDispatch<'d> {
    dev: &'d dyn KernelBackend,
    cublaslt: Option<&'d CublasLt>,
    chooser: GemmChooser,
}

impl<'d> GemmDispatch<'d> {
    /// A dispatcher on `dev`. `cublaslt` is the handle made from the same `Cuda` as `dev`, or
    /// `Err(why)` when there is none (another backend, no library). Forcing cuBLASLt
    /// (`RECUR_GEMM=cublaslt`) without one is an error.
    pub fn new(
        dev: &'d dyn KernelBackend,
        cublaslt: std::result::Result<&'d CublasLt, String>,
        policy: GemmPolicy,
    ) -> Result<GemmDispatch<'d>> {
        let available = cublaslt.as_ref().map(|_| ()).map_err(Clone::clone);
        Ok(GemmDispatch {
            dev,
            cublaslt: cublaslt.ok(),
            chooser: GemmChooser::new(policy, available)?,
        })
    }

    /// The rule's cache, for reports.
    pub fn chooser(&self) -> &GemmChooser {
        &self.chooser
    }

    /// `y = epilogue(x·Wᵀ)` into `y` (the contract of `kernels::gemm::gemm_bf16_into`) on the
    /// implementation the rule picks; returns which one ran.
    pub fn gemm_bf16_into(
        &self,
        x: &DeviceTensor,
        w: &DeviceTensor,
        epilogue: Epilogue<'_>,
        y: &mut DeviceTensor,
    ) -> Result<GemmImpl> {
        let operands = check_operands("gemm_bf16", x, w, epilogue, y)?;
        let key = GemmKey {
            m: operands.rows,
            n: w.dims().first().copied().unwrap_or(0),
            k: operands.k,
            epilogue: EpilogueClass::of(&epilogue),
            out: y.dtype(),
        };
        let decision = self
            .chooser
            .choose(&key, || self.measure(x, w, operands.bias, y))?;
        self.run(decision.chosen, x, w, epilogue, y)?;
        Ok(decision.chosen)
    }

    fn run(
        &self,
        chosen: GemmImpl,
        x: &DeviceTensor,
        w: &DeviceTensor,
        epilogue: Epilogue<'_>,
        y: &mut DeviceTensor,
    ) -> Result<()> {
        match (chosen, self.cublaslt, epilogue) {
            (GemmImpl::Ours, _, _) => gemm_bf16_into(self.dev, x, w, epilogue, y),
            (GemmImpl::CublasLt, Some(lt), Epilogue::None) => lt.gemm_bf16_into(x, w, None, y),
            (GemmImpl::CublasLt, Some(lt), Epilogue::Bias(b)) => {
                lt.gemm_bf16_into(x, w, Some(b), y)
            }
            // The rule never picks cuBLASLt without a handle or for another epilogue.
            (GemmImpl::CublasLt, _, _) => Err(Error::arg(
                "gemm_choice",
                "cuBLASLt was chosen for a product it cannot run (a bug in the rule)",
            )),
        }
    }

    /// Step 4's measurement: a trial cuBLASLt call, then both timed (writing `y` each time; the
    /// chosen implementation writes it again afterwards).
    fn measure(
        &self,
        x: &DeviceTensor,
        w: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        y: &mut DeviceTensor,
    ) -> Result<Trial> {
        let Some(lt) = self.cublaslt else {
            return Err(Error::arg(
                "gemm_choice",
                "asked to measure cuBLASLt without a handle (a bug in the rule)",
            ));
        };
        if let Err(e) = lt.gemm_bf16_into(x, w, bias, y) {
            return Ok(Trial::CublasLtFailed(e.to_string()));
        }
        let epilogue = bias.map_or(Epilogue::None, Epilogue::Bias);
        // Both closures write `y`; they run one after the other, never together.
        let y = std::cell::RefCell::new(y);
        let (ours, theirs) = measure_pair(
            &DeviceClock(self.dev),
            TUNE_WARMUP,
            TUNE_RUNS,
            &mut || gemm_bf16_into(self.dev, x, w, epilogue, &mut y.borrow_mut()),
            &mut || lt.gemm_bf16_into(x, w, bias, &mut y.borrow_mut()),
        )?;
        Ok(Trial::Medians {
            ours_ms: ours.median_ms,
            cublaslt_ms: theirs.median_ms,
        })
    }
}
