#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "recforge/topk.hpp"

namespace py = pybind11;

namespace {

// the arrays read by the kernel: C-contiguous, aligned (a misaligned view arrives as a copy)
using recforge::bindings::CArray;

template <typename Score>
py::tuple topk_rows_py(CArray<Score> scores, int64_t k,
                       std::optional<CArray<int64_t>> exclude_indptr,
                       std::optional<CArray<int32_t>> exclude_indices,
                       std::optional<CArray<uint8_t>> global_mask, int n_threads) {
    if (scores.ndim() != 2) throw std::invalid_argument("scores must be 2-D (n_rows, n_items)");
    if (k <= 0) throw std::invalid_argument("k must be >= 1, got " + std::to_string(k));
    const int64_t n_rows = scores.shape(0), n_items = scores.shape(1);
    if (exclude_indptr.has_value() != exclude_indices.has_value())
        throw std::invalid_argument("exclude_indptr and exclude_indices go together");

    const int64_t* indptr = nullptr;
    const int32_t* indices = nullptr;
    if (exclude_indptr) {
        if (exclude_indptr->ndim() != 1 || exclude_indptr->shape(0) != n_rows + 1)
            throw std::invalid_argument("exclude_indptr must have length n_rows + 1");
        indptr = exclude_indptr->data();
        indices = exclude_indices->data();
        const int64_t nnz = exclude_indices->shape(0);
        if (indptr[0] != 0 || indptr[n_rows] != nnz)
            throw std::invalid_argument(
                "exclude_indptr must start at 0 and end at len(exclude_indices)");
        for (int64_t r = 0; r < n_rows; ++r)
            if (indptr[r + 1] < indptr[r])
                throw std::invalid_argument("exclude_indptr must be non-decreasing");
        for (int64_t p = 0; p < nnz; ++p)
            if (indices[p] < 0 || indices[p] >= n_items)
                throw std::invalid_argument("exclude_indices out of range [0, n_items): " +
                                            std::to_string(indices[p]));
    }
    const uint8_t* mask = nullptr;
    if (global_mask) {
        if (global_mask->ndim() != 1 || global_mask->shape(0) != n_items)
            throw std::invalid_argument("global_mask must have length n_items");
        mask = global_mask->data();
    }

    py::array_t<int64_t> out_index({n_rows, k});
    py::array_t<Score> out_score({n_rows, k});
    int64_t n_nan;
    {
        py::gil_scoped_release release;
        n_nan = recforge::topk_rows<Score>(scores.data(), n_rows, n_items, k, indptr, indices, mask,
                                           out_index.mutable_data(), out_score.mutable_data(),
                                           n_threads);
    }
    return py::make_tuple(out_index, out_score, n_nan);
}

}  // namespace

void bind_topk(py::module_& m) {
    const char* doc =
        "topk_rows(scores, k, exclude_indptr, exclude_indices, global_mask, n_threads)\n\n"
        "Best k items per row of scores (n_rows, n_items), higher first, ties by lower index.\n"
        "Excluded, NaN and -inf items are skipped; rows are padded with -1 / -inf.\n"
        "Returns (indices int64 (n_rows, k), scores (n_rows, k), number of NaN scores).";
    m.def("topk_rows", &topk_rows_py<float>, py::arg("scores").noconvert(), py::arg("k"),
          py::arg("exclude_indptr").noconvert() = py::none(),
          py::arg("exclude_indices").noconvert() = py::none(),
          py::arg("global_mask").noconvert() = py::none(), py::arg("n_threads") = 1, doc);
    m.def("topk_rows", &topk_rows_py<double>, py::arg("scores").noconvert(), py::arg("k"),
          py::arg("exclude_indptr").noconvert() = py::none(),
          py::arg("exclude_indices").noconvert() = py::none(),
          py::arg("global_mask").noconvert() = py::none(), py::arg("n_threads") = 1, doc);
}
