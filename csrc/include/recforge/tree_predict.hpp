// GBDT prediction: walk every tree for every row of raw float32 features.
//
// Trees are stored flat: node arrays of all trees concatenated, tree t's nodes start at roots[t];
// child indices are absolute (−1 for a leaf) and a right child always follows its left child
// (right == left + 1). A row goes left when x is NaN and default_left, or (categorical)
// x == threshold, or (a categorical partition split) x is one of the split's category codes, or
// (numeric) x < threshold. A partition split's codes are a bitset over the integer codes when they
// are below kMaxBitsetCode (then its tree may take the complete-tree layout), else a sorted list
// (then its tree keeps the pointer layout).
//
// Rows are predicted in blocks of kPredictBlock, each block walked tree by tree (one tree's nodes
// stay in cache for the whole block), and tree after tree in order, so that every row's sum is the
// same float64 sum, in the same order, however the rows are split among threads.
//
// Most trees (depth-limited ones, and shallow leaf-wise ones) are walked in a complete-binary-tree
// layout (xgboost's ArrayTreeLayout idea): node h's children are 2h and 2h + 1, a leaf above the
// bottom level is repeated into every bottom slot below it, so a row takes exactly depth(tree)
// steps with no child pointer to load. The block's used feature columns are first copied
// column-major (`cols[k * kPredictBlock + j]`), so a node holds `k * kPredictBlock` and the value
// of row j is one load at a fixed offset; kDenseLanes rows are walked together (independent load
// chains). A numeric tree reads its columns with NaN already replaced by -inf where its split
// sends NaN left and by +inf where it sends NaN right (a feature split both ways gets both
// copies), so it takes the plain `x < threshold` step for any rows (see plain_split for the
// thresholds where that would differ: their trees read the column as it is). Other trees take the
// plain step in a block without NaN, else the step that also checks NaN and categories. On a CPU
// with AVX2 (checked at run time; the build keeps portable flags) the top kVectorLevels levels of
// numeric trees run as 8-lane vectors: at level L the 8 rows sit at one of 2^L nodes, each node
// one vector load of its column (the column-major copy makes the 8 rows' values contiguous), for
// 4 x 8 rows at a time (four independent chains per node load).
//
// Deeper trees keep the pointer layout (PackedNode), walked branch-free: a packed leaf points to
// itself (it "goes right" from left = self − 1), so every row takes exactly depth(tree) steps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "recforge/parallel.hpp"
#include "recforge/simd.hpp"

// The vector levels need GCC/Clang vector extensions, the target attribute and a CPU check.
#if defined(__GNUC__) && defined(__x86_64__)
#define RECFORGE_PREDICT_VECTOR 1
#else
#define RECFORGE_PREDICT_VECTOR 0
#endif

namespace recforge {
namespace gbdt {

struct PackedNode {   // 16 bytes: four nodes per cache line
    float threshold;  // NaN for a leaf: nothing compares true, so the row "goes right" to itself
    int32_t feature;
    int32_t left;  // a leaf: its own index − 1
    uint8_t default_left;
    uint8_t categorical;  // 1: x == threshold goes left; kSetSplit: x in the node's code set
    uint8_t pad[2];
};

constexpr uint8_t kSetSplit = 2;  // PackedNode::categorical of a partition split

struct DenseNode {    // a split of the complete-tree layout (8 bytes)
    float threshold;  // a repeated leaf above the bottom level: 0 (both sides lead to that leaf)
    uint32_t column;  // k * kPredictBlock: the feature's column in the block's column-major copy
};

struct PackedForest {
    std::vector<PackedNode> nodes;
    bool any_categorical = false;
    std::vector<double> values;
    std::vector<int32_t> depth;  // per tree: steps from the root to the deepest leaf
    // The complete-tree layout: tree t (if dense_offset[t] >= 0) has 2^depth[t] entries from
    // dense_offset[t] on; entry h in [1, 2^depth) is split node h (heap order), entry s in
    // [0, 2^depth) of dense_value / dense_leaf is bottom slot s.
    std::vector<int64_t> dense_offset;
    std::vector<uint8_t> dense_categorical_tree;  // per tree: any categorical split
    std::vector<uint8_t> dense_plain_tree;        // per tree: walked by `x < threshold` alone
    std::vector<DenseNode> dense_nodes;
    std::vector<uint8_t> dense_flags;    // per split: kNanRight | kCategorical (go left if x == t)
    std::vector<double> dense_value;     // per bottom slot: its leaf's value
    std::vector<int32_t> dense_leaf;     // per bottom slot: its leaf's node index - root
    std::vector<int32_t> used_features;  // column k of a block copy is feature used_features[k]
    std::vector<float> column_fill;      // ... with NaN replaced by column_fill[k] (NaN: kept)
    // a partition split i: the sorted category codes that go left are
    // set_codes[set_begin[i] .. set_begin[i + 1])
    std::vector<int64_t> set_begin;
    std::vector<float> set_codes;
    // ... and as a bitset: set_bits[set_bits_at[i]] = n_words, the words follow (-1: no bitset)
    std::vector<int64_t> set_bits_at;
    std::vector<uint64_t> set_bits;
};

constexpr float kMaxBitsetCode = 65536.0f;  // codes below this: a partition split's bitset

// Whether x is one of the n sorted codes (x not NaN).
inline bool in_code_set(const float* codes, int64_t n, float x) {
    const float* p = std::lower_bound(codes, codes + n, x);
    return p != codes + n && *p == x;
}

// Whether x is in the bitset at `bits` (bits[0] words follow; x not NaN).
inline bool in_code_bits(const uint64_t* bits, float x) {
    if (!(x >= 0.0f) || !(x < static_cast<float>(bits[0] * 64))) return false;
    const uint32_t c = static_cast<uint32_t>(x);
    return static_cast<float>(c) == x && ((bits[1 + (c >> 6)] >> (c & 63)) & 1u);
}

constexpr int64_t kPredictBlock = 64;  // rows per block
constexpr int kDenseLanes = 8;         // rows of a block walked together through one tree
constexpr int32_t kDenseMaxDepth = 12;
constexpr uint32_t kNanRight = 1, kCategorical = 2;  // dense_flags bits
constexpr uint32_t kCodeSet = 4;  // dense_flags: a partition split (threshold: its bitset's index)
constexpr int32_t kVectorLevels = 4;  // top levels walked as 8-lane vectors (AVX2 builds)

// Whether x (not NaN) goes left of partition split node i of f.
inline bool in_split_set(const PackedForest& f, int64_t i, float x) {
    if (f.set_bits_at[i] >= 0) return in_code_bits(f.set_bits.data() + f.set_bits_at[i], x);
    const int64_t s = f.set_begin[i];
    return in_code_set(f.set_codes.data() + s, f.set_begin[i + 1] - s, x);
}

// Whether a tree of `depth` with `n_nodes` nodes gets the complete-tree layout: shallow enough
// for its 2^depth slots not to dwarf its nodes (a deep, thin leaf-wise tree keeps the pointers).
inline bool use_dense_layout(int32_t depth, int64_t n_nodes) {
    return depth <= kDenseMaxDepth && (int64_t(1) << depth) <= 16 * n_nodes + 64;
}

// Whether the plain step `x < threshold` takes the split's NaN branch once NaN is replaced by
// -inf (default left) or +inf (default right): a numeric split whose threshold is not NaN and,
// when NaN goes left, above -inf (-inf < t). Values that are +-inf in the data go the same way.
inline bool plain_split(uint8_t categorical, bool set_split, uint8_t default_left,
                        float threshold) {
    if (categorical || set_split || threshold != threshold) return false;
    return !default_left || threshold > -std::numeric_limits<float>::infinity();
}

// Children must follow their parent (left > i, right == left + 1, both < n_nodes) and features
// lie in [0, n_features); the binding checks this before packing. cat_count (n_nodes,) and
// cat_codes (or both null: no partition splits): split node i with cat_count[i] > 0 is a
// partition split whose left codes (sorted, strictly increasing) are the next cat_count[i] entries
// of cat_codes (node order).
inline PackedForest pack_forest(int64_t n_nodes, const int32_t* feature, const float* threshold,
                                const int32_t* left, const uint8_t* default_left,
                                const uint8_t* categorical, const double* value,
                                const int64_t* roots, int64_t n_trees, const int32_t* cat_count,
                                const float* cat_codes) {
    PackedForest f;
    f.nodes.resize(static_cast<size_t>(n_nodes));
    f.values.assign(value, value + n_nodes);
    f.set_begin.assign(static_cast<size_t>(n_nodes + 1), 0);
    for (int64_t i = 0; i < n_nodes; ++i)
        f.set_begin[i + 1] = f.set_begin[i] + (cat_count ? cat_count[i] : 0);
    if (cat_count) f.set_codes.assign(cat_codes, cat_codes + f.set_begin[n_nodes]);
    auto is_set = [&](int64_t i) { return cat_count && cat_count[i] > 0 && left[i] >= 0; };
    f.set_bits_at.assign(static_cast<size_t>(n_nodes), -1);
    for (int64_t i = 0; i < n_nodes; ++i) {
        if (!is_set(i)) continue;
        const float* c = f.set_codes.data() + f.set_begin[i];
        const int64_t n = f.set_begin[i + 1] - f.set_begin[i];
        bool small = c[n - 1] < kMaxBitsetCode;  // codes increase: the last is the largest
        for (int64_t k = 0; k < n && small; ++k)
            small = c[k] >= 0.0f && static_cast<float>(static_cast<uint32_t>(c[k])) == c[k];
        if (!small) continue;
        const uint64_t n_words = static_cast<uint32_t>(c[n - 1]) / 64 + 1;
        f.set_bits_at[i] = static_cast<int64_t>(f.set_bits.size());
        f.set_bits.push_back(n_words);
        const size_t words = f.set_bits.size();
        f.set_bits.resize(words + n_words, 0);
        for (int64_t k = 0; k < n; ++k) {
            const uint32_t code = static_cast<uint32_t>(c[k]);
            f.set_bits[words + (code >> 6)] |= uint64_t(1) << (code & 63);
        }
    }
    std::vector<int32_t> node_depth(static_cast<size_t>(n_nodes), 0);
    int32_t n_columns = 0;
    for (int64_t i = 0; i < n_nodes; ++i) {
        PackedNode& p = f.nodes[i];
        if (left[i] < 0) {
            p = {
                std::numeric_limits<float>::quiet_NaN(), 0, static_cast<int32_t>(i - 1), 0, 0, {0}};
        } else {
            p = {threshold[i],
                 feature[i],
                 left[i],
                 default_left[i],
                 is_set(i) ? kSetSplit : categorical[i],
                 {0}};
            f.any_categorical = f.any_categorical || categorical[i] != 0;
            node_depth[left[i]] = node_depth[i] + 1;
            node_depth[left[i] + 1] = node_depth[i] + 1;
            n_columns = std::max(n_columns, feature[i] + 1);
        }
    }
    f.depth.resize(static_cast<size_t>(n_trees));
    f.dense_offset.assign(static_cast<size_t>(n_trees), -1);
    f.dense_categorical_tree.assign(static_cast<size_t>(n_trees), 0);
    f.dense_plain_tree.assign(static_cast<size_t>(n_trees), 0);
    std::vector<int64_t> tree_of(static_cast<size_t>(n_nodes), 0);
    int64_t dense_size = 0;
    for (int64_t t = 0; t < n_trees; ++t) {
        const int64_t a = roots[t], b = t + 1 < n_trees ? roots[t + 1] : n_nodes;
        int32_t d = 0;
        bool listed_set = false;  // a partition split without a bitset
        bool plain = true;
        for (int64_t i = a; i < b; ++i) {
            tree_of[i] = t;
            d = std::max(d, node_depth[i]);
            listed_set =
                listed_set ||
                (is_set(i) && (f.set_bits_at[i] < 0 || f.set_bits_at[i] > int64_t(UINT32_MAX)));
            if (left[i] >= 0)
                plain =
                    plain && plain_split(categorical[i], is_set(i), default_left[i], threshold[i]);
        }
        f.depth[t] = d;
        if (!listed_set && use_dense_layout(d, b - a)) {
            f.dense_offset[t] = dense_size;
            dense_size += int64_t(1) << d;
            f.dense_plain_tree[t] = plain;
        }
    }
    // Columns of the block copy, in order of first use: a feature read by the splits of plain
    // dense trees once per NaN direction (NaN filled), by any other split as it is.
    constexpr float kInf = std::numeric_limits<float>::infinity();
    const float fills[3] = {std::numeric_limits<float>::quiet_NaN(), -kInf, kInf};
    auto fill_kind = [&](int64_t i) {
        if (f.dense_offset[tree_of[i]] < 0 || !f.dense_plain_tree[tree_of[i]]) return 0;
        return default_left[i] ? 1 : 2;
    };
    std::vector<int32_t> column(static_cast<size_t>(n_columns) * 3, -1);
    for (int64_t i = 0; i < n_nodes; ++i) {
        if (left[i] < 0) continue;
        const int kind = fill_kind(i);
        int32_t& c = column[static_cast<size_t>(feature[i]) * 3 + kind];
        if (c < 0) {
            c = static_cast<int32_t>(f.used_features.size());
            f.used_features.push_back(feature[i]);
            f.column_fill.push_back(fills[kind]);
        }
    }
    f.dense_nodes.assign(static_cast<size_t>(dense_size), DenseNode{0.0f, 0});
    f.dense_flags.assign(static_cast<size_t>(dense_size), 0);
    f.dense_value.assign(static_cast<size_t>(dense_size), 0.0);
    f.dense_leaf.assign(static_cast<size_t>(dense_size), 0);
    struct Visit {
        int64_t node, heap;
    };
    std::vector<Visit> stack;
    for (int64_t t = 0; t < n_trees; ++t) {
        const int64_t o = f.dense_offset[t];
        if (o < 0) continue;
        const int32_t d = f.depth[t];
        stack.assign(1, Visit{roots[t], 1});
        while (!stack.empty()) {
            const Visit v = stack.back();
            stack.pop_back();
            const int64_t i = v.node;
            if (left[i] >= 0) {
                const int32_t c = column[static_cast<size_t>(feature[i]) * 3 + fill_kind(i)];
                f.dense_nodes[o + v.heap] = {threshold[i],
                                             static_cast<uint32_t>(c * kPredictBlock)};
                f.dense_flags[o + v.heap] = static_cast<uint8_t>(
                    (default_left[i] ? 0 : kNanRight) | (categorical[i] ? kCategorical : 0));
                if (is_set(i)) {  // the threshold's bits: the index of the split's bitset
                    const uint32_t at = static_cast<uint32_t>(f.set_bits_at[i]);
                    std::memcpy(&f.dense_nodes[o + v.heap].threshold, &at, sizeof(at));
                    f.dense_flags[o + v.heap] |= kCodeSet;
                }
                f.dense_categorical_tree[t] |= categorical[i];
                stack.push_back({left[i], 2 * v.heap});
                stack.push_back({left[i] + 1, 2 * v.heap + 1});
            } else {  // every bottom slot under heap entry v.heap (at level node_depth[i])
                const int32_t below = d - node_depth[i];  // a root has depth 0
                const int64_t first = (v.heap << below) - (int64_t(1) << d);
                const int64_t last = first + (int64_t(1) << below);
                for (int64_t s = first; s < last; ++s) {
                    f.dense_value[o + s] = value[i];
                    f.dense_leaf[o + s] = static_cast<int32_t>(i - roots[t]);
                }
            }
        }
    }
    return f;
}

// The forest packed without partition splits (the entry point of callers that predate them).
inline PackedForest pack_forest(int64_t n_nodes, const int32_t* feature, const float* threshold,
                                const int32_t* left, const uint8_t* default_left,
                                const uint8_t* categorical, const double* value,
                                const int64_t* roots, int64_t n_trees) {
    return pack_forest(n_nodes, feature, threshold, left, default_left, categorical, value, roots,
                       n_trees, nullptr, nullptr);
}

// One step down: the child the row x goes to (a leaf: itself). kCategorical = false when no node
// of the forest is categorical (one compare less per step).
template <bool kCategorical>
inline int32_t step(const PackedForest& f, const PackedNode* nodes, int32_t node, const float* x) {
    const PackedNode& nd = nodes[node];
    const float v = x[nd.feature];
    const bool is_nan = v != v;
    bool cmp;
    if (kCategorical && nd.categorical == kSetSplit) {
        cmp = !is_nan && in_split_set(f, node, v);
    } else {
        cmp = (kCategorical && nd.categorical) ? (v == nd.threshold) : (v < nd.threshold);
    }
    const bool go_left = is_nan ? (nd.default_left != 0) : cmp;
    return nd.left + (go_left ? 0 : 1);
}

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
        for (int64_t j = 0; j < m; ++j) node[j] = step<kCategorical>(f, nodes, node[j], x[j]);
    for (int64_t j = 0; j < m; ++j) visit(j, node[j]);
}

// The pointer-layout walk of tree t for rows [r0, r1): visit(j, node) with the leaf's absolute
// node index reached by row r0 + j.
template <typename Visit>
inline void walk_block(const PackedForest& f, const float* X, int64_t n_features,
                       const int64_t* roots, int64_t t, int64_t r0, int64_t r1, Visit&& visit) {
    if (f.any_categorical)
        walk_block_t<true>(f, X, n_features, roots, t, r0, r1, visit);
    else
        walk_block_t<false>(f, X, n_features, roots, t, r0, r1, visit);
}

// Copy the used columns of rows [r0, r0 + m) column-major into cols (used_features.size() *
// kPredictBlock floats), zero-padding rows up to the next multiple of kDenseLanes. Returns whether
// any copied value is NaN (after the fill).
inline bool load_block_columns(const PackedForest& f, const float* X, int64_t n_features,
                               int64_t r0, int64_t m, float* cols) {
    const int64_t n_used = static_cast<int64_t>(f.used_features.size());
    const int32_t* used = f.used_features.data();
    const float* fill = f.column_fill.data();
    bool any_nan = false;
    for (int64_t j = 0; j < m; ++j) {
        const float* row = X + (r0 + j) * n_features;
        for (int64_t k = 0; k < n_used; ++k) {
            float v = row[used[k]];
            v = v != v ? fill[k] : v;
            any_nan |= v != v;
            cols[k * kPredictBlock + j] = v;
        }
    }
    const int64_t padded =
        std::min<int64_t>(kPredictBlock, (m + kDenseLanes - 1) / kDenseLanes * kDenseLanes);
    for (int64_t k = 0; k < n_used; ++k)
        for (int64_t j = m; j < padded; ++j) cols[k * kPredictBlock + j] = 0.0f;
    return any_nan;
}

// The step of the complete-tree walk: kPlain when no value is NaN and no split categorical, kNan
// when a value may be NaN, kCategorical when also a split may be categorical.
enum class DenseStep { kPlain, kNan, kCategorical };

// One plain / NaN-aware step of the complete-tree walk on a scalar: the next heap index.
// set_bits: the forest's partition-split bitsets (kCategorical steps only).
template <DenseStep kStep>
RECFORGE_ALWAYS_INLINE uint64_t dense_step(const DenseNode* nodes, const uint8_t* flags, uint64_t h,
                                           const float* x, const uint64_t* set_bits = nullptr) {
    const DenseNode nd = nodes[h];
    const float v = x[uint64_t(nd.column)];
    if (kStep == DenseStep::kCategorical && (flags[h] & kCodeSet)) {
        uint32_t at;
        std::memcpy(&at, &nd.threshold, sizeof(at));
        const bool right = (v != v) ? (flags[h] & kNanRight) != 0 : !in_code_bits(set_bits + at, v);
        return 2 * h + (right ? 1 : 0);
    }
    // bit arithmetic, no branch; v == t and v < t are false for NaN (v or t: a NaN threshold
    // sends every number right, as `x < threshold` says)
    uint32_t right;
    if (kStep == DenseStep::kPlain) {
        right = !(v < nd.threshold);
    } else {
        const uint32_t fl = flags[h];
        const uint32_t is_num = uint32_t(v == v);
        const uint32_t nan_right = (is_num ^ 1) & fl;  // fl & 1: kNanRight
        const uint32_t num_right = uint32_t(!(v < nd.threshold)) & is_num;
        if (kStep == DenseStep::kNan) {
            right = num_right | nan_right;
        } else {
            const uint32_t cat = fl >> 1, num = cat ^ 1;
            const uint32_t differs = uint32_t(v != nd.threshold) & is_num;
            right = (num & num_right) | (cat & differs) | nan_right;
        }
    }
    return 2 * h + right;
}

#if RECFORGE_PREDICT_VECTOR
RECFORGE_SIMD_BEGIN
typedef float predict_f32x8 __attribute__((vector_size(32)));
typedef int32_t predict_i32x8 __attribute__((vector_size(32)));
static_assert(kDenseLanes == 8, "the vector levels walk 8 lanes");

// The first `levels` levels of the plain / NaN-aware walk for the 8 rows at x, as 8-lane vectors:
// at level L every row is at one of the 2^L nodes, so each node is one load of its column,
// compared with its threshold and kept for the rows at that node. h[r]: heap index after them.
template <DenseStep kStep, int kGroups>
RECFORGE_ALWAYS_INLINE void dense_vector_levels(const DenseNode* nodes, const uint8_t* flags,
                                                int32_t levels, const float* x, uint64_t* h) {
    predict_i32x8 at[kGroups];
    for (int g = 0; g < kGroups; ++g) at[g] = predict_i32x8{1, 1, 1, 1, 1, 1, 1, 1};
    for (int32_t level = 0; level < levels; ++level) {
        predict_i32x8 left[kGroups];  // -1: go left
        for (int g = 0; g < kGroups; ++g) left[g] = predict_i32x8{0, 0, 0, 0, 0, 0, 0, 0};
        for (int32_t c = 1 << level; c < (2 << level); ++c) {
            const DenseNode nd = nodes[c];
            const float t = nd.threshold;
            const predict_f32x8 tv = {t, t, t, t, t, t, t, t};
            int32_t nan_left = 0;
            if (kStep == DenseStep::kNan) nan_left = (flags[c] & kNanRight) ? 0 : -1;
            for (int g = 0; g < kGroups; ++g) {
                predict_f32x8 v;
                __builtin_memcpy(&v, x + nd.column + 8 * g, sizeof(v));
                predict_i32x8 go_left = v < tv;
                if (kStep == DenseStep::kNan) go_left |= (v != v) & nan_left;
                left[g] = at[g] == c ? go_left : left[g];
            }
        }
        for (int g = 0; g < kGroups; ++g) at[g] = 2 * at[g] + 1 + left[g];
    }
    for (int g = 0; g < kGroups; ++g)
        for (int r = 0; r < 8; ++r) h[8 * g + r] = static_cast<uint32_t>(at[g][r]);
}
RECFORGE_SIMD_END
#endif

// The complete-tree walk of dense tree t for the m rows of a block copy: visit(j, slot) with the
// bottom slot (offset from dense_offset[t]) reached by row j. kVector: the top levels as vectors
// (compiled into an AVX2 function only).
template <DenseStep kStep, bool kVector, typename Visit>
RECFORGE_ALWAYS_INLINE void walk_dense(const PackedForest& f, int64_t t, const float* cols,
                                       int64_t m, Visit&& visit) {
    const int64_t o = f.dense_offset[t];
    const DenseNode* nodes = f.dense_nodes.data() + o;
    const uint8_t* flags = f.dense_flags.data() + o;
    const int32_t depth = f.depth[t];
    const uint64_t bottom = uint64_t(1) << depth;
    const int32_t vector_levels =
        (kVector && kStep != DenseStep::kCategorical) ? std::min(depth, kVectorLevels) : 0;
    int64_t j0 = 0;
#if RECFORGE_PREDICT_VECTOR
    if (kVector && kStep != DenseStep::kCategorical) {
        // the vector levels four groups of 8 rows at a time (independent chains), then the
        // scalar steps of the levels below them
        constexpr DenseStep kV = kStep == DenseStep::kPlain ? DenseStep::kPlain : DenseStep::kNan;
        for (; j0 + 4 * kDenseLanes <= m; j0 += 4 * kDenseLanes) {
            uint64_t h[4 * kDenseLanes];
            dense_vector_levels<kV, 4>(nodes, flags, vector_levels, cols + j0, h);
            for (int32_t d = vector_levels; d < depth; ++d)
                for (int r = 0; r < 4 * kDenseLanes; ++r)
                    h[r] = dense_step<kStep>(nodes, flags, h[r], cols + j0 + r, f.set_bits.data());
            for (int r = 0; r < 4 * kDenseLanes; ++r)
                visit(j0 + r, static_cast<int64_t>(h[r] - bottom));
        }
    }
#endif
    for (; j0 < m; j0 += kDenseLanes) {
        const float* x = cols + j0;
        uint64_t h[kDenseLanes];
#if RECFORGE_PREDICT_VECTOR
        if (kVector && kStep != DenseStep::kCategorical)
            dense_vector_levels<kStep == DenseStep::kPlain ? DenseStep::kPlain : DenseStep::kNan,
                                1>(nodes, flags, vector_levels, x, h);
        else
#endif
            for (int r = 0; r < kDenseLanes; ++r) h[r] = 1;
        for (int32_t d = vector_levels; d < depth; ++d)
            for (int r = 0; r < kDenseLanes; ++r)
                h[r] = dense_step<kStep>(nodes, flags, h[r], x + r, f.set_bits.data());
        if (m - j0 >= kDenseLanes) {
            for (int r = 0; r < kDenseLanes; ++r)
                visit(j0 + r, static_cast<int64_t>(h[r] - bottom));
        } else {
            for (int r = 0; r < m - j0; ++r) visit(j0 + r, static_cast<int64_t>(h[r] - bottom));
        }
    }
}

// Walk trees [t0, t1) for rows [r0, r0 + m) tree after tree: leaf(t, j, value_of_leaf, leaf)
// where `leaf` is the reached leaf's node index within tree t.
template <bool kVector, typename Leaf>
RECFORGE_ALWAYS_INLINE void walk_trees_block(const PackedForest& f, const float* X,
                                             int64_t n_features, const int64_t* roots, int64_t t0,
                                             int64_t t1, int64_t r0, int64_t m, float* cols,
                                             Leaf&& leaf) {
    const bool any_nan = load_block_columns(f, X, n_features, r0, m, cols);
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = f.dense_offset[t];
        if (o >= 0) {
            const double* value = f.dense_value.data() + o;
            const int32_t* leaf_of = f.dense_leaf.data() + o;
            auto visit = [&](int64_t j, int64_t s) { leaf(t, j, value[s], leaf_of[s]); };
            if (f.dense_categorical_tree[t])
                walk_dense<DenseStep::kCategorical, kVector>(f, t, cols, m, visit);
            else if (any_nan && !f.dense_plain_tree[t])
                walk_dense<DenseStep::kNan, kVector>(f, t, cols, m, visit);
            else
                walk_dense<DenseStep::kPlain, kVector>(f, t, cols, m, visit);
        } else {
            const int64_t root = roots[t];
            walk_block(f, X, n_features, roots, t, r0, r0 + m, [&](int64_t j, int32_t node) {
                leaf(t, j, f.values[node], static_cast<int32_t>(node - root));
            });
        }
    }
}

// walk_trees_block for the predict and apply kernels, with the vector levels in an AVX2 build of
// it where the CPU has AVX2 (no -march flags: the portable build runs everywhere).
template <typename Leaf>
inline void walk_trees_block_portable(const PackedForest& f, const float* X, int64_t n_features,
                                      const int64_t* roots, int64_t t0, int64_t t1, int64_t r0,
                                      int64_t m, float* cols, Leaf&& leaf) {
    walk_trees_block<false>(f, X, n_features, roots, t0, t1, r0, m, cols, leaf);
}

#if RECFORGE_PREDICT_VECTOR
template <typename Leaf>
__attribute__((target("avx2"))) void walk_trees_block_avx2(const PackedForest& f, const float* X,
                                                           int64_t n_features, const int64_t* roots,
                                                           int64_t t0, int64_t t1, int64_t r0,
                                                           int64_t m, float* cols, Leaf&& leaf) {
    walk_trees_block<true>(f, X, n_features, roots, t0, t1, r0, m, cols, leaf);
}
#endif

template <typename Leaf>
inline void walk_trees_block_dispatch(const PackedForest& f, const float* X, int64_t n_features,
                                      const int64_t* roots, int64_t t0, int64_t t1, int64_t r0,
                                      int64_t m, float* cols, Leaf&& leaf) {
#if RECFORGE_PREDICT_VECTOR
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return walk_trees_block_avx2(f, X, n_features, roots, t0, t1, r0, m, cols, leaf);
#endif
    walk_trees_block_portable(f, X, n_features, roots, t0, t1, r0, m, cols, leaf);
}

// A block copy buffer per thread, kept between calls (no allocation per call once grown).
inline float* block_columns_buffer(const PackedForest& f) {
    thread_local std::vector<float> buffer;
    const size_t need = std::max<size_t>(1, f.used_features.size()) * kPredictBlock;
    if (buffer.size() < need) buffer.resize(need);
    return buffer.data();
}

// out[r] += sum over trees [t0, t1) of the leaf value reached by row r (trees added in order).
inline void predict_raw(const float* X, int64_t n_rows, int64_t n_features, const PackedForest& f,
                        const int64_t* roots, int64_t t0, int64_t t1, double* out, int n_threads) {
    const int64_t n_blocks = (n_rows + kPredictBlock - 1) / kPredictBlock;
    if (n_rows * (t1 - t0) < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * kPredictBlock, m = std::min(n_rows - r0, kPredictBlock);
        double acc[kPredictBlock] = {0.0};
        walk_trees_block_dispatch(
            f, X, n_features, roots, t0, t1, r0, m, block_columns_buffer(f),
            [&](int64_t, int64_t j, double value, int32_t) { acc[j] += value; });
        for (int64_t j = 0; j < m; ++j) out[r0 + j] += acc[j];
    });
}

// out[r, t - t0] = index (within tree t, i.e. minus roots[t]) of the leaf row r reaches.
inline void apply_trees(const float* X, int64_t n_rows, int64_t n_features, const PackedForest& f,
                        const int64_t* roots, int64_t t0, int64_t t1, int32_t* out, int n_threads) {
    const int64_t n_blocks = (n_rows + kPredictBlock - 1) / kPredictBlock;
    const int64_t nt = t1 - t0;
    if (n_rows * nt < 20000) n_threads = 1;
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * kPredictBlock, m = std::min(n_rows - r0, kPredictBlock);
        walk_trees_block_dispatch(f, X, n_features, roots, t0, t1, r0, m, block_columns_buffer(f),
                                  [&](int64_t t, int64_t j, double, int32_t leaf) {
                                      out[(r0 + j) * nt + (t - t0)] = leaf;
                                  });
    });
}

}  // namespace gbdt
}  // namespace recforge
