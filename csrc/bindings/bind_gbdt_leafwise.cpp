// pybind11 binding of the fused best-first GBDT grower (gbdt_leafwise.hpp). Cheap structural
// checks here; dtype/contiguity are enforced by noconvert, everything else is validated by
// recforge.kernels.gbdt_leafwise.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <vector>

#include "arrays.hpp"
#include "gbdt_tree_arrays.hpp"
#include "recforge/constants.hpp"
#include "recforge/gbdt_leafwise.hpp"

namespace py = pybind11;
namespace gb = recforge::gbdt;

using recforge::bindings::CArray;
using recforge::bindings::check_node_ordered;
using recforge::bindings::require;
using recforge::bindings::to_array;
using recforge::bindings::tree_arrays;

namespace {

py::handle leafwise_result_type;  // the named tuple type (the module holds the reference)

py::object grow_leafwise_py(
    CArray<uint8_t> Xn, CArray<float> ghn, CArray<int32_t> rows, CArray<uint8_t> other_X,
    CArray<float> other_gh, CArray<int32_t> other_rows, CArray<int32_t> n_bins,
    CArray<uint8_t> is_cat, std::optional<CArray<uint8_t>> feature_mask, int32_t max_leaves,
    int32_t max_depth, double min_child_weight, double reg_lambda, double gamma,
    double learning_rate, int64_t swap_rows, int64_t index_bytes, int n_threads,
    int32_t max_cat_to_onehot, int32_t max_cat_threshold, double cat_smooth, double cat_l2,
    double min_group_weight, double min_category_weight, std::optional<CArray<int32_t>> split_rank,
    std::optional<CArray<double>> raw, int next_objective, std::optional<CArray<float>> y,
    std::optional<CArray<float>> weight, std::optional<CArray<float>> threshold_table) {
    int64_t m, F;
    check_node_ordered(Xn, ghn, rows, other_X, other_gh, other_rows, n_bins, is_cat, feature_mask,
                       m, F);
    const float* thr_table = recforge::bindings::threshold_table_data(threshold_table, F);
    require(max_leaves >= 1, "max_leaves must be >= 1");
    int64_t n_raw = 0;
    if (raw) {
        require(raw->ndim() == 1, "raw must be 1-D");
        n_raw = raw->shape(0);
        recforge::bindings::require_indices(rows.data(), m, n_raw, "rows must index raw");
    }
    require(raw || next_objective < 0, "next gradients need raw");
    const gb::NextGradients next =
        recforge::bindings::next_gradients(next_objective, y, weight, n_raw);
    const gb::LeafwiseParams params{
        {recforge::bindings::split_params(reg_lambda, gamma, min_child_weight, max_cat_to_onehot,
                                          max_cat_threshold, cat_smooth, cat_l2, min_group_weight,
                                          min_category_weight, split_rank, F),
         max_depth, learning_rate, swap_rows},
        max_leaves,
        index_bytes};
    gb::LeafwiseTree t;
    {
        py::gil_scoped_release release;
        t = gb::grow_leafwise(
            {Xn.mutable_data(), ghn.mutable_data(), rows.mutable_data()},
            {other_X.mutable_data(), other_gh.mutable_data(), other_rows.mutable_data()}, m, F,
            n_bins.data(), is_cat.data(), feature_mask ? feature_mask->data() : nullptr, params,
            n_threads, raw ? raw->mutable_data() : nullptr, next_objective >= 0 ? &next : nullptr);
    }
    return leafwise_result_type(tree_arrays(t.tree, thr_table, is_cat.data()),
                                to_array(t.leaf_node), to_array(t.leaf_start), to_array(t.leaf_end),
                                t.tree.swapped);
}

}  // namespace

void bind_gbdt_leafwise(py::module_& m) {
    py::object result = py::module_::import("collections")
                            .attr("namedtuple")("GBDTLeafwiseTree",
                                                py::make_tuple("nodes", "leaf_node", "leaf_start",
                                                               "leaf_end", "swapped"));
    result.attr("__module__") = m.attr("__name__");
    result.attr("__doc__") =
        "One best-first tree: nodes (dict of node arrays: feature, threshold_bin, default_left, "
        "left, right, value, gain, cover, depth, cat_set), leaf_node int32 / leaf_start, leaf_end "
        "int64 (each leaf's positions in the node-ordered data; from 32,000 rows one range per "
        "leaf and row block), swapped (the data ended in the other buffers).";
    m.attr("GBDTLeafwiseTree") = result;
    leafwise_result_type = result;
    m.def(
        "gbdt_grow_leafwise", &grow_leafwise_py, py::arg("Xn").noconvert(),
        py::arg("ghn").noconvert(), py::arg("rows").noconvert(), py::arg("other_X").noconvert(),
        py::arg("other_gh").noconvert(), py::arg("other_rows").noconvert(),
        py::arg("n_bins").noconvert(), py::arg("is_categorical").noconvert(),
        py::arg("feature_mask").noconvert().none(true), py::arg("max_leaves"), py::arg("max_depth"),
        py::arg("min_child_weight"), py::arg("reg_lambda"), py::arg("gamma"),
        py::arg("learning_rate"), py::arg("swap_rows"), py::arg("index_bytes"),
        py::arg("n_threads") = 1, py::arg("max_cat_to_onehot") = gb::kBins,
        py::arg("max_cat_threshold") = 32, py::arg("cat_smooth") = 10.0, py::arg("cat_l2") = 0.0,
        py::arg("min_group_weight") = 0.0, py::arg("min_category_weight") = 0.0,
        py::arg("split_rank").noconvert().none(true) = py::none(),
        py::arg("raw").noconvert().none(true) = py::none(), py::arg("next_objective") = -1,
        py::arg("y").noconvert().none(true) = py::none(),
        py::arg("weight").noconvert().none(true) = py::none(),
        py::arg("threshold_table").noconvert().none(true) = py::none(),
        "Grow one best-first tree (max_depth < 0: no depth limit; data below index_bytes moves "
        "once, at the end) on node-ordered data; with raw, add its leaf values to raw[rows], and "
        "with next_objective >= 0 (y, weight: by row id as raw), replace each row's (g, h) by its "
        "gradient pair at the new margin -> "
        "GBDTLeafwiseTree(nodes, leaf_node, leaf_start, leaf_end, swapped); with threshold_table "
        "(a bin mapper's (F, 257) float32), nodes also holds each split's raw threshold and "
        "categorical flag.");
}
