// A plain device-to-device copy: the memory-bandwidth ceiling every memory-bound kernel is
// measured against (`recur bench`). 16-byte vector loads, then a byte tail; both buffers come
// from a backend allocator, which aligns them to at least 16 bytes.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256) copy_bytes(
    unsigned char* __restrict__ dst, const unsigned char* __restrict__ src, long long n) {
    const long long vectors = n / 16;
    uint4* d = (uint4*)dst;
    const uint4* s = (const uint4*)src;
    for (long long i = global_thread_index(); i < vectors; i += grid_stride()) d[i] = s[i];
    for (long long i = vectors * 16 + global_thread_index(); i < n; i += grid_stride()) dst[i] = src[i];
}
