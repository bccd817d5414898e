// Round trip of a cache line between two CPUs: two threads, pinned to the first two CPUs this
// process may run on, pass a counter back and forth for `seconds`; prints the median over 10 ms
// slices of the mean round trip, in nanoseconds. A host that places two vCPUs near each other
// (same L3) measures ~55 ns here, far apart ~330 ns; the same VM moved between the two within
// minutes, and work whose threads write the same data (Hogwild SGD, a GBDT team's histograms and
// barriers) runs up to 2.5x slower far apart (bench/README.md, "Where the cores are").
//
//   c++ -O2 -pthread bench/cache_line_ping_pong.cpp -o /tmp/ping_pong && /tmp/ping_pong 0.25
//
// (bench/host_cores.py builds and runs it.) Linux only (thread affinity).
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

alignas(64) std::atomic<long> ball{0};

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    const double seconds = argc > 1 ? std::atof(argv[1]) : 0.25;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 2;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    if (cpus.size() < 2) {
        std::fprintf(stderr, "needs 2 CPUs\n");
        return 2;
    }
    std::atomic<bool> stop{false};
    std::thread partner([&] {
        pin(cpus[1]);
        for (long v = 1; !stop.load(std::memory_order_relaxed);) {
            if (ball.load(std::memory_order_acquire) == v) {
                ball.store(v + 1, std::memory_order_release);
                v += 2;
            }
        }
    });
    pin(cpus[0]);
    using clock = std::chrono::steady_clock;
    std::vector<double> slices;
    const auto end = clock::now() + std::chrono::duration<double>(seconds);
    long v = 0;
    while (clock::now() < end) {
        const auto start = clock::now();
        long trips = 0;
        while (clock::now() - start < std::chrono::milliseconds(10)) {
            for (int k = 0; k < 100; ++k, ++trips, v += 2) {
                ball.store(v + 1, std::memory_order_release);
                while (ball.load(std::memory_order_acquire) != v + 2) {
                }
            }
        }
        slices.push_back(std::chrono::duration<double, std::nano>(clock::now() - start).count() /
                         static_cast<double>(trips));
    }
    stop.store(true);
    partner.join();
    std::nth_element(slices.begin(), slices.begin() + slices.size() / 2, slices.end());
    std::printf("%.0f\n", slices[slices.size() / 2]);
    return 0;
}
