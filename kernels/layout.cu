// Layout ops: they move elements without arithmetic, so f32 and bf16 values are copied as raw
// bits. Reference: src/device/cpu/layout.rs.
//
// - transpose_last2: [batch, a, b] -> [batch, b, a] through a 32x32 shared-memory tile, so both
//   the reads and the writes are coalesced. It is its own backward.
// - narrow (a slice along an axis) and concat (one launch per input, each writing its slice of
//   the output) are the same strided row copy on the (outer, axis, inner) view.
// - narrow's backward writes dy into its slice and zeros elsewhere in one pass.
#include "common.cuh"

#define LAYOUT_THREADS 256  // transpose_last2 relies on exactly this many threads per block
#define TRANSPOSE_TILE 32


// y[item, j, i] = x[item, i, j] for x of shape [batch, a, b]. Each block walks 32x32 tiles; its
// 256 threads are 32 columns x 8 rows, each moving 4 elements per tile. The tile row is padded
// to 33 so the transposed reads from shared memory hit distinct banks.
template <typename T>
__device__ void transpose_last2_fwd_impl(const T* __restrict__ x, T* __restrict__ y,
                                         long long batch, long long a, long long b) {
    __shared__ T tile[TRANSPOSE_TILE][TRANSPOSE_TILE + 1];
    const int rows_per_pass = LAYOUT_THREADS / TRANSPOSE_TILE;
    const int tx = threadIdx.x % TRANSPOSE_TILE, ty = threadIdx.x / TRANSPOSE_TILE;
    const long long tiles_a = (a + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    const long long tiles_b = (b + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    const long long tiles = batch * tiles_a * tiles_b;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        const long long item = t / (tiles_a * tiles_b), in_item = t % (tiles_a * tiles_b);
        const long long i0 = (in_item / tiles_b) * TRANSPOSE_TILE;
        const long long j0 = (in_item % tiles_b) * TRANSPOSE_TILE;
        const T* src = x + item * a * b;
        T* dst = y + item * a * b;
        for (int r = ty; r < TRANSPOSE_TILE; r += rows_per_pass) {
            const long long i = i0 + r, j = j0 + tx;
            if (i < a && j < b) tile[r][tx] = src[i * b + j];
        }
        __syncthreads();
        for (int r = ty; r < TRANSPOSE_TILE; r += rows_per_pass) {
            const long long j = j0 + r, i = i0 + tx;
            if (i < a && j < b) dst[j * a + i] = tile[tx][r];
        }
        __syncthreads();  // the tile is refilled for the next t
    }
}
#define TRANSPOSE_PARAMS(T) (const T* __restrict__ x, T* __restrict__ y, long long batch, long long a, long long b)
STAMP_F32_BF16(transpose_last2_fwd, LAYOUT_THREADS, TRANSPOSE_PARAMS, (x, y, batch, a, b))

// For each of `outer` rows: copy `row_len` contiguous elements from src + o·src_pitch +
// src_offset to dst + o·dst_pitch + dst_offset (all in elements).
template <typename T>
__device__ void copy_rows(const T* __restrict__ src, long long src_pitch, long long src_offset,
                          T* __restrict__ dst, long long dst_pitch, long long dst_offset,
                          long long outer, long long row_len) {
    const long long total = outer * row_len;
    for (long long e = global_thread_index(); e < total; e += grid_stride()) {
        const long long o = e / row_len, r = e - o * row_len;
        dst[o * dst_pitch + dst_offset + r] = src[o * src_pitch + src_offset + r];
    }
}

// y = x[:, start:start+len, :] on the (outer, n, inner) view of x.
template <typename T>
__device__ void narrow_fwd_impl(const T* __restrict__ x, T* __restrict__ y, long long outer,
                                long long n, long long inner, long long start, long long len) {
    copy_rows(x, n * inner, start * inner, y, len * inner, 0, outer, len * inner);
}
#define NARROW_FWD_PARAMS(T) \
    (const T* __restrict__ x, T* __restrict__ y, long long outer, long long n, long long inner, long long start, long long len)
STAMP_F32_BF16(narrow_fwd, LAYOUT_THREADS, NARROW_FWD_PARAMS, (x, y, outer, n, inner, start, len))

// y[:, offset:offset+size, :] = x for one input x of shape (outer, size, inner) of a concat whose
// output axis has length `total`.
template <typename T>
__device__ void concat_fwd_impl(const T* __restrict__ x, T* __restrict__ y, long long outer,
                                long long size, long long inner, long long total,
                                long long offset) {
    copy_rows(x, size * inner, 0, y, total * inner, offset * inner, outer, size * inner);
}
#define CONCAT_FWD_PARAMS(T) \
    (const T* __restrict__ x, T* __restrict__ y, long long outer, long long size, long long inner, long long total, long long offset)
STAMP_F32_BF16(concat_fwd, LAYOUT_THREADS, CONCAT_FWD_PARAMS, (x, y, outer, size, inner, total, offset))

// Backward of narrow: dx (outer, n, inner) is dy inside start..start+len of the axis, 0 outside.
template <typename T>
__device__ void narrow_bwd_impl(const T* __restrict__ dy, T* __restrict__ dx, long long outer,
                                long long n, long long inner, long long start, long long len) {
    const long long row_len = n * inner, slice_len = len * inner, total = outer * row_len;
    for (long long e = global_thread_index(); e < total; e += grid_stride()) {
        const long long o = e / row_len, in_slice = e - o * row_len - start * inner;
        dx[e] = (in_slice >= 0 && in_slice < slice_len) ? dy[o * slice_len + in_slice] : (T)0;
    }
}
#define NARROW_BWD_PARAMS(T) \
    (const T* __restrict__ dy, T* __restrict__ dx, long long outer, long long n, long long inner, long long start, long long len)
STAMP_F32_BF16(narrow_bwd, LAYOUT_THREADS, NARROW_BWD_PARAMS, (dy, dx, outer, n, inner, start, len))
