// Kernels by name. build.rs registers every `extern "C" __global__` function of kernels/*.cu
// with CUSHIM_REGISTER_KERNEL, and Emu launches them through the C ABI below with the driver
// API's argument shape: `void** args`, one pointer to each parameter's value.
#pragma once

#include <cstddef>
#include <exception>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace cushim {

// Largest dynamic shared memory a kernel may ask for: an H100's opt-in limit (227 KiB).
inline constexpr std::size_t max_dynamic_shared_bytes = 227 * 1024;

// Why a launch shape is not one CUDA would accept, or empty.
inline std::string check_launch_shape(dim3 grid, dim3 block, std::size_t dynamic_shared_bytes) {
    auto dims = [](dim3 d) {
        return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
    };
    if (!grid.x || !grid.y || !grid.z || grid.y > 65535 || grid.z > 65535)
        return "invalid grid " + dims(grid) + ": every dimension must be at least 1, y and z at most 65535";
    if (!block.x || !block.y || !block.z || block.z > 64 || (unsigned long long)block.x * block.y * block.z > max_threads_per_block)
        return "invalid block " + dims(block) + ": 1 to 1024 threads, z at most 64";
    if (dynamic_shared_bytes > max_dynamic_shared_bytes)
        return "dynamic shared memory of " + std::to_string(dynamic_shared_bytes) + " bytes exceeds the " +
               std::to_string(max_dynamic_shared_bytes) + " bytes a block can have";
    return {};
}

// Runs `kernel` over the grid with `args` (already of the parameter types). Empty on success,
// else why the launch failed.
template <class... P>
inline std::string launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                          std::type_identity_t<P>... args) {
    if (std::string bad = check_launch_shape(grid, block, dynamic_shared_bytes); !bad.empty()) return bad;
    struct Bound {
        void (*kernel)(P...);
        std::tuple<P...> args;
    } bound{kernel, {args...}};
    const KernelCall call{[](const void* b) {
                              const auto& self = *static_cast<const Bound*>(b);
                              std::apply(self.kernel, self.args);
                          },
                          &bound};
    return run_grid(call, grid, block, dynamic_shared_bytes);
}

struct KernelEntry {
    const char* name;
    std::size_t param_count;
    const std::size_t* param_sizes;
    std::string (*launch)(dim3 grid, dim3 block, std::size_t dynamic_shared_bytes, void** args);
};

template <auto Kernel>
struct KernelThunk;
template <class... P, void (*Kernel)(P...)>
struct KernelThunk<Kernel> {
    static constexpr std::size_t param_sizes[sizeof...(P) + 1] = {sizeof(P)..., 0};
    static std::string launch_from(dim3 grid, dim3 block, std::size_t smem, void** args) {
        return unpack(grid, block, smem, args, std::index_sequence_for<P...>{});
    }
    template <std::size_t... I>
    static std::string unpack(dim3 grid, dim3 block, std::size_t smem, void** args, std::index_sequence<I...>) {
        return cushim::launch(Kernel, grid, block, smem, *static_cast<std::remove_cv_t<P>*>(args[I])...);
    }
};

inline std::vector<KernelEntry>& registry() {
    static std::vector<KernelEntry> kernels;
    return kernels;
}

inline const KernelEntry* find_kernel(const char* name) {
    for (const KernelEntry& k : registry())
        if (std::string_view(k.name) == name) return &k;
    return nullptr;
}

struct Registration {
    Registration(const char* name, std::size_t count, const std::size_t* sizes,
                 std::string (*launch)(dim3, dim3, std::size_t, void**)) {
        registry().push_back(KernelEntry{name, count, sizes, launch});
    }
};

// Empty, or why the marshalled arguments do not fit the kernel's parameters.
inline std::string check_arguments(const KernelEntry& k, const std::size_t* sizes, std::size_t count) {
    if (count != k.param_count)
        return std::string(k.name) + " takes " + std::to_string(k.param_count) + " parameters, got " +
               std::to_string(count);
    for (std::size_t i = 0; i < count; ++i)
        if (sizes[i] != k.param_sizes[i])
            return std::string(k.name) + ": parameter " + std::to_string(i) + " is " +
                   std::to_string(k.param_sizes[i]) + " bytes, the argument " + std::to_string(sizes[i]);
    return {};
}

}  // namespace cushim

#define CUSHIM_REGISTER_KERNEL(kernel)                                                                    \
    static const ::cushim::Registration cushim_registration_##kernel{                                     \
        #kernel, sizeof(::cushim::KernelThunk<&kernel>::param_sizes) / sizeof(std::size_t) - 1,           \
        ::cushim::KernelThunk<&kernel>::param_sizes, &::cushim::KernelThunk<&kernel>::launch_from};

// The C ABI Emu calls, defined once, in the translation unit build.rs generates.
extern "C" {
// Launches kernel `name`; 0 on success, else nonzero with a NUL-terminated message in `error`.
int cushim_launch(const char* name, const unsigned grid[3], const unsigned block[3], std::size_t dynamic_shared_bytes,
                  void** args, const std::size_t* arg_sizes, std::size_t arg_count, char* error,
                  std::size_t error_capacity);
std::size_t cushim_kernel_count();
const char* cushim_kernel_name(std::size_t i);
// "fibers" or "threads".
const char* cushim_mode();
// Caps the worker threads of every later grid (0: one per core); the threads mode runs blocks one
// after another anyway.
void cushim_set_max_workers(unsigned workers);
}

#ifdef CUSHIM_DEFINE_C_ABI
extern "C" int cushim_launch(const char* name, const unsigned grid[3], const unsigned block[3],
                             std::size_t dynamic_shared_bytes, void** args, const std::size_t* arg_sizes,
                             std::size_t arg_count, char* error, std::size_t error_capacity) {
    std::string message;
    try {  // no C++ exception may cross into Rust
        if (const cushim::KernelEntry* k = cushim::find_kernel(name)) {
            message = cushim::check_arguments(*k, arg_sizes, arg_count);
            if (message.empty())
                message = k->launch(dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]),
                                    dynamic_shared_bytes, args);
        } else {
            message = std::string("no kernel named ") + name;
        }
    } catch (const std::exception& e) {
        message = std::string("launch of ") + name + " failed: " + e.what();
    } catch (...) {
        message = std::string("launch of ") + name + " failed with an unknown C++ exception";
    }
    if (message.empty()) return 0;
    if (error_capacity) {
        const std::size_t n = std::min(message.size(), error_capacity - 1);
        std::memcpy(error, message.data(), n);
        error[n] = '\0';
    }
    return 1;
}
extern "C" std::size_t cushim_kernel_count() { return cushim::registry().size(); }
extern "C" const char* cushim_kernel_name(std::size_t i) {
    return i < cushim::registry().size() ? cushim::registry()[i].name : nullptr;
}
extern "C" const char* cushim_mode() {
#ifdef CUSHIM_THREADS
    return "threads";
#else
    return "fibers";
#endif
}
extern "C" void cushim_set_max_workers(unsigned workers) {
#ifndef CUSHIM_THREADS
    cushim::max_workers.store(workers, std::memory_order_relaxed);
#else
    (void)workers;
#endif
}
#endif
