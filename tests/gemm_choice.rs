//! The choice between our tensor-core GEMM and cuBLASLt (`kernels::gemm_choice`), and cuBLASLt's
//! product itself (`device::cuda::cublaslt`).
//!
//! Without a GPU: the rule as pure functions of policy, product and medians (fused epilogues,
//! unsupported products, missing cuBLASLt, forcing, ties and the margin, bad timings, a cached
//! decision reused), `RECUR_GEMM` parsing, the interleaved timer on a scripted clock, cuBLASLt's
//! operand checks and library-loading errors, and the dispatcher on Emu (where it must pick ours)
//! against the f64 reference. With a GPU (`::cuda`, run by tools/gpu-check.sh): cuBLASLt's output
//! and the dispatcher's, on ragged and model shapes, against the same reference; they skip with a
//! printed reason when there is no GPU or no libcublasLt.

use recur::bench::fused::gemm::{
    cublaslt_rows, cublaslt_table, model_products, random_rows, CublasLtRow, Follows,
};
use recur::bench::suite::{cublaslt_section, SuiteOptions};
use recur::bench::{Clock, Measurement};
use recur::device::cpu::{elementwise, linear, swiglu};
use recur::device::cuda::cublaslt::{self, CublasLt, GemmDims};
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::{DeviceTensor, KernelBackend};
use recur::error::{Error, Result};
use recur::kernels::gemm::Epilogue;
use recur::kernels::gemm_choice::{
    decide, decide_before_measuring, decide_from_medians, measure_pair, EpilogueClass, GemmChooser,
    GemmDecision, GemmDispatch, GemmImpl, GemmKey, GemmPolicy, Reason, Trial, GEMM_POLICY_VAR,
    OURS_MARGIN,
};
use recur::testing::rel_l2;
use recur::{DType, Shape, Tensor};
use std::cell::{Cell, RefCell};
use std::path::Path;

const ALL_POLICIES: [GemmPolicy; 3] = [GemmPolicy::Auto, GemmPolicy::Ours, GemmPolicy::CublasLt];
const FUSED: [EpilogueClass; 3] = [
    EpilogueClass::SwiGlu,
    EpilogueClass::SwiGluBias,
    EpilogueClass::Residual,
];

fn key(m: usize, n: usize, k: usize, epilogue: EpilogueClass, out: DType) -> GemmKey {
    GemmKey {
        m,
        n,
        k,
        epilogue,
        out,
    }
}

/// A measurement that must not happen: counts the calls and fails.
fn no_measuring(calls: &Cell<usize>) -> impl FnOnce() -> Result<Trial> + '_ {
    move || {
        calls.set(calls.get() + 1);
        Err(Error::arg(
            "test",
            "the rule measured a product it should not",
        ))
    }
}

/// A tiny deterministic generator for fresh sizes and times (xorshift64*).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// --- the rule, without a GPU -------------------------------------------------------------------

#[test]
fn fused_epilogues_run_on_ours_whatever_the_policy_or_library() {
    let calls = Cell::new(0);
    for class in FUSED {
        for policy in ALL_POLICIES {
            for available in [Ok(()), Err("no libcublasLt")] {
                for out in [DType::BF16, DType::F32] {
                    let k = key(97, 3072, 512, class, out);
                    let d = decide(policy, &k, available, no_measuring(&calls)).unwrap();
                    assert_eq!(d.chosen, GemmImpl::Ours, "{class:?} {policy:?}");
                    assert_eq!(d.reason, Reason::FusedEpilogue, "{class:?} {policy:?}");
                }
            }
        }
    }
    assert_eq!(calls.get(), 0, "a fused product was measured");
}

#[test]
fn products_cublaslt_cannot_compute_run_on_ours() {
    let calls = Cell::new(0);
    // A bf16 bias into an f32 output, and an empty reduction.
    let cases = [
        key(97, 512, 512, EpilogueClass::Bias, DType::F32),
        key(97, 512, 0, EpilogueClass::None, DType::BF16),
        key(5, 7, 0, EpilogueClass::Bias, DType::BF16),
    ];
    for k in cases {
        for policy in ALL_POLICIES {
            let d = decide(policy, &k, Ok(()), no_measuring(&calls)).unwrap();
            assert_eq!(d.chosen, GemmImpl::Ours, "{k:?} {policy:?}");
            assert!(matches!(d.reason, Reason::Unsupported(_)), "{k:?}: {d}");
            assert!(k.cublaslt_unsupported().is_some());
        }
    }
    assert_eq!(calls.get(), 0);
    // The same products with a bf16 output and K > 0 are cuBLASLt's to compete for.
    for class in [EpilogueClass::None, EpilogueClass::Bias] {
        let k = key(97, 512, 512, class, DType::BF16);
        assert_eq!(k.cublaslt_unsupported(), None);
        assert_eq!(
            decide_before_measuring(GemmPolicy::Auto, &k, Ok(())).unwrap(),
            None,
            "{class:?} needs measuring"
        );
    }
    // A plain product into f32 is supported too.
    assert_eq!(
        key(3, 5, 7, EpilogueClass::None, DType::F32).cublaslt_unsupported(),
        None
    );
}

#[test]
fn without_cublaslt_auto_picks_ours_and_forcing_it_is_an_error() {
    let calls = Cell::new(0);
    let why = "libcublasLt.so.13 is not on the loader's path";
    for class in [EpilogueClass::None, EpilogueClass::Bias] {
        let k = key(776, 1536, 512, class, DType::BF16);
        let d = decide(GemmPolicy::Auto, &k, Err(why), no_measuring(&calls)).unwrap();
        assert_eq!(d.chosen, GemmImpl::Ours);
        assert_eq!(d.reason, Reason::CublasLtUnavailable(why.to_string()));
        assert!(d.to_string().contains(why), "{d}");

        let d = decide(GemmPolicy::Ours, &k, Err(why), no_measuring(&calls)).unwrap();
        assert_eq!((d.chosen, d.reason), (GemmImpl::Ours, Reason::Forced));

        let err = decide(GemmPolicy::CublasLt, &k, Err(why), no_measuring(&calls)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Device {
                    backend: "cublaslt",
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(GEMM_POLICY_VAR) && msg.contains(why), "{msg}");
    }
    assert_eq!(calls.get(), 0);
    // The chooser refuses the impossible policy up front, before any product.
    let err = GemmChooser::new(GemmPolicy::CublasLt, Err(why.into())).err();
    assert!(err.is_some_and(|e| e.to_string().contains(why)));
    assert!(GemmChooser::new(GemmPolicy::Auto, Err(why.into())).is_ok());
}

#[test]
fn forcing_skips_the_measurement() {
    let calls = Cell::new(0);
    let k = key(97, 1536, 512, EpilogueClass::None, DType::BF16);
    let d = decide(GemmPolicy::CublasLt, &k, Ok(()), no_measuring(&calls)).unwrap();
    assert_eq!((d.chosen, d.reason), (GemmImpl::CublasLt, Reason::Forced));
    let d = decide(GemmPolicy::Ours, &k, Ok(()), no_measuring(&calls)).unwrap();
    assert_eq!((d.chosen, d.reason), (GemmImpl::Ours, Reason::Forced));
    assert_eq!(calls.get(), 0);
}

#[test]
fn ties_go_to_cublaslt_and_ours_needs_the_margin() {
    let pick = |ours, lt| decide_from_medians(ours, lt).unwrap().chosen;
    // Equal medians: a tie, cuBLASLt.
    assert_eq!(pick(0.25, 0.25), GemmImpl::CublasLt);
    // Ours faster, but by less than the margin.
    assert_eq!(pick(10.0, 10.99), GemmImpl::CublasLt);
    assert_eq!(pick(1.0, 1.05), GemmImpl::CublasLt);
    // Exactly at the margin, and beyond it.
    assert_eq!(OURS_MARGIN, 1.10);
    assert_eq!(pick(10.0, 11.0), GemmImpl::Ours);
    assert_eq!(pick(0.02, 0.05), GemmImpl::Ours);
    // Ours slower.
    assert_eq!(pick(0.05, 0.02), GemmImpl::CublasLt);
    // The medians travel with the decision.
    assert_eq!(
        decide_from_medians(0.5, 0.75).unwrap().reason,
        Reason::Measured {
            ours_ms: 0.5,
            cublaslt_ms: 0.75
        }
    );
}

/// Properties that hold whatever the margin: only the ratio matters (scaling both medians keeps
/// the decision), a slower cuBLASLt never takes a win from ours, and a faster ours never loses one.
#[test]
fn the_decision_depends_only_on_the_ratio_and_is_monotone() {
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let ours = draw.uniform(0.001, 20.0);
        let lt = ours * draw.uniform(0.3, 3.0);
        let d = decide_from_medians(ours, lt).unwrap().chosen;
        let scale = 2f64.powi(draw.below(21) as i32 - 10);
        assert_eq!(
            decide_from_medians(ours * scale, lt * scale)
                .unwrap()
                .chosen,
            d
        );
        if d == GemmImpl::Ours {
            let slower_lt = lt * draw.uniform(1.0, 4.0);
            assert_eq!(decide_from_medians(ours, slower_lt).unwrap().chosen, d);
            let faster_ours = ours * draw.uniform(0.25, 1.0);
            assert_eq!(decide_from_medians(faster_ours, lt).unwrap().chosen, d);
        } else {
            let faster_lt = lt * draw.uniform(0.25, 1.0);
            assert_eq!(decide_from_medians(ours, faster_lt).unwrap().chosen, d);
        }
    }
}

#[test]
fn broken_timings_are_errors_not_preferences() {
    for (ours, lt) in [
        (f64::NAN, 1.0),
        (1.0, f64::NAN),
        (0.0, 1.0),
        (1.0, 0.0),
        (-1.0, 1.0),
        (1.0, f64::INFINITY),
    ] {
        let err = decide_from_medians(ours, lt).unwrap_err();
        assert!(err.to_string().contains("median"), "{err}");
    }
}

#[test]
fn a_failed_cublaslt_trial_means_ours_with_its_reason() {
    let k = key(97, 384, 128, EpilogueClass::Bias, DType::BF16);
    let why = "CUBLAS_STATUS_NOT_SUPPORTED";
    let d = decide(GemmPolicy::Auto, &k, Ok(()), || {
        Ok(Trial::CublasLtFailed(why.into()))
    })
    .unwrap();
    assert_eq!(d.chosen, GemmImpl::Ours);
    assert_eq!(d.reason, Reason::CublasLtFailed(why.into()));
    // A measurement that errors is the caller's error.
    assert!(decide(GemmPolicy::Auto, &k, Ok(()), || Err(Error::arg("t", "x"))).is_err());
}

#[test]
fn a_cached_decision_is_reused_and_errors_are_not_cached() {
    let chooser = GemmChooser::new(GemmPolicy::Auto, Ok(())).unwrap();
    let a = key(97, 1536, 512, EpilogueClass::None, DType::BF16);
    let b = key(916, 1536, 512, EpilogueClass::None, DType::BF16);
    let calls = Cell::new(0);
    let medians = |ours_ms, cublaslt_ms| {
        let calls = &calls;
        move || {
            calls.set(calls.get() + 1);
            Ok(Trial::Medians {
                ours_ms,
                cublaslt_ms,
            })
        }
    };
    let first = chooser.choose(&a, medians(1.0, 2.0)).unwrap();
    assert_eq!(first.chosen, GemmImpl::Ours);
    // The same shape again: the cache answers, even though new medians would say otherwise.
    let again = chooser.choose(&a, medians(2.0, 1.0)).unwrap();
    assert_eq!(again, first);
    assert_eq!(calls.get(), 1);
    // Another shape (only M differs) is measured on its own.
    let other = chooser.choose(&b, medians(2.0, 1.0)).unwrap();
    assert_eq!(other.chosen, GemmImpl::CublasLt);
    assert_eq!(calls.get(), 2);
    // The output dtype and the epilogue are part of the key.
    let c = GemmKey {
        out: DType::F32,
        ..a
    };
    let d = GemmKey {
        epilogue: EpilogueClass::Bias,
        ..a
    };
    chooser.choose(&c, medians(2.0, 1.0)).unwrap();
    chooser.choose(&d, medians(2.0, 1.0)).unwrap();
    assert_eq!(calls.get(), 4);
    assert_eq!(chooser.decisions().len(), 4);
    // A failed measurement is not remembered: the next call measures again.
    let e = key(1, 2, 16, EpilogueClass::None, DType::BF16);
    assert!(chooser
        .choose(&e, || Err(Error::arg("t", "timer broke")))
        .is_err());
    assert_eq!(
        chooser.choose(&e, medians(1.0, 1.0)).unwrap().chosen,
        GemmImpl::CublasLt
    );
    assert_eq!(calls.get(), 5);
}

#[test]
fn policy_names_parse_and_bad_ones_say_what_is_allowed() {
    for (text, want) in [
        ("ours", GemmPolicy::Ours),
        ("cublaslt", GemmPolicy::CublasLt),
        ("cuBLASLt", GemmPolicy::CublasLt),
        (" auto ", GemmPolicy::Auto),
        ("AUTO", GemmPolicy::Auto),
    ] {
        assert_eq!(GemmPolicy::parse(text).unwrap(), want, "{text:?}");
    }
    for bad in ["", "cublas", "our", "auto,ours", "0"] {
        let msg = GemmPolicy::parse(bad).unwrap_err().to_string();
        assert!(
            msg.contains(GEMM_POLICY_VAR) && msg.contains("ours, cublaslt or auto"),
            "{msg}"
        );
    }
}

/// Everything that reads `RECUR_GEMM`, in one test so no other test sees it changed.
#[test]
fn recur_gemm_from_the_environment() {
    let opts = SuiteOptions {
        batch: 1,
        warmup: 0,
        runs: 1,
    };
    std::env::remove_var(GEMM_POLICY_VAR);
    assert_eq!(GemmPolicy::from_env().unwrap(), GemmPolicy::Auto);
    // Without a GPU the bench section says why it has no rows.
    let why = "cuBLASLt runs only on a GPU";
    let section = cublaslt_section(Err(why), opts).unwrap();
    assert!(
        section.contains("rows omitted") && section.contains(why),
        "{section}"
    );
    std::env::set_var(GEMM_POLICY_VAR, "");
    assert_eq!(GemmPolicy::from_env().unwrap(), GemmPolicy::Auto);
    std::env::set_var(GEMM_POLICY_VAR, "Ours");
    assert_eq!(GemmPolicy::from_env().unwrap(), GemmPolicy::Ours);
    std::env::set_var(GEMM_POLICY_VAR, "cublaslt");
    assert_eq!(GemmPolicy::from_env().unwrap(), GemmPolicy::CublasLt);
    std::env::set_var(GEMM_POLICY_VAR, "fastest");
    assert!(GemmPolicy::from_env()
        .unwrap_err()
        .to_string()
        .contains("\"fastest\""));
    assert!(cublaslt_section(Err(why), opts).is_err());
    std::env::remove_var(GEMM_POLICY_VAR);
}

/// A clock that logs and returns scripted times, to see what `measure_pair` runs and when.
struct ScriptedClock {
    times: RefCell<Vec<f64>>,
    log: RefCell<Vec<&'static str>>,
}

impl Clock for ScriptedClock {
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.log.borrow_mut().push("timed:");
        work()?;
        Ok(self.times.borrow_mut().remove(0))
    }
}

#[test]
fn measure_pair_warms_up_then_interleaves_and_takes_medians() {
    let clock = ScriptedClock {
        // ours, theirs, ours, theirs, ...
        times: RefCell::new(vec![5.0, 1.0, 3.0, 9.0, 4.0, 2.0, 100.0, 8.0, 1.0, 7.0]),
        log: RefCell::new(Vec::new()),
    };
    let (ours, theirs) = measure_pair(
        &clock,
        2,
        5,
        &mut || {
            clock.log.borrow_mut().push("ours");
            Ok(())
        },
        &mut || {
            clock.log.borrow_mut().push("theirs");
            Ok(())
        },
    )
    .unwrap();
    // ours: 5, 3, 4, 100, 1 -> median 4, min 1; theirs: 1, 9, 2, 8, 7 -> median 7, min 1.
    assert_eq!((ours.median_ms, ours.min_ms, ours.runs), (4.0, 1.0, 5));
    assert_eq!(
        (theirs.median_ms, theirs.min_ms, theirs.runs),
        (7.0, 1.0, 5)
    );
    let log = clock.log.borrow().join(" ");
    let timed_pair = "timed: ours timed: theirs";
    let want = ["ours theirs ours theirs", &[timed_pair; 5].join(" ")].join(" ");
    assert_eq!(log, want);

    let err = measure_pair(&clock, 0, 0, &mut || Ok(()), &mut || Ok(())).unwrap_err();
    assert!(err.to_string().contains("timed run"), "{err}");
    // A failing side stops the measurement with its error.
    let err = measure_pair(&clock, 1, 1, &mut || Ok(()), &mut || {
        Err(Error::arg("theirs", "broke"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("broke"));
}

// --- cuBLASLt's checks and loading, without a GPU ----------------------------------------------

#[test]
fn cublaslt_operand_checks_match_its_contract() {
    let dev = Emu::new().unwrap();
    let bf = DType::BF16;
    let t = |dims: &[usize], dtype| DeviceTensor::uninit(&dev, dims.to_vec(), dtype).unwrap();
    let mut draw = Draw(42);
    for _ in 0..20 {
        let (lead, rows, n, k) = (
            1 + draw.below(4),
            1 + draw.below(40),
            1 + draw.below(70),
            1 + draw.below(90),
        );
        let (x, w, b) = (t(&[lead, rows, k], bf), t(&[n, k], bf), t(&[n], bf));
        for out in [bf, DType::F32] {
            let y = t(&[lead, rows, n], out);
            let want = GemmDims {
                m: lead * rows,
                n,
                k,
            };
            assert_eq!(cublaslt::check_gemm(&x, &w, None, &y).unwrap(), want);
            let with_bias = cublaslt::check_gemm(&x, &w, Some(&b), &y);
            if out == bf {
                assert_eq!(with_bias.unwrap(), want);
            } else {
                let msg = with_bias.unwrap_err().to_string();
                assert!(msg.contains("bias") && msg.contains("gemm_bf16"), "{msg}");
            }
        }
        // What gemm_bf16 rejects, cuBLASLt's launcher rejects too.
        let y = t(&[lead, rows, n], bf);
        let bad_k = t(&[n, k + 1], bf);
        assert!(matches!(
            cublaslt::check_gemm(&x, &bad_k, None, &y),
            Err(Error::Shape { .. })
        ));
        let wrong_out = t(&[lead, rows, n + 1], bf);
        assert!(cublaslt::check_gemm(&x, &w, None, &wrong_out).is_err());
        let f32_x = t(&[lead, rows, k], DType::F32);
        assert!(matches!(
            cublaslt::check_gemm(&f32_x, &w, None, &y),
            Err(Error::DType { .. })
        ));
        let bad_bias = t(&[n + 1], bf);
        assert!(cublaslt::check_gemm(&x, &w, Some(&bad_bias), &y).is_err());
        assert!(cublaslt::check_gemm(&x, &w, None, &t(&[lead, rows, n], DType::F64)).is_err());
    }
    // K = 0 is ours alone.
    let msg = cublaslt::check_gemm(&t(&[3, 0], bf), &t(&[4, 0], bf), None, &t(&[3, 4], bf))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("K = 0"), "{msg}");
}

#[test]
fn a_missing_cublaslt_is_an_error_that_says_how_to_get_it() {
    let dir = Path::new("/nonexistent/recur-test/cu13/lib");
    let msg = cublaslt::load_library(Some(dir)).unwrap_err();
    for part in [
        cublaslt::CUBLASLT_DIR_VAR,
        "/nonexistent/recur-test/cu13/lib",
        cublaslt::CUBLASLT_SONAME,
        "nvidia-cublas",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    // From the loader's own path: a CUDA 13 library where one is installed, else the how-to.
    match cublaslt::load_library(None) {
        Ok(lib) => assert_eq!(lib.version / 10_000, 13, "{lib:?}"),
        Err(msg) => assert!(msg.contains(cublaslt::HOW_TO_GET_CUBLASLT), "{msg}"),
    }
    assert_eq!(cublaslt::workspace_bytes((9, 0)), 32 << 20);
    assert_eq!(cublaslt::workspace_bytes((8, 6)), 4 << 20);
}

// --- the bench's rows --------------------------------------------------------------------------

#[test]
fn the_comparison_covers_every_models_products() {
    let products = model_products();
    let find = |model: &str, name: &str| {
        products
            .iter()
            .find(|p| p.model == model && p.name == name)
            .unwrap_or_else(|| panic!("{model} {name} missing"))
    };
    for (model, seq) in [("TRM Sudoku", 97), ("TRM ARC", 916)] {
        let shape = |name| {
            let p = find(model, name);
            (p.seq, p.n, p.k, p.follows)
        };
        assert_eq!(shape("qkv_proj"), (seq, 1536, 512, Follows::Nothing));
        assert_eq!(shape("o_proj"), (seq, 512, 512, Follows::Nothing));
        assert_eq!(shape("gate_up_proj"), (seq, 3072, 512, Follows::SwiGlu));
        assert_eq!(shape("down_proj"), (seq, 512, 1536, Follows::Residual));
    }
    let sotaku: Vec<_> = products.iter().filter(|p| p.model == "Sotaku").collect();
    assert_eq!(sotaku.len(), 4);
    assert!(sotaku
        .iter()
        .all(|p| p.seq == 81 && p.follows == Follows::Bias && (p.n == 128 || p.k == 128)));
    assert_eq!(products.len(), 12);
}

#[test]
fn the_comparison_table_shows_both_medians_the_ratio_and_the_pick() {
    let measured = |ms| Measurement {
        median_ms: ms,
        min_ms: ms,
        runs: 3,
    };
    let products = model_products();
    let rows = [
        CublasLtRow {
            product: products[0],
            m: 776,
            ours: measured(0.020),
            cublaslt: Ok(measured(0.030)),
            decision: decide_from_medians(0.020, 0.030).unwrap(),
        },
        CublasLtRow {
            product: products[2],
            m: 776,
            ours: measured(0.040),
            cublaslt: Ok(measured(0.050)),
            decision: GemmDecision {
                chosen: GemmImpl::Ours,
                reason: Reason::FusedEpilogue,
            },
        },
        CublasLtRow {
            product: products[1],
            m: 776,
            ours: measured(0.010),
            cublaslt: Err("CUBLAS_STATUS_NOT_SUPPORTED".into()),
            decision: GemmDecision {
                chosen: GemmImpl::Ours,
                reason: Reason::CublasLtFailed("CUBLAS_STATUS_NOT_SUPPORTED".into()),
            },
        },
    ];
    let table = cublaslt_table("header", &rows);
    let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].contains("| 20.0 | 30.0 | 1.50 | ours (measured"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("776 × 1536 × 512"), "{}", lines[1]);
    assert!(
        lines[2].contains("| 40.0 | 50.0 | 1.25 | ours (fused epilogue) |"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("failed: CUBLAS_STATUS_NOT_SUPPORTED | – |"),
        "{}",
        lines[3]
    );
    assert_eq!(rows[0].ratio(), Some(0.030 / 0.020));
    assert_eq!(rows[2].ratio(), None);
}

/// `recur bench` without a GPU says why it prints no cuBLASLt rows, and a bad `RECUR_GEMM`
/// stops it before the suite runs.
#[test]
fn recur_bench_explains_missing_cublaslt_rows_and_rejects_a_bad_policy() {
    let bench = |policy: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .args(["bench", "--device", "cpu", "--batch", "1", "--runs", "1"])
            .args(["--warmup", "0"])
            .env(GEMM_POLICY_VAR, policy)
            .output()
            .unwrap()
    };
    let ok = bench("auto");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("ours vs cuBLASLt")
            && stdout.contains("rows omitted: cuBLASLt runs only on a GPU"),
        "{stdout}"
    );
    let bad = bench("fastest");
    assert!(!bad.status.success());
    assert!(
        bad.stdout.is_empty(),
        "the suite ran before the policy was checked"
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(GEMM_POLICY_VAR) && stderr.contains("fastest"),
        "{stderr}"
    );
}

#[test]
fn bench_operands_repeat_a_random_block_of_rows() {
    let dev = Emu::new().unwrap();
    let (rows, cols) = (2500, 3);
    let t = random_rows(&dev, rows, cols, 5).unwrap();
    assert_eq!((t.dims(), t.dtype()), (&[rows, cols][..], DType::BF16));
    let v = t.download(&dev).unwrap().to_vec_f64().unwrap();
    let row = |r: usize| &v[r * cols..(r + 1) * cols];
    // Rows repeat with period 1024, and the drawn block is not constant.
    for r in [0, 1, 517, 1023, 1024, 1500, 2047] {
        assert_eq!(row(r), row(r + 1024 * ((rows - 1 - r) / 1024)), "row {r}");
    }
    assert_ne!(row(0), row(1));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.15,
        "mean {mean}, var {var}"
    );
    // Fewer rows than the block: all drawn.
    assert_eq!(random_rows(&dev, 7, 4, 1).unwrap().dims(), &[7, 4]);
}

// --- products against the f64 reference: Emu always, the GPU when present ---------------------

/// bf16 operands are exact in f32 and the reference sums the same bf16 values in f64, so an f32
/// output differs only by f32 summation (1e-5); a bf16 output adds its rounding (1e-2), as in
/// tests/kernels_gemm.rs.
fn tolerance(out: DType) -> f64 {
    match out {
        DType::BF16 => 1e-2,
        _ => 1e-5,
    }
}

fn as64(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).unwrap()
}

fn check(what: &str, got: &DeviceTensor, dev: &dyn KernelBackend, want: &Tensor) {
    let got = got.download(dev).unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let err = rel_l2(&got.to_vec_f64().unwrap(), &want.to_vec_f64().unwrap());
    eprintln!("{what}: rel L2 {err:.2e}");
    assert!(err < tolerance(got.dtype()), "{what}: rel L2 {err:.3e}");
}

/// Ragged (M, N, K): not multiples of any tile, K odd in one case, M = 1 in one; plus TRM
/// Sudoku's qkv_proj at B = 2 and Sotaku's ffn_down at B = 3.
const SIZES: [(usize, usize, usize); 6] = [
    (1, 2, 16),
    (33, 97, 48),
    (130, 98, 40),
    (7, 34, 97),
    (194, 1536, 512),
    (243, 128, 512),
];

/// Inputs of one size and the reference outputs of each epilogue.
struct Case {
    x: Tensor,
    w: Tensor,
    bias: Tensor,
    /// Shaped like the output.
    residual: Tensor,
}

impl Case {
    fn new(m: usize, n: usize, k: usize, seed: u64) -> Case {
        let bf = DType::BF16;
        // A rank-3 x for even M, so leading dimensions fold into the rows.
        let x_shape = if m % 2 == 0 {
            Shape::new([2, m / 2, k])
        } else {
            Shape::new([m, k])
        };
        let y_dims = [&x_shape.dims()[..x_shape.rank() - 1], &[n]].concat();
        Case {
            x: Tensor::randn(x_shape, 1.0, seed, bf).unwrap(),
            w: Tensor::randn([n, k], 0.5, seed + 1, bf).unwrap(),
            bias: Tensor::randn([n], 1.0, seed + 2, bf).unwrap(),
            residual: Tensor::randn(y_dims, 1.0, seed + 3, bf).unwrap(),
        }
    }
    fn y_dims(&self, cols: usize) -> Vec<usize> {
        let d = self.x.dims();
        [&d[..d.len() - 1], &[cols]].concat()
    }
    fn product(&self, bias: bool) -> Tensor {
        let b = bias.then(|| as64(&self.bias));
        linear::linear_fwd(&as64(&self.x), &as64(&self.w), b.as_ref()).unwrap()
    }
}

/// cuBLASLt's product (plain, and with bias into bf16) against the reference, NaN-poisoned
/// outputs, fresh inputs per size; then its refusals on the GPU.
fn check_cublaslt(cuda: &Cuda, lt: &CublasLt) {
    for (i, &(m, n, k)) in SIZES.iter().enumerate() {
        let case = Case::new(m, n, k, 1000 + 10 * i as u64);
        let up = |t: &Tensor| DeviceTensor::upload(cuda, t).unwrap();
        let (x, w, b) = (up(&case.x), up(&case.w), up(&case.bias));
        for out in [DType::BF16, DType::F32] {
            let mut y = DeviceTensor::poisoned(cuda, case.y_dims(n), out).unwrap();
            lt.gemm_bf16_into(&x, &w, None, &mut y).unwrap();
            check(
                &format!("cuBLASLt M={m} N={n} K={k} -> {out}"),
                &y,
                cuda,
                &case.product(false),
            );
        }
        let mut y = DeviceTensor::poisoned(cuda, case.y_dims(n), DType::BF16).unwrap();
        lt.gemm_bf16_into(&x, &w, Some(&b), &mut y).unwrap();
        check(
            &format!("cuBLASLt+bias M={m} N={n} K={k}"),
            &y,
            cuda,
            &case.product(true),
        );
        // The plan is cached per shape; a second call with another bias must use that bias.
        let b2 = up(&Tensor::randn([n], 1.0, 77 + i as u64, DType::BF16).unwrap());
        lt.gemm_bf16_into(&x, &w, Some(&b2), &mut y).unwrap();
        let want = linear::linear_fwd(
            &as64(&case.x),
            &as64(&case.w),
            Some(&as64(&b2.download(cuda).unwrap())),
        )
        .unwrap();
        check(
            &format!("cuBLASLt+bias (2nd) M={m} N={n} K={k}"),
            &y,
            cuda,
            &want,
        );
    }
    let bf = DType::BF16;
    let (x, w, b) = (
        DeviceTensor::uninit(cuda, [4, 8], bf).unwrap(),
        DeviceTensor::uninit(cuda, [6, 8], bf).unwrap(),
        DeviceTensor::uninit(cuda, [6], bf).unwrap(),
    );
    let mut y32 = DeviceTensor::uninit(cuda, [4, 6], DType::F32).unwrap();
    assert!(lt.gemm_bf16_into(&x, &w, Some(&b), &mut y32).is_err());
    let emu = Emu::new().unwrap();
    let foreign = DeviceTensor::uninit(&emu, [4, 8], bf).unwrap();
    let mut y = DeviceTensor::uninit(cuda, [4, 6], bf).unwrap();
    let msg = lt
        .gemm_bf16_into(&foreign, &w, None, &mut y)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("another backend"), "{msg}");
}

/// The dispatcher: every epilogue through it matches the reference whichever implementation
/// runs; plain and bias products are decided once per shape; fused ones stay on ours.
fn check_dispatch(
    dev: &dyn KernelBackend,
    dispatch: &GemmDispatch<'_>,
    sizes: &[(usize, usize, usize)],
) {
    for (i, &(m, n, k)) in sizes.iter().enumerate() {
        let case = Case::new(m, n, k, 2000 + 10 * i as u64);
        let up = |t: &Tensor| DeviceTensor::upload(dev, t).unwrap();
        let (x, w, b) = (up(&case.x), up(&case.w), up(&case.bias));
        let r = up(&case.residual);
        let product = case.product(false);
        let with_residual = elementwise::add_tensors(&product, &as64(&case.residual)).unwrap();
        let mut cases = vec![
            ("plain", Epilogue::None, DType::BF16, product.clone()),
            ("plain", Epilogue::None, DType::F32, product.clone()),
            ("bias", Epilogue::Bias(&b), DType::BF16, case.product(true)),
            ("bias", Epilogue::Bias(&b), DType::F32, case.product(true)),
            (
                "residual",
                Epilogue::Residual(&r),
                DType::BF16,
                with_residual,
            ),
        ];
        if n % 2 == 0 {
            cases.push((
                "swiglu",
                Epilogue::SwiGlu,
                DType::BF16,
                swiglu::swiglu_fwd(&product).unwrap(),
            ));
        }
        for (what, epilogue, out, want) in cases {
            let mut y = DeviceTensor::poisoned(dev, want.shape().clone(), out).unwrap();
            let chosen = dispatch.gemm_bf16_into(&x, &w, epilogue, &mut y).unwrap();
            let label = format!(
                "dispatch {what} M={m} N={n} K={k} -> {out} on {}",
                chosen.name()
            );
            check(&label, &y, dev, &want);
            let class = EpilogueClass::of(&epilogue);
            if class.is_fused() || (class == EpilogueClass::Bias && out == DType::F32) {
                assert_eq!(chosen, GemmImpl::Ours, "{label}");
            }
            // Again: the cached decision, the same implementation.
            let before = dispatch.chooser().decisions().len();
            let again = dispatch.gemm_bf16_into(&x, &w, epilogue, &mut y).unwrap();
            assert_eq!(again, chosen, "{label}: the decision changed");
            assert_eq!(dispatch.chooser().decisions().len(), before, "{label}");
        }
    }
}

mod dispatch_matches_reference {
    use super::*;

    /// On Emu there is no cuBLASLt: auto and forced-ours run ours, forcing cuBLASLt is refused.
    #[test]
    fn emu() {
        let dev = Emu::new().unwrap();
        let why = "the Emu backend has no cuBLASLt".to_string();
        let dispatch = GemmDispatch::new(&dev, Err(why.clone()), GemmPolicy::Auto).unwrap();
        check_dispatch(&dev, &dispatch, &SIZES[..4]);
        for (key, decision) in dispatch.chooser().decisions() {
            assert_eq!(decision.chosen, GemmImpl::Ours, "{key:?}");
            let unsupported = key.cublaslt_unsupported().is_some();
            match decision.reason {
                Reason::CublasLtUnavailable(w) => assert!(!unsupported && w == why),
                Reason::FusedEpilogue | Reason::Unsupported(_) => assert!(unsupported),
                other => panic!("{key:?}: {other:?}"),
            }
        }
        let err = GemmDispatch::new(&dev, Err(why.clone()), GemmPolicy::CublasLt).err();
        assert!(err.is_some_and(|e| e.to_string().contains(&why)));
        let forced_ours = GemmDispatch::new(&dev, Err(why), GemmPolicy::Ours).unwrap();
        check_dispatch(&dev, &forced_ours, &SIZES[1..2]);
    }

    /// On a GPU with cuBLASLt: auto (measured), then forced cuBLASLt, both against the reference.
    #[test]
    fn cuda() {
        let Some((cuda, lt)) = gpu_with_cublaslt(module_path!()) else {
            return;
        };
        let auto = GemmDispatch::new(&cuda, Ok(&lt), GemmPolicy::Auto).unwrap();
        check_dispatch(&cuda, &auto, &SIZES);
        for (key, decision) in auto.chooser().decisions() {
            eprintln!("auto: {key:?} -> {decision}");
            if key.cublaslt_unsupported().is_none() {
                assert!(
                    matches!(
                        decision.reason,
                        Reason::Measured { .. } | Reason::CublasLtFailed(_)
                    ),
                    "{key:?}: {decision}"
                );
            }
        }
        let forced = GemmDispatch::new(&cuda, Ok(&lt), GemmPolicy::CublasLt).unwrap();
        check_dispatch(&cuda, &forced, &SIZES);
        for (key, decision) in forced.chooser().decisions() {
            let want = if key.cublaslt_unsupported().is_none() {
                GemmImpl::CublasLt
            } else {
                GemmImpl::Ours
            };
            assert_eq!(decision.chosen, want, "{key:?}");
        }
    }
}

mod cublaslt_matches_reference {
    use super::*;

    #[test]
    fn cuda() {
        if let Some((cuda, lt)) = gpu_with_cublaslt(module_path!()) {
            check_cublaslt(&cuda, &lt);
        }
    }
}

mod bench_rows {
    use super::*;

    /// `recur bench`'s comparison at batch 1: a row per model product, both timed, the pick of
    /// each fused product ours, and the measured picks consistent with their own medians.
    #[test]
    fn cuda() {
        let Some((cuda, lt)) = gpu_with_cublaslt(module_path!()) else {
            return;
        };
        let rows = cublaslt_rows(&cuda, &lt, 1, 1, 3, GemmPolicy::Auto).unwrap();
        assert_eq!(rows.len(), model_products().len());
        for r in &rows {
            let name = format!("{} {}", r.product.model, r.product.name);
            assert_eq!(r.m, r.product.seq, "{name}");
            assert!(r.ours.median_ms > 0.0, "{name}");
            let lt = r
                .cublaslt
                .as_ref()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(lt.median_ms > 0.0, "{name}");
            match r.product.follows {
                Follows::SwiGlu | Follows::Residual => {
                    assert_eq!(r.decision.reason, Reason::FusedEpilogue, "{name}")
                }
                Follows::Nothing | Follows::Bias => assert_eq!(
                    r.decision,
                    decide_from_medians(r.ours.median_ms, lt.median_ms).unwrap(),
                    "{name}"
                ),
            }
        }
        eprintln!("{}", cublaslt_table("bench_rows::cuda at batch 1", &rows));
    }
}

/// The GPU and a cuBLASLt handle on it, or `None` after printing why the test skips.
fn gpu_with_cublaslt(test: &str) -> Option<(Cuda, CublasLt)> {
    let cuda = match Cuda::new(0) {
        Ok(cuda) => cuda,
        Err(e) => {
            recur::testing::skip_cuda(test, e);
            return None;
        }
    };
    match CublasLt::new(&cuda) {
        Ok(lt) => Some((cuda, lt)),
        Err(e) => {
            recur::testing::skip_cuda(test, e);
            None
        }
    }
}
