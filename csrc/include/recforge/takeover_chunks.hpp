// Chunks with small results (a partial gradient row and a value each) on the calling thread and
// helper threads that it never waits for: when the chunks it can claim run out, the caller takes
// over the chunks a helper has held for over twice its own time per chunk and computes them
// itself. A helper preempted by a foreign process on its core (a busy machine: a scheduler slice
// is milliseconds) so costs the call about two chunks' time, where parallel_for's caller would
// wait for the helper to come back; an awake helper still does its share. The L-BFGS passes of
// logistic regression (one call per loss and gradient evaluation, ~1 ms each on Adult) run on it.
//
// A helper computes its chunk into its own scratch and publishes it (copies it into the results)
// only if no one took the chunk over, so every result is written by one thread, and chunk c's
// result is compute(c) whoever computes it: the results do not depend on the threads. A helper
// can still be inside a chunk of a call that has returned; it then reads that call's inputs, which
// the caller must keep alive while TakeoverCall::helpers_inside() > 0 (the Python bindings hold
// references to the arrays). Helpers never run Python code.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "recforge/parallel.hpp"

namespace recforge {

namespace detail {
// Tests: how long a helper sleeps after claiming each chunk (0: not at all), to make the caller
// take its chunks over; and the chunks taken over from helpers so far.
inline std::atomic<int64_t>& takeover_helper_delay_ns() {
    static std::atomic<int64_t> ns{0};
    return ns;
}
inline std::atomic<int64_t>& chunks_taken_over() {
    static std::atomic<int64_t> n{0};
    return n;
}
}  // namespace detail

// One call's chunks, shared by the caller and its helpers (a helper keeps the call alive while it
// is inside it).
class TakeoverCall {
  public:
    // compute(c, row) writes chunk c's `width` results to row and returns its value; it must not
    // throw, and it may run after the call has returned (on inputs the caller keeps alive).
    using Compute = std::function<double(int64_t, double*)>;

    TakeoverCall(int64_t n_chunks, int64_t width, double* rows, double* values, Compute compute)
        : n_chunks_(n_chunks),
          width_(width),
          rows_(rows),
          values_(values),
          compute_(std::move(compute)),
          state_(new std::atomic<int>[n_chunks]),
          claimed_ns_(new std::atomic<int64_t>[n_chunks]) {
        for (int64_t c = 0; c < n_chunks; ++c) state_[c].store(kFree, std::memory_order_relaxed);
    }

    // Helpers still inside a chunk of this call (the caller's inputs must stay alive until 0).
    int helpers_inside() const { return helpers_inside_.load(std::memory_order_acquire); }

    // The caller: claims chunks until none is left, then takes over those a helper has held for
    // over kGraceChunks of the caller's own time per chunk (kDefaultGraceNs if it ran none).
    void lead() {
        const int64_t start = detail::monotonic_ns();
        int64_t ran = 0;
        for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < n_chunks_; ++ran)
            if (take(c, kFree)) run_here(c);
        const int64_t grace =
            ran > 0 ? std::max<int64_t>(kMinGraceNs,
                                        kGraceChunks * (detail::monotonic_ns() - start) / ran)
                    : kDefaultGraceNs;
        for (int64_t c = 0; c < n_chunks_; ++c) {
            for (int spins = 0;; ++spins) {
                const int s = state_[c].load(std::memory_order_acquire);
                if (s == kLeader || s == kDone) break;
                const int64_t claimed = claimed_ns_[c].load(std::memory_order_relaxed);
                const bool wait = s == kPublishing  // a helper copying its result: ~100 ns
                                  || (s == kHelper && detail::monotonic_ns() - claimed < grace);
                if (!wait && take(c, s)) {  // free, or held too long: computed here instead
                    if (s == kHelper) detail::chunks_taken_over().fetch_add(1);
                    run_here(c);
                    break;
                }
                if (spins < 4096)
                    detail::cpu_relax();
                else
                    std::this_thread::yield();
            }
        }
    }

    // A helper (scratch: `width` doubles of its own): claims chunks until none is left.
    void help(std::vector<double>& scratch) {
        scratch.resize(static_cast<size_t>(width_));
        for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < n_chunks_;) {
            int expected = kFree;
            claimed_ns_[c].store(detail::monotonic_ns(),
                                 std::memory_order_relaxed);  // (published by the CAS)
            if (!state_[c].compare_exchange_strong(expected, kHelper, std::memory_order_acq_rel))
                continue;
            if (const int64_t delay = detail::takeover_helper_delay_ns().load(); delay > 0)
                std::this_thread::sleep_for(std::chrono::nanoseconds(delay));
            const double value = compute_(c, scratch.data());
            expected = kHelper;
            if (!state_[c].compare_exchange_strong(expected, kPublishing,
                                                   std::memory_order_acq_rel))
                continue;  // taken over by the caller meanwhile: its result stands
            std::memcpy(rows_ + c * width_, scratch.data(), sizeof(double) * width_);
            values_[c] = value;
            state_[c].store(kDone, std::memory_order_release);
        }
    }

    void enter() { helpers_inside_.fetch_add(1, std::memory_order_acq_rel); }
    void leave() { helpers_inside_.fetch_sub(1, std::memory_order_acq_rel); }

  private:
    enum : int { kFree, kLeader, kHelper, kPublishing, kDone };
    static constexpr int64_t kGraceChunks = 2;
    static constexpr int64_t kMinGraceNs = 20000;
    static constexpr int64_t kDefaultGraceNs = 200000;

    bool take(int64_t c, int from) {
        return state_[c].compare_exchange_strong(from, kLeader, std::memory_order_acq_rel);
    }
    void run_here(int64_t c) { values_[c] = compute_(c, rows_ + c * width_); }

    const int64_t n_chunks_, width_;
    double* const rows_;
    double* const values_;
    const Compute compute_;
    std::unique_ptr<std::atomic<int>[]> state_;
    std::unique_ptr<std::atomic<int64_t>[]> claimed_ns_;  // when its helper claimed it
    std::atomic<int64_t> next_{0};
    std::atomic<int> helpers_inside_{0};
};

namespace detail {

// The process's takeover helpers: threads that sleep between calls on a condition variable and,
// after a call, stay awake for the next one (detail::kLingerNs) only while the machine has a core
// free for them (a helper spinning on a core a foreign process uses would take the caller's share
// of the time the scheduler gives this process there).
class TakeoverCrew {
  public:
    // The crew of this process (per_process_instance).
    static TakeoverCrew& instance() { return per_process_instance<TakeoverCrew>(); }

    // Runs `call` with up to n_helpers helpers; false, without running it, if the crew is serving
    // another call.
    bool try_run(const std::shared_ptr<TakeoverCall>& call, int n_helpers) {
        std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
        if (!run_lock.owns_lock()) return false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while (static_cast<int>(helpers_.size()) < n_helpers)
                helpers_.push_back(new std::thread([this] { helper_loop(); }));
            current_ = call;
            max_helpers_ = n_helpers;
            joined_ = 0;
            calls_.post();
        }
        calls_.wake_all();
        call->lead();
        std::lock_guard<std::mutex> lock(mutex_);
        current_.reset();  // no helper joins it from now on
        return true;
    }

  private:
    friend TakeoverCrew& per_process_instance<TakeoverCrew>();
    TakeoverCrew() = default;

    void helper_loop() {
        std::vector<double> scratch;
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            seen = calls_.wait_for_new(lock, seen, [&] { return current_ != nullptr; });
            if (joined_ >= max_helpers_) continue;
            ++joined_;
            std::shared_ptr<TakeoverCall> call = current_;
            call->enter();
            lock.unlock();
            call->help(scratch);
            call->leave();
            call.reset();
            if (core_free_for_spinning()) calls_.linger(seen, kLingerNs);
            lock.lock();
        }
    }

    // Helpers are never joined (per_process_instance).
    std::vector<std::thread*> helpers_;
    std::mutex run_mutex_;
    std::mutex mutex_;
    CallSignal calls_;  // (posted under mutex_)
    std::shared_ptr<TakeoverCall> current_;
    int max_helpers_ = 0;
    int joined_ = 0;
};

}  // namespace detail

// Runs compute(c, rows + c * width) -> values[c] for every chunk c < n_chunks on the caller and up
// to n_threads - 1 helpers (the caller alone for n_threads <= 1, or when the crew is serving
// another call), and returns the call: the caller keeps compute's inputs alive while its
// helpers_inside() > 0. The results do not depend on n_threads.
inline std::shared_ptr<TakeoverCall> run_chunks_with_takeover(int64_t n_chunks, int n_threads,
                                                              int64_t width, double* rows,
                                                              double* values,
                                                              TakeoverCall::Compute compute) {
    auto call = std::make_shared<TakeoverCall>(n_chunks, width, rows, values, std::move(compute));
    const int helpers = static_cast<int>(std::min<int64_t>(n_threads, n_chunks)) - 1;
    if (helpers < 1 || !detail::TakeoverCrew::instance().try_run(call, helpers)) call->lead();
    return call;
}

}  // namespace recforge
