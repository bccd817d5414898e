// Can a second thread speed up steps as short as a GBDT tree's on Adult when
// another process keeps one of two cores busy? A stand-alone harness
// (docs/threads.md): `trees` trees of `steps` steps each; a step is `rows` rows
// of a gradient-like kernel cut into `chunks` chunks, with a few microseconds
// of the caller's own work between steps (50 us between trees, as a fit's
// Python does). With a helper, the helper takes chunks as LR's passes do
// (takeover_chunks.hpp): it computes a chunk into its own scratch and publishes
// it only if the caller has not taken it over; the caller, out of chunks to
// claim, takes over at once every chunk not yet published, so the helper never
// holds it up. After a step the helper sleeps at once (spinning for the next
// step took the caller's share of the busy core). Prints the seconds of the
// whole run.
//
//   c++ -O2 -pthread bench/busy_tree_steps.cpp -o /tmp/steps
//   /tmp/steps 0; /tmp/steps 1                       # caller alone; caller and
//   helper python3 -c "while True: pass" & /tmp/steps 0; /tmp/steps 1; kill %1
//   /tmp/steps 1 16 4000 6 100                       # helper, chunks, rows,
//   steps, trees
//
// On the project's 2-vCPU VM (2026-12-08; 12 steps of 2000 rows or 6 of 4000, 8
// or 16 chunks, medians of five rounds): with a core busy the helper ran at
// 0.95-0.98x the lone caller's speed; idle, 1.06-1.20x.
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWidth = 200; // results per chunk (a partial gradient)
constexpr int kPerRow = 20; // indices per row
enum : uint64_t { kFree, kCaller, kHelper, kPublishing, kDone };

int n_chunks = 8, rows_per_step = 2000, steps_per_tree = 12, n_trees = 100;
std::vector<int> indices;
std::vector<double> results;
std::vector<std::atomic<uint64_t>>
    state; // step number * 8 + kFree..kDone, per chunk
std::atomic<uint64_t> current_step{0};
std::atomic<int64_t> next_chunk{0};
std::atomic<bool> stop{false};
std::atomic<long> published{0};
std::mutex mutex;
std::condition_variable wake;

double compute(int c, double *out) {
  const int rows = rows_per_step / n_chunks;
  std::memset(out, 0, sizeof(double) * kWidth);
  double loss = 0.0;
  for (int r = c * rows; r < (c + 1) * rows; ++r) {
    double margin = 0.0;
    for (int k = 0; k < kPerRow; ++k)
      margin += 0.01 * indices[r * kPerRow + k];
    const double p = 1.0 / (1.0 + std::exp(-margin));
    loss += std::log1p(std::exp(-std::fabs(margin)));
    for (int k = 0; k < kPerRow; ++k)
      out[indices[r * kPerRow + k]] += p - 0.5;
  }
  return loss;
}

uint64_t tag(uint64_t step, uint64_t s) { return step * 8 + s; }

void helper() {
  std::vector<double> scratch(kWidth);
  uint64_t seen = 0;
  while (!stop) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return current_step.load() != seen || stop; });
    }
    const uint64_t step = seen = current_step.load(std::memory_order_acquire);
    for (int64_t c; (c = next_chunk.fetch_add(1)) < n_chunks;) {
      uint64_t expected = state[c].load();
      if (expected >> 3 == step ||
          !state[c].compare_exchange_strong(expected, tag(step, kHelper)))
        continue;
      compute(static_cast<int>(c), scratch.data());
      expected = tag(step, kHelper);
      if (!state[c].compare_exchange_strong(expected, tag(step, kPublishing)))
        continue;
      std::memcpy(&results[c * kWidth], scratch.data(),
                  sizeof(double) * kWidth);
      state[c].store(tag(step, kDone), std::memory_order_release);
      ++published;
    }
  }
}

void caller_step(uint64_t step) {
  next_chunk.store(0);
  current_step.store(step, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mutex);
  }
  wake.notify_all();
  for (int64_t c; (c = next_chunk.fetch_add(1)) < n_chunks;) {
    uint64_t expected = state[c].load();
    if (expected >> 3 == step ||
        !state[c].compare_exchange_strong(expected, tag(step, kCaller)))
      continue;
    compute(static_cast<int>(c), &results[c * kWidth]);
  }
  for (int c = 0; c < n_chunks; ++c) {
    for (;;) {
      uint64_t s = state[c].load(std::memory_order_acquire);
      const bool this_step = s >> 3 == step;
      if (this_step && ((s & 7) == kCaller || (s & 7) == kDone))
        break;
      if (this_step && (s & 7) == kPublishing)
        continue; // a copy of 1.6 KB
      if (state[c].compare_exchange_strong(s, tag(step, kCaller))) {
        compute(c, &results[c * kWidth]);
        break;
      }
    }
  }
}

void busy_for(int microseconds) {
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::microseconds(microseconds)) {
  }
}

} // namespace

int main(int argc, char **argv) {
  const bool with_helper = argc > 1 && std::atoi(argv[1]) != 0;
  if (argc > 2)
    n_chunks = std::atoi(argv[2]);
  if (argc > 3)
    rows_per_step = std::atoi(argv[3]);
  if (argc > 4)
    steps_per_tree = std::atoi(argv[4]);
  if (argc > 5)
    n_trees = std::atoi(argv[5]);
  indices.resize(static_cast<size_t>(rows_per_step) * kPerRow);
  std::srand(1);
  for (int &i : indices)
    i = std::rand() % kWidth;
  results.assign(static_cast<size_t>(n_chunks) * kWidth, 0.0);
  state = std::vector<std::atomic<uint64_t>>(n_chunks);
  std::thread helper_thread;
  if (with_helper)
    helper_thread = std::thread(helper);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  double check = 0.0;
  const auto start = Clock::now();
  uint64_t step = 0;
  for (int t = 0; t < n_trees; ++t) {
    for (int s = 0; s < steps_per_tree; ++s) {
      caller_step(++step);
      for (int c = 0; c < n_chunks; ++c)
        check += results[c * kWidth];
      busy_for(s + 1 < steps_per_tree ? 5 : 50);
    }
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  current_step.fetch_add(1);
  wake.notify_all();
  if (with_helper)
    helper_thread.join();
  std::printf("helper=%d chunks=%d rows=%d steps=%d trees=%d  %.4f s  helper "
              "published %ld of %ld"
              "  (check %.6f)\n",
              with_helper, n_chunks, rows_per_step, steps_per_tree, n_trees,
              seconds, published.load(), static_cast<long>(step) * n_chunks,
              check);
}
