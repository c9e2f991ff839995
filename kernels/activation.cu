// Pointwise activations (SiLU, ReLU, exact GELU, sigmoid, softplus, exp), forward and backward,
// and SwiGLU `silu(gate) ⊙ up` on the fused gate|up projection. Reference:
// src/device/cpu/activation.rs and swiglu.rs (PyTorch defaults: GELU in its erf form, softplus
// with beta 1 and threshold 20, ReLU′(0) = 0).
//
// Each activation is one functor (value and derivative); one templated body per direction applies
// any of them, so adding an activation is one functor and one STAMP_ACTIVATION line. Storage is
// f32 or bf16, math is f32 with the accurate (non-fast-math) libdevice functions.
#include "common.cuh"

#define ACTIVATION_THREADS 256

struct Silu {
    static __device__ __forceinline__ float value(float x) { return x * sigmoid_f32(x); }
    static __device__ __forceinline__ float derivative(float x) {
        const float s = sigmoid_f32(x);
        return s * (1.0f + x * (1.0f - s));
    }
};

struct Relu {
    // fmaxf returns 0 for NaN input, as the reference's `max`.
    static __device__ __forceinline__ float value(float x) { return fmaxf(x, 0.0f); }
    static __device__ __forceinline__ float derivative(float x) { return x > 0.0f ? 1.0f : 0.0f; }
};

struct Gelu {
    // Φ(x) = erfc(−x/√2)/2: erfc keeps the far negative tail's relative precision where
    // 1 + erf(x/√2) would cancel.
    static __device__ __forceinline__ float normal_cdf(float x) {
        return 0.5f * erfcf(-x * 0.70710678118654752f);
    }
    static __device__ __forceinline__ float normal_pdf(float x) {
        return 0.39894228040143268f * expf(-0.5f * x * x);
    }
    static __device__ __forceinline__ float value(float x) { return x * normal_cdf(x); }
    static __device__ __forceinline__ float derivative(float x) {
        return normal_cdf(x) + x * normal_pdf(x);
    }
};

struct Sigmoid {
    static __device__ __forceinline__ float value(float x) { return sigmoid_f32(x); }
    static __device__ __forceinline__ float derivative(float x) {
        const float s = sigmoid_f32(x);
        return s * (1.0f - s);
    }
};

struct Softplus {
    // PyTorch's threshold: above it softplus is the identity, so exp cannot overflow.
    static constexpr float threshold = 20.0f;
    static __device__ __forceinline__ float value(float x) {
        return x > threshold ? x : log1pf(expf(x));
    }
    static __device__ __forceinline__ float derivative(float x) {
        return x > threshold ? 1.0f : sigmoid_f32(x);
    }
};

struct Exp {
    static __device__ __forceinline__ float value(float x) { return expf(x); }
    static __device__ __forceinline__ float derivative(float x) { return expf(x); }
};

// y = f(x).
template <typename Act, typename T>
__device__ void activation_fwd(const T* __restrict__ x, T* __restrict__ y, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        store_f32(y, i, Act::value(load_f32(x, i)));
}

// dx = dy ⊙ f′(x).
template <typename Act, typename T>
__device__ void activation_bwd(const T* __restrict__ x, const T* __restrict__ dy,
                               T* __restrict__ dx, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        store_f32(dx, i, load_f32(dy, i) * Act::derivative(load_f32(x, i)));
}

// `<name>_fwd_{f32,bf16}(x, y, n)` and `<name>_bwd_{f32,bf16}(x, dy, dx, n)` for functor Act.
#define STAMP_ACTIVATION_DTYPE(name, Act, T, suffix)                                               \
    extern "C" __global__ void __launch_bounds__(ACTIVATION_THREADS) name##_fwd_##suffix(          \
        const T* __restrict__ x, T* __restrict__ y, long long n) {                                 \
        activation_fwd<Act, T>(x, y, n);                                                           \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(ACTIVATION_THREADS) name##_bwd_##suffix(          \
        const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dx, long long n) {      \
        activation_bwd<Act, T>(x, dy, dx, n);                                                      \
    }
#define STAMP_ACTIVATION(name, Act)                \
    STAMP_ACTIVATION_DTYPE(name, Act, float, f32) \
    STAMP_ACTIVATION_DTYPE(name, Act, bf16, bf16)

STAMP_ACTIVATION(silu, Silu)
STAMP_ACTIVATION(relu, Relu)
STAMP_ACTIVATION(gelu, Gelu)
STAMP_ACTIVATION(sigmoid, Sigmoid)
STAMP_ACTIVATION(softplus, Softplus)
STAMP_ACTIVATION(exp, Exp)

// SwiGLU over rows of `gate_up` [rows, 2·inter] (gate = first half, up = second, as the official
// `chunk(2)`): y [rows, inter] = silu(gate) ⊙ up.
template <typename T>
__device__ void swiglu_fwd_impl(const T* __restrict__ gate_up, T* __restrict__ y, long long rows,
                                long long inter) {
    const long long n = rows * inter;
    for (long long e = global_thread_index(); e < n; e += grid_stride()) {
        const long long r = e / inter, j = e - r * inter;
        const float gate = load_f32(gate_up, r * 2 * inter + j);
        const float up = load_f32(gate_up, r * 2 * inter + inter + j);
        store_f32(y, e, Silu::value(gate) * up);
    }
}

// Backward: d gate = dy ⊙ up ⊙ silu′(gate), d up = dy ⊙ silu(gate), laid out like gate_up.
// Every element of d_gate_up is written.
template <typename T>
__device__ void swiglu_bwd_impl(const T* __restrict__ gate_up, const T* __restrict__ dy,
                                T* __restrict__ d_gate_up, long long rows, long long inter) {
    const long long n = rows * inter;
    for (long long e = global_thread_index(); e < n; e += grid_stride()) {
        const long long r = e / inter, j = e - r * inter;
        const long long gate_at = r * 2 * inter + j, up_at = gate_at + inter;
        const float gate = load_f32(gate_up, gate_at), up = load_f32(gate_up, up_at);
        const float g = load_f32(dy, e);
        store_f32(d_gate_up, gate_at, g * up * Silu::derivative(gate));
        store_f32(d_gate_up, up_at, g * Silu::value(gate));
    }
}

#define SWIGLU_FWD_PARAMS(T) (const T* __restrict__ gate_up, T* __restrict__ y, long long rows, long long inter)
#define SWIGLU_BWD_PARAMS(T) \
    (const T* __restrict__ gate_up, const T* __restrict__ dy, T* __restrict__ d_gate_up, long long rows, long long inter)
STAMP_F32_BF16(swiglu_fwd, ACTIVATION_THREADS, SWIGLU_FWD_PARAMS, (gate_up, y, rows, inter))
STAMP_F32_BF16(swiglu_bwd, ACTIVATION_THREADS, SWIGLU_BWD_PARAMS, (gate_up, dy, d_gate_up, rows, inter))
