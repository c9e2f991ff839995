// Reductions over one axis of a tensor viewed as (outer, n, inner): sum and mean (forward and
// backward) and argmax. `sum_all` is the sum over (1, numel, 1). Reference:
// src/device/cpu/reduce.rs (sums in f64) and layout.rs (argmax: ties go to the first index, NaN
// counts as the largest value).
//
// Work split: a block owns a tile of `lanes` consecutive inner positions of one outer index, and
// its REDUCE_THREADS threads form `lanes` columns × `rows` rows, the rows striding along the
// axis. `lanes` is the power of two ≥ min(inner, 32): reducing the last axis (inner = 1) puts all
// threads along the axis (contiguous reads); a wide inner gives each warp 32 consecutive elements
// (coalesced), and a narrow inner wastes at most half the lanes. The per-column partials then
// meet in a shared-memory tree, so results do not depend on timing.
//
// Sums accumulate in f64: the kernel is memory bound and Hopper runs f64 adds at half the f32
// rate, so this is free and matches the reference to f32 rounding.
// Few large reductions (sum_all of a huge tensor) get few blocks; a split-axis second pass would
// add parallelism there if it ever matters.
#include "common.cuh"

#define REDUCE_THREADS 256  // launchers must launch exactly this many threads per block


// This thread's place in the tiling described above.
struct ReduceTiling {
    int lanes, rows, lane, row;
    long long tiles_per_outer, tiles;

    __device__ ReduceTiling(long long outer, long long inner) {
        lanes = 1;
        while (lanes < 32 && lanes < inner) lanes <<= 1;
        rows = REDUCE_THREADS / lanes;
        lane = threadIdx.x % lanes;
        row = threadIdx.x / lanes;
        tiles_per_outer = (inner + lanes - 1) / lanes;
        tiles = outer * tiles_per_outer;
    }
    __device__ long long outer_of(long long tile) const { return tile / tiles_per_outer; }
    __device__ long long inner_of(long long tile) const {
        return (tile % tiles_per_outer) * lanes + lane;
    }
};

// y[o, i] = Σ_k x[o, k, i], divided by max(n, 1) when `mean`.
template <typename T>
__device__ void reduce_sum_axis(const T* __restrict__ x, T* __restrict__ y, long long outer,
                                long long n, long long inner, bool mean) {
    __shared__ double partial[REDUCE_THREADS];
    const ReduceTiling t(outer, inner);
    for (long long tile = blockIdx.x; tile < t.tiles; tile += gridDim.x) {
        const long long o = t.outer_of(tile), i = t.inner_of(tile);
        double acc = 0.0;
        if (i < inner)
            for (long long k = t.row; k < n; k += t.rows) acc += load_f32(x, (o * n + k) * inner + i);
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (int stride = t.rows / 2; stride > 0; stride >>= 1) {
            if (t.row < stride) partial[threadIdx.x] += partial[threadIdx.x + stride * t.lanes];
            __syncthreads();
        }
        if (t.row == 0 && i < inner) {
            const double total = partial[threadIdx.x];
            store_f32(y, o * inner + i, (float)(mean ? total / (double)(n > 0 ? n : 1) : total));
        }
        __syncthreads();  // `partial` is reused by the next tile
    }
}

#define SUM_FWD_PARAMS(T) (const T* __restrict__ x, T* __restrict__ y, long long outer, long long n, long long inner)
template <typename T>
__device__ void sum_fwd_impl(const T* __restrict__ x, T* __restrict__ y, long long outer,
                             long long n, long long inner) {
    reduce_sum_axis(x, y, outer, n, inner, false);
}
template <typename T>
__device__ void mean_fwd_impl(const T* __restrict__ x, T* __restrict__ y, long long outer,
                              long long n, long long inner) {
    reduce_sum_axis(x, y, outer, n, inner, true);
}
STAMP_F32_BF16(sum_fwd, REDUCE_THREADS, SUM_FWD_PARAMS, (x, y, outer, n, inner))
STAMP_F32_BF16(mean_fwd, REDUCE_THREADS, SUM_FWD_PARAMS, (x, y, outer, n, inner))

// Backward of the sum / mean: dx[o, k, i] = dy[o, i] (divided by n for the mean). One grid-stride
// pass over dx, so every element is written.
template <typename T>
__device__ void broadcast_axis(const T* __restrict__ dy, T* __restrict__ dx, long long outer,
                               long long n, long long inner, bool mean) {
    const long long total = outer * n * inner;
    for (long long e = global_thread_index(); e < total; e += grid_stride()) {
        const long long o = e / (n * inner), i = e % inner;
        const float g = load_f32(dy, o * inner + i);
        store_f32(dx, e, mean ? g / (float)n : g);
    }
}

#define SUM_BWD_PARAMS(T) (const T* __restrict__ dy, T* __restrict__ dx, long long outer, long long n, long long inner)
template <typename T>
__device__ void sum_bwd_impl(const T* __restrict__ dy, T* __restrict__ dx, long long outer,
                             long long n, long long inner) {
    broadcast_axis(dy, dx, outer, n, inner, false);
}
template <typename T>
__device__ void mean_bwd_impl(const T* __restrict__ dy, T* __restrict__ dx, long long outer,
                              long long n, long long inner) {
    broadcast_axis(dy, dx, outer, n, inner, true);
}
STAMP_F32_BF16(sum_bwd, REDUCE_THREADS, SUM_BWD_PARAMS, (dy, dx, outer, n, inner))
STAMP_F32_BF16(mean_bwd, REDUCE_THREADS, SUM_BWD_PARAMS, (dy, dx, outer, n, inner))

// A bit test, so it holds under any floating-point compiler flags.
__device__ __forceinline__ bool is_nan_f32(float v) {
    return (__float_as_uint(v) & 0x7fffffffu) > 0x7f800000u;
}

// Whether candidate (v, k) replaces the current best (best_v, best_k) of argmax: NaN is the
// largest value, and among equal values (all NaNs equal) the first index wins. `best_k < 0`
// means no best yet. This is a total order, so any reduction tree gives the reference's answer.
__device__ __forceinline__ bool argmax_beats(float v, int k, float best_v, int best_k) {
    if (k < 0) return false;
    if (best_k < 0) return true;
    const bool v_nan = is_nan_f32(v), best_nan = is_nan_f32(best_v);
    if (v_nan != best_nan) return v_nan;
    if (!v_nan && v != best_v) return v > best_v;
    return k < best_k;
}

// y[o, i] = argmax_k x[o, k, i] as i32. The launcher checks n ≥ 1 and n ≤ i32::MAX.
template <typename T>
__device__ void argmax_fwd_impl(const T* __restrict__ x, int* __restrict__ y, long long outer,
                                long long n, long long inner) {
    __shared__ float best_value[REDUCE_THREADS];
    __shared__ int best_index[REDUCE_THREADS];
    const ReduceTiling t(outer, inner);
    for (long long tile = blockIdx.x; tile < t.tiles; tile += gridDim.x) {
        const long long o = t.outer_of(tile), i = t.inner_of(tile);
        float bv = 0.0f;
        int bk = -1;
        if (i < inner)
            for (long long k = t.row; k < n; k += t.rows) {
                const float v = load_f32(x, (o * n + k) * inner + i);
                if (argmax_beats(v, (int)k, bv, bk)) bv = v, bk = (int)k;
            }
        best_value[threadIdx.x] = bv;
        best_index[threadIdx.x] = bk;
        __syncthreads();
        for (int stride = t.rows / 2; stride > 0; stride >>= 1) {
            if (t.row < stride) {
                const int other = threadIdx.x + stride * t.lanes;
                if (argmax_beats(best_value[other], best_index[other], best_value[threadIdx.x],
                                 best_index[threadIdx.x])) {
                    best_value[threadIdx.x] = best_value[other];
                    best_index[threadIdx.x] = best_index[other];
                }
            }
            __syncthreads();
        }
        if (t.row == 0 && i < inner) y[o * inner + i] = best_index[threadIdx.x];
        __syncthreads();  // the shared arrays are reused by the next tile
    }
}
#define ARGMAX_PARAMS(T) (const T* __restrict__ x, int* __restrict__ y, long long outer, long long n, long long inner)
STAMP_F32_BF16(argmax_fwd, REDUCE_THREADS, ARGMAX_PARAMS, (x, y, outer, n, inner))
