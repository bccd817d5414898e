// Bindings of the neural rankers' forward pass (recforge/nn_forward.hpp): the logits of a row range
// in blocks on a thread team. BLAS is scipy's, handed over once as the PyCapsules of
// scipy.linalg.cython_blas (nn_use_blas). Every structural property the kernel relies on (array
// shapes, the layer sizes, each code a row of its column's table inside emb, the wide part's
// indices inside wide_w) is checked here, before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "arrays.hpp"
#include "recforge/nn_forward.hpp"
#include "team_chunks.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F32, F64, I32, I64, require, visit_dtype
namespace N = recforge::nn;

// The BLAS routines, set once per process by nn_use_blas (kernels running meanwhile keep a copy).
std::atomic<const N::Blas*>& blas_slot() {
    static std::atomic<const N::Blas*> blas{nullptr};
    return blas;
}

template <class Fn>
Fn capsule_function(const py::dict& capsules, const char* name) {
    require(capsules.contains(name), "capsules must hold sgemm, sgemv and sdot");
    auto fn = reinterpret_cast<Fn>(capsules[name].cast<py::capsule>().get_pointer());
    require(fn != nullptr, "a BLAS capsule holds a null pointer");
    return fn;
}

void use_blas(const py::dict& capsules) {
    static N::Blas blas;
    if (blas_slot().load() != nullptr) return;
    blas.gemm = capsule_function<decltype(blas.gemm)>(capsules, "sgemm");
    blas.gemv = capsule_function<decltype(blas.gemv)>(capsules, "sgemv");
    blas.dot = capsule_function<decltype(blas.dot)>(capsules, "sdot");
    blas_slot().store(&blas);
}

const N::Blas& blas_or_throw() {
    const N::Blas* blas = blas_slot().load();
    if (blas == nullptr)
        throw std::runtime_error(
            "no BLAS: call nn_use_blas(scipy.linalg.cython_blas.__pyx_capi__) first");
    return *blas;
}

// The dense part's arrays, checked against each other; codes of rows [lo, hi) inside emb.
N::Inputs check_inputs(const I32& codes, const F32& dense, int64_t lo, int64_t hi,
                       const I64& col_flat_off, const I64& col_row_off, const I64& col_dim,
                       const I64& col_in_off, const F32& emb, const N::Layers& net) {
    require(codes.ndim() == 2 && dense.ndim() == 2 && codes.shape(0) == dense.shape(0),
            "codes (n, n_cat) and dense (n, n_num) must be 2-D with the same rows");
    const int64_t n = codes.shape(0), n_cat = codes.shape(1), n_num = dense.shape(1);
    require(0 <= lo && lo <= hi && hi <= n, "0 <= lo <= hi <= n_rows must hold");
    require(col_flat_off.ndim() == 1 && col_flat_off.shape(0) == n_cat && col_dim.ndim() == 1 &&
                col_dim.shape(0) == n_cat && col_in_off.ndim() == 1 &&
                col_in_off.shape(0) == n_cat,
            "col_flat_off, col_dim and col_in_off must be int64 arrays of length n_cat");
    require(col_row_off.ndim() == 1 && col_row_off.shape(0) == n_cat + 1,
            "col_row_off must be an int64 array of length n_cat + 1");
    require(emb.ndim() == 1, "emb must be 1-D");
    const int64_t d0 = net.d0(), n_emb = emb.shape(0);
    const int64_t *flat = col_flat_off.data(), *dim = col_dim.data(), *in_off = col_in_off.data();
    const int64_t* row_off = col_row_off.data();
    int64_t embedded = 0;
    for (int64_t c = 0; c < n_cat; ++c) {
        require(dim[c] >= 1 && flat[c] >= 0 && in_off[c] >= 0 && in_off[c] + dim[c] <= d0 - n_num,
                "each column's embedding must sit inside x0 before the numeric inputs");
        const int64_t card = row_off[c + 1] - row_off[c];
        require(card >= 0 && flat[c] + card * dim[c] <= n_emb,
                "each column's table (col_row_off[c + 1] - col_row_off[c] rows) must sit in emb");
        embedded += dim[c];
    }
    require(embedded + n_num == d0, "sizes[0] must equal sum(col_dim) + n_num");
    const int32_t* cd = codes.data();
    for (int64_t i = lo; i < hi; ++i)
        for (int64_t c = 0; c < n_cat; ++c) {
            const int64_t k = cd[i * n_cat + c];
            require(k >= 0 && k < row_off[c + 1] - row_off[c],
                    "codes must select rows of their column's table");
        }
    return {cd, n_cat, dense.data(), n_num, flat, dim, in_off, emb.data()};
}

N::Layers check_layers(const I64& sizes, const F32& params) {
    require(sizes.ndim() == 1 && sizes.shape(0) >= 2,
            "sizes must be an int64 array [d0, h1, ..., 1] of length >= 2");
    const int n_layers = static_cast<int>(sizes.shape(0) - 1);
    const int64_t* s = sizes.data();
    int64_t n_params = 0;
    for (int l = 0; l <= n_layers; ++l)
        require(s[l] >= 1 && s[l] <= INT32_MAX, "sizes must be positive (and fit in int32)");
    require(s[n_layers] == 1, "the last layer must have size 1 (the logit)");
    for (int l = 0; l < n_layers; ++l) n_params += s[l] * s[l + 1] + s[l + 1];
    require(params.ndim() == 1 && params.shape(0) == n_params,
            "params must be a float32 array of sum(sizes[l] * sizes[l+1] + sizes[l+1]) values");
    return {s, n_layers, params.data()};
}

void predict_logits_py(const I32& codes, const F32& dense, int64_t lo, int64_t hi,
                       const I64& col_flat_off, const I64& col_row_off, const I64& col_dim,
                       const I64& col_in_off, const F32& emb, const I64& sizes,
                       const F32& params, bool has_wide,
                       const py::array& w_indptr, const I32& w_indices, const F32& w_data,
                       const F32& wide_w, int64_t chunk, F64 out, int n_threads) {
    const N::Blas& blas = blas_or_throw();
    const N::Layers net = check_layers(sizes, params);
    const N::Inputs in =
        check_inputs(codes, dense, lo, hi, col_flat_off, col_row_off, col_dim, col_in_off, emb,
                     net);
    require(chunk >= 1 && chunk <= INT32_MAX, "chunk must be >= 1");
    require(out.ndim() == 1 && out.shape(0) >= hi, "out must be a float64 array of >= hi values");
    require(wide_w.ndim() == 1 && w_indices.ndim() == 1 && w_data.ndim() == 1 &&
                w_data.shape(0) == w_indices.shape(0),
            "wide_w, w_indices and w_data must be 1-D, w_data as long as w_indices");
    double* o = out.mutable_data();
    visit_dtype<int32_t, int64_t>(w_indptr, "w_indptr", "int32 or int64", [&](auto ip) {
        using Indptr = std::remove_const_t<std::remove_pointer_t<decltype(ip)>>;
        const N::Wide<Indptr> wide{has_wide, ip, w_indices.data(), w_data.data(), wide_w.data()};
        if (has_wide) {
            require(w_indptr.ndim() == 1 && w_indptr.shape(0) > hi,
                    "w_indptr must hold n_rows + 1 offsets");
            require(ip[lo] >= 0 && ip[hi] <= w_indices.shape(0),
                    "w_indptr must point inside w_indices");
            for (int64_t i = lo; i < hi; ++i) require(ip[i] <= ip[i + 1], "w_indptr must not decrease");
            require_indices(w_indices.data() + ip[lo], ip[hi] - ip[lo], wide_w.shape(0),
                            "w_indices must be columns of wide_w");
        }
        const int64_t n_blocks = (hi - lo + chunk - 1) / chunk;
        const int threads = team_threads(n_blocks, n_threads);
        std::vector<std::vector<float>> x0(threads), acts(threads);
        for (int t = 0; t < threads; ++t) {
            x0[t].resize(static_cast<size_t>(chunk * net.d0()));
            acts[t].resize(static_cast<size_t>(chunk * net.acts_per_row()));
        }
        run_chunks_on_team(n_blocks, threads, [&](int64_t c, int tid) {
            const int64_t s0 = lo + c * chunk;
            N::predict_rows(blas, in, net, wide, s0, std::min(hi, s0 + chunk), x0[tid].data(),
                            acts[tid].data(), o);
        });
    });
}

}  // namespace

void bind_nn(py::module_& m) {
    m.def("nn_use_blas", &use_blas, py::arg("capsules"),
          "Hand the neural kernels the BLAS routines to call: a dict holding the PyCapsules "
          "'sgemm', 'sgemv' and 'sdot' (scipy.linalg.cython_blas.__pyx_capi__); the first call "
          "of a process sets them, later calls change nothing.");
    m.def("nn_predict_logits", &predict_logits_py, py::arg("codes").noconvert(),
          py::arg("dense").noconvert(), py::arg("lo"), py::arg("hi"),
          py::arg("col_flat_off").noconvert(), py::arg("col_row_off").noconvert(),
          py::arg("col_dim").noconvert(),
          py::arg("col_in_off").noconvert(), py::arg("emb").noconvert(),
          py::arg("sizes").noconvert(), py::arg("params").noconvert(), py::arg("has_wide"),
          py::arg("w_indptr").noconvert(), py::arg("w_indices").noconvert(),
          py::arg("w_data").noconvert(), py::arg("wide_w").noconvert(), py::arg("chunk"),
          py::arg("out").noconvert(), py::arg("n_threads") = 1,
          "out[lo:hi] = the logits (float64) of rows lo..hi-1 of a DNN / Wide&Deep model, in "
          "blocks of `chunk` rows on up to n_threads threads (the same values on any; BLAS must "
          "run one thread per call: see recforge._threads.limit_blas_threads).");
}
