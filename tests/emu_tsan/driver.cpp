// Runs block_sum.cuh on the shim in thread mode (one OS thread per CUDA thread, real barriers),
// so that ThreadSanitizer sees the kernel's accesses and barriers as they are. Built and run by
// the emu_tsan_* tests in tests/emu_shim.rs; by hand:
//   g++ -std=c++20 -fsanitize=thread -pthread -O1 -g -I src/device/emu tests/emu_tsan/driver.cpp \
//       [-DOMIT_BARRIER_AFTER_STORE] -o /tmp/emu_tsan && /tmp/emu_tsan
#define CUSHIM_THREADS 1
#include "cushim.hpp"

#include "block_sum.cuh"

int main() {
    const int threads = 64, blocks = 3, n = blocks * threads - 5;
    std::vector<float> x(n), out(blocks, NAN);
    for (int i = 0; i < n; ++i) x[i] = float(i % 7);
    const std::string error = cushim::launch(block_sum, dim3(blocks), dim3(threads), 0, x.data(), out.data(), n);
    if (!error.empty()) {
        std::fprintf(stderr, "launch failed: %s\n", error.c_str());
        return 2;
    }
    for (int b = 0; b < blocks; ++b) {
        float want = 0.0f;
        for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) want += x[i];
        if (out[b] != want) {
            std::printf("block %d: sum %g, want %g\n", b, out[b], want);
            return 1;
        }
    }
    std::printf("block sums correct\n");
    return 0;
}
