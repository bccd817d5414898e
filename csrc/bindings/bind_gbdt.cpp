// pybind11 bindings of the GBDT kernels (histogram, split, partition, gradients, predict).
// Cheap structural checks here (shapes, index ranges of tree arrays); dtype/contiguity are enforced
// by noconvert, everything else is validated by recforge.kernels.gbdt.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "gbdt_tree_arrays.hpp"
#include "recforge/constants.hpp"
#include "recforge/feature_bundle.hpp"
#include "recforge/gbdt_grow.hpp"
#include "recforge/histogram.hpp"
#include "recforge/partition.hpp"
#include "recforge/rank_objective.hpp"
#include "recforge/split.hpp"
#include "recforge/tree_predict.hpp"

namespace py = pybind11;
namespace gb = recforge::gbdt;

using recforge::bindings::CArray;
using recforge::bindings::check_node_ordered;
using recforge::bindings::require;
using recforge::bindings::require_indices;
using recforge::bindings::to_array;
using recforge::bindings::tree_arrays;

namespace {

CArray<uint8_t> bin_features_py(CArray<float> X, CArray<float> edges, CArray<int64_t> offsets,
                                CArray<uint8_t> is_cat, int n_threads) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1);
    require(offsets.ndim() == 1 && offsets.shape(0) == F + 1,
            "offsets must have length n_features + 1");
    require(is_cat.ndim() == 1 && is_cat.shape(0) == F,
            "is_categorical must have length n_features");
    const int64_t* off = offsets.data();
    require(off[0] == 0 && off[F] == edges.shape(0),
            "offsets must start at 0 and end at len(edges)");
    for (int64_t f = 0; f < F; ++f)
        require(off[f + 1] >= off[f] &&
                    off[f + 1] - off[f] <= (is_cat.data()[f] ? gb::kMaxBin : gb::kMaxBin - 1),
                "a feature has at most 254 edges (255 categories)");
    CArray<uint8_t> out({n, F});
    {
        py::gil_scoped_release release;
        gb::bin_features(X.data(), n, F, edges.data(), off, is_cat.data(), out.mutable_data(),
                         n_threads);
    }
    return out;
}

CArray<float> sort_values_py(CArray<float> values) {
    require(values.ndim() == 1, "values must be 1-D");
    const int64_t n = values.shape(0);
    for (int64_t i = 0; i < n; ++i) require(!std::isnan(values.data()[i]), "values hold NaN");
    CArray<float> out(n);
    {
        py::gil_scoped_release release;
        gb::sort_floats(values.data(), n, out.mutable_data());
    }
    return out;
}

py::tuple two_valued_columns_py(CArray<float> X) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1);
    CArray<float> upper(F);
    CArray<uint8_t> two_valued(F);
    {
        py::gil_scoped_release release;
        gb::two_valued_columns(X.data(), n, F, upper.mutable_data(), two_valued.mutable_data());
    }
    return py::make_tuple(upper, two_valued);
}

py::tuple bundle_exclusive_py(CArray<uint8_t> X, CArray<int32_t> candidates, int32_t max_members,
                              int n_threads) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1);
    require(candidates.ndim() == 1, "candidates must be 1-D");
    require(max_members >= 1 && max_members <= gb::kMaxBin, "max_members must be in [1, 255]");
    const int64_t C = candidates.shape(0);
    if (C > 0) require_indices(candidates.data(), C, F, "candidates must be column indices of X");
    CArray<int32_t> bundle_of(C), code_of(C);
    CArray<uint8_t> common(C), constant(C);
    int32_t n_bundles;
    {
        py::gil_scoped_release release;
        n_bundles = gb::bundle_exclusive(X.data(), n, F, candidates.data(), C, max_members,
                                         bundle_of.mutable_data(), code_of.mutable_data(),
                                         common.mutable_data(), constant.mutable_data(), n_threads);
    }
    return py::make_tuple(bundle_of, code_of, common, constant, n_bundles);
}

CArray<uint8_t> bundle_columns_py(CArray<uint8_t> X, CArray<int32_t> plain, CArray<int32_t> member,
                                  CArray<uint8_t> common_bin, CArray<int32_t> bundle_of,
                                  CArray<int32_t> code_of, int64_t n_bundles, int n_threads) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1), M = member.shape(0);
    require(plain.ndim() == 1 && member.ndim() == 1 && common_bin.ndim() == 1 &&
                bundle_of.ndim() == 1 && code_of.ndim() == 1 && common_bin.shape(0) == M &&
                bundle_of.shape(0) == M && code_of.shape(0) == M,
            "member, common_bin, bundle_of and code_of must be 1-D of equal length");
    require_indices(plain.data(), plain.shape(0), F, "plain must be column indices of X");
    require_indices(member.data(), M, F, "member must be column indices of X");
    require(n_bundles >= 0, "n_bundles must be >= 0");
    if (M > 0) {
        require_indices(bundle_of.data(), M, n_bundles, "bundle_of must be in [0, n_bundles)");
        require_indices(code_of.data(), M, gb::kMaxBin, "code_of must be in [0, 255)");
    }
    CArray<uint8_t> out({n, plain.shape(0) + n_bundles});
    {
        py::gil_scoped_release release;
        gb::bundle_columns(X.data(), n, F, plain.data(), plain.shape(0), member.data(),
                           common_bin.data(), bundle_of.data(), code_of.data(), M, n_bundles,
                           out.mutable_data(), n_threads);
    }
    return out;
}

void check_ranges(int64_t n, const CArray<int64_t>& starts, const CArray<int64_t>& ends) {
    require(starts.ndim() == 1 && ends.ndim() == 1 && starts.shape(0) == ends.shape(0),
            "starts and ends must be 1-D of equal length");
    for (int64_t k = 0; k < starts.shape(0); ++k)
        require(0 <= starts.data()[k] && starts.data()[k] <= ends.data()[k] && ends.data()[k] <= n,
                "node ranges must satisfy 0 <= start <= end <= len(rows)");
}

void check_nodes(const CArray<int32_t>& rows, const CArray<int64_t>& starts,
                 const CArray<int64_t>& ends) {
    check_ranges(rows.shape(0), starts, ends);
}

CArray<double> build_histograms_py(CArray<uint8_t> Xb, CArray<float> gh,
                                   std::optional<CArray<int32_t>> rows, CArray<int64_t> starts,
                                   CArray<int64_t> ends,
                                   std::optional<CArray<uint8_t>> feature_mask, int n_threads) {
    require(Xb.ndim() == 2, "X_binned must be 2-D");
    const int64_t F = Xb.shape(1);
    require(gh.ndim() == 2 && gh.shape(0) == Xb.shape(0) && gh.shape(1) == 2,
            "gh must have shape (n_rows, 2)");
    if (rows) {
        check_nodes(*rows, starts, ends);
    } else {
        check_ranges(Xb.shape(0), starts, ends);  // node ranges index X itself
    }
    if (feature_mask)
        require(feature_mask->ndim() == 1 && feature_mask->shape(0) == F, "feature_mask length");
    const int64_t K = starts.shape(0);
    CArray<double> hist({K, F, static_cast<int64_t>(gb::kBins), static_cast<int64_t>(2)});
    {
        py::gil_scoped_release release;
        gb::build_histograms(Xb.data(), F, gh.data(), rows ? rows->data() : nullptr, starts.data(),
                             ends.data(), K, feature_mask ? feature_mask->data() : nullptr,
                             hist.mutable_data(), n_threads);
    }
    return hist;
}

CArray<double> build_child_histograms_py(CArray<uint8_t> Xn, CArray<float> ghn,
                                         CArray<double> parent_hist, CArray<int64_t> c_starts,
                                         CArray<int64_t> c_ends,
                                         std::optional<CArray<uint8_t>> feature_mask,
                                         int n_threads) {
    require(Xn.ndim() == 2, "Xn must be 2-D");
    const int64_t F = Xn.shape(1);
    require(ghn.ndim() == 2 && ghn.shape(0) == Xn.shape(0) && ghn.shape(1) == 2,
            "ghn must have shape (n_rows, 2)");
    const int64_t P = parent_hist.ndim() == 4 ? parent_hist.shape(0) : -1;
    require(P >= 0 && parent_hist.shape(1) == F && parent_hist.shape(2) == gb::kBins &&
                parent_hist.shape(3) == 2,
            "parent_hist must be (n_parents, n_features, 256, 2)");
    require(c_starts.ndim() == 1 && c_starts.shape(0) == 2 * P,
            "c_starts/c_ends must have length 2 * n_parents");
    check_ranges(Xn.shape(0), c_starts, c_ends);
    if (feature_mask)
        require(feature_mask->ndim() == 1 && feature_mask->shape(0) == F, "feature_mask length");
    CArray<double> out({2 * P, F, static_cast<int64_t>(gb::kBins), static_cast<int64_t>(2)});
    {
        py::gil_scoped_release release;
        gb::build_child_histograms(
            Xn.data(), F, ghn.data(), parent_hist.data(), nullptr, c_starts.data(), c_ends.data(),
            P, feature_mask ? feature_mask->data() : nullptr, out.mutable_data(), n_threads);
    }
    return out;
}

// The named tuple type of find_splits' result (created in bind_gbdt; the module keeps it alive).
py::handle split_result_type;

py::object find_splits_py(CArray<double> hist, CArray<double> sum_g, CArray<double> sum_h,
                          CArray<int32_t> n_bins, CArray<uint8_t> is_cat,
                          std::optional<CArray<uint8_t>> feature_mask, double reg_lambda,
                          double gamma, double min_child_weight, int n_threads,
                          int32_t max_cat_to_onehot, int32_t max_cat_threshold, double cat_smooth,
                          double cat_l2, double min_group_weight, double min_category_weight,
                          std::optional<CArray<int32_t>> split_rank) {
    require(hist.ndim() == 4 && hist.shape(2) == gb::kBins && hist.shape(3) == 2,
            "hist must be (K, F, 256, 2)");
    const int64_t K = hist.shape(0), F = hist.shape(1);
    require(sum_g.shape(0) == K && sum_h.shape(0) == K, "sum_g/sum_h must have length n_nodes");
    require(n_bins.shape(0) == F && is_cat.shape(0) == F,
            "n_bins/is_categorical must have length n_features");
    for (int64_t f = 0; f < F; ++f)
        require(n_bins.data()[f] >= 0 && n_bins.data()[f] <= gb::kMaxBin, "n_bins in [0, 255]");
    if (feature_mask) require(feature_mask->shape(0) == F, "feature_mask length");
    const gb::SplitParams sp = recforge::bindings::split_params(
        reg_lambda, gamma, min_child_weight, max_cat_to_onehot, max_cat_threshold, cat_smooth,
        cat_l2, min_group_weight, min_category_weight, split_rank, F);
    std::vector<gb::SplitResult> res(static_cast<size_t>(K));
    {
        py::gil_scoped_release release;
        gb::find_splits(hist.data(), K, F, sum_g.data(), sum_h.data(), n_bins.data(), is_cat.data(),
                        feature_mask ? feature_mask->data() : nullptr, sp, res.data(), n_threads);
    }
    CArray<int32_t> feature(K), threshold(K);
    CArray<uint8_t> dleft(K);
    CArray<double> chg(K), lg(K), lh(K);
    CArray<uint64_t> sets({K, static_cast<int64_t>(gb::kCatSetWords)});
    for (int64_t k = 0; k < K; ++k) {
        std::copy(res[k].cat_set, res[k].cat_set + gb::kCatSetWords,
                  sets.mutable_data() + k * gb::kCatSetWords);
        feature.mutable_data()[k] = res[k].feature;
        threshold.mutable_data()[k] = res[k].threshold;
        dleft.mutable_data()[k] = res[k].default_left;
        chg.mutable_data()[k] = res[k].loss_chg;
        lg.mutable_data()[k] = res[k].left_g;
        lh.mutable_data()[k] = res[k].left_h;
    }
    return split_result_type(feature, threshold, dleft, chg, lg, lh, sets);
}

CArray<int64_t> partition_ordered_py(CArray<uint8_t> Xn, CArray<float> ghn, CArray<int32_t> rows,
                                     CArray<uint8_t> scratch_X, CArray<float> scratch_gh,
                                     CArray<int32_t> scratch_rows, CArray<int64_t> starts,
                                     CArray<int64_t> ends, CArray<int32_t> feature,
                                     CArray<int32_t> threshold, CArray<uint8_t> default_left,
                                     CArray<uint8_t> is_cat, int n_threads, bool into_scratch,
                                     std::optional<CArray<uint64_t>> cat_sets) {
    require(Xn.ndim() == 2, "Xn must be 2-D");
    const int64_t m = Xn.shape(0), F = Xn.shape(1);
    require(ghn.ndim() == 2 && ghn.shape(0) == m && ghn.shape(1) == 2 && rows.shape(0) == m,
            "ghn (m, 2) and rows (m,) must match Xn (m, n_features)");
    require(scratch_X.ndim() == 2 && scratch_X.shape(0) == m && scratch_X.shape(1) == F &&
                scratch_gh.ndim() == 2 && scratch_gh.shape(0) == m && scratch_rows.shape(0) == m,
            "scratch buffers must match Xn, ghn, rows");
    check_nodes(rows, starts, ends);
    const int64_t K = starts.shape(0);
    require(feature.shape(0) == K && threshold.shape(0) == K && default_left.shape(0) == K,
            "split arrays length");
    require(is_cat.shape(0) == F, "is_categorical length");
    for (int64_t k = 0; k < K; ++k)
        require(feature.data()[k] >= (into_scratch ? -1 : 0) && feature.data()[k] < F,
                "feature out of range");
    const uint64_t* sets = recforge::bindings::cat_sets_data(cat_sets, K);
    CArray<int64_t> n_left(K);
    {
        py::gil_scoped_release release;
        gb::partition_ordered(Xn.mutable_data(), F, ghn.mutable_data(), rows.mutable_data(),
                              scratch_X.mutable_data(), scratch_gh.mutable_data(),
                              scratch_rows.mutable_data(), starts.data(), ends.data(), K,
                              feature.data(), threshold.data(), default_left.data(), is_cat.data(),
                              n_left.mutable_data(), n_threads, into_scratch, sets);
    }
    return n_left;
}

void add_leaf_values_py(CArray<int32_t> rows, CArray<int64_t> starts, CArray<int64_t> ends,
                        CArray<double> values, CArray<double> raw, int n_threads) {
    check_nodes(rows, starts, ends);
    require(values.shape(0) == starts.shape(0), "values must have length n_leaves");
    require(raw.ndim() == 1, "raw must be 1-D");
    {
        py::gil_scoped_release release;
        gb::add_leaf_values(rows.data(), starts.data(), ends.data(), values.data(), starts.shape(0),
                            raw.mutable_data(), n_threads);
    }
}

void add_split_leaf_values_py(CArray<uint8_t> Xn, CArray<int32_t> rows, CArray<int64_t> starts,
                              CArray<int64_t> ends, CArray<int32_t> feature,
                              CArray<int32_t> threshold, CArray<uint8_t> default_left,
                              CArray<uint8_t> is_cat, CArray<double> left_value,
                              CArray<double> right_value, CArray<double> raw, int n_threads,
                              std::optional<CArray<uint64_t>> cat_sets) {
    require(Xn.ndim() == 2 && rows.ndim() == 1 && rows.shape(0) == Xn.shape(0),
            "Xn (m, F) and rows (m,) must match");
    const int64_t F = Xn.shape(1), K = starts.shape(0);
    check_nodes(rows, starts, ends);
    require(feature.shape(0) == K && threshold.shape(0) == K && default_left.shape(0) == K &&
                left_value.shape(0) == K && right_value.shape(0) == K,
            "split and value arrays must have length n_nodes");
    require(is_cat.shape(0) == F, "is_categorical length");
    require(raw.ndim() == 1, "raw must be 1-D");
    for (int64_t k = 0; k < K; ++k)
        require(feature.data()[k] >= 0 && feature.data()[k] < F, "feature out of range");
    const int32_t* r = rows.data();
    const int64_t n_raw = raw.shape(0);
    for (int64_t k = 0; k < K; ++k)
        require_indices(r + starts.data()[k], ends.data()[k] - starts.data()[k], n_raw,
                        "rows must index raw");
    const uint64_t* sets = recforge::bindings::cat_sets_data(cat_sets, K);
    py::gil_scoped_release release;
    gb::add_split_leaf_values(Xn.data(), F, r, starts.data(), ends.data(), K, feature.data(),
                              threshold.data(), default_left.data(), is_cat.data(),
                              left_value.data(), right_value.data(), raw.mutable_data(), n_threads,
                              sets);
}

void add_tree_values_binned_py(CArray<uint8_t> Xb, CArray<int32_t> rows, CArray<int32_t> feature,
                               CArray<int32_t> threshold_bin, CArray<uint8_t> default_left,
                               CArray<uint8_t> is_cat, CArray<uint64_t> cat_set,
                               CArray<int32_t> left, CArray<int32_t> right, CArray<double> value,
                               CArray<double> raw, int n_threads) {
    require(Xb.ndim() == 2 && rows.ndim() == 1, "Xb must be 2-D (n, F) and rows 1-D");
    const int64_t F = Xb.shape(1), K = feature.shape(0), n = rows.shape(0);
    require(K >= 1 && threshold_bin.shape(0) == K && default_left.shape(0) == K &&
                left.shape(0) == K && right.shape(0) == K && value.shape(0) == K,
            "tree arrays must have one entry per node");
    require(cat_set.ndim() == 2 && cat_set.shape(0) == K && cat_set.shape(1) == gb::kCatSetWords,
            "cat_set must be (n_nodes, 4)");
    require(is_cat.shape(0) == F, "is_categorical length");
    require(raw.ndim() == 1 && raw.shape(0) == Xb.shape(0), "raw must be (n,) as Xb's rows");
    const int32_t *f = feature.data(), *l = left.data(), *rt = right.data();
    for (int64_t k = 0; k < K; ++k) {
        if (l[k] < 0) continue;  // every path ends: children come after their node, inside the tree
        require(l[k] > k && l[k] < K && rt[k] > k && rt[k] < K, "child index out of range");
        require(f[k] >= 0 && f[k] < F, "feature out of range");
    }
    const int32_t* r = rows.data();
    for (int64_t i = 0; i < n; ++i) require(r[i] >= 0 && r[i] < Xb.shape(0), "rows must index Xb");
    py::gil_scoped_release release;
    gb::add_tree_values_binned(Xb.data(), F, r, n, K, f, threshold_bin.data(), default_left.data(),
                               is_cat.data(), cat_set.data(), l, rt, value.data(),
                               raw.mutable_data(), n_threads);
}

void gradients_py(int objective, CArray<double> raw, CArray<float> y,
                  std::optional<CArray<float>> weight, CArray<float> gh, int n_threads) {
    const int64_t n = raw.shape(0);
    require(objective == gb::kBinaryLogistic || objective == gb::kSquaredError,
            "objective must be 0 (binary:logistic) or 1 (reg:squarederror)");
    require(y.shape(0) == n && gh.ndim() == 2 && gh.shape(0) == n && gh.shape(1) == 2,
            "raw/y/gh shapes differ");
    if (weight) require(weight->shape(0) == n, "weight length");
    py::gil_scoped_release release;
    gb::compute_gradients(objective, raw.data(), y.data(), weight ? weight->data() : nullptr, n,
                          gh.mutable_data(), n_threads);
}

void gradients_at_py(int objective, CArray<double> raw, CArray<float> y,
                     std::optional<CArray<float>> weight, CArray<int32_t> rows, CArray<float> ghn,
                     int n_threads) {
    const int64_t n = raw.shape(0), m = rows.shape(0);
    require(objective == gb::kBinaryLogistic || objective == gb::kSquaredError,
            "objective must be 0 (binary:logistic) or 1 (reg:squarederror)");
    require(y.shape(0) == n && rows.ndim() == 1 && ghn.ndim() == 2 && ghn.shape(0) == m &&
                ghn.shape(1) == 2,
            "raw/y (n,), rows (m,) and ghn (m, 2) shapes differ");
    if (weight) require(weight->shape(0) == n, "weight length");
    const int32_t* r = rows.data();
    require_indices(r, m, n, "rows must index raw");
    py::gil_scoped_release release;
    gb::compute_gradients_at(objective, raw.data(), y.data(), weight ? weight->data() : nullptr, r,
                             m, ghn.mutable_data(), n_threads);
}

void rank_gradients_py(int objective, CArray<double> raw, CArray<float> y,
                       CArray<int64_t> group_ptr, std::optional<CArray<float>> group_weight,
                       CArray<float> gh, int64_t top_k, bool normalize, bool score_normalize,
                       bool exp_gain, int n_threads) {
    require(objective == gb::kRankPairwise || objective == gb::kRankNdcg,
            "objective must be 2 (rank:pairwise) or 3 (rank:ndcg)");
    const int64_t n = raw.shape(0);
    require(raw.ndim() == 1 && y.ndim() == 1 && y.shape(0) == n && gh.ndim() == 2 &&
                gh.shape(0) == n && gh.shape(1) == 2,
            "raw/y (n,) and gh (n, 2) shapes differ");
    require(group_ptr.ndim() == 1 && group_ptr.shape(0) >= 1,
            "group_ptr must be 1-D with n_groups + 1 entries");
    const int64_t G = group_ptr.shape(0) - 1;
    const int64_t* ptr = group_ptr.data();
    require(ptr[0] == 0 && ptr[G] == n, "group_ptr must start at 0 and end at n_rows");
    for (int64_t g = 0; g < G; ++g) require(ptr[g] <= ptr[g + 1], "group_ptr must not decrease");
    if (group_weight)
        require(group_weight->ndim() == 1 && group_weight->shape(0) == G, "group_weight length");
    require(top_k >= 1, "top_k must be >= 1");
    gb::RankParams p;
    p.objective = objective;
    p.top_k = top_k;
    p.normalize = normalize;
    p.score_normalize = score_normalize;
    p.exp_gain = exp_gain;
    py::gil_scoped_release release;
    gb::rank_gradients(p, raw.data(), y.data(), ptr, G,
                       group_weight ? group_weight->data() : nullptr, gh.mutable_data(), n_threads);
}

// Trees [t0, t1) of the flat forest packed on their own (node indices relative to roots[t0]), so
// that a call for a few trees (one per boosting round) does not pack the whole forest.
struct ForestRange {
    gb::PackedForest forest;
    std::vector<int64_t> roots;  // of the packed trees, relative to roots[t0]
};

ForestRange make_forest(int64_t F, CArray<int32_t> feature, CArray<float> threshold,
                        CArray<int32_t> left, CArray<int32_t> right, CArray<uint8_t> default_left,
                        CArray<uint8_t> categorical, CArray<double> value, CArray<int64_t> roots,
                        int64_t t0, int64_t t1, const std::optional<CArray<int32_t>>& cat_count,
                        const std::optional<CArray<float>>& cat_codes) {
    const int64_t N = feature.shape(0);
    require(threshold.shape(0) == N && left.shape(0) == N && right.shape(0) == N &&
                default_left.shape(0) == N && categorical.shape(0) == N && value.shape(0) == N,
            "tree node arrays must have equal lengths");
    const int64_t T = roots.shape(0);
    const int64_t* r = roots.data();
    for (int64_t t = 0; t < T; ++t)
        require(r[t] >= 0 && r[t] < N && (t == 0 || r[t] > r[t - 1]),
                "tree roots out of range or not increasing (corrupt model)");
    require(0 <= t0 && t0 <= t1 && t1 <= T, "tree range out of bounds");
    const int64_t a = t0 < T ? r[t0] : N, b = t1 < T ? r[t1] : N;
    std::vector<int32_t> local_left(static_cast<size_t>(b - a));
    for (int64_t i = a; i < b; ++i) {
        const int32_t l = left.data()[i], rc = right.data()[i];
        if (l >= 0) {
            require(l > i && rc == l + 1 && rc < b,
                    "tree child index out of range (corrupt model)");
            require(feature.data()[i] >= 0 && feature.data()[i] < F,
                    "tree feature index out of range for X");
        }
        local_left[i - a] = l >= 0 ? static_cast<int32_t>(l - a) : -1;
    }
    require(cat_count.has_value() == cat_codes.has_value(), "cat_count and cat_codes go together");
    const int32_t* count = nullptr;
    const float* codes = nullptr;
    if (cat_count) {  // the partition splits' code sets: sorted, within the node arrays
        require(cat_count->ndim() == 1 && cat_count->shape(0) == N && cat_codes->ndim() == 1,
                "cat_count must have one entry per node and cat_codes be 1-D");
        int64_t total = 0, first = 0;
        for (int64_t i = 0; i < N; ++i) {
            const int32_t c = cat_count->data()[i];
            require(c >= 0 && (c == 0 || (left.data()[i] >= 0 && categorical.data()[i])),
                    "cat_count: a code set on a node that is not a categorical split");
            if (i == a) first = total;
            total += c;
        }
        require(total == cat_codes->shape(0), "cat_codes must hold sum(cat_count) codes");
        const float* cc = cat_codes->data();
        for (int64_t i = 0; i < total; ++i) require(!(cc[i] != cc[i]), "cat_codes holds NaN");
        int64_t pos = 0;
        for (int64_t i = 0; i < N; ++i) {
            const int32_t c = cat_count->data()[i];
            for (int64_t k = pos + 1; k < pos + c; ++k)
                require(cc[k - 1] < cc[k], "a node's cat_codes must increase");
            pos += c;
        }
        count = cat_count->data() + a;
        codes = cc + (a < N ? first : total);
    }
    ForestRange out;
    for (int64_t t = t0; t < t1; ++t) out.roots.push_back(r[t] - a);
    out.forest = gb::pack_forest(b - a, feature.data() + a, threshold.data() + a, local_left.data(),
                                 default_left.data() + a, categorical.data() + a, value.data() + a,
                                 out.roots.data(), t1 - t0, count, codes);
    return out;
}

void predict_raw_py(CArray<float> X, CArray<int32_t> feature, CArray<float> threshold,
                    CArray<int32_t> left, CArray<int32_t> right, CArray<uint8_t> default_left,
                    CArray<uint8_t> categorical, CArray<double> value, CArray<int64_t> roots,
                    int64_t t0, int64_t t1, CArray<double> out, int n_threads,
                    std::optional<CArray<int32_t>> cat_count,
                    std::optional<CArray<float>> cat_codes) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1);
    require(out.ndim() == 1 && out.shape(0) == n, "out must have length n_rows");
    const ForestRange trees = make_forest(F, feature, threshold, left, right, default_left,
                                          categorical, value, roots, t0, t1, cat_count, cat_codes);
    py::gil_scoped_release release;
    gb::predict_raw(X.data(), n, F, trees.forest, trees.roots.data(), 0, t1 - t0,
                    out.mutable_data(), n_threads);
}

CArray<int32_t> apply_py(CArray<float> X, CArray<int32_t> feature, CArray<float> threshold,
                         CArray<int32_t> left, CArray<int32_t> right, CArray<uint8_t> default_left,
                         CArray<uint8_t> categorical, CArray<double> value, CArray<int64_t> roots,
                         int64_t t0, int64_t t1, int n_threads,
                         std::optional<CArray<int32_t>> cat_count,
                         std::optional<CArray<float>> cat_codes) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), F = X.shape(1);
    const ForestRange trees = make_forest(F, feature, threshold, left, right, default_left,
                                          categorical, value, roots, t0, t1, cat_count, cat_codes);
    CArray<int32_t> out({n, t1 - t0});
    {
        py::gil_scoped_release release;
        gb::apply_trees(X.data(), n, F, trees.forest, trees.roots.data(), 0, t1 - t0,
                        out.mutable_data(), n_threads);
    }
    return out;
}

py::tuple grow_depthwise_py(CArray<uint8_t> Xn, CArray<float> ghn, CArray<int32_t> rows,
                            CArray<uint8_t> other_X, CArray<float> other_gh,
                            CArray<int32_t> other_rows, CArray<int32_t> n_bins,
                            CArray<uint8_t> is_cat, std::optional<CArray<uint8_t>> feature_mask,
                            int32_t max_depth, double min_child_weight, double reg_lambda,
                            double gamma, double learning_rate, int64_t swap_rows,
                            CArray<double> hist_ws, CArray<double> raw, int n_threads,
                            int32_t max_cat_to_onehot, int32_t max_cat_threshold, double cat_smooth,
                            double cat_l2, double min_group_weight, double min_category_weight,
                            std::optional<CArray<int32_t>> split_rank, int next_objective,
                            std::optional<CArray<float>> y, std::optional<CArray<float>> weight,
                            std::optional<CArray<float>> threshold_table) {
    int64_t m, F;
    check_node_ordered(Xn, ghn, rows, other_X, other_gh, other_rows, n_bins, is_cat, feature_mask,
                       m, F);
    const float* thr_table = recforge::bindings::threshold_table_data(threshold_table, F);
    require(max_depth >= 1 && max_depth <= 30, "max_depth must be in [1, 30]");
    const int64_t cap = int64_t{1} << (max_depth - 1);
    require(hist_ws.ndim() == 5 && hist_ws.shape(0) == 2 && hist_ws.shape(1) >= cap &&
                hist_ws.shape(2) == F && hist_ws.shape(3) == gb::kBins && hist_ws.shape(4) == 2,
            "hist_ws must be (2, >= 2**(max_depth - 1), n_features, 256, 2)");
    require(raw.ndim() == 1, "raw must be 1-D");
    const int64_t n_raw = raw.shape(0);
    const int32_t* r = rows.data();
    require_indices(r, m, n_raw, "rows must index raw");
    const gb::NextGradients next =
        recforge::bindings::next_gradients(next_objective, y, weight, n_raw);
    const gb::TreeParams params{
        recforge::bindings::split_params(reg_lambda, gamma, min_child_weight, max_cat_to_onehot,
                                         max_cat_threshold, cat_smooth, cat_l2, min_group_weight,
                                         min_category_weight, split_rank, F),
        max_depth, learning_rate, swap_rows};
    gb::GrownTree t;
    {
        py::gil_scoped_release release;
        double* ws = hist_ws.mutable_data();
        t = gb::grow_depthwise(
            {Xn.mutable_data(), ghn.mutable_data(), rows.mutable_data()},
            {other_X.mutable_data(), other_gh.mutable_data(), other_rows.mutable_data()}, m, F,
            n_bins.data(), is_cat.data(), feature_mask ? feature_mask->data() : nullptr, params, ws,
            ws + hist_ws.shape(1) * F * gb::kBins * 2, raw.mutable_data(), n_threads,
            next_objective >= 0 ? &next : nullptr);
    }
    return py::make_tuple(tree_arrays(t, thr_table, is_cat.data()), t.swapped);
}

}  // namespace

void bind_gbdt(py::module_& m) {
    py::object splits =
        py::module_::import("collections")
            .attr("namedtuple")("GBDTSplits",
                                py::make_tuple("feature", "threshold", "default_left", "loss_chg",
                                               "left_g", "left_h", "cat_set"));
    splits.attr("__module__") = m.attr("__name__");
    splits.attr("__doc__") =
        "Best split per node (each field (n_nodes,)): feature int32 (-1: none), threshold "
        "bin int32 (-1 for a partition split), default_left uint8, loss_chg, left_g, left_h "
        "float64; cat_set (n_nodes, 4) uint64: the bins a partition split sends left (else "
        "empty).";
    m.attr("GBDTSplits") = splits;
    split_result_type = splits;
    m.def("gbdt_bin_features", &bin_features_py, py::arg("X").noconvert(),
          py::arg("edges").noconvert(), py::arg("offsets").noconvert(),
          py::arg("is_categorical").noconvert(), py::arg("n_threads") = 1,
          "Bin float32 X (n, F) by per-feature sorted edges -> uint8 (n, F); NaN -> 255.");
    m.def("gbdt_sort_values", &sort_values_py, py::arg("values").noconvert(),
          "float32 values (n,), no NaN, sorted ascending (a radix sort; -0.0 before 0.0).");
    m.def("gbdt_two_valued_columns", &two_valued_columns_py, py::arg("X").noconvert(),
          "Per column of float32 X (n, F): (upper float32 (F,), two_valued uint8 (F,)): whether "
          "it holds at most two values besides NaN, and the larger of two (NaN: fewer).");
    m.def("gbdt_bundle_exclusive", &bundle_exclusive_py, py::arg("X").noconvert(),
          py::arg("candidates").noconvert(), py::arg("max_members"), py::arg("n_threads") = 1,
          "Exclusive bundles of the columns candidates (at most two value bins) of binned X "
          "(n, F) uint8 (feature_bundle.hpp) -> (bundle_of int32 (C,) (-1: not bundled), code_of "
          "int32 (C,), common_bin uint8 (C,), constant uint8 (C,), n_bundles).");
    m.def("gbdt_bundle_columns", &bundle_columns_py, py::arg("X").noconvert(),
          py::arg("plain").noconvert(), py::arg("member").noconvert(),
          py::arg("common_bin").noconvert(), py::arg("bundle_of").noconvert(),
          py::arg("code_of").noconvert(), py::arg("n_bundles"), py::arg("n_threads") = 1,
          "The bundled matrix of binned X: its plain columns, then one column per bundle -> "
          "uint8 (n, n_plain + n_bundles).");
    m.def("gbdt_build_histograms", &build_histograms_py, py::arg("X_binned").noconvert(),
          py::arg("gh").noconvert(), py::arg("rows").noconvert().none(true),
          py::arg("starts").noconvert(), py::arg("ends").noconvert(),
          py::arg("feature_mask").noconvert() = py::none(), py::arg("n_threads") = 1,
          "(g, h) sums per node, feature and bin -> float64 (n_nodes, F, 256, 2).");
    m.def("gbdt_build_child_histograms", &build_child_histograms_py, py::arg("Xn").noconvert(),
          py::arg("ghn").noconvert(), py::arg("parent_hist").noconvert(),
          py::arg("c_starts").noconvert(), py::arg("c_ends").noconvert(),
          py::arg("feature_mask").noconvert() = py::none(), py::arg("n_threads") = 1,
          "Children (2 per parent, node-ordered rows) histograms: smaller built, larger = parent - "
          "smaller.");
    m.def("gbdt_find_splits", &find_splits_py, py::arg("hist").noconvert(),
          py::arg("sum_g").noconvert(), py::arg("sum_h").noconvert(), py::arg("n_bins").noconvert(),
          py::arg("is_categorical").noconvert(), py::arg("feature_mask").noconvert() = py::none(),
          py::arg("reg_lambda") = 1.0, py::arg("gamma") = 0.0, py::arg("min_child_weight") = 1.0,
          py::arg("n_threads") = 1, py::arg("max_cat_to_onehot") = gb::kBins,
          py::arg("max_cat_threshold") = 32, py::arg("cat_smooth") = 10.0, py::arg("cat_l2") = 0.0,
          py::arg("min_group_weight") = 0.0, py::arg("min_category_weight") = 0.0,
          py::arg("split_rank").noconvert().none(true) = py::none(),
          "Best split per node -> GBDTSplits(feature, threshold, default_left, loss_chg, left_g, "
          "left_h, cat_set); categorical features with more than max_cat_to_onehot bins by a "
          "sorted partition.");
    m.def("gbdt_partition_ordered", &partition_ordered_py, py::arg("Xn").noconvert(),
          py::arg("ghn").noconvert(), py::arg("rows").noconvert(), py::arg("scratch_X").noconvert(),
          py::arg("scratch_gh").noconvert(), py::arg("scratch_rows").noconvert(),
          py::arg("starts").noconvert(), py::arg("ends").noconvert(),
          py::arg("feature").noconvert(), py::arg("threshold").noconvert(),
          py::arg("default_left").noconvert(), py::arg("is_categorical").noconvert(),
          py::arg("n_threads") = 1, py::arg("into_scratch") = false,
          py::arg("cat_sets").noconvert() = py::none(),
          "Stable partition of node-ordered data (binned rows, gradients, row ids), in place or "
          "(into_scratch)\n"
          "into the scratch buffers -> n_left.");
    m.def("gbdt_add_leaf_values", &add_leaf_values_py, py::arg("rows").noconvert(),
          py::arg("starts").noconvert(), py::arg("ends").noconvert(), py::arg("values").noconvert(),
          py::arg("raw").noconvert(), py::arg("n_threads") = 1,
          "raw[rows[start:end]] += value for each leaf (in place).");
    m.def("gbdt_add_split_leaf_values", &add_split_leaf_values_py, py::arg("Xn").noconvert(),
          py::arg("rows").noconvert(), py::arg("starts").noconvert(), py::arg("ends").noconvert(),
          py::arg("feature").noconvert(), py::arg("threshold").noconvert(),
          py::arg("default_left").noconvert(), py::arg("is_categorical").noconvert(),
          py::arg("left_value").noconvert(), py::arg("right_value").noconvert(),
          py::arg("raw").noconvert(), py::arg("n_threads") = 1,
          py::arg("cat_sets").noconvert() = py::none(),
          "raw[rows[p]] += left or right leaf value of node k's split, p in [start_k, end_k) (in "
          "place).");
    m.def("gbdt_add_tree_values_binned", &add_tree_values_binned_py, py::arg("Xb").noconvert(),
          py::arg("rows").noconvert(), py::arg("feature").noconvert(),
          py::arg("threshold_bin").noconvert(), py::arg("default_left").noconvert(),
          py::arg("is_categorical").noconvert(), py::arg("cat_set").noconvert(),
          py::arg("left").noconvert(), py::arg("right").noconvert(), py::arg("value").noconvert(),
          py::arg("raw").noconvert(), py::arg("n_threads") = 1,
          "raw[r] += the leaf value one tree gives binned row Xb[r], r in rows (in place).");
    m.def("gbdt_gradients", &gradients_py, py::arg("objective"), py::arg("raw").noconvert(),
          py::arg("y").noconvert(), py::arg("weight").noconvert() = py::none(),
          py::arg("gh").noconvert(), py::arg("n_threads") = 1,
          "Fill gh (n, 2) float32 with gradient/hessian of the objective at raw margins.");
    m.def("gbdt_gradients_at", &gradients_at_py, py::arg("objective"), py::arg("raw").noconvert(),
          py::arg("y").noconvert(), py::arg("weight").noconvert().none(true),
          py::arg("rows").noconvert(), py::arg("ghn").noconvert(), py::arg("n_threads") = 1,
          "Fill ghn (m, 2) float32 with gradient/hessian of rows[p] (gathered gradients, node "
          "order).");
    m.def("gbdt_rank_gradients", &rank_gradients_py, py::arg("objective"),
          py::arg("raw").noconvert(), py::arg("y").noconvert(), py::arg("group_ptr").noconvert(),
          py::arg("group_weight").noconvert().none(true), py::arg("gh").noconvert(),
          py::arg("top_k") = 32, py::arg("normalize") = true, py::arg("score_normalize") = true,
          py::arg("exp_gain") = true, py::arg("n_threads") = 1,
          "Fill gh (n, 2) float32 with the LambdaMART gradient/hessian of rank:pairwise or "
          "rank:ndcg per query\n"
          "group (rows group_ptr[g]:group_ptr[g+1]); see rank_objective.hpp.");
    m.def("gbdt_grow_depthwise", &grow_depthwise_py, py::arg("Xn").noconvert(),
          py::arg("ghn").noconvert(), py::arg("rows").noconvert(), py::arg("other_X").noconvert(),
          py::arg("other_gh").noconvert(), py::arg("other_rows").noconvert(),
          py::arg("n_bins").noconvert(), py::arg("is_categorical").noconvert(),
          py::arg("feature_mask").noconvert().none(true), py::arg("max_depth"),
          py::arg("min_child_weight"), py::arg("reg_lambda"), py::arg("gamma"),
          py::arg("learning_rate"), py::arg("swap_rows"), py::arg("hist_ws").noconvert(),
          py::arg("raw").noconvert(), py::arg("n_threads") = 1,
          py::arg("max_cat_to_onehot") = gb::kBins, py::arg("max_cat_threshold") = 32,
          py::arg("cat_smooth") = 10.0, py::arg("cat_l2") = 0.0, py::arg("min_group_weight") = 0.0,
          py::arg("min_category_weight") = 0.0,
          py::arg("split_rank").noconvert().none(true) = py::none(), py::arg("next_objective") = -1,
          py::arg("y").noconvert().none(true) = py::none(),
          py::arg("weight").noconvert().none(true) = py::none(),
          py::arg("threshold_table").noconvert().none(true) = py::none(),
          "Grow one depth-wise tree on node-ordered data and add its leaf values to raw (with "
          "next_objective >= 0, y and weight by row id as raw: then replace each row's (g, h) by "
          "its gradient pair at the new margin) -> (dict of node arrays, swapped: the data ended "
          "in the other buffers). With threshold_table (a bin mapper's (F, 257) float32), the "
          "dict also holds each split's raw threshold and categorical flag.");
    m.def("gbdt_predict_raw", &predict_raw_py, py::arg("X").noconvert(),
          py::arg("feature").noconvert(), py::arg("threshold").noconvert(),
          py::arg("left").noconvert(), py::arg("right").noconvert(),
          py::arg("default_left").noconvert(), py::arg("categorical").noconvert(),
          py::arg("value").noconvert(), py::arg("roots").noconvert(), py::arg("t0"), py::arg("t1"),
          py::arg("out").noconvert(), py::arg("n_threads") = 1,
          py::arg("cat_count").noconvert() = py::none(),
          py::arg("cat_codes").noconvert() = py::none(),
          "out += sum of leaf values of trees [t0, t1) (in place); cat_count (n_nodes,) int32 and "
          "cat_codes float32: the partition splits' left category codes.");
    m.def("gbdt_apply", &apply_py, py::arg("X").noconvert(), py::arg("feature").noconvert(),
          py::arg("threshold").noconvert(), py::arg("left").noconvert(),
          py::arg("right").noconvert(), py::arg("default_left").noconvert(),
          py::arg("categorical").noconvert(), py::arg("value").noconvert(),
          py::arg("roots").noconvert(), py::arg("t0"), py::arg("t1"), py::arg("n_threads") = 1,
          py::arg("cat_count").noconvert() = py::none(),
          py::arg("cat_codes").noconvert() = py::none(),
          "Leaf node index (within its tree) per row and tree -> int32 (n, t1 - t0).");
}
