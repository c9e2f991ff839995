// The tensor-core GEMM of `linear`: y [M, N] = x [M, K] · W [N, K]ᵀ with bf16 operands, f32
// accumulation through mma.sync m16n8k16 (kernels/ptx_ops.cuh), and a fused epilogue:
//   gemm_bf16_fwd_{bf16,f32}         y = x·Wᵀ (+ bias [N]) (+ residual [M, N]); null pointers skip
//   gemm_bf16_swiglu_fwd_{bf16,f32}  W is gate_up_proj [2·I, K]: y [M, I] = silu(g) ⊙ u with
//                                    g = x·W[0:I]ᵀ (+ bias[0:I]), u = x·W[I:2I]ᵀ (+ bias[I:2I])
// The suffix is the output's storage type; x, W and bias are bf16, the residual has the output's
// type. CPU reference: src/device/cpu/linear.rs (+ swiglu.rs, + elementwise add). The scalar tiled
// GEMM in matmul.cu stays the f32 path and the baseline.
//
// Tiling (docs/kernels-gemm.md says why): a block of 4 warps owns a 64 × 64 tile of x·Wᵀ and walks
// K in steps of 32. Warps sit 2 × 2; each computes 32 rows × 32 columns, i.e. 2 m16 tiles × 4 n8
// tiles, 8 mma per k16. x and W tiles are staged in shared memory (zero outside the matrices, so
// ragged M, N and any K, even K % 16 ≠ 0, need no special path in the inner loop) and read with
// ldmatrix; the next K-step's tiles are fetched into registers while the current one is
// multiplied, with two shared buffers and one barrier per step.
//
// The 64 W rows of a tile ("tile columns") are two halves of 32. A warp's four n8 tiles are the
// columns {16·wn, 16·wn + 8} of each half, so a thread holds, for its n8 tile j in the first half,
// the same relative column in the second half as n8 tile j + 2. The plain GEMM maps the halves to
// 64 consecutive output columns; SwiGLU maps the first half to 32 gate columns and the second to
// the matching 32 up columns, so silu(gate)·up is formed in registers.
#include "common.cuh"
#include "ptx_ops.cuh"

#define GEMM_BF16_THREADS 128
#define GEMM_BF16_TILE_M 64
#define GEMM_BF16_TILE_N 64
#define GEMM_BF16_TILE_K 32
#define GEMM_BF16_HALF_N (GEMM_BF16_TILE_N / 2)
// Shared rows are padded from 32 to 40 bf16 (80 bytes): the 8 rows an ldmatrix phase reads then
// start in 8 distinct 4-bank groups, so it runs without bank conflicts; 80 keeps rows 16-byte
// aligned for ldmatrix and the 16-byte stores.
#define GEMM_BF16_SMEM_STRIDE 40
// 16-byte chunks (8 bf16) per tile row, and chunks of one 64-row tile per thread.
#define GEMM_BF16_CHUNKS_PER_ROW (GEMM_BF16_TILE_K / 8)
#define GEMM_BF16_CHUNKS_PER_THREAD (GEMM_BF16_TILE_M * GEMM_BF16_CHUNKS_PER_ROW / GEMM_BF16_THREADS)

// This thread's 16-byte chunks of one K-step's operand tile, held in registers from the global
// fetch until the shared-memory store.
struct OperandChunks {
    uint4 chunk[GEMM_BF16_CHUNKS_PER_THREAD];
};

// Eight bf16 at p[0..8) of which the first `valid` (0..8) are in the matrix, the rest zero. Rows
// whose start is 16-byte aligned (K % 8 == 0 and a 16-byte aligned matrix) and full chunks take
// one 16-byte load.
__device__ __forceinline__ uint4 load_chunk(const bf16* p, int valid, bool aligned) {
    if (aligned && valid == 8) return *reinterpret_cast<const uint4*>(p);
    unsigned words[4] = {0u, 0u, 0u, 0u};
    #pragma unroll
    for (int e = 0; e < 8; ++e)
        if (e < valid) words[e / 2] |= (unsigned)p[e] << (16 * (e % 2));
    return make_uint4(words[0], words[1], words[2], words[3]);
}

// Fetches this thread's chunks of the 64 × 32 tile at K offset k0 of a [rows, k] matrix into
// registers. `row_of(r)` gives the matrix row of tile row r, or -1 when it lies outside.
template <typename RowOf>
__device__ __forceinline__ void fetch_tile(OperandChunks& regs, const bf16* matrix, RowOf row_of, int k0,
                                           int k) {
    // A view into a larger buffer (a parameter of an arena) may start anywhere: its rows are
    // loaded element by element unless the matrix itself is 16-byte aligned.
    const bool aligned = (k % 8) == 0 && (reinterpret_cast<unsigned long long>(matrix) % 16) == 0;
    #pragma unroll
    for (int i = 0; i < GEMM_BF16_CHUNKS_PER_THREAD; ++i) {
        const int c = threadIdx.x + i * GEMM_BF16_THREADS;
        const int r = c / GEMM_BF16_CHUNKS_PER_ROW, kc = k0 + (c % GEMM_BF16_CHUNKS_PER_ROW) * 8;
        const int row = row_of(r);
        const int valid = row < 0 ? 0 : min(max(k - kc, 0), 8);
        regs.chunk[i] = valid > 0 ? load_chunk(matrix + (long long)row * k + kc, valid, aligned)
                                  : make_uint4(0u, 0u, 0u, 0u);
    }
}

__device__ __forceinline__ void stage_tile(bf16* tile, const OperandChunks& regs) {
    #pragma unroll
    for (int i = 0; i < GEMM_BF16_CHUNKS_PER_THREAD; ++i) {
        const int c = threadIdx.x + i * GEMM_BF16_THREADS;
        const int r = c / GEMM_BF16_CHUNKS_PER_ROW, kc = (c % GEMM_BF16_CHUNKS_PER_ROW) * 8;
        *reinterpret_cast<uint4*>(tile + r * GEMM_BF16_SMEM_STRIDE + kc) = regs.chunk[i];
    }
}

// The tile column (W tile row) where n8 tile j (0..3) of warp column wn (0..1) starts.
__device__ __forceinline__ int tile_column_of(int wn, int j) {
    return (j / 2) * GEMM_BF16_HALF_N + wn * 16 + (j % 2) * 8;
}

// One K-step of 32 on the staged tiles: acc[mi][j] += x rows (wm·32 + 16·mi ..) · W rows of n8 tile j.
__device__ __forceinline__ void multiply_tiles(float (&acc)[2][4][4], const bf16* x_tile, const bf16* w_tile,
                                               int wm, int wn) {
    const int lane = threadIdx.x % 32, quarter = lane / 8, row_in_quarter = lane % 8;
    #pragma unroll
    for (int kk = 0; kk < GEMM_BF16_TILE_K; kk += 16) {
        // A quarters: (rows 0-7 | 8-15) × (k 0-7 | 8-15), row block first (ldmatrix_x4's contract).
        unsigned a[2][4];
        #pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
            const int row = wm * 32 + mi * 16 + (quarter & 1) * 8 + row_in_quarter;
            ldmatrix_x4(a[mi], x_tile + row * GEMM_BF16_SMEM_STRIDE + kk + (quarter >> 1) * 8);
        }
        // W rows are B's columns, so the untransposed load gives b fragments: quarters
        // (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) are b[0..1] of the first
        // n8 tile and b[0..1] of the second.
        unsigned b[4][2];
        #pragma unroll
        for (int half = 0; half < 2; ++half) {
            unsigned regs[4];
            const int row = tile_column_of(wn, 2 * half) + (quarter >> 1) * 8 + row_in_quarter;
            ldmatrix_x4(regs, w_tile + row * GEMM_BF16_SMEM_STRIDE + kk + (quarter & 1) * 8);
            b[2 * half][0] = regs[0];
            b[2 * half][1] = regs[1];
            b[2 * half + 1][0] = regs[2];
            b[2 * half + 1][1] = regs[3];
        }
        #pragma unroll
        for (int mi = 0; mi < 2; ++mi)
            #pragma unroll
            for (int j = 0; j < 4; ++j) mma_m16n8k16_bf16(acc[mi][j], a[mi], b[j], acc[mi][j]);
    }
}

// Stores two adjacent outputs y[i, j], y[i, j + 1]; `both` when j + 1 is in the matrix too.
// `paired` (an even row length and an output aligned to a pair) makes the pair's address 4 (bf16)
// or 8 (f32) bytes aligned, so it is one store.
__device__ __forceinline__ void store_pair(bf16* y, long long idx, float v0, float v1, bool both, bool paired) {
    if (both && paired) {
        *reinterpret_cast<unsigned*>(y + idx) = (unsigned)float_to_bf16(v0) | (unsigned)float_to_bf16(v1) << 16;
        return;
    }
    y[idx] = float_to_bf16(v0);
    if (both) y[idx + 1] = float_to_bf16(v1);
}
__device__ __forceinline__ void store_pair(float* y, long long idx, float v0, float v1, bool both, bool paired) {
    if (both && paired) {
        *reinterpret_cast<float2*>(y + idx) = make_float2(v0, v1);
        return;
    }
    y[idx] = v0;
    if (both) y[idx + 1] = v1;
}

// `n` is the output's column count: N for the plain GEMM, I for SwiGLU (whose W has 2·I rows).
// Grid: (⌈n / 64⌉, ⌈m / 64⌉) plain, (⌈n / 32⌉, ⌈m / 64⌉) SwiGLU.
template <bool swiglu, typename OutT>
__device__ void gemm_bf16_impl(const bf16* x, const bf16* w, const bf16* bias, const OutT* residual, OutT* y,
                               int m, int n, int k) {
    __shared__ __align__(16) bf16 x_tiles[2][GEMM_BF16_TILE_M * GEMM_BF16_SMEM_STRIDE];
    __shared__ __align__(16) bf16 w_tiles[2][GEMM_BF16_TILE_N * GEMM_BF16_SMEM_STRIDE];
    const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
    const int row0 = blockIdx.y * GEMM_BF16_TILE_M;
    // The output column of tile column 0 of each half.
    const int col0 = blockIdx.x * (swiglu ? GEMM_BF16_HALF_N : GEMM_BF16_TILE_N);

    // Output column of tile column c, -1 outside; for SwiGLU the column within gate or up.
    auto output_column = [=](int c) {
        const int j = swiglu ? col0 + c % GEMM_BF16_HALF_N : col0 + c;
        return j < n ? j : -1;
    };
    auto x_row_of = [=](int r) { return row0 + r < m ? row0 + r : -1; };
    auto w_row_of = [=](int c) {
        const int j = output_column(c);
        return j < 0 ? -1 : (swiglu && c >= GEMM_BF16_HALF_N ? n + j : j);
    };

    float acc[2][4][4];
    #pragma unroll
    for (int mi = 0; mi < 2; ++mi)
        #pragma unroll
        for (int j = 0; j < 4; ++j)
            #pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][j][e] = 0.0f;

    const int k_steps = (k + GEMM_BF16_TILE_K - 1) / GEMM_BF16_TILE_K;
    OperandChunks x_next, w_next;
    fetch_tile(x_next, x, x_row_of, 0, k);
    fetch_tile(w_next, w, w_row_of, 0, k);
    stage_tile(x_tiles[0], x_next);
    stage_tile(w_tiles[0], w_next);
    __syncthreads();
    for (int step = 0; step < k_steps; ++step) {
        const bool more = step + 1 < k_steps;
        // Issue the next step's global loads before the math, so they overlap it.
        if (more) {
            fetch_tile(x_next, x, x_row_of, (step + 1) * GEMM_BF16_TILE_K, k);
            fetch_tile(w_next, w, w_row_of, (step + 1) * GEMM_BF16_TILE_K, k);
        }
        multiply_tiles(acc, x_tiles[step % 2], w_tiles[step % 2], wm, wn);
        // The other buffer was last read in the previous step, before the barrier that ended it.
        if (more) {
            stage_tile(x_tiles[(step + 1) % 2], x_next);
            stage_tile(w_tiles[(step + 1) % 2], w_next);
        }
        __syncthreads();
    }

    // acc[mi][j][e] sits at row g (+ 8 for e ≥ 2) of m16 tile mi, tile column 2t + (e & 1) of n8
    // tile j. SwiGLU pairs n8 tile j (gate) with j + 2 (up); the plain GEMM stores all four.
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bool paired = (n % 2) == 0 && (reinterpret_cast<unsigned long long>(y) % (2 * sizeof(OutT))) == 0;
    constexpr int n8_tiles_stored = swiglu ? 2 : 4;
    #pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
        #pragma unroll
        for (int half_row = 0; half_row < 2; ++half_row) {
            const int i = row0 + wm * 32 + mi * 16 + g + half_row * 8;
            if (i >= m) continue;
            #pragma unroll
            for (int j = 0; j < n8_tiles_stored; ++j) {
                const int c = tile_column_of(wn, j) + 2 * t, col = output_column(c);
                if (col < 0) continue;
                const bool both = col + 1 < n;
                float v[2];
                #pragma unroll
                for (int e = 0; e < 2; ++e) {
                    float value = acc[mi][j][2 * half_row + e];
                    if constexpr (swiglu) {
                        float up = acc[mi][j + 2][2 * half_row + e];
                        if (bias != nullptr && (e == 0 || both)) {
                            value += bf16_to_float(bias[col + e]);
                            up += bf16_to_float(bias[n + col + e]);
                        }
                        value = value * sigmoid_f32(value) * up;
                    } else {
                        if (bias != nullptr && (e == 0 || both)) value += bf16_to_float(bias[col + e]);
                        if (residual != nullptr && (e == 0 || both))
                            value += load_f32(residual, (long long)i * n + col + e);
                    }
                    v[e] = value;
                }
                store_pair(y, (long long)i * n + col, v[0], v[1], both, paired);
            }
        }
    }
}

#define STAMP_GEMM_BF16(name, swiglu, OutT, suffix)                                                      \
    extern "C" __global__ void __launch_bounds__(GEMM_BF16_THREADS)                                     \
        name##_##suffix(const bf16* x, const bf16* w, const bf16* bias, const OutT* residual, OutT* y, \
                        int m, int n, int k) {                                                          \
        gemm_bf16_impl<swiglu, OutT>(x, w, bias, residual, y, m, n, k);                                 \
    }

STAMP_GEMM_BF16(gemm_bf16_fwd, false, bf16, bf16)
STAMP_GEMM_BF16(gemm_bf16_fwd, false, float, f32)
STAMP_GEMM_BF16(gemm_bf16_swiglu_fwd, true, bf16, bf16)
STAMP_GEMM_BF16(gemm_bf16_swiglu_fwd, true, float, f32)
