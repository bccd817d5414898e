// Private self-checks of recforge::parallel_for, parallel_team and run_chunks_with_takeover, so
// their guarantees are tested from Python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/adaptive_parallel.hpp"
#include "recforge/parallel.hpp"
#include "recforge/takeover_chunks.hpp"

namespace py = pybind11;

void bind_parallel(py::module_& m) {
    m.def("reset_team_health", &recforge::reset_team_health,
          "Forget parallel_team's crowded calls (a GBDT fit calls it first): no call pending solo, "
          "the next crowded call sends one call solo.");
    m.def(
        "_team_size_for_load",
        [](const std::string& loadavg, int size, int cpus) {
            const int runnable = recforge::detail::runnable_in_loadavg(loadavg.c_str());
            return py::make_tuple(runnable,
                                  recforge::detail::team_size_for_load(runnable, size, cpus));
        },
        py::arg("loadavg"), py::arg("size"), py::arg("cpus"),
        "(runnable threads read from a /proc/loadavg text or -1, the size a team of `size` gets "
        "then on `cpus` cores: 1 runs solo). Private: for tests.");
    m.def(
        "_team_load_check",
        [](bool on) { return recforge::detail::team_load_check().exchange(on); }, py::arg("on"),
        "Switch parallel_team's reading of the machine's load on or off; returns the previous "
        "setting. Private: for tests.");
    m.def(
        "_team_load_override",
        [](int runnable) {
            return recforge::detail::runnable_threads_override().exchange(runnable);
        },
        py::arg("runnable"),
        "Make parallel_team read `runnable` runnable threads instead of /proc/loadavg's (-1: read "
        "the machine's again); returns the previous setting. Private: for tests.");
    m.def(
        "_takeover_helper_delay",
        [](int64_t ns) { return recforge::detail::takeover_helper_delay_ns().exchange(ns); },
        py::arg("ns"),
        "Make run_chunks_with_takeover's helpers sleep `ns` nanoseconds after claiming each chunk "
        "(0: not at all), as a helper preempted on a busy core; returns the previous setting. "
        "Private: for tests.");
    m.def(
        "_chunks_taken_over", [] { return recforge::detail::chunks_taken_over().load(); },
        "Chunks that run_chunks_with_takeover's callers have taken over from helpers so far. "
        "Private: for tests.");
    m.def(
        "_team_health",
        [](int record_crowded) {
            auto& h = recforge::detail::team_health();
            for (int i = 0; i < record_crowded; ++i) h.record(true);
            return py::make_tuple(h.solo_left.load(), h.window.load());
        },
        py::arg("record_crowded") = 0,
        "Record `record_crowded` crowded parallel_team calls, then return (calls left to run solo, "
        "the next solo window). Private: for tests.");
    m.def(
        "_parallel_for_check",
        [](int64_t n_tasks, int n_threads, int64_t fail_at) {
            std::vector<int64_t> out(static_cast<size_t>(std::max<int64_t>(n_tasks, 0)), 0);
            std::atomic<int> max_thread_id{0};
            {
                py::gil_scoped_release release;
                recforge::parallel_for(n_tasks, n_threads, [&](int64_t t, int tid) {
                    if (t == fail_at)
                        throw std::invalid_argument("task " + std::to_string(t) + " failed");
                    out[static_cast<size_t>(t)] = 2 * t;
                    int seen = max_thread_id.load();
                    while (tid > seen && !max_thread_id.compare_exchange_weak(seen, tid)) {
                    }
                });
            }
            int64_t total = 0;
            for (int64_t v : out) total += v;
            return py::make_tuple(total, max_thread_id.load());
        },
        py::arg("n_tasks"), py::arg("n_threads"), py::arg("fail_at") = -1,
        "Run parallel_for(n_tasks, n_threads) writing 2*t per task; returns (sum, largest thread "
        "id used).\n"
        "Task `fail_at` throws (→ ValueError). Private: for tests.");
    m.def(
        "_parallel_team_check",
        [](int64_t n_steps, int n_threads, int64_t fail_step) {
            // step k: parallel_for of 1 + k % 9 tasks on 1 + k % n_threads threads, each task t
            // adding k * 16 + t; a task whose thread id is not below its step's limit is counted
            int64_t total = 0;
            std::atomic<int64_t> bad_ids{0};
            std::atomic<int> max_thread_id{0};
            {
                py::gil_scoped_release release;
                recforge::parallel_team(n_threads, [&] {
                    for (int64_t k = 0; k < n_steps; ++k) {
                        const int64_t n = 1 + k % 9;
                        const int limit = 1 + static_cast<int>(k % std::max(1, n_threads));
                        std::vector<int64_t> out(static_cast<size_t>(n), 0);
                        recforge::parallel_for(
                            n, limit,
                            [&](int64_t t, int tid) {
                                if (k == fail_step && t == n - 1)
                                    throw std::invalid_argument("step " + std::to_string(k) +
                                                                " failed");
                                if (tid >= limit) ++bad_ids;
                                int seen = max_thread_id.load();
                                while (tid > seen &&
                                       !max_thread_id.compare_exchange_weak(seen, tid)) {
                                }
                                out[static_cast<size_t>(t)] = k * 16 + t;
                            },
                            1);
                        for (int64_t v : out) total += v;
                    }
                });
            }
            return py::make_tuple(total, max_thread_id.load(), bad_ids.load());
        },
        py::arg("n_steps"), py::arg("n_threads"), py::arg("fail_step") = -1,
        "Run n_steps parallel_for steps inside parallel_team(n_threads) (step k: 1 + k % 9 tasks "
        "on 1 + k % n_threads threads, task t writing k * 16 + t); returns (sum, largest thread id "
        "used, tasks run on a thread id at or above their step's limit). Step `fail_step`'s last "
        "task throws (→ ValueError). Private: for tests.");
    m.def(
        "_parallel_for_affine_check",
        [](int64_t n_steps, int64_t n_tasks, int n_threads, int64_t fail_step) {
            // n_steps parallel_for_affine steps of n_tasks tasks inside parallel_team(n_threads)
            std::vector<int64_t> runs(static_cast<size_t>(std::max<int64_t>(n_tasks, 0)), 0);
            std::atomic<int64_t> bad_ids{0}, own{0};
            {
                py::gil_scoped_release release;
                recforge::parallel_team(n_threads, [&] {
                    for (int64_t k = 0; k < n_steps; ++k)
                        recforge::parallel_for_affine(n_tasks, n_threads, [&](int64_t t, int tid) {
                            if (k == fail_step && t == n_tasks - 1)
                                throw std::invalid_argument("step " + std::to_string(k) +
                                                            " failed");
                            if (tid < 0 || tid >= n_threads) ++bad_ids;
                            if (t % n_threads == tid) ++own;
                            ++runs[static_cast<size_t>(t)];  // (each task by one thread)
                        });
                });
            }
            return py::make_tuple(py::cast(runs), bad_ids.load(), own.load());
        },
        py::arg("n_steps"), py::arg("n_tasks"), py::arg("n_threads"), py::arg("fail_step") = -1,
        "Run n_steps parallel_for_affine(n_tasks, n_threads) steps inside "
        "parallel_team(n_threads); "
        "returns (runs of each task, tasks run on a thread id outside [0, n_threads), tasks run by "
        "the thread that prefers them). Step `fail_step`'s last task throws (→ ValueError). "
        "Private: for tests.");
    m.def(
        "_parallel_for_affine_groups_check",
        [](int64_t n_steps, int64_t n_groups, int64_t group_size, int n_threads,
           int64_t fail_step) {
            // n_steps parallel_for_affine_groups steps inside parallel_team(n_threads); each
            // thread's tasks of a step are checked against the order it must take them in
            const int64_t n = std::max<int64_t>(n_groups * group_size, 0);
            const int64_t owners = std::max<int64_t>(1, std::min<int64_t>(n_threads, n_groups));
            std::vector<int64_t> runs(static_cast<size_t>(n), 0);
            std::atomic<int64_t> bad_ids{0}, own{0}, out_of_order{0};
            {
                py::gil_scoped_release release;
                recforge::parallel_team(n_threads, [&] {
                    for (int64_t k = 0; k < n_steps; ++k) {
                        // per thread id: the last own task (its rank) and the last taken one
                        std::vector<int64_t> last_own(static_cast<size_t>(n_threads), -1),
                            last_other(static_cast<size_t>(n_threads), n);
                        recforge::parallel_for_affine_groups(
                            n_groups, group_size, n_threads, [&](int64_t g, int64_t i, int tid) {
                                if (k == fail_step && g == n_groups - 1 && i == group_size - 1)
                                    throw std::invalid_argument("step " + std::to_string(k) +
                                                                " failed");
                                if (tid < 0 || tid >= n_threads) {
                                    ++bad_ids;
                                    return;
                                }
                                const int64_t t = g * group_size + i;
                                auto& lo = last_own[static_cast<size_t>(tid)];
                                auto& lt = last_other[static_cast<size_t>(tid)];
                                if (g % owners == tid) {  // own: ascending, before any other
                                    ++own;
                                    if (t <= lo || lt < n) ++out_of_order;
                                    lo = t;
                                } else {  // taken from another group: descending
                                    if (t >= lt) ++out_of_order;
                                    lt = t;
                                }
                                ++runs[static_cast<size_t>(t)];  // (each task by one thread)
                            });
                    }
                });
            }
            return py::make_tuple(py::cast(runs), bad_ids.load(), own.load(), out_of_order.load());
        },
        py::arg("n_steps"), py::arg("n_groups"), py::arg("group_size"), py::arg("n_threads"),
        py::arg("fail_step") = -1,
        "Run n_steps parallel_for_affine_groups(n_groups, group_size, n_threads) steps inside "
        "parallel_team(n_threads); returns (runs of each task (group-major), tasks run on a thread "
        "id outside [0, n_threads), tasks run by their group's owner, tasks a thread took out of "
        "order: own groups' ascending first, then the others' descending). Step `fail_step`'s last "
        "task throws (→ ValueError). Private: for tests.");
    m.def(
        "_lingering_workers", [] { return recforge::detail::lingering_workers().load(); },
        "Pool workers spinning for the next job after a parallel_team call. Private: for tests.");
    m.def(
        "_adaptive_schedule",
        [](bool on) { return recforge::detail::adaptive_schedule_on().exchange(on); },
        py::arg("on"),
        "Switch the measured choice of the Hogwild trainers (word2vec, LFM) between their threads "
        "and the calling thread alone on or off (off: always their threads); returns the previous "
        "setting. Private: for benchmarks and tests.");
    m.def(
        "_parallel_for_adaptive_check",
        [](int64_t n_tasks, int n_threads, int task_us, bool contended, int64_t fail_at) {
            // each task runs task_us microseconds of its thread's CPU time; contended: 5x that
            // when the task before it ran on another thread (as rows another core wrote last)
            std::vector<int64_t> runs(static_cast<size_t>(std::max<int64_t>(n_tasks, 0)), 0);
            std::atomic<int64_t> bad_ids{0};
            std::atomic<int> last_thread{-1};
            recforge::AdaptiveRun run;
            {
                py::gil_scoped_release release;
                run = recforge::parallel_for_adaptive(n_tasks, n_threads, [&](int64_t t, int tid) {
                    if (t == fail_at)
                        throw std::invalid_argument("task " + std::to_string(t) + " failed");
                    if (tid < 0 || tid >= n_threads) ++bad_ids;
                    const int before = last_thread.exchange(tid);
                    const double cost =
                        1e-6 * task_us * (contended && before >= 0 && before != tid ? 5 : 1);
                    const double start = recforge::detail::thread_cpu_seconds();
                    while (recforge::detail::thread_cpu_seconds() - start < cost) {
                    }
                    ++runs[static_cast<size_t>(t)];
                });
            }
            return py::make_tuple(py::cast(runs), bad_ids.load(), run.solo_tasks, run.team_tasks,
                                  run.switches);
        },
        py::arg("n_tasks"), py::arg("n_threads"), py::arg("task_us"), py::arg("contended"),
        py::arg("fail_at") = -1,
        "Run parallel_for_adaptive(n_tasks, n_threads) on tasks of task_us microseconds of CPU "
        "time (if contended, 5x that for a task that follows one of another thread); returns "
        "(runs of each task, tasks run on a thread id outside [0, n_threads), tasks run while the "
        "caller ran alone, tasks run while the team did, switches). Task `fail_at` throws (→ "
        "ValueError). Private: for tests.");
}
