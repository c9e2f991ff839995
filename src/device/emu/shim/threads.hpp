// Thread mode: every CUDA thread of a block is an OS thread, and __syncthreads / warp operations
// are real barriers (a mutex and a condition variable each), so ThreadSanitizer sees exactly the
// happens-before order the kernel's barriers give and reports the races a missing one leaves.
// Slow (a context switch per barrier per thread), so it is the race-checking mode, not the
// default.
//
// Deadlocks: a waiter that sleeps for a poll interval checks whether every thread of the block
// is parked at some barrier or has returned. Seen twice with no arrival in between, nothing can
// ever open a barrier again: the block is aborted (the waiters unwind with an exception) and the
// launch reports which barrier it stuck at. The bookkeeping uses relaxed atomics, which give
// ThreadSanitizer no happens-before edges that the kernel did not ask for.
#pragma once

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace cushim {

// Thrown out of a barrier of an aborted block; caught where the CUDA thread started.
struct BlockAborted {};

struct ThreadBlock;

class WatchedBarrier {
public:
    // Only while no thread is inside (between blocks).
    void reset(unsigned expected) {
        expected_ = expected;
        arrived_ = 0;
        ++generation_;
    }
    void arrive_and_wait(ThreadBlock& block);
    unsigned waiting() {
        std::lock_guard<std::mutex> lock(mutex_);
        return arrived_;
    }
    void wake_all() { cv_.notify_all(); }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    unsigned expected_ = 0, arrived_ = 0;
    unsigned long long generation_ = 0;
};

struct ThreadBlock {
    static constexpr auto poll_interval = std::chrono::milliseconds(20);
    static constexpr unsigned long long one_finished = 1ull << 32;

    unsigned threads;
    // Low 32 bits: threads parked at a barrier that has not opened; high 32 bits: threads that
    // returned from the kernel. One word, so a single load sees a consistent pair.
    std::atomic<unsigned long long> parked_and_finished{0};
    std::atomic<unsigned long long> arrivals{0};
    std::atomic<bool> aborted{false};
    std::mutex verdict_mutex;
    unsigned long long suspected_at_arrivals = ~0ull;
    std::string message;
    WatchedBarrier syncthreads;
    std::unique_ptr<WatchedBarrier[]> warps;

    explicit ThreadBlock(unsigned n) : threads(n), warps(new WatchedBarrier[warps_in(n)]) { reset(); }

    void reset() {
        parked_and_finished.store(0, std::memory_order_relaxed);
        suspected_at_arrivals = ~0ull;
        syncthreads.reset(threads);
        for (unsigned w = 0; w < warps_in(threads); ++w) warps[w].reset(std::min(32u, threads - 32 * w));
    }

    void check_for_deadlock() {
        const unsigned long long snapshot = parked_and_finished.load(std::memory_order_relaxed);
        const unsigned parked = unsigned(snapshot & 0xffffffffu), finished = unsigned(snapshot >> 32);
        if (parked == 0 || parked + finished != threads) return;
        const unsigned long long seen = arrivals.load(std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(verdict_mutex);
        if (aborted.load(std::memory_order_relaxed)) return;
        if (suspected_at_arrivals != seen) {
            suspected_at_arrivals = seen;  // confirm at the next poll
            return;
        }
        StuckThreads s{threads};
        s.at_syncthreads = syncthreads.waiting();
        for (unsigned w = 0; w < warps_in(threads); ++w) s.at_warp_op += warps[w].waiting();
        s.finished = finished;
        message = deadlock_message(block_index, s);
        aborted.store(true, std::memory_order_relaxed);
        syncthreads.wake_all();
        for (unsigned w = 0; w < warps_in(threads); ++w) warps[w].wake_all();
    }
};

inline void WatchedBarrier::arrive_and_wait(ThreadBlock& block) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (block.aborted.load(std::memory_order_relaxed)) throw BlockAborted{};
    const unsigned long long generation = generation_;
    block.arrivals.fetch_add(1, std::memory_order_relaxed);
    if (++arrived_ == expected_) {
        arrived_ = 0;
        ++generation_;
        // The waiters are released now, before they wake: count them out here, so the deadlock
        // check never mistakes released-but-sleeping threads for stuck ones.
        block.parked_and_finished.fetch_sub(expected_ - 1, std::memory_order_relaxed);
        cv_.notify_all();
        return;
    }
    block.parked_and_finished.fetch_add(1, std::memory_order_relaxed);
    while (generation_ == generation) {
        if (block.aborted.load(std::memory_order_relaxed)) throw BlockAborted{};
        if (cv_.wait_for(lock, ThreadBlock::poll_interval) == std::cv_status::timeout && generation_ == generation) {
            lock.unlock();
            block.check_for_deadlock();
            lock.lock();
        }
    }
}

inline thread_local ThreadBlock* current_thread_block = nullptr;

inline void block_barrier() { current_thread_block->syncthreads.arrive_and_wait(*current_thread_block); }
inline void warp_barrier() { current_thread_block->warps[warp_id()].arrive_and_wait(*current_thread_block); }

// Static __shared__ variables are process-wide statics in this mode, so launches take turns.
inline std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}

inline std::string run_grid(const KernelCall& call, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes) {
    std::lock_guard<std::mutex> one_launch_at_a_time(launch_mutex());
    const unsigned n = threads_in(block), blocks = threads_in(grid);
    ThreadBlock state(n);
    AlignedBytes shared, slots;
    shared.resize(dynamic_shared_bytes);
    slots.resize(std::size_t(warps_in(n)) * 32 * warp_slot_bytes);
    poison_shared(shared.data(), dynamic_shared_bytes);

    // The same n OS threads run every block; they meet here after each one, and the last to
    // arrive prepares the next block (or ends the grid) while the others are held.
    unsigned block_number = 0;
    bool grid_done = false;
    auto next_block = [&]() noexcept {
        if (state.aborted.load(std::memory_order_relaxed) || ++block_number == blocks) {
            grid_done = true;
            return;
        }
        state.reset();
        poison_shared(shared.data(), dynamic_shared_bytes);
    };
    std::barrier block_done(n, next_block);

    enum : int { starting, go, cancelled };
    std::atomic<int> gate{starting};
    auto cuda_thread = [&](unsigned tid) {
        gate.wait(starting);
        if (gate.load() == cancelled) return;
        current_thread_block = &state;
        current_dynamic_shared = shared.data();
        current_warp_slots = slots.data();
        block_dim = block;
        grid_dim = grid;
        enter_thread(tid);
        while (!grid_done) {
            block_index = unflatten(block_number, grid);
            try {
                call();
            } catch (const BlockAborted&) {
                // unwound out of a deadlocked barrier; the message is in `state`
            }
            state.parked_and_finished.fetch_add(ThreadBlock::one_finished, std::memory_order_relaxed);
            block_done.arrive_and_wait();
        }
        current_thread_block = nullptr;
    };

    std::vector<std::thread> pool;
    pool.reserve(n);
    try {
        for (unsigned t = 0; t < n; ++t) pool.emplace_back(cuda_thread, t);
    } catch (const std::system_error& e) {
        gate.store(cancelled);
        gate.notify_all();
        for (auto& t : pool) t.join();
        return "could not start " + std::to_string(n) + " OS threads for a block: " + e.what();
    }
    gate.store(go);
    gate.notify_all();
    for (auto& t : pool) t.join();
    return state.message;
}

}  // namespace cushim
