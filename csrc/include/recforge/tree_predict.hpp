// GBDT prediction: walk every tree for every row of raw float32 features.
//
// Trees are stored flat: node arrays of all trees concatenated, tree t's root at roots[t]; child
// indices are absolute (−1 for a leaf). A row goes left when x is NaN and default_left, or
// (categorical) x == threshold, or (numeric) x < threshold.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

struct PackedNode {
    float threshold;
    int32_t feature;
    int32_t left;   // −1: leaf
    int32_t right;
    uint8_t default_left;
    uint8_t categorical;
    double value;
};

inline std::vector<PackedNode> pack_nodes(int64_t n_nodes, const int32_t* feature, const float* threshold,
                                          const int32_t* left, const int32_t* right, const uint8_t* default_left,
                                          const uint8_t* categorical, const double* value) {
    std::vector<PackedNode> nodes(static_cast<size_t>(n_nodes));
    for (int64_t i = 0; i < n_nodes; ++i)
        nodes[i] = {threshold[i], feature[i], left[i], right[i], default_left[i], categorical[i], value[i]};
    return nodes;
}

inline int32_t find_leaf(const PackedNode* nodes, int32_t node, const float* x) {
    while (nodes[node].left >= 0) {
        const PackedNode& nd = nodes[node];
        const float v = x[nd.feature];
        bool left;
        if (std::isnan(v)) left = nd.default_left != 0;
        else if (nd.categorical) left = v == nd.threshold;
        else left = v < nd.threshold;
        node = left ? nd.left : nd.right;
    }
    return node;
}

// out[r] += sum over trees [t0, t1) of the leaf value reached by row r (trees added in order).
inline void predict_raw(const float* X, int64_t n_rows, int64_t n_features, const PackedNode* nodes,
                        const int64_t* roots, int64_t t0, int64_t t1, double* out, int n_threads) {
    const int64_t block = 64;
    const int64_t n_blocks = (n_rows + block - 1) / block;
    if (n_rows * (t1 - t0) < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * block, r1 = std::min(n_rows, r0 + block);
        for (int64_t t = t0; t < t1; ++t) {
            const int32_t root = static_cast<int32_t>(roots[t]);
            for (int64_t r = r0; r < r1; ++r) out[r] += nodes[find_leaf(nodes, root, X + r * n_features)].value;
        }
    });
}

// out[r, t - t0] = index (within tree t, i.e. minus roots[t]) of the leaf row r reaches.
inline void apply_trees(const float* X, int64_t n_rows, int64_t n_features, const PackedNode* nodes,
                        const int64_t* roots, int64_t t0, int64_t t1, int32_t* out, int n_threads) {
    const int64_t block = 64;
    const int64_t n_blocks = (n_rows + block - 1) / block;
    const int64_t nt = t1 - t0;
    if (n_rows * nt < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * block, r1 = std::min(n_rows, r0 + block);
        for (int64_t t = t0; t < t1; ++t) {
            const int32_t root = static_cast<int32_t>(roots[t]);
            for (int64_t r = r0; r < r1; ++r)
                out[r * nt + (t - t0)] = find_leaf(nodes, root, X + r * n_features) - root;
        }
    });
}

}  // namespace gbdt
}  // namespace recforge
