// Embedding tables: the dense lookup (`CastedEmbedding`) forward and backward, and the backward of
// the sparse puzzle-identifier table (`CastedSparseEmbedding`), whose forward is the same lookup.
// CPU references: src/device/cpu/embedding.rs and src/device/cpu/sparse_embedding.rs.
//
// Ids are never checked on the host (that would need a copy back and a synchronisation inside a
// training step). Instead no kernel here reads or writes outside a table: an id outside
// 0..vocab gives a NaN row in the forward, so a bad id cannot go unnoticed, and is skipped by the
// backward and by the sparse optimizer.
#include "common.cuh"

#define EMBEDDING_THREADS 256

__device__ __forceinline__ bool id_in_table(int id, int vocab) { return id >= 0 && id < vocab; }

// out[p, c] = table[ids[p], c] for `positions` ids and rows of width `dim`. One thread per output
// element (grid-stride), so neighbouring threads copy neighbouring columns of one row.
template <typename T>
__device__ void embedding_fwd_impl(const int* ids, const T* table, T* out, long long positions,
                                   int dim, int vocab) {
    const long long total = positions * dim;
    for (long long i = global_thread_index(); i < total; i += grid_stride()) {
        const long long p = i / dim;
        const int c = (int)(i - p * dim);
        const int id = ids[p];
        if (id_in_table(id, vocab)) {
            out[i] = table[(long long)id * dim + c];
        } else {
            store_f32(out, i, __int_as_float(0x7fc00000));  // NaN marks the bad id
        }
    }
}

// dtable[ids[p], c] += dy[p, c] into an f32 table gradient that the caller zeroed. Positions that
// share an id meet in atomicAdd, so the order of their additions (and the last bits of the sum)
// depends on the schedule: the result is not bitwise deterministic. The CPU reference sums in
// position order in f64; the f32 tolerance of the tests (rel L2 < 1e-5) covers the reordering,
// whose error is a few f32 ulps per addition.
template <typename T>
__device__ void embedding_bwd_impl(const int* ids, const T* dy, float* dtable, long long positions,
                                   int dim, int vocab) {
    const long long total = positions * dim;
    for (long long i = global_thread_index(); i < total; i += grid_stride()) {
        const long long p = i / dim;
        const int c = (int)(i - p * dim);
        const int id = ids[p];
        if (id_in_table(id, vocab)) atomicAdd(&dtable[(long long)id * dim + c], load_f32(dy, i));
    }
}

// Sets the table gradient to zero before `embedding_bwd` accumulates into it.
extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    embedding_bwd_clear_f32(float* dtable, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) dtable[i] = 0.0f;
}

// The sparse table's backward, without sorting: the official optimizer's `unique(ids)` +
// `scatter_add_` laid out by position. For each position p (one block each), if p is the first
// occurrence of its id, out_ids[p] = ids[p] and sums[p, :] is the sum of the gradient rows of every
// position carrying that id, added in order of appearance as the reference does (so f32 sums match
// it bit for bit). Later occurrences get out_ids[p] = -1 and a zero row. The result has a fixed
// size [n], so nothing waits on the host, and each id appears at most once among `out_ids`: the
// sparse optimizer can update rows without atomics.
template <typename T>
__device__ void sparse_embedding_bwd_impl(const int* ids, const T* rows, int* out_ids, float* sums,
                                          int n, int dim) {
    __shared__ float scratch[32];
    const int p = blockIdx.x;
    const int id = ids[p];
    float earlier = 0.0f;  // how many earlier positions carry this id (this thread's share)
    for (int q = threadIdx.x; q < p; q += blockDim.x) earlier += ids[q] == id ? 1.0f : 0.0f;
    const bool first = block_sum(earlier, scratch) == 0.0f;
    if (threadIdx.x == 0) out_ids[p] = first ? id : -1;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        float acc = 0.0f;
        if (first) {
            for (int q = p; q < n; ++q) {
                if (ids[q] == id) acc += load_f32(rows, (long long)q * dim + c);
            }
        }
        sums[(long long)p * dim + c] = acc;
    }
}

extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    embedding_fwd_f32(const int* ids, const float* table, float* out, long long positions, int dim,
                      int vocab) {
    embedding_fwd_impl(ids, table, out, positions, dim, vocab);
}
extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    embedding_fwd_bf16(const int* ids, const bf16* table, bf16* out, long long positions, int dim,
                       int vocab) {
    embedding_fwd_impl(ids, table, out, positions, dim, vocab);
}

extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    embedding_bwd_f32(const int* ids, const float* dy, float* dtable, long long positions, int dim,
                      int vocab) {
    embedding_bwd_impl(ids, dy, dtable, positions, dim, vocab);
}
extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    embedding_bwd_bf16(const int* ids, const bf16* dy, float* dtable, long long positions, int dim,
                       int vocab) {
    embedding_bwd_impl(ids, dy, dtable, positions, dim, vocab);
}

extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    sparse_embedding_bwd_f32(const int* ids, const float* rows, int* out_ids, float* sums, int n,
                             int dim) {
    sparse_embedding_bwd_impl(ids, rows, out_ids, sums, n, dim);
}
extern "C" __global__ void __launch_bounds__(EMBEDDING_THREADS)
    sparse_embedding_bwd_bf16(const int* ids, const bf16* rows, int* out_ids, float* sums, int n,
                              int dim) {
    sparse_embedding_bwd_impl(ids, rows, out_ids, sums, n, dim);
}
