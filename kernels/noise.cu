// Gaussian noise from the Philox stream and the KL term of diagonal Gaussians, forward and
// backward. References: src/device/cpu/noise.rs (PTRM's `z + σ·ξ`, GRAM's `μ + σ ⊙ ξ`) and
// src/device/cpu/kl.rs (`KL(q‖p)` with per-side gradient scales for KL balancing).
//
// Stream layout (src/rng/philox.rs, kernels/philox.cuh): element i of a tensor, in flat row-major
// order, takes ξ_i = normal(seed, step, i). One Philox call yields the four normals of a block of
// four elements (two Box-Muller pairs), so each thread owns whole Philox blocks: one call, two
// logs, two square roots and two sin/cos pairs per four elements. ξ is never stored: the backward
// draws it again from the same (seed, step).
//
// Fusion for GRAM: `reparam_kl_fwd` reads (μq, σq, μp, σp) once and writes both the posterior
// sample z = μq + σq ⊙ ξ and KL(q‖p); `reparam_kl_bwd` turns (dz, dKL) into dμq, dσq, dμp, dσp in
// one pass, with the q gradients of the KL scaled by scale_q and the p gradients by scale_p
// (KL balancing with α: scale_p = α, scale_q = 1 − α).
//
// Standard deviations must be positive. The reference errors otherwise; a kernel cannot report
// without synchronising with the host, so an element whose σq or σp is not > 0 (or is NaN) gets
// NaN in its KL value and in all four KL gradients, never a finite number. The noise kernels take
// σ as it comes (the launchers check a scalar σ on the host).
//
// Storage f32 or bf16, math f32 with the accurate libdevice functions (the Box-Muller transform
// is the reference's f32 computation).
#include "common.cuh"
#include "philox.cuh"

#define NOISE_THREADS 256

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

// Box-Muller on one pair of Philox outputs, exactly as src/rng/philox.rs::box_muller.
__device__ __forceinline__ void box_muller(unsigned int a, unsigned int b, float& even, float& odd) {
    const float r = sqrtf(-2.0f * logf(philox_to_uniform(a)));
    const float theta = 6.2831853071795864769f * philox_to_uniform(b);
    even = r * cosf(theta);
    odd = r * sinf(theta);
}

// Calls visit(e, ξ) for every element e in [0, n) of a tensor whose element e is element
// offset + e of the normal stream (seed, step). Each iteration owns one Philox block, so the four
// lanes of a block are computed once; blocks cut by the ends of the range visit only their
// elements inside it. n > 0.
template <typename Visit>
__device__ __forceinline__ void for_each_normal(long long n, unsigned long long seed,
                                                unsigned long long step, unsigned long long offset,
                                                Visit visit) {
    const unsigned long long first_block = offset / 4;
    const long long blocks = (long long)((offset + (unsigned long long)n - 1) / 4 - first_block) + 1;
    for (long long t = global_thread_index(); t < blocks; t += grid_stride()) {
        const unsigned long long block = first_block + (unsigned long long)t;
        const philox_u32x4 bits = philox_block(seed, step, block);
        float xi[4];
        box_muller(bits.v[0], bits.v[1], xi[0], xi[1]);
        box_muller(bits.v[2], bits.v[3], xi[2], xi[3]);
        const long long first = (long long)(block * 4 - offset);  // may be negative at the start
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const long long e = first + lane;
            if (e >= 0 && e < n) visit(e, xi[lane]);
        }
    }
}

// y = σ·ξ for elements offset .. offset + n of the stream.
template <typename T>
__device__ void gaussian_noise_fwd_impl(T* __restrict__ y, long long n, float sigma, unsigned long long seed,
                                    unsigned long long step, unsigned long long offset) {
    for_each_normal(n, seed, step, offset, [&](long long e, float xi) { store_f32(y, e, sigma * xi); });
}

// y = z + σ·ξ (PTRM). A null z means in place: y holds z (no __restrict__ for that reason).
template <typename T>
__device__ void add_noise_fwd_impl(const T* z, T* y, long long n, float sigma, unsigned long long seed,
                                   unsigned long long step) {
    const T* src = z ? z : y;
    for_each_normal(n, seed, step, 0ull,
                    [&](long long e, float xi) { store_f32(y, e, load_f32(src, e) + sigma * xi); });
}

// y = μ + σ ⊙ ξ (GRAM's reparameterisation).
template <typename T>
__device__ void reparam_sample_fwd_impl(const T* __restrict__ mu, const T* __restrict__ sigma,
                                        T* __restrict__ y, long long n, unsigned long long seed,
                                        unsigned long long step) {
    for_each_normal(n, seed, step, 0ull, [&](long long e, float xi) {
        store_f32(y, e, load_f32(mu, e) + load_f32(sigma, e) * xi);
    });
}

// dσ = dy ⊙ ξ, ξ drawn again (dμ is dy itself).
template <typename T>
__device__ void reparam_sample_sigma_bwd_impl(const T* __restrict__ dy, T* __restrict__ dsigma, long long n,
                                              unsigned long long seed, unsigned long long step) {
    for_each_normal(n, seed, step, 0ull,
                    [&](long long e, float xi) { store_f32(dsigma, e, load_f32(dy, e) * xi); });
}

// One element's KL(q‖p) operands, in f32.
struct KlElement {
    float mu_q, sigma_q, mu_p, sigma_p;
    __device__ __forceinline__ bool valid() const { return sigma_q > 0.0f && sigma_p > 0.0f; }
    __device__ __forceinline__ float diff() const { return mu_q - mu_p; }
    __device__ __forceinline__ float spread() const { return sigma_q * sigma_q + diff() * diff(); }

    // ln(σp/σq) + (σq² + (μq − μp)²)/(2σp²) − ½, in the reference's order of operations.
    __device__ __forceinline__ float value() const {
        if (!valid()) return quiet_nan();
        return logf(sigma_p / sigma_q) + spread() / (2.0f * sigma_p * sigma_p) - 0.5f;
    }

    // The four gradients for upstream g, [dμq, dσq, dμp, dσp], q's scaled by scale_q, p's by
    // scale_p.
    __device__ __forceinline__ void grads(float g, float scale_q, float scale_p, float out[4]) const {
        if (!valid()) {
            out[0] = out[1] = out[2] = out[3] = quiet_nan();
            return;
        }
        const float var_p = sigma_p * sigma_p, gq = g * scale_q, gp = g * scale_p;
        out[0] = gq * diff() / var_p;
        out[1] = gq * (sigma_q / var_p - 1.0f / sigma_q);
        out[2] = -gp * diff() / var_p;
        out[3] = gp * (1.0f / sigma_p - spread() / (var_p * sigma_p));
    }
};

template <typename T>
__device__ __forceinline__ KlElement load_kl_element(const T* __restrict__ mu_q, const T* __restrict__ sigma_q,
                                                     const T* __restrict__ mu_p, const T* __restrict__ sigma_p,
                                                     long long e) {
    return KlElement{load_f32(mu_q, e), load_f32(sigma_q, e), load_f32(mu_p, e), load_f32(sigma_p, e)};
}

template <typename T>
__device__ __forceinline__ void store_kl_grads(T* __restrict__ d_mu_q, T* __restrict__ d_sigma_q,
                                               T* __restrict__ d_mu_p, T* __restrict__ d_sigma_p, long long e,
                                               const float g[4]) {
    store_f32(d_mu_q, e, g[0]);
    store_f32(d_sigma_q, e, g[1]);
    store_f32(d_mu_p, e, g[2]);
    store_f32(d_sigma_p, e, g[3]);
}

// kl = KL(q‖p) elementwise.
template <typename T>
__device__ void gaussian_kl_fwd_impl(const T* __restrict__ mu_q, const T* __restrict__ sigma_q,
                                     const T* __restrict__ mu_p, const T* __restrict__ sigma_p,
                                     T* __restrict__ kl, long long n) {
    for (long long e = global_thread_index(); e < n; e += grid_stride())
        store_f32(kl, e, load_kl_element(mu_q, sigma_q, mu_p, sigma_p, e).value());
}

// [dμq, dσq, dμp, dσp] of KL(q‖p) for upstream dkl.
template <typename T>
__device__ void gaussian_kl_bwd_impl(const T* __restrict__ dkl, const T* __restrict__ mu_q,
                                     const T* __restrict__ sigma_q, const T* __restrict__ mu_p,
                                     const T* __restrict__ sigma_p, T* __restrict__ d_mu_q,
                                     T* __restrict__ d_sigma_q, T* __restrict__ d_mu_p,
                                     T* __restrict__ d_sigma_p, long long n, float scale_q, float scale_p) {
    for (long long e = global_thread_index(); e < n; e += grid_stride()) {
        float g[4];
        load_kl_element(mu_q, sigma_q, mu_p, sigma_p, e).grads(load_f32(dkl, e), scale_q, scale_p, g);
        store_kl_grads(d_mu_q, d_sigma_q, d_mu_p, d_sigma_p, e, g);
    }
}

// z = μq + σq ⊙ ξ and kl = KL(q‖p), one read of the four parameters.
template <typename T>
__device__ void reparam_kl_fwd_impl(const T* __restrict__ mu_q, const T* __restrict__ sigma_q,
                                    const T* __restrict__ mu_p, const T* __restrict__ sigma_p,
                                    T* __restrict__ z, T* __restrict__ kl, long long n, unsigned long long seed,
                                    unsigned long long step) {
    for_each_normal(n, seed, step, 0ull, [&](long long e, float xi) {
        const KlElement q_p = load_kl_element(mu_q, sigma_q, mu_p, sigma_p, e);
        store_f32(z, e, q_p.mu_q + q_p.sigma_q * xi);
        store_f32(kl, e, q_p.value());
    });
}

// The gradients of both outputs of reparam_kl_fwd: dμq = dz + dKL/dμq, dσq = dz ⊙ ξ + dKL/dσq,
// dμp and dσp from the KL alone; ξ drawn again.
template <typename T>
__device__ void reparam_kl_bwd_impl(const T* __restrict__ dz, const T* __restrict__ dkl,
                                    const T* __restrict__ mu_q, const T* __restrict__ sigma_q,
                                    const T* __restrict__ mu_p, const T* __restrict__ sigma_p,
                                    T* __restrict__ d_mu_q, T* __restrict__ d_sigma_q, T* __restrict__ d_mu_p,
                                    T* __restrict__ d_sigma_p, long long n, unsigned long long seed,
                                    unsigned long long step, float scale_q, float scale_p) {
    for_each_normal(n, seed, step, 0ull, [&](long long e, float xi) {
        float g[4];
        load_kl_element(mu_q, sigma_q, mu_p, sigma_p, e).grads(load_f32(dkl, e), scale_q, scale_p, g);
        const float upstream = load_f32(dz, e);
        g[0] += upstream;
        g[1] += upstream * xi;
        store_kl_grads(d_mu_q, d_sigma_q, d_mu_p, d_sigma_p, e, g);
    });
}

#define GAUSSIAN_NOISE_FWD_PARAMS(T)                                                                   \
    (T* __restrict__ y, long long n, float sigma, unsigned long long seed, unsigned long long step, \
     unsigned long long offset)
STAMP_F32_BF16(gaussian_noise_fwd, NOISE_THREADS, GAUSSIAN_NOISE_FWD_PARAMS, (y, n, sigma, seed, step, offset))

#define ADD_NOISE_FWD_PARAMS(T) \
    (const T* z, T* y, long long n, float sigma, unsigned long long seed, unsigned long long step)
STAMP_F32_BF16(add_noise_fwd, NOISE_THREADS, ADD_NOISE_FWD_PARAMS, (z, y, n, sigma, seed, step))

#define REPARAM_SAMPLE_FWD_PARAMS(T)                                                                 \
    (const T* __restrict__ mu, const T* __restrict__ sigma, T* __restrict__ y, long long n,         \
     unsigned long long seed, unsigned long long step)
STAMP_F32_BF16(reparam_sample_fwd, NOISE_THREADS, REPARAM_SAMPLE_FWD_PARAMS, (mu, sigma, y, n, seed, step))

#define REPARAM_SAMPLE_SIGMA_BWD_PARAMS(T) \
    (const T* __restrict__ dy, T* __restrict__ dsigma, long long n, unsigned long long seed, unsigned long long step)
STAMP_F32_BF16(reparam_sample_sigma_bwd, NOISE_THREADS, REPARAM_SAMPLE_SIGMA_BWD_PARAMS, (dy, dsigma, n, seed, step))

#define KL_INPUT_PARAMS(T) \
    const T* __restrict__ mu_q, const T* __restrict__ sigma_q, const T* __restrict__ mu_p, const T* __restrict__ sigma_p
#define KL_GRAD_PARAMS(T) \
    T* __restrict__ d_mu_q, T* __restrict__ d_sigma_q, T* __restrict__ d_mu_p, T* __restrict__ d_sigma_p

#define GAUSSIAN_KL_FWD_PARAMS(T) (KL_INPUT_PARAMS(T), T* __restrict__ kl, long long n)
STAMP_F32_BF16(gaussian_kl_fwd, NOISE_THREADS, GAUSSIAN_KL_FWD_PARAMS, (mu_q, sigma_q, mu_p, sigma_p, kl, n))

#define GAUSSIAN_KL_BWD_PARAMS(T) \
    (const T* __restrict__ dkl, KL_INPUT_PARAMS(T), KL_GRAD_PARAMS(T), long long n, float scale_q, float scale_p)
STAMP_F32_BF16(gaussian_kl_bwd, NOISE_THREADS, GAUSSIAN_KL_BWD_PARAMS,
               (dkl, mu_q, sigma_q, mu_p, sigma_p, d_mu_q, d_sigma_q, d_mu_p, d_sigma_p, n, scale_q, scale_p))

#define REPARAM_KL_FWD_PARAMS(T)                                                                 \
    (KL_INPUT_PARAMS(T), T* __restrict__ z, T* __restrict__ kl, long long n, unsigned long long seed, \
     unsigned long long step)
STAMP_F32_BF16(reparam_kl_fwd, NOISE_THREADS, REPARAM_KL_FWD_PARAMS, (mu_q, sigma_q, mu_p, sigma_p, z, kl, n, seed, step))

#define REPARAM_KL_BWD_PARAMS(T)                                                                         \
    (const T* __restrict__ dz, const T* __restrict__ dkl, KL_INPUT_PARAMS(T), KL_GRAD_PARAMS(T), long long n, \
     unsigned long long seed, unsigned long long step, float scale_q, float scale_p)
STAMP_F32_BF16(reparam_kl_bwd, NOISE_THREADS, REPARAM_KL_BWD_PARAMS,
               (dz, dkl, mu_q, sigma_q, mu_p, sigma_p, d_mu_q, d_sigma_q, d_mu_p, d_sigma_p, n, seed, step,
                scale_q, scale_p))
