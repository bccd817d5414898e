// One home for the bindings' "row chunks on a team" call: the n_threads check, the clamp to the
// chunk count, the GIL release and a one-step parallel_team around parallel_for.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>

#include "arrays.hpp"
#include "recforge/parallel.hpp"

namespace recforge::bindings {

// The threads run_chunks_on_team uses for n_chunks chunks: min(n_threads, n_chunks), at least 1.
inline int team_threads(int64_t n_chunks, int n_threads) {
    require(n_threads >= 1, "n_threads must be >= 1");
    return static_cast<int>(std::min<int64_t>(n_threads, std::max<int64_t>(1, n_chunks)));
}

// fn(c, thread_id) for every chunk c < n_chunks on up to n_threads threads kept together for the
// call (parallel_team: fewer, or the caller alone, when the machine's other runnable threads leave
// fewer cores free; thread_id < team_threads(n_chunks, n_threads)), the GIL released. Call it after
// the argument checks: fn must not throw.
template <class Fn>
void run_chunks_on_team(int64_t n_chunks, int n_threads, Fn&& fn) {
    const int threads = team_threads(n_chunks, n_threads);
    pybind11::gil_scoped_release release;
    recforge::parallel_team(threads, [&] {
        recforge::parallel_for(n_chunks, threads, [&](int64_t c, int tid) { fn(c, tid); }, 1);
    });
}

}  // namespace recforge::bindings
