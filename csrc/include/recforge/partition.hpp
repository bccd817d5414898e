// GBDT row partition (stable, in place in the shared row buffer), leaf updates and gradients.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "recforge/histogram.hpp"
#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

// Split rows[starts[k], ends[k]) of every node k: rows going left first, then rows going right,
// each group keeping its order. A row goes left when its bin of feature[k] is missing and
// default_left[k], or (categorical) bin == threshold[k], or (numeric) bin <= threshold[k].
// Work is cut into fixed blocks of rows whose output positions are known from a prefix sum, so
// the result does not depend on n_threads. Writes the number of left rows of node k to n_left[k].
// X_cols: the binned matrix in column-major order (n_features, n_rows); rows of a node are kept in
// ascending order by every partition, so reading one feature's column is a forward sweep.
inline void partition_rows(const uint8_t* X_cols, int64_t n_rows, int32_t* rows, const int64_t* starts,
                           const int64_t* ends, int64_t n_nodes, const int32_t* feature, const int32_t* threshold,
                           const uint8_t* default_left, const uint8_t* is_categorical, int64_t* n_left,
                           int n_threads) {
    const int64_t block = 16384;
    struct Task {
        int64_t node, begin, end, left_before, right_before;
    };
    std::vector<Task> tasks;
    int64_t total = 0;
    for (int64_t k = 0; k < n_nodes; ++k) {
        for (int64_t b = starts[k]; b < ends[k]; b += block)
            tasks.push_back({k, b, std::min(ends[k], b + block), 0, 0});
        total += ends[k] - starts[k];
    }
    if (total < 200000) n_threads = 1;
    auto goes_left = [&](int64_t k, int32_t r) {
        const uint8_t b = X_cols[static_cast<int64_t>(feature[k]) * n_rows + r];
        if (b == kMissingBin) return default_left[k] != 0;
        if (is_categorical[feature[k]]) return static_cast<int32_t>(b) == threshold[k];
        return static_cast<int32_t>(b) <= threshold[k];
    };
    if (n_threads == 1) {
        // one pass: left rows compacted in place, right rows to a buffer, then copied behind them
        std::vector<int32_t> right(static_cast<size_t>(total));
        for (int64_t k = 0; k < n_nodes; ++k) {
            int64_t li = starts[k], ri = 0;
            for (int64_t p = starts[k]; p < ends[k]; ++p) {
                const int32_t r = rows[p];
                if (goes_left(k, r)) rows[li++] = r;
                else right[ri++] = r;
            }
            std::copy(right.data(), right.data() + ri, rows + li);
            n_left[k] = li - starts[k];
        }
        return;
    }
    std::vector<uint8_t> dir(static_cast<size_t>(total));
    std::vector<int64_t> offset(static_cast<size_t>(n_nodes));
    // pass 1: directions and per-block left counts
    std::vector<int64_t> block_left(tasks.size());
    {
        int64_t acc = 0;
        for (int64_t k = 0; k < n_nodes; ++k) {
            offset[k] = acc;
            acc += ends[k] - starts[k];
        }
    }
    parallel_for(static_cast<int64_t>(tasks.size()), n_threads, [&](int64_t t, int) {
        const Task& tk = tasks[t];
        uint8_t* d = dir.data() + offset[tk.node] + (tk.begin - starts[tk.node]);
        int64_t c = 0;
        for (int64_t p = tk.begin; p < tk.end; ++p) {
            const bool l = goes_left(tk.node, rows[p]);
            d[p - tk.begin] = l;
            c += l;
        }
        block_left[t] = c;
    }, 1);
    // prefix sums per node
    for (int64_t k = 0; k < n_nodes; ++k) n_left[k] = 0;
    for (size_t t = 0; t < tasks.size(); ++t) {
        Task& tk = tasks[t];
        tk.left_before = n_left[tk.node];
        tk.right_before = (tk.begin - starts[tk.node]) - tk.left_before;
        n_left[tk.node] += block_left[t];
    }
    // pass 2: scatter into a copy, then copy back
    std::vector<int32_t> out(static_cast<size_t>(total));
    parallel_for(static_cast<int64_t>(tasks.size()), n_threads, [&](int64_t t, int) {
        const Task& tk = tasks[t];
        const int64_t k = tk.node;
        const uint8_t* d = dir.data() + offset[k] + (tk.begin - starts[k]);
        int32_t* o = out.data() + offset[k];
        int64_t li = tk.left_before, ri = n_left[k] + tk.right_before;
        for (int64_t p = tk.begin; p < tk.end; ++p) {
            if (d[p - tk.begin]) o[li++] = rows[p];
            else o[ri++] = rows[p];
        }
    }, 1);
    parallel_for(n_nodes, n_threads, [&](int64_t k, int) {
        std::copy(out.data() + offset[k], out.data() + offset[k] + (ends[k] - starts[k]), rows + starts[k]);
    }, 1);
}

// Copy one binned row (n bytes): 8-byte words then the tail, inlined (a libc memcpy call per
// 50-byte row costs more than the copy).
inline void copy_row(uint8_t* dst, const uint8_t* src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, src + i, 8);
        std::memcpy(dst + i, &w, 8);
    }
    for (; i < n; ++i) dst[i] = src[i];
}

// Node-ordered data: positions [starts[k], ends[k]) of Xn (row-major binned rows), ghn (g, h pairs)
// and rows (original row ids) belong to node k. Split every node and move all three arrays so
// that its left rows come first, then its right rows, each group keeping its order (stable).
// scratch_* are buffers of the same sizes as the arrays. Writes the left counts to n_left.
inline void partition_ordered(uint8_t* Xn, int64_t n_features, float* ghn, int32_t* rows, uint8_t* scratch_X,
                              float* scratch_gh, int32_t* scratch_rows, const int64_t* starts, const int64_t* ends,
                              int64_t n_nodes, const int32_t* feature, const int32_t* threshold,
                              const uint8_t* default_left, const uint8_t* is_categorical, int64_t* n_left,
                              int n_threads) {
    const int64_t block = 16384;
    struct Task {
        int64_t node, begin, end, left_before;
    };
    std::vector<Task> tasks;
    int64_t total = 0;
    for (int64_t k = 0; k < n_nodes; ++k) {
        for (int64_t b = starts[k]; b < ends[k]; b += block) tasks.push_back({k, b, std::min(ends[k], b + block), 0});
        total += ends[k] - starts[k];
    }
    if (total < 100000) n_threads = 1;
    auto goes_left = [&](int64_t k, int64_t p) {
        const uint8_t b = Xn[p * n_features + feature[k]];
        if (b == kMissingBin) return default_left[k] != 0;
        if (is_categorical[feature[k]]) return static_cast<int32_t>(b) == threshold[k];
        return static_cast<int32_t>(b) <= threshold[k];
    };
    const size_t row_bytes = static_cast<size_t>(n_features);
    if (n_threads == 1) {
        // one pass per node: left rows compacted in place, right rows to scratch, then appended
        for (int64_t k = 0; k < n_nodes; ++k) {
            int64_t li = starts[k], ri = 0;
            for (int64_t p = starts[k]; p < ends[k]; ++p) {
                if (goes_left(k, p)) {
                    if (li != p) {
                        copy_row(Xn + li * n_features, Xn + p * n_features, row_bytes);
                        ghn[2 * li] = ghn[2 * p];
                        ghn[2 * li + 1] = ghn[2 * p + 1];
                        rows[li] = rows[p];
                    }
                    ++li;
                } else {
                    copy_row(scratch_X + ri * n_features, Xn + p * n_features, row_bytes);
                    scratch_gh[2 * ri] = ghn[2 * p];
                    scratch_gh[2 * ri + 1] = ghn[2 * p + 1];
                    scratch_rows[ri] = rows[p];
                    ++ri;
                }
            }
            std::memcpy(Xn + li * n_features, scratch_X, static_cast<size_t>(ri) * row_bytes);
            std::memcpy(ghn + 2 * li, scratch_gh, static_cast<size_t>(ri) * 2 * sizeof(float));
            std::memcpy(rows + li, scratch_rows, static_cast<size_t>(ri) * sizeof(int32_t));
            n_left[k] = li - starts[k];
        }
        return;
    }
    std::vector<int64_t> block_left(tasks.size());
    parallel_for(static_cast<int64_t>(tasks.size()), n_threads, [&](int64_t t, int) {
        const Task& tk = tasks[t];
        int64_t c = 0;
        for (int64_t p = tk.begin; p < tk.end; ++p) c += goes_left(tk.node, p);
        block_left[t] = c;
    }, 1);
    for (int64_t k = 0; k < n_nodes; ++k) n_left[k] = 0;
    for (size_t t = 0; t < tasks.size(); ++t) {
        tasks[t].left_before = n_left[tasks[t].node];
        n_left[tasks[t].node] += block_left[t];
    }
    // scatter every row to its final position in the scratch buffers, then copy the ranges back
    parallel_for(static_cast<int64_t>(tasks.size()), n_threads, [&](int64_t t, int) {
        const Task& tk = tasks[t];
        const int64_t k = tk.node;
        int64_t li = starts[k] + tk.left_before;
        int64_t ri = starts[k] + n_left[k] + (tk.begin - starts[k]) - tk.left_before;
        for (int64_t p = tk.begin; p < tk.end; ++p) {
            const int64_t q = goes_left(k, p) ? li++ : ri++;
            copy_row(scratch_X + q * n_features, Xn + p * n_features, row_bytes);
            scratch_gh[2 * q] = ghn[2 * p];
            scratch_gh[2 * q + 1] = ghn[2 * p + 1];
            scratch_rows[q] = rows[p];
        }
    }, 1);
    parallel_for(n_nodes, n_threads, [&](int64_t k, int) {
        const int64_t s = starts[k], len = ends[k] - starts[k];
        std::memcpy(Xn + s * n_features, scratch_X + s * n_features, static_cast<size_t>(len) * row_bytes);
        std::memcpy(ghn + 2 * s, scratch_gh + 2 * s, static_cast<size_t>(len) * 2 * sizeof(float));
        std::memcpy(rows + s, scratch_rows + s, static_cast<size_t>(len) * sizeof(int32_t));
    }, 1);
}

// raw[rows[p]] += values[k] for p in [starts[k], ends[k]).
inline void add_leaf_values(const int32_t* rows, const int64_t* starts, const int64_t* ends, const double* values,
                            int64_t n_leaves, double* raw, int n_threads) {
    int64_t total = 0;
    for (int64_t k = 0; k < n_leaves; ++k) total += ends[k] - starts[k];
    if (total < 100000) n_threads = 1;
    parallel_for(n_leaves, n_threads, [&](int64_t k, int) {
        const double v = values[k];
        for (int64_t p = starts[k]; p < ends[k]; ++p) raw[rows[p]] += v;
    }, 1);
}

// Gradient and hessian (float32, interleaved) of the loss at the raw margins.
// objective 0: binary:logistic, y in {0, 1}: g = p − y, h = max(p(1 − p), 1e-16), p = sigmoid(raw).
// objective 1: reg:squarederror: g = raw − y, h = 1. Both times the sample weight (if given).
inline void compute_gradients(int objective, const double* raw, const float* y, const float* weight, int64_t n,
                              float* gh, int n_threads) {
    const int64_t block = 8192;
    if (n < 100000) n_threads = 1;
    parallel_for((n + block - 1) / block, n_threads, [&](int64_t b, int) {
        const int64_t i0 = b * block, i1 = std::min(n, i0 + block);
        for (int64_t i = i0; i < i1; ++i) {
            float g, h;
            if (objective == 0) {
                const float p = 1.0f / (1.0f + std::exp(-static_cast<float>(raw[i])));
                g = p - y[i];
                h = std::max(p * (1.0f - p), 1e-16f);
            } else {
                g = static_cast<float>(raw[i]) - y[i];
                h = 1.0f;
            }
            if (weight) {
                g *= weight[i];
                h *= weight[i];
            }
            gh[2 * i] = g;
            gh[2 * i + 1] = h;
        }
    }, 1);
}

}  // namespace gbdt
}  // namespace recforge
