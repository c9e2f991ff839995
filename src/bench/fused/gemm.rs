//! Bench cases of `kernels/gemm.cu`, the tensor-core GEMM with fused epilogues, at TRM Sudoku's
//! three projection shapes (97 positions, hidden 512, SwiGLU inter 1536): the qkv projection,
//! gate_up with SwiGLU fused, and down_proj with the residual add fused. bf16 operands and
//! outputs. Cost model (docs/kernels-gemm.md): FLOPs 2·M·N·K for the product; minimum bytes
//! 2·(M·K + N·K + output) plus any residual read.

use crate::bench::suite::Case;
use crate::bench::{DeviceClock, Measurement};
use crate::device::cuda::cublaslt::CublasLt;
use crate::device::cuda::Cuda;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::activation::swiglu_fwd_into;
use crate::kernels::elementwise::add_fwd_into;
use crate::kernels::gemm::{gemm_bf16_into, gemm_bf16_output_shape, Epilogue};
use crate::kernels::gemm_choice::{
    decide, measure_pair, EpilogueClass, GemmDecision, GemmKey, GemmPolicy, Trial,
};
use crate::tensor::Tensor;

const SEQ: usize = 97;
const HIDDEN: usize = 512;
const INTER: usize = 1536;
const BF16_BYTES: f64 = 2.0;

/// One projection: `x [rows, k]` times the weight `[n, k]`ᵀ.
struct Projection {
    kernel: &'static str,
    name: &'static str,
    rows: usize,
    n: usize,
    k: usize,
}

impl Projection {
    /// Inputs read once, the weight read once, the output (`n` or `n / 2` columns) written once,
    /// plus the residual read when fused.
    fn bytes(&self, out_cols: usize, residual: bool) -> f64 {
        let (m, n, k) = (self.rows as f64, self.n as f64, self.k as f64);
        let out = m * out_cols as f64;
        (m * k + n * k + out + if residual { out } else { 0.0 }) * BF16_BYTES
    }

    /// The timed case: fresh random bf16 operands and output on `dev`, the epilogue built from
    /// the residual when `residual` (shaped like the output).
    fn case<'a>(
        self,
        dev: &'a dyn KernelBackend,
        swiglu: bool,
        residual: bool,
        seed: u64,
    ) -> Result<Case<'a>> {
        let bf = DType::BF16;
        let upload = |dims: &[usize], seed: u64| -> Result<DeviceTensor> {
            DeviceTensor::upload(dev, &Tensor::randn(dims.to_vec(), 1.0, seed, bf)?)
        };
        let x = upload(&[self.rows, self.k], seed)?;
        let w = upload(&[self.n, self.k], seed + 1)?;
        let probe = if swiglu {
            Epilogue::SwiGlu
        } else {
            Epilogue::None
        };
        let out_shape = gemm_bf16_output_shape(x.shape(), w.shape(), probe)?;
        let out_cols = out_shape.dims()[1];
        let r = if residual {
            Some(upload(out_shape.dims(), seed + 2)?)
        } else {
            None
        };
        let mut y = DeviceTensor::uninit(dev, out_shape, bf)?;
        let flops = 2.0 * (self.rows * self.n * self.k) as f64;
        let bytes = self.bytes(out_cols, residual);
        let shape = format!(
            "{}: [{}, {}] x [{}, {}]ᵀ",
            self.name, self.rows, self.k, self.n, self.k
        );
        Ok(Case {
            kernel: self.kernel,
            shape,
            flops,
            bytes,
            run: Box::new(move || {
                let epilogue = match &r {
                    Some(r) => Epilogue::Residual(r),
                    None => probe,
                };
                gemm_bf16_into(dev, &x, &w, epilogue, &mut y)
            }),
        })
    }
}

/// The three cases at batch `batch` (`M = batch·97`).
pub fn cases(dev: &dyn KernelBackend, batch: usize) -> Result<Vec<Case<'_>>> {
    let rows = batch * SEQ;
    Ok(vec![
        Projection {
            kernel: "gemm_bf16_fwd_bf16 (qkv_proj, mma)",
            name: "qkv_proj",
            rows,
            n: 3 * HIDDEN,
            k: HIDDEN,
        }
        .case(dev, false, false, 11)?,
        Projection {
            kernel: "gemm_bf16_swiglu_fwd_bf16 (gate_up + SwiGLU)",
            name: "gate_up_proj",
            rows,
            n: 2 * INTER,
            k: HIDDEN,
        }
        .case(dev, true, false, 21)?,
        Projection {
            kernel: "gemm_bf16_fwd_bf16 (down_proj + residual)",
            name: "down_proj",
            rows,
            n: HIDDEN,
            k: INTER,
        }
        .case(dev, false, true, 31)?,
    ])
}

// --- Ours against cuBLASLt, at every model's products --------------------------------------

/// TRM on ARC: a 30 × 30 grid plus the 16-position puzzle-embedding prefix; TRM's widths.
const TRM_ARC_SEQ: usize = 916;
/// Sotaku: the 81 cells, d_model 128, FFN 512, a bias on every Linear (ReLU FFN, no SwiGLU).
const SOTAKU_SEQ: usize = 81;
const SOTAKU_HIDDEN: usize = 128;
const SOTAKU_FF: usize = 512;

/// What the model applies to a product, which decides what ours fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follows {
    /// A plain product (`qkv_proj`, `o_proj`: the residual goes into the fused norm kernel).
    Nothing,
    /// `+ bias [N]`, in both implementations' epilogue.
    Bias,
    /// SwiGLU of `gate | up`: fused by ours; cuBLASLt needs `swiglu_fwd_bf16` after it.
    SwiGlu,
    /// `+ residual`: fused by ours; cuBLASLt needs `add_fwd_bf16` after it.
    Residual,
}

/// One product of one model: `x [batch·seq, k] · W [n, k]ᵀ`, then `follows`.
#[derive(Clone, Copy, Debug)]
pub struct ModelProduct {
    pub model: &'static str,
    pub name: &'static str,
    pub seq: usize,
    pub n: usize,
    pub k: usize,
    pub follows: Follows,
}

/// The products the comparison times: TRM's four at Sudoku's and ARC's lengths, Sotaku's four.
pub fn model_products() -> Vec<ModelProduct> {
    let trm = |model, seq| {
        [
            ("qkv_proj", 3 * HIDDEN, HIDDEN, Follows::Nothing),
            ("o_proj", HIDDEN, HIDDEN, Follows::Nothing),
            ("gate_up_proj", 2 * INTER, HIDDEN, Follows::SwiGlu),
            ("down_proj", HIDDEN, INTER, Follows::Residual),
        ]
        .map(|(name, n, k, follows)| ModelProduct {
            model,
            name,
            seq,
            n,
            k,
            follows,
        })
    };
    let sotaku = [
        ("qkv", 3 * SOTAKU_HIDDEN, SOTAKU_HIDDEN),
        ("out_proj", SOTAKU_HIDDEN, SOTAKU_HIDDEN),
        ("ffn_up", SOTAKU_FF, SOTAKU_HIDDEN),
        ("ffn_down", SOTAKU_HIDDEN, SOTAKU_FF),
    ]
    .map(|(name, n, k)| ModelProduct {
        model: "Sotaku",
        name,
        seq: SOTAKU_SEQ,
        n,
        k,
        follows: Follows::Bias,
    });
    [
        trm("TRM Sudoku", SEQ).as_slice(),
        trm("TRM ARC", TRM_ARC_SEQ).as_slice(),
        sotaku.as_slice(),
    ]
    .concat()
}

/// One row of the comparison.
#[derive(Clone, Debug)]
pub struct CublasLtRow {
    pub product: ModelProduct,
    /// Rows: batch · seq.
    pub m: usize,
    pub ours: Measurement,
    /// cuBLASLt (plus the separate epilogue kernel it needs), or why it could not run.
    pub cublaslt: std::result::Result<Measurement, String>,
    /// What the selection rule picks for this product under the active policy.
    pub decision: GemmDecision,
}

impl CublasLtRow {
    /// cuBLASLt's median over ours: above 1, ours is faster.
    pub fn ratio(&self) -> Option<f64> {
        self.cublaslt
            .as_ref()
            .ok()
            .map(|lt| lt.median_ms / self.ours.median_ms)
    }
}

/// Times ours against cuBLASLt at every `model_products()` shape at batch `batch` on `cuda`, in
/// the same run, interleaved (`gemm_choice::measure_pair`), with fresh random bf16 operands and
/// bf16 outputs; and asks the selection rule (under `policy`) which it picks from those medians.
pub fn cublaslt_rows(
    cuda: &Cuda,
    lt: &CublasLt,
    batch: usize,
    warmup: usize,
    runs: usize,
    policy: GemmPolicy,
) -> Result<Vec<CublasLtRow>> {
    model_products()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            compare(
                cuda,
                lt,
                p,
                batch * p.seq,
                warmup,
                runs,
                policy,
                100 + i as u64,
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn compare(
    dev: &Cuda,
    lt: &CublasLt,
    p: ModelProduct,
    m: usize,
    warmup: usize,
    runs: usize,
    policy: GemmPolicy,
    seed: u64,
) -> Result<CublasLtRow> {
    let bf = DType::BF16;
    let x = random_rows(dev, m, p.k, seed)?;
    let w = random_rows(dev, p.n, p.k, seed + 1)?;
    let out_cols = if p.follows == Follows::SwiGlu {
        p.n / 2
    } else {
        p.n
    };
    let bias = (p.follows == Follows::Bias)
        .then(|| DeviceTensor::upload(dev, &Tensor::randn([p.n], 1.0, seed + 2, bf)?))
        .transpose()?;
    let residual = (p.follows == Follows::Residual)
        .then(|| random_rows(dev, m, out_cols, seed + 3))
        .transpose()?;
    let epilogue = match (p.follows, &bias, &residual) {
        (Follows::Bias, Some(b), _) => Epilogue::Bias(b),
        (Follows::Residual, _, Some(r)) => Epilogue::Residual(r),
        (Follows::SwiGlu, _, _) => Epilogue::SwiGlu,
        _ => Epilogue::None,
    };
    let mut y_ours = DeviceTensor::uninit(dev, [m, out_cols], bf)?;
    // cuBLASLt writes the whole product; a fused epilogue then needs its own kernel into `y`.
    let mut product = DeviceTensor::uninit(dev, [m, p.n], bf)?;
    let mut y = DeviceTensor::uninit(dev, [m, out_cols], bf)?;
    let mut theirs = || -> Result<()> {
        lt.gemm_bf16_into(&x, &w, bias.as_ref(), &mut product)?;
        match (p.follows, &residual) {
            (Follows::SwiGlu, _) => swiglu_fwd_into(dev, &product, &mut y),
            (Follows::Residual, Some(r)) => add_fwd_into(dev, &product, r, &mut y),
            _ => Ok(()),
        }
    };
    let key = GemmKey {
        m,
        n: p.n,
        k: p.k,
        epilogue: EpilogueClass::of(&epilogue),
        out: bf,
    };
    // A trial call first, as the dispatcher makes: a shape cuBLASLt refuses is a row, not a
    // failed bench.
    let timed = match theirs() {
        Err(e) => Err(e.to_string()),
        Ok(()) => Ok(measure_pair(
            &DeviceClock(dev),
            warmup,
            runs,
            &mut || gemm_bf16_into(dev, &x, &w, epilogue, &mut y_ours),
            &mut theirs,
        )?),
    };
    let (ours, cublaslt) = match timed {
        Ok((ours, theirs)) => (ours, Ok(theirs)),
        Err(why) => {
            let ours = crate::bench::measure(&DeviceClock(dev), warmup, runs, &mut || {
                gemm_bf16_into(dev, &x, &w, epilogue, &mut y_ours)
            })?;
            (ours, Err(why))
        }
    };
    let decision = decide(policy, &key, Ok(()), || {
        Ok(match &cublaslt {
            Ok(theirs) => Trial::Medians {
                ours_ms: ours.median_ms,
                cublaslt_ms: theirs.median_ms,
            },
            Err(why) => Trial::CublasLtFailed(why.clone()),
        })
    })?;
    Ok(CublasLtRow {
        product: p,
        m,
        ours,
        cublaslt,
        decision,
    })
}

/// Rows drawn at random, at most this many; more rows repeat them.
const RANDOM_ROWS: usize = 1024;

/// A bf16 `[rows, cols]` of standard normals: `RANDOM_ROWS` random rows, repeated. A GEMM's time
/// does not depend on the values, and drawing ARC's operands in full at B = 64 (over 10⁸ normals)
/// would take seconds of the GPU run's bench budget.
pub fn random_rows(
    dev: &dyn KernelBackend,
    rows: usize,
    cols: usize,
    seed: u64,
) -> Result<DeviceTensor> {
    let block = Tensor::randn([rows.min(RANDOM_ROWS), cols], 1.0, seed, DType::BF16)?;
    // The block holds whole rows, so cycling its bytes repeats rows.
    let bytes: Vec<u8> = block
        .to_bytes()?
        .into_iter()
        .cycle()
        .take(rows * cols * DType::BF16.size_in_bytes())
        .collect();
    DeviceTensor::upload(dev, &Tensor::from_bytes(&bytes, [rows, cols], DType::BF16)?)
}

/// The comparison as markdown: both medians, their ratio and the rule's pick, per product.
pub fn cublaslt_table(header: &str, rows: &[CublasLtRow]) -> String {
    let mut out = format!(
        "{header}\n\n| model | product | M × N × K | after the product | ours µs | cuBLASLt µs | \
         cuBLASLt / ours | rule picks |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let p = &r.product;
        let after = match p.follows {
            Follows::Nothing => "nothing",
            Follows::Bias => "bias (both fuse it)",
            Follows::SwiGlu => "SwiGLU (ours fuses; cuBLASLt + swiglu_fwd_bf16)",
            Follows::Residual => "residual (ours fuses; cuBLASLt + add_fwd_bf16)",
        };
        let theirs = match &r.cublaslt {
            Ok(lt) => format!("{:.1}", lt.median_ms * 1e3),
            Err(why) => format!("failed: {why}"),
        };
        let ratio = r
            .ratio()
            .map_or("–".to_string(), |ratio| format!("{ratio:.2}"));
        out.push_str(&format!(
            "| {} | {} | {} × {} × {} | {after} | {:.1} | {theirs} | {ratio} | {} |\n",
            p.model,
            p.name,
            r.m,
            p.n,
            p.k,
            r.ours.median_ms * 1e3,
            r.decision
        ));
    }
    out
}
