// Can a second thread speed up steps as short as a GBDT tree's on Adult when another process keeps
// one of two cores busy? A harness on the library's own never-waited-for helpers
// (takeover_chunks.hpp: LR's loss/gradient passes run on them), for docs/threads.md: `trees`
// trees of `steps` steps each; a step is `rows` rows of a gradient-like kernel cut into `chunks`
// chunks and run by run_chunks_with_takeover, with a few microseconds of the caller's own work
// between steps (50 us between trees, as a fit's Python does). Prints the seconds of the run and
// the chunks the caller took over from a helper.
//
//   c++ -std=c++17 -O2 -pthread -Icsrc/include bench/busy_tree_steps.cpp -o /tmp/steps
//   /tmp/steps 1; /tmp/steps 2                       # threads: the caller alone; with a helper
//   python3 -c "while True: pass" & /tmp/steps 1; /tmp/steps 2; kill %1
//   /tmp/steps 2 16 4000 6 100                       # threads, chunks, rows, steps, trees
//
// On the project's 2-vCPU VM (2026-12-08; 12 steps of 2000 rows or 6 of 4000, 8 or 16 chunks,
// medians of five rounds): with a core busy 2 threads ran at 0.97-1.01x the speed of 1; idle,
// 1.30-1.72x.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "recforge/takeover_chunks.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWidth = 200;  // results per chunk (a partial gradient)
constexpr int kPerRow = 20;  // indices per row

void busy_for(int microseconds) {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::microseconds(microseconds)) {
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int n_threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const int n_chunks = argc > 2 ? std::atoi(argv[2]) : 8;
    const int rows_per_step = argc > 3 ? std::atoi(argv[3]) : 2000;
    const int steps_per_tree = argc > 4 ? std::atoi(argv[4]) : 12;
    const int n_trees = argc > 5 ? std::atoi(argv[5]) : 100;
    std::vector<int> indices(static_cast<size_t>(rows_per_step) * kPerRow);
    std::srand(1);
    for (int& i : indices) i = std::rand() % kWidth;
    std::vector<double> results(static_cast<size_t>(n_chunks) * kWidth), values(n_chunks);
    const int rows_per_chunk = rows_per_step / n_chunks;
    auto compute = [&](int64_t c, double* out) {
        std::memset(out, 0, sizeof(double) * kWidth);
        double loss = 0.0;
        for (int64_t r = c * rows_per_chunk; r < (c + 1) * rows_per_chunk; ++r) {
            double margin = 0.0;
            for (int k = 0; k < kPerRow; ++k) margin += 0.01 * indices[r * kPerRow + k];
            const double p = 1.0 / (1.0 + std::exp(-margin));
            loss += std::log1p(std::exp(-std::fabs(margin)));
            for (int k = 0; k < kPerRow; ++k) out[indices[r * kPerRow + k]] += p - 0.5;
        }
        return loss;
    };
    auto step = [&] {
        auto call = recforge::run_chunks_with_takeover(n_chunks, n_threads, kWidth, results.data(),
                                                       values.data(), compute);
        // (the inputs live to the end of main: a late helper may still read them)
    };
    step();  // the helper threads start
    const int64_t taken_before = recforge::detail::chunks_taken_over().load();
    double check = 0.0;
    const auto start = Clock::now();
    for (int t = 0; t < n_trees; ++t) {
        for (int s = 0; s < steps_per_tree; ++s) {
            step();
            for (int c = 0; c < n_chunks; ++c) check += results[c * kWidth] + values[c];
            busy_for(s + 1 < steps_per_tree ? 5 : 50);
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf(
        "threads=%d chunks=%d rows=%d steps=%d trees=%d  %.4f s  taken over %lld of %lld"
        "  (check %.6f)\n",
        n_threads, n_chunks, rows_per_step, steps_per_tree, n_trees, seconds,
        static_cast<long long>(recforge::detail::chunks_taken_over().load() - taken_before),
        static_cast<long long>(n_trees) * steps_per_tree * n_chunks, check);
    std::fflush(stdout);
    std::quick_exit(0);  // (the library's helper threads are never joined)
}
