// Bindings of the neighbourhood CF kernels (recforge/neighbors.hpp). Private: the Python wrappers
// in recforge.kernels.neighbors validate the CSR arrays; here only the sizes the kernels index by
// are checked, so that a wrong call raises instead of reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "recforge/neighbors.hpp"

namespace py = pybind11;

namespace {

// C-contiguous and aligned (a misaligned input arrives as an aligned copy, see arrays.hpp)
template <typename T>
using Array = recforge::bindings::CArray<T>;

template <typename T>
void require_length(const Array<T>& a, int64_t n, const char* name) {
    if (a.ndim() != 1 || a.shape(0) != n)
        throw std::invalid_argument(std::string(name) + " must be 1-D of length " +
                                    std::to_string(n) + ", got " +
                                    std::to_string(a.ndim() == 1 ? a.shape(0) : -1));
}

template <typename T>
void require_at_least(const Array<T>& a, int64_t n, const char* name) {
    if (a.ndim() != 1 || a.shape(0) < n)
        throw std::invalid_argument(std::string(name) +
                                    " must be 1-D of length >= " + std::to_string(n));
}

// A CSR of n_rows rows over the index array `indices` (indptr ends at len(indices)).
void require_csr(const Array<int64_t>& indptr, const Array<int32_t>& indices, const char* name) {
    if (indptr.ndim() != 1 || indptr.shape(0) < 1)
        throw std::invalid_argument(std::string(name) + "_indptr must be 1-D, non-empty");
    const int64_t n_rows = indptr.shape(0) - 1;
    if (indices.ndim() != 1 || indptr.data()[0] != 0 || indptr.data()[n_rows] != indices.shape(0))
        throw std::invalid_argument(std::string(name) + "_indptr must run from 0 to len(indices)");
}

void require_range(int64_t start, int64_t stop, int64_t n_rows) {
    if (start < 0 || stop < start || stop > n_rows)
        throw std::invalid_argument("need 0 <= row_start <= row_stop <= n_rows");
}

int64_t rows_of(const Array<int64_t>& indptr) { return indptr.shape(0) - 1; }

void cooccurrence_rows_py(Array<int64_t> a_indptr, Array<int32_t> a_indices,
                          Array<int64_t> b_indptr, Array<int32_t> b_indices, Array<double> penalty,
                          Array<double> norm, int64_t k, int64_t row_start, int64_t row_stop,
                          int n_threads, Array<int32_t> out_idx, Array<float> out_val,
                          Array<int64_t> counts) {
    require_csr(a_indptr, a_indices, "a");
    require_csr(b_indptr, b_indices, "b");
    const int64_t n_rows = rows_of(a_indptr);
    if (k < 1) throw std::invalid_argument("n_neighbors must be >= 1");
    require_length(penalty, rows_of(b_indptr), "penalty");
    require_length(norm, n_rows, "norm");
    require_length(out_idx, n_rows * k, "out_idx");
    require_length(out_val, n_rows * k, "out_val");
    require_length(counts, n_rows, "counts");
    require_range(row_start, row_stop, n_rows);
    py::gil_scoped_release release;
    recforge::neighbors::cooccurrence_rows(a_indptr.data(), a_indices.data(), b_indptr.data(),
                                           b_indices.data(), penalty.data(), norm.data(), n_rows, k,
                                           row_start, row_stop, n_threads, out_idx.mutable_data(),
                                           out_val.mutable_data(), counts.mutable_data());
}

void cooccurrence_pairs_py(Array<int64_t> a_indptr, Array<int32_t> a_indices,
                           Array<int64_t> b_indptr, Array<int32_t> b_indices, Array<double> penalty,
                           Array<double> norm, int64_t k, int64_t row_start, int64_t row_stop,
                           int n_threads, Array<float> heap_val, Array<int32_t> heap_idx,
                           Array<int64_t> heap_cnt, Array<float> heap_min) {
    require_csr(a_indptr, a_indices, "a");
    require_csr(b_indptr, b_indices, "b");
    const int64_t n_rows = rows_of(a_indptr), n_mid = rows_of(b_indptr);
    if (k < 1) throw std::invalid_argument("n_neighbors must be >= 1");
    require_length(penalty, n_mid, "penalty");
    require_length(norm, n_rows, "norm");
    require_range(row_start, row_stop, n_rows);
    require_length(heap_cnt, n_rows, "heap_cnt");
    require_length(heap_min, n_rows, "heap_min");
    require_length(heap_val, n_rows * k, "heap_val");
    require_length(heap_idx, n_rows * k, "heap_idx");
    for (int64_t a = 0; a < n_rows; ++a)
        if (heap_cnt.data()[a] < 0 || heap_cnt.data()[a] > k)
            throw std::invalid_argument("heap_cnt must lie in [0, k]");
    py::gil_scoped_release release;
    recforge::neighbors::cooccurrence_pairs(
        a_indptr.data(), a_indices.data(), b_indptr.data(), b_indices.data(), penalty.data(),
        norm.data(), n_rows, n_mid, k, row_start, row_stop, n_threads, heap_val.mutable_data(),
        heap_idx.mutable_data(), heap_cnt.mutable_data(), heap_min.mutable_data());
}

void merge_heaps_py(Array<float> heap_val, Array<int32_t> heap_idx, Array<int64_t> heap_cnt,
                    int64_t n_rows, int64_t k, int n_threads, Array<int32_t> out_idx,
                    Array<float> out_val, Array<int64_t> counts) {
    if (n_rows < 0 || k < 1) throw std::invalid_argument("need n_rows >= 0 and k >= 1");
    require_length(heap_cnt, n_rows, "heap_cnt");
    require_length(heap_val, n_rows * k, "heap_val");
    require_length(heap_idx, n_rows * k, "heap_idx");
    require_length(out_idx, n_rows * k, "out_idx");
    require_length(out_val, n_rows * k, "out_val");
    require_length(counts, n_rows, "counts");
    for (int64_t a = 0; a < n_rows; ++a)
        if (heap_cnt.data()[a] < 0 || heap_cnt.data()[a] > k)
            throw std::invalid_argument("heap_cnt must lie in [0, k]");
    py::gil_scoped_release release;
    recforge::neighbors::merge_heaps(heap_val.mutable_data(), heap_idx.mutable_data(),
                                     heap_cnt.data(), n_rows, k, n_threads, out_idx.mutable_data(),
                                     out_val.mutable_data(), counts.mutable_data());
}

void cooccurrence_counts_py(Array<int64_t> a_indptr, Array<int32_t> a_indices,
                            Array<int64_t> b_indptr, Array<int32_t> b_indices, int64_t row_start,
                            int64_t row_stop, int n_threads, Array<int64_t> counts) {
    require_csr(a_indptr, a_indices, "a");
    require_csr(b_indptr, b_indices, "b");
    const int64_t n_rows = rows_of(a_indptr);
    require_range(row_start, row_stop, n_rows);
    require_length(counts, row_stop - row_start, "counts");
    py::gil_scoped_release release;
    recforge::neighbors::cooccurrence_counts(a_indptr.data(), a_indices.data(), b_indptr.data(),
                                             b_indices.data(), n_rows, row_start, row_stop,
                                             n_threads, counts.mutable_data());
}

void cooccurrence_fill_py(Array<int64_t> a_indptr, Array<int32_t> a_indices,
                          Array<int64_t> b_indptr, Array<int32_t> b_indices, Array<double> penalty,
                          int64_t row_start, int64_t row_stop, int n_threads, Array<int64_t> indptr,
                          Array<int32_t> out_indices, Array<double> out_data) {
    require_csr(a_indptr, a_indices, "a");
    require_csr(b_indptr, b_indices, "b");
    const int64_t n_rows = rows_of(a_indptr);
    require_length(penalty, rows_of(b_indptr), "penalty");
    require_range(row_start, row_stop, n_rows);
    require_length(indptr, row_stop - row_start + 1, "indptr");
    require_length(out_indices, indptr.data()[row_stop - row_start], "out_indices");
    require_length(out_data, indptr.data()[row_stop - row_start], "out_data");
    py::gil_scoped_release release;
    recforge::neighbors::cooccurrence_fill(a_indptr.data(), a_indices.data(), b_indptr.data(),
                                           b_indices.data(), penalty.data(), n_rows, row_start,
                                           row_stop, n_threads, indptr.data(),
                                           out_indices.mutable_data(), out_data.mutable_data());
}

void topk_csr_rows_py(Array<int64_t> indptr, Array<int32_t> indices, Array<double> data,
                      int64_t row_start, Array<double> norm, int64_t k, int n_threads,
                      Array<int32_t> out_idx, Array<float> out_val, Array<int64_t> counts) {
    require_csr(indptr, indices, "");
    const int64_t n_out = rows_of(indptr);
    if (k < 1) throw std::invalid_argument("n_neighbors must be >= 1");
    require_length(data, indices.shape(0), "data");
    if (row_start < 0 || row_start + n_out > norm.shape(0))
        throw std::invalid_argument("rows row_start .. row_start + n_rows must lie within norm");
    require_length(out_idx, n_out * k, "out_idx");
    require_length(out_val, n_out * k, "out_val");
    require_length(counts, n_out, "counts");
    py::gil_scoped_release release;
    recforge::neighbors::topk_csr_rows(indptr.data(), indices.data(), data.data(), n_out, row_start,
                                       norm.data(), k, n_threads, out_idx.mutable_data(),
                                       out_val.mutable_data(), counts.mutable_data());
}

void check_two_hop(const Array<int64_t>& rows, const Array<int64_t>& q_indptr,
                   const Array<int32_t>& q_indices, const Array<float>& q_data,
                   const Array<int64_t>& n_indptr, const Array<int32_t>& n_indices,
                   const Array<float>& n_data) {
    require_csr(q_indptr, q_indices, "q");
    require_csr(n_indptr, n_indices, "n");
    require_length(q_data, q_indices.shape(0), "q_data");
    require_length(n_data, n_indices.shape(0), "n_data");
    if (rows.ndim() != 1) throw std::invalid_argument("rows must be 1-D");
    const int64_t n_queries = rows_of(q_indptr), n_mid = rows_of(n_indptr);
    const int64_t* qp = q_indptr.data();
    const int64_t* np_ = n_indptr.data();
    // Only the rows asked for and the rows of N they reach (a request's few entries, not all of
    // Q or N); N's column indices are checked where N is built (the model's fit or load).
    for (int64_t r = 0; r < rows.shape(0); ++r) {
        const int64_t row = rows.data()[r];
        if (row < 0 || row >= n_queries)
            throw std::invalid_argument("rows out of range [0, n_queries)");
        if (qp[row] < 0 || qp[row] > qp[row + 1] || qp[row + 1] > q_indices.shape(0))
            throw std::invalid_argument("q_indptr must be non-decreasing");
        for (int64_t p = qp[row]; p < qp[row + 1]; ++p) {
            const int32_t m = q_indices.data()[p];
            if (m < 0 || m >= n_mid)
                throw std::invalid_argument("q_indices out of range [0, len(n_indptr) - 1)");
            if (np_[m] < 0 || np_[m] > np_[m + 1] || np_[m + 1] > n_indices.shape(0))
                throw std::invalid_argument("n_indptr must be non-decreasing");
        }
    }
}

py::array_t<float> two_hop_scores_py(Array<int64_t> rows, Array<int64_t> q_indptr,
                                     Array<int32_t> q_indices, Array<float> q_data,
                                     Array<int64_t> n_indptr, Array<int32_t> n_indices,
                                     Array<float> n_data, int64_t n_items, int n_threads) {
    check_two_hop(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data);
    const int64_t n_out = rows.shape(0);
    py::array_t<float> out({n_out, n_items});
    {
        py::gil_scoped_release release;
        recforge::neighbors::two_hop_scores(rows.data(), n_out, q_indptr.data(), q_indices.data(),
                                            q_data.data(), n_indptr.data(), n_indices.data(),
                                            n_data.data(), n_items, n_threads, out.mutable_data());
    }
    return out;
}

py::tuple two_hop_topk_py(Array<int64_t> rows, Array<int64_t> q_indptr, Array<int32_t> q_indices,
                          Array<float> q_data, Array<int64_t> n_indptr, Array<int32_t> n_indices,
                          Array<float> n_data, int64_t n_items, Array<int64_t> ex_indptr,
                          Array<int32_t> ex_indices, Array<uint8_t> mask, int64_t k,
                          int n_threads) {
    check_two_hop(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data);
    if (k < 1) throw std::invalid_argument("k must be >= 1");
    const int64_t n_out = rows.shape(0);
    require_length(ex_indptr, n_out + 1, "ex_indptr");
    require_csr(ex_indptr, ex_indices, "ex");
    for (int64_t r = 0; r < n_out; ++r)
        if (ex_indptr.data()[r] > ex_indptr.data()[r + 1])
            throw std::invalid_argument("ex_indptr must be non-decreasing");
    for (int64_t p = 0; p < ex_indices.shape(0); ++p)
        if (ex_indices.data()[p] < 0 || ex_indices.data()[p] >= n_items)
            throw std::invalid_argument("ex_indices out of range [0, n_items)");
    require_length(mask, n_items, "mask");
    py::array_t<int64_t> out_idx({n_out, k});
    py::array_t<float> out_val({n_out, k});
    {
        py::gil_scoped_release release;
        std::fill_n(out_idx.mutable_data(), n_out * k, int64_t{-1});
        std::fill_n(out_val.mutable_data(), n_out * k, -std::numeric_limits<float>::infinity());
        recforge::neighbors::two_hop_topk(
            rows.data(), n_out, q_indptr.data(), q_indices.data(), q_data.data(), n_indptr.data(),
            n_indices.data(), n_data.data(), n_items, ex_indptr.data(), ex_indices.data(),
            mask.data(), k, n_threads, out_idx.mutable_data(), out_val.mutable_data());
    }
    return py::make_tuple(out_idx, out_val);
}

}  // namespace

void bind_neighbors(py::module_& m) {
    m.def("neighbors_cooccurrence_rows", &cooccurrence_rows_py, py::arg("a_indptr").noconvert(),
          py::arg("a_indices").noconvert(), py::arg("b_indptr").noconvert(),
          py::arg("b_indices").noconvert(), py::arg("penalty").noconvert(),
          py::arg("norm").noconvert(), py::arg("k"), py::arg("row_start"), py::arg("row_stop"),
          py::arg("n_threads"), py::arg("out_idx").noconvert(), py::arg("out_val").noconvert(),
          py::arg("counts").noconvert(),
          "Rows [row_start, row_stop) of the penalised co-occurrence cosine top-k, row by row, "
          "into out_idx int32 / out_val float32 (n_rows * k) and counts int64 (n_rows,).");
    m.def("neighbors_cooccurrence_pairs", &cooccurrence_pairs_py, py::arg("a_indptr").noconvert(),
          py::arg("a_indices").noconvert(), py::arg("b_indptr").noconvert(),
          py::arg("b_indices").noconvert(), py::arg("penalty").noconvert(),
          py::arg("norm").noconvert(), py::arg("k"), py::arg("row_start"), py::arg("row_stop"),
          py::arg("n_threads"), py::arg("heap_val").noconvert(), py::arg("heap_idx").noconvert(),
          py::arg("heap_cnt").noconvert(), py::arg("heap_min").noconvert(),
          "Pairs (a, b < a) of rows [row_start, row_stop) offered to the bounded heaps of both "
          "rows (one heap per row, shared by the threads).");
    m.def("neighbors_merge_heaps", &merge_heaps_py, py::arg("heap_val").noconvert(),
          py::arg("heap_idx").noconvert(), py::arg("heap_cnt").noconvert(), py::arg("n_rows"),
          py::arg("k"), py::arg("n_threads"), py::arg("out_idx").noconvert(),
          py::arg("out_val").noconvert(), py::arg("counts").noconvert(),
          "Write each row's heap best first (the heaps are consumed).");
    m.def("neighbors_cooccurrence_counts", &cooccurrence_counts_py, py::arg("a_indptr").noconvert(),
          py::arg("a_indices").noconvert(), py::arg("b_indptr").noconvert(),
          py::arg("b_indices").noconvert(), py::arg("row_start"), py::arg("row_stop"),
          py::arg("n_threads"), py::arg("counts").noconvert(),
          "Distinct co-occurring rows b != a of rows [row_start, row_stop).");
    m.def("neighbors_cooccurrence_fill", &cooccurrence_fill_py, py::arg("a_indptr").noconvert(),
          py::arg("a_indices").noconvert(), py::arg("b_indptr").noconvert(),
          py::arg("b_indices").noconvert(), py::arg("penalty").noconvert(), py::arg("row_start"),
          py::arg("row_stop"), py::arg("n_threads"), py::arg("indptr").noconvert(),
          py::arg("out_indices").noconvert(), py::arg("out_data").noconvert(),
          "Un-normalised co-occurrence numerators of rows [row_start, row_stop) into CSR arrays.");
    m.def("neighbors_topk_csr_rows", &topk_csr_rows_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("row_start"),
          py::arg("norm").noconvert(), py::arg("k"), py::arg("n_threads"),
          py::arg("out_idx").noconvert(), py::arg("out_val").noconvert(),
          py::arg("counts").noconvert(), "Top-k similarities of each row of summed numerators.");
    m.def("neighbors_two_hop_scores", &two_hop_scores_py, py::arg("rows").noconvert(),
          py::arg("q_indptr").noconvert(), py::arg("q_indices").noconvert(),
          py::arg("q_data").noconvert(), py::arg("n_indptr").noconvert(),
          py::arg("n_indices").noconvert(), py::arg("n_data").noconvert(), py::arg("n_items"),
          py::arg("n_threads"), "Dense float32 scores (Q @ N)[rows] (len(rows), n_items).");
    m.def("neighbors_two_hop_topk", &two_hop_topk_py, py::arg("rows").noconvert(),
          py::arg("q_indptr").noconvert(), py::arg("q_indices").noconvert(),
          py::arg("q_data").noconvert(), py::arg("n_indptr").noconvert(),
          py::arg("n_indices").noconvert(), py::arg("n_data").noconvert(), py::arg("n_items"),
          py::arg("ex_indptr").noconvert(), py::arg("ex_indices").noconvert(),
          py::arg("mask").noconvert(), py::arg("k"), py::arg("n_threads"),
          "Top-k of (Q @ N)[rows] with exclusions and a mask, without a dense block: "
          "(indices int64 (len(rows), k), scores float32 (len(rows), k)).");
}
