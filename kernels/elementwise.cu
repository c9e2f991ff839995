// Elementwise arithmetic: input injection (`z + y + x`, which with two terms is `add`), `mul` and
// `scale`. Reference: src/device/cpu/elementwise.rs. Their backwards are these same kernels
// (`ops::elementwise` builds them from add/mul/scale), so there are no `_bwd` entry points.
//
// Storage is f32 or bf16, math is f32. Each kernel is one grid-stride pass, memory bound.
#include "common.cuh"

#define ELEMENTWISE_THREADS 256


// `v` rounded to the storage type T, as the reference's bf16 tensors round every op's result.
template <typename T>
__device__ __forceinline__ float round_to_storage(float v) {
    T r;
    store_f32(&r, 0, v);
    return load_f32(&r, 0);
}

// y = (a + b) + c over `terms` (1 to 3) terms, left to right like the official `(z + y) + x`.
// The intermediate `a + b` is rounded to storage, as the reference adds two tensors at a time.
// Unused term pointers may be any valid buffer; they are not read.
template <typename T>
__device__ void inject_add_fwd_impl(const T* __restrict__ a, const T* __restrict__ b,
                                    const T* __restrict__ c, T* __restrict__ y, long long n,
                                    int terms) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        float acc = load_f32(a, i);
        if (terms >= 2) acc = acc + load_f32(b, i);
        if (terms >= 3) acc = round_to_storage<T>(acc) + load_f32(c, i);
        store_f32(y, i, acc);
    }
}
#define INJECT_ADD_PARAMS(T) \
    (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ c, T* __restrict__ y, long long n, int terms)
STAMP_F32_BF16(inject_add_fwd, ELEMENTWISE_THREADS, INJECT_ADD_PARAMS, (a, b, c, y, n, terms))

// y = a ⊙ b.
template <typename T>
__device__ void mul_fwd_impl(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y,
                             long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        store_f32(y, i, load_f32(a, i) * load_f32(b, i));
}
#define MUL_PARAMS(T) (const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, long long n)
STAMP_F32_BF16(mul_fwd, ELEMENTWISE_THREADS, MUL_PARAMS, (a, b, y, n))

// y = s · a. `s` is f32; the reference rounds its f64 scale to the compute type f32 the same way.
template <typename T>
__device__ void scale_fwd_impl(const T* __restrict__ a, T* __restrict__ y, long long n, float s) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        store_f32(y, i, load_f32(a, i) * s);
}
#define SCALE_PARAMS(T) (const T* __restrict__ a, T* __restrict__ y, long long n, float s)
STAMP_F32_BF16(scale_fwd, ELEMENTWISE_THREADS, SCALE_PARAMS, (a, y, n, s))

// acc += g, an f32 accumulator and a bf16 addend widened exactly: the bf16 gradient of a weight's
// mirror added into the f32 master gradient in one launch (a cast then an f32 add, fused; the sum
// is the same f32 addition, so the result is bit-identical to the two launches it replaces).
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
accumulate_f32_bf16(float* __restrict__ acc, const bf16* __restrict__ g, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) acc[i] = acc[i] + load_f32(g, i);
}

// y = x converted between storage types (f32 → bf16 rounds to nearest even, as the reference's
// `Tensor::to_dtype` does; bf16 → f32 is exact). Named by the input's storage type.
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
cast_to_bf16_f32(const float* __restrict__ x, bf16* __restrict__ y, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) store_f32(y, i, x[i]);
}
extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)
cast_to_f32_bf16(const bf16* __restrict__ x, float* __restrict__ y, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) y[i] = load_f32(x, i);
}
