// Batched top-k selection over dense score rows, with per-row exclusions (CSR) and a global mask.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "recforge/parallel.hpp"

namespace recforge {

// Order of the result: higher score first; equal scores by lower item index first.
// Items that are excluded, NaN or -inf are never returned; rows with fewer than k
// candidates are padded with index -1 and score -inf.
template <typename Score>
struct Candidate {
    Score score;
    int64_t index;
};

template <typename Score>
inline bool better(const Candidate<Score>& a, const Candidate<Score>& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// topk_row by a bounded min-heap over every item (any n_items and k).
template <typename Score>
int64_t topk_row_heap(const Score* scores, int64_t n_items, int64_t k, const uint8_t* excluded,
                      std::vector<Candidate<Score>>& heap, int64_t* out_index, Score* out_score) {
    heap.clear();
    int64_t n_nan = 0;
    // Min-heap on `better`: heap.front() is the worst of the kept candidates. Items arrive in
    // increasing index, so a newcomer tied with the worst kept item loses the tie.
    auto worse_first = [](const Candidate<Score>& a, const Candidate<Score>& b) {
        return better(a, b);
    };
    const Score neg_inf = -std::numeric_limits<Score>::infinity();
    for (int64_t j = 0; j < n_items; ++j) {
        const Score s = scores[j];
        if (excluded[j]) continue;
        if (!(s > neg_inf)) {  // NaN or -inf
            if (std::isnan(s)) ++n_nan;
            continue;
        }
        if (static_cast<int64_t>(heap.size()) < k) {
            heap.push_back({s, j});
            std::push_heap(heap.begin(), heap.end(), worse_first);
        } else if (s > heap.front().score) {
            std::pop_heap(heap.begin(), heap.end(), worse_first);
            heap.back() = {s, j};
            std::push_heap(heap.begin(), heap.end(), worse_first);
        }
    }
    std::sort(heap.begin(), heap.end(), better<Score>);
    const int64_t n_found = static_cast<int64_t>(heap.size());
    for (int64_t r = 0; r < n_found; ++r) {
        out_index[r] = heap[r].index;
        out_score[r] = heap[r].score;
    }
    for (int64_t r = n_found; r < k; ++r) {
        out_index[r] = -1;
        out_score[r] = neg_inf;
    }
    return n_nan;
}

// The unsigned key whose ascending order is the descending order of a (non-NaN) score; -0.0
// and +0.0 get one key, as they compare equal.
inline uint32_t descending_key(float s) {
    if (s == 0.0f) s = 0.0f;
    uint32_t u;
    std::memcpy(&u, &s, sizeof u);
    return ~(u ^ ((u >> 31) ? 0xFFFFFFFFu : 0x80000000u));
}

inline uint64_t descending_key(double s) {
    if (s == 0.0) s = 0.0;
    uint64_t u;
    std::memcpy(&u, &s, sizeof u);
    return ~(u ^ ((u >> 63) ? ~uint64_t{0} : (uint64_t{1} << 63)));
}

// Sort items[0:m] by score descending, stably (items in increasing index stay so among equal
// scores): an LSD radix sort on descending_key, one byte per pass, a pass skipped when every key
// shares its byte. `spare` has room for m items.
template <typename Score>
void radix_sort_descending(Candidate<Score>* items, Candidate<Score>* spare, int64_t m) {
    using Key = decltype(descending_key(Score{}));
    int64_t count[256];
    for (unsigned shift = 0; shift < 8 * sizeof(Key); shift += 8) {
        std::fill(count, count + 256, int64_t{0});
        for (int64_t r = 0; r < m; ++r) ++count[(descending_key(items[r].score) >> shift) & 0xFF];
        if (count[(descending_key(items[0].score) >> shift) & 0xFF] == m) continue;
        int64_t start = 0;
        for (int64_t& c : count) {
            const int64_t n = c;
            c = start;
            start += n;
        }
        for (int64_t r = 0; r < m; ++r)
            spare[count[(descending_key(items[r].score) >> shift) & 0xFF]++] = items[r];
        std::copy(spare, spare + m, items);
    }
}

// Select the k best items of one row. `excluded[j] != 0` removes item j.
// `heap` is scratch space, reused across rows. Returns the number of NaN scores seen.
//
// For k much smaller than n_items (k >= 128, k <= n_items / 16): every kSampleStride-th item
// estimates a threshold t (the best 1.5 k / kSampleStride of the sample: ~1.5 k items reach it);
// a counting pass (no stores, vectorised) counts the items above and equal to t, a second pass
// keeps every item above t and the first k equal to it (all of them when at most k are), and
// those are sorted by a stable radix sort. When at least k items reach t, the k-th best score K
// is >= t: the top k are the items above K and the lowest-index ones equal to K, all kept (if
// K == t, at most k of them are needed), so the result is the heap's, item for item. When fewer
// than k reach t the heap runs over the whole row. On a fresh user's fold-in rows (9,724 items,
// k = 300, the row in cache) the heap's data-dependent branches cost 77-82 us, this path 37-40;
// for k < 128 the heap was as fast or faster.
template <typename Score>
int64_t topk_row(const Score* scores, int64_t n_items, int64_t k, const uint8_t* excluded,
                 std::vector<Candidate<Score>>& heap, int64_t* out_index, Score* out_score) {
    constexpr int64_t kSampleStride = 8;
    if (k < 128 || k * 16 > n_items)
        return topk_row_heap(scores, n_items, k, excluded, heap, out_index, out_score);
    const Score neg_inf = -std::numeric_limits<Score>::infinity();
    heap.resize(static_cast<size_t>(n_items / kSampleStride + 1));
    int64_t n_sample = 0;
    for (int64_t j = 0; j < n_items; j += kSampleStride) {
        const Score s = scores[j];
        if (!excluded[j] && s > neg_inf) heap[n_sample++].score = s;  // not NaN, not -inf
    }
    const int64_t rank = (3 * k) / (2 * kSampleStride);
    if (n_sample <= rank)
        return topk_row_heap(scores, n_items, k, excluded, heap, out_index, out_score);
    std::nth_element(
        heap.begin(), heap.begin() + rank, heap.begin() + n_sample,
        [](const Candidate<Score>& a, const Candidate<Score>& b) { return a.score > b.score; });
    const Score t = heap[rank].score;
    int64_t n_above = 0, n_equal = 0, n_nan = 0;
    for (int64_t j = 0; j < n_items; ++j) {
        const Score s = scores[j];
        const int64_t ok = excluded[j] == 0;
        n_above += ok & (s > t);
        n_equal += ok & (s == t);
        n_nan += ok & (s != s);
    }
    if (n_above + n_equal < k)
        return topk_row_heap(scores, n_items, k, excluded, heap, out_index, out_score);
    constexpr int64_t kBlock = 64;
    const int64_t m = n_above + std::min(n_equal, k);
    heap.resize(static_cast<size_t>(2 * m + kBlock));
    Candidate<Score>* kept = heap.data();
    int64_t c = 0;
    if (n_equal <= k) {
        for (int64_t j = 0; j < n_items; ++j) {
            kept[c].index = j;
            c += (excluded[j] == 0) & (scores[j] >= t);
        }
    } else {  // many ties at t: the items above it, then the first k equal to it
        for (int64_t j = 0; j < n_items; ++j) {
            kept[c].index = j;
            c += (excluded[j] == 0) & (scores[j] > t);
        }
        for (int64_t j0 = 0; c < m && j0 < n_items; j0 += kBlock) {  // <= kBlock - 1 extra
            const int64_t j1 = std::min(n_items, j0 + kBlock);
            for (int64_t j = j0; j < j1; ++j) {
                kept[c].index = j;
                c += (excluded[j] == 0) & (scores[j] == t);
            }
        }
    }
    for (int64_t r = 0; r < m; ++r) kept[r].score = scores[kept[r].index];
    radix_sort_descending(kept, kept + m + kBlock, m);
    for (int64_t r = 0; r < k; ++r) {
        out_index[r] = kept[r].index;
        out_score[r] = kept[r].score;
    }
    return n_nan;
}

// scores: (n_rows, n_items) row-major. Row r excludes
// exclude_indices[exclude_indptr[r]:exclude_indptr[r+1]] (may be empty: exclude_indptr == nullptr)
// and every item with global_mask[j] != 0 (may be nullptr). out_index / out_score: (n_rows, k).
// Returns the total number of NaN scores seen.
template <typename Score>
int64_t topk_rows(const Score* scores, int64_t n_rows, int64_t n_items, int64_t k,
                  const int64_t* exclude_indptr, const int32_t* exclude_indices,
                  const uint8_t* global_mask, int64_t* out_index, Score* out_score, int n_threads) {
    // ~1M scores per thread before a second thread pays for itself
    n_threads = threads_for_work(
        n_threads, static_cast<double>(n_rows) * static_cast<double>(n_items), 1 << 20);
    std::vector<int64_t> nan_per_thread(static_cast<size_t>(n_threads), 0);
    std::vector<std::vector<uint8_t>> marks(nan_per_thread.size());
    std::vector<std::vector<Candidate<Score>>> heaps(nan_per_thread.size());

    parallel_for(n_rows, n_threads, [&](int64_t row, int tid) {
        auto& mark = marks[tid];
        if (mark.empty()) {
            if (global_mask)
                mark.assign(global_mask, global_mask + n_items);
            else
                mark.assign(static_cast<size_t>(n_items), 0);
            heaps[tid].reserve(static_cast<size_t>(std::min(k, n_items)));
        }
        int64_t lo = 0, hi = 0;
        if (exclude_indptr) {
            lo = exclude_indptr[row];
            hi = exclude_indptr[row + 1];
            for (int64_t p = lo; p < hi; ++p) mark[exclude_indices[p]] = 1;
        }
        nan_per_thread[tid] +=
            topk_row<Score>(scores + row * n_items, n_items, k, mark.data(), heaps[tid],
                            out_index + row * k, out_score + row * k);
        for (int64_t p = lo; p < hi; ++p) {
            const int32_t j = exclude_indices[p];
            mark[j] = global_mask ? global_mask[j] : 0;
        }
    });
    int64_t total = 0;
    for (int64_t n : nan_per_thread) total += n;
    return total;
}

}  // namespace recforge
