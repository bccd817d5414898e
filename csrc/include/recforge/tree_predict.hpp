// GBDT prediction: walk every tree for every row of raw float32 features.
//
// Trees are stored flat: node arrays of all trees concatenated, tree t's nodes start at roots[t];
// child indices are absolute (−1 for a leaf) and a right child always follows its left child
// (right == left + 1). A row goes left when x is NaN and default_left, or (categorical)
// x == threshold, or (numeric) x < threshold.
//
// The walk is branch-free and runs a block of rows in lock-step: a packed leaf points to itself
// (it "goes right" from left = self − 1), so every row takes exactly depth(tree) steps and the
// rows of a block are independent, letting the CPU overlap their memory and compare latencies.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

struct PackedNode {   // 16 bytes: four nodes per cache line
    float threshold;  // NaN for a leaf: nothing compares true, so the row "goes right" to itself
    int32_t feature;
    int32_t left;  // a leaf: its own index − 1
    uint8_t default_left;
    uint8_t categorical;
    uint8_t pad[2];
};

struct PackedForest {
    std::vector<PackedNode> nodes;
    bool any_categorical = false;
    std::vector<double> values;
    std::vector<int32_t> depth;  // per tree: steps from the root to the deepest leaf
};

// Children must follow their parent (left > i, right == left + 1, both < n_nodes) and features
// lie in [0, n_features); the binding checks this before packing.
inline PackedForest pack_forest(int64_t n_nodes, const int32_t* feature, const float* threshold,
                                const int32_t* left, const uint8_t* default_left,
                                const uint8_t* categorical, const double* value,
                                const int64_t* roots, int64_t n_trees) {
    PackedForest f;
    f.nodes.resize(static_cast<size_t>(n_nodes));
    f.values.assign(value, value + n_nodes);
    std::vector<int32_t> node_depth(static_cast<size_t>(n_nodes), 0);
    for (int64_t i = 0; i < n_nodes; ++i) {
        PackedNode& p = f.nodes[i];
        if (left[i] < 0) {
            p = {
                std::numeric_limits<float>::quiet_NaN(), 0, static_cast<int32_t>(i - 1), 0, 0, {0}};
        } else {
            p = {threshold[i], feature[i], left[i], default_left[i], categorical[i], {0}};
            f.any_categorical = f.any_categorical || categorical[i] != 0;
            node_depth[left[i]] = node_depth[i] + 1;
            node_depth[left[i] + 1] = node_depth[i] + 1;
        }
    }
    f.depth.resize(static_cast<size_t>(n_trees));
    for (int64_t t = 0; t < n_trees; ++t) {
        const int64_t a = roots[t], b = t + 1 < n_trees ? roots[t + 1] : n_nodes;
        int32_t d = 0;
        for (int64_t i = a; i < b; ++i) d = std::max(d, node_depth[i]);
        f.depth[t] = d;
    }
    return f;
}

// One step down: the child the row x goes to (a leaf: itself). kCategorical = false when no node
// of the forest is categorical (one compare less per step).
template <bool kCategorical>
inline int32_t step(const PackedNode* nodes, int32_t node, const float* x) {
    const PackedNode& nd = nodes[node];
    const float v = x[nd.feature];
    const bool is_nan = v != v;
    const bool cmp = (kCategorical && nd.categorical) ? (v == nd.threshold) : (v < nd.threshold);
    const bool go_left = is_nan ? (nd.default_left != 0) : cmp;
    return nd.left + (go_left ? 0 : 1);
}

constexpr int64_t kPredictBlock = 64;

template <bool kCategorical, typename Visit>
inline void walk_block_t(const PackedForest& f, const float* X, int64_t n_features,
                         const int64_t* roots, int64_t t, int64_t r0, int64_t r1, Visit&& visit) {
    int32_t node[kPredictBlock];
    const float* x[kPredictBlock];
    const int32_t root = static_cast<int32_t>(roots[t]);
    const int64_t m = r1 - r0;
    for (int64_t j = 0; j < m; ++j) {
        node[j] = root;
        x[j] = X + (r0 + j) * n_features;
    }
    const PackedNode* nodes = f.nodes.data();
    for (int32_t d = 0; d < f.depth[t]; ++d)
        for (int64_t j = 0; j < m; ++j) node[j] = step<kCategorical>(nodes, node[j], x[j]);
    for (int64_t j = 0; j < m; ++j) visit(j, node[j]);
}

template <typename Visit>
inline void walk_block(const PackedForest& f, const float* X, int64_t n_features,
                       const int64_t* roots, int64_t t, int64_t r0, int64_t r1, Visit&& visit) {
    if (f.any_categorical)
        walk_block_t<true>(f, X, n_features, roots, t, r0, r1, visit);
    else
        walk_block_t<false>(f, X, n_features, roots, t, r0, r1, visit);
}

// acc[j] += leaf values of trees [t0, t1) for rows r0 + j < r1, two trees walked together (more
// independent loads in flight); values are still added tree after tree, in order.
template <bool kCategorical>
inline void predict_block(const PackedForest& f, const float* X, int64_t n_features,
                          const int64_t* roots, int64_t t0, int64_t t1, int64_t r0, int64_t r1,
                          double* acc) {
    const float* x[kPredictBlock];
    int32_t a[kPredictBlock], b[kPredictBlock];
    const int64_t m = r1 - r0;
    for (int64_t j = 0; j < m; ++j) x[j] = X + (r0 + j) * n_features;
    const PackedNode* nodes = f.nodes.data();
    const double* values = f.values.data();
    int64_t t = t0;
    for (; t + 1 < t1; t += 2) {
        const int32_t ra = static_cast<int32_t>(roots[t]), rb = static_cast<int32_t>(roots[t + 1]);
        for (int64_t j = 0; j < m; ++j) {
            a[j] = ra;
            b[j] = rb;
        }
        const int32_t depth = std::max(f.depth[t], f.depth[t + 1]);  // a leaf steps onto itself
        for (int32_t d = 0; d < depth; ++d)
            for (int64_t j = 0; j < m; ++j) {
                a[j] = step<kCategorical>(nodes, a[j], x[j]);
                b[j] = step<kCategorical>(nodes, b[j], x[j]);
            }
        for (int64_t j = 0; j < m; ++j) {
            acc[j] += values[a[j]];
            acc[j] += values[b[j]];
        }
    }
    if (t < t1) {
        const int32_t ra = static_cast<int32_t>(roots[t]);
        for (int64_t j = 0; j < m; ++j) a[j] = ra;
        for (int32_t d = 0; d < f.depth[t]; ++d)
            for (int64_t j = 0; j < m; ++j) a[j] = step<kCategorical>(nodes, a[j], x[j]);
        for (int64_t j = 0; j < m; ++j) acc[j] += values[a[j]];
    }
}

// out[r] += sum over trees [t0, t1) of the leaf value reached by row r (trees added in order).
inline void predict_raw(const float* X, int64_t n_rows, int64_t n_features, const PackedForest& f,
                        const int64_t* roots, int64_t t0, int64_t t1, double* out, int n_threads) {
    const int64_t n_blocks = (n_rows + kPredictBlock - 1) / kPredictBlock;
    if (n_rows * (t1 - t0) < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * kPredictBlock, r1 = std::min(n_rows, r0 + kPredictBlock);
        double acc[kPredictBlock] = {0.0};
        if (f.any_categorical)
            predict_block<true>(f, X, n_features, roots, t0, t1, r0, r1, acc);
        else
            predict_block<false>(f, X, n_features, roots, t0, t1, r0, r1, acc);
        for (int64_t j = 0; j < r1 - r0; ++j) out[r0 + j] += acc[j];
    });
}

// out[r, t - t0] = index (within tree t, i.e. minus roots[t]) of the leaf row r reaches.
inline void apply_trees(const float* X, int64_t n_rows, int64_t n_features, const PackedForest& f,
                        const int64_t* roots, int64_t t0, int64_t t1, int32_t* out, int n_threads) {
    const int64_t n_blocks = (n_rows + kPredictBlock - 1) / kPredictBlock;
    const int64_t nt = t1 - t0;
    if (n_rows * nt < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * kPredictBlock, r1 = std::min(n_rows, r0 + kPredictBlock);
        for (int64_t t = t0; t < t1; ++t) {
            const int32_t root = static_cast<int32_t>(roots[t]);
            walk_block(f, X, n_features, roots, t, r0, r1, [&](int64_t j, int32_t leaf) {
                out[(r0 + j) * nt + (t - t0)] = leaf - root;
            });
        }
    });
}

}  // namespace gbdt
}  // namespace recforge
