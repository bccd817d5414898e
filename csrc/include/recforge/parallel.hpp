// parallel_for on plain std::thread: no OpenMP runtime; idle threads block, they never spin-wait.
//
// Workers live in one process-wide pool and sleep on a condition variable between calls, so a
// kernel called thousands of times (one GBDT node after another) does not pay a thread start per
// call. The calling thread works too and hands out chunks of tasks from a shared atomic counter;
// when the chunks run out it waits only for the workers that actually joined this call, never for
// one the OS has not scheduled yet — so on a machine with a busy core, extra threads cost almost
// nothing. A pool found busy (a concurrent or nested call) and a child process after fork() fall
// back to threads started for the call.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _WIN32
#include <process.h>
#define RECFORGE_GETPID _getpid
#else
#include <unistd.h>
#define RECFORGE_GETPID getpid
#endif

namespace recforge {

// Threads worth using for `work` units when each thread should get at least `min_work_per_thread`:
// small jobs run on the calling thread alone.
inline int threads_for_work(int n_threads, double work, double min_work_per_thread) {
    const double useful = work / min_work_per_thread;
    if (useful < 2.0) return 1;
    return useful < n_threads ? static_cast<int>(useful) : std::max(1, n_threads);
}

namespace detail {

// One parallel_for call: tasks [0, n_tasks) in chunks, claimed by up to max_threads threads.
struct Job {
    std::function<void(int64_t, int)> fn;  // fn(task, thread_id)
    int64_t n_tasks = 0;
    int64_t chunk = 1;
    int max_threads = 1;
    std::atomic<int64_t> next{0};
    std::atomic<int> next_thread_id{1};  // 0 is the caller
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;

    void work(int thread_id) {
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
    }
};

class Pool {
  public:
    // The pool of this process (a child after fork() gets a fresh one; the parent's is abandoned).
    static Pool& instance() {
        static std::mutex create_mutex;
        static Pool* pool = nullptr;
        std::lock_guard<std::mutex> lock(create_mutex);
        if (pool == nullptr || pool->pid_ != RECFORGE_GETPID())
            pool = new Pool();  // never destroyed: see below
        return *pool;
    }

    // Run `job` on the caller plus up to job.max_threads - 1 pool workers. Returns false, without
    // running anything, if the pool is serving another call.
    bool try_run(Job& job) {
        std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
        if (!run_lock.owns_lock()) return false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while (static_cast<int>(workers_.size()) < job.max_threads - 1)
                workers_.push_back(new std::thread([this] { worker_loop(); }));
            current_ = &job;
            ++generation_;
        }
        wake_.notify_all();
        job.work(0);
        std::unique_lock<std::mutex> lock(mutex_);
        current_ = nullptr;  // workers that have not joined yet will not
        idle_.wait(lock, [this] { return inside_ == 0; });
        return true;
    }

  private:
    Pool() : pid_(RECFORGE_GETPID()) {}

    void worker_loop() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return current_ != nullptr && generation_ != seen; });
            seen = generation_;
            Job* job = current_;
            const int thread_id = job->next_thread_id.fetch_add(1);
            if (thread_id >= job->max_threads) continue;
            ++inside_;
            lock.unlock();
            job->work(thread_id);
            lock.lock();
            if (--inside_ == 0) idle_.notify_all();
        }
    }

    // Workers are detached in spirit: the pool is never destroyed, so no std::thread destructor
    // runs at interpreter exit (joining sleeping workers there could deadlock); the OS reclaims
    // them.
    std::vector<std::thread*> workers_;
    std::mutex run_mutex_;
    std::mutex mutex_;
    std::condition_variable wake_, idle_;
    Job* current_ = nullptr;
    uint64_t generation_ = 0;
    int inside_ = 0;
    const decltype(RECFORGE_GETPID()) pid_;
};

}  // namespace detail

// Run fn(task, thread_id) for task in [0, n_tasks) on up to n_threads threads (thread_id <
// n_threads). Tasks are handed out in chunks from a shared counter (dynamic schedule). The first
// exception thrown by any task stops the hand-out and is rethrown in the calling thread once no
// thread runs a task.
template <typename Fn>
void parallel_for(int64_t n_tasks, int n_threads, Fn&& fn, int64_t chunk = 0) {
    if (n_tasks <= 0) return;
    n_threads = std::max(1, n_threads);
    if (n_threads > n_tasks) n_threads = static_cast<int>(n_tasks);
    if (n_threads == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    detail::Job job;
    job.fn = [&fn](int64_t t, int tid) { fn(t, tid); };
    job.n_tasks = n_tasks;
    job.chunk =
        chunk > 0 ? chunk : std::max<int64_t>(1, n_tasks / (static_cast<int64_t>(n_threads) * 16));
    job.max_threads = n_threads;

    if (!detail::Pool::instance().try_run(job)) {
        std::vector<std::thread> threads;
        threads.reserve(static_cast<size_t>(n_threads - 1));
        for (int i = 1; i < n_threads; ++i) threads.emplace_back([&job, i] { job.work(i); });
        job.work(0);
        for (auto& t : threads) t.join();
    }
    if (job.error) std::rethrow_exception(job.error);
}

}  // namespace recforge
