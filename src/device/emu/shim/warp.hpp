// Warp-level operations: shuffles, votes, matches and reductions, all built on one exchange in
// which every lane of the warp publishes a value and then reads the values it needs.
//
// Every live lane of the warp must take part (full-mask operations in converged code, the
// project's convention). The mask argument still shapes the result where CUDA defines it to (the
// ballot bits, any/all), but it cannot make lanes optional: a lane that skips the operation
// leaves the others waiting, which both modes report as a deadlock.
#pragma once

#include <cstring>
#include <type_traits>

namespace cushim {

// Publishes `mine`, waits for the whole warp, then returns `read(value_of)` where
// `value_of(lane)` is what that lane published. The second barrier keeps a following exchange
// from overwriting slots that slower lanes are still reading.
template <class T, class Read>
inline auto warp_exchange(const T& mine, Read&& read) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= warp_slot_bytes,
                  "a warp exchange moves trivially copyable values of at most warp_slot_bytes");
    unsigned char* slots = current_warp_slots + std::size_t(warp_id()) * 32 * warp_slot_bytes;
    std::memcpy(slots + lane_id() * warp_slot_bytes, &mine, sizeof(T));
    warp_barrier();
    auto value_of = [slots](unsigned lane) {
        T v;
        std::memcpy(&v, slots + lane * warp_slot_bytes, sizeof(T));
        return v;
    };
    auto result = read(value_of);
    warp_barrier();
    return result;
}

// `v` from lane `src` of the caller's warp, or the caller's own `v` when `src` does not exist
// (out of the shuffle segment, or past the end of a short last warp), as the hardware does for
// out-of-segment sources.
template <class T>
inline T shuffle_from(T v, unsigned src, bool in_segment) {
    return warp_exchange(v, [&](auto value_of) { return in_segment && src < lanes_in_my_warp() ? value_of(src) : v; });
}

inline unsigned live_lane_mask() {
    const unsigned lanes = lanes_in_my_warp();
    return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
}

template <class T, class Combine>
inline T warp_reduce(T v, Combine combine) {
    return warp_exchange(v, [&](auto value_of) {
        T acc = value_of(0);
        for (unsigned l = 1; l < lanes_in_my_warp(); ++l) acc = combine(acc, value_of(l));
        return acc;
    });
}

}  // namespace cushim

template <class T>
inline T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
    const unsigned segment = cushim::lane_id() & ~unsigned(width - 1);
    return cushim::shuffle_from(v, segment + (unsigned(src_lane) & unsigned(width - 1)), true);
}
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    const unsigned lane = cushim::lane_id();
    return cushim::shuffle_from(v, lane - delta, (lane & unsigned(width - 1)) >= delta);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const unsigned lane = cushim::lane_id();
    return cushim::shuffle_from(v, lane + delta, (lane & unsigned(width - 1)) + delta < unsigned(width));
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    const unsigned lane = cushim::lane_id(), src = lane ^ unsigned(lane_mask);
    const unsigned segment_bits = ~unsigned(width - 1);
    return cushim::shuffle_from(v, src, (src & segment_bits) == (lane & segment_bits));
}

inline unsigned __activemask() { return cushim::live_lane_mask(); }

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    const unsigned votes = cushim::warp_exchange(predicate != 0, [](auto value_of) {
        unsigned bits = 0;
        for (unsigned l = 0; l < cushim::lanes_in_my_warp(); ++l) bits |= unsigned(value_of(l)) << l;
        return bits;
    });
    return votes & mask;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
    const unsigned lanes = mask & cushim::live_lane_mask();
    return (__ballot_sync(mask, predicate) & lanes) == lanes;
}

// Lanes whose `value` equals the caller's.
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value) {
    return mask & cushim::warp_exchange(value, [&](auto value_of) {
               unsigned same = 0;
               for (unsigned l = 0; l < cushim::lanes_in_my_warp(); ++l) same |= unsigned(value_of(l) == value) << l;
               return same;
           });
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* all_equal) {
    const unsigned same = __match_any_sync(mask, value), lanes = mask & cushim::live_lane_mask();
    *all_equal = same == lanes;
    return *all_equal ? lanes : 0u;
}

// sm_80 warp reductions.
inline unsigned __reduce_add_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned, int v) {
    return cushim::warp_reduce(v, [](int a, int b) { return int(unsigned(a) + unsigned(b)); });
}
inline unsigned __reduce_min_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned, int v) {
    return cushim::warp_reduce(v, [](int a, int b) { return a < b ? a : b; });
}
inline unsigned __reduce_max_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned, int v) {
    return cushim::warp_reduce(v, [](int a, int b) { return a > b ? a : b; });
}
inline unsigned __reduce_and_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a & b; });
}
inline unsigned __reduce_or_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a | b; });
}
inline unsigned __reduce_xor_sync(unsigned, unsigned v) {
    return cushim::warp_reduce(v, [](unsigned a, unsigned b) { return a ^ b; });
}
