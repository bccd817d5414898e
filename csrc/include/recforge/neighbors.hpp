// Neighbourhood collaborative filtering (ItemCF / UserCF): penalised co-occurrence cosine top-K
// neighbours of the rows of a sparse matrix, and two-hop scoring (Q @ N) for recommend.
//
// CSR inputs: indptr int64, indices int32 (sorted within rows, in range), values float32/float64.
// The Python wrappers (recforge.kernels.neighbors) validate; these functions assume valid input.
//
// Every row is computed the same way whichever thread takes it (sums in a fixed order, ties by
// lower index), so results do not depend on n_threads. Rows are cut into chunks of about equal
// work that the threads of parallel_for pull dynamically (a busy core delays one chunk only).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "recforge/parallel.hpp"
#include "recforge/simd.hpp"

namespace recforge {
namespace neighbors {

// chunks per thread: enough that a thread slowed to a fraction of a core costs little at the end
constexpr int64_t kChunksPerThread = 8;
// at most this many keys are ordered by rank counting (O(n^2), branch-free), more by a sort
constexpr int64_t kRankSortMax = 128;

// Boundaries of rows [0, n_rows) cut into at most n_chunks contiguous chunks of about equal work,
// row r costing cum[r + 1] - cum[r] + row_cost: (n + 1) entries, n = min(n_chunks, n_rows) >= 1.
inline std::vector<int64_t> balanced_bounds(const int64_t* cum, int64_t n_rows, int64_t n_chunks,
                                            double row_cost) {
    const int64_t n = std::max<int64_t>(1, std::min(n_chunks, n_rows));
    std::vector<int64_t> bounds(static_cast<size_t>(n + 1));
    bounds[0] = 0;
    bounds[n] = n_rows;
    const double base = static_cast<double>(cum[0]);
    const double total = static_cast<double>(cum[n_rows]) - base + row_cost * n_rows;
    int64_t lo = 0;
    for (int64_t c = 1; c < n; ++c) {
        const double target = base + total * c / n;
        int64_t hi = n_rows;
        while (lo < hi) {
            const int64_t mid = (lo + hi) >> 1;
            if (static_cast<double>(cum[mid]) + row_cost * mid < target)
                lo = mid + 1;
            else
                hi = mid;
        }
        bounds[c] = lo;
    }
    return bounds;
}

// Cumulative two-hop work of rows[r] of A . B (rows == nullptr: rows first_row + r):
// cum[r + 1] - cum[r] = sum over m in A[row] of |B[m]|. (n_rows + 1,) entries.
inline std::vector<int64_t> two_hop_cumulative(const int64_t* rows, int64_t first_row,
                                               int64_t n_rows, const int64_t* a_indptr,
                                               const int32_t* a_indices, const int64_t* b_indptr) {
    std::vector<int64_t> cum(static_cast<size_t>(n_rows + 1), 0);
    for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t row = rows != nullptr ? rows[r] : first_row + r;
        int64_t work = 0;
        for (int64_t p = a_indptr[row]; p < a_indptr[row + 1]; ++p) {
            const int32_t m = a_indices[p];
            work += b_indptr[m + 1] - b_indptr[m];
        }
        cum[r + 1] = cum[r] + work;
    }
    return cum;
}

// Cumulative work of rows [row_start, row_stop) of A . A^T restricted to pairs b < a.
inline std::vector<int64_t> lower_two_hop_cumulative(const int64_t* a_indptr,
                                                     const int32_t* a_indices, int64_t n_mid,
                                                     int64_t row_start, int64_t row_stop) {
    std::vector<int64_t> seen(static_cast<size_t>(n_mid), 0);
    for (int64_t a = 0; a < row_start; ++a)
        for (int64_t p = a_indptr[a]; p < a_indptr[a + 1]; ++p) ++seen[a_indices[p]];
    std::vector<int64_t> cum(static_cast<size_t>(row_stop - row_start + 1), 0);
    for (int64_t a = row_start; a < row_stop; ++a) {
        int64_t work = 0;
        for (int64_t p = a_indptr[a]; p < a_indptr[a + 1]; ++p) work += seen[a_indices[p]]++;
        cum[a - row_start + 1] = cum[a - row_start] + work;
    }
    return cum;
}

// Run chunk_fn(r0, r1, thread_id) for the chunks [bounds[c], bounds[c + 1]) of rows (relative),
// pulled dynamically by up to n_threads threads.
template <typename ChunkFn>
void over_chunks(const std::vector<int64_t>& bounds, int n_threads, ChunkFn&& chunk_fn) {
    const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
    parallel_for(
        n_chunks, n_threads, [&](int64_t c, int tid) { chunk_fn(bounds[c], bounds[c + 1], tid); },
        1);
}

// Run row_fn(row, thread_id) for every row of the chunks of over_chunks.
template <typename RowFn>
void over_rows(const std::vector<int64_t>& bounds, int n_threads, RowFn&& row_fn) {
    over_chunks(bounds, n_threads, [&](int64_t r0, int64_t r1, int tid) {
        for (int64_t r = r0; r < r1; ++r) row_fn(r, tid);
    });
}

// ---------------------------------------------------------------------------------------------
// (float32 value > 0, index) as one uint64 ordered like (value desc, index asc): larger = better.
// Positive float32s order like their bit patterns, so the value's bits go high and ~index low.
RECFORGE_ALWAYS_INLINE uint64_t rank_key(float value, uint32_t index) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return (static_cast<uint64_t>(bits) << 32) | (0xFFFFFFFFull - index);
}

RECFORGE_ALWAYS_INLINE float key_value(uint64_t key) {
    const uint32_t bits = static_cast<uint32_t>(key >> 32);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

RECFORGE_ALWAYS_INLINE int32_t key_index(uint64_t key) {
    return static_cast<int32_t>(0xFFFFFFFFull - (key & 0xFFFFFFFFull));
}

// Move the k largest of the distinct keys[0:n] to keys[0:k], the smallest of them at k - 1.
RECFORGE_ALWAYS_INLINE void select_largest(uint64_t* keys, int64_t n, int64_t k) {
    std::nth_element(keys, keys + (k - 1), keys + n, std::greater<uint64_t>());
}

// Write the distinct keys[0:n] best first as (index, value) to out_*[0:n].
RECFORGE_ALWAYS_INLINE void write_sorted(uint64_t* keys, int64_t n, int32_t* out_idx,
                                         float* out_val) {
    if (n > kRankSortMax) {
        std::sort(keys, keys + n, std::greater<uint64_t>());
        for (int64_t s = 0; s < n; ++s) {
            out_val[s] = key_value(keys[s]);
            out_idx[s] = key_index(keys[s]);
        }
        return;
    }
    for (int64_t s = 0; s < n; ++s) {  // each key straight to its rank (how many keys are larger)
        const uint64_t key = keys[s];
        int64_t rank = 0;
        for (int64_t t = 0; t < n; ++t) rank += keys[t] > key;
        out_val[rank] = key_value(key);
        out_idx[rank] = key_index(key);
    }
}

// Write the best k of keys[0:n], best first, to out_*; returns how many.
RECFORGE_ALWAYS_INLINE int64_t write_top_k(uint64_t* keys, int64_t n, int64_t k, int32_t* out_idx,
                                           float* out_val) {
    if (n > k) {
        select_largest(keys, n, k);
        n = k;
    }
    write_sorted(keys, n, out_idx, out_val);
    return n;
}

// acc[targets[start:stop]] += w; targets whose acc was 0 are appended to touched (which needs a
// spare slot: every target is written there, only new ones kept). Returns the new n_touched.
// The targets of one range are distinct, so two are loaded before either is stored.
RECFORGE_ALWAYS_INLINE int64_t accumulate(double* __restrict acc, uint32_t* __restrict touched,
                                          int64_t n_touched, const uint32_t* __restrict targets,
                                          int64_t start, int64_t stop, double w) {
    int64_t q = start;
    for (; q + 1 < stop; q += 2) {
        const uint32_t b0 = targets[q], b1 = targets[q + 1];
        const double x0 = acc[b0], x1 = acc[b1];
        touched[n_touched] = b0;
        n_touched += x0 == 0.0;
        touched[n_touched] = b1;
        n_touched += x1 == 0.0;
        acc[b0] = x0 + w;
        acc[b1] = x1 + w;
    }
    if (q < stop) {
        const uint32_t b = targets[q];
        const double x = acc[b];
        touched[n_touched] = b;
        n_touched += x == 0.0;
        acc[b] = x + w;
    }
    return n_touched;
}

// Row a of A . diag(penalty) . B into acc, intermediates in increasing order (every caller sums
// in the same order: bit-identical numerators). Returns n_touched.
RECFORGE_ALWAYS_INLINE int64_t accumulate_row(double* __restrict acc, uint32_t* __restrict touched,
                                              const int64_t* a_indptr, const uint32_t* mids,
                                              const int64_t* b_indptr, const uint32_t* targets,
                                              const double* penalty, int64_t a) {
    int64_t n_touched = 0;
    for (int64_t p = a_indptr[a]; p < a_indptr[a + 1]; ++p) {
        const uint32_t mid = mids[p];
        n_touched = accumulate(acc, touched, n_touched, targets, b_indptr[mid], b_indptr[mid + 1],
                               penalty[mid]);
    }
    return n_touched;
}

// One thread's scratch of the similarity kernels: a dense accumulator over the rows and the list of
// the rows it touched, allocated on the thread's first row.
struct Scratch {
    std::vector<double> acc;
    std::vector<uint32_t> touched;
    std::vector<uint64_t> keys;

    void ensure(int64_t n_rows, int64_t n_keys) {
        if (acc.empty()) {
            acc.assign(static_cast<size_t>(n_rows), 0.0);
            touched.resize(static_cast<size_t>(n_rows + 1));
        }
        if (static_cast<int64_t>(keys.size()) < n_keys) keys.resize(static_cast<size_t>(n_keys));
    }
};

// ---------------------------------------------------------------------------------------------
// Similarity of rows a != b of A (n_rows x n_mid) with B = A^T:
//   sim(a, b) = float32(sum_{m in A[a] & A[b]} penalty[m] / (norm[a] * norm[b]))
// summed in float64 over the shared intermediates in increasing order.
//
// Row by row (each pair twice): rows [row_start, row_stop) into out_idx / out_val (n_rows * k,
// row a at a * k, prefilled with -1 / 0) and counts. A row's candidates pass through a buffer of
// `cap` keys cut back to its best k whenever full; only keys above the k-th best so far enter.
// The arguments of one cooccurrence_rows call (the chunk function copies them to locals: stores
// through the outputs cannot alias them).
struct RowsCall {
    const int64_t* a_indptr;
    const uint32_t* mids;
    const int64_t* b_indptr;
    const uint32_t* targets;
    const double* penalty;
    const double* norm;
    const double* inv_norm;
    int64_t k, cap, row_start;
    int32_t* out_idx;
    float* out_val;
    int64_t* counts;
};

RECFORGE_HOT_CLONES
inline void cooccurrence_rows_chunk(const RowsCall& call, int64_t r0, int64_t r1,
                                    double* __restrict acc, uint32_t* __restrict touched,
                                    uint64_t* __restrict keys) {
    const int64_t* const a_indptr = call.a_indptr;
    const uint32_t* const mids = call.mids;
    const int64_t* const b_indptr = call.b_indptr;
    const uint32_t* const targets = call.targets;
    const double* const penalty = call.penalty;
    const double* const norm = call.norm;
    const double* const inv_norm = call.inv_norm;
    const int64_t k = call.k, cap = call.cap;
    for (int64_t a = call.row_start + r0; a < call.row_start + r1; ++a) {
        const int64_t n_touched =
            accumulate_row(acc, touched, a_indptr, mids, b_indptr, targets, penalty, a);
        acc[a] = 0.0;
        const double norm_a = norm[a];
        int64_t n = 0;
        uint64_t worst = 0;  // the k-th best key once the buffer was cut, else 0
        double bound = 0.0;
        for (int64_t t = 0; t < n_touched; ++t) {
            const uint32_t b = touched[t];
            const double x = acc[b];
            acc[b] = 0.0;
            // no division for most: x / (norm_a * norm[b]) under the midpoint between the k-th
            // best float32 and the next smaller one rounds below the k-th best (the 1e-12 margin
            // covers the rounding of x * inv_norm[b] and of the bound)
            if (x * inv_norm[b] < bound) continue;
            const float value = static_cast<float>(x / (norm_a * norm[b]));
            if (!(value > 0.0f)) continue;
            const uint64_t key = rank_key(value, b);
            if (key <= worst) continue;
            keys[n++] = key;
            if (n == cap) {
                select_largest(keys, n, k);
                n = k;
                worst = keys[k - 1];
                const float kth = key_value(worst);
                const float below = std::nextafter(kth, 0.0f);
                bound = (static_cast<double>(below) + static_cast<double>(kth)) * 0.5 * norm_a *
                        (1.0 - 1e-12);
            }
        }
        call.counts[a] = write_top_k(keys, n, k, call.out_idx + a * k, call.out_val + a * k);
    }
}

inline void cooccurrence_rows(const int64_t* a_indptr, const int32_t* a_indices,
                              const int64_t* b_indptr, const int32_t* b_indices,
                              const double* penalty, const double* norm, int64_t n_rows, int64_t k,
                              int64_t row_start, int64_t row_stop, int n_threads, int32_t* out_idx,
                              float* out_val, int64_t* counts) {
    if (row_stop <= row_start) return;
    const int64_t cap = std::max<int64_t>(4 * k, 64);
    std::vector<double> inv_norm(static_cast<size_t>(n_rows));
    for (int64_t b = 0; b < n_rows; ++b) inv_norm[b] = 1.0 / norm[b];
    const RowsCall call{a_indptr,
                        reinterpret_cast<const uint32_t*>(a_indices),
                        b_indptr,
                        reinterpret_cast<const uint32_t*>(b_indices),
                        penalty,
                        norm,
                        inv_norm.data(),
                        k,
                        cap,
                        row_start,
                        out_idx,
                        out_val,
                        counts};
    const std::vector<int64_t> cum =
        two_hop_cumulative(nullptr, row_start, row_stop - row_start, a_indptr, a_indices, b_indptr);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), row_stop - row_start, std::max(1, n_threads) * kChunksPerThread, 1.0);
    std::vector<Scratch> scratch(static_cast<size_t>(std::max(1, n_threads)));
    over_chunks(bounds, n_threads, [&](int64_t r0, int64_t r1, int tid) {
        Scratch& s = scratch[tid];
        s.ensure(n_rows, cap);
        cooccurrence_rows_chunk(call, r0, r1, s.acc.data(), s.touched.data(), s.keys.data());
    });
}

// (v1, i1) ranks below (v2, i2): smaller value, or equal value and larger index.
RECFORGE_ALWAYS_INLINE bool worse(float v1, int32_t i1, float v2, int32_t i2) {
    return v1 < v2 || (v1 == v2 && i1 > i2);
}

// Put (value, index) at the root of the n-entry heap hv/hi (worst on top) and sift it down.
RECFORGE_ALWAYS_INLINE void sift_down(float* hv, int32_t* hi, int64_t n, float value,
                                      int32_t index) {
    int64_t pos = 0;
    for (;;) {
        int64_t child = 2 * pos + 1;
        if (child >= n) break;
        if (child + 1 < n && worse(hv[child + 1], hi[child + 1], hv[child], hi[child])) ++child;
        if (!worse(hv[child], hi[child], value, index)) break;
        hv[pos] = hv[child];
        hi[pos] = hi[child];
        pos = child;
    }
    hv[pos] = value;
    hi[pos] = index;
}

// Offer (value, index) to the bounded heap hv/hi[0:k] (root = worst entry); returns the new count.
// The kept set is the top k by (value desc, index asc) whatever the order of the offers.
RECFORGE_ALWAYS_INLINE int64_t heap_offer(float* hv, int32_t* hi, int64_t count, int64_t k,
                                          float value, int32_t index) {
    if (count < k) {
        int64_t pos = count++;
        while (pos > 0) {
            const int64_t parent = (pos - 1) >> 1;
            if (!worse(value, index, hv[parent], hi[parent])) break;
            hv[pos] = hv[parent];
            hi[pos] = hi[parent];
            pos = parent;
        }
        hv[pos] = value;
        hi[pos] = index;
        return count;
    }
    if (!worse(hv[0], hi[0], value, index)) return count;
    sift_down(hv, hi, k, value, index);
    return count;
}

// The bounded heaps of every row (heap of row a at a * k in val / idx, its count at cnt[a]) shared
// by the threads of a cooccurrence_pairs call. With more than one thread each row's heap has its
// own lock, held for one heap_offer and taken only by an offer at least as good as the row's k-th
// best so far: that bound (0 until the heap is full) only grows, so reading it without the lock
// may let an offer through needlessly but never keeps a good one out. One heap per row, not one per
// thread: a second thread adds no memory, no merge and no heap filled twice over.
class SharedHeaps {
  public:
    SharedHeaps(float* val, int32_t* idx, int64_t* cnt, float* min, int64_t n_rows, int64_t k)
        : val_(val),
          idx_(idx),
          cnt_(cnt),
          min_out_(min),
          n_rows_(n_rows),
          k_(k),
          min_(new std::atomic<float>[static_cast<size_t>(n_rows)]),
          busy_(new std::atomic<bool>[static_cast<size_t>(n_rows)]) {
        for (int64_t a = 0; a < n_rows; ++a) {
            min_[a].store(min[a], std::memory_order_relaxed);
            busy_[a].store(false, std::memory_order_relaxed);
        }
    }
    SharedHeaps(const SharedHeaps&) = delete;
    SharedHeaps& operator=(const SharedHeaps&) = delete;
    ~SharedHeaps() {
        for (int64_t a = 0; a < n_rows_; ++a) min_out_[a] = min_[a].load(std::memory_order_relaxed);
    }

    // Offer (value, index) to row a's heap; kLocked when other threads may offer at the same time.
    template <bool kLocked>
    RECFORGE_ALWAYS_INLINE void offer(int64_t a, float value, int32_t index) {
        if (value < min_[a].load(std::memory_order_relaxed)) return;
        if (kLocked) lock(a);
        const int64_t count = heap_offer(val_ + a * k_, idx_ + a * k_, cnt_[a], k_, value, index);
        cnt_[a] = count;
        if (count == k_) min_[a].store(val_[a * k_], std::memory_order_relaxed);
        if (kLocked) busy_[a].store(false, std::memory_order_release);
    }

  private:
    void lock(int64_t a) {
        // held for a few dozen instructions: spin briefly, then give the core away
        for (int spins = 0; busy_[a].exchange(true, std::memory_order_acquire); ++spins)
            while (busy_[a].load(std::memory_order_relaxed))
                if (++spins > 64) std::this_thread::yield();
    }

    float* val_;
    int32_t* idx_;
    int64_t* cnt_;
    float* min_out_;
    int64_t n_rows_, k_;
    std::unique_ptr<std::atomic<float>[]> min_;
    std::unique_ptr<std::atomic<bool>[]> busy_;
};

// Row a's pairs (a, b < a) into the shared heaps of a and b: the shared intermediates summed in
// increasing order (the same value as from row b's side).
template <bool kLocked>
RECFORGE_ALWAYS_INLINE void offer_lower_pairs(SharedHeaps& heaps, Scratch& s,
                                              const int64_t* a_indptr, const uint32_t* mids,
                                              const int64_t* b_indptr, const uint32_t* targets,
                                              const double* penalty, const double* norm,
                                              int64_t a) {
    double* __restrict acc = s.acc.data();
    uint32_t* __restrict touched = s.touched.data();
    int64_t n_touched = 0;
    for (int64_t p = a_indptr[a]; p < a_indptr[a + 1]; ++p) {
        const uint32_t mid = mids[p];
        const int64_t start = b_indptr[mid];
        const int64_t stop = std::lower_bound(targets + start, targets + b_indptr[mid + 1],
                                              static_cast<uint32_t>(a)) -
                             targets;  // b < a
        n_touched = accumulate(acc, touched, n_touched, targets, start, stop, penalty[mid]);
    }
    const double norm_a = norm[a];
    for (int64_t t = 0; t < n_touched; ++t) {
        const uint32_t b = touched[t];
        const float value = static_cast<float>(acc[b] / (norm_a * norm[b]));
        acc[b] = 0.0;
        if (value > 0.0f) {
            heaps.offer<kLocked>(a, value, static_cast<int32_t>(b));
            heaps.offer<kLocked>(b, value, static_cast<int32_t>(a));
        }
    }
}

// Each pair once: pairs (a, b < a) for rows [row_start, row_stop), computed from the larger row
// and offered to the heaps of a and b (see SharedHeaps): heap of row a at a * k in heap_val /
// heap_idx (n_rows * k), its count and (once full) k-th best value at a of heap_cnt / heap_min
// (n_rows, zeroed before the first call). Which thread offers what, and in which order, does
// not change the heaps' final sets: the top k by (value desc, index asc) of all offers.
inline void cooccurrence_pairs(const int64_t* a_indptr, const int32_t* a_indices,
                               const int64_t* b_indptr, const int32_t* b_indices,
                               const double* penalty, const double* norm, int64_t n_rows,
                               int64_t n_mid, int64_t k, int64_t row_start, int64_t row_stop,
                               int n_threads, float* heap_val, int32_t* heap_idx, int64_t* heap_cnt,
                               float* heap_min) {
    if (row_stop <= row_start) return;
    const auto* mids = reinterpret_cast<const uint32_t*>(a_indices);
    const auto* targets = reinterpret_cast<const uint32_t*>(b_indices);
    const std::vector<int64_t> cum =
        lower_two_hop_cumulative(a_indptr, a_indices, n_mid, row_start, row_stop);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), row_stop - row_start, std::max(1, n_threads) * kChunksPerThread, 1.0);
    std::vector<Scratch> scratch(static_cast<size_t>(std::max(1, n_threads)));
    SharedHeaps heaps(heap_val, heap_idx, heap_cnt, heap_min, n_rows, k);
    const bool locked = n_threads > 1 && bounds.size() > 2;
    over_rows(bounds, n_threads, [&](int64_t r, int tid) {
        Scratch& s = scratch[tid];
        s.ensure(n_rows, 0);
        const int64_t a = row_start + r;
        if (locked)
            offer_lower_pairs<true>(heaps, s, a_indptr, mids, b_indptr, targets, penalty, norm, a);
        else
            offer_lower_pairs<false>(heaps, s, a_indptr, mids, b_indptr, targets, penalty, norm, a);
    });
}

// Write every row's heap (of cooccurrence_pairs) best first to out_idx / out_val (row a at a * k)
// and counts; the heaps are consumed.
inline void merge_heaps(float* heap_val, int32_t* heap_idx, const int64_t* heap_cnt, int64_t n_rows,
                        int64_t k, int n_threads, int32_t* out_idx, float* out_val,
                        int64_t* counts) {
    std::vector<int64_t> cum(static_cast<size_t>(n_rows + 1));
    for (int64_t a = 0; a <= n_rows; ++a) cum[a] = a;
    const std::vector<int64_t> bounds =
        balanced_bounds(cum.data(), n_rows, std::max(1, n_threads) * kChunksPerThread, 0.0);
    over_rows(bounds, n_threads, [&](int64_t a, int) {
        float* hv = heap_val + a * k;
        int32_t* hi = heap_idx + a * k;
        const int64_t count = heap_cnt[a];
        counts[a] = count;
        for (int64_t n = count; n > 0; --n) {  // pop the worst into the last free slot
            out_val[a * k + n - 1] = hv[0];
            out_idx[a * k + n - 1] = hi[0];
            sift_down(hv, hi, n - 1, hv[n - 1], hi[n - 1]);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The distributed similarity in two steps (recforge.distributed): the un-normalised numerators of
// rows [row_start, row_stop), off the diagonal, as CSR (cooccurrence_counts then
// cooccurrence_fill), and each row's top k of summed numerators (topk_csr_rows).

// counts[a - row_start] = distinct rows b != a sharing an intermediate with row a.
inline void cooccurrence_counts(const int64_t* a_indptr, const int32_t* a_indices,
                                const int64_t* b_indptr, const int32_t* b_indices, int64_t n_rows,
                                int64_t row_start, int64_t row_stop, int n_threads,
                                int64_t* counts) {
    if (row_stop <= row_start) return;
    const std::vector<int64_t> cum =
        two_hop_cumulative(nullptr, row_start, row_stop - row_start, a_indptr, a_indices, b_indptr);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), row_stop - row_start, std::max(1, n_threads) * kChunksPerThread, 1.0);
    std::vector<std::vector<uint8_t>> flags(static_cast<size_t>(std::max(1, n_threads)));
    std::vector<std::vector<uint32_t>> lists(flags.size());
    over_rows(bounds, n_threads, [&](int64_t r, int tid) {
        std::vector<uint8_t>& flag = flags[tid];
        std::vector<uint32_t>& touched = lists[tid];
        if (flag.empty()) {
            flag.assign(static_cast<size_t>(n_rows), 0);
            touched.resize(static_cast<size_t>(n_rows + 1));
        }
        const int64_t a = row_start + r;
        int64_t n_touched = 0;
        for (int64_t p = a_indptr[a]; p < a_indptr[a + 1]; ++p) {
            const int32_t mid = a_indices[p];
            for (int64_t q = b_indptr[mid]; q < b_indptr[mid + 1]; ++q) {
                const uint32_t b = static_cast<uint32_t>(b_indices[q]);
                touched[n_touched] = b;
                n_touched += flag[b] == 0;
                flag[b] = 1;
            }
        }
        int64_t count = n_touched;
        for (int64_t t = 0; t < n_touched; ++t) {
            count -= touched[t] == static_cast<uint32_t>(a);
            flag[touched[t]] = 0;
        }
        counts[r] = count;
    });
}

// Rows [row_start, row_stop) of the numerators into CSR arrays whose indptr (relative to
// row_start, from cooccurrence_counts) is given; indices sorted within rows.
inline void cooccurrence_fill(const int64_t* a_indptr, const int32_t* a_indices,
                              const int64_t* b_indptr, const int32_t* b_indices,
                              const double* penalty, int64_t n_rows, int64_t row_start,
                              int64_t row_stop, int n_threads, const int64_t* indptr,
                              int32_t* out_indices, double* out_data) {
    if (row_stop <= row_start) return;
    const auto* mids = reinterpret_cast<const uint32_t*>(a_indices);
    const auto* targets = reinterpret_cast<const uint32_t*>(b_indices);
    const std::vector<int64_t> cum =
        two_hop_cumulative(nullptr, row_start, row_stop - row_start, a_indptr, a_indices, b_indptr);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), row_stop - row_start, std::max(1, n_threads) * kChunksPerThread, 1.0);
    std::vector<Scratch> scratch(static_cast<size_t>(std::max(1, n_threads)));
    over_rows(bounds, n_threads, [&](int64_t r, int tid) {
        Scratch& s = scratch[tid];
        s.ensure(n_rows, 0);
        double* acc = s.acc.data();
        uint32_t* touched = s.touched.data();
        const int64_t a = row_start + r;
        const int64_t n_touched =
            accumulate_row(acc, touched, a_indptr, mids, b_indptr, targets, penalty, a);
        int64_t pos = indptr[r];
        const auto emit = [&](uint32_t b) {
            if (b != static_cast<uint32_t>(a)) {
                out_indices[pos] = static_cast<int32_t>(b);
                out_data[pos] = acc[b];
                ++pos;
            }
            acc[b] = 0.0;
        };
        if (n_touched * 16 > n_rows) {  // a dense row: one ordered scan beats a sort
            for (int64_t b = 0; b < n_rows; ++b)
                if (acc[b] != 0.0) emit(static_cast<uint32_t>(b));
            return;
        }
        std::sort(touched, touched + n_touched);
        for (int64_t t = 0; t < n_touched; ++t) emit(touched[t]);
    });
}

// Top k of each row r of summed numerators (row_start + r of the whole matrix): similarity
// float32(x / (norm[a] * norm[b])), positive ones by (value desc, index asc), into out_idx /
// out_val (n_out * k, prefilled with -1 / 0) and counts.
inline void topk_csr_rows(const int64_t* indptr, const int32_t* indices, const double* data,
                          int64_t n_out, int64_t row_start, const double* norm, int64_t k,
                          int n_threads, int32_t* out_idx, float* out_val, int64_t* counts) {
    if (n_out <= 0) return;
    const std::vector<int64_t> bounds =
        balanced_bounds(indptr, n_out, std::max(1, n_threads) * kChunksPerThread, 1.0);
    std::vector<std::vector<uint64_t>> key_buffers(static_cast<size_t>(std::max(1, n_threads)));
    over_rows(bounds, n_threads, [&](int64_t r, int tid) {
        std::vector<uint64_t>& keys = key_buffers[tid];
        const int64_t length = indptr[r + 1] - indptr[r];
        if (static_cast<int64_t>(keys.size()) < length) keys.resize(static_cast<size_t>(length));
        const double norm_a = norm[row_start + r];
        int64_t n = 0;
        for (int64_t p = indptr[r]; p < indptr[r + 1]; ++p) {
            const int32_t b = indices[p];
            const float value = static_cast<float>(data[p] / (norm_a * norm[b]));
            if (value > 0.0f) keys[n++] = rank_key(value, static_cast<uint32_t>(b));
        }
        counts[r] = write_top_k(keys.data(), n, k, out_idx + r * k, out_val + r * k);
    });
}

// ---------------------------------------------------------------------------------------------
// Two-hop scoring: scores of (Q @ N)[rows], accumulated in float64 in the order (Q's row entries,
// then N's row entries, both in stored order), cast to float32.

// Dense block: out (n_out, n_items) float32, zero-filled.
inline void two_hop_scores(const int64_t* rows, int64_t n_out, const int64_t* q_indptr,
                           const int32_t* q_indices, const float* q_data, const int64_t* n_indptr,
                           const int32_t* n_indices, const float* n_data, int64_t n_items,
                           int n_threads, float* out) {
    if (n_out <= 0) return;
    const std::vector<int64_t> cum =
        two_hop_cumulative(rows, 0, n_out, q_indptr, q_indices, n_indptr);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), n_out, std::max(1, n_threads) * kChunksPerThread, static_cast<double>(n_items));
    std::vector<std::vector<double>> accs(static_cast<size_t>(std::max(1, n_threads)));
    over_rows(bounds, n_threads, [&](int64_t r, int tid) {
        std::vector<double>& acc = accs[tid];
        if (acc.empty()) acc.assign(static_cast<size_t>(n_items), 0.0);
        const int64_t row = rows[r];
        for (int64_t p = q_indptr[row]; p < q_indptr[row + 1]; ++p) {
            const int32_t m = q_indices[p];
            const double w = q_data[p];
            for (int64_t q = n_indptr[m]; q < n_indptr[m + 1]; ++q)
                acc[n_indices[q]] += w * static_cast<double>(n_data[q]);
        }
        float* dst = out + r * n_items;
        for (int64_t i = 0; i < n_items; ++i) {
            dst[i] = static_cast<float>(acc[i]);
            acc[i] = 0.0;
        }
    });
}

// Insert (value, index) into the sorted list top_*[0:count] (value desc, index asc) of at most k
// entries; returns the new count.
RECFORGE_ALWAYS_INLINE int64_t sorted_insert(float* top_val, int32_t* top_idx, int64_t count,
                                             int64_t k, float value, int32_t index) {
    int64_t pos;
    if (count == k) {
        const float last_v = top_val[k - 1];
        if (value < last_v || (value == last_v && index > top_idx[k - 1])) return count;
        pos = k - 1;
    } else {
        pos = count++;
    }
    while (pos > 0) {
        const float pv = top_val[pos - 1];
        if (pv > value || (pv == value && top_idx[pos - 1] < index)) break;
        top_val[pos] = pv;
        top_idx[pos] = top_idx[pos - 1];
        --pos;
    }
    top_val[pos] = value;
    top_idx[pos] = index;
    return count;
}

// The arguments and one thread's scratch of a two_hop_topk call.
struct TwoHopTopkCall {
    const int64_t* rows;
    const int64_t* q_indptr;
    const int32_t* q_indices;
    const float* q_data;
    const int64_t* n_indptr;
    const uint32_t* targets;
    const float* n_data;
    int64_t n_items;
    const int64_t* ex_indptr;
    const int32_t* ex_indices;
    const uint8_t* mask;
    int64_t k;
    int64_t* out_idx;
    float* out_val;
};

struct TwoHopScratch {
    std::vector<double> acc;
    std::vector<uint8_t> flag;  // 1 touched, 2 excluded (per row), 3 chosen; reset after
    std::vector<uint32_t> touched;
    std::vector<float> top_val;
    std::vector<int32_t> top_idx;
};

RECFORGE_HOT_CLONES
inline void two_hop_topk_chunk(const TwoHopTopkCall& call, int64_t r0, int64_t r1,
                               TwoHopScratch& s) {
    const int64_t* const rows = call.rows;
    const int64_t* const q_indptr = call.q_indptr;
    const int32_t* const q_indices = call.q_indices;
    const float* const q_data = call.q_data;
    const int64_t* const n_indptr = call.n_indptr;
    const uint32_t* const targets = call.targets;
    const float* const n_data = call.n_data;
    const int64_t n_items = call.n_items;
    const int64_t* const ex_indptr = call.ex_indptr;
    const int32_t* const ex_indices = call.ex_indices;
    const uint8_t* const mask = call.mask;
    const int64_t k = call.k;
    double* __restrict acc = s.acc.data();
    uint8_t* __restrict flag = s.flag.data();
    uint32_t* __restrict touched = s.touched.data();
    float* __restrict top_val = s.top_val.data();
    int32_t* __restrict top_idx = s.top_idx.data();
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row = rows[r];
        int64_t n_touched = 0;
        for (int64_t p = q_indptr[row]; p < q_indptr[row + 1]; ++p) {
            const int32_t m = q_indices[p];
            const double w = q_data[p];
            const int64_t stop = n_indptr[m + 1];
            for (int64_t q = n_indptr[m]; q < stop; ++q) {
                const uint32_t i = targets[q];
                touched[n_touched] = i;  // kept only when i is new: branch-free
                n_touched += flag[i] == 0;
                flag[i] = 1;
                acc[i] += w * static_cast<double>(n_data[q]);
            }
        }
        for (int64_t p = ex_indptr[r]; p < ex_indptr[r + 1]; ++p) flag[ex_indices[p]] = 2;
        int64_t count = 0;
        for (int64_t t = 0; t < n_touched; ++t) {
            const uint32_t i = touched[t];
            if (flag[i] == 1 && mask[i] == 0) {
                const float value = static_cast<float>(acc[i]);
                if (value > 0.0f)
                    count =
                        sorted_insert(top_val, top_idx, count, k, value, static_cast<int32_t>(i));
            }
        }
        const int64_t n_pos = count;
        int64_t* dst_idx = call.out_idx + r * k;
        float* dst_val = call.out_val + r * k;
        for (int64_t t = 0; t < count; ++t) {
            dst_idx[t] = top_idx[t];
            dst_val[t] = top_val[t];
        }
        if (count < k) {
            // score-0 fill in index order: skip excluded, masked and already chosen items
            for (int64_t t = 0; t < n_pos; ++t) flag[top_idx[t]] = 3;
            for (int64_t i = 0; count < k && i < n_items; ++i) {
                if (flag[i] != 2 && flag[i] != 3 && mask[i] == 0) {
                    dst_idx[count] = i;
                    dst_val[count] = 0.0f;
                    ++count;
                }
            }
            for (int64_t t = 0; t < n_pos; ++t) flag[top_idx[t]] = 1;
        }
        for (int64_t t = 0; t < n_touched; ++t) {
            acc[touched[t]] = 0.0;
            flag[touched[t]] = 0;
        }
        for (int64_t p = ex_indptr[r]; p < ex_indptr[r + 1]; ++p) flag[ex_indices[p]] = 0;
    }
}

// Top k of (Q @ N)[rows] without a dense block (the fused path): the same as two_hop_scores then a
// top-k with exclusions and a global mask, provided every score is >= 0. Candidates by (float32
// score desc, index asc); once the positive scores are used up the row is filled with the
// remaining score-0 items in increasing index order; a row with fewer than k allowed items is
// padded. Excluded items per row r: ex_indices[ex_indptr[r]:ex_indptr[r + 1]]; mask[i] != 0 =
// never. out_idx (n_out, k) int64 prefilled with -1, out_val float32 prefilled with -inf.
inline void two_hop_topk(const int64_t* rows, int64_t n_out, const int64_t* q_indptr,
                         const int32_t* q_indices, const float* q_data, const int64_t* n_indptr,
                         const int32_t* n_indices, const float* n_data, int64_t n_items,
                         const int64_t* ex_indptr, const int32_t* ex_indices, const uint8_t* mask,
                         int64_t k, int n_threads, int64_t* out_idx, float* out_val) {
    if (n_out <= 0) return;
    const TwoHopTopkCall call{rows,       q_indptr, q_indices,
                              q_data,     n_indptr, reinterpret_cast<const uint32_t*>(n_indices),
                              n_data,     n_items,  ex_indptr,
                              ex_indices, mask,     k,
                              out_idx,    out_val};
    const std::vector<int64_t> cum =
        two_hop_cumulative(rows, 0, n_out, q_indptr, q_indices, n_indptr);
    const std::vector<int64_t> bounds = balanced_bounds(
        cum.data(), n_out, std::max(1, n_threads) * kChunksPerThread, static_cast<double>(k));
    std::vector<TwoHopScratch> scratch(static_cast<size_t>(std::max(1, n_threads)));
    over_chunks(bounds, n_threads, [&](int64_t r0, int64_t r1, int tid) {
        TwoHopScratch& s = scratch[tid];
        if (s.acc.empty()) {
            s.acc.assign(static_cast<size_t>(n_items), 0.0);
            s.flag.assign(static_cast<size_t>(n_items), 0);
            s.touched.resize(static_cast<size_t>(n_items + 1));
            s.top_val.resize(static_cast<size_t>(k));
            s.top_idx.resize(static_cast<size_t>(k));
        }
        two_hop_topk_chunk(call, r0, r1, s);
    });
}

}  // namespace neighbors
}  // namespace recforge
