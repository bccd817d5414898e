// Batched top-k selection over dense score rows, with per-row exclusions (CSR) and a global mask.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Select the k best items of one row. `excluded[j] != 0` removes item j.
// `heap` is scratch space of capacity >= k, reused across rows. Returns the number of NaN scores
// seen.
template <typename Score>
int64_t topk_row(const Score* scores, int64_t n_items, int64_t k, const uint8_t* excluded,
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
