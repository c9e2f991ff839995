// Optimizer steps on f32 master weights: AdamATan2 and AdamW (the Adam update of
// src/optim/adam.rs with its two directions), the weight EMA (src/optim/ema.rs), and the sign-SGD
// step of the sparse puzzle-embedding table (src/optim/sign_sgd.rs).
//
// Every kernel is elementwise and grid-stride. The per-step scalars (bias corrections, decay
// factors) are computed on the host in f64 and rounded to f32, exactly as the reference does, so
// the kernels repeat the reference's f32 arithmetic step for step. They change every step, so the
// kernels read them from device memory (`scalars`): a value passed by value would be frozen into a
// captured CUDA graph. Products the reference rounds on their own are written `__fmul_rn`, which
// the GPU compiler does not contract into a fused multiply-add, so only the reference's own fmas
// are fused. The suffix of a kernel's name is the dtype of the gradient it reads; parameters,
// moments and shadows are always f32.
#include "common.cuh"

#define OPTIM_THREADS 256

// `a + w·(b − a)` as `fma(w, b, fma(−w, a, a))`, the adam-atan2 kernel's form (and the
// reference's).
__device__ __forceinline__ float lerp_fma(float a, float b, float w) {
    return fmaf(w, b, fmaf(-w, a, a));
}

// The layout of an Adam step's `scalars` (src/kernels/optim.rs, `AdamScalars`).
#define ADAM_STEP_SIZE 0
#define ADAM_WD_ALPHA 1
#define ADAM_ONE_MINUS_BETA1 2
#define ADAM_ONE_MINUS_BETA2 3
#define ADAM_BIAS_CORRECTION2_SQRT 4
#define ADAM_EPS 5

// One Adam step per element:
//   p ← p·wd_alpha;  m ← lerp(m, g, 1−β1);  v ← lerp(v, g², 1−β2)
//   p ← p − step_size · direction(m, √v / bias_correction2_sqrt)
// with direction atan2(m, d) (AdamATan2, no ε) or m / (d + ε) (AdamW). A non-null `mirror` gets
// the new p rounded to bf16 (the bf16 forward's copy of the weights, refreshed as they are
// written: no second pass over the arena); the f32 arithmetic is the same either way.
template <typename G, bool ATAN2>
__device__ void adam_step_impl(float* param, const G* grad, float* exp_avg, float* exp_avg_sq,
                               long long n, const float* scalars, bf16* mirror) {
    const float step_size = scalars[ADAM_STEP_SIZE];
    const float wd_alpha = scalars[ADAM_WD_ALPHA];
    const float one_minus_beta1 = scalars[ADAM_ONE_MINUS_BETA1];
    const float one_minus_beta2 = scalars[ADAM_ONE_MINUS_BETA2];
    const float bias_correction2_sqrt = scalars[ADAM_BIAS_CORRECTION2_SQRT];
    const float eps = ATAN2 ? 0.0f : scalars[ADAM_EPS];
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const float g = load_f32(grad, i);
        const float decayed = __fmul_rn(param[i], wd_alpha);
        const float m = lerp_fma(exp_avg[i], g, one_minus_beta1);
        const float v = lerp_fma(exp_avg_sq[i], __fmul_rn(g, g), one_minus_beta2);
        const float denom = sqrtf(v) / bias_correction2_sqrt;
        const float direction = ATAN2 ? atan2f(m, denom) : m / (denom + eps);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        const float updated = decayed - __fmul_rn(step_size, direction);
        param[i] = updated;
        if (mirror) mirror[i] = float_to_bf16(updated);
    }
}

extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    adam_atan2_step_f32(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                        long long n, const float* scalars, bf16* mirror) {
    adam_step_impl<float, true>(param, grad, exp_avg, exp_avg_sq, n, scalars, mirror);
}
extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    adam_atan2_step_bf16(float* param, const bf16* grad, float* exp_avg, float* exp_avg_sq,
                         long long n, const float* scalars, bf16* mirror) {
    adam_step_impl<bf16, true>(param, grad, exp_avg, exp_avg_sq, n, scalars, mirror);
}

extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    adamw_step_f32(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, long long n,
                   const float* scalars, bf16* mirror) {
    adam_step_impl<float, false>(param, grad, exp_avg, exp_avg_sq, n, scalars, mirror);
}
extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    adamw_step_bf16(float* param, const bf16* grad, float* exp_avg, float* exp_avg_sq, long long n,
                    const float* scalars, bf16* mirror) {
    adam_step_impl<bf16, false>(param, grad, exp_avg, exp_avg_sq, n, scalars, mirror);
}

// shadow ← take·param + keep·shadow, with take = 1 − μ and keep = μ. μ is fixed for a run, so
// these two are passed by value (a captured graph may freeze them).
extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    ema_update_f32(float* shadow, const float* param, long long n, float take, float keep) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        shadow[i] = __fmul_rn(take, param[i]) + __fmul_rn(keep, shadow[i]);
    }
}

// `torch.sign`: −1, 0 or 1, and NaN for NaN.
__device__ __forceinline__ float torch_sign(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x * 0.0f);
}

// table[ids[r], :] ← table[ids[r], :]·wd_alpha + neg_lr·sign(sums[r, :]) for each of `n` rows of
// summed gradients, with `scalars` = {wd_alpha, neg_lr} (they follow the learning-rate schedule,
// so they are read from device memory). Each valid id must appear at most once (as `sparse_embedding_bwd` leaves
// them), so rows are updated without atomics; ids outside 0..num_ids (the −1 that marks a repeated
// id) are skipped, and untouched rows stay exactly as they were.
extern "C" __global__ void __launch_bounds__(OPTIM_THREADS)
    sign_sgd_step_f32(float* table, const int* ids, const float* sums, long long n, int dim,
                      int num_ids, const float* scalars) {
    const float wd_alpha = scalars[0], neg_lr = scalars[1];
    const long long total = n * dim;
    for (long long i = global_thread_index(); i < total; i += grid_stride()) {
        const long long r = i / dim;
        const int c = (int)(i - r * dim);
        const int id = ids[r];
        if (id < 0 || id >= num_ids) continue;
        float* p = &table[(long long)id * dim + c];
        *p = __fmul_rn(*p, wd_alpha) + __fmul_rn(neg_lr, torch_sign(sums[i]));
    }
}
