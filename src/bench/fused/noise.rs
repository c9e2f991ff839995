//! Bench cases of `kernels/noise.cu` at the model shapes, bf16: PTRM's `z_H + σ·ξ` on
//! `[B, 97, 512]`, and GRAM's posterior sample + KL at `[B, 97, 512]`, fused (`reparam_kl_fwd`,
//! `reparam_kl_bwd`) and unfused (`reparam_sample_fwd`, `reparam_sample_sigma_bwd`,
//! `gaussian_kl_fwd`, `gaussian_kl_bwd`) so one table shows what the fusion saves. Cost model
//! (docs/kernels-rope-noise.md): FLOPs per element with a transcendental as one (a normal costs
//! 4: Box-Muller's log, sqrt, sin, cos and four multiplies per pair; Philox's integer rounds are
//! not counted); minimum bytes s per element of every tensor read or written.

use crate::bench::suite::Case;
use crate::device::{DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::noise::{self as k, KlGradScale, NoiseStream, ReparamKlGrads};
use crate::tensor::Tensor;

const SEQ: usize = 97;
const HIDDEN: usize = 512;
const BF16_BYTES: f64 = 2.0;

/// FLOPs of one standard normal (see the module comment).
const NORMAL_FLOPS: f64 = 4.0;
/// FLOPs of one KL value and of its four gradients.
const KL_FWD_FLOPS: f64 = 11.0;
const KL_BWD_FLOPS: f64 = 20.0;

/// GRAM's operands: `[μq, σq, μp, σp]` and the upstream gradients of the sample and the KL.
struct GramTensors {
    xs: [DeviceTensor; 4],
    dz: DeviceTensor,
    dkl: DeviceTensor,
}

impl GramTensors {
    fn xs(&self) -> [&DeviceTensor; 4] {
        self.xs.each_ref()
    }
}

/// The cases at batch `batch`.
pub fn cases(dev: &dyn KernelBackend, batch: usize) -> Result<Vec<Case<'_>>> {
    let dims = [batch, SEQ, HIDDEN];
    let n = (batch * SEQ * HIDDEN) as f64;
    let shape = format!("{dims:?}");
    let bf = DType::BF16;
    let normal = |seed: u64| -> Result<DeviceTensor> {
        DeviceTensor::upload(dev, &Tensor::randn(dims, 1.0, seed, bf)?)
    };
    // Standard deviations exp(N(0, 0.5²)): positive, as the KL needs.
    let sigma = |seed: u64| -> Result<DeviceTensor> {
        let v: Vec<f64> = Tensor::randn(dims, 0.5, seed, DType::F64)?
            .to_vec_f64()?
            .into_iter()
            .map(f64::exp)
            .collect();
        DeviceTensor::upload(dev, &Tensor::from_vec(v, dims)?.to_dtype(bf)?)
    };
    let out = || DeviceTensor::uninit(dev, dims, bf);
    let stream = NoiseStream { seed: 7, step: 1 };
    let scale = KlGradScale::balanced(0.8)?;
    let case = |kernel: &'static str, flops: f64, tensors: f64, run| Case {
        kernel,
        shape: shape.clone(),
        flops: flops * n,
        bytes: tensors * BF16_BYTES * n,
        run,
    };
    let mut cases = Vec::new();

    let (z, mut y) = (normal(70)?, out()?);
    cases.push(case(
        "add_noise_fwd_bf16 (PTRM z_H)",
        NORMAL_FLOPS + 2.0,
        2.0,
        Box::new(move || k::add_noise_fwd_into(dev, &z, 0.1, stream, &mut y)),
    ));

    // Every case owns its operands (fresh uploads), so the boxed closures borrow nothing.
    let gram = |seed: u64| -> Result<GramTensors> {
        Ok(GramTensors {
            xs: [
                normal(seed)?,
                sigma(seed + 1)?,
                normal(seed + 2)?,
                sigma(seed + 3)?,
            ],
            dz: normal(seed + 4)?,
            dkl: normal(seed + 5)?,
        })
    };
    let grads = || -> Result<[DeviceTensor; 4]> { Ok([out()?, out()?, out()?, out()?]) };

    let (g, mut z, mut kl) = (gram(71)?, out()?, out()?);
    cases.push(case(
        "reparam_kl_fwd_bf16 (GRAM sample + KL)",
        NORMAL_FLOPS + 2.0 + KL_FWD_FLOPS,
        6.0,
        Box::new(move || k::reparam_kl_fwd_into(dev, g.xs(), stream, &mut z, &mut kl)),
    ));
    let (g, mut d) = (gram(81)?, grads()?);
    cases.push(case(
        "reparam_kl_bwd_bf16 (GRAM sample + KL)",
        NORMAL_FLOPS + KL_BWD_FLOPS + 3.0,
        10.0,
        Box::new(move || {
            let upstream = ReparamKlGrads {
                dz: &g.dz,
                dkl: &g.dkl,
            };
            k::reparam_kl_bwd_into(dev, upstream, g.xs(), stream, scale, d.each_mut())
        }),
    ));

    // The unfused baseline of the two rows above.
    let (g, mut sample) = (gram(91)?, out()?);
    cases.push(case(
        "reparam_sample_fwd_bf16 (GRAM, unfused)",
        NORMAL_FLOPS + 2.0,
        3.0,
        Box::new(move || k::reparam_sample_fwd_into(dev, &g.xs[0], &g.xs[1], stream, &mut sample)),
    ));
    let (g, mut kl) = (gram(101)?, out()?);
    cases.push(case(
        "gaussian_kl_fwd_bf16 (GRAM, unfused)",
        KL_FWD_FLOPS,
        5.0,
        Box::new(move || k::gaussian_kl_fwd_into(dev, g.xs(), &mut kl)),
    ));
    let (g, mut dsigma) = (gram(111)?, out()?);
    cases.push(case(
        "reparam_sample_sigma_bwd_bf16 (GRAM, unfused)",
        NORMAL_FLOPS + 1.0,
        2.0,
        Box::new(move || k::reparam_sample_sigma_bwd_into(dev, &g.dz, stream, &mut dsigma)),
    ));
    let (g, mut d) = (gram(121)?, grads()?);
    cases.push(case(
        "gaussian_kl_bwd_bf16 (GRAM, unfused)",
        KL_BWD_FLOPS,
        9.0,
        Box::new(move || k::gaussian_kl_bwd_into(dev, &g.dkl, g.xs(), scale, d.each_mut())),
    ));
    Ok(cases)
}
