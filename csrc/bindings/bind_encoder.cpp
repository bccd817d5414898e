// Bindings of the FeatureEncoder's kernels (recforge/encoder.hpp). Raw columns come in any
// native integer or float dtype and any strides (a DataFrame column, a column of a 2-D array);
// the outputs are the caller's C-contiguous, aligned, writeable int32/int64 and float32 arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "recforge/encoder.hpp"

namespace py = pybind11;
using recforge::bindings::F32;
using recforge::bindings::F64;
using recforge::bindings::has_dtype;
using recforge::bindings::I64;
using recforge::bindings::require;
using recforge::bindings::visit_dtype_tag;

namespace {

// f(T{}) for the element type T of the raw values x: float32/64, int8..64, uint8..64 (native
// byte order); TypeError naming `name` otherwise.
template <class F>
decltype(auto) visit_numeric(const py::array& x, const char* name, F&& f) {
    return visit_dtype_tag<float, double, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                           uint32_t, uint64_t>(
        x, name, "float32/float64/int8..int64/uint8..uint64 (native byte order)",
        std::forward<F>(f));
}

// An output array: C-contiguous, aligned and writeable (ValueError naming `name` otherwise).
void require_output(const py::array& a, const char* name) {
    constexpr int kNeeded = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                            py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                            py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    if ((a.flags() & kNeeded) != kNeeded)
        throw std::invalid_argument(std::string(name) +
                                    " must be a C-contiguous, aligned, writeable array");
}

// f(Index{}) for the index dtype of `a` (int32 or int64, an output array); TypeError otherwise.
template <class F>
decltype(auto) visit_index(const py::array& a, const char* name, F&& f) {
    require_output(a, name);
    return visit_dtype_tag<int32_t, int64_t>(a, name, "int32 or int64", std::forward<F>(f));
}

template <class Index>
Index* index_data(py::array& a, const char* name) {
    require(has_dtype<Index>(a), (std::string(name) + " must have the dtype of cols").c_str());
    require_output(a, name);
    return static_cast<Index*>(a.mutable_data());
}

// edges[lo:hi] ascending (which also rules out NaN).
void require_sorted(const double* edges, int64_t lo, int64_t hi) {
    for (int64_t e = lo + 1; e < hi; ++e)
        require(edges[e - 1] <= edges[e], "edges must be sorted ascending, without NaN");
}

void require_length(const py::array& a, int64_t n, const char* what) {
    require(a.ndim() == 1 && a.shape(0) == n, what);
}

void bucketize_py(const py::array& x, const F64& edges, I64& out) {
    require(x.ndim() == 1, "x must be 1-D");
    require(edges.ndim() == 1, "edges must be 1-D");
    const int64_t n = x.shape(0), m = edges.shape(0);
    require_length(out, n, "out must be 1-D of the length of x");
    require_output(out, "out");
    const double* e = edges.data();
    require_sorted(e, 0, m);
    int64_t* o = out.mutable_data();
    const char* px = static_cast<const char*>(x.data());
    const int64_t stride = x.strides(0);
    visit_numeric(x, "x", [&](auto tag) {
        using T = decltype(tag);
        py::gil_scoped_release release;
        recforge::encoder::bucketize<T>(px, n, stride, e, m, o);
    });
}

int64_t numeric_blocks_py(const py::array& x, const F64& edges, double mean, double scale,
                          bool with_scaled, int64_t off_scaled, py::array& cols_scaled,
                          F32& vals_scaled, int64_t off_bins, py::array& cols_bins) {
    require(x.ndim() == 1, "x must be 1-D");
    require(edges.ndim() == 1, "edges must be 1-D");
    const int64_t n = x.shape(0), m = edges.shape(0);
    require_length(cols_bins, n, "cols_bins must be 1-D of the length of x");
    if (with_scaled) {
        require_length(cols_scaled, n, "cols_scaled must be 1-D of the length of x");
        require_length(vals_scaled, n, "vals_scaled must be 1-D of the length of x");
        require_output(vals_scaled, "vals_scaled");
    }
    const double* e = edges.data();
    require_sorted(e, 0, m);
    const int64_t col_offset = 0, edge_ptr[2] = {0, m};
    const char* px = static_cast<const char*>(x.data());
    const int64_t stride = x.strides(0);
    int64_t n_inf = 0;
    visit_index(cols_bins, "cols_bins", [&](auto index_tag) {
        using Index = decltype(index_tag);
        Index* bins = static_cast<Index*>(cols_bins.mutable_data());
        Index* scaled = with_scaled ? index_data<Index>(cols_scaled, "cols_scaled") : nullptr;
        float* vals = with_scaled ? vals_scaled.mutable_data() : nullptr;
        visit_numeric(x, "x", [&](auto tag) {
            using T = decltype(tag);
            py::gil_scoped_release release;
            recforge::encoder::numeric_blocks<T, Index>(px, n, stride, 1, &col_offset, e, edge_ptr,
                                                        &mean, &scale, &bins, &off_bins, &scaled,
                                                        &off_scaled, &vals, &n_inf);
        });
    });
    return n_inf;
}

void numeric_blocks_2d_py(const py::array& X, const I64& col_idx, const F64& edges,
                          const I64& edge_ptr, const F64& mean, const F64& scale,
                          const I64& scaled_row, const I64& val_row, const I64& off_scaled,
                          const I64& bins_row, const I64& off_bins, py::array& cols, F32& vals,
                          I64& n_inf) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), p = X.shape(1), k = col_idx.shape(0);
    require(col_idx.ndim() == 1, "col_idx must be 1-D");
    require(edges.ndim() == 1, "edges must be 1-D");
    require_length(edge_ptr, k + 1, "edge_ptr must be 1-D of length len(col_idx) + 1");
    for (const py::array* a : std::initializer_list<const py::array*>{
             &mean, &scale, &scaled_row, &val_row, &off_scaled, &bins_row, &off_bins, &n_inf})
        require_length(*a, k,
                       "mean, scale, scaled_row, val_row, off_scaled, bins_row, off_bins and "
                       "n_inf must be 1-D of length len(col_idx)");
    require(cols.ndim() == 2 && cols.shape(1) == n, "cols must be 2-D of shape (n_blocks, len(X))");
    require(vals.ndim() == 2 && vals.shape(1) == n, "vals must be 2-D of shape (n_valued, len(X))");
    require_output(n_inf, "n_inf");
    if (vals.shape(0) > 0) require_output(vals, "vals");
    const int64_t n_blocks = cols.shape(0), n_valued = vals.shape(0);
    const int64_t m = edges.shape(0);
    const int64_t *ci = col_idx.data(), *ep = edge_ptr.data(), *sr = scaled_row.data(),
                  *vr = val_row.data(), *br = bins_row.data();
    const double* e = edges.data();
    std::vector<int64_t> col_offset(k);
    for (int64_t t = 0; t < k; ++t) {
        require(ci[t] >= 0 && ci[t] < p, "col_idx must be in [0, X.shape[1])");
        require(ep[t] >= 0 && ep[t] <= ep[t + 1] && ep[t + 1] <= m,
                "edge_ptr must be non-decreasing within [0, len(edges)]");
        require_sorted(e, ep[t], ep[t + 1]);
        require(br[t] >= 0 && br[t] < n_blocks, "bins_row must be in [0, n_blocks)");
        require(sr[t] >= -1 && sr[t] < n_blocks, "scaled_row must be in [-1, n_blocks)");
        require(sr[t] < 0 || (vr[t] >= 0 && vr[t] < n_valued),
                "val_row must be in [0, n_valued) where scaled_row >= 0");
        col_offset[t] = ci[t] * X.strides(1);
    }
    float* pv = n_valued > 0 ? vals.mutable_data() : nullptr;
    const char* px = static_cast<const char*>(X.data());
    const int64_t row_stride = X.strides(0);
    visit_index(cols, "cols", [&](auto index_tag) {
        using Index = decltype(index_tag);
        Index* pc = static_cast<Index*>(cols.mutable_data());
        std::vector<Index*> bins_out(k), scaled_out(k);
        std::vector<float*> vals_out(k);
        for (int64_t t = 0; t < k; ++t) {
            bins_out[t] = pc + br[t] * n;
            scaled_out[t] = sr[t] >= 0 ? pc + sr[t] * n : nullptr;
            vals_out[t] = sr[t] >= 0 ? pv + vr[t] * n : nullptr;
        }
        visit_numeric(X, "X", [&](auto tag) {
            using T = decltype(tag);
            py::gil_scoped_release release;
            recforge::encoder::numeric_blocks<T, Index>(
                px, n, row_stride, k, col_offset.data(), e, ep, mean.data(), scale.data(),
                bins_out.data(), off_bins.data(), scaled_out.data(), off_scaled.data(),
                vals_out.data(), n_inf.mutable_data());
        });
    });
}

int64_t assemble_csr_py(py::array& cols, const F32& vals, const I64& val_row, py::array& indptr,
                        py::array& indices, F32& data) {
    require(cols.ndim() == 2, "cols must be 2-D (n_blocks, n)");
    const int64_t n_blocks = cols.shape(0), n = cols.shape(1);
    require(vals.ndim() == 2, "vals must be 2-D (n_valued, n)");
    const int64_t n_valued = vals.shape(0);
    require(n_valued == 0 || vals.shape(1) == n, "vals must be 2-D of shape (n_valued, n)");
    require_length(val_row, n_blocks, "val_row must be 1-D of length n_blocks");
    const int64_t* vr = val_row.data();
    for (int64_t b = 0; b < n_blocks; ++b)
        require(vr[b] >= -1 && vr[b] < n_valued, "val_row must be in [-1, n_valued)");
    require_length(indptr, n + 1, "indptr must be 1-D of length n + 1");
    require(indices.ndim() == 1 && data.ndim() == 1, "indices and data must be 1-D");
    require_output(data, "data");
    const int64_t capacity = std::min<int64_t>(indices.shape(0), data.shape(0));
    const float* pv = vals.data();
    float* pd = data.mutable_data();
    int64_t nnz = 0;
    visit_index(cols, "cols", [&](auto index_tag) {
        using Index = decltype(index_tag);
        const Index* pc = static_cast<const Index*>(cols.data());
        Index* pp = index_data<Index>(indptr, "indptr");
        Index* pi = index_data<Index>(indices, "indices");
        py::gil_scoped_release release;
        nnz = recforge::encoder::assemble_csr<Index>(pc, pv, vr, n_blocks, n, pp, pi, pd, capacity);
    });
    require(nnz >= 0, "indices/data too short for the non-zeros, or nnz beyond the index dtype");
    return nnz;
}

}  // namespace

void bind_encoder(py::module_& m) {
    m.def("encoder_bucketize", &bucketize_py, py::arg("x").noconvert(),
          py::arg("edges").noconvert(), py::arg("out").noconvert(),
          "out[i] = 0 if x[i] is NaN else 1 + #{edges <= x[i]}; x (n,) any native int/float "
          "dtype and stride, edges (m,) float64 sorted, out (n,) int64 (in place).");
    m.def("encoder_numeric_blocks", &numeric_blocks_py, py::arg("x").noconvert(),
          py::arg("edges").noconvert(), py::arg("mean"), py::arg("scale"), py::arg("with_scaled"),
          py::arg("off_scaled"), py::arg("cols_scaled").noconvert(),
          py::arg("vals_scaled").noconvert(), py::arg("off_bins"), py::arg("cols_bins").noconvert(),
          "A numeric column's scaled and bucket blocks in one pass (in place); returns the "
          "number of infinite values.");
    m.def("encoder_numeric_blocks_2d", &numeric_blocks_2d_py, py::arg("X").noconvert(),
          py::arg("col_idx").noconvert(), py::arg("edges").noconvert(),
          py::arg("edge_ptr").noconvert(), py::arg("mean").noconvert(),
          py::arg("scale").noconvert(), py::arg("scaled_row").noconvert(),
          py::arg("val_row").noconvert(), py::arg("off_scaled").noconvert(),
          py::arg("bins_row").noconvert(), py::arg("off_bins").noconvert(),
          py::arg("cols").noconvert(), py::arg("vals").noconvert(), py::arg("n_inf").noconvert(),
          "encoder_numeric_blocks for k columns of a 2-D array in one pass over its rows (in "
          "place; n_inf (k,) counts infinite values).");
    m.def("encoder_assemble_csr", &assemble_csr_py, py::arg("cols").noconvert(),
          py::arg("vals").noconvert(), py::arg("val_row").noconvert(),
          py::arg("indptr").noconvert(), py::arg("indices").noconvert(),
          py::arg("data").noconvert(),
          "Row-major CSR from per-block columns, dropping zero values (in place); returns nnz.");
}
