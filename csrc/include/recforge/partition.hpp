// GBDT partition of node-ordered rows (binned rows, gradients and row ids moved together), leaf
// updates and gradients.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "recforge/constants.hpp"
#include "recforge/histogram.hpp"
#include "recforge/parallel.hpp"
#include "recforge/split.hpp"

namespace recforge {
namespace gbdt {

// Copy one binned row of n bytes, inlined (a libc memcpy call per 50-byte row costs more than the
// copy): 16- or 8-byte words, the last word overlapping the one before it. dst and src must not
// overlap unless equal.
inline void copy_row(uint8_t* dst, const uint8_t* src, size_t n) {
    if (n >= 16) {
        size_t i = 0;
        for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
        if (i < n) std::memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        std::memcpy(&a, src, 8);
        std::memcpy(&b, src + n - 8, 8);
        std::memcpy(dst, &a, 8);
        std::memcpy(dst + n - 8, &b, 8);
    } else {
        for (size_t i = 0; i < n; ++i) dst[i] = src[i];
    }
}

// lut[b] = 1 when a row whose bin of the split feature is b goes left. cat_set (kCatSetWords
// words, or null): the bins a partition split of a categorical feature sends left (empty: the
// one-vs-rest split bin == threshold).
inline void direction_table(int32_t threshold, uint8_t default_left, bool categorical, uint8_t* lut,
                            const uint64_t* cat_set = nullptr) {
    const bool by_set =
        categorical && cat_set && (cat_set[0] | cat_set[1] | cat_set[2] | cat_set[3]) != 0;
    for (int b = 0; b < kBins; ++b)
        lut[b] = by_set ? set_has(cat_set, b) : categorical ? (b == threshold) : (b <= threshold);
    lut[kMissingBin] = default_left != 0;
}

// Node k's set of bins in an array of kCatSetWords words per node (null: none).
inline const uint64_t* node_set(const uint64_t* cat_sets, int64_t k) {
    return cat_sets ? cat_sets + k * kCatSetWords : nullptr;
}

// One step of the two-cursor partition below, after the caller has copied binned row p to left slot
// li and right slot ri: row p's (g, h) pair (one 8-byte word) and id go to both slots too, and
// only the side the row goes to (l = 1: left) advances. li <= p, so row p is read before a left
// slot overwrites it.
inline void move_pair_and_id(float* ghn, int32_t* rows, float* __restrict sgh,
                             int32_t* __restrict srows, int64_t p, int64_t l, int64_t& li,
                             int64_t& ri) {
    uint64_t g;
    std::memcpy(&g, ghn + 2 * p, 8);
    const int32_t r = rows[p];
    std::memcpy(ghn + 2 * li, &g, 8);
    std::memcpy(sgh + 2 * ri, &g, 8);
    rows[li] = r;
    srows[ri] = r;
    li += l;
    ri += 1 - l;
}

// The end of the two-cursor partition: the ri right rows collected in the scratch buffers go
// behind the li - s left rows. Returns the number of left rows.
inline int64_t append_right_rows(uint8_t* Xn, int64_t F, float* ghn, int32_t* rows,
                                 const uint8_t* __restrict sX, const float* __restrict sgh,
                                 const int32_t* __restrict srows, int64_t s, int64_t li,
                                 int64_t ri) {
    std::memcpy(Xn + li * F, sX, static_cast<size_t>(ri) * static_cast<size_t>(F));
    std::memcpy(ghn + 2 * li, sgh, static_cast<size_t>(ri) * 2 * sizeof(float));
    std::memcpy(rows + li, srows, static_cast<size_t>(ri) * sizeof(int32_t));
    return li - s;
}

// Whether the directions (lut[bin of `feature`]) of rows [s, e) change often among their first
// kSampleRows rows (at least once per kAlternateRows): a branch on the direction would then be
// mispredicted often, so partition_node_narrow picks each row's slot by a mask instead (lut holds
// 0 or 1). On 1M rows of 14 bytes: a branch 2.9 ns per row on long runs of one side, as skewed
// features give, 8.4 ns on random directions; the mask 4.2 ns on either (even at about one change
// per 9 rows).
inline bool directions_alternate(const uint8_t* Xn, int64_t F, int64_t s, int64_t e,
                                 int32_t feature, const uint8_t* lut) {
    constexpr int64_t kSampleRows = 64, kAlternateRows = 8;
    const uint8_t* col = Xn + feature;
    const int64_t end = std::min(e, s + kSampleRows);
    int64_t changes = 0;
    for (int64_t p = s + 1; p < end; ++p) changes += lut[col[p * F]] != lut[col[(p - 1) * F]];
    return changes * kAlternateRows >= end - s;
}

// Stable partition of positions [s, e) of node-ordered data on one thread, one pass, no branch on
// the direction: every row is written both to the next left slot (in place: left rows are
// compacted) and to the next right slot (scratch), and only the side it goes to advances. The
// right rows are then appended behind the left ones. Returns the number of left rows.
// Rows of 8 to 16 bytes (partition_node_narrow) move as one 16-byte block instead, to the slot of
// their side only.
template <bool Branchless>
int64_t partition_node_narrow(uint8_t* Xn, int64_t F, float* ghn, int32_t* rows,
                              uint8_t* __restrict sX, float* __restrict sgh,
                              int32_t* __restrict srows, int64_t s, int64_t e, int32_t feature,
                              const uint8_t* __restrict lut);

inline int64_t partition_node(uint8_t* Xn, int64_t F, float* ghn, int32_t* rows,
                              uint8_t* __restrict sX, float* __restrict sgh,
                              int32_t* __restrict srows, int64_t s, int64_t e, int32_t feature,
                              const uint8_t* __restrict lut) {
    // The node's leading run of left rows is in place already: it is skipped (copied onto itself,
    // a row's words would each wait for the store of the row before, which they overlap).
    const uint8_t* col = Xn + feature;
    int64_t first = s;
    while (first < e && lut[col[first * F]]) ++first;
    if (F >= 8 && F <= 16 && e - first >= 2) {
        const int64_t n_left = directions_alternate(Xn, F, first, e, feature, lut)
                                   ? partition_node_narrow<true>(Xn, F, ghn, rows, sX, sgh, srows,
                                                                 first, e, feature, lut)
                                   : partition_node_narrow<false>(Xn, F, ghn, rows, sX, sgh, srows,
                                                                  first, e, feature, lut);
        return first - s + n_left;
    }
    const size_t row_bytes = static_cast<size_t>(F);
    int64_t li = first, ri = 0;
    for (int64_t p = first; p < e; ++p) {
        const int64_t l = lut[col[p * F]];
        copy_row(sX + ri * F, Xn + p * F, row_bytes);
        copy_row(Xn + li * F, Xn + p * F,
                 row_bytes);  // li <= p: row p is read before it is overwritten
        move_pair_and_id(ghn, rows, sgh, srows, p, l, li, ri);
    }
    return append_right_rows(Xn, F, ghn, rows, sX, sgh, srows, s, li, ri);
}

// partition_node for rows of 8 to 16 bytes: every row moves as one 16-byte block whose tail runs
// into the next position, written once, to the slot of its side (16-25 % faster on Adult's 14-byte
// rows than writing both slots; the slot picked by a branch, or by a mask when Branchless: see
// directions_alternate). Row p + 1 is loaded before row p is stored, so a tail never destroys a
// row still to be read (a left tail at p + 1 rewrites the bytes it holds); a tail written at
// position q lands in position q + 1 < e, which is written again later (by the next row of its
// side, or by the right rows copied behind the left ones) or lies past its side's rows; the last
// row of the node is copied exactly, so nothing is written outside [s, e) of either buffer.
template <bool Branchless>
int64_t partition_node_narrow(uint8_t* Xn, int64_t F, float* ghn, int32_t* rows,
                              uint8_t* __restrict sX, float* __restrict sgh,
                              int32_t* __restrict srows, int64_t s, int64_t e, int32_t feature,
                              const uint8_t* __restrict lut) {
    const size_t row_bytes = static_cast<size_t>(F);
    uint8_t cur[16], next[16];
    std::memcpy(cur, Xn + s * F, 16);  // rows s and s + 1 exist
    int64_t li = s, ri = 0;
    for (int64_t p = s; p < e - 1; ++p) {
        if (p + 2 < e)
            std::memcpy(next, Xn + (p + 1) * F, 16);
        else
            copy_row(next, Xn + (p + 1) * F, row_bytes);
        const int64_t l = lut[cur[feature]];
        uint64_t pair;
        std::memcpy(&pair, ghn + 2 * p, 8);
        const int32_t r = rows[p];
        const auto side = [l](auto* left, auto* right) {
            if (!Branchless) return l ? left : right;
            const uintptr_t left_mask = 0 - static_cast<uintptr_t>(l);
            return reinterpret_cast<decltype(left)>(
                (reinterpret_cast<uintptr_t>(left) & left_mask) |
                (reinterpret_cast<uintptr_t>(right) & ~left_mask));
        };
        std::memcpy(side(Xn + li * F, sX + ri * F), cur, 16);
        std::memcpy(side(ghn + 2 * li, sgh + 2 * ri), &pair, 8);
        *side(rows + li, srows + ri) = r;
        li += l;
        ri += 1 - l;
        std::memcpy(cur, next, 16);
    }
    {  // the last row, exactly
        const int64_t l = lut[cur[feature]];
        copy_row(sX + ri * F, cur, row_bytes);
        copy_row(Xn + li * F, cur, row_bytes);
        move_pair_and_id(ghn, rows, sgh, srows, e - 1, l, li, ri);
    }
    return append_right_rows(Xn, F, ghn, rows, sX, sgh, srows, s, li, ri);
}

// Stable partition of the positions idx[s, e) of rows of X (F bytes each) by their bin of
// `feature` (lut: 1 = left; left ones first, each side in its order); tmp: scratch of at least
// e - s entries. The rows themselves do not move. Returns the number of left positions.
inline int64_t partition_positions(const uint8_t* X, int64_t F, int32_t* idx, int32_t* tmp,
                                   int64_t s, int64_t e, int32_t feature, const uint8_t* lut) {
    const uint8_t* col = X + feature;
    int64_t li = s, ri = 0;
    constexpr int64_t kAhead = 16;  // positions are scattered: load the split column ahead
    for (int64_t p = s; p < e; ++p) {
#if defined(__GNUC__) || defined(__clang__)
        if (p + kAhead < e) __builtin_prefetch(col + static_cast<int64_t>(idx[p + kAhead]) * F);
#endif
        const int32_t i = idx[p];
        const int64_t l = lut[col[static_cast<int64_t>(i) * F]];
        idx[li] = i;
        tmp[ri] = i;
        li += l;
        ri += 1 - l;
    }
    std::copy(tmp, tmp + ri, idx + li);
    return li - s;
}

// Node-ordered data: positions [starts[k], ends[k]) of Xn (row-major binned rows), ghn (g, h pairs)
// and rows (original row ids) belong to node k. Split every node and move all three arrays so
// that its left rows come first, then its right rows, each group keeping its order (stable).
// scratch_* are buffers of the same sizes as the arrays. Writes the left counts to n_left.
// into_scratch: leave the partitioned ranges in the scratch buffers instead (the arrays are then
// unchanged; positions outside the nodes' ranges of the scratch buffers are not written). Then a
// node with feature −1 is carried over unchanged (all its rows count as left). cat_sets: node k's
// partition set at cat_sets[k * kCatSetWords] (see direction_table), or null.
// Nodes are independent (node k only touches positions [starts[k], ends[k]) of the arrays and of
// the scratch buffers), so several nodes run on separate threads; one large node is cut into
// fixed blocks of rows whose output positions come from a prefix sum. Either way the result does
// not depend on n_threads.
inline void partition_ordered(uint8_t* Xn, int64_t n_features, float* ghn, int32_t* rows,
                              uint8_t* scratch_X, float* scratch_gh, int32_t* scratch_rows,
                              const int64_t* starts, const int64_t* ends, int64_t n_nodes,
                              const int32_t* feature, const int32_t* threshold,
                              const uint8_t* default_left, const uint8_t* is_categorical,
                              int64_t* n_left, int n_threads, bool into_scratch = false,
                              const uint64_t* cat_sets = nullptr) {
    const int64_t F = n_features;
    const size_t row_bytes = static_cast<size_t>(F);
    std::vector<uint8_t> luts(static_cast<size_t>(n_nodes) * kBins);
    int64_t total = 0, largest = 0;
    for (int64_t k = 0; k < n_nodes; ++k) {
        if (feature[k] < 0)
            std::memset(luts.data() + k * kBins, 1, kBins);  // a carried node: all "left"
        else
            direction_table(threshold[k], default_left[k], is_categorical[feature[k]] != 0,
                            luts.data() + k * kBins, node_set(cat_sets, k));
        total += ends[k] - starts[k];
        largest = std::max(largest, ends[k] - starts[k]);
    }
    n_threads = threads_for_work(n_threads, static_cast<double>(total) * (F + 12), 250000.0);

    auto one_node = [&](int64_t k) {
        const int64_t s = starts[k];
        n_left[k] =
            partition_node(Xn, F, ghn, rows, scratch_X + s * F, scratch_gh + 2 * s,
                           scratch_rows + s, s, ends[k], feature[k], luts.data() + k * kBins);
    };
    if (!into_scratch)
        for (int64_t k = 0; k < n_nodes; ++k)
            if (feature[k] < 0)
                throw std::invalid_argument("feature -1 (carry a node) needs into_scratch");
    if (!into_scratch && n_threads == 1) {
        for (int64_t k = 0; k < n_nodes; ++k) one_node(k);
        return;
    }
    if (!into_scratch && (largest * 2 <= total + total / 4 || total < 1000000)) {
        // several nodes of comparable size (or too little work for a second pass): node-parallel
        parallel_for(n_nodes, n_threads, [&](int64_t k, int) { one_node(k); }, 1);
        return;
    }
    const int64_t block = 16384;
    struct Task {
        int64_t node, begin, end, left_before;
    };
    std::vector<Task> tasks;
    for (int64_t k = 0; k < n_nodes; ++k)
        for (int64_t b = starts[k]; b < ends[k]; b += block)
            tasks.push_back({k, b, std::min(ends[k], b + block), 0});
    std::vector<int64_t> block_left(tasks.size());
    parallel_for(
        static_cast<int64_t>(tasks.size()), n_threads,
        [&](int64_t t, int) {
            const Task& tk = tasks[t];
            const uint8_t* lut = luts.data() + tk.node * kBins;
            const uint8_t* col = Xn + std::max(feature[tk.node], 0);
            int64_t c = 0;
            for (int64_t p = tk.begin; p < tk.end; ++p) c += lut[col[p * F]];
            block_left[t] = c;
        },
        1);
    for (int64_t k = 0; k < n_nodes; ++k) n_left[k] = 0;
    for (size_t t = 0; t < tasks.size(); ++t) {
        tasks[t].left_before = n_left[tasks[t].node];
        n_left[tasks[t].node] += block_left[t];
    }
    // scatter every row to its final position in the scratch buffers, then copy the ranges back
    // (into_scratch: the result stays there, one write per row instead of two)
    parallel_for(
        static_cast<int64_t>(tasks.size()), n_threads,
        [&](int64_t t, int) {
            const Task& tk = tasks[t];
            const int64_t k = tk.node;
            const uint8_t* lut = luts.data() + k * kBins;
            const uint8_t* col = Xn + std::max(feature[k], 0);
            int64_t li = starts[k] + tk.left_before;
            int64_t ri = starts[k] + n_left[k] + (tk.begin - starts[k]) - tk.left_before;
            for (int64_t p = tk.begin; p < tk.end; ++p) {
                const int64_t l = lut[col[p * F]];
                const int64_t q = l ? li : ri;
                li += l;
                ri += 1 - l;
                copy_row(scratch_X + q * F, Xn + p * F, row_bytes);
                std::memcpy(scratch_gh + 2 * q, ghn + 2 * p, 8);
                scratch_rows[q] = rows[p];
            }
        },
        1);
    if (into_scratch) return;
    parallel_for(
        n_nodes, n_threads,
        [&](int64_t k, int) {
            const int64_t s = starts[k], len = ends[k] - starts[k];
            std::memcpy(Xn + s * F, scratch_X + s * F, static_cast<size_t>(len) * row_bytes);
            std::memcpy(ghn + 2 * s, scratch_gh + 2 * s,
                        static_cast<size_t>(len) * 2 * sizeof(float));
            std::memcpy(rows + s, scratch_rows + s, static_cast<size_t>(len) * sizeof(int32_t));
        },
        1);
}

// What a tree's grower needs to fill the next tree's gradients itself, as it adds its leaf values
// to the margins (the objectives of gradient_pair): targets and sample weights (or null) indexed
// by the original row ids, as the margins.
struct NextGradients {
    int objective;
    const float* y;
    const float* weight;
};

// Row r's leaf value v added to its margin; with next, then its gradient pair at the new margin
// written to ghn[p] (p: the row's position in the node-ordered data whose (g, h) ghn holds).
inline void add_value_at(double* raw, int64_t r, double v, const NextGradients* next, float* ghn,
                         int64_t p);

// raw[rows[p]] += values[k] for p in [starts[k], ends[k]); with next, then ghn[p] = the gradient
// pair of row rows[p] at its new margin (add_value_at).
inline void add_leaf_values(const int32_t* rows, const int64_t* starts, const int64_t* ends,
                            const double* values, int64_t n_leaves, double* raw, int n_threads,
                            const NextGradients* next = nullptr, float* ghn = nullptr) {
    int64_t total = 0;
    for (int64_t k = 0; k < n_leaves; ++k) total += ends[k] - starts[k];
    n_threads = threads_for_work(n_threads, static_cast<double>(total), 20000.0);
    parallel_for(
        n_leaves, n_threads,
        [&](int64_t k, int) {
            const double v = values[k];
            const int64_t e = ends[k];
            for (int64_t p = starts[k]; p < e; ++p) {
#if defined(__GNUC__) || defined(__clang__)
                if (p + 32 < e) {  // scattered rows: load ahead
                    __builtin_prefetch(raw + rows[p + 32], 1);
                    if (next) __builtin_prefetch(next->y + rows[p + 32]);
                }
#endif
                add_value_at(raw, rows[p], v, next, ghn, p);
            }
        },
        1);
}

// One split node of add_split_leaf_values (below): its rows are positions [s, e) of the
// node-ordered data.
inline void add_split_node_values(const uint8_t* Xn, int64_t n_features, const int32_t* rows,
                                  int64_t s, int64_t e, int32_t feature, int32_t threshold,
                                  uint8_t default_left, const uint8_t* is_categorical,
                                  double left_value, double right_value, double* raw,
                                  const uint64_t* cat_set, const NextGradients* next, float* ghn) {
    uint8_t lut[kBins];
    direction_table(threshold, default_left, is_categorical[feature] != 0, lut, cat_set);
    const double v[2] = {right_value, left_value};
    const uint8_t* col = Xn + feature;
    for (int64_t p = s; p < e; ++p) {
#if defined(__GNUC__) || defined(__clang__)
        if (p + 32 < e) {  // scattered rows: load ahead
            __builtin_prefetch(raw + rows[p + 32], 1);
            if (next) __builtin_prefetch(next->y + rows[p + 32]);
        }
#endif
        add_value_at(raw, rows[p], v[lut[col[p * n_features]]], next, ghn, p);
    }
}

// The last split level of a tree without moving rows: for every node k (positions [starts[k],
// ends[k]) of node-ordered data Xn with original ids rows), raw[rows[p]] += left_value[k] when the
// node's split sends row p left, else right_value[k]. Nodes on separate threads (each row is in
// one node), so the result does not depend on n_threads. cat_sets as for partition_ordered; next
// and ghn as for add_leaf_values.
inline void add_split_leaf_values(const uint8_t* Xn, int64_t n_features, const int32_t* rows,
                                  const int64_t* starts, const int64_t* ends, int64_t n_nodes,
                                  const int32_t* feature, const int32_t* threshold,
                                  const uint8_t* default_left, const uint8_t* is_categorical,
                                  const double* left_value, const double* right_value, double* raw,
                                  int n_threads, const uint64_t* cat_sets = nullptr,
                                  const NextGradients* next = nullptr, float* ghn = nullptr) {
    int64_t total = 0;
    for (int64_t k = 0; k < n_nodes; ++k) total += ends[k] - starts[k];
    n_threads = threads_for_work(n_threads, static_cast<double>(total), 20000.0);
    parallel_for(
        n_nodes, n_threads,
        [&](int64_t k, int) {
            add_split_node_values(Xn, n_features, rows, starts[k], ends[k], feature[k],
                                  threshold[k], default_left[k], is_categorical, left_value[k],
                                  right_value[k], raw, node_set(cat_sets, k), next, ghn);
        },
        1);
}

// Gradient and hessian (float32, interleaved) of the loss at the raw margins.
// kBinaryLogistic, y in {0, 1}: g = p − y, h = max(p(1 − p), 1e-16), p = sigmoid(raw).
// kSquaredError: g = raw − y, h = 1. Both times the sample weight (if given).
inline void gradient_pair(int objective, double raw, float y, const float* weight, int64_t i,
                          float* out) {
    float g, h;
    if (objective == kBinaryLogistic) {
        const float p = 1.0f / (1.0f + std::exp(-static_cast<float>(raw)));
        g = p - y;
        h = std::max(p * (1.0f - p), 1e-16f);
    } else {
        g = static_cast<float>(raw) - y;
        h = 1.0f;
    }
    if (weight) {
        g *= weight[i];
        h *= weight[i];
    }
    out[0] = g;
    out[1] = h;
}

inline void add_value_at(double* raw, int64_t r, double v, const NextGradients* next, float* ghn,
                         int64_t p) {
    raw[r] += v;
    if (next) gradient_pair(next->objective, raw[r], next->y[r], next->weight, r, ghn + 2 * p);
}

inline void compute_gradients(int objective, const double* raw, const float* y, const float* weight,
                              int64_t n, float* gh, int n_threads) {
    const int64_t block = 8192;
    n_threads = threads_for_work(n_threads, static_cast<double>(n), 65536.0);
    parallel_for((n + block - 1) / block, n_threads,
                 [&](int64_t b, int) {
                     const int64_t i0 = b * block, i1 = std::min(n, i0 + block);
                     for (int64_t i = i0; i < i1; ++i)
                         gradient_pair(objective, raw[i], y[i], weight, i, gh + 2 * i);
                 },
                 1);
}

// The same gradients for rows rows[0..m) only, in that order: ghn[p] = gradient pair of row rows[p]
// (the node-ordered gradients of a tree without a separate gather).
inline void compute_gradients_at(int objective, const double* raw, const float* y,
                                 const float* weight, const int32_t* rows, int64_t m, float* ghn,
                                 int n_threads) {
    const int64_t block = 8192;
    n_threads = threads_for_work(n_threads, static_cast<double>(m), 12000.0);
    parallel_for((m + block - 1) / block, n_threads,
                 [&](int64_t b, int) {
                     const int64_t p0 = b * block, p1 = std::min(m, p0 + block);
                     constexpr int64_t kAhead =
                         32;  // rows are scattered: start the loads of later rows early
                     for (int64_t p = p0; p < p1; ++p) {
#if defined(__GNUC__) || defined(__clang__)
                         if (p + kAhead < p1) {
                             const int64_t ia = rows[p + kAhead];
                             __builtin_prefetch(raw + ia);
                             __builtin_prefetch(y + ia);
                             if (weight) __builtin_prefetch(weight + ia);
                         }
#endif
                         const int64_t i = rows[p];
                         gradient_pair(objective, raw[i], y[i], weight, i, ghn + 2 * p);
                     }
                 },
                 1);
}

}  // namespace gbdt
}  // namespace recforge
