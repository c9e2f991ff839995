// Kernels that exercise the CPU emulator's shim (tests/emu_shim.rs); each one leans on a
// different part of it. They are ordinary kernels: NVRTC compiles them for sm_90 like any other.
#include "common.cuh"
#include "ptx_ops.cuh"

// Row softmax, one block per row (block size a multiple of 32): the row is cached in dynamic
// shared memory, the reductions use static shared memory, warp shuffles and __syncthreads.
extern "C" __global__ void emu_selftest_softmax_rows(const float* x, float* y, int rows, int cols) {
    extern __shared__ float row_cache[];
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;  // the whole block leaves together
    const float* in = x + (long long)row * cols;
    float local_max = __int_as_float(0xff800000);  // -inf
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        row_cache[c] = in[c];
        local_max = fmaxf(local_max, row_cache[c]);
    }
    const float row_max = block_max(local_max, scratch);
    float local_sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float e = expf(row_cache[c] - row_max);
        row_cache[c] = e;
        local_sum += e;
    }
    const float inv_sum = 1.0f / block_sum(local_sum, scratch);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[(long long)row * cols + c] = row_cache[c] * inv_sum;
}

// Every atomic the shim provides, on a histogram of `keys` (in [0, bins)) over a grid-stride
// loop, so that several blocks on several OS threads contend for the same words.
//   bin_sum[k] += values[i] (f32)   bin_count[k] += 1 (int)   total += 1 (unsigned)
//   total_f64 += values[i] (f64)    extrema = {max, min} of ints[i]
//   claimed[k]: the first i to CAS it from -1     last[k]: some i stored by atomicExch
extern "C" __global__ void emu_selftest_atomics(const int* keys, const float* values, const int* ints, int n,
                                                float* bin_sum, int* bin_count, unsigned* total, double* total_f64,
                                                int* extrema, int* claimed, int* last) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const int k = keys[i];
        atomicAdd(&bin_sum[k], values[i]);
        atomicAdd(&bin_count[k], 1);
        atomicAdd(total, 1u);
        atomicAdd(total_f64, (double)values[i]);
        atomicMax(&extrema[0], ints[i]);
        atomicMin(&extrema[1], ints[i]);
        atomicCAS(&claimed[k], -1, (int)i);
        atomicExch(&last[k], (int)i);
    }
}

// Warp operations on 2D blocks (blockDim.x == 32, one warp per threadIdx.y), every lane taking
// part even past the end of the data. Element i = global lane index:
//   up[i] = x[i-1] within the warp (lane 0 keeps its own), down[i] = x[i+3] (the last 3 keep
//   their own), bcast[i] = x of lane 5, seg_sum[i] = sum of x over i's aligned 8-lane segment
//   (xor shuffles of width 8); per warp w: ballot[w] of flags, any_all[2w], any_all[2w+1].
extern "C" __global__ void emu_selftest_warp_ops(const float* x, const int* flags, int n, float* up, float* down,
                                                 float* bcast, float* seg_sum, unsigned* ballot, int* any_all) {
    const unsigned full = 0xffffffffu;
    const int lane = threadIdx.x;
    const int warp = blockIdx.x * blockDim.y + threadIdx.y;
    const int i = warp * 32 + lane;
    const float v = i < n ? x[i] : 0.0f;
    const int flag = i < n ? flags[i] : 0;
    const float from_below = __shfl_up_sync(full, v, 1);
    const float from_above = __shfl_down_sync(full, v, 3);
    const float from_lane5 = __shfl_sync(full, v, 5);
    float segment = v;
    for (int m = 1; m < 8; m <<= 1) segment += __shfl_xor_sync(full, segment, m, 8);
    const unsigned votes = __ballot_sync(full, flag);
    const int any = __any_sync(full, flag), all = __all_sync(full, flag);
    __syncwarp();
    if (i < n) {
        up[i] = from_below;
        down[i] = from_above;
        bcast[i] = from_lane5;
        seg_sum[i] = segment;
    }
    if (lane == 0 && warp * 32 < n) {
        ballot[warp] = votes;
        any_all[2 * warp] = any;
        any_all[2 * warp + 1] = all;
    }
}

// D = A B + C for `tiles` independent 16x16x16 bf16 products (A, B row-major bf16, C, D
// row-major f32), one warp per tile: A and B staged in shared memory, fragments loaded with
// ldmatrix_x4 (A) and ldmatrix_x4_trans (B), two m16n8k16 mma for the two 8-column halves.
extern "C" __global__ void emu_selftest_mma(const bf16* a, const bf16* b, const float* c, float* d, int tiles) {
    __shared__ __align__(16) bf16 a_tile[16 * 16];
    __shared__ __align__(16) bf16 b_tile[16 * 16];
    const int tile = blockIdx.x, lane = threadIdx.x;
    if (tile >= tiles) return;
    for (int e = lane; e < 256; e += 32) {
        a_tile[e] = a[tile * 256 + e];
        b_tile[e] = b[tile * 256 + e];
    }
    __syncthreads();
    // Lane l addresses row l % 8 of quarter l / 8: quarters are (rows 0-7 | 8-15) x (cols 0-7 | 8-15),
    // row block first.
    const int quarter = lane / 8, row = (quarter & 1) * 8 + lane % 8, col = (quarter >> 1) * 8;
    unsigned a_frag[4], b_frag[4];
    ldmatrix_x4(a_frag, &a_tile[row * 16 + col]);
    ldmatrix_x4_trans(b_frag, &b_tile[row * 16 + col]);
    const int g = lane / 4, t = lane % 4;
    for (int half = 0; half < 2; ++half) {
        float acc[4];
        for (int r = 0; r < 4; ++r) acc[r] = c[tile * 256 + (g + (r >= 2 ? 8 : 0)) * 16 + half * 8 + 2 * t + (r & 1)];
        mma_m16n8k16_bf16(acc, a_frag, &b_frag[2 * half], acc);
        for (int r = 0; r < 4; ++r) d[tile * 256 + (g + (r >= 2 ? 8 : 0)) * 16 + half * 8 + 2 * t + (r & 1)] = acc[r];
    }
}

// Deliberately wrong: only the first warp reaches the barrier, which CUDA leaves undefined
// (it hangs or corrupts on a GPU). Emu must report a deadlock naming the block.
extern "C" __global__ void emu_selftest_divergent_barrier(float* out) {
    if (threadIdx.x < 32) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}
