// parallel_for on plain std::thread: no OpenMP runtime; idle pool workers block, they never
// spin-wait. (Waits inside a call — a caller for its joined workers, parallel_team's threads
// between its steps — spin, yielding their core, for at most detail::kSpinNs, then block.)
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
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#ifdef _WIN32
#include <process.h>
#define RECFORGE_GETPID _getpid
#else
#include <fcntl.h>
#include <unistd.h>
#define RECFORGE_GETPID getpid
#endif

namespace recforge {

namespace detail {
class Team;
// The team whose leader is this thread while it runs parallel_team's body outside a step, else
// null.
inline Team*& current_team() {
    static thread_local Team* team = nullptr;
    return team;
}

// Makes `team` this thread's current team (nullptr: none) while it lives; restores the previous
// one when it ends, an exception included.
class CurrentTeamScope {
  public:
    explicit CurrentTeamScope(Team* team) : saved_(current_team()) { current_team() = team; }
    ~CurrentTeamScope() { current_team() = saved_; }
    CurrentTeamScope(const CurrentTeamScope&) = delete;
    CurrentTeamScope& operator=(const CurrentTeamScope&) = delete;

  private:
    Team* saved_;
};
}  // namespace detail

// Threads worth using for `work` units when each thread should get at least `min_work_per_thread`:
// small jobs run on the calling thread alone. (Inside parallel_team too: a lower threshold there,
// 1/8, made Adult's best-first trees slower — the partial histograms then move between the cores'
// caches for small steps.)
inline int threads_for_work(int n_threads, double work, double min_work_per_thread) {
    const double useful = work / min_work_per_thread;
    if (useful < 2.0) return 1;
    return useful < n_threads ? static_cast<int>(useful) : std::max(1, n_threads);
}

namespace detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
}

// How long a wait inside a call spins before it blocks: the steps of a parallel_team (a GBDT tree's
// splits) find its threads awake instead of paying a wake-up, which takes 20-100 us on a loaded or
// virtualised machine, and a caller whose joined workers finish within it is not put to sleep.
// The spin yields its core every few microseconds, so a foreign process that wants it gets it.
constexpr int64_t kSpinNs = 100000;

// How long a pool worker, done with a parallel_team call's job, stays awake for the next job before
// it blocks: a GBDT fit's trees (one team call each) follow each other after a little Python work
// (0.1-0.3 ms on Adult), and a worker woken from its condition variable for each tree arrived too
// late for the tree's first step (the root histogram of Adult then ran on the caller alone).
constexpr int64_t kLingerNs = 1000000;

// steady_clock's time in nanoseconds.
inline int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Spin (yielding) until done() or spin_ns have passed; returns done().
template <typename Done>
bool spin_until(Done&& done, int64_t spin_ns = kSpinNs) {
    const auto start = std::chrono::steady_clock::now();
    for (int spins = 1; !done(); ++spins) {
        if (spins % 64 != 0) {
            cpu_relax();
            continue;
        }
        if (std::chrono::steady_clock::now() - start > std::chrono::nanoseconds(spin_ns))
            return done();
        std::this_thread::yield();
    }
    return true;
}

// One parallel_for call: tasks [0, n_tasks) in chunks, claimed by up to max_threads threads.
struct Job {
    std::function<void(int64_t, int)> fn;  // fn(task, thread_id)
    std::function<void()> lead;            // if set: run by the caller before it claims tasks
    int64_t n_tasks = 0;
    int64_t chunk = 1;
    int max_threads = 1;
    int64_t linger_ns = 0;  // how long the workers stay awake for the next job after this one
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

// The pool workers spinning for the next job (Job::linger_ns): runnable threads of this process
// that the load check of a team call does not count as the machine's.
inline std::atomic<int>& lingering_workers() {
    static std::atomic<int> n{0};
    return n;
}

// The T of this process, made by T() on first use, and again in a child after fork() (the parent's
// is abandoned: its threads were not copied). Never destroyed: no std::thread destructor runs at
// interpreter exit (joining sleeping threads there could deadlock); the OS reclaims them.
template <class T>
T& per_process_instance() {
    static std::mutex create_mutex;
    static T* instance = nullptr;
    static decltype(RECFORGE_GETPID()) owner = 0;
    std::lock_guard<std::mutex> lock(create_mutex);
    if (instance == nullptr || owner != RECFORGE_GETPID()) {
        instance = new T();
        owner = RECFORGE_GETPID();
    }
    return *instance;
}

// How threads sleeping between calls learn of a new one (the pool's workers, the takeover crew's
// helpers): the caller posts it as a new generation (under its owner's mutex) and wakes them; a
// thread, holding that mutex, waits for a generation it has not seen while a call is posted, and
// after its share may linger, spinning for a while until the next call is posted.
class CallSignal {
  public:
    void post() { generation_.fetch_add(1, std::memory_order_release); }  // (under the mutex)
    void wake_all() { wake_.notify_all(); }

    // Blocks on `lock` until posted() and a generation other than `seen`; returns that generation.
    template <typename Posted>
    uint64_t wait_for_new(std::unique_lock<std::mutex>& lock, uint64_t seen, Posted&& posted) {
        wake_.wait(lock,
                   [&] { return posted() && generation_.load(std::memory_order_relaxed) != seen; });
        return generation_.load(std::memory_order_relaxed);
    }

    // Spins (yielding, the mutex not held) for up to linger_ns or until a call after `seen` is
    // posted.
    void linger(uint64_t seen, int64_t linger_ns) const {
        spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, linger_ns);
    }

  private:
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};  // (changed under the owner's mutex)
};

class Pool {
  public:
    // The pool of this process (per_process_instance).
    static Pool& instance() { return per_process_instance<Pool>(); }

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
            calls_.post();
        }
        calls_.wake_all();
        if (job.lead) job.lead();
        job.work(0);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            current_ = nullptr;  // workers that have not joined yet will not
        }
        auto idle = [this] { return inside_.load(std::memory_order_acquire) == 0; };
        if (!spin_until(idle)) {
            std::unique_lock<std::mutex> lock(mutex_);
            idle_.wait(lock, idle);
        }
        return true;
    }

  private:
    friend Pool& per_process_instance<Pool>();
    Pool() = default;

    void worker_loop() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            seen = calls_.wait_for_new(lock, seen, [&] { return current_ != nullptr; });
            Job* job = current_;
            const int thread_id = job->next_thread_id.fetch_add(1);
            if (thread_id >= job->max_threads) continue;
            inside_.fetch_add(1, std::memory_order_relaxed);
            const int64_t linger_ns = job->linger_ns;  // (the job ends once inside_ drops)
            lock.unlock();
            job->work(thread_id);
            lock.lock();
            if (inside_.fetch_sub(1, std::memory_order_acq_rel) == 1) idle_.notify_all();
            if (linger_ns > 0) {
                lock.unlock();
                lingering_workers().fetch_add(1, std::memory_order_relaxed);
                calls_.linger(seen, linger_ns);
                lingering_workers().fetch_sub(1, std::memory_order_relaxed);
                lock.lock();
            }
        }
    }

    // Workers are never joined (per_process_instance).
    std::vector<std::thread*> workers_;
    std::mutex run_mutex_;
    std::mutex mutex_;
    CallSignal calls_;  // (posted under mutex_)
    std::condition_variable idle_;
    Job* current_ = nullptr;
    std::atomic<int> inside_{0};  // (changed under mutex_)
};

}  // namespace detail

namespace detail {

// Run `job` on the pool, or on threads started for it when the pool is serving another call.
inline void run_job(Job& job) {
    if (!Pool::instance().try_run(job)) {
        std::vector<std::thread> threads;
        threads.reserve(static_cast<size_t>(job.max_threads - 1));
        for (int i = 1; i < job.max_threads; ++i) threads.emplace_back([&job, i] { job.work(i); });
        if (job.lead) job.lead();
        job.work(0);
        for (auto& t : threads) t.join();
    }
}

// The threads of one parallel_team call. The leader (the calling thread) runs the body; every
// parallel_for it makes becomes a phase: its tasks, in chunks, are claimed by the leader and the
// members from one atomic word, which packs the phase number, the phase's thread limit, its chunk
// count and the next chunk, so that a claim (a compare-and-swap of the word) is valid for exactly
// the phase it names — a member that is late for a phase cannot claim a chunk of the next one. The
// leader waits for the chunks claimed, never for a member that claimed none (a member the OS has
// not scheduled costs nothing). Between phases the members spin for kSpinNs (phases of a tree
// follow each other within microseconds), and then block on a condition variable until the next
// phase or the end of the team.
class Team {
  public:
    static constexpr int kMaxSize = 255;

    // A step whose leader, done with its own chunks, still waited this long and over four times
    // its own time for a member's: the member was preempted while holding a chunk (a busy core;
    // a preemption lasts a scheduler time slice, milliseconds).
    static constexpr int64_t kLateNs = 1000000;

    // solo: the steps run on the leader alone (see parallel_team)
    explicit Team(int size, bool solo = false) : size_(std::min(size, kMaxSize)), late_(solo) {}

    static Team*& current() { return current_team(); }

    // Whether a member was late at a step (the later steps then ran on the leader alone).
    bool late() const { return late_; }

    // Leader: fn(task, thread_id) for task in [0, n_tasks) on up to n_threads members
    // (thread_id < n_threads); returns when every task has run; rethrows a task's exception.
    template <typename Fn>
    void run(int64_t n_tasks, int n_threads, Fn& fn, int64_t chunk) {
        if (late_) {  // (as the same steps outside a team: the results do not change)
            CurrentTeamScope outside(nullptr);
            for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
            return;
        }
        n_threads = std::max(1, std::min(n_threads, size_));
        if (chunk <= 0) chunk = std::max<int64_t>(1, n_tasks / (int64_t{n_threads} * 16));
        chunk = std::max(chunk, (n_tasks + kMaxChunks - 1) / kMaxChunks);
        const int64_t n_chunks = (n_tasks + chunk - 1) / chunk;
        call_ = [](void* ctx, int64_t t, int tid) {
            (*static_cast<std::remove_reference_t<Fn>*>(ctx))(t, tid);
        };
        ctx_ = const_cast<void*>(static_cast<const void*>(&fn));
        n_tasks_ = n_tasks;
        chunk_ = chunk;
        done_.store(0, std::memory_order_relaxed);
        phase_ = (phase_ + 1) & kPhaseMask;
        current() = nullptr;  // (a task's own parallel_for runs outside the team)
        claim_.store(pack(phase_, n_threads, n_chunks, 0), std::memory_order_seq_cst);
        wake_sleepers();
        const auto start = std::chrono::steady_clock::now();
        work(0);
        if (done_.load(std::memory_order_acquire) < n_chunks) {
            const auto own = std::chrono::steady_clock::now() - start;
            const auto late =
                std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(4 * own),
                         std::chrono::nanoseconds(kLateNs));
            const auto waiting = std::chrono::steady_clock::now();
            for (int spins = 0; done_.load(std::memory_order_acquire) < n_chunks; ++spins) {
                if (spins < 4096) {
                    cpu_relax();
                    continue;
                }
                std::this_thread::yield();
                if (!late_ && std::chrono::steady_clock::now() - waiting > late) late_ = true;
            }
        }
        current() = this;
        if (failed_.load(std::memory_order_relaxed)) {
            std::exception_ptr e = error_;
            error_ = nullptr;
            failed_.store(false, std::memory_order_relaxed);
            std::rethrow_exception(e);
        }
    }

    // Member thread_id (>= 1; 0 is the leader's, a member arriving after close() leaves at once):
    // serve phases until close().
    void serve(int thread_id) {
        if (thread_id <= 0 || thread_id >= size_) return;
        uint64_t seen = work(thread_id);  // (the phase under way when it arrives, too)
        while (wait_phase(seen)) seen = work(thread_id);
    }

    void close() {
        closed_.store(true, std::memory_order_seq_cst);
        wake_sleepers();
    }

  private:
    // the claim word: phase (20 bits) | thread limit (8) | chunks (18) | next chunk (18)
    static constexpr uint64_t kPhaseMask = (uint64_t{1} << 20) - 1;
    static constexpr int64_t kMaxChunks = (int64_t{1} << 17);
    static uint64_t pack(uint64_t phase, int threads, int64_t n_chunks, int64_t next) {
        return (phase << 44) | (static_cast<uint64_t>(threads) << 36) |
               (static_cast<uint64_t>(n_chunks) << 18) | static_cast<uint64_t>(next);
    }
    static uint64_t phase_of(uint64_t w) { return w >> 44; }
    static int threads_of(uint64_t w) { return static_cast<int>((w >> 36) & 0xff); }
    static int64_t chunks_of(uint64_t w) { return static_cast<int64_t>((w >> 18) & 0x3ffff); }
    static int64_t next_of(uint64_t w) { return static_cast<int64_t>(w & 0x3ffff); }

    // Claim and run chunks of the current phase while there are any this thread may take; returns
    // the phase it stopped in.
    uint64_t work(int tid) {
        uint64_t w = claim_.load(std::memory_order_acquire);
        for (;;) {
            if (tid >= threads_of(w) || next_of(w) >= chunks_of(w)) return phase_of(w);
            if (!claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                              std::memory_order_acquire))
                continue;
            const int64_t begin = next_of(w) * chunk_;
            const int64_t end = std::min(n_tasks_, begin + chunk_);
            if (!failed_.load(std::memory_order_relaxed)) {
                try {
                    for (int64_t t = begin; t < end; ++t) call_(ctx_, t, tid);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(mutex_);
                    if (!error_) error_ = std::current_exception();
                    failed_.store(true, std::memory_order_relaxed);
                }
            }
            done_.fetch_add(1, std::memory_order_release);
            w = claim_.load(std::memory_order_acquire);
        }
    }

    // Wait until a phase other than `seen` is published (true) or the team is closed (false).
    bool wait_phase(uint64_t seen) {
        auto fresh = [&] {
            return phase_of(claim_.load(std::memory_order_acquire)) != seen ||
                   closed_.load(std::memory_order_acquire);
        };
        if (!spin_until(fresh)) {
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            wake_.wait(lock, fresh);
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
        }
        return phase_of(claim_.load(std::memory_order_acquire)) != seen;
    }

    void wake_sleepers() {
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
            }
            wake_.notify_all();
        }
    }

    const int size_;
    bool late_;  // (the leader's)
    std::atomic<uint64_t> claim_{0};
    std::atomic<int64_t> done_{0};
    std::atomic<bool> closed_{false};
    std::atomic<bool> failed_{false};
    std::atomic<int> sleepers_{0};
    uint64_t phase_ = 0;  // (the leader's)
    void (*call_)(void*, int64_t, int) = nullptr;
    void* ctx_ = nullptr;
    int64_t n_tasks_ = 0, chunk_ = 1;
    std::exception_ptr error_;
    std::mutex mutex_;
    std::condition_variable wake_;
};

// CPU seconds this thread has run (-1 where not measured).
inline double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID) && !defined(_WIN32)
    timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
#endif
    return -1.0;
}

// Crowded parallel_team calls: a member was late (Team::late), or the leader itself ran less than
// kMinLeaderShare of the call's time (more runnable threads than cores: a core taken by another
// process, on which the team's spinning member would crowd the leader). After such a call the
// next calls run solo — the body on the calling thread alone, as one thread would, the members
// left asleep — for a window that grows 4x with each crowded call (up to kMaxSoloCalls) and starts
// again from one after a call that was not. A busy core so costs a crowded call now and then; an
// idle machine, on which neither happens, never runs solo. reset() forgets the past: a kernel
// that starts a new run of calls (a GBDT fit) calls reset_team_health(), so that a busy spell
// during an earlier fit does not send the first trees of this one solo.
struct TeamHealth {
    static constexpr int64_t kMaxSoloCalls = 256;
    static constexpr double kMinLeaderShare = 0.75;
    static constexpr double kMinMeasuredSeconds = 0.0005;
    std::atomic<int64_t> solo_left{0};
    std::atomic<int64_t> window{1};

    void record(bool late) {
        if (!late) {
            window.store(1, std::memory_order_relaxed);
            return;
        }
        const int64_t w = window.load(std::memory_order_relaxed);
        solo_left.store(w, std::memory_order_relaxed);
        window.store(std::min(4 * w, kMaxSoloCalls), std::memory_order_relaxed);
    }

    void reset() {
        solo_left.store(0, std::memory_order_relaxed);
        window.store(1, std::memory_order_relaxed);
    }
};

inline TeamHealth& team_health() {
    static TeamHealth health;
    return health;
}

// The runnable threads of the machine in the text of /proc/loadavg ("0.52 0.40 0.31 3/210 9876":
// the fourth field's first number, the calling thread included), or -1.
inline int runnable_in_loadavg(const char* text) {
    int spaces = 0;
    const char* c = text;
    for (; *c && spaces < 3; ++c) spaces += *c == ' ';
    if (spaces < 3 || *c < '0' || *c > '9') return -1;
    int n = 0;
    for (; *c >= '0' && *c <= '9'; ++c) n = 10 * n + (*c - '0');
    return *c == '/' ? n : -1;
}

// The machine's runnable threads now (Linux; -1 elsewhere or on failure): a pread of /proc/loadavg,
// kept open by the process (about 1 us; opening it for every read cost 5-7 us).
inline std::atomic<int>& runnable_threads_override() {  // >= 0: the reading to use (tests)
    static std::atomic<int> forced{-1};
    return forced;
}

inline int runnable_threads() {
    const int forced = runnable_threads_override().load(std::memory_order_relaxed);
    if (forced >= 0) return forced;
#if defined(__linux__)
    static const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char text[128];
    const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0) return -1;
    text[n] = 0;
    return runnable_in_loadavg(text);
#else
    return -1;
#endif
}

// The team size that fits the machine's free cores: `size`, or fewer when the other runnable
// threads (`runnable` counts the calling thread too) leave fewer than `size` of the `cpus` cores
// free (at least 1: the caller's own core). Unknown readings (< 1) keep `size`.
inline int team_size_for_load(int runnable, int size, int cpus) {
    if (runnable < 1 || cpus < 1 || runnable - 1 + size <= cpus) return size;
    return std::max(1, cpus - (runnable - 1));
}

// The machine's cores, read once (std::thread::hardware_concurrency reads sysfs on every call:
// about 6 us, which a team call that reads the load must not pay each time).
inline int machine_cores() {
    static const int cores = static_cast<int>(std::thread::hardware_concurrency());
    return cores;
}

// Whether the machine's runnable threads (the calling thread included) leave a core free for a
// thread that spins while it waits (unknown: yes). A thread spinning on a core that a foreign
// process uses takes its share of that core's time from the thread it waits for.
inline bool core_free_for_spinning() {
    const int runnable = runnable_threads();
    return runnable < 0 || runnable <= machine_cores();
}

// Whether parallel_team reads the machine's load before a team call (tests switch it off to run
// their teams whatever the load).
inline std::atomic<bool>& team_load_check() {
    static std::atomic<bool> on{true};
    return on;
}

}  // namespace detail

// Start parallel_team's crowding record afresh (no solo calls pending, the next window one call):
// called at the start of a run of team calls whose load may differ from the last run's (a fit).
inline void reset_team_health() { detail::team_health().reset(); }

// Run fn(task, thread_id) for task in [0, n_tasks) on up to n_threads threads (thread_id <
// n_threads). Tasks are handed out in chunks from a shared counter (dynamic schedule). The first
// exception thrown by any task stops the hand-out and is rethrown in the calling thread once no
// thread runs a task. Inside parallel_team's body (on its calling thread) the tasks run on the
// team's threads, with no wake-up of sleeping threads.
template <typename Fn>
void parallel_for(int64_t n_tasks, int n_threads, Fn&& fn, int64_t chunk = 0) {
    if (n_tasks <= 0) return;
    n_threads = std::max(1, n_threads);
    if (n_threads > n_tasks) n_threads = static_cast<int>(n_tasks);
    if (n_threads == 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
        return;
    }
    if (detail::Team* team = detail::Team::current()) {
        team->run(n_tasks, n_threads, fn, chunk);
        return;
    }
    detail::Job job;
    job.fn = [&fn](int64_t t, int tid) { fn(t, tid); };
    job.n_tasks = n_tasks;
    job.chunk =
        chunk > 0 ? chunk : std::max<int64_t>(1, n_tasks / (static_cast<int64_t>(n_threads) * 16));
    job.max_threads = n_threads;
    detail::run_job(job);
    if (job.error) std::rethrow_exception(job.error);
}

// fn(group, i, thread_id) for every task (group, i) of n_groups groups of group_size tasks, on up
// to n_threads threads, where a group stands for data that a thread should find in its own cache:
// thread_id first runs the tasks of its groups (group = thread_id, thread_id + n_threads, ...: the
// groups it ran the last time, inside a parallel_team whose threads keep their ids; i ascending),
// then takes the tasks left in the other groups from their ends (last group first, i descending:
// those their owners would reach last). Tasks finer than the groups even out what the host's noise
// does to the threads' speeds. Every task runs once; which thread runs it never changes the result.
template <typename Fn>
void parallel_for_affine_groups(int64_t n_groups, int64_t group_size, int n_threads, Fn&& fn) {
    const int64_t n_tasks = n_groups * group_size;
    if (n_tasks <= 0) return;
    n_threads =
        std::max(1, std::min<int>(n_threads, static_cast<int>(std::min<int64_t>(
                                                 n_groups, std::numeric_limits<int>::max()))));
    if (n_threads == 1) {
        for (int64_t g = 0; g < n_groups; ++g)
            for (int64_t i = 0; i < group_size; ++i) fn(g, i, 0);
        return;
    }
    // (a group's flags, and a thread's cursors, on cache lines of their own: the threads claim
    // tasks all the time, and a line written by both moves between their cores at each claim)
    constexpr int64_t kLine = 64;
    const int64_t stride = (group_size + kLine - 1) / kLine * kLine;
    std::unique_ptr<std::atomic<bool>[]> taken(new std::atomic<bool>[n_groups * stride]);
    for (int64_t t = 0; t < n_groups * stride; ++t)
        taken[t].store(false, std::memory_order_relaxed);
    struct alignas(kLine) Cursors {
        int64_t own = 0;    // the next position in the thread's own tasks
        int64_t other = 0;  // ... in the tasks it takes from the others
    };
    std::vector<Cursors> cursors(static_cast<size_t>(n_threads));
    const int64_t own_groups_max = (n_groups + n_threads - 1) / n_threads;
    parallel_for(
        n_tasks, n_threads,
        [&](int64_t, int tid) {
            const int own = tid % n_threads;
            auto try_run = [&](int64_t g, int64_t i) {
                std::atomic<bool>& flag = taken[g * stride + i];
                if (flag.load(std::memory_order_relaxed) ||
                    flag.exchange(true, std::memory_order_acq_rel))
                    return false;
                fn(g, i, tid);
                return true;
            };
            Cursors& c = cursors[static_cast<size_t>(tid)];
            for (; c.own < own_groups_max * group_size; ++c.own) {
                const int64_t g = own + (c.own / group_size) * n_threads;
                if (g < n_groups && try_run(g, c.own % group_size)) return ++c.own, void();
            }
            for (; c.other < n_tasks; ++c.other) {
                const int64_t g = n_groups - 1 - c.other / group_size;
                if (g % n_threads != own && try_run(g, group_size - 1 - c.other % group_size))
                    return ++c.other, void();
            }
        },
        1);
}

// parallel_for_affine_groups with one task per group: fn(task, thread_id), thread_id first taking
// tasks thread_id, thread_id + n_threads, ..., then the others' from the last one down.
template <typename Fn>
void parallel_for_affine(int64_t n_tasks, int n_threads, Fn&& fn) {
    parallel_for_affine_groups(n_tasks, 1, n_threads,
                               [&](int64_t t, int64_t, int tid) { fn(t, tid); });
}

// Run body() on the calling thread with a team of up to n_threads threads: every parallel_for the
// body makes on this thread (not those of its tasks) runs on the team, whose threads stay awake
// between the calls for a short spin (detail::kSpinNs, then they block), instead of being woken per
// call — for a kernel of many short parallel steps (one GBDT tree: a step per split). The results
// are those of the same body without the team. Nested calls run body() alone. The team is smaller
// when the machine's other runnable threads leave fewer cores free (Linux: /proc/loadavg), and a
// call runs solo (the body on the calling thread alone) when they leave none (that call only), and
// during a window after a crowded call (TeamHealth).
template <typename Body>
void parallel_team(int n_threads, Body&& body) {
    if (n_threads <= 1 || detail::Team::current() != nullptr) {
        body();
        return;
    }
    detail::TeamHealth& health = detail::team_health();
    auto run_solo = [&] {
        detail::Team solo(n_threads, true);
        detail::CurrentTeamScope scope(&solo);
        body();
    };
    if (health.solo_left.load(std::memory_order_relaxed) > 0) {
        health.solo_left.fetch_sub(1, std::memory_order_relaxed);
        run_solo();
        return;
    }
    // Before a team call: the team gets only the cores the machine's other runnable threads leave
    // free; when that leaves the caller alone, this call runs solo (a busy core costs no crowded
    // probe) and is not recorded: a passing load, such as another library's OpenMP threads
    // spinning after its last parallel region, must not send the next calls solo. Each call reads
    // the load afresh.
    if (detail::team_load_check().load(std::memory_order_relaxed)) {
        int runnable = detail::runnable_threads();
        if (runnable > 1)
            runnable =
                std::max(1, runnable - detail::lingering_workers().load(std::memory_order_relaxed));
        n_threads = detail::team_size_for_load(runnable, n_threads, detail::machine_cores());
        if (n_threads <= 1) {
            run_solo();
            return;
        }
    }
    detail::Team team(n_threads);
    std::exception_ptr error;
    detail::Job job;
    job.fn = [&team](int64_t, int tid) { team.serve(tid); };
    job.n_tasks = n_threads - 1;
    job.chunk = 1;
    job.max_threads = n_threads;
    job.linger_ns = detail::kLingerNs;
    job.lead = [&] {
        {
            detail::CurrentTeamScope scope(&team);
            try {
                body();
            } catch (...) {
                error = std::current_exception();
            }
        }
        team.close();
    };
    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = detail::thread_cpu_seconds();
    detail::run_job(job);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    const double cpu = detail::thread_cpu_seconds() - cpu_start;
    const bool crowded = cpu_start >= 0.0 && wall > detail::TeamHealth::kMinMeasuredSeconds &&
                         cpu < detail::TeamHealth::kMinLeaderShare * wall;
    health.record(team.late() || crowded);
    if (error) std::rethrow_exception(error);
    if (job.error) std::rethrow_exception(job.error);
}

}  // namespace recforge
