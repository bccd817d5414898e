// What the bindings of the fused GBDT growers (depth-wise in bind_gbdt.cpp, best-first in
// bind_gbdt_leafwise.cpp) share: the structural checks of the node-ordered buffers and the node
// arrays of a grown tree as a dict of NumPy arrays.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>

#include "arrays.hpp"
#include "recforge/constants.hpp"
#include "recforge/gbdt_grow.hpp"
#include "recforge/partition.hpp"

namespace recforge::bindings {

// Checks the node-ordered data (Xn (m, F) uint8, ghn (m, 2), rows (m,)), the other buffers of the
// same shapes, n_bins / is_categorical (F,) and feature_mask (F,). Sets m and F.
inline void check_node_ordered(const CArray<uint8_t>& Xn, const CArray<float>& ghn,
                               const CArray<int32_t>& rows, const CArray<uint8_t>& other_X,
                               const CArray<float>& other_gh, const CArray<int32_t>& other_rows,
                               const CArray<int32_t>& n_bins, const CArray<uint8_t>& is_cat,
                               const std::optional<CArray<uint8_t>>& feature_mask, int64_t& m,
                               int64_t& F) {
    require(Xn.ndim() == 2, "Xn must be 2-D");
    m = Xn.shape(0);
    F = Xn.shape(1);
    require(m >= 1 && F >= 1, "Xn must have rows and features");
    require(ghn.ndim() == 2 && ghn.shape(0) == m && ghn.shape(1) == 2 && rows.ndim() == 1 &&
                rows.shape(0) == m,
            "ghn (m, 2) and rows (m,) must match Xn (m, n_features)");
    require(other_X.ndim() == 2 && other_X.shape(0) == m && other_X.shape(1) == F &&
                other_gh.ndim() == 2 && other_gh.shape(0) == m && other_gh.shape(1) == 2 &&
                other_rows.ndim() == 1 && other_rows.shape(0) == m,
            "the other buffers must match Xn, ghn, rows");
    require(
        n_bins.ndim() == 1 && n_bins.shape(0) == F && is_cat.ndim() == 1 && is_cat.shape(0) == F,
        "n_bins/is_categorical must have length n_features");
    for (int64_t f = 0; f < F; ++f)
        require(n_bins.data()[f] >= 0 && n_bins.data()[f] <= gbdt::kMaxBin, "n_bins in [0, 255]");
    if (feature_mask)
        require(feature_mask->ndim() == 1 && feature_mask->shape(0) == F, "feature_mask length");
}

// The split search's parameters, checked (the categorical search's; the rest come checked from
// Python).
inline gbdt::SplitParams split_params(double reg_lambda, double gamma, double min_child_weight,
                                      int32_t max_cat_to_onehot, int32_t max_cat_threshold,
                                      double cat_smooth, double cat_l2, double min_group_weight,
                                      double min_category_weight,
                                      const std::optional<CArray<int32_t>>& split_rank,
                                      int64_t n_features) {
    require(max_cat_to_onehot >= 0, "max_cat_to_onehot must be >= 0");
    require(max_cat_threshold >= 1, "max_cat_threshold must be >= 1");
    require(cat_smooth >= 0.0, "cat_smooth must be >= 0");
    require(cat_l2 >= 0.0, "cat_l2 must be >= 0");
    require(min_group_weight >= 0.0, "min_group_weight must be >= 0");
    require(min_category_weight >= 0.0, "min_category_weight must be >= 0");
    if (split_rank)
        require(split_rank->ndim() == 2 && split_rank->shape(0) == n_features &&
                    split_rank->shape(1) == gbdt::kBins,
                "split_rank must be (n_features, 256) int32");
    return {reg_lambda,
            gamma,
            min_child_weight,
            max_cat_to_onehot,
            max_cat_threshold,
            cat_smooth,
            cat_l2,
            min_group_weight,
            min_category_weight,
            split_rank ? split_rank->data() : nullptr};
}

// A (n_nodes, kCatSetWords) uint64 array of per-node bin sets (or None), checked; its data.
inline const uint64_t* cat_sets_data(const std::optional<CArray<uint64_t>>& sets, int64_t n_nodes) {
    if (!sets) return nullptr;
    require(sets->ndim() == 2 && sets->shape(0) == n_nodes && sets->shape(1) == gbdt::kCatSetWords,
            "cat_sets must be (n_nodes, 4) uint64");
    return sets->data();
}

// The next tree's gradients a grower fills (gbdt::NextGradients), checked: next_objective -1
// (none: objective -1 in the result), binary:logistic or reg:squarederror; y and weight (or None)
// of n_raw entries, as the margins.
inline gbdt::NextGradients next_gradients(int next_objective, const std::optional<CArray<float>>& y,
                                          const std::optional<CArray<float>>& weight,
                                          int64_t n_raw) {
    require(next_objective == -1 || next_objective == gbdt::kBinaryLogistic ||
                next_objective == gbdt::kSquaredError,
            "next_objective must be -1 (none), 0 (binary:logistic) or 1 (reg:squarederror)");
    if (next_objective < 0) return {-1, nullptr, nullptr};
    require(y && y->ndim() == 1 && y->shape(0) == n_raw &&
                (!weight || (weight->ndim() == 1 && weight->shape(0) == n_raw)),
            "next gradients need y and weight (or None) of raw's length");
    return {next_objective, y->data(), weight ? weight->data() : nullptr};
}

// A bin mapper's threshold table (F, kBins + 1) float32 (or None), checked; its data.
inline const float* threshold_table_data(const std::optional<CArray<float>>& table, int64_t F) {
    if (!table) return nullptr;
    require(table->ndim() == 2 && table->shape(0) == F && table->shape(1) == gbdt::kBins + 1,
            "threshold_table must be (n_features, 257) float32");
    return table->data();
}

// The node arrays of a grown tree (feature, threshold_bin, default_left, left, right, value,
// gain, cover, depth: each a new 1-D array; cat_set: (n_nodes, 4) uint64, a partition split's
// left bins). With thr_table (a bin mapper's threshold_table_, (F, 257) float32: entry [f, t + 1]
// the raw threshold of split bin t) also threshold float32 and categorical uint8 (is_cat of the
// split's feature), both 0 on leaves (the rule of Tree.set_split in Python).
inline pybind11::dict tree_arrays(const gbdt::GrownTree& t, const float* thr_table = nullptr,
                                  const uint8_t* is_cat = nullptr) {
    pybind11::dict d;
    const int64_t n = static_cast<int64_t>(t.feature.size());
    CArray<uint64_t> sets({n, static_cast<int64_t>(gbdt::kCatSetWords)});
    std::copy(t.cat_set.begin(), t.cat_set.end(), sets.mutable_data());
    d["cat_set"] = sets;
    d["feature"] = to_array(t.feature);
    d["threshold_bin"] = to_array(t.threshold_bin);
    d["default_left"] = to_array(t.default_left);
    d["left"] = to_array(t.left);
    d["right"] = to_array(t.right);
    d["value"] = to_array(t.value);
    d["gain"] = to_array(t.gain);
    d["cover"] = to_array(t.cover);
    d["depth"] = to_array(t.depth);
    if (thr_table) {
        CArray<float> threshold({n});
        CArray<uint8_t> categorical({n});
        float* thr = threshold.mutable_data();
        uint8_t* cat = categorical.mutable_data();
        for (int64_t k = 0; k < n; ++k) {
            const bool split = t.left[k] >= 0;
            const int32_t f = t.feature[k];
            thr[k] = split ? thr_table[f * (gbdt::kBins + 1) + t.threshold_bin[k] + 1] : 0.0f;
            cat[k] = split ? is_cat[f] : 0;
        }
        d["threshold"] = threshold;
        d["categorical"] = categorical;
    }
    return d;
}

}  // namespace recforge::bindings
