// GBDT histograms: per node, per feature, per bin sums of (gradient, hessian).
//
// Layout: hist[node][feature][bin][2] (double), kBins bins per feature, bin kMissingBin holds
// rows whose value is missing. Rows of a node are rows[start, end) of a shared row-index buffer.
// Threads split the work by (node, block of features): every (node, feature, bin) sum is a
// sequential pass over the node's rows in buffer order, so the result is bit-identical for any
// n_threads (no per-thread partial histograms to merge).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "recforge/constants.hpp"
#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

// Assign each value of X (n_rows, n_features) float32, C order, to its bin: the number of
// edges[f] that are <= x (edges of feature f are edges[offsets[f], offsets[f+1]), sorted
// ascending). NaN → kMissingBin. For categorical features the edges are the category codes and the
// bin is the code's position (a code not in edges is treated as missing).
inline void bin_features(const float* X, int64_t n_rows, int64_t n_features, const float* edges,
                         const int64_t* offsets, const uint8_t* is_categorical, uint8_t* out,
                         int n_threads) {
    const int64_t block =
        256;  // rows per task: the block of X stays in cache while features change
    const int64_t n_blocks = (n_rows + block - 1) / block;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * block, r1 = std::min(n_rows, r0 + block);
        for (int64_t f = 0; f < n_features; ++f) {
            const float* e0 = edges + offsets[f];
            const int64_t len = offsets[f + 1] - offsets[f];
            const bool cat = is_categorical[f] != 0;
            for (int64_t r = r0; r < r1; ++r) {
                const float v = X[r * n_features + f];
                uint8_t bin;
                if (std::isnan(v) || len == 0) {
                    bin = (std::isnan(v) || cat) ? kMissingBin : 0;
                } else {
                    // branchless count of edges <= v (or < v for the categorical lookup)
                    const float* base = e0;
                    int64_t n = len;
                    if (cat) {
                        while (n > 1) {
                            const int64_t half = n / 2;
                            base = (base[half] < v) ? base + half : base;
                            n -= half;
                        }
                        const int64_t pos = (base - e0) + (*base < v);
                        bin = (pos < len && e0[pos] == v) ? static_cast<uint8_t>(pos) : kMissingBin;
                    } else {
                        while (n > 1) {
                            const int64_t half = n / 2;
                            base = (base[half] <= v) ? base + half : base;
                            n -= half;
                        }
                        bin = static_cast<uint8_t>((base - e0) + (*base <= v));
                    }
                }
                out[r * n_features + f] = bin;
            }
        }
    });
}

// Add the (g, h) of rows [s, e) (positions in rows, or of X/gh themselves when rows is null) to
// the histogram H of one node, features [f0, f1) only (mask 0: skipped). Rows in buffer order, so
// each (feature, bin) sum is the same sequential sum whoever runs it.
inline void accumulate_node(const uint8_t* X, int64_t n_features, const float* gh,
                            const int32_t* rows, int64_t s, int64_t e, int64_t f0, int64_t f1,
                            const uint8_t* feature_mask, double* H) {
    if (f0 >= f1) return;
    int32_t feats[256];
    int64_t nf = 0;
    if (f1 - f0 <= 256) {
        for (int64_t f = f0; f < f1; ++f)
            if (!feature_mask || feature_mask[f]) feats[nf++] = static_cast<int32_t>(f);
        if (nf == 0) return;
    }
    if (f1 - f0 <= 256 && nf == f1 - f0) {
        // contiguous block: the common case. Rows of a deep node are scattered: fetch the X row and
        // gradient of a row some iterations ahead so the loads overlap.
        constexpr int64_t kAhead = 24;
        for (int64_t p = s; p < e; ++p) {
#if defined(__GNUC__) || defined(__clang__)
            if (rows && p + kAhead < e) {
                const int64_t ra = rows[p + kAhead];
                __builtin_prefetch(X + ra * n_features + f0);
                __builtin_prefetch(gh + 2 * ra);
            }
#endif
            const int64_t r = rows ? rows[p] : p;
            const uint8_t* x = X + r * n_features;
            const double g = gh[2 * r], h = gh[2 * r + 1];
            for (int64_t f = f0; f < f1; ++f) {
                double* c = H + (f * kBins + x[f]) * 2;
                c[0] += g;
                c[1] += h;
            }
        }
    } else if (f1 - f0 <= 256) {
        for (int64_t p = s; p < e; ++p) {
            const int64_t r = rows ? rows[p] : p;
            const uint8_t* x = X + r * n_features;
            const double g = gh[2 * r], h = gh[2 * r + 1];
            for (int64_t j = 0; j < nf; ++j) {
                const int64_t f = feats[j];
                double* c = H + (f * kBins + x[f]) * 2;
                c[0] += g;
                c[1] += h;
            }
        }
    } else {
        for (int64_t p = s; p < e; ++p) {
            const int64_t r = rows ? rows[p] : p;
            const uint8_t* x = X + r * n_features;
            const double g = gh[2 * r], h = gh[2 * r + 1];
            for (int64_t f = f0; f < f1; ++f) {
                if (feature_mask && !feature_mask[f]) continue;
                double* c = H + (f * kBins + x[f]) * 2;
                c[0] += g;
                c[1] += h;
            }
        }
    }
}

// Feature blocks per node so that n_threads threads have work: one block per node when the level
// has enough nodes, else the features split into about n_threads blocks.
// (Every block reads the node's whole rows, so no more blocks than needed.)
inline int64_t feature_blocks(int64_t n_nodes, int64_t n_features, int n_threads) {
    if (n_threads <= 1 || n_nodes >= 4 * n_threads) return 1;
    // (2 blocks per thread where features allow: a thread descheduled on a busy machine then holds
    // back less of the work)
    const int64_t want = n_nodes == 1 ? (n_features >= 8 * n_threads ? 2 * n_threads : n_threads)
                                      : (2 * n_threads + n_nodes - 1) / n_nodes;
    return std::max<int64_t>(1, std::min<int64_t>(n_features, want));
}

// Threads worth waking for `work` (rows x features) histogram updates. (Measured on Adult: a
// second thread from 40k updates and 2 blocks per thread from 4 features per thread cost the
// calling thread more CPU than they took off it.)
inline int histogram_threads(int64_t work, int n_threads) {
    return threads_for_work(n_threads, static_cast<double>(work), 120000.0);
}

// The one task decomposition of the histogram builds: fn(k, f0, f1) for node k in [0, n_nodes)
// and each non-empty block [f0, f1) of its features, on as many threads as `work` (row x feature
// updates) pays for. Every (node, feature) is one task's sequential pass, so the histograms do not
// depend on n_threads.
template <typename Fn>
inline void for_each_node_block(int64_t n_nodes, int64_t n_features, int64_t work, int n_threads,
                                Fn&& fn) {
    n_threads = histogram_threads(work, n_threads);
    const int64_t n_blocks = feature_blocks(n_nodes, n_features, n_threads);
    const int64_t per_block = (n_features + n_blocks - 1) / n_blocks;
    parallel_for(
        n_nodes * n_blocks, n_threads,
        [&](int64_t task, int) {
            const int64_t k = task / n_blocks, f0 = (task % n_blocks) * per_block;
            const int64_t f1 = std::min(n_features, f0 + per_block);
            if (f0 < f1) fn(k, f0, f1);
        },
        1);
}

// Build the histograms of n_nodes nodes. gh: interleaved (g, h) float32 per row.
// rows == nullptr: node k is rows [starts[k], ends[k]) of X and gh themselves (data kept in node
// order, so every node reads contiguous memory); otherwise rows[starts[k], ends[k]) index them.
// feature_mask (may be null): features with mask 0 are left as zeros.
inline void build_histograms(const uint8_t* X, int64_t n_features, const float* gh,
                             const int32_t* rows, const int64_t* starts, const int64_t* ends,
                             int64_t n_nodes, const uint8_t* feature_mask, double* hist,
                             int n_threads) {
    const int64_t node_stride = n_features * kBins * 2;
    int64_t work = 0;
    for (int64_t k = 0; k < n_nodes; ++k) work += (ends[k] - starts[k]) * n_features;
    for_each_node_block(
        n_nodes, n_features, work, n_threads, [&](int64_t k, int64_t f0, int64_t f1) {
            double* H = hist + k * node_stride;
            std::memset(H + f0 * kBins * 2, 0,
                        sizeof(double) * static_cast<size_t>((f1 - f0) * kBins * 2));
            accumulate_node(X, n_features, gh, rows, starts[k], ends[k], f0, f1, feature_mask, H);
        });
}

// Histograms of the two children of each of n_parents split nodes, node-ordered data (rows of
// child c are positions [c_starts[c], c_ends[c]) of X and gh). Children 2j and 2j + 1 belong to
// parent j, whose histogram is parent_hist[j]. The smaller child (the left one on a tie) is built
// from its rows, the other is parent − smaller (the subtraction trick). out: (2 n_parents) nodes.
// parent_index (may be null): parent j's histogram is parent_hist[parent_index[j]] instead.
inline void build_child_histograms(const uint8_t* X, int64_t n_features, const float* gh,
                                   const double* parent_hist, const int64_t* parent_index,
                                   const int64_t* c_starts, const int64_t* c_ends,
                                   int64_t n_parents, const uint8_t* feature_mask, double* out,
                                   int n_threads) {
    const int64_t node_stride = n_features * kBins * 2;
    auto small_of = [&](int64_t j) {
        const int64_t nl = c_ends[2 * j] - c_starts[2 * j],
                      nr = c_ends[2 * j + 1] - c_starts[2 * j + 1];
        return 2 * j + (nr < nl ? 1 : 0);
    };
    int64_t work = 0;
    for (int64_t j = 0; j < n_parents; ++j) {
        const int64_t c = small_of(j);
        work += (c_ends[c] - c_starts[c]) * n_features;
    }
    for_each_node_block(
        n_parents, n_features, work, n_threads, [&](int64_t j, int64_t f0, int64_t f1) {
            const int64_t c = small_of(j);
            const int64_t lo = f0 * kBins * 2, len = (f1 - f0) * kBins * 2;
            double* S = out + c * node_stride;
            double* L = out + (c ^ 1) * node_stride;
            const double* P = parent_hist + (parent_index ? parent_index[j] : j) * node_stride;
            std::memset(S + lo, 0, sizeof(double) * static_cast<size_t>(len));
            accumulate_node(X, n_features, gh, nullptr, c_starts[c], c_ends[c], f0, f1,
                            feature_mask, S);
            for (int64_t i = lo; i < lo + len; ++i) L[i] = P[i] - S[i];
        });
}

}  // namespace gbdt
}  // namespace recforge
