//! Launchers for `kernels/noise.cu`: Philox Gaussian noise (PTRM's `z + σ·ξ`, GRAM's
//! `μ + σ ⊙ ξ` and its σ-backward with ξ drawn again), the diagonal-Gaussian KL forward and
//! backward with per-side gradient scales (KL balancing), and GRAM's fused sample + KL forward and
//! backward. Validation follows `device::cpu::noise` and `cpu::kl`; every operand shares one shape
//! and an f32 or bf16 dtype. The `_into` forms write a caller's tensors, the others allocate.
//!
//! Standard deviations in tensors are not checked on the host (that would synchronise inside a
//! training step): where the reference errors on a σ that is not positive, the kernels write NaN
//! for that element's KL value and KL gradients. A scalar σ (`gaussian_noise`, `add_noise`) is
//! checked here, as the reference does.

use crate::device::{DeviceTensor, KernelArg, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{
    dtype_suffix, expect_out, expect_same_dtype, grid_for_elements, i64_arg,
};
use crate::shape::Shape;

pub use crate::device::cpu::kl::KlGradScale;

/// Which draw of the normal stream: element `i` takes `philox::normal(seed, step, i)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseStream {
    pub seed: u64,
    pub step: u64,
}

/// The KL operands `[μq, σq, μp, σp]`, as `cpu::kl::KlInputs` on a device.
pub type DeviceKlInputs<'a> = [&'a DeviceTensor; 4];

/// Errors unless a scalar noise scale is finite and non-negative (as `cpu::noise`).
fn check_sigma(op: &'static str, sigma: f64) -> Result<()> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::arg(
            op,
            format!("sigma must be finite and non-negative, got {sigma}"),
        ));
    }
    Ok(())
}

/// Checks that `operands` share the first one's shape and an f32/bf16 dtype; returns the suffix.
fn check_same(op: &'static str, operands: &[&DeviceTensor]) -> Result<&'static str> {
    let first = operands[0];
    let suffix = dtype_suffix(op, first)?;
    for t in &operands[1..] {
        t.shape().expect_eq(op, first.shape())?;
        expect_same_dtype(op, t, first.dtype())?;
    }
    Ok(suffix)
}

/// Checks every output against the shape and dtype of `like`.
fn check_outs(op: &'static str, like: &DeviceTensor, outs: &[&DeviceTensor]) -> Result<()> {
    outs.iter()
        .try_for_each(|o| expect_out(op, o, like.shape(), like.dtype()))
}

/// The grid of a kernel whose threads own whole Philox blocks of four elements, for `n` elements
/// starting at stream element `offset`.
fn grid_for_normals(n: usize, offset: u64) -> crate::device::LaunchConfig {
    let first = offset / 4;
    let last = (offset + n as u64 - 1) / 4;
    grid_for_elements((last - first + 1) as usize)
}

fn stream_args(stream: NoiseStream) -> [KernelArg<'static>; 2] {
    [KernelArg::U64(stream.seed), KernelArg::U64(stream.step)]
}

/// `σ·ξ` into `out`, for elements `offset .. offset + out.numel()` of the stream (the reference
/// `cpu::noise::gaussian_noise` is `offset = 0`).
pub fn gaussian_noise_into(
    dev: &dyn KernelBackend,
    sigma: f64,
    stream: NoiseStream,
    offset: u64,
    out: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "gaussian_noise";
    check_sigma(OP, sigma)?;
    let suffix = dtype_suffix(OP, out)?;
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("gaussian_noise_fwd_{suffix}"),
        grid_for_normals(n, offset),
        &mut [
            KernelArg::Out(&mut out.buf),
            i64_arg(n),
            KernelArg::F32(sigma as f32),
            seed,
            step,
            KernelArg::U64(offset),
        ],
    )
}

/// `σ·ξ` of `shape` and an f32/bf16 `dtype`.
pub fn gaussian_noise(
    dev: &dyn KernelBackend,
    shape: impl Into<Shape>,
    sigma: f64,
    stream: NoiseStream,
    dtype: DType,
) -> Result<DeviceTensor> {
    let mut out = DeviceTensor::uninit(dev, shape, dtype)?;
    gaussian_noise_into(dev, sigma, stream, 0, &mut out)?;
    Ok(out)
}

/// Launches `add_noise_fwd`; `z = None` adds the noise to `y` in place.
fn add_noise_launch(
    dev: &dyn KernelBackend,
    z: Option<&DeviceTensor>,
    sigma: f64,
    stream: NoiseStream,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "add_noise";
    check_sigma(OP, sigma)?;
    let suffix = dtype_suffix(OP, z.unwrap_or(&*y))?;
    if let Some(z) = z {
        expect_out(OP, y, z.shape(), z.dtype())?;
    }
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("add_noise_fwd_{suffix}"),
        grid_for_normals(n, 0),
        &mut [
            // A null z tells the kernel to add the noise to y in place.
            z.map_or(KernelArg::U64(0), |z| KernelArg::In(&z.buf)),
            KernelArg::Out(&mut y.buf),
            i64_arg(n),
            KernelArg::F32(sigma as f32),
            seed,
            step,
        ],
    )
}

/// `z + σ·ξ` (PTRM) into `y`.
pub fn add_noise_fwd_into(
    dev: &dyn KernelBackend,
    z: &DeviceTensor,
    sigma: f64,
    stream: NoiseStream,
    y: &mut DeviceTensor,
) -> Result<()> {
    add_noise_launch(dev, Some(z), sigma, stream, y)
}

/// `z + σ·ξ` (PTRM), in `z`'s dtype.
pub fn add_noise_fwd(
    dev: &dyn KernelBackend,
    z: &DeviceTensor,
    sigma: f64,
    stream: NoiseStream,
) -> Result<DeviceTensor> {
    dtype_suffix("add_noise", z)?;
    let mut y = DeviceTensor::uninit(dev, z.shape().clone(), z.dtype())?;
    add_noise_fwd_into(dev, z, sigma, stream, &mut y)?;
    Ok(y)
}

/// `z += σ·ξ` in place.
pub fn add_noise_fwd_in_place(
    dev: &dyn KernelBackend,
    z: &mut DeviceTensor,
    sigma: f64,
    stream: NoiseStream,
) -> Result<()> {
    add_noise_launch(dev, None, sigma, stream, z)
}

/// `μ + σ ⊙ ξ` (GRAM's reparameterisation) into `y`.
pub fn reparam_sample_fwd_into(
    dev: &dyn KernelBackend,
    mu: &DeviceTensor,
    sigma: &DeviceTensor,
    stream: NoiseStream,
    y: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "reparam_sample";
    let suffix = check_same(OP, &[mu, sigma])?;
    check_outs(OP, mu, &[y])?;
    let n = y.numel();
    if n == 0 {
        return Ok(());
    }
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("reparam_sample_fwd_{suffix}"),
        grid_for_normals(n, 0),
        &mut [
            KernelArg::In(&mu.buf),
            KernelArg::In(&sigma.buf),
            KernelArg::Out(&mut y.buf),
            i64_arg(n),
            seed,
            step,
        ],
    )
}

/// `μ + σ ⊙ ξ` for `mu` and `sigma` of one shape and dtype.
pub fn reparam_sample_fwd(
    dev: &dyn KernelBackend,
    mu: &DeviceTensor,
    sigma: &DeviceTensor,
    stream: NoiseStream,
) -> Result<DeviceTensor> {
    check_same("reparam_sample", &[mu, sigma])?;
    let mut y = DeviceTensor::uninit(dev, mu.shape().clone(), mu.dtype())?;
    reparam_sample_fwd_into(dev, mu, sigma, stream, &mut y)?;
    Ok(y)
}

/// The σ gradient of `reparam_sample_fwd`, `dy ⊙ ξ`, into `dsigma` (ξ drawn again; the μ gradient
/// is `dy` itself).
pub fn reparam_sample_sigma_bwd_into(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    stream: NoiseStream,
    dsigma: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "reparam_sample";
    let suffix = dtype_suffix(OP, dy)?;
    check_outs(OP, dy, &[dsigma])?;
    let n = dy.numel();
    if n == 0 {
        return Ok(());
    }
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("reparam_sample_sigma_bwd_{suffix}"),
        grid_for_normals(n, 0),
        &mut [
            KernelArg::In(&dy.buf),
            KernelArg::Out(&mut dsigma.buf),
            i64_arg(n),
            seed,
            step,
        ],
    )
}

/// The σ gradient of `reparam_sample_fwd`: `dy ⊙ ξ`.
pub fn reparam_sample_sigma_bwd(
    dev: &dyn KernelBackend,
    dy: &DeviceTensor,
    stream: NoiseStream,
) -> Result<DeviceTensor> {
    dtype_suffix("reparam_sample", dy)?;
    let mut dsigma = DeviceTensor::uninit(dev, dy.shape().clone(), dy.dtype())?;
    reparam_sample_sigma_bwd_into(dev, dy, stream, &mut dsigma)?;
    Ok(dsigma)
}

const KL_OP: &str = "gaussian_kl";

/// Four uninitialised gradient tensors shaped like the KL operands.
fn alloc_grads(dev: &dyn KernelBackend, like: &DeviceTensor) -> Result<[DeviceTensor; 4]> {
    let alloc = || DeviceTensor::uninit(dev, like.shape().clone(), like.dtype());
    Ok([alloc()?, alloc()?, alloc()?, alloc()?])
}

/// Elementwise `KL(q‖p)` of `[μq, σq, μp, σp]` into `kl`.
pub fn gaussian_kl_fwd_into(
    dev: &dyn KernelBackend,
    xs: DeviceKlInputs<'_>,
    kl: &mut DeviceTensor,
) -> Result<()> {
    let suffix = check_same(KL_OP, &xs)?;
    check_outs(KL_OP, xs[0], &[kl])?;
    let n = kl.numel();
    if n == 0 {
        return Ok(());
    }
    let [mu_q, sigma_q, mu_p, sigma_p] = xs.map(|t| KernelArg::In(&t.buf));
    dev.launch(
        &format!("gaussian_kl_fwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            mu_q,
            sigma_q,
            mu_p,
            sigma_p,
            KernelArg::Out(&mut kl.buf),
            i64_arg(n),
        ],
    )
}

/// Elementwise `KL(q‖p)` of diagonal Gaussians given `[μq, σq, μp, σp]`, in their dtype.
pub fn gaussian_kl_fwd(dev: &dyn KernelBackend, xs: DeviceKlInputs<'_>) -> Result<DeviceTensor> {
    check_same(KL_OP, &xs)?;
    let mut kl = DeviceTensor::uninit(dev, xs[0].shape().clone(), xs[0].dtype())?;
    gaussian_kl_fwd_into(dev, xs, &mut kl)?;
    Ok(kl)
}

/// Gradients of `gaussian_kl_fwd` for `dkl` into `grads = [dμq, dσq, dμp, dσp]`, q's scaled by
/// `scale.q` and p's by `scale.p`.
pub fn gaussian_kl_bwd_into(
    dev: &dyn KernelBackend,
    dkl: &DeviceTensor,
    xs: DeviceKlInputs<'_>,
    scale: KlGradScale,
    grads: [&mut DeviceTensor; 4],
) -> Result<()> {
    let suffix = check_same(KL_OP, &[xs[0], xs[1], xs[2], xs[3], dkl])?;
    let n = dkl.numel();
    check_outs(KL_OP, dkl, &grads.each_ref().map(|g| &**g))?;
    if n == 0 {
        return Ok(());
    }
    let [mu_q, sigma_q, mu_p, sigma_p] = xs.map(|t| KernelArg::In(&t.buf));
    let [d_mu_q, d_sigma_q, d_mu_p, d_sigma_p] = grads.map(|g| KernelArg::Out(&mut g.buf));
    dev.launch(
        &format!("gaussian_kl_bwd_{suffix}"),
        grid_for_elements(n),
        &mut [
            KernelArg::In(&dkl.buf),
            mu_q,
            sigma_q,
            mu_p,
            sigma_p,
            d_mu_q,
            d_sigma_q,
            d_mu_p,
            d_sigma_p,
            i64_arg(n),
            KernelArg::F32(scale.q as f32),
            KernelArg::F32(scale.p as f32),
        ],
    )
}

/// Gradients of `gaussian_kl_fwd` for `dkl`, in the order `[dμq, dσq, dμp, dσp]`.
pub fn gaussian_kl_bwd(
    dev: &dyn KernelBackend,
    dkl: &DeviceTensor,
    xs: DeviceKlInputs<'_>,
    scale: KlGradScale,
) -> Result<[DeviceTensor; 4]> {
    check_same(KL_OP, &[xs[0], xs[1], xs[2], xs[3], dkl])?;
    let mut grads = alloc_grads(dev, dkl)?;
    gaussian_kl_bwd_into(dev, dkl, xs, scale, grads.each_mut())?;
    Ok(grads)
}

/// GRAM's fused forward: the posterior sample `z = μq + σq ⊙ ξ` and `KL(q‖p)`, each into its
/// tensor, from one read of `[μq, σq, μp, σp]`.
pub fn reparam_kl_fwd_into(
    dev: &dyn KernelBackend,
    xs: DeviceKlInputs<'_>,
    stream: NoiseStream,
    z: &mut DeviceTensor,
    kl: &mut DeviceTensor,
) -> Result<()> {
    const OP: &str = "reparam_kl";
    let suffix = check_same(OP, &xs)?;
    check_outs(OP, xs[0], &[z, kl])?;
    let n = z.numel();
    if n == 0 {
        return Ok(());
    }
    let [mu_q, sigma_q, mu_p, sigma_p] = xs.map(|t| KernelArg::In(&t.buf));
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("reparam_kl_fwd_{suffix}"),
        grid_for_normals(n, 0),
        &mut [
            mu_q,
            sigma_q,
            mu_p,
            sigma_p,
            KernelArg::Out(&mut z.buf),
            KernelArg::Out(&mut kl.buf),
            i64_arg(n),
            seed,
            step,
        ],
    )
}

/// GRAM's fused forward: `(z, kl)` with `z = μq + σq ⊙ ξ` and `kl = KL(q‖p)`.
pub fn reparam_kl_fwd(
    dev: &dyn KernelBackend,
    xs: DeviceKlInputs<'_>,
    stream: NoiseStream,
) -> Result<(DeviceTensor, DeviceTensor)> {
    check_same("reparam_kl", &xs)?;
    let alloc = || DeviceTensor::uninit(dev, xs[0].shape().clone(), xs[0].dtype());
    let (mut z, mut kl) = (alloc()?, alloc()?);
    reparam_kl_fwd_into(dev, xs, stream, &mut z, &mut kl)?;
    Ok((z, kl))
}

/// The upstream gradients of `reparam_kl_fwd`'s two outputs.
#[derive(Clone, Copy, Debug)]
pub struct ReparamKlGrads<'a> {
    /// The gradient of the sample `z`.
    pub dz: &'a DeviceTensor,
    /// The gradient of the KL values.
    pub dkl: &'a DeviceTensor,
}

/// GRAM's fused backward into `grads = [dμq, dσq, dμp, dσp]`: the KL gradients (q's scaled by
/// `scale.q`, p's by `scale.p`) plus the sample's, `dμq += dz`, `dσq += dz ⊙ ξ` (ξ drawn again).
pub fn reparam_kl_bwd_into(
    dev: &dyn KernelBackend,
    upstream: ReparamKlGrads<'_>,
    xs: DeviceKlInputs<'_>,
    stream: NoiseStream,
    scale: KlGradScale,
    grads: [&mut DeviceTensor; 4],
) -> Result<()> {
    const OP: &str = "reparam_kl";
    let ReparamKlGrads { dz, dkl } = upstream;
    let suffix = check_same(OP, &[xs[0], xs[1], xs[2], xs[3], dz, dkl])?;
    check_outs(OP, dz, &grads.each_ref().map(|g| &**g))?;
    let n = dz.numel();
    if n == 0 {
        return Ok(());
    }
    let [mu_q, sigma_q, mu_p, sigma_p] = xs.map(|t| KernelArg::In(&t.buf));
    let [d_mu_q, d_sigma_q, d_mu_p, d_sigma_p] = grads.map(|g| KernelArg::Out(&mut g.buf));
    let [seed, step] = stream_args(stream);
    dev.launch(
        &format!("reparam_kl_bwd_{suffix}"),
        grid_for_normals(n, 0),
        &mut [
            KernelArg::In(&dz.buf),
            KernelArg::In(&dkl.buf),
            mu_q,
            sigma_q,
            mu_p,
            sigma_p,
            d_mu_q,
            d_sigma_q,
            d_mu_p,
            d_sigma_p,
            i64_arg(n),
            seed,
            step,
            KernelArg::F32(scale.q as f32),
            KernelArg::F32(scale.p as f32),
        ],
    )
}

/// GRAM's fused backward: `[dμq, dσq, dμp, dσp]` from the gradients of the sample and the KL.
pub fn reparam_kl_bwd(
    dev: &dyn KernelBackend,
    upstream: ReparamKlGrads<'_>,
    xs: DeviceKlInputs<'_>,
    stream: NoiseStream,
    scale: KlGradScale,
) -> Result<[DeviceTensor; 4]> {
    let ReparamKlGrads { dz, dkl } = upstream;
    check_same("reparam_kl", &[xs[0], xs[1], xs[2], xs[3], dz, dkl])?;
    let mut grads = alloc_grads(dev, dz)?;
    reparam_kl_bwd_into(dev, upstream, xs, stream, scale, grads.each_mut())?;
    Ok(grads)
}
