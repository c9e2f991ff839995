// Classification losses (CPU reference: src/device/cpu/loss.rs):
// - cross-entropy under softmax or stablemax, as per-sequence means over valid tokens (HRM/TRM
//   `lm_loss`): logits [B, S, V], labels [B, S] (−100 = not scored) → loss [B] f32, and back;
// - mask-weighted mean softmax cross-entropy (Sotaku, LDT): Σ m·CE / Σ m as one f32, and back;
// - elementwise binary cross-entropy with logits, with weights on its two terms, and back.
//
// Cross-entropy rows are computed in f64, as the official stablemax loss is: the logits are
// widened once and every exp, log and sum of a row runs in double. One warp owns one row (lanes
// stride over the classes), which suits the small vocabularies of these tasks (6 to 12 classes)
// and stays correct for any size. Per-sequence losses use one block per sequence, so a
// sequence's sum is reduced inside its block in a fixed order: deterministic, and no atomics.
//
// Labels are not checked on the host (that would need a copy back inside a training step). A
// label outside 0..V (other than −100 where allowed), or a negative mask value, makes the loss and
// the gradient rows it touches NaN instead, so the error cannot pass silently; nothing is ever
// read outside a row.
//
// BCE is elementwise, in f32 with the stable forms of softplus and the logistic function.
#include "common.cuh"

#define LOSS_THREADS 256
#define IGNORE_LABEL (-100)
#define STABLEMAX_EPS 1e-30

__device__ __forceinline__ double nan_f64() { return (double)__int_as_float(0x7fc00000); }

__device__ __forceinline__ double warp_sum_f64(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
__device__ __forceinline__ double warp_max_f64(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// The positive map s(x) that turns logits into probabilities p_j = s(x_j) / Σ s: exp(x − max)
// for softmax (the shift cancels in p and keeps exp finite); for stablemax x + 1 when x ≥ 0,
// else 1 / (1 − x + 1e-30).
template <bool STABLEMAX>
__device__ __forceinline__ double normalizer_weight(double x, double row_max) {
    if (STABLEMAX) return x >= 0.0 ? x + 1.0 : 1.0 / (1.0 - x + STABLEMAX_EPS);
    return exp(x - row_max);
}

// s'(x) / s(x) given x and s = s(x): 1 for softmax; for stablemax 1 / (x + 1) when x ≥ 0, and s
// when x < 0 (since d/dx 1/(1 − x) = s²).
template <bool STABLEMAX>
__device__ __forceinline__ double log_derivative(double x, double s) {
    if (!STABLEMAX) return 1.0;
    return x >= 0.0 ? 1.0 / s : s;
}

// The max (softmax only) and Σ s of one row, computed by the calling warp; every lane gets them.
struct RowStats {
    double max;
    double total;
};

template <bool STABLEMAX, typename T>
__device__ RowStats row_stats(const T* row, int classes) {
    const int lane = threadIdx.x & 31;
    double row_max = 0.0;
    if (!STABLEMAX) {
        row_max = (double)__int_as_float(0xff800000);  // -inf
        for (int c = lane; c < classes; c += 32) row_max = fmax(row_max, (double)load_f32(row, c));
        row_max = warp_max_f64(row_max);
    }
    double total = 0.0;
    for (int c = lane; c < classes; c += 32) {
        total += normalizer_weight<STABLEMAX>((double)load_f32(row, c), row_max);
    }
    RowStats stats = {row_max, warp_sum_f64(total)};
    return stats;
}

__device__ __forceinline__ bool is_class(int label, int classes) {
    return label >= 0 && label < classes;
}

// −log p_label of one row, computed by the calling warp (NaN when `label` is not a class).
template <bool STABLEMAX, typename T>
__device__ double row_cross_entropy(const T* row, int classes, int label) {
    if (!is_class(label, classes)) return nan_f64();
    const RowStats stats = row_stats<STABLEMAX>(row, classes);
    const double s_label = normalizer_weight<STABLEMAX>((double)load_f32(row, label), stats.max);
    return log(stats.total) - log(s_label);
}

// out = scale · ∂(−log p_label)/∂row, computed by the calling warp:
// ∂/∂x_j = s(x_j)·(s'/s)(x_j) / Σ s − [j = label]·(s'/s)(x_label). A label that is not a class
// gives a NaN row.
template <bool STABLEMAX, typename T>
__device__ void write_row_ce_grad(const T* row, T* out, int classes, int label, double scale) {
    const int lane = threadIdx.x & 31;
    if (!is_class(label, classes)) {
        for (int c = lane; c < classes; c += 32) store_f32(out, c, (float)nan_f64());
        return;
    }
    const RowStats stats = row_stats<STABLEMAX>(row, classes);
    const double x_label = load_f32(row, label);
    const double label_term =
        log_derivative<STABLEMAX>(x_label, normalizer_weight<STABLEMAX>(x_label, stats.max));
    const double inv_total = 1.0 / stats.total;
    for (int c = lane; c < classes; c += 32) {
        const double x = load_f32(row, c);
        const double s = normalizer_weight<STABLEMAX>(x, stats.max);
        double g = s * log_derivative<STABLEMAX>(x, s) * inv_total;
        if (c == label) g -= label_term;
        store_f32(out, c, (float)(scale * g));
    }
}

template <typename T>
__device__ void write_row_zeros(T* out, int classes) {
    for (int c = threadIdx.x & 31; c < classes; c += 32) store_f32(out, c, 0.0f);
}

// ---- per-sequence mean (one block per sequence, one warp per token row) -----------------------

// loss[b] = Σ_s CE(logits[b, s], labels[b, s]) / max(1, #valid) over tokens whose label is not −100.
template <bool STABLEMAX, typename T>
__device__ void sequence_ce_fwd_impl(const T* logits, const int* labels, float* loss, int seq_len,
                                     int classes) {
    __shared__ double warp_ce[32];
    __shared__ int warp_valid[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const long long first_row = (long long)blockIdx.x * seq_len;
    double ce_sum = 0.0;
    int valid = 0;
    for (int s = warp; s < seq_len; s += warps) {
        const int label = labels[first_row + s];
        if (label == IGNORE_LABEL) continue;
        ++valid;
        ce_sum += row_cross_entropy<STABLEMAX>(logits + (first_row + s) * classes, classes, label);
    }
    if (lane == 0) {
        warp_ce[warp] = ce_sum;
        warp_valid[warp] = valid;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        int count = 0;
        for (int w = 0; w < warps; ++w) {
            total += warp_ce[w];
            count += warp_valid[w];
        }
        loss[blockIdx.x] = (float)(total / (double)(count > 0 ? count : 1));
    }
}

// dlogits[b, s] = dy[b] / max(1, #valid) · ∂CE/∂logits[b, s]; zero for ignored tokens.
template <bool STABLEMAX, typename T>
__device__ void sequence_ce_bwd_impl(const float* dy, const T* logits, const int* labels,
                                     T* dlogits, int seq_len, int classes) {
    __shared__ float scratch[32];
    const int warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const long long first_row = (long long)blockIdx.x * seq_len;
    float valid = 0.0f;  // a count: exact in f32 up to 2^24 tokens
    for (int s = threadIdx.x; s < seq_len; s += blockDim.x) {
        valid += labels[first_row + s] != IGNORE_LABEL ? 1.0f : 0.0f;
    }
    valid = block_sum(valid, scratch);
    const double scale = (double)dy[blockIdx.x] / (valid > 0.0f ? (double)valid : 1.0);
    for (int s = warp; s < seq_len; s += warps) {
        const long long r = first_row + s;
        const int label = labels[r];
        if (label == IGNORE_LABEL) {
            write_row_zeros(dlogits + r * classes, classes);
        } else {
            write_row_ce_grad<STABLEMAX>(logits + r * classes, dlogits + r * classes, classes,
                                         label, scale);
        }
    }
}

#define STAMP_SEQUENCE_CE(name, STABLEMAX, T)                                                 \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                \
        name##_fwd_##T(const T* logits, const int* labels, float* loss, int seq_len,         \
                       int classes) {                                                         \
        sequence_ce_fwd_impl<STABLEMAX>(logits, labels, loss, seq_len, classes);              \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                \
        name##_bwd_##T(const float* dy, const T* logits, const int* labels, T* dlogits,      \
                       int seq_len, int classes) {                                            \
        sequence_ce_bwd_impl<STABLEMAX>(dy, logits, labels, dlogits, seq_len, classes);       \
    }

// The bf16 entry points are named with the typedef, so `T` spells the suffix.
typedef float f32;
STAMP_SEQUENCE_CE(softmax_ce, false, f32)
STAMP_SEQUENCE_CE(softmax_ce, false, bf16)
STAMP_SEQUENCE_CE(stablemax_ce, true, f32)
STAMP_SEQUENCE_CE(stablemax_ce, true, bf16)

// ---- mask-weighted mean softmax cross-entropy --------------------------------------------------

// m·CE of one row for the masked mean, by the calling warp: 0 where m = 0 (the target is not
// read), NaN for a negative mask or a target that is not a class.
template <typename T>
__device__ double masked_row_term(const T* row, int classes, int target, double m) {
    if (m == 0.0) return 0.0;
    if (m < 0.0) return nan_f64();
    return m * row_cross_entropy<false>(row, classes, target);
}

// loss[0] = Σ m·CE / Σ m, or 0 when Σ m = 0. One block reduces everything (warps stride over the
// rows; the per-warp partials are added in warp order), so the result is deterministic. A
// multi-block two-pass reduction is the next step if this ever shows in a profile.
template <typename T>
__device__ void masked_ce_fwd_impl(const T* logits, const int* targets, const T* mask, float* loss,
                                   long long rows, int classes) {
    __shared__ double warp_ce[32];
    __shared__ double warp_mask[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    double ce_sum = 0.0, mask_sum = 0.0;
    for (long long r = warp; r < rows; r += warps) {
        const double m = load_f32(mask, r);
        mask_sum += m;
        ce_sum += masked_row_term(logits + r * classes, classes, targets[r], m);
    }
    if (lane == 0) {
        warp_ce[warp] = ce_sum;
        warp_mask[warp] = mask_sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double ce_total = 0.0, mask_total = 0.0;
        for (int w = 0; w < warps; ++w) {
            ce_total += warp_ce[w];
            mask_total += warp_mask[w];
        }
        // A NaN term must survive even when the mask sums to zero.
        loss[0] = (float)(mask_total > 0.0 ? ce_total / mask_total : ce_total * 0.0);
    }
}

// scale[0] = dy / Σ m (0 when Σ m = 0: nothing was scored, so nothing gets a gradient), the
// factor `masked_ce_bwd` multiplies each row's m·∂CE by. One block, as the forward.
template <typename T>
__device__ void masked_ce_bwd_scale_impl(const float* dy, const T* mask, double* scale,
                                         long long rows) {
    __shared__ double warp_mask[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    double mask_sum = 0.0;
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) mask_sum += load_f32(mask, r);
    mask_sum = warp_sum_f64(mask_sum);
    if (lane == 0) warp_mask[warp] = mask_sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < warps; ++w) total += warp_mask[w];
        scale[0] = total > 0.0 ? (double)dy[0] / total : 0.0;
    }
}

// dlogits[r] = scale · m_r · ∂CE_r/∂logits[r], one warp per row over a grid of warps.
template <typename T>
__device__ void masked_ce_bwd_impl(const double* scale, const T* logits, const int* targets,
                                   const T* mask, T* dlogits, long long rows, int classes) {
    const long long first_warp = global_thread_index() >> 5, warp_stride = grid_stride() >> 5;
    for (long long r = first_warp; r < rows; r += warp_stride) {
        const double m = load_f32(mask, r);
        T* out = dlogits + r * classes;
        if (m == 0.0) {
            write_row_zeros(out, classes);
        } else {
            // A negative mask weight poisons the row through its scale.
            const double row_scale = m < 0.0 ? nan_f64() : scale[0] * m;
            write_row_ce_grad<false>(logits + r * classes, out, classes, targets[r], row_scale);
        }
    }
}

#define STAMP_MASKED_CE(T)                                                                     \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                 \
        masked_ce_fwd_##T(const T* logits, const int* targets, const T* mask, float* loss,    \
                          long long rows, int classes) {                                       \
        masked_ce_fwd_impl(logits, targets, mask, loss, rows, classes);                        \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                 \
        masked_ce_bwd_scale_##T(const float* dy, const T* mask, double* scale, long long rows) { \
        masked_ce_bwd_scale_impl(dy, mask, scale, rows);                                       \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                 \
        masked_ce_bwd_##T(const double* scale, const T* logits, const int* targets,           \
                          const T* mask, T* dlogits, long long rows, int classes) {            \
        masked_ce_bwd_impl(scale, logits, targets, mask, dlogits, rows, classes);              \
    }

STAMP_MASKED_CE(f32)
STAMP_MASKED_CE(bf16)

// ---- binary cross-entropy with logits ---------------------------------------------------------

// softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}), finite and accurate for any x.
__device__ __forceinline__ float bce_softplus(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

// out = positive·t·softplus(−x) + negative·(1 − t)·softplus(x)   (−log σ(x) = softplus(−x)).
template <typename T>
__device__ void bce_with_logits_fwd_impl(const T* logits, const T* targets, T* out, long long n,
                                         float positive, float negative) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const float x = load_f32(logits, i), t = load_f32(targets, i);
        store_f32(out, i,
                  positive * t * bce_softplus(-x) + negative * (1.0f - t) * bce_softplus(x));
    }
}

// dx = dy·(−positive·t·σ(−x) + negative·(1 − t)·σ(x)),
// dt = dy·(positive·softplus(−x) − negative·softplus(x)).
template <typename T>
__device__ void bce_with_logits_bwd_impl(const T* dy, const T* logits, const T* targets, T* dlogits,
                                         T* dtargets, long long n, float positive, float negative) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const float g = load_f32(dy, i), x = load_f32(logits, i), t = load_f32(targets, i);
        store_f32(dlogits, i,
                  g * (-positive * t * sigmoid_f32(-x) + negative * (1.0f - t) * sigmoid_f32(x)));
        store_f32(dtargets, i, g * (positive * bce_softplus(-x) - negative * bce_softplus(x)));
    }
}

#define STAMP_BCE(T)                                                                           \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                 \
        bce_with_logits_fwd_##T(const T* logits, const T* targets, T* out, long long n,       \
                                float positive, float negative) {                              \
        bce_with_logits_fwd_impl(logits, targets, out, n, positive, negative);                 \
    }                                                                                          \
    extern "C" __global__ void __launch_bounds__(LOSS_THREADS)                                 \
        bce_with_logits_bwd_##T(const T* dy, const T* logits, const T* targets, T* dlogits,   \
                                T* dtargets, long long n, float positive, float negative) {    \
        bce_with_logits_bwd_impl(dy, logits, targets, dlogits, dtargets, n, positive, negative); \
    }

STAMP_BCE(f32)
STAMP_BCE(bf16)
