// GBDT: one depth-wise tree grown in a single call (no Python between levels).
//
// The same steps, in the same order, as recforge.rank.gbdt._grower.TreeGrower's depth-wise path
// (which calls the kernels one level at a time): root histogram, then per level the best split of
// every node, a stable partition of the node-ordered data, the children's histograms (smaller child
// built, larger = parent - smaller). The last level is not partitioned: its rows are routed by
// their split when the leaf values are added to the margins. The trees are bit-identical to the
// level-by-level path and independent of n_threads.
// From 2 * kGrowBlockRows rows on, the rows are cut into fixed blocks (their number and bounds
// depend on the row count, the depth and the feature count only, never on n_threads) and
// grow_depthwise_blocked grows the tree: each block keeps its own node-ordered rows, so a thread
// works on the same rows at every level. Its trees are independent of n_threads too; they equal
// the level-by-level path's when the histogram sums are exact (see grow_depthwise_blocked).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "recforge/histogram.hpp"
#include "recforge/partition.hpp"
#include "recforge/split.hpp"

namespace recforge {
namespace gbdt {

// A tree's parameters, shared by the depth-wise and the best-first grower.
struct TreeParams {
    SplitParams split;  // reg_lambda, gamma, min_child_weight and the categorical split search
    int32_t max_depth;  // < 0: no depth limit (best-first growth only)
    double learning_rate;
    int64_t swap_rows;  // from this many rows on, partitions write into the other buffers
};

// Node-ordered data: binned rows (m, F), (g, h) pairs (m, 2), original row ids (m,).
struct NodeData {
    uint8_t* X;
    float* gh;
    int32_t* rows;
};

struct GrownTree {  // the fields of _grower.Tree that the kernel decides, one entry per node
    std::vector<int32_t> feature, threshold_bin, left, right, depth;
    std::vector<uint8_t> default_left;
    std::vector<double> value, gain, cover;
    std::vector<uint64_t> cat_set;  // kCatSetWords per node: a partition split's left bins
    bool swapped = false;           // the data ended in the `other` buffers

    int32_t add(int32_t d, double g, double h, const TreeParams& p) {
        const bool ok = h >= p.split.min_child_weight && h > 0.0;
        feature.push_back(-1);
        threshold_bin.push_back(0);
        left.push_back(-1);
        right.push_back(-1);
        depth.push_back(d);
        default_left.push_back(0);
        value.push_back(ok ? -g / (h + p.split.reg_lambda) * p.learning_rate : 0.0);
        gain.push_back(0.0);
        cover.push_back(h);
        cat_set.insert(cat_set.end(), kCatSetWords, 0);
        return static_cast<int32_t>(feature.size() - 1);
    }
};

// raw[r] += the value of the leaf that binned row r of Xb (F bytes per row) reaches in one grown
// tree, for each r in rows[0, n): the rows a subsampled tree was not grown on. The tree's node
// arrays as GrownTree holds them (left[k] < 0: a leaf; cat_sets: kCatSetWords words per node, or
// null); a row goes left by the bins' rule of the partition (direction_table), which is the rule of
// the raw thresholds for every row the bins were fitted on. Rows are independent, so the result
// does not depend on n_threads.
inline void add_tree_values_binned(const uint8_t* Xb, int64_t F, const int32_t* rows, int64_t n,
                                   int64_t n_nodes, const int32_t* feature,
                                   const int32_t* threshold_bin, const uint8_t* default_left,
                                   const uint8_t* is_cat, const uint64_t* cat_sets,
                                   const int32_t* left, const int32_t* right, const double* value,
                                   double* raw, int n_threads) {
    std::vector<uint8_t> luts(static_cast<size_t>(n_nodes) * kBins);
    for (int64_t k = 0; k < n_nodes; ++k)
        if (left[k] >= 0)
            direction_table(threshold_bin[k], default_left[k], is_cat[feature[k]] != 0,
                            luts.data() + k * kBins, node_set(cat_sets, k));
    constexpr int64_t kBlock = 2048;
    const int64_t n_blocks = (n + kBlock - 1) / kBlock;
    n_threads = threads_for_work(n_threads, static_cast<double>(n), 20000.0);
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t end = std::min(n, (b + 1) * kBlock);
        for (int64_t i = b * kBlock; i < end; ++i) {
            const int64_t r = rows[i];
            const uint8_t* x = Xb + r * F;
            int32_t k = 0;
            while (left[k] >= 0) k = luts[k * kBins + x[feature[k]]] ? left[k] : right[k];
            raw[r] += value[k];
        }
    });
}

// One level of the fused grower on node-ordered data: parent j (positions [starts[j], ends[j]) of
// cur, histogram hist[parent_index[j]]) is split by (feature[j], threshold[j], default_left[j]):
// a stable partition in place (scratch: the same positions of scratch_*), the smaller child's
// histogram built (the left one on a tie), the larger = parent − smaller, both children's best
// splits found (their sums c_sum_g/h[2j], [2j + 1]). Writes child ranges c_starts/c_ends, child
// histograms out[2j], out[2j + 1] and child splits (2 S entries). The same arithmetic, per node,
// as partition_ordered + build_child_histograms + find_splits, so the trees do not change; nodes
// are independent, so they do not depend on n_threads either.
inline void fused_level(NodeData cur, uint8_t* scratch_X, float* scratch_gh, int32_t* scratch_rows,
                        int64_t F, const int64_t* starts, const int64_t* ends, int64_t S,
                        const int32_t* feature, const int32_t* threshold,
                        const uint8_t* default_left, const uint64_t* cat_sets,
                        const uint8_t* is_cat, const double* hist, const int64_t* parent_index,
                        const double* c_sum_g, const double* c_sum_h, const int32_t* n_bins,
                        const uint8_t* feature_mask, const SplitParams& sp, double* out,
                        std::vector<int64_t>& c_starts, std::vector<int64_t>& c_ends,
                        std::vector<SplitResult>& split, int n_threads) {
    const int64_t node_stride = F * kBins * 2;
    c_starts.resize(2 * S);
    c_ends.resize(2 * S);
    split.assign(static_cast<size_t>(2 * S), SplitResult());
    std::vector<int64_t> order(S);  // largest node first: the last task to start is a short one
    int64_t total = 0;
    for (int64_t j = 0; j < S; ++j) {
        order[j] = j;
        total += ends[j] - starts[j];
    }
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return ends[a] - starts[a] > ends[b] - starts[b];
    });
    n_threads = threads_for_work(n_threads, static_cast<double>(total) * (F + 12), 100000.0);
    parallel_for(
        S, n_threads,
        [&](int64_t task, int) {
            const int64_t j = order[task];
            const int64_t s = starts[j], e = ends[j];
            uint8_t lut[kBins];
            direction_table(threshold[j], default_left[j], is_cat[feature[j]] != 0, lut,
                            node_set(cat_sets, j));
            const int64_t n_left =
                partition_node(cur.X, F, cur.gh, cur.rows, scratch_X + s * F, scratch_gh + 2 * s,
                               scratch_rows + s, s, e, feature[j], lut);
            const int64_t mid = s + n_left;
            c_starts[2 * j] = s;
            c_ends[2 * j] = mid;
            c_starts[2 * j + 1] = mid;
            c_ends[2 * j + 1] = e;
            const int64_t c = 2 * j + ((e - mid) < (mid - s) ? 1 : 0);
            double* Sm = out + c * node_stride;
            double* Lg = out + (c ^ 1) * node_stride;
            const double* P = hist + parent_index[j] * node_stride;
            zero_used_bins(Sm, F, n_bins, feature_mask);
            accumulate_node(cur.X, F, cur.gh, nullptr, c_starts[c], c_ends[c], 0, F, feature_mask,
                            Sm);
            subtract_used_bins(Lg, P, Sm, F, n_bins, feature_mask);
            for (int64_t q = 2 * j; q < 2 * j + 2; ++q)
                split[q] = best_split_node(out + q * node_stride, F, c_sum_g[q], c_sum_h[q], n_bins,
                                           is_cat, feature_mask, sp);
        },
        1);
}

// Records split r of node `node` in the tree, with children left and right.
inline void record_split(GrownTree& tree, int32_t node, const SplitResult& r, int32_t left,
                         int32_t right) {
    tree.feature[node] = r.feature;
    tree.threshold_bin[node] = r.threshold;
    tree.default_left[node] = r.default_left;
    tree.gain[node] = r.loss_chg;
    std::copy(r.cat_set, r.cat_set + kCatSetWords,
              tree.cat_set.begin() + static_cast<int64_t>(node) * kCatSetWords);
    tree.left[node] = left;
    tree.right[node] = right;
    tree.value[node] = 0.0;
}

// A level's split nodes (ok_index into ids / split / sum_g / sum_h) and their children: the
// children's gradient sums and tree ids (left0, right0, left1, right1, ...), the splits as the
// partition reads them (feat / thr / dleft / sets, one entry per split node).
struct LevelChildren {
    std::vector<int32_t> c_ids;
    std::vector<double> c_sum_g, c_sum_h;
    std::vector<int32_t> feat, thr;
    std::vector<uint8_t> dleft;
    std::vector<uint64_t> sets;  // kCatSetWords per split node
};

// Records each split of a level in the tree and adds its two children (at depth + 1) to it.
inline void add_level_children(GrownTree& tree, const std::vector<SplitResult>& split,
                               const std::vector<int64_t>& ok_index,
                               const std::vector<int32_t>& ids, const std::vector<double>& sum_g,
                               const std::vector<double>& sum_h, int32_t depth, const TreeParams& p,
                               LevelChildren& out) {
    const int64_t S = static_cast<int64_t>(ok_index.size());
    out.c_ids.resize(2 * S);
    out.c_sum_g.resize(2 * S);
    out.c_sum_h.resize(2 * S);
    out.feat.resize(S);
    out.thr.resize(S);
    out.dleft.resize(S);
    out.sets.resize(static_cast<size_t>(S * kCatSetWords));
    for (int64_t j = 0; j < S; ++j) {
        const int64_t k = ok_index[j];
        const SplitResult& r = split[k];
        out.c_sum_g[2 * j] = r.left_g;
        out.c_sum_h[2 * j] = r.left_h;
        out.c_sum_g[2 * j + 1] = sum_g[k] - r.left_g;
        out.c_sum_h[2 * j + 1] = sum_h[k] - r.left_h;
        out.feat[j] = r.feature;
        out.thr[j] = r.threshold;
        out.dleft[j] = r.default_left;
        std::copy(r.cat_set, r.cat_set + kCatSetWords, out.sets.begin() + j * kCatSetWords);
    }
    for (int64_t c = 0; c < 2 * S; ++c)
        out.c_ids[c] = tree.add(depth + 1, out.c_sum_g[c], out.c_sum_h[c], p);
    for (int64_t j = 0; j < S; ++j)
        record_split(tree, ids[ok_index[j]], split[ok_index[j]], out.c_ids[2 * j],
                     out.c_ids[2 * j + 1]);
}

// Blocks of the depth-wise grower: m / kGrowBlockRows blocks (at most kMaxGrowBlocks), block b is
// positions [m b / B, m (b + 1) / B) of the node-ordered data. The row count alone decides them,
// never n_threads.
constexpr int64_t kGrowBlockRows = 16000;
constexpr int64_t kMaxGrowBlocks = 8;
constexpr int64_t kMaxPartialBytes = int64_t{128} << 20;
// A level's work in a block is cut into tasks of its nodes, about kGrowTaskRows rows or more each:
// a thread that the host slows down (a preemption, a far core) then holds back one node's rows
// instead of a block's.
constexpr int64_t kGrowTaskRows = 512;
// fn(b, k, thread_id) for node k < S of every block b < B (rows_per_block: a block's rows in the S
// nodes) on up to n_threads threads: a task is one node of a block, or consecutive ones holding
// kGrowTaskRows rows on average; each thread runs its own blocks' tasks first
// (parallel_for_affine_groups).
template <typename Fn>
void for_each_block_node(int64_t B, int64_t S, int64_t rows_per_block, int n_threads, Fn&& fn) {
    const int64_t C = std::max<int64_t>(1, std::min<int64_t>(S, rows_per_block / kGrowTaskRows));
    parallel_for_affine_groups(B, C, n_threads, [&](int64_t b, int64_t c, int tid) {
        for (int64_t k = c * S / C; k < (c + 1) * S / C; ++k) fn(b, k, tid);
    });
}
inline int64_t grow_blocks(int64_t m) {
    return std::max<int64_t>(1, std::min<int64_t>(kMaxGrowBlocks, m / kGrowBlockRows));
}

// The threads a tree's growth keeps together (parallel_team): n_threads from m * (F + 12) bytes
// of node-ordered data on, where the growers' steps use several threads (`threaded`); else 1.
inline int tree_team_threads(int64_t m, int64_t F, int n_threads) {
    return m * (F + 12) >= 500000 ? n_threads : 1;
}

// H = the sum, block by block in block order, of the n_parts partial histograms at parts (stride
// node_stride), on the used bins.
inline void sum_partial_histograms(double* H, const double* parts, int64_t n_parts,
                                   int64_t node_stride, int64_t F, const int32_t* n_bins,
                                   const uint8_t* feature_mask) {
    for_each_used_bin_run(F, n_bins, feature_mask, [&](int64_t o, int64_t len) {
        std::memcpy(H + o, parts + o, sizeof(double) * static_cast<size_t>(len));
        for (int64_t b = 1; b < n_parts; ++b) {
            const double* P = parts + b * node_stride;
            for (int64_t i = o; i < o + len; ++i) H[i] += P[i];
        }
    });
}

// The positions of B row blocks of m rows: block b is [bounds[b], bounds[b + 1]).
inline std::vector<int64_t> block_bounds(int64_t m, int64_t B) {
    std::vector<int64_t> bounds(B + 1);
    for (int64_t b = 0; b <= B; ++b) bounds[b] = m * b / B;
    return bounds;
}

// Room for n doubles of partial histograms, kept between calls by the calling thread.
inline double* partial_histogram_store(size_t n) {
    static thread_local std::vector<double> store;
    if (store.size() < n) store.resize(n);
    return store.data();
}

// The (g, h) totals of a node from its histogram H: every (switched-on) feature's used bins add up
// to them; the first such feature's are summed.
inline void node_totals(const double* H, int64_t F, const int32_t* n_bins,
                        const uint8_t* feature_mask, double& sum_g, double& sum_h) {
    int64_t f = 0;
    while (feature_mask && f < F - 1 && !feature_mask[f]) ++f;
    const double* Hf = H + f * kBins * 2;
    const int64_t used = std::min<int64_t>(n_bins[f], kMissingBin);
    sum_g = 0.0;
    sum_h = 0.0;
    for (int b = 0; b < kBins; ++b) {
        if (b >= used && b != kMissingBin) continue;
        sum_g += Hf[2 * b];
        sum_h += Hf[2 * b + 1];
    }
}

// H = the histogram of all rows of the blocks (bounds: block_bounds): block b's partial
// histogram (at parts + b * part_stride) built by one task, the partials summed in block order.
inline void blocked_root_histogram(NodeData cur, int64_t F, const std::vector<int64_t>& bounds,
                                   const int32_t* n_bins, const uint8_t* feature_mask,
                                   double* parts, int64_t part_stride, double* H, int n_threads) {
    const int64_t B = static_cast<int64_t>(bounds.size()) - 1;
    const int threads = threads_for_work(n_threads, static_cast<double>(bounds[B]) * F, 120000.0);
    parallel_for_affine(B, threads, [&](int64_t b, int) {
        double* P = parts + b * part_stride;
        zero_used_bins(P, F, n_bins, feature_mask);
        accumulate_node(cur.X, F, cur.gh, nullptr, bounds[b], bounds[b + 1], 0, F, feature_mask, P);
    });
    sum_partial_histograms(H, parts, B, part_stride, F, n_bins, feature_mask);
}

// One block's rows of one split node, positions [s, e) of the node-ordered data: a stable partition
// by lut (1 = left) on `feature` — of the rows themselves, with the same positions of `scratch` as
// scratch space, or (idx not null) of the positions idx[s, e) only, with idx_tmp + s — then, when
// P is not null, the partial histogram of child `small` (0: left, 1: right) built into P (its
// used bins). Returns the number of left rows.
inline int64_t split_block_node(NodeData cur, NodeData scratch, int32_t* idx, int32_t* idx_tmp,
                                int64_t F, int64_t s, int64_t e, int32_t feature,
                                const uint8_t* lut, int small, const int32_t* n_bins,
                                const uint8_t* feature_mask, double* P) {
    int64_t n_left = 0;
    if (e > s)
        n_left = idx ? partition_positions(cur.X, F, idx, idx_tmp + s, s, e, feature, lut)
                     : partition_node(cur.X, F, cur.gh, cur.rows, scratch.X + s * F,
                                      scratch.gh + 2 * s, scratch.rows + s, s, e, feature, lut);
    if (P) {
        zero_used_bins(P, F, n_bins, feature_mask);
        const int64_t cs = small ? s + n_left : s, ce = small ? e : s + n_left;
        accumulate_node(cur.X, F, cur.gh, idx, cs, ce, 0, F, feature_mask, P);
    }
    return n_left;
}

// grow_depthwise on B >= 2 fixed row blocks (grow_blocks): the same steps, but every block keeps
// its own node-ordered rows inside its positions (node k of the level is positions [st[b][k],
// en[b][k]) of block b), so each level is one parallel region: a task partitions a block's rows of
// one or a few split nodes (for_each_block_node; the threads keep to their own blocks first) and
// builds a partial histogram of each smaller child (the child with the smaller hessian sum, the
// left one on a tie); the task that completes a node's last block sums the blocks' partials in
// block order, takes the larger child as parent - smaller and finds both children's splits (waking
// threads costs tens of microseconds: a second region per level cost more than it saved). A block's
// rows stay on the thread that last touched them, and the histograms are sums in a fixed order, so
// the trees do not depend on n_threads. (They equal the single-range sums of the other growers
// whenever float64 sums of the float32 (g, h) are exact, which they are while log2(rows) plus the
// span of the gradients' binary exponents stays within 29 bits: the condition under which the
// distributed fit equals one machine too.) The data never moves to `other`, which serves as the
// partition's scratch space.
inline GrownTree grow_depthwise_blocked(NodeData cur, NodeData other, int64_t m, int64_t F,
                                        const int32_t* n_bins, const uint8_t* is_cat,
                                        const uint8_t* feature_mask, const TreeParams& p,
                                        double* hist_a, double* hist_b, double* raw, int n_threads,
                                        int64_t B, const NextGradients* next) {
    const int64_t NS = F * kBins * 2;
    GrownTree tree;
    const std::vector<int64_t> bounds = block_bounds(m, B);
    // the partial histograms: one per block and per node built at a level (at most
    // 2^(max_depth - 2) below the root)
    const int64_t cap = p.max_depth >= 2 ? (int64_t{1} << (p.max_depth - 2)) : 1;
    double* part = partial_histogram_store(static_cast<size_t>(B * cap * NS));
    auto partial = [&](int64_t b, int64_t j) { return part + (b * cap + j) * NS; };
    // level nodes per block: st[b * K + k], en[b * K + k]
    std::vector<int64_t> st(B), en(B), cst, cen;
    for (int64_t b = 0; b < B; ++b) {
        st[b] = bounds[b];
        en[b] = bounds[b + 1];
    }
    double* hist = hist_a;
    double* hist_next = hist_b;
    blocked_root_histogram(cur, F, bounds, n_bins, feature_mask, part, cap * NS, hist, n_threads);
    std::vector<int32_t> ids{0};
    std::vector<double> sum_g(1, 0.0), sum_h(1, 0.0);
    node_totals(hist, F, n_bins, feature_mask, sum_g[0], sum_h[0]);
    tree.add(0, sum_g[0], sum_h[0], p);
    const SplitParams& sp = p.split;
    std::vector<SplitResult> split(1);
    find_splits(hist, 1, F, sum_g.data(), sum_h.data(), n_bins, is_cat, feature_mask, sp,
                split.data(), n_threads);
    std::vector<int32_t> leaf_id;  // leaves made before the last level, and their block ranges
    std::vector<int64_t> leaf_st, leaf_en;  // leaf_st[l * B + b]
    std::vector<int64_t> ok_index, small;
    LevelChildren children;
    std::vector<int32_t>& c_ids = children.c_ids;
    std::vector<int32_t>& feat = children.feat;
    std::vector<int32_t>& thr = children.thr;
    std::vector<double>& c_sum_g = children.c_sum_g;
    std::vector<double>& c_sum_h = children.c_sum_h;
    std::vector<uint8_t>& dleft = children.dleft;
    std::vector<uint64_t>& sets = children.sets;
    std::vector<SplitResult> c_split;
    for (int32_t depth = 0;; ++depth) {
        const int64_t K = static_cast<int64_t>(ids.size());
        ok_index.clear();
        for (int64_t k = 0; k < K; ++k) {
            if (split[k].feature >= 0) {
                ok_index.push_back(k);
                continue;
            }
            leaf_id.push_back(ids[k]);
            for (int64_t b = 0; b < B; ++b) {
                leaf_st.push_back(st[b * K + k]);
                leaf_en.push_back(en[b * K + k]);
            }
        }
        const int64_t S = static_cast<int64_t>(ok_index.size());
        if (S == 0) break;
        const bool last = depth + 1 >= p.max_depth;
        add_level_children(tree, split, ok_index, ids, sum_g, sum_h, depth, p, children);
        small.resize(S);
        for (int64_t j = 0; j < S; ++j) small[j] = c_sum_h[2 * j + 1] < c_sum_h[2 * j] ? 1 : 0;
        if (last) {  // rows routed by their split straight into raw, block by block
            std::vector<double> lv(S), rv(S);
            for (int64_t j = 0; j < S; ++j) {
                lv[j] = tree.value[c_ids[2 * j]];
                rv[j] = tree.value[c_ids[2 * j + 1]];
            }
            for_each_block_node(B, S, m / B, n_threads, [&](int64_t b, int64_t j, int) {
                add_split_node_values(cur.X, F, cur.rows, st[b * K + ok_index[j]],
                                      en[b * K + ok_index[j]], feat[j], thr[j], dleft[j], is_cat,
                                      lv[j], rv[j], raw, node_set(sets.data(), j), next, cur.gh);
            });
            break;
        }
        std::vector<uint8_t> luts(static_cast<size_t>(S) * kBins);
        for (int64_t j = 0; j < S; ++j)
            direction_table(thr[j], dleft[j], is_cat[feat[j]] != 0, luts.data() + j * kBins,
                            node_set(sets.data(), j));
        cst.resize(B * 2 * S);
        cen.resize(B * 2 * S);
        int64_t rows_split = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t j = 0; j < S; ++j)
                rows_split += en[b * K + ok_index[j]] - st[b * K + ok_index[j]];
        const int level_threads =
            threads_for_work(n_threads, static_cast<double>(rows_split) * (F + 12), 100000.0);
        c_split.assign(static_cast<size_t>(2 * S), SplitResult());
        // node j's children: the blocks' partials summed in block order, the larger = parent -
        // smaller, both children's splits; run by the task that completes the node's last block
        auto finish_node = [&](int64_t j) {
            const int64_t c = 2 * j + small[j];
            double* Sm = hist_next + c * NS;
            sum_partial_histograms(Sm, partial(0, j), B, cap * NS, F, n_bins, feature_mask);
            subtract_used_bins(hist_next + (c ^ 1) * NS, hist + ok_index[j] * NS, Sm, F, n_bins,
                               feature_mask);
            for (int64_t q = 2 * j; q < 2 * j + 2; ++q)
                c_split[q] = best_split_node(hist_next + q * NS, F, c_sum_g[q], c_sum_h[q], n_bins,
                                             is_cat, feature_mask, sp);
        };
        std::unique_ptr<std::atomic<int64_t>[]> blocks_done(new std::atomic<int64_t>[S]);
        for (int64_t j = 0; j < S; ++j) blocks_done[j].store(0, std::memory_order_relaxed);
        for_each_block_node(B, S, rows_split / B, level_threads, [&](int64_t b, int64_t i, int) {
            // (blocks start at different nodes, so that the threads share the finishing)
            const int64_t j = (i + b * S / B) % S;
            const int64_t k = ok_index[j];
            const int64_t s = st[b * K + k], e = en[b * K + k];
            const int64_t n_left = split_block_node(
                cur, other, nullptr, nullptr, F, s, e, feat[j], luts.data() + j * kBins,
                static_cast<int>(small[j]), n_bins, feature_mask, partial(b, j));
            int64_t* cs = cst.data() + b * 2 * S;
            int64_t* ce = cen.data() + b * 2 * S;
            cs[2 * j] = s;
            ce[2 * j] = s + n_left;
            cs[2 * j + 1] = s + n_left;
            ce[2 * j + 1] = e;
            if (blocks_done[j].fetch_add(1, std::memory_order_acq_rel) == B - 1) finish_node(j);
        });
        std::swap(hist, hist_next);
        std::swap(split, c_split);
        ids.assign(c_ids.begin(), c_ids.end());
        sum_g = c_sum_g;
        sum_h = c_sum_h;
        st.swap(cst);
        en.swap(cen);
    }
    if (!leaf_id.empty()) {
        const int64_t L = static_cast<int64_t>(leaf_id.size());
        for_each_block_node(B, L, m / B, n_threads, [&](int64_t b, int64_t l, int) {
            const double v = tree.value[leaf_id[l]];
            for (int64_t q = leaf_st[l * B + b]; q < leaf_en[l * B + b]; ++q)
                add_value_at(raw, cur.rows[q], v, next, cur.gh, q);
        });
    }
    return tree;
}

// Grow one tree on the m rows of `cur` (`other`: buffers of the same sizes), add its leaf values to
// raw[rows] and return it. hist_a and hist_b hold 2^(max_depth - 1) node histograms each
// (F x kBins x 2 doubles per node). max_depth >= 1. next (may be null): then every row's (g, h) in
// the final node-ordered data is replaced by its gradient pair at its new margin (the next tree's
// gradients, in the pass that adds the leaf values).
inline GrownTree grow_depthwise_steps(NodeData cur, NodeData other, int64_t m, int64_t F,
                                      const int32_t* n_bins, const uint8_t* is_cat,
                                      const uint8_t* feature_mask, const TreeParams& p,
                                      double* hist_a, double* hist_b, double* raw, int n_threads,
                                      const NextGradients* next = nullptr) {
    // (fewer blocks where their partial histograms would pass kMaxPartialBytes: deep trees)
    const int64_t per_block_bytes =
        (p.max_depth >= 2 ? (int64_t{1} << std::min(p.max_depth - 2, 40)) : 1) * F * kBins * 16;
    const int64_t n_blocks = std::min(grow_blocks(m), kMaxPartialBytes / per_block_bytes);
    if (n_blocks > 1)
        return grow_depthwise_blocked(cur, other, m, F, n_bins, is_cat, feature_mask, p, hist_a,
                                      hist_b, raw, n_threads, n_blocks, next);
    GrownTree tree;
    std::vector<int64_t> starts{0}, ends{m};
    std::vector<int32_t> ids{0};
    std::vector<double> sum_g(1, 0.0), sum_h(1, 0.0);
    build_histograms(cur.X, F, cur.gh, nullptr, starts.data(), ends.data(), 1, feature_mask, hist_a,
                     n_threads);
    node_totals(hist_a, F, n_bins, feature_mask, sum_g[0], sum_h[0]);
    tree.add(0, sum_g[0], sum_h[0], p);
    std::vector<int64_t> leaf_start, leaf_end;  // leaves whose rows are a range
    std::vector<int32_t> leaf_id;
    std::vector<int64_t> carry_start, carry_end;  // ... not yet in the buffers the data moves to
    std::vector<SplitResult> split;
    std::vector<int64_t> ok_index, c_starts, c_ends, n_left;
    LevelChildren children;
    std::vector<int32_t>& c_ids = children.c_ids;
    std::vector<int32_t>& feat = children.feat;
    std::vector<int32_t>& thr = children.thr;
    std::vector<double>& c_sum_g = children.c_sum_g;
    std::vector<double>& c_sum_h = children.c_sum_h;
    std::vector<uint8_t>& dleft = children.dleft;
    std::vector<uint64_t>& sets = children.sets;
    double* hist = hist_a;
    double* hist_next = hist_b;
    const bool threaded = tree_team_threads(m, F, n_threads) > 1;
    const SplitParams& sp = p.split;
    bool have_splits = false;  // the level's splits were found by the fused step of the last one
    // the children built by a level become the nodes of the next one
    auto next_level = [&] {
        std::swap(hist, hist_next);
        ids.assign(c_ids.begin(), c_ids.end());
        starts = c_starts;
        ends = c_ends;
        sum_g = c_sum_g;
        sum_h = c_sum_h;
    };
    for (int32_t depth = 0;; ++depth) {
        const int64_t K = static_cast<int64_t>(ids.size());
        if (!have_splits) {
            split.assign(static_cast<size_t>(K), SplitResult());
            find_splits(hist, K, F, sum_g.data(), sum_h.data(), n_bins, is_cat, feature_mask, sp,
                        split.data(), n_threads);
        }
        have_splits = false;
        ok_index.clear();
        for (int64_t k = 0; k < K; ++k) {
            if (split[k].feature >= 0) {
                ok_index.push_back(k);
            } else {
                leaf_id.push_back(ids[k]);
                leaf_start.push_back(starts[k]);
                leaf_end.push_back(ends[k]);
                carry_start.push_back(starts[k]);
                carry_end.push_back(ends[k]);
            }
        }
        const int64_t S = static_cast<int64_t>(ok_index.size());
        if (S == 0) break;
        const bool last = depth + 1 >= p.max_depth;
        add_level_children(tree, split, ok_index, ids, sum_g, sum_h, depth, p, children);
        std::vector<int64_t> s_starts(S), s_ends(S);
        for (int64_t j = 0; j < S; ++j) {
            s_starts[j] = starts[ok_index[j]];
            s_ends[j] = ends[ok_index[j]];
        }
        if (last) {
            std::vector<double> lv(S), rv(S);
            for (int64_t j = 0; j < S; ++j) {
                lv[j] = tree.value[c_ids[2 * j]];
                rv[j] = tree.value[c_ids[2 * j + 1]];
            }
            add_split_leaf_values(cur.X, F, cur.rows, s_starts.data(), s_ends.data(), S,
                                  feat.data(), thr.data(), dleft.data(), is_cat, lv.data(),
                                  rv.data(), raw, n_threads, sets.data(), next, cur.gh);
            break;
        }
        const bool whole = S == 1 && s_starts[0] == 0 && s_ends[0] == m;
        const bool into_other = (whole && (threaded || m >= p.swap_rows)) || m >= p.swap_rows;
        if (!into_other && (S >= 2 || n_threads == 1)) {
            // one parallel region for the level: each task partitions one node, builds its
            // children's histograms and finds their splits while the node's rows are in cache
            fused_level(cur, other.X, other.gh, other.rows, F, s_starts.data(), s_ends.data(), S,
                        feat.data(), thr.data(), dleft.data(), sets.data(), is_cat, hist,
                        ok_index.data(), c_sum_g.data(), c_sum_h.data(), n_bins, feature_mask, sp,
                        hist_next, c_starts, c_ends, split, n_threads);
            have_splits = true;
            next_level();
            continue;
        }
        if (into_other) {
            for (size_t c = 0; c < carry_start.size(); ++c) {
                s_starts.push_back(carry_start[c]);
                s_ends.push_back(carry_end[c]);
                feat.push_back(-1);
                thr.push_back(0);
                dleft.push_back(0);
                sets.insert(sets.end(), kCatSetWords, 0);
            }
        }
        n_left.resize(s_starts.size());
        partition_ordered(cur.X, F, cur.gh, cur.rows, other.X, other.gh, other.rows,
                          s_starts.data(), s_ends.data(), static_cast<int64_t>(s_starts.size()),
                          feat.data(), thr.data(), dleft.data(), is_cat, n_left.data(), n_threads,
                          into_other, sets.data());
        if (into_other) {
            std::swap(cur, other);
            tree.swapped = !tree.swapped;
            carry_start.clear();
            carry_end.clear();
        }
        c_starts.resize(2 * S);
        c_ends.resize(2 * S);
        for (int64_t j = 0; j < S; ++j) {
            const int64_t mid = s_starts[j] + n_left[j];
            c_starts[2 * j] = s_starts[j];
            c_ends[2 * j] = mid;
            c_starts[2 * j + 1] = mid;
            c_ends[2 * j + 1] = s_ends[j];
        }
        build_child_histograms(cur.X, F, cur.gh, hist, ok_index.data(), c_starts.data(),
                               c_ends.data(), S, feature_mask, hist_next, n_threads);
        next_level();
    }
    if (!leaf_id.empty()) {
        std::vector<double> v(leaf_id.size());
        for (size_t i = 0; i < leaf_id.size(); ++i) v[i] = tree.value[leaf_id[i]];
        add_leaf_values(cur.rows, leaf_start.data(), leaf_end.data(), v.data(),
                        static_cast<int64_t>(leaf_id.size()), raw, n_threads, next, cur.gh);
    }
    return tree;
}

// grow_depthwise_steps with its threads kept together for the whole tree (parallel_team): the
// steps' parallel regions do not wake sleeping threads. The same tree.
inline GrownTree grow_depthwise(NodeData cur, NodeData other, int64_t m, int64_t F,
                                const int32_t* n_bins, const uint8_t* is_cat,
                                const uint8_t* feature_mask, const TreeParams& p, double* hist_a,
                                double* hist_b, double* raw, int n_threads,
                                const NextGradients* next = nullptr) {
    GrownTree tree;
    parallel_team(tree_team_threads(m, F, n_threads), [&] {
        tree = grow_depthwise_steps(cur, other, m, F, n_bins, is_cat, feature_mask, p, hist_a,
                                    hist_b, raw, n_threads, next);
    });
    return tree;
}

}  // namespace gbdt
}  // namespace recforge
