// `linear` (y = x·Wᵀ + b, W in PyTorch's [out, in] layout) and its backward, on a simple
// shared-memory tiled GEMM. CPU reference: src/device/cpu/linear.rs. This is the clear baseline:
// scalar FMAs, f32 accumulation for f32 and bf16 storage, any M, N, K. The tensor-core GEMM that
// replaces it keeps these entry points' contracts.
//
// One tiled kernel body computes C[M, N] = A·B (+ bias) where A and B are read through
// (row, column) strides, so the three products of `linear` are the same code:
//   forward        y [rows, out]  = x [rows, in] · Wᵀ        A = x,   B = W read transposed
//   input grad     dx [rows, in]  = dy [rows, out] · W       A = dy,  B = W
//   weight grad    dW [out, in]   = dyᵀ · x                  A = dy read transposed, B = x
// The bias gradient db = Σ_rows dy is a column sum (its own kernel below).
#include "common.cuh"

// A block computes a GEMM_TILE × GEMM_TILE tile of C with 16 × 16 threads, each owning a 4 × 4
// grid of outputs spaced 16 apart (so a warp's stores to one row of C are contiguous). The K axis
// advances GEMM_TILE_K at a time through shared memory.
#define GEMM_TILE 64
#define GEMM_TILE_K 16
#define GEMM_THREADS 256
#define GEMM_THREADS_PER_SIDE 16
#define GEMM_OUTPUTS_PER_SIDE (GEMM_TILE / GEMM_THREADS_PER_SIDE)

// Loads one GEMM_TILE (outer) × GEMM_TILE_K (inner) tile of an operand into `tile[k][outer]`,
// zero outside the matrix. The operand element (o, k) is at `p[o·outer_stride + k·inner_stride]`.
// Consecutive threads walk whichever axis is contiguous in memory, so the global loads coalesce
// for both plain and transposed operands.
template <typename T>
__device__ __forceinline__ void load_operand_tile(float (*tile)[GEMM_TILE], const T* p,
                                                  long long outer_stride, long long inner_stride,
                                                  int outer0, int outer_len, int k0, int k_len) {
    const bool k_contiguous = inner_stride == 1;
    for (int e = threadIdx.x; e < GEMM_TILE * GEMM_TILE_K; e += GEMM_THREADS) {
        const int o = k_contiguous ? e / GEMM_TILE_K : e % GEMM_TILE;
        const int k = k_contiguous ? e % GEMM_TILE_K : e / GEMM_TILE;
        const int go = outer0 + o, gk = k0 + k;
        tile[k][o] = (go < outer_len && gk < k_len)
                         ? load_f32(p, go * outer_stride + gk * inner_stride)
                         : 0.0f;
    }
}

// C[i, j] = Σ_k A(i, k)·B(k, j) (+ bias[j] when `bias` is not null), with
// A(i, k) = a[i·a_row_stride + k·a_col_stride] and B(k, j) = b[k·b_row_stride + j·b_col_stride];
// C is contiguous row-major [M, N]. Grid: (⌈N / GEMM_TILE⌉, ⌈M / GEMM_TILE⌉).
template <typename T>
__device__ void gemm_tiled(const T* a, long long a_row_stride, long long a_col_stride, const T* b,
                           long long b_row_stride, long long b_col_stride, const T* bias, T* c,
                           int m, int n, int k) {
    __shared__ float a_tile[GEMM_TILE_K][GEMM_TILE];  // a_tile[kk][i]
    __shared__ float b_tile[GEMM_TILE_K][GEMM_TILE];  // b_tile[kk][j]
    const int tx = threadIdx.x % GEMM_THREADS_PER_SIDE, ty = threadIdx.x / GEMM_THREADS_PER_SIDE;
    const int row0 = blockIdx.y * GEMM_TILE, col0 = blockIdx.x * GEMM_TILE;

    float acc[GEMM_OUTPUTS_PER_SIDE][GEMM_OUTPUTS_PER_SIDE];
    for (int r = 0; r < GEMM_OUTPUTS_PER_SIDE; ++r)
        for (int q = 0; q < GEMM_OUTPUTS_PER_SIDE; ++q) acc[r][q] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += GEMM_TILE_K) {
        load_operand_tile(a_tile, a, a_row_stride, a_col_stride, row0, m, k0, k);
        load_operand_tile(b_tile, b, b_col_stride, b_row_stride, col0, n, k0, k);
        __syncthreads();
        for (int kk = 0; kk < GEMM_TILE_K; ++kk) {
            float a_frag[GEMM_OUTPUTS_PER_SIDE], b_frag[GEMM_OUTPUTS_PER_SIDE];
            for (int r = 0; r < GEMM_OUTPUTS_PER_SIDE; ++r)
                a_frag[r] = a_tile[kk][ty + r * GEMM_THREADS_PER_SIDE];
            for (int q = 0; q < GEMM_OUTPUTS_PER_SIDE; ++q)
                b_frag[q] = b_tile[kk][tx + q * GEMM_THREADS_PER_SIDE];
            for (int r = 0; r < GEMM_OUTPUTS_PER_SIDE; ++r)
                for (int q = 0; q < GEMM_OUTPUTS_PER_SIDE; ++q)
                    acc[r][q] = fmaf(a_frag[r], b_frag[q], acc[r][q]);
        }
        __syncthreads();  // the tiles are overwritten by the next step
    }

    for (int r = 0; r < GEMM_OUTPUTS_PER_SIDE; ++r) {
        const int i = row0 + ty + r * GEMM_THREADS_PER_SIDE;
        if (i >= m) continue;
        for (int q = 0; q < GEMM_OUTPUTS_PER_SIDE; ++q) {
            const int j = col0 + tx + q * GEMM_THREADS_PER_SIDE;
            if (j >= n) continue;
            const float with_bias = bias != nullptr ? acc[r][q] + load_f32(bias, j) : acc[r][q];
            store_f32(c, (long long)i * n + j, with_bias);
        }
    }
}

// y [rows, out] = x [rows, in] · Wᵀ + bias; `bias` may be null.
template <typename T>
__device__ void linear_fwd_impl(const T* x, const T* w, const T* bias, T* y, int rows,
                                int out_features, int in_features) {
    gemm_tiled(x, in_features, 1, w, 1, in_features, bias, y, rows, out_features, in_features);
}

// dx [rows, in] = dy [rows, out] · W.
template <typename T>
__device__ void linear_input_bwd_impl(const T* dy, const T* w, T* dx, int rows, int out_features,
                                      int in_features) {
    gemm_tiled(dy, out_features, 1, w, in_features, 1, (const T*)nullptr, dx, rows, in_features,
               out_features);
}

// dW [out, in] = dyᵀ · x, summed over every row.
template <typename T>
__device__ void linear_weight_bwd_impl(const T* dy, const T* x, T* dw, int rows, int out_features,
                                       int in_features) {
    gemm_tiled(dy, 1, out_features, x, in_features, 1, (const T*)nullptr, dw, out_features,
               in_features, rows);
}

// db [cols] = Σ_rows dy [rows, cols]. A block of 32 × 8 threads owns 32 columns; its 8 thread
// rows take every 8th row of dy (coalesced 32-wide loads), then the 8 partial sums of each column
// are added in a fixed order.
#define BIAS_COLUMNS 32
#define BIAS_ROW_GROUPS 8
template <typename T>
__device__ void linear_bias_bwd_impl(const T* dy, T* db, int rows, int cols) {
    __shared__ float partial[BIAS_ROW_GROUPS][BIAS_COLUMNS];
    const int lane = threadIdx.x % BIAS_COLUMNS, group = threadIdx.x / BIAS_COLUMNS;
    const int col = blockIdx.x * BIAS_COLUMNS + lane;
    float sum = 0.0f;
    if (col < cols) {
        for (int r = group; r < rows; r += BIAS_ROW_GROUPS) sum += load_f32(dy, (long long)r * cols + col);
    }
    partial[group][lane] = sum;
    __syncthreads();
    if (group == 0 && col < cols) {
        float total = 0.0f;
        for (int g = 0; g < BIAS_ROW_GROUPS; ++g) total += partial[g][lane];
        store_f32(db, col, total);
    }
}

#define STAMP_LINEAR(T)                                                                          \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                   \
        linear_fwd_##T(const T* x, const T* w, const T* bias, T* y, int rows, int out_features, \
                       int in_features) {                                                        \
        linear_fwd_impl(x, w, bias, y, rows, out_features, in_features);                         \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                   \
        linear_input_bwd_##T(const T* dy, const T* w, T* dx, int rows, int out_features,        \
                             int in_features) {                                                  \
        linear_input_bwd_impl(dy, w, dx, rows, out_features, in_features);                       \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                   \
        linear_weight_bwd_##T(const T* dy, const T* x, T* dw, int rows, int out_features,       \
                              int in_features) {                                                 \
        linear_weight_bwd_impl(dy, x, dw, rows, out_features, in_features);                      \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(BIAS_COLUMNS * BIAS_ROW_GROUPS)                 \
        linear_bias_bwd_##T(const T* dy, T* db, int rows, int cols) {                            \
        linear_bias_bwd_impl(dy, db, rows, cols);                                                \
    }

// The f32 entry points are named with this typedef, so `T` spells the suffix.
typedef float f32;
STAMP_LINEAR(f32)
STAMP_LINEAR(bf16)
