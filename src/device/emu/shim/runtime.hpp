// What both execution modes share: the type-erased kernel call, the per-block memory every CUDA
// thread reaches through thread-locals, and the wording of a deadlock report. The mode itself
// (fibers.hpp or threads.hpp) provides block_barrier(), warp_barrier() and run_grid().
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "dialect.hpp"

namespace cushim {

// One kernel with its arguments bound, callable by any CUDA thread of the launch.
struct KernelCall {
    void (*invoke)(const void* bound);
    const void* bound;
    void operator()() const { invoke(bound); }
};

// Bytes each lane may publish in one warp exchange: the largest is an mma fragment set.
inline constexpr std::size_t warp_slot_bytes = 64;
inline constexpr unsigned max_threads_per_block = 1024;

// The memory of the block this OS thread is running now. Set by the mode before a block starts.
inline thread_local unsigned char* current_dynamic_shared = nullptr;
inline thread_local unsigned char* current_warp_slots = nullptr;  // [warp][lane][warp_slot_bytes]

inline void* dynamic_shared_memory() { return current_dynamic_shared; }

inline unsigned threads_in(dim3 d) { return d.x * d.y * d.z; }
inline unsigned warps_in(unsigned threads) { return (threads + 31) / 32; }
inline uint3 unflatten(unsigned i, dim3 d) { return uint3{i % d.x, (i / d.x) % d.y, i / (d.x * d.y)}; }

// Sets the built-in variables of CUDA thread `tid` of the current block.
inline void enter_thread(unsigned tid) {
    linear_thread_index = tid;
    thread_index = unflatten(tid, block_dim);
}

inline unsigned lane_id() { return linear_thread_index & 31u; }
inline unsigned warp_id() { return linear_thread_index >> 5; }
// Lanes that exist in the caller's warp: the last warp of a block whose size is not a multiple
// of 32 is short.
inline unsigned lanes_in_my_warp() { return std::min(32u, threads_in(block_dim) - warp_id() * 32u); }

// Heap memory with the alignment CUDA gives shared memory, so vector loads from it are aligned.
struct AlignedBytes {
    static constexpr std::size_t alignment = 128;
    std::unique_ptr<unsigned char, void (*)(void*)> ptr{nullptr, std::free};
    std::size_t size = 0;
    void resize(std::size_t bytes) {
        if (bytes <= size && ptr) return;
        std::size_t rounded = (std::max<std::size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
        void* p = std::aligned_alloc(alignment, rounded);
        if (!p) throw std::bad_alloc();
        ptr.reset(static_cast<unsigned char*>(p));
        size = rounded;
    }
    unsigned char* data() const { return ptr.get(); }
};

// Fills dynamic shared memory with 0xff bytes (NaN as f32 and bf16) before each block, because
// the GPU leaves there whatever the previous block wrote: a kernel that reads shared memory it
// never wrote then fails its test instead of passing by luck.
inline void poison_shared(unsigned char* p, std::size_t bytes) { std::memset(p, 0xff, bytes); }

// Where the threads of a stuck block are, for the report.
struct StuckThreads {
    unsigned total = 0, at_syncthreads = 0, at_warp_op = 0, finished = 0;
};

inline std::string deadlock_message(uint3 block, const StuckThreads& s) {
    char buf[400];
    const char* what = s.at_syncthreads && s.at_warp_op ? "a barrier"
                       : s.at_syncthreads                ? "__syncthreads"
                                                         : "a warp operation (shuffle, vote, __syncwarp, mma)";
    std::snprintf(buf, sizeof buf,
                  "deadlock in block (%u,%u,%u): %u of %u threads wait at %s that the others never reach "
                  "(%u at __syncthreads, %u at warp operations, %u returned from the kernel)",
                  block.x, block.y, block.z, s.at_syncthreads + s.at_warp_op, s.total, what, s.at_syncthreads,
                  s.at_warp_op, s.finished);
    return buf;
}

}  // namespace cushim

#ifdef CUSHIM_THREADS
#include "threads.hpp"
#else
#include "fibers.hpp"
#endif

inline void __syncthreads() { cushim::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cushim::warp_barrier(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Barrier plus a block-wide count of `predicate`. The counter is block storage like any
// __shared__ variable; thread 0 clears it before the first barrier, and the last barrier keeps
// the next call's clear from racing with this call's reads.
inline int __syncthreads_count(int predicate) {
    __shared__ int count;
    if (cushim::linear_thread_index == 0) count = 0;
    __syncthreads();
    __atomic_fetch_add(&count, predicate ? 1 : 0, __ATOMIC_RELAXED);
    __syncthreads();
    const int total = __atomic_load_n(&count, __ATOMIC_RELAXED);
    __syncthreads();
    return total;
}
inline int __syncthreads_and(int predicate) {
    return __syncthreads_count(predicate) == (int)cushim::threads_in(blockDim);
}
inline int __syncthreads_or(int predicate) { return __syncthreads_count(predicate) != 0; }
