// Rotary position embeddings on x [B, S, H, hd], forward and backward, one pass. Reference:
// src/device/cpu/rope.rs (`rope_fwd`, `rope_bwd`).
//
// Pair j of a head is rotated by the angle of (position, j): (a, b) -> (a·cos − b·sin,
// a·sin + b·cos); the backward is the transposed rotation (sin -> −sin). The cos and sin tables are
// f32 [positions, hd/2], uploaded once from a `RopeTable` (angles computed in f64 on the host, as
// the reference does), so the kernel does no transcendental work and the 1D and 2D tables are the
// same code. Which coordinates form pair j is a kernel argument:
//   interleaved = 0: (x[j], x[j + hd/2])  (1D rotate-half, HRM/TRM)
//   interleaved = 1: (x[2j], x[2j + 1])   (2D row/column, Sotaku/LDT)
//
// One thread per pair: it reads both coordinates before writing either, so the rotation may run
// in place. A null `x` means "in place": the kernel reads and writes `y` (no __restrict__ on
// either pointer for that reason). Rotate-half pairs make consecutive threads touch consecutive
// elements (coalesced); interleaved pairs touch adjacent elements of one thread.
#include "common.cuh"

#define ROPE_THREADS 256

// The rotation over every pair, with indices of type Index: the (row, pair, position) of a flat
// pair index take three integer divisions, which are a handful of instructions in 32 bits but a
// long software routine in 64, so tensors below 2^31 elements (every model shape) use 32 bits.
template <typename Index, typename T, bool transpose>
__device__ void rope_rotate_indexed(const T* src, T* y, const float* __restrict__ cos_table,
                                    const float* __restrict__ sin_table, Index pairs, Index seq,
                                    Index heads, Index half, int interleaved) {
    const Index stride = (Index)grid_stride();
    for (Index p = (Index)global_thread_index(); p < pairs; p += stride) {
        const Index row = p / half, j = p - row * half;
        const Index position = (row / heads) % seq;
        const Index angle = position * half + j;
        const float cos_phi = cos_table[angle];
        const float sin_phi = transpose ? -sin_table[angle] : sin_table[angle];
        const Index base = row * 2 * half;
        const Index ia = interleaved ? base + 2 * j : base + j;
        const Index ib = interleaved ? ia + 1 : ia + half;
        const float a = load_f32(src, (long long)ia), b = load_f32(src, (long long)ib);
        store_f32(y, (long long)ia, a * cos_phi - b * sin_phi);
        store_f32(y, (long long)ib, a * sin_phi + b * cos_phi);
    }
}

template <typename T, bool transpose>
__device__ void rope_rotate(const T* x, T* y, const float* __restrict__ cos_table,
                            const float* __restrict__ sin_table, long long rows, long long seq,
                            long long heads, long long head_dim, int interleaved) {
    const T* src = x ? x : y;
    const long long half = head_dim / 2, pairs = rows * half;
    // 32-bit indices while the largest element index and the grid-stride sum stay below 2^32.
    if (2 * pairs < 0x7fffffffLL)
        rope_rotate_indexed<unsigned int, T, transpose>(src, y, cos_table, sin_table, (unsigned int)pairs,
                                                        (unsigned int)seq, (unsigned int)heads,
                                                        (unsigned int)half, interleaved);
    else
        rope_rotate_indexed<unsigned long long, T, transpose>(
            src, y, cos_table, sin_table, (unsigned long long)pairs, (unsigned long long)seq,
            (unsigned long long)heads, (unsigned long long)half, interleaved);
}

template <typename T>
__device__ void rope_fwd_impl(const T* x, T* y, const float* __restrict__ cos_table,
                              const float* __restrict__ sin_table, long long rows, long long seq,
                              long long heads, long long head_dim, int interleaved) {
    rope_rotate<T, false>(x, y, cos_table, sin_table, rows, seq, heads, head_dim, interleaved);
}

template <typename T>
__device__ void rope_bwd_impl(const T* dy, T* dx, const float* __restrict__ cos_table,
                              const float* __restrict__ sin_table, long long rows, long long seq,
                              long long heads, long long head_dim, int interleaved) {
    rope_rotate<T, true>(dy, dx, cos_table, sin_table, rows, seq, heads, head_dim, interleaved);
}

// rows = B·S·H; the position of row r is (r / H) mod S.
#define ROPE_PARAMS(T)                                                                           \
    (const T* x, T* y, const float* __restrict__ cos_table, const float* __restrict__ sin_table, \
     long long rows, long long seq, long long heads, long long head_dim, int interleaved)
#define ROPE_ARGS (x, y, cos_table, sin_table, rows, seq, heads, head_dim, interleaved)
STAMP_F32_BF16(rope_fwd, ROPE_THREADS, ROPE_PARAMS, ROPE_ARGS)
STAMP_F32_BF16(rope_bwd, ROPE_THREADS, ROPE_PARAMS, ROPE_ARGS)
