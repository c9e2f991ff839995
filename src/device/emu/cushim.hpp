// cushim.hpp: the CUDA C dialect the project's kernels use, for g++ (C++20) on the CPU.
//
// build.rs compiles every kernels/*.cu against this header into one static library; Emu launches
// its kernels by name through the C ABI in shim/registry.hpp. A kernel runs unchanged:
// `threadIdx` & co. are per-thread variables, `__shared__` is per-block storage, barriers and
// warp operations suspend the calling CUDA thread until its block (or warp) catches up.
//
// Two execution modes (the project picks one per build, the `emu-threads` cargo feature):
//   fibers  (default)            every CUDA thread is a fiber with its own stack; one OS thread
//                                runs a whole block, blocks are spread over the cores.
//   threads (CUSHIM_THREADS)     every CUDA thread is an OS thread and barriers are real
//                                synchronisation, so ThreadSanitizer sees the races a missing
//                                __syncthreads causes. Blocks run one after another.
// A barrier that not every thread of the block reaches ends the launch with an error that names
// the block, in both modes.
//
// Not emulated (docs/emu.md): wgmma, TMA, cp.async, mbarrier, clusters, grid-wide sync, textures,
// warp operations with partial masks in divergent code, and fast-math ULP differences.
#pragma once

// Every standard header the shim uses comes first: the dialect's macros (__noinline__,
// __shared__, ...) would otherwise rewrite attributes inside the library headers.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <math.h>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shim/dialect.hpp"
#include "shim/runtime.hpp"
#include "shim/warp.hpp"
#include "shim/atomics.hpp"
#include "shim/math.hpp"
#include "shim/registry.hpp"
