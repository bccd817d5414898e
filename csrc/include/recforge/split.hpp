// GBDT best-split search over histogram bins, with XGBoost's second-order gain.
//
//   loss_chg = G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)
// (twice the paper's ½[…]; xgboost's implementation compares this quantity with gamma).
// A split is valid when H_L >= min_child_weight, H_R >= min_child_weight, both > 0,
// loss_chg > 1e-6 and loss_chg >= gamma.
//
// Numeric features: left = bins <= t. Two scans as in xgboost: forward (missing values go right,
// t ascending) and, only when the node has missing values for the feature, backward (missing go
// left, t descending); a later candidate replaces the best only when strictly better, and across
// features the lower feature index wins ties. t may be -1 in the backward scan (only the
// missing values go left).
// Categorical features with at most max_cat_to_onehot value bins: one category vs the rest (left =
// bin == t), missing values right, then (with missing values) left.
// A column of bundled features (kind kBundleColumn, feature_bundle.hpp): one bin vs the rest,
// missing values (no member off its common bin) always with the rest: each candidate is one
// member's split. Categorical features with more bins: a sorted partition (LightGBM's and xgboost's
// search for many categories). The node's bins with hessian H_b > 0 and H_b >= min_category_weight
// (rarer categories are not sorted: they stay on the right, the "other" side) are sorted by G_b /
// (H_b + cat_smooth) (ascending, ties by bin); prefixes of that order of at most
// min(max_cat_threshold, (n_used + 1) / 2) bins are scanned from the front, then from the back,
// each with missing values right, then (with missing values) left. As in LightGBM's
// min_data_per_group (here in hessian, as min_child_weight, since histograms carry no row counts),
// a prefix is a candidate only when the bins added since the last candidate of its scan hold
// H >= min_group_weight, and a scan stops once the right side (bins not in the prefix, rare ones
// and, missing right, the missing values) holds less. Left = the prefix: a set of bins (cat_set, a
// 256-bit set) with threshold -1. As in LightGBM, the children's terms of a partition's gain take
// λ + cat_l2 (the parent's term λ): a penalty on the many candidate sets.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "recforge/histogram.hpp"
#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

struct SplitParams {
    double reg_lambda;
    double gamma;
    double min_child_weight;
    // categorical features with more value bins than this are split by a sorted partition
    int32_t max_cat_to_onehot = kBins;
    int32_t max_cat_threshold = 32;  // most categories on the scanned side of a partition
    double cat_smooth = 10.0;        // added to H_b in the sort key G_b / (H_b + cat_smooth)
    double cat_l2 = 0.0;             // added to λ in the children's terms of a partition's gain
    double min_group_weight = 0.0;   // least hessian of a group of categories and of the right side
    double min_category_weight = 0.0;  // categories with less hessian are not sorted (go right)
    // (n_features, kBins) or null: of two candidates of equal loss_chg, the one of lower
    // split_rank[f * kBins + max(t, 0)] wins (null: the lower feature). A bundled matrix's
    // columns rank each member by its original feature, so ties go as without bundling.
    const int32_t* split_rank = nullptr;
};

constexpr int kCatSetWords = kBins / 64;  // a set of bins: 4 x 64 bits

struct SplitResult {
    int32_t feature = -1;
    int32_t threshold = 0;  // a partition split: -1
    uint8_t default_left = 0;
    double loss_chg = 0.0;
    double left_g = 0.0, left_h = 0.0;
    uint64_t cat_set[kCatSetWords] = {0, 0, 0, 0};  // a partition split: the bins that go left

    bool has_set() const { return (cat_set[0] | cat_set[1] | cat_set[2] | cat_set[3]) != 0; }
};

// Whether candidate (loss_chg chg, feature f, threshold t) replaces best: better, or (with a
// split_rank) as good and of lower rank. Without a split_rank a candidate scanned later never
// replaces an equal one, so the lower feature (and the first threshold scanned) wins ties.
inline bool beats(double chg, int32_t f, int32_t t, const SplitResult& best, const SplitParams& p) {
    if (chg > best.loss_chg) return true;
    if (!p.split_rank || chg != best.loss_chg || best.feature < 0) return false;
    return p.split_rank[static_cast<int64_t>(f) * kBins + std::max(t, 0)] <
           p.split_rank[static_cast<int64_t>(best.feature) * kBins + std::max(best.threshold, 0)];
}

inline bool set_has(const uint64_t* set, int b) { return (set[b >> 6] >> (b & 63)) & 1u; }

inline double calc_gain(double g, double h, const SplitParams& p) {
    if (h < p.min_child_weight || h <= 0.0) return 0.0;
    return g * g / (h + p.reg_lambda);
}

inline void best_split_feature(const double* H, int32_t f, int n_bins, uint8_t kind, double sum_g,
                               double sum_h, const SplitParams& p, SplitResult& best) {
    const bool categorical = kind != 0;
    const double parent_gain = calc_gain(sum_g, sum_h, p);
    const double miss_g = H[2 * kMissingBin], miss_h = H[2 * kMissingBin + 1];
    const bool has_missing = miss_h != 0.0 || miss_g != 0.0;
    SplitParams child_p = p;  // the children's regularisation: a partition's adds cat_l2
    auto consider = [&](double lg, double lh, int32_t t, bool dleft) {
        const double rg = sum_g - lg, rh = sum_h - lh;
        if (lh < p.min_child_weight || rh < p.min_child_weight || lh <= 0.0 || rh <= 0.0)
            return false;
        const double chg = calc_gain(lg, lh, child_p) + calc_gain(rg, rh, child_p) - parent_gain;
        if (beats(chg, f, t, best, p)) {
            best = SplitResult();
            best.feature = f;
            best.threshold = t;
            best.default_left = dleft ? 1 : 0;
            best.loss_chg = chg;
            best.left_g = lg;
            best.left_h = lh;
            return true;
        }
        return false;
    };
    const bool bundle = kind == kBundleColumn;
    if (categorical && !bundle && n_bins > p.max_cat_to_onehot) {
        int used[kBins];
        double key[kBins];
        int n_used = 0;
        for (int b = 0; b < n_bins; ++b)
            if (H[2 * b + 1] > 0.0 && H[2 * b + 1] >= p.min_category_weight) {
                key[b] = H[2 * b] / (H[2 * b + 1] + p.cat_smooth);
                used[n_used++] = b;
            }
        std::stable_sort(used, used + n_used, [&](int a, int b) { return key[a] < key[b]; });
        const int max_left = std::min(p.max_cat_threshold, (n_used + 1) / 2);
        const bool grouped = p.min_group_weight > 0.0;
        child_p.reg_lambda += p.cat_l2;
        int won_dir = -1, won_len = 0;  // the winning prefix of this feature, if any
        for (int dir = 0; dir < 2; ++dir) {
            double lg = 0.0, lh = 0.0, group_h = 0.0;
            for (int i = 0; i < max_left; ++i) {
                const int b = used[dir == 0 ? i : n_used - 1 - i];
                lg += H[2 * b];
                lh += H[2 * b + 1];
                group_h += H[2 * b + 1];
                if (grouped) {
                    if (sum_h - lh < p.min_group_weight) break;
                    if (group_h < p.min_group_weight) continue;
                    group_h = 0.0;
                }
                if (consider(lg, lh, -1, false)) won_dir = dir, won_len = i + 1;
                if (has_missing && !(grouped && sum_h - lh - miss_h < p.min_group_weight) &&
                    consider(lg + miss_g, lh + miss_h, -1, true))
                    won_dir = dir, won_len = i + 1;
            }
        }
        if (won_dir >= 0)
            for (int i = 0; i < won_len; ++i) {
                const int b = used[won_dir == 0 ? i : n_used - 1 - i];
                best.cat_set[b >> 6] |= uint64_t(1) << (b & 63);
            }
        return;
    }
    if (categorical) {
        for (int b = 0; b < n_bins; ++b) consider(H[2 * b], H[2 * b + 1], b, false);
        if (has_missing && !bundle)  // (a bundle's missing bin stays with the rest)
            for (int b = 0; b < n_bins; ++b)
                consider(H[2 * b] + miss_g, H[2 * b + 1] + miss_h, b, true);
        return;
    }
    double lg = 0.0, lh = 0.0;
    for (int b = 0; b < n_bins; ++b) {  // forward: missing right
        lg += H[2 * b];
        lh += H[2 * b + 1];
        consider(lg, lh, b, false);
    }
    if (has_missing) {  // backward: missing left
        double rg = 0.0, rh = 0.0;
        for (int b = n_bins - 1; b >= 0; --b) {
            rg += H[2 * b];
            rh += H[2 * b + 1];
            consider(sum_g - rg, sum_h - rh, b - 1, true);
        }
    }
}

// The best split candidate of one node's histogram H (n_features x kBins x 2) among features
// [f0, f1) (mask 0: skipped), before the gamma rule: feature -1 when none beats xgboost's kRtEps.
// The best of consecutive ranges, taken in feature order (finish_best_split), is the best over
// their union: a later range wins only when strictly better, as a later feature does.
inline SplitResult best_split_features(const double* H, int64_t f0, int64_t f1, double sum_g,
                                       double sum_h, const int32_t* n_bins,
                                       const uint8_t* is_categorical, const uint8_t* feature_mask,
                                       const SplitParams& p) {
    SplitResult best;
    best.loss_chg = 1e-6;  // xgboost's kRtEps
    for (int64_t f = f0; f < f1; ++f) {
        if (feature_mask && !feature_mask[f]) continue;
        best_split_feature(H + f * kBins * 2, static_cast<int32_t>(f), n_bins[f], is_categorical[f],
                           sum_g, sum_h, p, best);
    }
    return best;
}

// The node's split from the best candidates of n consecutive feature ranges (in feature order):
// the first best one, then none below gamma (feature -1 and loss_chg 0: no valid split).
inline SplitResult finish_best_split(const SplitResult* ranges, int64_t n, const SplitParams& p) {
    SplitResult best;
    best.loss_chg = 1e-6;
    for (int64_t i = 0; i < n; ++i)
        if (ranges[i].feature >= 0 &&
            beats(ranges[i].loss_chg, ranges[i].feature, ranges[i].threshold, best, p))
            best = ranges[i];
    if (best.feature >= 0 && best.loss_chg < p.gamma) best = SplitResult();
    if (best.feature < 0) best.loss_chg = 0.0;
    return best;
}

// The best split of one node's histogram H (n_features x kBins x 2) given its sums, as
// find_splits gives it for that node (the first best candidate in feature order, then none below
// gamma): feature -1 and loss_chg 0 when there is no valid split.
inline SplitResult best_split_node(const double* H, int64_t n_features, double sum_g, double sum_h,
                                   const int32_t* n_bins, const uint8_t* is_categorical,
                                   const uint8_t* feature_mask, const SplitParams& p) {
    const SplitResult best = best_split_features(H, 0, n_features, sum_g, sum_h, n_bins,
                                                 is_categorical, feature_mask, p);
    return finish_best_split(&best, 1, p);
}

// For each node k: best split of hist[k] given its sums. Results with feature -1 mean no valid
// split.
inline void find_splits(const double* hist, int64_t n_nodes, int64_t n_features,
                        const double* sum_g, const double* sum_h, const int32_t* n_bins,
                        const uint8_t* is_categorical, const uint8_t* feature_mask,
                        const SplitParams& p, SplitResult* out, int n_threads) {
    const int64_t node_stride = n_features * kBins * 2;
    std::vector<SplitResult> per(static_cast<size_t>(n_nodes * n_features));
    // a task (one feature's bins) takes about a microsecond: a second thread only for >= 1024 of
    // them (waking a thread costs tens of microseconds on a VM)
    n_threads = threads_for_work(n_threads, static_cast<double>(n_nodes * n_features), 512.0);
    parallel_for(n_nodes * n_features, n_threads, [&](int64_t task, int) {
        const int64_t k = task / n_features;
        const int32_t f = static_cast<int32_t>(task % n_features);
        SplitResult& r = per[static_cast<size_t>(task)];
        r.loss_chg = 1e-6;  // xgboost's kRtEps: anything not better than this is no split
        if (feature_mask && !feature_mask[f]) return;
        best_split_feature(hist + k * node_stride + static_cast<int64_t>(f) * kBins * 2, f,
                           n_bins[f], is_categorical[f], sum_g[k], sum_h[k], p, r);
    });
    for (int64_t k = 0; k < n_nodes; ++k) {
        out[k] = finish_best_split(per.data() + k * n_features, n_features, p);
    }
}

}  // namespace gbdt
}  // namespace recforge
