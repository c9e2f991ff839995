// Fiber mode: one OS thread runs all CUDA threads of a block as fibers (user-space stacks with a
// hand-written x86-64 context switch: a switch costs a few nanoseconds, no system call). A
// barrier parks the calling fiber; the scheduler resumes only fibers whose barrier has opened,
// so a round in which no fiber can be resumed is a deadlock, detected exactly and at once.
// Blocks are spread over the cores, one worker OS thread per core.
#pragma once

#include <atomic>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "cushim fiber mode switches x86-64 stacks; build with the emu-threads feature on other CPUs"
#endif

// cushim_switch(save, load): pushes the callee-saved registers and the floating-point control
// words (MXCSR, x87 CW: the SysV ABI says they are preserved across calls) on the current
// stack, stores the stack pointer to *save, adopts `load` as the stack pointer and pops the same
// frame from it. The `ret` then continues wherever that stack last called cushim_switch.
//
// cushim_fiber_start is where a fresh stack "returns" to: the frame built by
// FiberStacks::prepare puts the entry function in r13 and its argument in r12.
extern "C" void cushim_switch(void** save, void* load);
asm(R"(
    .text
    .globl cushim_switch
    .type cushim_switch, @function
cushim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cushim_switch, .-cushim_switch

    .globl cushim_fiber_start
    .type cushim_fiber_start, @function
cushim_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cushim_fiber_start, .-cushim_fiber_start
)");
extern "C" void cushim_fiber_start();

namespace cushim {

enum class WaitSite : unsigned char { running, syncthreads, warp_op, finished };

struct FiberBarrier {
    unsigned expected = 0, arrived = 0;
    unsigned long long generation = 0;
};

struct Fiber {
    void* sp = nullptr;
    WaitSite site = WaitSite::running;
    const FiberBarrier* barrier = nullptr;  // while parked: the barrier it waits for
    unsigned long long parked_generation = 0;

    bool runnable() const {
        return site == WaitSite::running || (site != WaitSite::finished && barrier->generation != parked_generation);
    }
};

// The stacks of one block's fibers: one mapping, each stack with an inaccessible guard page
// below it, so a kernel that overflows its stack faults instead of corrupting its neighbour.
// Mappings are pooled because creating one costs a system call per guard page.
class FiberStacks {
public:
    static constexpr std::size_t stack_bytes = 64 * 1024;

    explicit FiberStacks(unsigned count) : count_(count) {
        page_ = (std::size_t)sysconf(_SC_PAGESIZE);
        const std::size_t total = count * stride();
        void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        base_ = static_cast<unsigned char*>(p);
        for (unsigned i = 0; i < count; ++i) mprotect(base_ + i * stride(), page_, PROT_NONE);
    }
    ~FiberStacks() { munmap(base_, count_ * stride()); }
    FiberStacks(const FiberStacks&) = delete;
    FiberStacks& operator=(const FiberStacks&) = delete;

    unsigned count() const { return count_; }

    // A stack pointer that cushim_switch can load to start `entry(arg)` on stack `i`.
    void* prepare(unsigned i, void (*entry)(void*), void* arg) const {
        auto top = reinterpret_cast<std::uintptr_t>(base_ + (i + 1) * stride()) & ~std::uintptr_t(15);
        // Popped by cushim_switch, lowest address first: control words, r15, r14, r13, r12, rbx,
        // rbp, then the return address. `top` is 16-aligned, so cushim_fiber_start runs with the
        // stack alignment a call site has.
        auto* frame = reinterpret_cast<std::uint64_t*>(top) - 8;
        std::uint32_t mxcsr;
        std::uint16_t fpu_cw;
        asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpu_cw));
        frame[0] = mxcsr | (std::uint64_t)fpu_cw << 32;
        frame[1] = frame[2] = 0;                                 // r15, r14
        frame[3] = reinterpret_cast<std::uint64_t>(entry);       // r13
        frame[4] = reinterpret_cast<std::uint64_t>(arg);         // r12
        frame[5] = frame[6] = 0;                                 // rbx, rbp
        frame[7] = reinterpret_cast<std::uint64_t>(&cushim_fiber_start);
        return frame;
    }

    static std::unique_ptr<FiberStacks> take(unsigned count) {
        std::lock_guard<std::mutex> lock(pool_mutex());
        auto& pool = pool_list();
        for (auto it = pool.begin(); it != pool.end(); ++it)
            if ((*it)->count() >= count) {
                auto stacks = std::move(*it);
                pool.erase(it);
                return stacks;
            }
        return std::make_unique<FiberStacks>(count);
    }
    static void give_back(std::unique_ptr<FiberStacks> stacks) {
        std::lock_guard<std::mutex> lock(pool_mutex());
        if (pool_list().size() < 16) pool_list().push_back(std::move(stacks));
    }

private:
    std::size_t stride() const { return page_ + stack_bytes; }
    static std::mutex& pool_mutex() {
        static std::mutex m;
        return m;
    }
    static std::vector<std::unique_ptr<FiberStacks>>& pool_list() {
        static std::vector<std::unique_ptr<FiberStacks>> p;
        return p;
    }

    unsigned count_;
    std::size_t page_;
    unsigned char* base_;
};

// One worker's view of the block it is running.
struct FiberBlock {
    const KernelCall* call = nullptr;
    std::vector<Fiber> fibers;
    FiberBarrier syncthreads;
    std::vector<FiberBarrier> warps;
    unsigned current = 0;
    void* scheduler_sp = nullptr;
};

inline thread_local FiberBlock* current_fiber_block = nullptr;

// Parks the calling fiber at `barrier` unless it is the last to arrive, which opens it.
inline void fiber_arrive_and_wait(FiberBarrier& barrier, WaitSite site) {
    FiberBlock& block = *current_fiber_block;
    if (++barrier.arrived == barrier.expected) {
        barrier.arrived = 0;
        ++barrier.generation;
        return;
    }
    Fiber& me = block.fibers[block.current];
    me.site = site;
    me.barrier = &barrier;
    me.parked_generation = barrier.generation;
    cushim_switch(&me.sp, block.scheduler_sp);
    me.site = WaitSite::running;
}

inline void block_barrier() { fiber_arrive_and_wait(current_fiber_block->syncthreads, WaitSite::syncthreads); }
inline void warp_barrier() { fiber_arrive_and_wait(current_fiber_block->warps[warp_id()], WaitSite::warp_op); }

inline void fiber_main(void* block_ptr) {
    auto* block = static_cast<FiberBlock*>(block_ptr);
    (*block->call)();
    Fiber& me = block->fibers[block->current];
    me.site = WaitSite::finished;
    cushim_switch(&me.sp, block->scheduler_sp);  // never resumed
}

// Runs every fiber of the current block to its end; an error message if they deadlock.
inline std::string run_block_fibers(FiberBlock& block, FiberStacks& stacks) {
    const unsigned n = (unsigned)block.fibers.size();
    for (unsigned t = 0; t < n; ++t) block.fibers[t] = Fiber{stacks.prepare(t, &fiber_main, &block)};
    block.syncthreads = FiberBarrier{n};
    for (unsigned w = 0; w < block.warps.size(); ++w) block.warps[w] = FiberBarrier{std::min(32u, n - 32 * w)};
    for (;;) {
        unsigned resumed = 0, unfinished = 0;
        for (unsigned t = 0; t < n; ++t) {
            Fiber& f = block.fibers[t];
            if (f.site == WaitSite::finished) continue;
            if (f.runnable()) {
                block.current = t;
                enter_thread(t);
                cushim_switch(&block.scheduler_sp, f.sp);
                ++resumed;
            }
            unfinished += f.site != WaitSite::finished;
        }
        if (!unfinished) return {};
        if (!resumed) {
            StuckThreads s{n};
            for (const Fiber& f : block.fibers) {
                s.at_syncthreads += f.site == WaitSite::syncthreads;
                s.at_warp_op += f.site == WaitSite::warp_op;
                s.finished += f.site == WaitSite::finished;
            }
            return deadlock_message(block_index, s);
        }
    }
}

// A grid run by worker OS threads that take blocks from a shared counter.
struct FiberGrid {
    const KernelCall& call;
    dim3 grid, block;
    std::size_t dynamic_shared_bytes;
    std::atomic<unsigned> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::string error;

    void work() {
        const unsigned threads = threads_in(block), blocks = threads_in(grid);
        auto stacks = FiberStacks::take(threads);
        AlignedBytes shared, slots;
        shared.resize(dynamic_shared_bytes);
        slots.resize(std::size_t(warps_in(threads)) * 32 * warp_slot_bytes);
        FiberBlock fb;
        fb.call = &call;
        fb.fibers.resize(threads);
        fb.warps.resize(warps_in(threads));
        current_fiber_block = &fb;
        current_dynamic_shared = shared.data();
        current_warp_slots = slots.data();
        block_dim = block;
        grid_dim = grid;
        std::string message;
        for (unsigned b; !failed.load(std::memory_order_relaxed) && (b = next_block.fetch_add(1)) < blocks;) {
            block_index = unflatten(b, grid);
            poison_shared(shared.data(), dynamic_shared_bytes);
            message = run_block_fibers(fb, *stacks);
            if (!message.empty()) {
                // The stuck fibers are abandoned: their stacks are rebuilt before any reuse.
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!failed.exchange(true)) error = message;
                break;
            }
        }
        current_fiber_block = nullptr;
        FiberStacks::give_back(std::move(stacks));
    }
};

// The most worker threads a grid may use (0: one per core). One worker runs the blocks in order,
// so float atomics add in a fixed order and a run repeats bit for bit (`Emu::set_max_workers`).
inline std::atomic<unsigned> max_workers{0};

inline std::string run_grid(const KernelCall& call, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes) {
    FiberGrid run{call, grid, block, dynamic_shared_bytes};
    const unsigned blocks = threads_in(grid);
    const unsigned cap = max_workers.load(std::memory_order_relaxed);
    const unsigned cores = cap ? cap : std::thread::hardware_concurrency();
    const unsigned workers = std::max(1u, std::min(blocks, cores));
    if (workers == 1) {
        run.work();
    } else {
        std::vector<std::thread> pool;
        try {
            for (unsigned i = 1; i < workers; ++i) pool.emplace_back([&run] { run.work(); });
        } catch (const std::system_error&) {
            // Out of OS threads: the workers that did start share the grid.
        }
        run.work();  // the launching thread is a worker too
        for (auto& t : pool) t.join();
    }
    return run.error;
}

}  // namespace cushim
