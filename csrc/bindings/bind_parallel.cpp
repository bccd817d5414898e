// A private self-check of recforge::parallel_for, so its guarantees are tested from Python.
#include <pybind11/pybind11.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "recforge/parallel.hpp"

namespace py = pybind11;

void bind_parallel(py::module_& m) {
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
}
