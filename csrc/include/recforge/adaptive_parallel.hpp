// parallel_for for Hogwild kernels (word2vec, LFM): tasks whose threads write the same rows, so
// that a second thread can make the whole slower — the cache lines the threads write move between
// their cores, at ~60 ns each when the cores share a cache and at ~330 ns when they do not (two
// vCPUs the host placed far apart: a 2-thread CBOW epoch took 0.75-0.93 s there, 0.48-0.62 s on
// one thread); or when one core is taken by another process. parallel_for_adaptive measures, as it
// runs, the work of its threads together and of the calling thread alone (per CPU-second, scaled
// by the cores each gets), and runs the tasks the faster way, measuring again from time to time.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>

#include "recforge/parallel.hpp"

namespace recforge {

namespace detail {

// Which way the tasks run. Each way's work per CPU-second (tasks per second of its threads' CPU
// time: what the cache lines moving between the cores cost shows there, a preemption does not) is
// measured in windows of wall time, and scaled by the cores the way gets on the machine's current
// load (k threads and `others` runnable threads of other work on `cores` cores: k * min(1,
// cores / (k + others)) — on 2 cores with one taken, the team's 2 threads get 4/3, the caller
// alone a whole core). Alternately a window of one way (the way chosen last: a commit, which grows
// while the choice stays the same and ends early when that way falls behind the other's last
// measure) and a short probe of the other, then the faster of the two — but the way chosen last
// (at first, the team) changes only for one kSwitchMargin faster, so that the noise of a busy
// machine's measures does not flip it. The first window is a probe of the team, the second one of
// the caller alone.
class AdaptiveSchedule {
  public:
    static constexpr double kProbeSeconds = 0.04;  // a probe window ...
    static constexpr int64_t kMinWindowTasks = 8;  // ... of at least this many tasks
    static constexpr double kFirstCommitSeconds = 0.25;
    static constexpr double kMaxCommitSeconds = 2.0;
    static constexpr double kSwitchMargin = 1.1;
    // a choice this clear lets the commit grow 4x, else 2x
    static constexpr double kClearRatio = 1.5;

    AdaptiveSchedule(double now, int n_threads, int cores)
        : n_threads_(n_threads), cores_(std::max(1, cores)), last_now_(now) {
        start_window(now, 0, 0.0, true, kProbeSeconds);
    }

    bool team() const { return team_; }
    int switches() const { return switches_; }
    double last_update() const { return last_now_; }

    // The cores k threads get next to `others` runnable threads of other work.
    double cores_for(int k, int others) const {
        return k * std::min(1.0, static_cast<double>(cores_) / (k + std::max(0, others)));
    }

    // After a task: the clock (seconds), the tasks done so far by all threads and the CPU seconds
    // they took; others() reads the machine's runnable threads besides this call's (called at the
    // end of a window only). Returns team().
    template <typename Others>
    bool update(double now, int64_t done, double cpu, Others&& others) {
        last_now_ = now;
        last_done_ = done;
        last_cpu_ = cpu;
        if (done - window_done_ < kMinWindowTasks) return team_;
        if (now - window_start_ < window_seconds_) {
            if (probing_ || !has_choice_ || !lost_its_lead(now, done, cpu, others)) return team_;
        } else {
            per_cpu_[team_] = per_cpu(done - window_done_, cpu - window_cpu_);
        }
        if (!probing_) {  // a commit (or the first probe) ended: probe the other way
            probing_ = true;
            start_window(now, done, cpu, !team_, kProbeSeconds);
            return team_;
        }
        probing_ = false;
        const Rates rates = estimate(per_cpu_[0], per_cpu_[1], others());
        const bool last_was_team = !has_choice_ || choice_;
        const bool team = rates.leads(!last_was_team) ? !last_was_team : last_was_team;
        const double ratio = team ? rates.team / std::max(rates.solo, 1e-12)
                                  : rates.solo / std::max(rates.team, 1e-12);
        if (has_choice_ && team == choice_)
            commit_ = std::min(kMaxCommitSeconds, commit_ * (ratio >= kClearRatio ? 4.0 : 2.0));
        else
            commit_ = kFirstCommitSeconds;
        has_choice_ = true;
        choice_ = team;
        start_window(now, done, cpu, team, commit_);
        return team_;
    }

    // Go on in a new call, whose counts of tasks done and CPU seconds start again from 0, from
    // where the last call stopped; the time in between does not count.
    void resume(double now) {
        window_start_ += now - last_now_;
        check_start_ += now - last_now_;
        window_done_ -= last_done_;
        check_done_ -= last_done_;
        window_cpu_ -= last_cpu_;
        check_cpu_ -= last_cpu_;
        last_now_ = now;
        last_done_ = 0;
        last_cpu_ = 0.0;
    }

  private:
    // Tasks per second the caller alone and the team would do, from their tasks per CPU-second.
    struct Rates {
        double solo, team;
        // whether that way (true: the team) is kSwitchMargin faster than the other
        bool leads(bool team_way) const {
            return team_way ? team > kSwitchMargin * solo : solo > kSwitchMargin * team;
        }
    };

    Rates estimate(double solo_per_cpu, double team_per_cpu, int others) const {
        return {solo_per_cpu * cores_for(1, others), team_per_cpu * cores_for(n_threads_, others)};
    }

    static double per_cpu(int64_t tasks, double cpu) {
        return static_cast<double>(tasks) / std::max(cpu, 1e-9);
    }

    // During a commit, every kProbeSeconds: whether the way chosen did less over that time than
    // the other way did when last measured (the host moved the team's cores apart, a process took
    // a core): then the commit ends early, with that measure as its own.
    template <typename Others>
    bool lost_its_lead(double now, int64_t done, double cpu, Others&& others) {
        if (now - check_start_ < kProbeSeconds || done - check_done_ < kMinWindowTasks)
            return false;
        const double measured = per_cpu(done - check_done_, cpu - check_cpu_);
        check_start_ = now;
        check_done_ = done;
        check_cpu_ = cpu;
        const Rates rates = team_ ? estimate(per_cpu_[0], measured, others())
                                  : estimate(measured, per_cpu_[1], others());
        const bool lost = rates.leads(!team_);
        if (lost) per_cpu_[team_] = measured;
        return lost;
    }

    void start_window(double now, int64_t done, double cpu, bool team, double seconds) {
        if (team != team_) ++switches_;
        team_ = team;
        window_start_ = check_start_ = now;
        window_done_ = check_done_ = done;
        window_cpu_ = check_cpu_ = cpu;
        window_seconds_ = seconds;
    }

    const int n_threads_, cores_;
    bool team_ = true;
    bool probing_ = false;
    bool has_choice_ = false, choice_ = true;
    double per_cpu_[2] = {0.0, 0.0};  // tasks per CPU-second: [0] the caller alone, [1] the team
    double window_start_ = 0.0, window_seconds_ = 0.0, commit_ = kFirstCommitSeconds;
    double check_start_ = 0.0, last_now_ = 0.0;
    double window_cpu_ = 0.0, check_cpu_ = 0.0, last_cpu_ = 0.0;
    int64_t window_done_ = 0, check_done_ = 0, last_done_ = 0;
    int switches_ = 0;
};

// One kernel's schedule, kept from one call to the next (the epochs of a fit), so that a call goes
// on with the last one's measurements and choice instead of probing afresh. A call of another
// number of tasks or threads or one that starts over kForgetSeconds after the last one ended starts
// afresh; a call made while another holds the memory (two Python threads training at once) keeps a
// schedule of its own.
struct AdaptiveMemory {
    static constexpr double kForgetSeconds = 30.0;
    std::mutex mutex;
    std::optional<AdaptiveSchedule> schedule;
    int64_t n_tasks = -1;  // (of the call that left the schedule)
    int n_threads = 0;
};

// Whether parallel_for_adaptive measures and may run the caller alone (off: it is parallel_for;
// benchmarks compare the two in one process).
inline std::atomic<bool>& adaptive_schedule_on() {
    static std::atomic<bool> on{true};
    return on;
}

// monotonic_ns() in seconds.
inline double steady_seconds() { return 1e-9 * static_cast<double>(monotonic_ns()); }

}  // namespace detail

// What parallel_for_adaptive did: the tasks run while the calling thread ran alone, those run while
// the team did (by any of its threads), and how often it switched between the two.
struct AdaptiveRun {
    int64_t solo_tasks = 0;
    int64_t team_tasks = 0;
    int switches = 0;
};

// fn(task, thread_id) for task in [0, n_tasks) on up to n_threads threads (thread_id < n_threads),
// one task at a time from a shared counter, each thread's tasks in increasing order; on the calling
// thread alone whenever that does more work per second than the threads together
// (detail::AdaptiveSchedule, measured in windows of at least 40 ms; with `memory`, across the
// calls of a kernel). The threads other than the caller leave after their task when the caller goes
// on alone (a call that ends so waits for nobody), and are called again from the pool when the team
// is chosen again. The first exception thrown by a task stops the hand-out and is rethrown once no
// thread runs a task. For tasks whose results do not depend on which thread runs them.
template <typename Fn>
AdaptiveRun parallel_for_adaptive(int64_t n_tasks, int n_threads, Fn&& fn,
                                  detail::AdaptiveMemory* memory = nullptr) {
    AdaptiveRun run;
    if (n_tasks <= 0) return run;
    n_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, n_tasks)));
    static const bool thread_clock = detail::thread_cpu_seconds() >= 0.0;
    if (n_threads == 1 || detail::Team::current() != nullptr ||
        !detail::adaptive_schedule_on().load(std::memory_order_relaxed) || !thread_clock) {
        parallel_for(n_tasks, n_threads, fn, 1);
        return run;
    }
    const double start = detail::steady_seconds();
    std::unique_lock<std::mutex> remembered;
    if (memory != nullptr)
        remembered = std::unique_lock<std::mutex>(memory->mutex, std::try_to_lock);
    std::optional<detail::AdaptiveSchedule> own;
    detail::AdaptiveSchedule* schedule;
    if (remembered.owns_lock()) {
        auto& kept = memory->schedule;
        if (kept && memory->n_tasks == n_tasks && memory->n_threads == n_threads &&
            start - kept->last_update() < detail::AdaptiveMemory::kForgetSeconds)
            kept->resume(start);
        else
            kept.emplace(start, n_threads, detail::machine_cores());
        memory->n_tasks = n_tasks;
        memory->n_threads = n_threads;
        schedule = &*kept;
    } else {
        schedule = &own.emplace(start, n_threads, detail::machine_cores());
    }
    const int switches_before = schedule->switches();
    std::atomic<int64_t> next{0}, done{0}, member_tasks{0}, cpu_ns{0};
    std::atomic<bool> team_on{false}, failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    // task t on thread tid, whose CPU clock read cpu_mark after its last task (one clock read a
    // task: the few instructions between two tasks count with the next one)
    auto run_task = [&](int64_t t, int tid, double& cpu_mark) {
        try {
            fn(t, tid);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
        const double cpu_now = detail::thread_cpu_seconds();
        cpu_ns.fetch_add(static_cast<int64_t>(1e9 * (cpu_now - cpu_mark)),
                         std::memory_order_relaxed);
        cpu_mark = cpu_now;
        done.fetch_add(1, std::memory_order_release);
    };
    // the machine's runnable threads that are not this call's (its running ones: the team's, or
    // the caller alone): the lower of this reading and the last, so that a thread runnable for an
    // instant (a kernel worker) does not count as a busy core
    int last_others = -1;
    auto others = [&] {
        const int runnable = detail::runnable_threads();
        const int now =
            std::max(0, runnable < 0 ? 0 : runnable - (schedule->team() ? n_threads : 1));
        const int lower = last_others < 0 ? now : std::min(now, last_others);
        last_others = now;
        return lower;
    };
    // The caller's tasks until none is left (returns true) or the schedule wants the team while no
    // members work with the caller (false). in_team: called as the lead of a team phase, whose
    // members work until the schedule chooses the caller alone.
    double cpu_mark = detail::thread_cpu_seconds();
    auto lead = [&](bool in_team) {
        bool members = in_team;
        while (!failed.load(std::memory_order_relaxed)) {
            const bool team = schedule->team();
            if (team && !members) return false;
            const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
            if (t >= n_tasks) return true;
            run_task(t, 0, cpu_mark);
            ++(team ? run.team_tasks : run.solo_tasks);
            const int64_t tasks_done = done.load(std::memory_order_acquire);
            const double cpu = 1e-9 * static_cast<double>(cpu_ns.load(std::memory_order_relaxed));
            if (schedule->update(detail::steady_seconds(), tasks_done, cpu, others) != team &&
                team) {
                team_on.store(false, std::memory_order_release);  // (they leave after their task)
                members = false;
            }
        }
        return true;
    };
    detail::Job job;
    job.n_tasks = n_threads - 1;
    job.chunk = 1;
    job.max_threads = n_threads;
    job.fn = [&](int64_t, int tid) {  // a member (tid 0 is the caller's, done with the lead)
        if (tid == 0) return;
        double mark = detail::thread_cpu_seconds();
        while (team_on.load(std::memory_order_acquire) && !failed.load(std::memory_order_relaxed)) {
            const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
            if (t >= n_tasks) break;
            run_task(t, tid, mark);
            member_tasks.fetch_add(1, std::memory_order_relaxed);
        }
    };
    for (bool finished = false; !finished;) {
        if (schedule->team()) {  // a team phase
            team_on.store(true, std::memory_order_release);
            job.next.store(0, std::memory_order_relaxed);
            job.next_thread_id.store(1, std::memory_order_relaxed);
            job.lead = [&] {
                finished = lead(true);
                team_on.store(false, std::memory_order_release);
            };
            detail::run_job(job);
            if (job.error) std::rethrow_exception(job.error);
        } else {
            finished = lead(false);
        }
    }
    run.switches = schedule->switches() - switches_before;
    run.team_tasks += member_tasks.load();
    if (error) std::rethrow_exception(error);
    return run;
}

}  // namespace recforge
