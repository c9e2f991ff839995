// Helpers shared by every kernel file. No libc or CUDA headers: NVRTC has none without extra
// include paths, and the CPU shim provides the same intrinsics.
#pragma once

// bf16 as raw bits. Kernels store bf16 and compute in f32; the conversions are the exact
// round-to-nearest-even of `half::bf16` on the CPU side, so Emu, Cuda and the reference agree.
typedef unsigned short bf16;

__device__ __forceinline__ float bf16_to_float(bf16 x) {
    return __uint_as_float(((unsigned int)x) << 16);
}

__device__ __forceinline__ bf16 float_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

// The logistic function without overflow for any x (the CPU reference's form).
__device__ __forceinline__ float sigmoid_f32(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

// Loads and stores that widen to / narrow from f32, so one templated kernel body serves both
// storage types.
__device__ __forceinline__ float load_f32(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_f32(const bf16* p, long long i) { return bf16_to_float(p[i]); }
__device__ __forceinline__ void store_f32(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f32(bf16* p, long long i, float v) { p[i] = float_to_bf16(v); }

// The global index of this thread in a 1D grid, and the grid's stride, for grid-stride loops.
__device__ __forceinline__ long long global_thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
    return (long long)blockDim.x * gridDim.x;
}

// Full-warp reductions (every lane must take part).
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Block-wide sum for blocks whose size is a multiple of 32 (at most 1024 threads). Every thread
// gets the total. `scratch` is 32 floats of shared memory; it may be reused after the call.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : __int_as_float(0xff800000);  // -inf
    return warp_max(v);
}

// Stamps `extern "C"` f32 and bf16 entry points `<name>_f32` / `<name>_bf16`, launch-bounded to
// `threads` per block, from a templated body `name##_impl<T>`; PARAMS_T is a macro giving the
// parenthesised parameter list for a storage type T, ARGS the parenthesised argument names.
#define STAMP_F32_BF16(name, threads, PARAMS_T, ARGS)               \
    extern "C" __global__ void __launch_bounds__(threads)           \
        name##_f32 PARAMS_T(float) {                                 \
        name##_impl<float> ARGS;                                     \
    }                                                                \
    extern "C" __global__ void __launch_bounds__(threads)           \
        name##_bf16 PARAMS_T(bf16) {                                 \
        name##_impl<bf16> ARGS;                                      \
    }
