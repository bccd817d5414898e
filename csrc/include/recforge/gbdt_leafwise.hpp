// GBDT: one best-first (leaf-wise) tree grown in a single call (no Python between splits).
//
// The same steps, in the same order, as the Python best-first driver
// (recforge._reference.gbdt_best_first, which calls the kernels one node at a time): the root's
// histogram and best split; then, while fewer than max_leaves leaves exist, the leaf whose split
// reduces the loss most (the earlier-found one on a tie) is split: a stable partition of its rows
// in the node-ordered data, its two children appended to the tree, their histograms (the smaller
// child built, the larger = parent - smaller) and best splits. A leaf without a valid split, or at
// max_depth, stays a leaf. The trees are bit-identical to the driver's below 2 * kGrowBlockRows
// rows (from there on, see grow_leafwise: row blocks) and independent of n_threads.
//
// Small data (m * (F + 12) bytes below LeafwiseParams::index_bytes, cache-resident) does not move
// during the tree: a split stably partitions the positions of its rows (4 bytes each instead of the
// whole row), the smaller child's histogram gathers its rows by position — in the order the moved
// rows would have, so every sum is the same — and the data is gathered into the final node order
// once, at the end. Larger data moves with every split (partition_ordered), so that a node's
// histogram reads contiguous memory.
//
// Given the margins, the grower adds the leaf values to them at the end, on the tree's threads, and
// (given NextGradients) writes each row's gradient pair at its new margin where the row's (g, h)
// is in the final node order: the next tree's gradients, in the same pass (fused with the gather of
// small data), without a call and a wake-up of their own.
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
    TreeParams tree;      // its swap_rows: from this many rows on, the root split moves the data
    int32_t max_leaves;   // >= 1
    int64_t index_bytes;  // below m * (F + 12) bytes of data, partition positions, not rows
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
    double sum_g, sum_h;
    SplitResult split;
};

struct SplitsFirst {  // priority: larger loss_chg, then smaller order
    bool operator()(const LeafCandidate& a, const LeafCandidate& b) const {
        return a.loss_chg < b.loss_chg || (a.loss_chg == b.loss_chg && a.order > b.order);
    }
};

}  // namespace detail

// Row blocks of the best-first grower: those of the depth-wise one (grow_blocks), fewer where
// their partial histograms (one per block) would pass kMaxPartialBytes.
inline int64_t leafwise_blocks(int64_t m, int64_t F) {
    return std::max<int64_t>(
        1, std::min<int64_t>(grow_blocks(m), kMaxPartialBytes / (F * kBins * 16)));
}

// Grow one best-first tree on the m >= 1 rows of `cur` (`other`: buffers of the same sizes; the
// data ends there when tree.swapped). The leaf values are not added to any margins: the returned
// leaves' row ranges say where each leaf's rows are (from 2 * kGrowBlockRows rows on, one range
// per leaf and row block, see below).
//
// From 2 * kGrowBlockRows rows on, the rows are cut into fixed blocks as in the depth-wise grower
// (leafwise_blocks: the row and feature counts decide them, never n_threads), each block keeping
// its own node-ordered rows (or positions). A split is two parallel regions: one task per block
// partitions the block's rows of the leaf and builds the partial histogram of the child with the
// smaller hessian sum (the left one on a tie); then one task per range of features sums the
// blocks' partials in block order, takes the other child as parent - smaller and finds both
// children's best candidates on its features (the first best in feature order wins). The trees do
// not depend on n_threads, and equal the single-range ones when the float64 sums of the float32
// (g, h) are exact (see grow_depthwise_blocked). The data never moves to `other` while the tree
// grows (it serves as the partition's scratch space).
//
// raw (may be null): raw[rows of leaf l] += the value of leaf l, for every leaf. next (may be
// null; needs raw): the node-ordered (g, h) of every row are then replaced by its gradient pair at
// the new margin.
inline LeafwiseTree grow_leafwise_steps(NodeData cur, NodeData other, int64_t m, int64_t F,
                                        const int32_t* n_bins, const uint8_t* is_cat,
                                        const uint8_t* feature_mask, const LeafwiseParams& p,
                                        int n_threads, double* raw = nullptr,
                                        const NextGradients* next = nullptr) {
    LeafwiseTree out;
    GrownTree& tree = out.tree;
    const TreeParams& value_params = p.tree;
    const SplitParams& sp = p.tree.split;
    const int64_t NS = F * kBins * 2;
    const int64_t B = leafwise_blocks(m, F);
    const std::vector<int64_t> bounds = block_bounds(m, B);
    // node k's rows in block b: positions [node_start[k * B + b], node_end[k * B + b])
    std::vector<int64_t> node_start(bounds.begin(), bounds.end() - 1),
        node_end(bounds.begin() + 1, bounds.end());
    auto can_split = [&](int32_t depth) {
        return p.tree.max_depth < 0 || depth < p.tree.max_depth;
    };
    auto add_leaf = [&](int32_t node) {
        for (int64_t b = 0; b < B; ++b) {
            out.leaf_node.push_back(node);
            out.leaf_start.push_back(node_start[node * B + b]);
            out.leaf_end.push_back(node_end[node * B + b]);
        }
    };

    std::vector<int32_t> idx, idx_tmp;  // by_index: positions in node order, and scratch
    // The end of the tree, one pass over each block's leaf ranges: raw and the next gradients
    // (see above) and, with `gather`, the rows at positions idx[q] copied to position q of `other`.
    auto finish = [&](bool gather) {
        if (!raw && !gather) return;
        const int64_t n_ranges = static_cast<int64_t>(out.leaf_node.size());
        const size_t row_bytes = static_cast<size_t>(F);
        const int threads =
            threads_for_work(n_threads, static_cast<double>(m) * (F + 12), 100000.0);
        parallel_for_affine(B, threads, [&](int64_t b, int) {
            for (int64_t i = b; i < n_ranges; i += B) {  // (block b's ranges cover it)
                const double v = raw ? tree.value[out.leaf_node[i]] : 0.0;
                const int64_t e = out.leaf_end[i];
                for (int64_t q = out.leaf_start[i]; q < e; ++q) {
#if defined(__GNUC__) || defined(__clang__)
                    // scattered loads, two levels deep: load the row of q + 2k, the margin
                    // and target of q + k ahead
                    constexpr int64_t k = 16;
                    if (gather && q + 2 * k < e) {
                        const int64_t a = idx[q + 2 * k];
                        __builtin_prefetch(cur.rows + a);
                        __builtin_prefetch(cur.X + a * F);
                        __builtin_prefetch(cur.gh + 2 * a);
                    }
                    if (raw && q + k < e) {
                        const int64_t a = cur.rows[gather ? idx[q + k] : q + k];
                        __builtin_prefetch(raw + a, 1);
                        if (next) __builtin_prefetch(next->y + a);
                    }
#endif
                    const int64_t src = gather ? idx[q] : q;
                    const int32_t r = cur.rows[src];
                    float* gh = (gather ? other.gh : cur.gh) + 2 * q;
                    if (raw) add_value_at(raw, r, v, next, gh, 0);
                    if (!next && gather) std::memcpy(gh, cur.gh + 2 * src, 2 * sizeof(float));
                    if (gather) {
                        copy_row(other.X + q * F, cur.X + src * F, row_bytes);
                        other.rows[q] = r;
                    }
                }
            }
        });
        if (gather) tree.swapped = !tree.swapped;
    };

    detail::HistogramPairs pool(NS);
    const int32_t root_slot = pool.acquire(1);
    double* part = B > 1 ? partial_histogram_store(static_cast<size_t>(B * NS)) : nullptr;
    double root_g = 0.0, root_h = 0.0;
    if (B > 1) {
        blocked_root_histogram(cur, F, bounds, n_bins, feature_mask, part, NS, pool.node(root_slot),
                               n_threads);
    } else {
        const int64_t s = 0, e = m;
        build_histograms(cur.X, F, cur.gh, nullptr, &s, &e, 1, feature_mask, pool.node(root_slot),
                         n_threads);
    }
    node_totals(pool.node(root_slot), F, n_bins, feature_mask, root_g, root_h);
    tree.add(0, root_g, root_h, value_params);
    if (!can_split(0) || p.max_leaves < 2) {
        add_leaf(0);
        finish(false);
        return out;
    }

    std::priority_queue<detail::LeafCandidate, std::vector<detail::LeafCandidate>,
                        detail::SplitsFirst>
        queue;
    int64_t order = 0;
    // a node whose histogram is in `slot` and whose best split is `split`: queued, or a leaf
    auto consider = [&](int32_t node, int32_t slot, double g, double h, int32_t depth,
                        const SplitResult& split) {
        if (split.feature >= 0) {
            queue.push({split.loss_chg, order++, node, slot, depth, g, h, split});
        } else {
            add_leaf(node);
            pool.release(slot);
        }
    };
    {
        SplitResult split;
        find_splits(pool.node(root_slot), 1, F, &root_g, &root_h, n_bins, is_cat, feature_mask, sp,
                    &split, n_threads);
        consider(0, root_slot, root_g, root_h, 0, split);
    }

    const bool threaded = tree_team_threads(m, F, n_threads) > 1;
    const bool by_index = m * (F + 12) < p.index_bytes;
    if (by_index) {
        idx.resize(static_cast<size_t>(m));
        idx_tmp.resize(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) idx[i] = static_cast<int32_t>(i);
    }
    // the features in ranges for the split search of a blocked split: one per thread
    const int64_t n_ranges = std::min<int64_t>(F, std::max(1, n_threads));
    std::vector<SplitResult> range_best(static_cast<size_t>(2 * n_ranges));
    const std::vector<int64_t> feature_bounds = block_bounds(F, n_ranges);
    int32_t n_leaves = 1;
    while (!queue.empty() && n_leaves < p.max_leaves) {
        const detail::LeafCandidate c = queue.top();
        queue.pop();
        const SplitResult& r = c.split;
        const double sum_g[2] = {r.left_g, c.sum_g - r.left_g};
        const double sum_h[2] = {r.left_h, c.sum_h - r.left_h};
        const int32_t depth = c.depth + 1;
        const bool grow_children = can_split(depth);
        const int32_t left = tree.add(depth, sum_g[0], sum_h[0], value_params);
        const int32_t right = tree.add(depth, sum_g[1], sum_h[1], value_params);
        record_split(tree, c.node, r, left, right);
        ++n_leaves;
        node_start.resize(static_cast<size_t>((right + 1) * B));
        node_end.resize(static_cast<size_t>((right + 1) * B));
        const int64_t* ps = node_start.data() + c.node * B;
        const int64_t* pe = node_end.data() + c.node * B;
        uint8_t lut[kBins];
        direction_table(r.threshold, r.default_left, is_cat[r.feature] != 0, lut, r.cat_set);
        // (the child whose partial histograms the blocks build: the smaller hessian sum)
        const int small = sum_h[1] < sum_h[0] ? 1 : 0;
        if (B > 1) {
            int64_t n_rows = 0;
            for (int64_t b = 0; b < B; ++b) n_rows += pe[b] - ps[b];
            const int threads =
                threads_for_work(n_threads, static_cast<double>(n_rows) * (F + 12), 100000.0);
            parallel_for_affine(B, threads, [&](int64_t b, int) {
                const int64_t s = ps[b], e = pe[b];
                const int64_t n_left = split_block_node(
                    cur, other, by_index ? idx.data() : nullptr, idx_tmp.data(), F, s, e, r.feature,
                    lut, small, n_bins, feature_mask, grow_children ? part + b * NS : nullptr);
                node_start[left * B + b] = s;
                node_end[left * B + b] = s + n_left;
                node_start[right * B + b] = s + n_left;
                node_end[right * B + b] = e;
            });
        } else {
            int64_t n_left = 0;
            if (by_index) {
                n_left = partition_positions(cur.X, F, idx.data(), idx_tmp.data(), ps[0], pe[0],
                                             r.feature, lut);
            } else {
                const bool into_other =
                    ps[0] == 0 && pe[0] == m && (threaded || m >= p.tree.swap_rows);
                partition_ordered(cur.X, F, cur.gh, cur.rows, other.X, other.gh, other.rows, ps, pe,
                                  1, &r.feature, &r.threshold, &r.default_left, is_cat, &n_left,
                                  n_threads, into_other, r.cat_set);
                if (into_other) {
                    std::swap(cur, other);
                    tree.swapped = !tree.swapped;
                }
            }
            node_start[left * B] = ps[0];
            node_end[left * B] = ps[0] + n_left;
            node_start[right * B] = ps[0] + n_left;
            node_end[right * B] = pe[0];
        }
        if (!grow_children) {
            pool.release(c.slot);
            add_leaf(left);
            add_leaf(right);
            continue;
        }
        const int32_t pair = pool.acquire(2);
        const double* P = pool.node(c.slot);
        SplitResult split[2];
        if (B > 1) {
            double* Sm = pool.node(pair + small);
            double* Lg = pool.node(pair + 1 - small);
            const int threads =
                threads_for_work(n_threads, static_cast<double>(F) * (B + 4) * kBins, 40000.0);
            const int64_t ranges = std::min<int64_t>(n_ranges, threads);
            const std::vector<int64_t> fb =
                ranges == n_ranges ? feature_bounds : block_bounds(F, ranges);
            parallel_for(
                ranges, threads,
                [&](int64_t q, int) {
                    const int64_t f0 = fb[q], f1 = fb[q + 1];
                    const int64_t o = f0 * kBins * 2;
                    const int32_t* nb = n_bins + f0;
                    const uint8_t* mask = feature_mask ? feature_mask + f0 : nullptr;
                    sum_partial_histograms(Sm + o, part + o, B, NS, f1 - f0, nb, mask);
                    subtract_used_bins(Lg + o, P + o, Sm + o, f1 - f0, nb, mask);
                    for (int i = 0; i < 2; ++i)
                        range_best[i * n_ranges + q] =
                            best_split_features(pool.node(pair + i), f0, f1, sum_g[i], sum_h[i],
                                                n_bins, is_cat, feature_mask, sp);
                },
                1);
            for (int i = 0; i < 2; ++i)
                split[i] = finish_best_split(range_best.data() + i * n_ranges, ranges, sp);
        } else {  // as build_child_histograms: the child with fewer rows built (left on a tie)
            const int64_t cs[2] = {node_start[left], node_start[right]};
            const int64_t ce[2] = {node_end[left], node_end[right]};
            if (by_index) {  // its rows gathered by position
                const int fewer = ce[1] - cs[1] < ce[0] - cs[0] ? 1 : 0;
                double* S = pool.node(pair + fewer);
                build_histograms(cur.X, F, cur.gh, idx.data(), cs + fewer, ce + fewer, 1,
                                 feature_mask, S, n_threads);
                subtract_used_bins(pool.node(pair + 1 - fewer), P, S, F, n_bins, feature_mask);
            } else {
                build_child_histograms(cur.X, F, cur.gh, P, nullptr, cs, ce, 1, feature_mask,
                                       pool.node(pair), n_threads);
            }
            find_splits(pool.node(pair), 2, F, sum_g, sum_h, n_bins, is_cat, feature_mask, sp,
                        split, n_threads);
        }
        pool.release(c.slot);
        consider(left, pair, sum_g[0], sum_h[0], depth, split[0]);
        consider(right, pair + 1, sum_g[1], sum_h[1], depth, split[1]);
    }
    for (; !queue.empty(); queue.pop()) add_leaf(queue.top().node);
    // (the data into node order, block by block: a block's positions stay in it)
    finish(by_index);
    return out;
}

// grow_leafwise_steps with its threads kept together for the whole tree (parallel_team): the two
// parallel regions of each split do not wake sleeping threads. The same tree.
inline LeafwiseTree grow_leafwise(NodeData cur, NodeData other, int64_t m, int64_t F,
                                  const int32_t* n_bins, const uint8_t* is_cat,
                                  const uint8_t* feature_mask, const LeafwiseParams& p,
                                  int n_threads, double* raw = nullptr,
                                  const NextGradients* next = nullptr) {
    LeafwiseTree out;
    parallel_team(tree_team_threads(m, F, n_threads), [&] {
        out = grow_leafwise_steps(cur, other, m, F, n_bins, is_cat, feature_mask, p, n_threads, raw,
                                  next);
    });
    return out;
}

}  // namespace gbdt
}  // namespace recforge
