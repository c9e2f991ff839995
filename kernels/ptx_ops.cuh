// Every tensor-core and inline-PTX instruction the kernels use, each behind one named __device__
// wrapper. On the GPU a wrapper is the instruction (inline asm); on the CPU (SHIM_CPU) it emulates
// the instruction's documented fragment layout through a warp exchange: every lane publishes its
// registers, the warp meets, and each lane computes its own outputs from everyone's. A kernel
// that writes PTX only through these wrappers runs unchanged on Emu.
//
// Fragment layouts are those of the PTX ISA, "Matrix Fragments for mma.m16n8k16" (.bf16) and
// "Warp-level matrix load instruction: ldmatrix". With g = lane / 4 and t = lane % 4, a 32-bit
// register holds two bf16, the lower-indexed element in the low half.
#pragma once

#ifdef SHIM_CPU
namespace ptx_emulation {
__device__ __forceinline__ float bf16_bits_to_float(unsigned bits) { return __uint_as_float(bits << 16); }

// The 16-bit element `half` (0 low, 1 high) of a register.
__device__ __forceinline__ unsigned half_of(unsigned reg, unsigned half) { return (reg >> (16 * half)) & 0xffffu; }

// ldmatrix for `count` 8x8 b16 matrices: lane 8m+r gives the address of row r of matrix m. Lane
// l receives, for matrix m, row l/4, columns 2(l%4) and 2(l%4)+1; transposed, it receives column
// l/4, rows 2(l%4) and 2(l%4)+1.
template <int count, bool transposed>
__device__ __forceinline__ void ldmatrix(unsigned* regs, const void* my_row) {
    struct Regs {
        unsigned r[4];
    };
    const Regs got = cushim::warp_exchange(my_row, [](auto row_of) {
        const unsigned lane = cushim::lane_id(), g = lane / 4, t = lane % 4;
        Regs out{};
        for (int m = 0; m < count; ++m) {
            if (transposed) {
                const auto* r0 = static_cast<const unsigned short*>(row_of(8 * m + 2 * t));
                const auto* r1 = static_cast<const unsigned short*>(row_of(8 * m + 2 * t + 1));
                out.r[m] = unsigned(r0[g]) | unsigned(r1[g]) << 16;
            } else {
                const auto* row = static_cast<const unsigned short*>(row_of(8 * m + g));
                out.r[m] = unsigned(row[2 * t]) | unsigned(row[2 * t + 1]) << 16;
            }
        }
        return out;
    });
    for (int m = 0; m < count; ++m) regs[m] = got.r[m];
}
}  // namespace ptx_emulation
#endif

// D = A * B + C on one 16x8 tile with K = 16: A 16x16 row-major bf16, B 16x8 column-major bf16,
// C and D f32 (mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32). Per lane:
//   a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]    a[2] = A[g][2t+8..2t+9]    a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]    b[1] = B[2t+8..2t+9][g]
//   c[0..1] = C[g][2t..2t+1]  c[2..3] = C[g+8][2t..2t+1]   (d likewise; d may alias c)
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2],
                                                  const float c[4]) {
#ifdef SHIM_CPU
    struct Fragments {
        unsigned a[4], b[2];
    };
    struct Tile {
        float d[4];
    };
    const Fragments mine = {{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
    const float c_in[4] = {c[0], c[1], c[2], c[3]};
    const Tile result = cushim::warp_exchange(mine, [&c_in](auto fragments_of) {
        using ptx_emulation::bf16_bits_to_float;
        using ptx_emulation::half_of;
        float A[16][16], B[16][8];
        for (unsigned lane = 0; lane < 32; ++lane) {
            const Fragments f = fragments_of(lane);
            const unsigned g = lane / 4, t = lane % 4;
            for (unsigned h = 0; h < 2; ++h) {
                A[g][2 * t + h] = bf16_bits_to_float(half_of(f.a[0], h));
                A[g + 8][2 * t + h] = bf16_bits_to_float(half_of(f.a[1], h));
                A[g][2 * t + 8 + h] = bf16_bits_to_float(half_of(f.a[2], h));
                A[g + 8][2 * t + 8 + h] = bf16_bits_to_float(half_of(f.a[3], h));
                B[2 * t + h][g] = bf16_bits_to_float(half_of(f.b[0], h));
                B[2 * t + 8 + h][g] = bf16_bits_to_float(half_of(f.b[1], h));
            }
        }
        const unsigned lane = cushim::lane_id(), g = lane / 4, t = lane % 4;
        Tile out;
        for (unsigned i = 0; i < 4; ++i) {
            const unsigned row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
            float acc = c_in[i];  // bf16 products are exact in f32; the sum is accumulated in f32
            for (unsigned k = 0; k < 16; ++k) acc = fmaf(A[row][k], B[k][col], acc);
            out.d[i] = acc;
        }
        return out;
    });
    for (int i = 0; i < 4; ++i) d[i] = result.d[i];
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

// Four 8x8 b16 matrices from shared memory (ldmatrix.sync.aligned.m8n8.x4.shared.b16): lane 8m+r
// passes the address of row r of matrix m (16 bytes, 16-byte aligned); lane l gets in regs[m]
// row l/4, columns 2(l%4) and 2(l%4)+1 of matrix m. Loaded as the four 8x8 quarters of an A tile
// (m = 0: rows 0-7 cols 0-7, 1: rows 8-15 cols 0-7, 2: rows 0-7 cols 8-15, 3: rows 8-15 cols 8-15),
// regs are exactly mma_m16n8k16_bf16's `a`.
__device__ __forceinline__ void ldmatrix_x4(unsigned regs[4], const void* my_row) {
#ifdef SHIM_CPU
    ptx_emulation::ldmatrix<4, false>(regs, my_row);
#else
    const unsigned address = (unsigned)__cvta_generic_to_shared(my_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(address));
#endif
}

// As ldmatrix_x4, transposed (.trans): lane l gets in regs[m] column l/4, rows 2(l%4) and
// 2(l%4)+1 of matrix m. Loading a row-major K x N tile of B this way gives mma's `b` fragments.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned regs[4], const void* my_row) {
#ifdef SHIM_CPU
    ptx_emulation::ldmatrix<4, true>(regs, my_row);
#else
    const unsigned address = (unsigned)__cvta_generic_to_shared(my_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(regs[0]), "=r"(regs[1]), "=r"(regs[2]), "=r"(regs[3])
                 : "r"(address));
#endif
}

// Two 8x8 matrices (.x2): lanes 0-15 pass row addresses (the others' are ignored but must be
// valid shared addresses on the GPU).
__device__ __forceinline__ void ldmatrix_x2(unsigned regs[2], const void* my_row) {
#ifdef SHIM_CPU
    ptx_emulation::ldmatrix<2, false>(regs, my_row);
#else
    const unsigned address = (unsigned)__cvta_generic_to_shared(my_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(regs[0]), "=r"(regs[1])
                 : "r"(address));
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(unsigned regs[2], const void* my_row) {
#ifdef SHIM_CPU
    ptx_emulation::ldmatrix<2, true>(regs, my_row);
#else
    const unsigned address = (unsigned)__cvta_generic_to_shared(my_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(regs[0]), "=r"(regs[1])
                 : "r"(address));
#endif
}
