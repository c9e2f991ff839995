//! Bench cases of `kernels/gemm.cu`, the tensor-core GEMM with fused epilogues, at TRM Sudoku's
//! three projection shapes (97 positions, hidden 512, SwiGLU inter 1536): the qkv projection,
//! gate_up with SwiGLU fused, and down_proj with the residual add fused. bf16 operands and
//! outputs. Cost model (docs/kernels-gemm.md): FLOPs 2·M·N·K for the product; minimum bytes
//! 2·(M·K + N·K + output) plus any residual read.

use crate::bench::suite::Case;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::gemm::{gemm_bf16_into, gemm_bf16_output_shape, Epilogue};
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
