// CUDA atomics on host memory. Blocks run on several OS threads at once (fiber mode) and every
// CUDA thread is an OS thread in thread mode, so these must be real atomics; std::atomic_ref
// gives them, including the floating-point fetch_add of C++20. All are sequentially consistent,
// stronger than CUDA's relaxed atomics, which only hides no bug a test could find.
#pragma once

#include <atomic>
#include <type_traits>

namespace cushim {
template <class T>
inline std::atomic_ref<T> atomic_at(T* p) {
    return std::atomic_ref<T>(*p);
}
// A compare-and-swap loop applying `update(old)`, for operations atomic_ref has no member for.
template <class T, class Update>
inline T atomic_update(T* p, Update update) {
    auto a = atomic_at(p);
    T old = a.load();
    while (!a.compare_exchange_weak(old, update(old))) {
    }
    return old;
}
template <class T>
using Same = std::type_identity_t<T>;  // the value takes the pointer's type, as CUDA's overloads do
}  // namespace cushim

template <class T>
inline T atomicAdd(T* p, cushim::Same<T> v) {
    return cushim::atomic_at(p).fetch_add(v);
}
template <class T>
inline T atomicSub(T* p, cushim::Same<T> v) {
    return cushim::atomic_at(p).fetch_sub(v);
}
template <class T>
inline T atomicExch(T* p, cushim::Same<T> v) {
    return cushim::atomic_at(p).exchange(v);
}
template <class T>
inline T atomicCAS(T* p, cushim::Same<T> compare, cushim::Same<T> v) {
    cushim::atomic_at(p).compare_exchange_strong(compare, v);
    return compare;  // the old value, whether or not it matched
}
template <class T>
inline T atomicMax(T* p, cushim::Same<T> v) {
    return cushim::atomic_update(p, [v](T old) { return old < v ? v : old; });
}
template <class T>
inline T atomicMin(T* p, cushim::Same<T> v) {
    return cushim::atomic_update(p, [v](T old) { return v < old ? v : old; });
}
template <class T>
inline T atomicAnd(T* p, cushim::Same<T> v) {
    static_assert(std::is_integral_v<T>);
    return cushim::atomic_at(p).fetch_and(v);
}
template <class T>
inline T atomicOr(T* p, cushim::Same<T> v) {
    static_assert(std::is_integral_v<T>);
    return cushim::atomic_at(p).fetch_or(v);
}
template <class T>
inline T atomicXor(T* p, cushim::Same<T> v) {
    static_assert(std::is_integral_v<T>);
    return cushim::atomic_at(p).fetch_xor(v);
}
// ((old >= limit) ? 0 : old + 1) and ((old == 0 || old > limit) ? limit : old - 1), as in CUDA.
inline unsigned atomicInc(unsigned* p, unsigned limit) {
    return cushim::atomic_update(p, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
    return cushim::atomic_update(p, [limit](unsigned old) { return old == 0 || old > limit ? limit : old - 1; });
}
// Block- and system-scope variants: on one host, every scope is the same.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch
