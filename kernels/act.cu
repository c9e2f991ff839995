// Adaptive computation time (ACT) bookkeeping on the device, so a training step never reads the
// Q logits, the predictions or the losses back to the host (CPU reference:
// src/device/cpu/act.rs, which is the host code of models/act.rs and models/act_loss.rs moved
// there):
// - act_select_rows: the carry's reset, `out[r] = take_fresh[r] ? fresh row : kept[r]`;
// - act_halt: steps and the halting rule, with exploration drawn from the shared Philox stream;
// - act_q_continue_target: HRM's bootstrapped Q-continue target;
// - act_score: per-sequence valid / correct counts, the Q-halt target, and the metrics of the
//   halted sequences;
// - act_metrics: the scores' metrics and the three loss scalars in one f64 buffer, the one
//   thing the host reads per step (a step late);
// - act_eval_depth: evaluation's per-depth counts and halting steps, read once per batch.
//
// Per-step values (the exploration seed and segment) are read from device memory, not passed by
// value: a captured CUDA graph freezes by-value arguments. What is passed by value is fixed for
// a run (sizes, halt_max_steps, the exploration probability, the halting rule).
//
// Sums are deterministic: the metrics are added by one thread in slot order, exactly as the
// reference loops, so Emu, Cuda and the CPU agree to the last bit and a graph replay repeats them.
#include "common.cuh"
#include "philox.cuh"

#define ACT_THREADS 256
#define IGNORE_LABEL (-100)

// Slots of the f64 metrics buffer (models::act_loss::ActMetrics reads the same layout).
#define METRIC_COUNT 0
#define METRIC_ACCURACY 1
#define METRIC_EXACT 2
#define METRIC_Q_HALT_ACCURACY 3
#define METRIC_STEPS 4
#define METRIC_LM_LOSS 5
#define METRIC_Q_HALT_LOSS 6
#define METRIC_Q_CONTINUE_LOSS 7
#define SCORE_METRICS 5

// ---- act_select_rows: the carry's reset -----------------------------------------------------------

// out[r, j] = take_fresh[r] ? fresh[r * fresh_row_stride + j % fresh_period] : kept[r, j] over
// `rows` rows of `row_len` elements. A new batch's rows use stride = period = row_len; an init
// vector repeated along the row (H_init / L_init, [hidden]) uses stride 0 and period = hidden.
// Elements are moved, never converted, so NaN payloads and bf16 bits survive. `out` may be
// `kept` (each element is read before it is written, by the same thread): the in-place reset a
// persistent carry buffer needs.
template <typename T>
__device__ void act_select_rows_impl(const int* __restrict__ take_fresh, const T* __restrict__ fresh,
                                     const T* kept, T* out, long long rows, long long row_len,
                                     long long fresh_row_stride, long long fresh_period) {
    const long long n = rows * row_len;
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const long long r = i / row_len, j = i - r * row_len;
        out[i] = take_fresh[r] ? fresh[r * fresh_row_stride + j % fresh_period] : kept[i];
    }
}

#define ACT_SELECT_ROWS(suffix, T)                                                               \
    extern "C" __global__ void __launch_bounds__(ACT_THREADS) act_select_rows_##suffix(         \
        const int* take_fresh, const T* fresh, const T* kept, T* out, long long rows,          \
        long long row_len, long long fresh_row_stride, long long fresh_period) {               \
        act_select_rows_impl<T>(take_fresh, fresh, kept, out, rows, row_len, fresh_row_stride, \
                                fresh_period);                                                 \
    }
ACT_SELECT_ROWS(f32, float)
ACT_SELECT_ROWS(bf16, bf16)
ACT_SELECT_ROWS(i32, int)

// ---- act_halt: steps and halting ------------------------------------------------------------------

// What a segment decides halting with (models::act::Halting).
#define HALT_EVAL 0         // only halt_max_steps halts
#define HALT_TRAIN 1        // the Q head may halt early, subject to exploration

// The seed and segment of the exploration draws, as four i32 words (seed low, seed high, segment
// low, segment high) the host writes each step.
__device__ __forceinline__ unsigned long long draw_word(const int* draw, int at) {
    return (unsigned long long)(unsigned int)draw[at] |
           ((unsigned long long)(unsigned int)draw[at + 1] << 32);
}

// Exploration::min_halt_steps: with probability `prob` a slot must run at least
// randint(2, max_steps + 1) segments; 0 otherwise. Elements 2·slot and 2·slot + 1 of the uniform
// stream (seed, segment), compared and scaled in f64 as the host does.
__device__ __forceinline__ int min_halt_steps(unsigned long long seed, unsigned long long segment,
                                              int slot, double prob, int max_steps) {
    const double u_explore = (double)philox_uniform(seed, segment, 2ull * (unsigned long long)slot);
    if (!(u_explore < prob)) return 0;
    const double u = (double)philox_uniform(seed, segment, 2ull * (unsigned long long)slot + 1ull);
    const unsigned int drawn = (unsigned int)(u * (double)(max_steps - 1));
    const unsigned int top = (unsigned int)(max_steps - 2);
    return 2 + (int)(drawn < top ? drawn : top);
}

// Per slot: steps = prev_halted ? 1 : prev_steps + 1 (a halted slot restarted this segment), and
// halted = steps >= max_steps, or in training (with max_steps > 1) the Q head's wish, as long as
// the slot has run its explored minimum. `halt_only` is TRM's rule (q_halt > 0), else HRM's
// (q_halt > q_continue). The comparisons are f32, as the host's.
template <typename T>
__device__ void act_halt_impl(const T* __restrict__ q_halt, const T* __restrict__ q_continue,
                              const int* __restrict__ prev_halted, const int* __restrict__ prev_steps,
                              const int* __restrict__ draw, int* __restrict__ halted,
                              int* __restrict__ steps, int batch, int max_steps, int mode,
                              int halt_only, unsigned long long prob_bits) {
    const double prob = __longlong_as_double((long long)prob_bits);
    for (long long i = global_thread_index(); i < batch; i += grid_stride()) {
        const int slot = (int)i;
        const int s = prev_halted[slot] ? 1 : prev_steps[slot] + 1;
        bool halt = s >= max_steps;
        if (mode == HALT_TRAIN && max_steps > 1) {
            const float qh = load_f32(q_halt, slot), qc = load_f32(q_continue, slot);
            const bool wants = halt_only ? qh > 0.0f : qh > qc;
            const int least = min_halt_steps(draw_word(draw, 0), draw_word(draw, 2), slot, prob, max_steps);
            halt = (halt || wants) && s >= least;
        }
        steps[slot] = s;
        halted[slot] = halt ? 1 : 0;
    }
}

#define ACT_HALT_PARAMS(T)                                                                    \
    (const T* q_halt, const T* q_continue, const int* prev_halted, const int* prev_steps,   \
     const int* draw, int* halted, int* steps, int batch, int max_steps, int mode, int halt_only, \
     unsigned long long prob_bits)
#define ACT_HALT_ARGS \
    (q_halt, q_continue, prev_halted, prev_steps, draw, halted, steps, batch, max_steps, mode, halt_only, prob_bits)
STAMP_F32_BF16(act_halt, ACT_THREADS, ACT_HALT_PARAMS, ACT_HALT_ARGS)

// ---- act_q_continue_target: HRM's bootstrapped target ---------------------------------------------

// target[i] = σ(steps[i] >= max_steps ? next_halt[i] : max(next_halt[i], next_continue[i])), f32,
// with σ(x) = 1 / (1 + e^−x) written as the host writes it.
template <typename T>
__device__ void act_q_continue_target_impl(const T* __restrict__ next_halt,
                                           const T* __restrict__ next_continue,
                                           const int* __restrict__ steps, float* __restrict__ target,
                                           int batch, int max_steps) {
    for (long long i = global_thread_index(); i < batch; i += grid_stride()) {
        const float h = load_f32(next_halt, i);
        const float logit = steps[i] >= max_steps ? h : fmaxf(h, load_f32(next_continue, i));
        target[i] = 1.0f / (1.0f + expf(-logit));
    }
}

#define ACT_TARGET_PARAMS(T) \
    (const T* next_halt, const T* next_continue, const int* steps, float* target, int batch, int max_steps)
#define ACT_TARGET_ARGS (next_halt, next_continue, steps, target, batch, max_steps)
STAMP_F32_BF16(act_q_continue_target, ACT_THREADS, ACT_TARGET_PARAMS, ACT_TARGET_ARGS)

// ---- act_score: per-sequence scores and the halted sequences' metrics -----------------------------

// One block. Each warp scores whole sequences (lanes stride over the tokens; the counts are
// integers, so the order of the warp sums does not matter): valid = labels that are not −100,
// correct = valid labels the argmax got, seq_correct = (valid == correct) as the f32 Q-halt
// target. Then thread 0 adds the metrics of halted sequences with a valid label, in slot order
// and in f64, exactly as the host loop does.
template <typename T>
__device__ void act_score_impl(const int* __restrict__ preds, const int* __restrict__ labels,
                               const T* __restrict__ q_halt, const int* __restrict__ halted,
                               const int* __restrict__ steps, int* valid, int* correct,
                               float* seq_correct, double* __restrict__ metrics, int batch,
                               int seq_len) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int b = warp; b < batch; b += warps) {
        int scored = 0, right = 0;
        for (int s = lane; s < seq_len; s += 32) {
            const long long at = (long long)b * seq_len + s;
            const int y = labels[at];
            if (y != IGNORE_LABEL) {
                ++scored;
                right += preds[at] == y;
            }
        }
        for (int offset = 16; offset > 0; offset >>= 1) {
            scored += __shfl_xor_sync(0xffffffffu, scored, offset);
            right += __shfl_xor_sync(0xffffffffu, right, offset);
        }
        if (lane == 0) {
            valid[b] = scored;
            correct[b] = right;
            seq_correct[b] = scored == right ? 1.0f : 0.0f;
        }
    }
    __syncthreads();  // the counts are in global memory, visible to the whole block after this
    if (threadIdx.x != 0) return;
    double count = 0.0, accuracy = 0.0, exact = 0.0, q_agree = 0.0, used = 0.0;
    for (int b = 0; b < batch; ++b) {
        if (!halted[b] || valid[b] == 0) continue;
        const bool right = valid[b] == correct[b];
        count += 1.0;
        accuracy += (double)correct[b] / (double)valid[b];
        exact += right ? 1.0 : 0.0;
        q_agree += ((load_f32(q_halt, b) >= 0.0f) == right) ? 1.0 : 0.0;
        used += (double)steps[b];
    }
    metrics[METRIC_COUNT] = count;
    metrics[METRIC_ACCURACY] = accuracy;
    metrics[METRIC_EXACT] = exact;
    metrics[METRIC_Q_HALT_ACCURACY] = q_agree;
    metrics[METRIC_STEPS] = used;
}

#define ACT_SCORE_PARAMS(T)                                                                     \
    (const int* preds, const int* labels, const T* q_halt, const int* halted, const int* steps, \
     int* valid, int* correct, float* seq_correct, double* metrics, int batch, int seq_len)
#define ACT_SCORE_ARGS \
    (preds, labels, q_halt, halted, steps, valid, correct, seq_correct, metrics, batch, seq_len)
STAMP_F32_BF16(act_score, ACT_THREADS, ACT_SCORE_PARAMS, ACT_SCORE_ARGS)

// ---- act_metrics: one buffer for the host ---------------------------------------------------------

// metrics[0..5] = scores[0..5]; metrics[5..8] = the LM, Q-halt and Q-continue loss sums (f32
// scalars widened to f64; the Q-continue slot is 0 when `has_q_continue` is 0, and its pointer is
// then not read).
extern "C" __global__ void __launch_bounds__(ACT_THREADS)
    act_metrics_f32(const double* __restrict__ scores, const float* __restrict__ lm_loss,
                    const float* __restrict__ q_halt_loss, const float* __restrict__ q_continue_loss,
                    double* __restrict__ metrics, int has_q_continue) {
    for (long long i = global_thread_index(); i < SCORE_METRICS; i += grid_stride()) metrics[i] = scores[i];
    if (global_thread_index() != 0) return;
    metrics[METRIC_LM_LOSS] = (double)lm_loss[0];
    metrics[METRIC_Q_HALT_LOSS] = (double)q_halt_loss[0];
    metrics[METRIC_Q_CONTINUE_LOSS] = has_q_continue ? (double)q_continue_loss[0] : 0.0;
}

// ---- act_eval_depth: evaluation's record of one depth ---------------------------------------------

// Evaluation runs every sequence for all max_steps segments and records, at each depth, what the
// host reports (train/evaluate.rs): record[2·depth] += sequences entirely right, record[2·depth + 1]
// += valid tokens right; at the last depth record[2·max_steps] += sequences where q_halt ≥ 0
// agrees with being right and record[2·max_steps + 1] += valid tokens. halt_step[i] (0 = not yet)
// becomes depth + 1 the first time slot i's Q head asks to halt (`halt_only`: TRM's q_halt > 0,
// else HRM's q_halt > q_continue), or at the last depth. Counts are i32 and added by one thread
// in slot order; `record` and `halt_step` may be their previous values' memory.
template <typename T>
__device__ void act_eval_depth_impl(const int* __restrict__ valid, const int* __restrict__ correct,
                                    const T* __restrict__ q_halt, const T* __restrict__ q_continue,
                                    const int* prev_halt_step, const int* prev_record, int* halt_step,
                                    int* record, int batch, int depth, int max_steps, int halt_only) {
    const bool last = depth + 1 == max_steps;
    for (int i = threadIdx.x; i < batch; i += blockDim.x) {
        int h = prev_halt_step[i];
        if (h == 0) {
            const float qh = load_f32(q_halt, i), qc = load_f32(q_continue, i);
            const bool fires = halt_only ? qh > 0.0f : qh > qc;
            if (fires || last) h = depth + 1;
        }
        halt_step[i] = h;
    }
    if (threadIdx.x != 0) return;
    int exact = 0, right = 0, agree = 0, total = 0;
    for (int b = 0; b < batch; ++b) {
        const bool all_right = valid[b] == correct[b];
        exact += all_right;
        right += correct[b];
        agree += (load_f32(q_halt, b) >= 0.0f) == all_right;
        total += valid[b];
    }
    for (int r = 0; r < 2 * max_steps + 2; ++r) record[r] = prev_record[r];
    record[2 * depth] += exact;
    record[2 * depth + 1] += right;
    if (last) {
        record[2 * max_steps] += agree;
        record[2 * max_steps + 1] += total;
    }
}

#define ACT_EVAL_PARAMS(T)                                                                          \
    (const int* valid, const int* correct, const T* q_halt, const T* q_continue,                   \
     const int* prev_halt_step, const int* prev_record, int* halt_step, int* record, int batch,    \
     int depth, int max_steps, int halt_only)
#define ACT_EVAL_ARGS \
    (valid, correct, q_halt, q_continue, prev_halt_step, prev_record, halt_step, record, batch, depth, max_steps, halt_only)
STAMP_F32_BF16(act_eval_depth, ACT_THREADS, ACT_EVAL_PARAMS, ACT_EVAL_ARGS)
