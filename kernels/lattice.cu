// LDT's lattice round for a batch of chains, one block per chain: kill and meet, n_alive, the
// status flags, and the random decision, in one launch. Reference: src/device/cpu/lattice.rs
// `lattice_step` (read its header for the semantics and the Philox layout).
//
// Per chain b (block b), with S cells of C values:
// 1. every thread takes cells s = threadIdx.x + k·blockDim.x and, per value, keeps a candidate
//    when `state > 0.5 ∧ (given ∨ keep ≥ keep_min)`, writing the new mask and n_alive[s] (also
//    to shared memory for step 3);
// 2. `__syncthreads_or` gives empty (some n_alive = 0) and "some cell is not a singleton";
//    conflict = empty ∨ conflict_logit ≥ conflict_min; solved = ¬conflict ∧ every n_alive = 1;
// 3. if neither, warp 0 counts the undecided cells (n_alive > 1) 32 at a time with ballots, and
//    picks the one of rank `__umulhi(x0, n)` in ascending cell order;
// 4. lane 0 samples the value in f64, exactly the reference's loop: weights exp((v − max)/T) over
//    the alive values, the first whose running sum exceeds u·W (u from lane 1), else the last
//    alive one; and pins the cell to that one-hot.
//
// Thresholds: the launcher turns θ and τ into f32 logit thresholds, `keep_min` the smallest f32 k
// with σ(k) ≥ θ and `conflict_min` the smallest f32 c with σ(c) > τ (NaN when none), found with
// the reference's f64 sigmoid. So the f32 comparisons here decide every kill and conflict exactly
// as the reference does (NaN logits kill, and never fire the conflict, in both). The value draw
// is f64 like the reference; only the GPU's f64 `exp` (libdevice, within 1 ulp of glibc's) can
// move a running sum across u·W, which needs u·W within ~1e-16 relative of a boundary.
#include "common.cuh"
#include "philox.cuh"

#define LATTICE_THREADS 256

// A given cell: i32 flags (≠ 0) or float flags (> 0.5), as the reference's `flags`.
__device__ __forceinline__ bool is_given(const int* given, long long cell) { return given[cell] != 0; }
__device__ __forceinline__ bool is_given(const float* given, long long cell) { return given[cell] > 0.5f; }
__device__ __forceinline__ bool is_given(const bf16* given, long long cell) {
    return bf16_to_float(given[cell]) > 0.5f;
}

// Whether candidate i (of global cell `cell`) is alive after deduction.
template <typename T, typename G>
__device__ __forceinline__ bool survives(const T* __restrict__ state, const G* __restrict__ given,
                                         const T* __restrict__ keep, long long cell, long long i, float keep_min) {
    return load_f32(state, i) > 0.5f && (is_given(given, cell) || load_f32(keep, i) >= keep_min);
}

// The digit that uniform u draws from softmax(value / T) over the alive values of the row starting
// at `first` (the reference's `sample_value`, same f64 operations in the same order).
template <typename T, typename G>
__device__ int sample_value(const T* __restrict__ state, const G* __restrict__ given, const T* __restrict__ keep,
                            const T* __restrict__ value, long long cell, long long first, int values,
                            float keep_min, double temperature, double u) {
    double max = __longlong_as_double(0xfff0000000000000ll);  // -inf
    for (int c = 0; c < values; ++c)
        if (survives(state, given, keep, cell, first + c, keep_min)) max = fmax(max, (double)load_f32(value, first + c));
    double total = 0.0;
    int last = -1;
    for (int c = 0; c < values; ++c) {
        if (!survives(state, given, keep, cell, first + c, keep_min)) continue;
        total += exp(((double)load_f32(value, first + c) - max) / temperature);
        last = c;
    }
    const double target = u * total;
    double running = 0.0;
    for (int c = 0; c < values; ++c) {
        if (!survives(state, given, keep, cell, first + c, keep_min)) continue;
        running += exp(((double)load_f32(value, first + c) - max) / temperature);
        if (running > target) return c;
    }
    return last;
}

// Outputs: new_state [B, S, C] (0/1 in T), n_alive [B, S], flags [B, 3] = (empty, conflict,
// solved), decision [B, 2] = (cell, digit), −1 when the chain makes none. Dynamic shared memory:
// S ints.
template <typename T, typename G>
__device__ void lattice_round(const T* __restrict__ state, const G* __restrict__ given, const T* __restrict__ keep,
                                  const T* __restrict__ value, const T* __restrict__ conflict_logit,
                                  T* __restrict__ new_state, int* __restrict__ n_alive, int* __restrict__ flags,
                                  int* __restrict__ decision, int cells, int values, float keep_min,
                                  float conflict_min, long long temperature_bits, unsigned long long seed,
                                  unsigned long long round) {
    extern __shared__ int alive_count[];
    const long long chain = blockIdx.x, first_cell = chain * cells;

    // 1. Kill and meet, per cell.
    int some_empty = 0, some_not_single = 0;
    for (int s = threadIdx.x; s < cells; s += blockDim.x) {
        const long long cell = first_cell + s;
        int count = 0;
        for (int c = 0; c < values; ++c) {
            const long long i = cell * values + c;
            const bool alive = survives(state, given, keep, cell, i, keep_min);
            store_f32(new_state, i, alive ? 1.0f : 0.0f);
            count += alive;
        }
        alive_count[s] = count;
        n_alive[cell] = count;
        some_empty |= count == 0;
        some_not_single |= count != 1;
    }

    // 2. Status (the barriers also publish alive_count and the new mask to the whole block).
    const bool empty = __syncthreads_or(some_empty);
    const bool all_single = !__syncthreads_or(some_not_single);
    const bool conflict = empty || load_f32(conflict_logit, chain) >= conflict_min;
    const bool solved = !conflict && all_single;
    if (threadIdx.x == 0) {
        flags[3 * chain] = empty;
        flags[3 * chain + 1] = conflict;
        flags[3 * chain + 2] = solved;
        decision[2 * chain] = -1;
        decision[2 * chain + 1] = -1;
    }
    // Uniform across the block; no barrier follows.
    if (conflict || solved || threadIdx.x >= 32) return;

    // 3. Warp 0 picks the cell: rank (x0 · n) >> 32 among the n undecided cells, in cell order.
    const int lane = threadIdx.x;
    const philox_u32x4 draw = philox_block(seed, round, (unsigned long long)chain);
    unsigned int undecided = 0;
    for (int base = 0; base < cells; base += 32) {
        const int s = base + lane;
        undecided += __popc(__ballot_sync(0xffffffffu, s < cells && alive_count[s] > 1));
    }
    unsigned int rank = __umulhi(draw.v[0], undecided);
    int picked = -1;
    for (int base = 0; base < cells; base += 32) {
        const int s = base + lane;
        const bool mine = s < cells && alive_count[s] > 1;
        const unsigned int ballot = __ballot_sync(0xffffffffu, mine);
        const unsigned int here = __popc(ballot);
        if (rank < here) {  // uniform: ballot and rank are the same in every lane
            const unsigned int below = ballot & ((1u << lane) - 1u);
            const unsigned int hit = __ballot_sync(0xffffffffu, mine && (unsigned int)__popc(below) == rank);
            picked = base + __ffs((int)hit) - 1;
            break;
        }
        rank -= here;
    }

    // 4. Lane 0 samples the value and pins the cell.
    if (lane != 0 || picked < 0) return;
    const long long cell = first_cell + picked, first = cell * values;
    const double u = (double)philox_to_uniform(draw.v[1]);
    const int digit = sample_value(state, given, keep, value, cell, first, values, keep_min,
                                   __longlong_as_double(temperature_bits), u);
    for (int c = 0; c < values; ++c) store_f32(new_state, first + c, c == digit ? 1.0f : 0.0f);
    decision[2 * chain] = picked;
    decision[2 * chain + 1] = digit;
}

// `lattice_step_<dtype>` takes i32 givens; `lattice_step_float_given_<dtype>` givens in the
// state's float dtype.
#define LATTICE_PARAMS(T, G)                                                                                  \
    (const T* state, const G* given, const T* keep, const T* value, const T* conflict_logit, T* new_state,    \
     int* n_alive, int* flags, int* decision, int cells, int values, float keep_min, float conflict_min,       \
     long long temperature_bits, unsigned long long seed, unsigned long long round)
#define LATTICE_ARGS                                                                                           \
    (state, given, keep, value, conflict_logit, new_state, n_alive, flags, decision, cells, values, keep_min, \
     conflict_min, temperature_bits, seed, round)
#define LATTICE_I32_GIVEN_PARAMS(T) LATTICE_PARAMS(T, int)
#define LATTICE_FLOAT_GIVEN_PARAMS(T) LATTICE_PARAMS(T, T)

template <typename T>
__device__ void lattice_step_impl LATTICE_PARAMS(T, int) {
    lattice_round<T, int> LATTICE_ARGS;
}
template <typename T>
__device__ void lattice_step_float_given_impl LATTICE_PARAMS(T, T) {
    lattice_round<T, T> LATTICE_ARGS;
}

STAMP_F32_BF16(lattice_step, LATTICE_THREADS, LATTICE_I32_GIVEN_PARAMS, LATTICE_ARGS)
STAMP_F32_BF16(lattice_step_float_given, LATTICE_THREADS, LATTICE_FLOAT_GIVEN_PARAMS, LATTICE_ARGS)
