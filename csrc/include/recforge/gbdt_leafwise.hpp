// GBDT: one best-first (leaf-wise) tree grown in a single call (no Python between splits).
//
// The same steps, in the same order, as the Python best-first driver
// (recforge._reference.gbdt_best_first, which calls the kernels one node at a time): the root's
// histogram and best split; then, while fewer than max_leaves leaves exist, the leaf whose split
// reduces the loss most (the earlier-found one on a tie) is split: a stable partition of its rows
// in the node-ordered data, its two children appended to the tree, their histograms (the smaller
// child built, the larger = parent - smaller) and best splits. A leaf without a valid split, or at
// max_depth, stays a leaf. The trees are bit-identical to the driver's and independent of
// n_threads.
//
// Small data (m * (F + 12) bytes below LeafwiseParams::index_bytes, cache-resident) does not move
// during the tree: a split stably partitions the positions of its rows (4 bytes each instead of the
// whole row), the smaller child's histogram gathers its rows by position — in the order the moved
// rows would have, so every sum is the same — and the data is gathered into the final node order
// once, at the end. Larger data moves with every split (partition_ordered), so that a node's
// histogram reads contiguous memory.
//
// Histograms live in pairs (the two children of a split are built into one pair) taken from a
// pool that reuses the pair of a split parent once both of its nodes are done: the memory is that
// of the leaves still waiting to be split, at most max_leaves pairs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <queue>
#include <utility>
#include <vector>

#include "recforge/gbdt_grow.hpp"
#include "recforge/histogram.hpp"
#include "recforge/partition.hpp"
#include "recforge/split.hpp"

namespace recforge {
namespace gbdt {

struct LeafwiseParams {
    int32_t max_leaves;  // >= 1
    int32_t max_depth;   // < 0: no depth limit
    double min_child_weight, reg_lambda, gamma, learning_rate;
    int64_t swap_rows;    // from this many rows on, the root split moves the data to `other`
    int64_t index_bytes;  // below m * (F + 12) bytes of data, partition positions, not rows
    int32_t max_cat_to_onehot = kBins;  // the categorical split search: see SplitParams
    int32_t max_cat_threshold = 32;
    double cat_smooth = 10.0;
    double cat_l2 = 0.0;
    double min_group_weight = 0.0, min_category_weight = 0.0;
};

struct LeafwiseTree {
    GrownTree tree;
    // every leaf and its rows: positions [leaf_start, leaf_end) of the node-ordered data
    std::vector<int32_t> leaf_node;
    std::vector<int64_t> leaf_start, leaf_end;
};

namespace detail {

// Node histograms (F x kBins x 2 doubles each) allocated two at a time; slot 2p + i is node i of
// pair p. A pair goes back to the free list when both of its nodes are released.
class HistogramPairs {
  public:
    explicit HistogramPairs(int64_t node_stride) : stride_(node_stride) {}

    int32_t acquire(int refs) {  // -> the pair's first slot
        if (free_.empty()) {
            mem_.emplace_back(new double[static_cast<size_t>(2 * stride_)]);
            refs_.push_back(0);
            free_.push_back(static_cast<int32_t>(mem_.size() - 1));
        }
        const int32_t pair = free_.back();
        free_.pop_back();
        refs_[pair] = refs;
        return 2 * pair;
    }

    void release(int32_t slot) {
        if (--refs_[slot / 2] == 0) free_.push_back(slot / 2);
    }

    double* node(int32_t slot) { return mem_[slot / 2].get() + (slot % 2) * stride_; }

  private:
    int64_t stride_;
    std::vector<std::unique_ptr<double[]>> mem_;
    std::vector<int> refs_;
    std::vector<int32_t> free_;
};

struct LeafCandidate {  // a leaf with a valid split, waiting in the queue
    double loss_chg;
    int64_t order;  // position in the order leaves were found: ties go to the earlier one
    int32_t node, slot, depth;
    int64_t start, end;
    double sum_g, sum_h;
    SplitResult split;
};

struct SplitsFirst {  // priority: larger loss_chg, then smaller order
    bool operator()(const LeafCandidate& a, const LeafCandidate& b) const {
        return a.loss_chg < b.loss_chg || (a.loss_chg == b.loss_chg && a.order > b.order);
    }
};

// Stable partition of the positions idx[s, e) by the split (left ones first, each side in its
// order); tmp: scratch of at least e - s entries. Returns the number of left positions.
inline int64_t partition_positions(const uint8_t* X, int64_t F, int32_t* idx, int32_t* tmp,
                                   int64_t s, int64_t e, const SplitResult& split,
                                   const uint8_t* is_cat) {
    uint8_t lut[kBins];
    direction_table(split.threshold, split.default_left, is_cat[split.feature] != 0, lut,
                    split.cat_set);
    const uint8_t* col = X + split.feature;
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

}  // namespace detail

// Grow one best-first tree on the m >= 1 rows of `cur` (`other`: buffers of the same sizes; the
// data ends there when tree.swapped). The leaf values are not added to any margins: the returned
// leaves' row ranges say where each leaf's rows are.
inline LeafwiseTree grow_leafwise(NodeData cur, NodeData other, int64_t m, int64_t F,
                                  const int32_t* n_bins, const uint8_t* is_cat,
                                  const uint8_t* feature_mask, const LeafwiseParams& p,
                                  int n_threads) {
    LeafwiseTree out;
    GrownTree& tree = out.tree;
    const DepthwiseParams value_params{p.max_depth, p.min_child_weight, p.reg_lambda,
                                       p.gamma,     p.learning_rate,    p.swap_rows};
    const SplitParams sp{
        p.reg_lambda, p.gamma,  p.min_child_weight, p.max_cat_to_onehot,  p.max_cat_threshold,
        p.cat_smooth, p.cat_l2, p.min_group_weight, p.min_category_weight};
    auto can_split = [&](int32_t depth) { return p.max_depth < 0 || depth < p.max_depth; };
    auto add_leaf = [&](int32_t node, int64_t start, int64_t end) {
        out.leaf_node.push_back(node);
        out.leaf_start.push_back(start);
        out.leaf_end.push_back(end);
    };

    detail::HistogramPairs pool(F * kBins * 2);
    const int32_t root_slot = pool.acquire(1);
    double root_g = 0.0, root_h = 0.0;
    {
        const int64_t s = 0, e = m;
        build_histograms(cur.X, F, cur.gh, nullptr, &s, &e, 1, feature_mask, pool.node(root_slot),
                         n_threads);
        int64_t f = 0;  // every (switched-on) feature's bins add up to the node's totals
        while (feature_mask && f < F - 1 && !feature_mask[f]) ++f;
        const double* H = pool.node(root_slot) + f * kBins * 2;
        for (int b = 0; b < kBins; ++b) {
            root_g += H[2 * b];
            root_h += H[2 * b + 1];
        }
    }
    tree.add(0, root_g, root_h, value_params);
    if (!can_split(0) || p.max_leaves < 2) {
        add_leaf(0, 0, m);
        return out;
    }

    std::priority_queue<detail::LeafCandidate, std::vector<detail::LeafCandidate>,
                        detail::SplitsFirst>
        queue;
    int64_t order = 0;
    // a node whose histogram is in `slot` and whose best split is `split`: queued, or a leaf
    auto consider = [&](int32_t node, int32_t slot, int64_t start, int64_t end, double g, double h,
                        int32_t depth, const SplitResult& split) {
        if (split.feature >= 0) {
            queue.push({split.loss_chg, order++, node, slot, depth, start, end, g, h, split});
        } else {
            add_leaf(node, start, end);
            pool.release(slot);
        }
    };
    {
        SplitResult split;
        find_splits(pool.node(root_slot), 1, F, &root_g, &root_h, n_bins, is_cat, feature_mask, sp,
                    &split, n_threads);
        consider(0, root_slot, 0, m, root_g, root_h, 0, split);
    }

    const bool threaded = n_threads > 1 && m * (F + 12) >= 500000;
    const bool by_index = m * (F + 12) < p.index_bytes;
    std::vector<int32_t> idx, idx_tmp;  // by_index: positions in node order, and scratch
    if (by_index) {
        idx.resize(static_cast<size_t>(m));
        idx_tmp.resize(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) idx[i] = static_cast<int32_t>(i);
    }
    int32_t n_leaves = 1;
    while (!queue.empty() && n_leaves < p.max_leaves) {
        const detail::LeafCandidate c = queue.top();
        queue.pop();
        const SplitResult& r = c.split;
        int64_t n_left = 0;
        if (by_index) {
            n_left = detail::partition_positions(cur.X, F, idx.data(), idx_tmp.data(), c.start,
                                                 c.end, r, is_cat);
        } else {
            const bool into_other = c.start == 0 && c.end == m && (threaded || m >= p.swap_rows);
            partition_ordered(cur.X, F, cur.gh, cur.rows, other.X, other.gh, other.rows, &c.start,
                              &c.end, 1, &r.feature, &r.threshold, &r.default_left, is_cat, &n_left,
                              n_threads, into_other, r.cat_set);
            if (into_other) {
                std::swap(cur, other);
                tree.swapped = !tree.swapped;
            }
        }
        const double sum_g[2] = {r.left_g, c.sum_g - r.left_g};
        const double sum_h[2] = {r.left_h, c.sum_h - r.left_h};
        const int32_t depth = c.depth + 1;
        const int32_t left = tree.add(depth, sum_g[0], sum_h[0], value_params);
        const int32_t right = tree.add(depth, sum_g[1], sum_h[1], value_params);
        tree.feature[c.node] = r.feature;
        tree.threshold_bin[c.node] = r.threshold;
        tree.default_left[c.node] = r.default_left;
        tree.gain[c.node] = r.loss_chg;
        std::copy(r.cat_set, r.cat_set + kCatSetWords,
                  tree.cat_set.begin() + static_cast<int64_t>(c.node) * kCatSetWords);
        tree.left[c.node] = left;
        tree.right[c.node] = right;
        tree.value[c.node] = 0.0;
        ++n_leaves;
        const int64_t starts[2] = {c.start, c.start + n_left};
        const int64_t ends[2] = {c.start + n_left, c.end};
        if (!can_split(depth)) {
            pool.release(c.slot);
            add_leaf(left, starts[0], ends[0]);
            add_leaf(right, starts[1], ends[1]);
            continue;
        }
        const int32_t pair = pool.acquire(2);
        if (by_index) {  // as build_child_histograms, the smaller child's rows gathered
            const int small = ends[1] - starts[1] < ends[0] - starts[0] ? 1 : 0;
            double* S = pool.node(pair + small);
            double* L = pool.node(pair + 1 - small);
            const double* P = pool.node(c.slot);
            build_histograms(cur.X, F, cur.gh, idx.data(), starts + small, ends + small, 1,
                             feature_mask, S, n_threads);
            subtract_used_bins(L, P, S, F, n_bins, feature_mask);
        } else {
            build_child_histograms(cur.X, F, cur.gh, pool.node(c.slot), nullptr, starts, ends, 1,
                                   feature_mask, pool.node(pair), n_threads);
        }
        pool.release(c.slot);
        SplitResult split[2];
        find_splits(pool.node(pair), 2, F, sum_g, sum_h, n_bins, is_cat, feature_mask, sp, split,
                    n_threads);
        consider(left, pair, starts[0], ends[0], sum_g[0], sum_h[0], depth, split[0]);
        consider(right, pair + 1, starts[1], ends[1], sum_g[1], sum_h[1], depth, split[1]);
    }
    for (; !queue.empty(); queue.pop()) {
        const detail::LeafCandidate& c = queue.top();
        add_leaf(c.node, c.start, c.end);
    }
    if (by_index) {  // the data into node order
        const size_t row_bytes = static_cast<size_t>(F);
        for (int64_t q = 0; q < m; ++q) {
            const int64_t i = idx[q];
            copy_row(other.X + q * F, cur.X + i * F, row_bytes);
            std::memcpy(other.gh + 2 * q, cur.gh + 2 * i, 2 * sizeof(float));
            other.rows[q] = cur.rows[i];
        }
        tree.swapped = !tree.swapped;
    }
    return out;
}

}  // namespace gbdt
}  // namespace recforge
