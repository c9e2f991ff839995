// The recurrent-step fusion: `y = norm(a [+ b [+ c]])` over the last dimension in one pass, where
// the 1 to 3 terms are the input injection `z + y + x` or the post-norm residual `h + r`, and the
// norm is RMSNorm without a scale (HRM, TRM) or affine LayerNorm (Sotaku, LDT). Reference:
// src/device/cpu/elementwise.rs `inject_add_fwd` then src/device/cpu/norm.rs `norm_fwd` (and
// `residual_norm_fwd`, the two-term case); backward `norm_bwd`.
//
// Tiling: one warp per row (D ≤ 1024 columns), 8 warps per block, grid-stride over rows. Lane `l`
// owns columns `l + 32k`, so every load is coalesced across the warp, and the row stays in
// registers between the statistics and the normalisation: each input is read once and `y` is
// written once, instead of the 3–4 passes of inject_add + add + norm. Sums and statistics are
// f32 (storage f32 or bf16); the per-row (mean, rstd) go to `stats [rows, 2]` (mean = 0 for RMS)
// for the backward.
//
// The backward recomputes the sum from the same terms (one read each, no saved activation), and
// writes `dx`, the gradient every term receives. LayerNorm's dweight/dbias are reduced without
// atomics, deterministically: each warp accumulates its rows' `g·x̂` and `g` in f32 registers (a
// few rows each: the grid has up to 264 × 8 warps), the block adds its 8 warps in f64 and writes
// one f64 partial row per block to `partial [2, blocks, D]`, and `step_layernorm_affine_reduce`
// adds the blocks' partials per column in f64. The f64 cross-warp sums keep the ill-conditioned
// column sums (Σ g over many rows nearly cancels) within the f32 tolerance.
#include "common.cuh"

#define STEP_WARPS 8
#define STEP_THREADS (STEP_WARPS * 32)
// Columns per lane held in registers, a template parameter PER_LANE: the kernels come in three
// width classes, D ≤ 128 (4 a lane), D ≤ 512 (16) and D ≤ 1024 (32), named `_d128`, `_d512`,
// `_d1024`; the launcher picks the narrowest that fits, so a 128-wide row does not pay the
// registers (and occupancy) of a 1024-wide one.

// The injected sum at element i, left to right as the official `(z + y) + x`.
template <typename T>
__device__ __forceinline__ float term_sum(const T* __restrict__ a, const T* __restrict__ b,
                                          const T* __restrict__ c, int terms, long long i) {
    float v = load_f32(a, i);
    if (terms > 1) v += load_f32(b, i);
    if (terms > 2) v += load_f32(c, i);
    return v;
}

// Forward. AFFINE selects LayerNorm (centred, weight and bias) over RMSNorm (no centring, no
// scale). Unused term pointers are never read (`terms` says how many there are).
template <typename T, bool AFFINE, int PER_LANE>
__device__ void step_norm_fwd(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ c,
                              const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ y,
                              float* __restrict__ stats, long long rows, int cols, int terms, float eps) {
    const int lane = threadIdx.x & 31;
    const long long warps_in_grid = (long long)gridDim.x * STEP_WARPS;
    const float n = (float)cols;
    for (long long row = (long long)blockIdx.x * STEP_WARPS + (threadIdx.x >> 5); row < rows;
         row += warps_in_grid) {
        const long long base = row * cols;
        float x[PER_LANE];
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const int j = lane + 32 * k;
            x[k] = j < cols ? term_sum(a, b, c, terms, base + j) : 0.0f;
            sum += x[k];
        }
        const float mean = AFFINE ? warp_sum(sum) / n : 0.0f;
        // Two passes over the registers: the centred variance does not cancel like E[x²] − mean².
        float squares = 0.0f;
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const float d = lane + 32 * k < cols ? x[k] - mean : 0.0f;
            squares += d * d;
        }
        // 1/sqrtf rather than rsqrtf: the f32 tolerance (1e-5) leaves no room for its 2 ulp.
        const float rstd = 1.0f / sqrtf(warp_sum(squares) / n + eps);
        if (lane == 0) {
            stats[2 * row] = mean;
            stats[2 * row + 1] = rstd;
        }
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const int j = lane + 32 * k;
            if (j < cols) {
                const float xhat = (x[k] - mean) * rstd;
                store_f32(y, base + j, AFFINE ? xhat * load_f32(weight, j) + load_f32(bias, j) : xhat);
            }
        }
    }
}

// LayerNorm's per-block partial sums: the block's 8 warps add their per-lane accumulators in f64
// through shared memory (up to 32 KiB, one quantity at a time), and the block writes one row of dweight partials
// at partial[blockIdx.x·D] and one of dbias partials at partial[(gridDim.x + blockIdx.x)·D].
template <int PER_LANE>
__device__ __forceinline__ void write_block_partials(const float (&dweight_acc)[PER_LANE],
                                                     const float (&dbias_acc)[PER_LANE],
                                                     double* __restrict__ partial, int cols) {
    __shared__ float per_warp[STEP_WARPS][PER_LANE * 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int quantity = 0; quantity < 2; ++quantity) {
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const int j = lane + 32 * k;
            if (j < cols) per_warp[warp][j] = quantity == 0 ? dweight_acc[k] : dbias_acc[k];
        }
        __syncthreads();
        double* out = partial + ((long long)quantity * gridDim.x + blockIdx.x) * cols;
        for (int j = threadIdx.x; j < cols; j += STEP_THREADS) {
            double s = 0.0;
            for (int w = 0; w < STEP_WARPS; ++w) s += per_warp[w][j];
            out[j] = s;
        }
        __syncthreads();
    }
}

// Backward: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = g·w (LayerNorm) or g (RMS, no mean(ĝ)
// term). For LayerNorm, also this block's partial Σ g·x̂ and Σ g per column into
// partial[blockIdx.x·D + j] and partial[(gridDim.x + blockIdx.x)·D + j].
template <typename T, bool AFFINE, int PER_LANE>
__device__ void step_norm_bwd(const T* __restrict__ dy, const T* __restrict__ a, const T* __restrict__ b,
                              const T* __restrict__ c, const float* __restrict__ stats,
                              const T* __restrict__ weight, T* __restrict__ dx, double* __restrict__ partial,
                              long long rows, int cols, int terms) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long warps_in_grid = (long long)gridDim.x * STEP_WARPS;
    const float n = (float)cols;
    float dweight_acc[PER_LANE], dbias_acc[PER_LANE];
#pragma unroll
    for (int k = 0; k < PER_LANE; ++k) dweight_acc[k] = dbias_acc[k] = 0.0f;

    for (long long row = (long long)blockIdx.x * STEP_WARPS + warp; row < rows; row += warps_in_grid) {
        const long long base = row * cols;
        const float mean = stats[2 * row], rstd = stats[2 * row + 1];
        float xhat[PER_LANE], ghat[PER_LANE];
        float sum_g = 0.0f, sum_gx = 0.0f;
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const int j = lane + 32 * k;
            xhat[k] = ghat[k] = 0.0f;
            if (j < cols) {
                xhat[k] = (term_sum(a, b, c, terms, base + j) - mean) * rstd;
                const float g = load_f32(dy, base + j);
                if (AFFINE) {
                    dweight_acc[k] += g * xhat[k];
                    dbias_acc[k] += g;
                    ghat[k] = g * load_f32(weight, j);
                } else {
                    ghat[k] = g;
                }
            }
            sum_g += ghat[k];
            sum_gx += ghat[k] * xhat[k];
        }
        const float mean_g = AFFINE ? warp_sum(sum_g) / n : 0.0f;
        const float mean_gx = warp_sum(sum_gx) / n;
#pragma unroll
        for (int k = 0; k < PER_LANE; ++k) {
            const int j = lane + 32 * k;
            if (j < cols) store_f32(dx, base + j, rstd * (ghat[k] - mean_g - xhat[k] * mean_gx));
        }
    }
    if constexpr (AFFINE) write_block_partials(dweight_acc, dbias_acc, partial, cols);
}

// dweight[j] = Σ_blocks partial[0][block][j], dbias[j] = Σ_blocks partial[1][block][j], in a fixed
// order (deterministic). One thread per column, grid-stride.
template <typename T>
__device__ void step_layernorm_affine_reduce_impl(const double* __restrict__ partial, T* __restrict__ dweight,
                                                  T* __restrict__ dbias, int blocks, int cols) {
    for (long long j = global_thread_index(); j < cols; j += grid_stride()) {
        double dw = 0.0, db = 0.0;
        for (int blk = 0; blk < blocks; ++blk) {
            dw += partial[(long long)blk * cols + j];
            db += partial[(long long)(blocks + blk) * cols + j];
        }
        store_f32(dweight, j, (float)dw);
        store_f32(dbias, j, (float)db);
    }
}

#define STEP_RMS_FWD_PARAMS(T) \
    (const T* a, const T* b, const T* c, T* y, float* stats, long long rows, int cols, int terms, float eps)
#define STEP_LAYER_FWD_PARAMS(T)                                                                         \
    (const T* a, const T* b, const T* c, const T* weight, const T* bias, T* y, float* stats, long long rows, \
     int cols, int terms, float eps)
#define STEP_RMS_BWD_PARAMS(T) \
    (const T* dy, const T* a, const T* b, const T* c, const float* stats, T* dx, long long rows, int cols, int terms)
#define STEP_LAYER_BWD_PARAMS(T)                                                                     \
    (const T* dy, const T* a, const T* b, const T* c, const float* stats, const T* weight, T* dx,     \
     double* partial, long long rows, int cols, int terms)
#define STEP_AFFINE_REDUCE_PARAMS(T) (const double* partial, T* dweight, T* dbias, int blocks, int cols)


// One width class: the four norm kernels with PER_LANE = width / 32.
#define STEP_WIDTH_CLASS(width)                                                                           \
    template <typename T>                                                                                 \
    __device__ void step_rmsnorm_fwd_d##width##_impl STEP_RMS_FWD_PARAMS(T) {                             \
        step_norm_fwd<T, false, width / 32>(a, b, c, nullptr, nullptr, y, stats, rows, cols, terms, eps); \
    }                                                                                                     \
    template <typename T>                                                                                 \
    __device__ void step_layernorm_fwd_d##width##_impl STEP_LAYER_FWD_PARAMS(T) {                         \
        step_norm_fwd<T, true, width / 32>(a, b, c, weight, bias, y, stats, rows, cols, terms, eps);      \
    }                                                                                                     \
    template <typename T>                                                                                 \
    __device__ void step_rmsnorm_bwd_d##width##_impl STEP_RMS_BWD_PARAMS(T) {                             \
        step_norm_bwd<T, false, width / 32>(dy, a, b, c, stats, nullptr, dx, nullptr, rows, cols, terms); \
    }                                                                                                     \
    template <typename T>                                                                                 \
    __device__ void step_layernorm_bwd_d##width##_impl STEP_LAYER_BWD_PARAMS(T) {                         \
        step_norm_bwd<T, true, width / 32>(dy, a, b, c, stats, weight, dx, partial, rows, cols, terms);   \
    }                                                                                                     \
    STAMP_F32_BF16(step_rmsnorm_fwd_d##width, STEP_THREADS, STEP_RMS_FWD_PARAMS,                          \
                   (a, b, c, y, stats, rows, cols, terms, eps))                                           \
    STAMP_F32_BF16(step_layernorm_fwd_d##width, STEP_THREADS, STEP_LAYER_FWD_PARAMS,                      \
                   (a, b, c, weight, bias, y, stats, rows, cols, terms, eps))                             \
    STAMP_F32_BF16(step_rmsnorm_bwd_d##width, STEP_THREADS, STEP_RMS_BWD_PARAMS,                          \
                   (dy, a, b, c, stats, dx, rows, cols, terms))                                           \
    STAMP_F32_BF16(step_layernorm_bwd_d##width, STEP_THREADS, STEP_LAYER_BWD_PARAMS,                      \
                   (dy, a, b, c, stats, weight, dx, partial, rows, cols, terms))

STEP_WIDTH_CLASS(128)
STEP_WIDTH_CLASS(512)
STEP_WIDTH_CLASS(1024)
STAMP_F32_BF16(step_layernorm_affine_reduce, STEP_THREADS, STEP_AFFINE_REDUCE_PARAMS,
               (partial, dweight, dbias, blocks, cols))
