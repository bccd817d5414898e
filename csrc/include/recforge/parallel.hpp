// parallel_for on plain std::thread: no OpenMP runtime, threads block (join), never spin-wait.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace recforge {

// Threads worth starting for `work` units when each thread should get at least `min_work_per_thread`:
// starting a thread costs microseconds, and on a loaded machine joining one that the OS has not yet
// scheduled costs a time slice, so small jobs run on the calling thread alone.
inline int threads_for_work(int n_threads, double work, double min_work_per_thread) {
    const double useful = work / min_work_per_thread;
    if (useful < 2.0) return 1;
    return useful < n_threads ? static_cast<int>(useful) : std::max(1, n_threads);
}

// Run fn(task, thread_id) for task in [0, n_tasks) on up to n_threads threads.
// Tasks are handed out in chunks from a shared atomic counter (dynamic schedule), so uneven
// rows balance out. The first exception thrown by any worker stops the hand-out and is
// rethrown in the calling thread after every worker has joined.
template <typename Fn>
void parallel_for(int64_t n_tasks, int n_threads, Fn&& fn, int64_t chunk = 0) {
    if (n_tasks <= 0) return;
    n_threads = std::max(1, n_threads);
    if (n_threads > n_tasks) n_threads = static_cast<int>(n_tasks);
    if (n_threads == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    if (chunk <= 0) chunk = std::max<int64_t>(1, n_tasks / (static_cast<int64_t>(n_threads) * 16));

    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;

    auto worker = [&](int thread_id) {
        try {
            while (!failed.load(std::memory_order_relaxed)) {
                const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
                if (begin >= n_tasks) break;
                const int64_t end = std::min(n_tasks, begin + chunk);
                for (int64_t t = begin; t < end; ++t) fn(t, thread_id);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true);
        }
    };

    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(n_threads - 1));
    for (int i = 1; i < n_threads; ++i) threads.emplace_back(worker, i);
    worker(0);  // the calling thread works too
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace recforge
