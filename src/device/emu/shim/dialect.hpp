// The language surface of CUDA C that is not a function: qualifiers, built-in vector types, and
// the built-in variables threadIdx / blockIdx / blockDim / gridDim.
#pragma once

#include <cstddef>
#include <cstdint>

// Kernels test this to leave out GPU-only code (inline PTX, tensor cores) or to pick an emulation.
#define SHIM_CPU 1

// Execution-space qualifiers mean nothing on the CPU.
#define __global__
#define __device__
#define __host__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ static
// g++ understands __restrict__ itself.

// Static shared memory belongs to the block. In fiber mode one OS thread runs one block at a time
// (its fibers share the OS thread's storage), and in thread mode blocks run one after another, so
// a function-local static of the right storage duration is exactly one copy per running block.
#ifdef CUSHIM_THREADS
#define __shared__ static
#else
#define __shared__ static thread_local
#endif
// `extern __shared__ T name[];` cannot be expressed by a macro; build.rs rewrites that one line to
// `T* name = reinterpret_cast<T*>(::cushim::dynamic_shared_memory());`.

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Vector types with CUDA's alignment, so `reinterpret_cast<const float4*>(p)` loads keep their
// alignment contract (the host buffers Emu allocates are 16-byte aligned).
#define CUSHIM_VECTOR_TYPES(T, name)                                                     \
    struct alignas(2 * sizeof(T)) name##2 { T x, y; };                                  \
    struct name##3 { T x, y, z; };                                                      \
    struct alignas(4 * sizeof(T) > 16 ? 16 : 4 * sizeof(T)) name##4 { T x, y, z, w; };  \
    inline name##2 make_##name##2(T x, T y) { return {x, y}; }                           \
    inline name##3 make_##name##3(T x, T y, T z) { return {x, y, z}; }                   \
    inline name##4 make_##name##4(T x, T y, T z, T w) { return {x, y, z, w}; }
CUSHIM_VECTOR_TYPES(float, float)
CUSHIM_VECTOR_TYPES(int, int)
CUSHIM_VECTOR_TYPES(unsigned int, uint)
CUSHIM_VECTOR_TYPES(unsigned short, ushort)
CUSHIM_VECTOR_TYPES(short, short)
CUSHIM_VECTOR_TYPES(double, double)
CUSHIM_VECTOR_TYPES(long long, longlong)
CUSHIM_VECTOR_TYPES(unsigned long long, ulonglong)
#undef CUSHIM_VECTOR_TYPES

namespace cushim {
// The built-in variables of the CUDA thread running on this OS thread. The fiber scheduler
// rewrites thread_index before it resumes a fiber; the rest change once per block or launch.
inline thread_local uint3 thread_index;
inline thread_local uint3 block_index;
inline thread_local dim3 block_dim;
inline thread_local dim3 grid_dim;
// threadIdx as one number (x fastest), which decides the warp and the lane.
inline thread_local unsigned int linear_thread_index;
}  // namespace cushim

#define threadIdx (::cushim::thread_index)
#define blockIdx (::cushim::block_index)
#define blockDim (::cushim::block_dim)
#define gridDim (::cushim::grid_dim)
#define warpSize 32
