// Fused multi-head attention for short sequences, forward and backward, non-causal and unmasked,
// with an optional RoPE prologue. Reference: src/device/cpu/attention.rs (and rope.rs for the
// prologue). Tensors are [B, S, H, hd] (flash_attn_func's layout), head dim 32 or 64, storage
// f32 or bf16, accumulation in f32. The bf16 forward runs on tensor cores (attention_fwd_tc_bf16,
// at the end of this file); the f32 forward and both backward passes use scalar FMAs. Dropout is
// not supported: the launchers reject it.
//
// Tiling. Every kernel runs 4 warps (128 threads) on a tile of 32 rows (queries in the forward and
// in the dQ pass, keys in the dK/dV pass), 8 rows per warp, and streams the other side through
// shared memory 32 rows at a time, one row per lane. 32-row tiles keep the padding waste small at
// the sequence lengths the models use (81, 97, 916: at most 31 idle rows per head, where a
// 128-row tile would idle 47 of 128 rows at S = 81), and 4 tiles per head at S = 97 still give
// B·H·4 blocks to fill the GPU at small batch.
//
// Per streamed tile, lane j scores its row against each of the warp's 8 rows (a dot product over
// hd from shared memory, the lane's row padded to hd + 1 floats so the 32 lanes hit 32 banks), the
// warp reduces across lanes (online softmax in the forward), and then lane d accumulates output
// columns d and d + 32 of the warp's 8 rows from the tile's probabilities, which the warp shares
// through its own slice of shared memory.
//
// RoPE. With a table (f32 [positions, hd/2, 2] = cos, sin of every (position, pair) angle, pairs
// rotate-half or interleaved as in rope.rs), q and k are rotated as they are loaded (in f32, then
// rounded to the storage type as the unfused rope op stores them), so the kernels compute
// attention(rope(q), rope(k), v); the backward rotates dQ and dK back (the transposed rotation)
// as they are stored. Without a table the same loaders copy.
#include "common.cuh"
#include "ptx_ops.cuh"

#define ATTENTION_THREADS 128
#define ATTENTION_WARPS 4
// Rows of the block's own tile per warp, and rows per tile (one streamed row per lane).
#define ATTENTION_ROWS_PER_WARP 8
#define ATTENTION_TILE 32

// The rope_layout argument: no rotation, NeoX rotate-half pairs (x[j], x[j + hd/2]), or
// interleaved pairs (x[2j], x[2j + 1]).
#define ATTENTION_ROPE_NONE 0
#define ATTENTION_ROPE_ROTATE_HALF 1
#define ATTENTION_ROPE_INTERLEAVED 2

// Where one (batch, head) of a [B, S, H, hd] tensor lives: element (token, c) is at
// base + token·token_stride + c.
struct HeadView {
    long long base, token_stride;
    int seq;
};

__device__ __forceinline__ HeadView head_view(int bh, int seq, int heads, int head_dim) {
    const int b = bh / heads, h = bh - b * heads;
    HeadView view;
    view.base = ((long long)b * seq * heads + h) * head_dim;
    view.token_stride = (long long)heads * head_dim;
    view.seq = seq;
    return view;
}

// The coordinates of rotation pair j within a head of HD values.
template <int HD>
__device__ __forceinline__ void rope_pair(int layout, int j, int& first, int& second) {
    if (layout == ATTENTION_ROPE_INTERLEAVED) {
        first = 2 * j;
        second = 2 * j + 1;
    } else {
        first = j;
        second = j + HD / 2;
    }
}

// A value rounded to storage type T and widened back (the identity for f32).
template <typename T>
__device__ __forceinline__ float round_to_storage(float x);
template <>
__device__ __forceinline__ float round_to_storage<float>(float x) { return x; }
template <>
__device__ __forceinline__ float round_to_storage<bf16>(float x) { return bf16_to_float(float_to_bf16(x)); }

// Copies rows [row0, row0 + 32) of one head into shared memory (row stride `stride` floats),
// rotated by the RoPE table when there is one (and rounded to T, see below), then multiplied by
// `factor`. Rows past the sequence are zeros. All threads of the block take part.
template <int HD, typename T>
__device__ __forceinline__ void load_tile(float* tile, int stride, const T* __restrict__ x,
                                          HeadView view, int row0, float factor,
                                          const float* __restrict__ rope, int rope_layout) {
    for (int e = threadIdx.x; e < ATTENTION_TILE * (HD / 2); e += ATTENTION_THREADS) {
        const int row = e / (HD / 2), pair = e - row * (HD / 2), token = row0 + row;
        int first, second;
        rope_pair<HD>(rope_layout, pair, first, second);
        float a = 0.0f, b = 0.0f;
        if (token < view.seq) {
            const long long at = view.base + token * view.token_stride;
            a = load_f32(x, at + first);
            b = load_f32(x, at + second);
            if (rope_layout != ATTENTION_ROPE_NONE) {
                const float cos_phi = rope[((long long)token * (HD / 2) + pair) * 2];
                const float sin_phi = rope[((long long)token * (HD / 2) + pair) * 2 + 1];
                // Rounded to the storage type, as the unfused rope op stores them (and as the
                // tensor-core forward holds them), so forward and backward see the same q and k.
                const float rotated_a = round_to_storage<T>(a * cos_phi - b * sin_phi);
                b = round_to_storage<T>(a * sin_phi + b * cos_phi);
                a = rotated_a;
            }
            a *= factor;
            b *= factor;
        }
        tile[row * stride + first] = a;
        tile[row * stride + second] = b;
    }
}

// Stores column d of a row staged in shared memory to `out` at `at + d`, rotated back by the
// transposed RoPE rotation of position `token` when there is a table (the backward of the
// prologue), as is otherwise.
template <int HD, typename T>
__device__ __forceinline__ void store_unrotated(T* __restrict__ out, long long at, const float* staged,
                                                int d, int token, const float* __restrict__ rope,
                                                int rope_layout) {
    if (rope_layout == ATTENTION_ROPE_NONE) {
        store_f32(out, at + d, staged[d]);
        return;
    }
    const bool interleaved = rope_layout == ATTENTION_ROPE_INTERLEAVED;
    const int pair = interleaved ? d / 2 : d % (HD / 2);
    const bool is_first = interleaved ? (d % 2 == 0) : (d < HD / 2);
    int first, second;
    rope_pair<HD>(rope_layout, pair, first, second);
    const float cos_phi = rope[((long long)token * (HD / 2) + pair) * 2];
    const float sin_phi = -rope[((long long)token * (HD / 2) + pair) * 2 + 1];
    const float a = staged[first], b = staged[second];
    store_f32(out, at + d, is_first ? a * cos_phi - b * sin_phi : a * sin_phi + b * cos_phi);
}

// The dot product of two HD-float rows in shared memory.
template <int HD>
__device__ __forceinline__ float dot_row(const float* a, const float* b) {
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < HD; ++c) sum = fmaf(a[c], b[c], sum);
    return sum;
}

// rowsum(dO ⊙ O) of query `token` (lane-partial over columns lane + 32c, then the warp's sum);
// 0 past the sequence. The whole warp calls it.
template <int HD, typename T>
__device__ __forceinline__ float output_grad_dot(const float* dout_row, const T* __restrict__ out,
                                                 HeadView view, int token) {
    const int lane = threadIdx.x & 31;
    float partial = 0.0f;
    if (token < view.seq) {
        const long long at = view.base + token * view.token_stride;
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) partial += dout_row[lane + 32 * c] * load_f32(out, at + lane + 32 * c);
    }
    return warp_sum(partial);
}

// ---------------------------------------------------------------------------------------------
// Forward: one block per (batch·head, 32-query tile); O and the row log-sum-exp (f32 [B, H, S]).
// Shared memory: q [32][HD] (scaled), k [32][HD + 1], v [32][HD], probabilities [4][8][32].
template <typename T, int HD>
__device__ __forceinline__ void attention_fwd_tile(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                   T* __restrict__ out, float* __restrict__ lse, const float* __restrict__ rope,
                                   int seq, int heads, float scale, int rope_layout) {
    extern __shared__ float attention_smem[];
    float* q_tile = attention_smem;
    float* k_tile = q_tile + ATTENTION_TILE * HD;
    float* v_tile = k_tile + ATTENTION_TILE * (HD + 1);
    float* probs = v_tile + ATTENTION_TILE * HD;

    const int tiles = (seq + ATTENTION_TILE - 1) / ATTENTION_TILE;
    const int bh = blockIdx.x / tiles, q0 = (blockIdx.x - bh * tiles) * ATTENTION_TILE;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const HeadView view = head_view(bh, seq, heads, HD);
    float* warp_probs = probs + warp * ATTENTION_ROWS_PER_WARP * ATTENTION_TILE;
    const float* warp_q = q_tile + warp * ATTENTION_ROWS_PER_WARP * HD;

    load_tile<HD>(q_tile, HD, q, view, q0, scale, rope, rope_layout);

    float acc[ATTENTION_ROWS_PER_WARP][HD / 32];
    float row_max[ATTENTION_ROWS_PER_WARP], row_sum[ATTENTION_ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
        row_max[r] = __int_as_float(0xff800000);  // -inf
        row_sum[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) acc[r][c] = 0.0f;
    }

    for (int k0 = 0; k0 < seq; k0 += ATTENTION_TILE) {
        __syncthreads();  // every warp is done with the previous k and v tiles
        load_tile<HD>(k_tile, HD + 1, k, view, k0, 1.0f, rope, rope_layout);
        load_tile<HD>(v_tile, HD, v, view, k0, 1.0f, rope, ATTENTION_ROPE_NONE);
        __syncthreads();
        const bool key_valid = k0 + lane < seq;
#pragma unroll
        for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
            float score = dot_row<HD>(warp_q + r * HD, k_tile + lane * (HD + 1));
            score = key_valid ? score : __int_as_float(0xff800000);
            // Online softmax: every tile holds a valid key, so the new maximum is finite.
            const float new_max = fmaxf(row_max[r], warp_max(score));
            const float p = expf(score - new_max);
            const float correction = expf(row_max[r] - new_max);
            row_sum[r] = row_sum[r] * correction + warp_sum(p);
            row_max[r] = new_max;
#pragma unroll
            for (int c = 0; c < HD / 32; ++c) acc[r][c] *= correction;
            warp_probs[r * ATTENTION_TILE + lane] = p;
        }
        __syncwarp();
        for (int j = 0; j < ATTENTION_TILE; ++j) {
#pragma unroll
            for (int c = 0; c < HD / 32; ++c) {
                const float value = v_tile[j * HD + lane + 32 * c];
#pragma unroll
                for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r)
                    acc[r][c] = fmaf(warp_probs[r * ATTENTION_TILE + j], value, acc[r][c]);
            }
        }
        __syncwarp();  // the probabilities are read before the next tile overwrites them
    }

#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
        const int token = q0 + warp * ATTENTION_ROWS_PER_WARP + r;
        if (token >= seq) continue;
        // row_sum is in [1, S]: the approximate reciprocal (2 ulp) is exact enough and avoids
        // the IEEE division's slow-path subroutine, whose call spills registers.
        const float inv_sum = __fdividef(1.0f, row_sum[r]);
        const long long at = view.base + token * view.token_stride;
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) store_f32(out, at + lane + 32 * c, acc[r][c] * inv_sum);
        if (lane == 0) lse[(long long)bh * seq + token] = row_max[r] + logf(row_sum[r]);
    }
}

template <typename T>
__device__ __forceinline__ void attention_fwd_impl(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                   T* __restrict__ out, float* __restrict__ lse, const float* __restrict__ rope,
                                   int seq, int heads, int head_dim, float scale, int rope_layout) {
    if (head_dim == 64)
        attention_fwd_tile<T, 64>(q, k, v, out, lse, rope, seq, heads, scale, rope_layout);
    else
        attention_fwd_tile<T, 32>(q, k, v, out, lse, rope, seq, heads, scale, rope_layout);
}

// ---------------------------------------------------------------------------------------------
// Backward, pass 1: dQ. One block per (batch·head, 32-query tile); streams k and v, recomputes
// P = exp(scale·q·kᵀ − lse), dP = dO·vᵀ, dS = P ⊙ (dP − D) with D = rowsum(dO ⊙ O), and
// accumulates dQ = scale·dS·K. Shared memory: q [32][HD] (scaled), dO [32][HD], k and v
// [32][HD + 1], dS [4][8][32].
template <typename T, int HD>
__device__ __forceinline__ void attention_bwd_dq_tile(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                                      const T* __restrict__ v, const T* __restrict__ out,
                                      const float* __restrict__ lse, T* __restrict__ dq,
                                      const float* __restrict__ rope, int seq, int heads, float scale,
                                      int rope_layout) {
    extern __shared__ float attention_smem[];
    float* q_tile = attention_smem;
    float* dout_tile = q_tile + ATTENTION_TILE * HD;
    float* k_tile = dout_tile + ATTENTION_TILE * HD;
    float* v_tile = k_tile + ATTENTION_TILE * (HD + 1);
    float* d_scores = v_tile + ATTENTION_TILE * (HD + 1);

    const int tiles = (seq + ATTENTION_TILE - 1) / ATTENTION_TILE;
    const int bh = blockIdx.x / tiles, q0 = (blockIdx.x - bh * tiles) * ATTENTION_TILE;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warp_row0 = warp * ATTENTION_ROWS_PER_WARP;
    const HeadView view = head_view(bh, seq, heads, HD);
    float* warp_ds = d_scores + warp_row0 * ATTENTION_TILE;

    load_tile<HD>(q_tile, HD, q, view, q0, scale, rope, rope_layout);
    load_tile<HD>(dout_tile, HD, dout, view, q0, 1.0f, rope, ATTENTION_ROPE_NONE);
    __syncthreads();

    float row_lse[ATTENTION_ROWS_PER_WARP], row_delta[ATTENTION_ROWS_PER_WARP];
    float acc[ATTENTION_ROWS_PER_WARP][HD / 32];
#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
        const int token = q0 + warp_row0 + r;
        row_lse[r] = token < seq ? lse[(long long)bh * seq + token] : 0.0f;
        row_delta[r] = output_grad_dot<HD>(dout_tile + (warp_row0 + r) * HD, out, view, token);
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) acc[r][c] = 0.0f;
    }

    for (int k0 = 0; k0 < seq; k0 += ATTENTION_TILE) {
        __syncthreads();
        load_tile<HD>(k_tile, HD + 1, k, view, k0, 1.0f, rope, rope_layout);
        load_tile<HD>(v_tile, HD + 1, v, view, k0, 1.0f, rope, ATTENTION_ROPE_NONE);
        __syncthreads();
        const bool key_valid = k0 + lane < seq;
#pragma unroll
        for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
            const int row = warp_row0 + r;
            const float score = dot_row<HD>(q_tile + row * HD, k_tile + lane * (HD + 1));
            const float p = key_valid ? expf(score - row_lse[r]) : 0.0f;
            const float dp = dot_row<HD>(dout_tile + row * HD, v_tile + lane * (HD + 1));
            warp_ds[r * ATTENTION_TILE + lane] = p * (dp - row_delta[r]);
        }
        __syncwarp();
        // Unrolled by 2, and the store loop below not at all: with more unrolling ptxas spills a
        // few bytes at 72-80 registers (checked on sm_80 and sm_90 by the kernel gate).
#pragma unroll 2
        for (int j = 0; j < ATTENTION_TILE; ++j) {
#pragma unroll
            for (int c = 0; c < HD / 32; ++c) {
                const float key = k_tile[j * (HD + 1) + lane + 32 * c];
#pragma unroll
                for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r)
                    acc[r][c] = fmaf(warp_ds[r * ATTENTION_TILE + j], key, acc[r][c]);
            }
        }
        __syncwarp();
    }

    // Stage the warp's dQ rows in its own rows of q_tile (no other warp reads them), then store
    // each column, rotated back when the prologue rotated q.
#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) q_tile[(warp_row0 + r) * HD + lane + 32 * c] = acc[r][c] * scale;
    }
    __syncwarp();
#pragma unroll 1
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
        const int token = q0 + warp_row0 + r;
        if (token >= seq) continue;
        const long long at = view.base + token * view.token_stride;
#pragma unroll
        for (int c = 0; c < HD / 32; ++c)
            store_unrotated<HD>(dq, at, q_tile + (warp_row0 + r) * HD, lane + 32 * c, token, rope, rope_layout);
    }
}

// Backward, pass 2: dK and dV. One block per (batch·head, 32-key tile); streams q, dO, lse and D
// (recomputed per query tile, so the passes share no scratch and run in either order), and
// accumulates dV = Pᵀ·dO and dK = scale·dSᵀ·Q per key row: no atomics, deterministic.
// Shared memory: k, v [32][HD], q (scaled) and dO [32][HD + 1], lse and D [32], P and dS
// [4][8][32] each.
template <typename T, int HD>
__device__ __forceinline__ void attention_bwd_dkv_tile(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                                       const T* __restrict__ v, const T* __restrict__ out,
                                       const float* __restrict__ lse, T* __restrict__ dk, T* __restrict__ dv,
                                       const float* __restrict__ rope, int seq, int heads, float scale,
                                       int rope_layout) {
    extern __shared__ float attention_smem[];
    float* k_tile = attention_smem;
    float* v_tile = k_tile + ATTENTION_TILE * HD;
    float* q_tile = v_tile + ATTENTION_TILE * HD;
    float* dout_tile = q_tile + ATTENTION_TILE * (HD + 1);
    float* lse_tile = dout_tile + ATTENTION_TILE * (HD + 1);
    float* delta_tile = lse_tile + ATTENTION_TILE;
    float* probs = delta_tile + ATTENTION_TILE;
    float* d_scores = probs + ATTENTION_TILE * ATTENTION_TILE;

    const int tiles = (seq + ATTENTION_TILE - 1) / ATTENTION_TILE;
    const int bh = blockIdx.x / tiles, k0 = (blockIdx.x - bh * tiles) * ATTENTION_TILE;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warp_row0 = warp * ATTENTION_ROWS_PER_WARP;
    const HeadView view = head_view(bh, seq, heads, HD);
    float* warp_probs = probs + warp_row0 * ATTENTION_TILE;
    float* warp_ds = d_scores + warp_row0 * ATTENTION_TILE;

    load_tile<HD>(k_tile, HD, k, view, k0, 1.0f, rope, rope_layout);
    load_tile<HD>(v_tile, HD, v, view, k0, 1.0f, rope, ATTENTION_ROPE_NONE);

    float dk_acc[ATTENTION_ROWS_PER_WARP][HD / 32], dv_acc[ATTENTION_ROWS_PER_WARP][HD / 32];
#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) dk_acc[r][c] = dv_acc[r][c] = 0.0f;
    }

    for (int q0 = 0; q0 < seq; q0 += ATTENTION_TILE) {
        __syncthreads();
        load_tile<HD>(q_tile, HD + 1, q, view, q0, scale, rope, rope_layout);
        load_tile<HD>(dout_tile, HD + 1, dout, view, q0, 1.0f, rope, ATTENTION_ROPE_NONE);
        if (threadIdx.x < ATTENTION_TILE) {
            const int token = q0 + threadIdx.x;
            // Past the sequence q and dO are zeros, so lse = 0 and D = 0 make P·dO and dS zero.
            lse_tile[threadIdx.x] = token < seq ? lse[(long long)bh * seq + token] : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
            const int row = warp_row0 + r;
            const float delta = output_grad_dot<HD>(dout_tile + row * (HD + 1), out, view, q0 + row);
            if (lane == 0) delta_tile[row] = delta;
        }
        __syncthreads();
        const float query_lse = lse_tile[lane], query_delta = delta_tile[lane];
#pragma unroll
        for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
            const int row = warp_row0 + r;
            const float score = dot_row<HD>(q_tile + lane * (HD + 1), k_tile + row * HD);
            const float p = expf(score - query_lse);
            const float dp = dot_row<HD>(dout_tile + lane * (HD + 1), v_tile + row * HD);
            warp_probs[r * ATTENTION_TILE + lane] = p;
            warp_ds[r * ATTENTION_TILE + lane] = p * (dp - query_delta);
        }
        __syncwarp();
        for (int j = 0; j < ATTENTION_TILE; ++j) {
#pragma unroll
            for (int c = 0; c < HD / 32; ++c) {
                const float grad_out = dout_tile[j * (HD + 1) + lane + 32 * c];
                const float query = q_tile[j * (HD + 1) + lane + 32 * c];
#pragma unroll
                for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
                    dv_acc[r][c] = fmaf(warp_probs[r * ATTENTION_TILE + j], grad_out, dv_acc[r][c]);
                    dk_acc[r][c] = fmaf(warp_ds[r * ATTENTION_TILE + j], query, dk_acc[r][c]);
                }
            }
        }
        __syncwarp();
    }

    // q_tile was scaled on load, so dk_acc is already scale·dSᵀ·Q. Stage the warp's dK rows in
    // its own rows of k_tile, then store them rotated back.
#pragma unroll
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) k_tile[(warp_row0 + r) * HD + lane + 32 * c] = dk_acc[r][c];
    }
    __syncwarp();
    for (int r = 0; r < ATTENTION_ROWS_PER_WARP; ++r) {
        const int token = k0 + warp_row0 + r;
        if (token >= seq) continue;
        const long long at = view.base + token * view.token_stride;
#pragma unroll
        for (int c = 0; c < HD / 32; ++c) {
            store_unrotated<HD>(dk, at, k_tile + (warp_row0 + r) * HD, lane + 32 * c, token, rope, rope_layout);
            store_f32(dv, at + lane + 32 * c, dv_acc[r][c]);
        }
    }
}

template <typename T>
__device__ __forceinline__ void attention_bwd_dq_impl(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                                      const T* __restrict__ v, const T* __restrict__ out,
                                      const float* __restrict__ lse, T* __restrict__ dq,
                                      const float* __restrict__ rope, int seq, int heads, int head_dim,
                                      float scale, int rope_layout) {
    if (head_dim == 64)
        attention_bwd_dq_tile<T, 64>(dout, q, k, v, out, lse, dq, rope, seq, heads, scale, rope_layout);
    else
        attention_bwd_dq_tile<T, 32>(dout, q, k, v, out, lse, dq, rope, seq, heads, scale, rope_layout);
}

template <typename T>
__device__ __forceinline__ void attention_bwd_dkv_impl(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k,
                                       const T* __restrict__ v, const T* __restrict__ out,
                                       const float* __restrict__ lse, T* __restrict__ dk, T* __restrict__ dv,
                                       const float* __restrict__ rope, int seq, int heads, int head_dim,
                                       float scale, int rope_layout) {
    if (head_dim == 64)
        attention_bwd_dkv_tile<T, 64>(dout, q, k, v, out, lse, dk, dv, rope, seq, heads, scale, rope_layout);
    else
        attention_bwd_dkv_tile<T, 32>(dout, q, k, v, out, lse, dk, dv, rope, seq, heads, scale, rope_layout);
}

#define ATTENTION_FWD_PARAMS(T)                                                                     \
    (const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ out, \
     float* __restrict__ lse, const float* __restrict__ rope, int seq, int heads, int head_dim, float scale, \
     int rope_layout)
#define ATTENTION_BWD_DQ_PARAMS(T)                                                                  \
    (const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, \
     const T* __restrict__ out, const float* __restrict__ lse, T* __restrict__ dq, const float* __restrict__ rope, \
     int seq, int heads, int head_dim, float scale, int rope_layout)
#define ATTENTION_BWD_DKV_PARAMS(T)                                                                 \
    (const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, \
     const T* __restrict__ out, const float* __restrict__ lse, T* __restrict__ dk, T* __restrict__ dv,      \
     const float* __restrict__ rope, int seq, int heads, int head_dim, float scale, int rope_layout)

// The scalar forward serves f32 only; bf16 storage runs on tensor cores (attention_fwd_tc_bf16).
extern "C" __global__ void __launch_bounds__(ATTENTION_THREADS)
    attention_fwd_f32 ATTENTION_FWD_PARAMS(float) {
    attention_fwd_impl<float>(q, k, v, out, lse, rope, seq, heads, head_dim, scale, rope_layout);
}
STAMP_F32_BF16(attention_bwd_dq, ATTENTION_THREADS, ATTENTION_BWD_DQ_PARAMS,
               (dout, q, k, v, out, lse, dq, rope, seq, heads, head_dim, scale, rope_layout))
STAMP_F32_BF16(attention_bwd_dkv, ATTENTION_THREADS, ATTENTION_BWD_DKV_PARAMS,
               (dout, q, k, v, out, lse, dk, dv, rope, seq, heads, head_dim, scale, rope_layout))

// ---------------------------------------------------------------------------------------------
// Forward on tensor cores, bf16 storage: the same grid (one block per (batch·head, 32-query
// tile)) with 2 warps of 16 query rows each. Q·Kᵀ and P·V are mma.m16n8k16 (bf16 operands, f32
// accumulation) on operands loaded by ldmatrix from bf16 tiles in shared memory, rows padded to
// HD + 8 halves (16-byte aligned rows, conflict-free ldmatrix). The score fragments are rescaled
// in registers (online softmax over the quad of lanes that shares a row) and become P·V's A
// fragments directly, rounded to bf16.
#define ATTENTION_TC_THREADS 64

// Copies rows [row0, row0 + 32) of one head into a bf16 tile (row stride `stride` halves),
// rotated by the RoPE table when there is one (in f32, then rounded); zeros past the sequence.
template <int HD>
__device__ __forceinline__ void load_tile_bf16(bf16* tile, int stride, const bf16* __restrict__ x, HeadView view,
                                               int row0, const float* __restrict__ rope, int rope_layout) {
    for (int e = threadIdx.x; e < ATTENTION_TILE * (HD / 2); e += ATTENTION_TC_THREADS) {
        const int row = e / (HD / 2), pair = e - row * (HD / 2), token = row0 + row;
        int first, second;
        rope_pair<HD>(rope_layout, pair, first, second);
        bf16 a = 0, b = 0;
        if (token < view.seq) {
            const long long at = view.base + token * view.token_stride;
            a = x[at + first];
            b = x[at + second];
            if (rope_layout != ATTENTION_ROPE_NONE) {
                const float cos_phi = rope[((long long)token * (HD / 2) + pair) * 2];
                const float sin_phi = rope[((long long)token * (HD / 2) + pair) * 2 + 1];
                const float fa = bf16_to_float(a), fb = bf16_to_float(b);
                a = float_to_bf16(fa * cos_phi - fb * sin_phi);
                b = float_to_bf16(fa * sin_phi + fb * cos_phi);
            }
        }
        tile[row * stride + first] = a;
        tile[row * stride + second] = b;
    }
}

// Two f32 values as one register of two bf16, the lower-indexed in the low half.
__device__ __forceinline__ unsigned pack_bf16x2(float low, float high) {
    return (unsigned)float_to_bf16(low) | ((unsigned)float_to_bf16(high) << 16);
}

template <int HD>
__device__ __forceinline__ void attention_fwd_tc_tile(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                      const bf16* __restrict__ v, bf16* __restrict__ out,
                                                      float* __restrict__ lse, const float* __restrict__ rope,
                                                      int seq, int heads, float scale, int rope_layout) {
    extern __shared__ bf16 attention_tc_smem[];
    constexpr int stride = HD + 8;
    bf16* q_tile = attention_tc_smem;
    bf16* k_tile = q_tile + ATTENTION_TILE * stride;
    bf16* v_tile = k_tile + ATTENTION_TILE * stride;

    const int tiles = (seq + ATTENTION_TILE - 1) / ATTENTION_TILE;
    const int bh = blockIdx.x / tiles, q0 = (blockIdx.x - bh * tiles) * ATTENTION_TILE;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane / 4, t = lane % 4;
    const HeadView view = head_view(bh, seq, heads, HD);
    const bf16* warp_q = q_tile + warp * 16 * stride;

    load_tile_bf16<HD>(q_tile, stride, q, view, q0, rope, rope_layout);

    // Rows g (index 0) and g + 8 (index 1) of the warp's 16: running max, lane-partial sum.
    float row_max[2] = {__int_as_float(0xff800000), __int_as_float(0xff800000)};
    float row_sum[2] = {0.0f, 0.0f};
    float acc[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

    for (int k0 = 0; k0 < seq; k0 += ATTENTION_TILE) {
        __syncthreads();
        load_tile_bf16<HD>(k_tile, stride, k, view, k0, rope, rope_layout);
        load_tile_bf16<HD>(v_tile, stride, v, view, k0, rope, ATTENTION_ROPE_NONE);
        __syncthreads();

        // Scores: 16 rows × 32 keys = 4 n-tiles of 8 keys.
        float score[4][4];
#pragma unroll
        for (int n = 0; n < 4; ++n) score[n][0] = score[n][1] = score[n][2] = score[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
            unsigned a[4];
            ldmatrix_x4(a, warp_q + (lane % 16) * stride + kk * 16 + (lane / 16) * 8);
#pragma unroll
            for (int n = 0; n < 4; n += 2) {
                // Keys n·8.. and (n + 1)·8.., columns kk·16 and kk·16 + 8: two n-tiles' b.
                unsigned b[4];
                const int m = lane / 8;
                ldmatrix_x4(b, k_tile + (n * 8 + 8 * (m / 2) + lane % 8) * stride + kk * 16 + 8 * (m % 2));
                mma_m16n8k16_bf16(score[n], a, b, score[n]);
                mma_m16n8k16_bf16(score[n + 1], a, b + 2, score[n + 1]);
            }
        }

        // Online softmax on the fragments: element i of n-tile n is row g + 8·(i / 2), key
        // k0 + 8n + 2t + i % 2; the 4 lanes of a quad hold a row's 32 keys.
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float tile_max = __int_as_float(0xff800000);
#pragma unroll
            for (int n = 0; n < 4; ++n) {
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    const bool valid = k0 + 8 * n + 2 * t + i < seq;
                    float& s = score[n][2 * half + i];
                    s = valid ? s * scale : __int_as_float(0xff800000);
                    tile_max = fmaxf(tile_max, s);
                }
            }
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
            const float new_max = fmaxf(row_max[half], tile_max);
            const float correction = expf(row_max[half] - new_max);
            float partial = 0.0f;
#pragma unroll
            for (int n = 0; n < 4; ++n) {
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                    float& s = score[n][2 * half + i];
                    s = expf(s - new_max);
                    partial += s;
                }
            }
            row_sum[half] = row_sum[half] * correction + partial;
            row_max[half] = new_max;
#pragma unroll
            for (int n = 0; n < HD / 8; ++n) {
                acc[n][2 * half] *= correction;
                acc[n][2 * half + 1] *= correction;
            }
        }

        // O += P·V: P's fragments are the A operand (keys 16kk.. as two n-tiles), V's rows the
        // B operand through ldmatrix .trans.
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
            const unsigned a[4] = {pack_bf16x2(score[2 * kk][0], score[2 * kk][1]),
                                   pack_bf16x2(score[2 * kk][2], score[2 * kk][3]),
                                   pack_bf16x2(score[2 * kk + 1][0], score[2 * kk + 1][1]),
                                   pack_bf16x2(score[2 * kk + 1][2], score[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < HD / 8; n += 2) {
                unsigned b[4];
                const int m = lane / 8;
                ldmatrix_x4_trans(b, v_tile + (kk * 16 + 8 * (m % 2) + lane % 8) * stride + n * 8 + 8 * (m / 2));
                mma_m16n8k16_bf16(acc[n], a, b, acc[n]);
                mma_m16n8k16_bf16(acc[n + 1], a, b + 2, acc[n + 1]);
            }
        }
    }

#pragma unroll
    for (int half = 0; half < 2; ++half) {
        float total = row_sum[half];
        total += __shfl_xor_sync(0xffffffffu, total, 1);
        total += __shfl_xor_sync(0xffffffffu, total, 2);
        const int token = q0 + warp * 16 + g + 8 * half;
        if (token >= seq) continue;
        // total is in [1, S]: see the scalar forward on __fdividef.
        const float inv_sum = __fdividef(1.0f, total);
        const long long at = view.base + token * view.token_stride;
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) {
            out[at + 8 * n + 2 * t] = float_to_bf16(acc[n][2 * half] * inv_sum);
            out[at + 8 * n + 2 * t + 1] = float_to_bf16(acc[n][2 * half + 1] * inv_sum);
        }
        if (t == 0) lse[(long long)bh * seq + token] = row_max[half] + logf(total);
    }
}

extern "C" __global__ void __launch_bounds__(ATTENTION_TC_THREADS)
    attention_fwd_tc_bf16 ATTENTION_FWD_PARAMS(bf16) {
    if (head_dim == 64)
        attention_fwd_tc_tile<64>(q, k, v, out, lse, rope, seq, heads, scale, rope_layout);
    else
        attention_fwd_tc_tile<32>(q, k, v, out, lse, rope, seq, heads, scale, rope_layout);
}
