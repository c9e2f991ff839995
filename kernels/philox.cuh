// Philox4x32-10, the counter-based generator of src/rng/philox.rs, so the CPU reference and the
// kernels draw the same integers. Stream layout (shared with the Rust side):
// - key = (seed low 32 bits, seed high 32 bits);
// - counter = (block low, block high, step low, step high), block = element index / 4;
// - element i takes lane i % 4 of its block.
// Uniforms use the top 24 bits, u = ((x >> 8) + 0.5) * 2^-24, never 0 or 1. Normals use
// Box-Muller on lane pairs (0,1) and (2,3): even lane r*cos(theta), odd lane r*sin(theta), with
// r = sqrt(-2 ln u_even), theta = 2*pi*u_odd, in f32.
#pragma once

struct philox_u32x4 {
    unsigned int v[4];
};

__device__ __forceinline__ philox_u32x4 philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2,
                                                      unsigned int c3, unsigned int k0, unsigned int k1) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += W0;
            k1 += W1;
        }
        const unsigned int hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        const unsigned int hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        const unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    philox_u32x4 r;
    r.v[0] = c0;
    r.v[1] = c1;
    r.v[2] = c2;
    r.v[3] = c3;
    return r;
}

// The four 32-bit outputs of block `block` of the stream (seed, step).
__device__ __forceinline__ philox_u32x4 philox_block(unsigned long long seed, unsigned long long step,
                                                     unsigned long long block) {
    return philox4x32_10((unsigned int)block, (unsigned int)(block >> 32), (unsigned int)step,
                         (unsigned int)(step >> 32), (unsigned int)seed, (unsigned int)(seed >> 32));
}

__device__ __forceinline__ float philox_to_uniform(unsigned int x) {
    return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

// Element `i` of the uniform stream (seed, step).
__device__ __forceinline__ float philox_uniform(unsigned long long seed, unsigned long long step,
                                                unsigned long long i) {
    return philox_to_uniform(philox_block(seed, step, i / 4).v[i % 4]);
}

// Element `i` of the standard normal stream (seed, step).
__device__ __forceinline__ float philox_normal(unsigned long long seed, unsigned long long step,
                                               unsigned long long i) {
    const philox_u32x4 x = philox_block(seed, step, i / 4);
    const int lane = (int)(i % 4), pair = lane & ~1;
    const float r = sqrtf(-2.0f * logf(philox_to_uniform(x.v[pair])));
    const float theta = 6.2831853071795864769f * philox_to_uniform(x.v[pair + 1]);
    return (lane & 1) ? r * sinf(theta) : r * cosf(theta);
}
