// Bindings of the logistic-regression kernels (recforge/linear.hpp): loss + gradient and margins
// of a row range, dense (float32 / float64) or CSR (indptr int32 / int64, indices uint16 / int32 /
// int64, data float32 / float64). The arrays are used in place (no conversion; one at a misaligned
// address is read from an aligned copy, see arrays.hpp); the row range and the array lengths are
// checked here, the index values by the Python wrappers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "recforge/linear.hpp"
#include "recforge/parallel.hpp"
#include "recforge/takeover_chunks.hpp"
#include "team_chunks.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F64, require, visit_dtype
namespace L = recforge::linear;

constexpr const char* kFloats = "float32 or float64";
constexpr const char* kIndptr = "int32 or int64";
constexpr const char* kIndices = "uint16, int32 or int64";

// The arrays a call's kernels read (visit_dtype's `read`), for a call whose helpers may read them
// after it returns.
using ReadArrays = std::vector<py::object>;

// `read` (if given) gets the array f's pointer points into.
template <class F>
decltype(auto) visit_float(const py::array& a, const char* name, F&& f,
                           ReadArrays* read = nullptr) {
    py::object* slot = read != nullptr ? &read->emplace_back() : nullptr;
    return visit_dtype<float, double>(a, name, kFloats, std::forward<F>(f), slot);
}

// f(indptr, indices) typed; indptr of n_rows + 1 entries from 0 to at most len(indices). `read`
// (if given) gets the two arrays f's pointers point into.
template <class F>
decltype(auto) visit_csr(const py::array& indptr, const py::array& indices, F&& f,
                         ReadArrays* read = nullptr) {
    py::object *indptr_slot = nullptr, *indices_slot = nullptr;
    if (read != nullptr) {
        read->resize(read->size() + 2);  // (each slot is written before anything else is added)
        indptr_slot = &read->end()[-2];
        indices_slot = &read->end()[-1];
    }
    require(indptr.ndim() == 1 && indptr.shape(0) >= 1 && indices.ndim() == 1,
            "indptr and indices must be 1-D, indptr of length n_rows + 1 >= 1");
    return visit_dtype<int32_t, int64_t>(
        indptr, "indptr", kIndptr,
        [&](auto ip) {
            require(ip[0] == 0 && ip[indptr.shape(0) - 1] <= indices.shape(0) &&
                        ip[indptr.shape(0) - 1] >= 0,
                    "indptr must start at 0 and end at most at len(indices)");
            return visit_dtype<uint16_t, int32_t, int64_t>(
                indices, "indices", kIndices, [&](auto ix) { return f(ip, ix); }, indices_slot);
        },
        indptr_slot);
}

void check_vector(const F64& a, int64_t n, const char* msg) {
    require(a.ndim() == 1 && a.shape(0) == n, msg);
}

// y and sw of n_rows, w of n_features, 0 <= lo <= hi <= n_rows.
void check_rows(const F64& y, const F64& sw, const F64& w, int64_t n_rows, int64_t n_features,
                int64_t lo, int64_t hi) {
    check_vector(y, n_rows, "y must be a float64 array of length n_rows");
    check_vector(sw, n_rows, "sw must be a float64 array of length n_rows");
    check_vector(w, n_features, "w must be a float64 array of length n_features");
    require(0 <= lo && lo <= hi && hi <= n_rows, "the rows must satisfy 0 <= lo <= hi <= n_rows");
}

double* gradient_out(F64& g, int64_t n_features) {
    check_vector(g, n_features + 1, "g must be a float64 array of length n_features + 1");
    return g.mutable_data();
}

double loss_grad_dense_py(const py::array& X, const F64& y, const F64& sw, const F64& w, double b,
                          int64_t lo, int64_t hi, F64 g) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), d = X.shape(1);
    check_rows(y, sw, w, n, d, lo, hi);
    double* out = gradient_out(g, d);
    return visit_float(X, "X", [&](auto x) {
        py::gil_scoped_release release;
        return L::loss_grad_dense(x, d, y.data(), sw.data(), w.data(), b, lo, hi, out);
    });
}

double loss_grad_csr_py(const py::array& indptr, const py::array& indices, const py::array& data,
                        const F64& y, const F64& sw, const F64& w, double b, int64_t lo, int64_t hi,
                        F64 g) {
    require(data.ndim() == 1 && data.shape(0) == indices.shape(0),
            "data must be 1-D with the length of indices");
    const int64_t n = indptr.shape(0) - 1, d = g.shape(0) - 1;
    require(g.ndim() == 1 && d >= 0, "g must be 1-D of length n_features + 1");
    check_rows(y, sw, w, n, d, lo, hi);
    double* out = gradient_out(g, d);
    return visit_csr(indptr, indices, [&](auto ip, auto ix) {
        return visit_float(data, "data", [&](auto v) {
            py::gil_scoped_release release;
            return L::loss_grad_csr(ip, ix, v, d, y.data(), sw.data(), w.data(), b, lo, hi, out);
        });
    });
}

double loss_grad_pattern_py(const py::array& indptr, const py::array& indices, const F64& y,
                            const F64& sw, const F64& w, double b, int64_t lo, int64_t hi, F64 g) {
    const int64_t n = indptr.shape(0) - 1, d = g.shape(0) - 1;
    require(g.ndim() == 1 && d >= 0, "g must be 1-D of length n_features + 1");
    check_rows(y, sw, w, n, d, lo, hi);
    double* out = gradient_out(g, d);
    return visit_csr(indptr, indices, [&](auto ip, auto ix) {
        py::gil_scoped_release release;
        return L::loss_grad_pattern(ip, ix, d, y.data(), sw.data(), w.data(), b, lo, hi, out);
    });
}

// Calls of run_chunks_with_takeover whose helpers may still be reading their inputs, with the
// arrays they read (changed with the GIL held; never destroyed, so that no reference is released
// after the interpreter's end). A call's arrays are released once its helpers have left it; in a
// child after fork() at once (the helpers were not copied).
struct HeldInputs {
    std::shared_ptr<recforge::TakeoverCall> call;
    ReadArrays arrays;
    decltype(RECFORGE_GETPID()) pid;
    bool released() const { return pid != RECFORGE_GETPID() || call->helpers_inside() == 0; }
};

std::vector<HeldInputs>& held_inputs() {
    static auto* held = new std::vector<HeldInputs>();
    return *held;
}

void release_left_inputs() {
    auto& held = held_inputs();
    held.erase(
        std::remove_if(held.begin(), held.end(), [](const HeldInputs& h) { return h.released(); }),
        held.end());
}

// Waits until no helper reads the inputs of an earlier pass, and releases them (an L-BFGS fit's
// last step: its arrays are then the caller's to free).
void release_pass_inputs_py() {
    std::vector<std::shared_ptr<recforge::TakeoverCall>> calls;
    for (const HeldInputs& h : held_inputs())
        if (!h.released()) calls.push_back(h.call);
    {
        py::gil_scoped_release release;
        for (const auto& call : calls)
            while (call->helpers_inside() > 0)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    release_left_inputs();
}

// The row chunks of a whole loss + gradient pass: chunk c is rows [bounds[c], bounds[c + 1]),
// kernel(lo, hi, g) writes its gradient sums to g = partial row c and returns its loss sum, stored
// in losses[c] (run_chunks_with_takeover: each chunk's results are written once, by whoever
// computed it, so they do not depend on the threads). The kernel captures its inputs by value (a
// helper may run it after this returns); `read` holds the arrays it reads, kept until the call's
// helpers have left.
template <class Kernel>
void loss_grad_chunks(const I64& bounds, int64_t n_rows, int64_t d, F64& partial, F64& losses,
                      int n_threads, ReadArrays read, Kernel kernel) {
    require(bounds.ndim() == 1 && bounds.shape(0) >= 2,
            "bounds must be a 1-D int64 array of n_chunks + 1 >= 2 row boundaries");
    const int64_t n_chunks = bounds.shape(0) - 1;
    const int64_t* bd = bounds.data();
    require(bd[0] >= 0 && bd[n_chunks] <= n_rows,
            "bounds must run from >= 0 to <= n_rows, non-decreasing");
    for (int64_t c = 0; c < n_chunks; ++c)
        require(bd[c] <= bd[c + 1], "bounds must run from >= 0 to <= n_rows, non-decreasing");
    require(partial.ndim() == 2 && partial.shape(0) == n_chunks && partial.shape(1) == d + 1,
            "partial must be a float64 array of shape (n_chunks, n_features + 1)");
    check_vector(losses, n_chunks, "losses must be a float64 array of length n_chunks");
    const int threads = team_threads(n_chunks, n_threads);
    release_left_inputs();
    std::shared_ptr<recforge::TakeoverCall> call;
    {
        py::gil_scoped_release release;
        call = recforge::run_chunks_with_takeover(
            n_chunks, threads, d + 1, partial.mutable_data(), losses.mutable_data(),
            [bd, kernel](int64_t c, double* g) { return kernel(bd[c], bd[c + 1], g); });
    }
    if (call->helpers_inside() > 0) {
        read.push_back(bounds);
        held_inputs().push_back({std::move(call), std::move(read), RECFORGE_GETPID()});
    }
}

// The arrays y, sw and w of a pass (its kernels read them).
ReadArrays pass_vectors(const F64& y, const F64& sw, const F64& w) { return {y, sw, w}; }

void loss_grad_dense_chunks_py(const py::array& X, const F64& y, const F64& sw, const F64& w,
                               double b, const I64& bounds, F64 partial, F64 losses,
                               int n_threads) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t n = X.shape(0), d = X.shape(1);
    check_rows(y, sw, w, n, d, 0, n);
    ReadArrays read = pass_vectors(y, sw, w);
    const double *yp = y.data(), *swp = sw.data(), *wp = w.data();
    visit_float(
        X, "X",
        [&](auto x) {
            loss_grad_chunks(bounds, n, d, partial, losses, n_threads, std::move(read),
                             [=](int64_t lo, int64_t hi, double* g) {
                                 return L::loss_grad_dense(x, d, yp, swp, wp, b, lo, hi, g);
                             });
        },
        &read);
}

void loss_grad_csr_chunks_py(const py::array& indptr, const py::array& indices,
                             const py::array& data, const F64& y, const F64& sw, const F64& w,
                             double b, const I64& bounds, F64 partial, F64 losses, int n_threads) {
    require(data.ndim() == 1 && data.shape(0) == indices.shape(0),
            "data must be 1-D with the length of indices");
    require(w.ndim() == 1, "w must be a float64 array of length n_features");
    const int64_t n = indptr.shape(0) - 1, d = w.shape(0);
    check_rows(y, sw, w, n, d, 0, n);
    ReadArrays read = pass_vectors(y, sw, w);
    const double *yp = y.data(), *swp = sw.data(), *wp = w.data();
    visit_csr(
        indptr, indices,
        [&](auto ip, auto ix) {
            visit_float(
                data, "data",
                [&](auto v) {
                    loss_grad_chunks(bounds, n, d, partial, losses, n_threads, std::move(read),
                                     [=](int64_t lo, int64_t hi, double* g) {
                                         return L::loss_grad_csr(ip, ix, v, d, yp, swp, wp, b, lo,
                                                                 hi, g);
                                     });
                },
                &read);
        },
        &read);
}

void loss_grad_pattern_chunks_py(const py::array& indptr, const py::array& indices, const F64& y,
                                 const F64& sw, const F64& w, double b, const I64& bounds,
                                 F64 partial, F64 losses, int n_threads) {
    require(w.ndim() == 1, "w must be a float64 array of length n_features");
    const int64_t n = indptr.shape(0) - 1, d = w.shape(0);
    check_rows(y, sw, w, n, d, 0, n);
    ReadArrays read = pass_vectors(y, sw, w);
    const double *yp = y.data(), *swp = sw.data(), *wp = w.data();
    visit_csr(
        indptr, indices,
        [&](auto ip, auto ix) {
            loss_grad_chunks(bounds, n, d, partial, losses, n_threads, std::move(read),
                             [=](int64_t lo, int64_t hi, double* g) {
                                 return L::loss_grad_pattern(ip, ix, d, yp, swp, wp, b, lo, hi, g);
                             });
        },
        &read);
}

double* margins_out(F64& out, int64_t n_rows, int64_t lo, int64_t hi) {
    check_vector(out, n_rows, "out must be a float64 array of length n_rows");
    require(0 <= lo && lo <= hi && hi <= n_rows, "the rows must satisfy 0 <= lo <= hi <= n_rows");
    return out.mutable_data();
}

// rows(r0, r1) over [lo, hi) in chunks of kChunkRows (run_chunks_on_team); each row's margin is its
// own, so any split gives the same values.
template <class Rows>
void margins_in_chunks(int64_t lo, int64_t hi, int n_threads, Rows&& rows) {
    run_chunks_on_team((hi - lo + L::kChunkRows - 1) / L::kChunkRows, n_threads,
                       [&](int64_t c, int) {
                           const int64_t r0 = lo + c * L::kChunkRows;
                           rows(r0, std::min(hi, r0 + L::kChunkRows));
                       });
}

void margins_dense_py(const py::array& X, const F64& w, double b, int64_t lo, int64_t hi, F64 out,
                      int n_threads) {
    require(X.ndim() == 2, "X must be 2-D");
    const int64_t d = X.shape(1);
    check_vector(w, d, "w must be a float64 array of length n_features");
    double* o = margins_out(out, X.shape(0), lo, hi);
    visit_float(X, "X", [&](auto x) {
        margins_in_chunks(lo, hi, n_threads, [&](int64_t r0, int64_t r1) {
            L::margins_dense(x, d, w.data(), b, r0, r1, o);
        });
    });
}

void margins_csr_py(const py::array& indptr, const py::array& indices, const py::array& data,
                    const F64& w, double b, int64_t lo, int64_t hi, F64 out, int n_threads) {
    require(data.ndim() == 1 && data.shape(0) == indices.shape(0),
            "data must be 1-D with the length of indices");
    require(w.ndim() == 1, "w must be 1-D");
    double* o = margins_out(out, indptr.shape(0) - 1, lo, hi);
    visit_csr(indptr, indices, [&](auto ip, auto ix) {
        visit_float(data, "data", [&](auto v) {
            margins_in_chunks(lo, hi, n_threads, [&](int64_t r0, int64_t r1) {
                L::margins_csr(ip, ix, v, w.data(), b, r0, r1, o);
            });
        });
    });
}

bool all_ones_py(const py::array& data) {
    require(data.ndim() == 1, "data must be 1-D");
    return visit_float(data, "data", [&](auto v) {
        py::gil_scoped_release release;
        return L::all_ones(v, data.shape(0));
    });
}

// f applied to each value of a 1-D float64 array (the scalar helpers, for tests).
template <double (*f)(double)>
F64 elementwise(const F64& a) {
    require(a.ndim() == 1, "the argument must be 1-D");
    F64 out(a.shape(0));
    const double* in = a.data();
    double* o = out.mutable_data();
    for (int64_t k = 0; k < a.shape(0); ++k) o[k] = f(in[k]);
    return out;
}

double exp_neg_checked(double a) {
    require(a >= 0.0 && a <= L::kMaxAbsMargin, "exp_neg needs 0 <= a <= LINEAR_MAX_ABS_MARGIN");
    return L::exp_neg(a);
}

double log1p_unit_checked(double e) {
    require(e >= 0.0 && e <= 1.0, "log1p_unit needs 0 <= e <= 1");
    return L::log1p_unit(e);
}

}  // namespace

void bind_linear(py::module_& m) {
    m.def("linear_loss_grad_dense", &loss_grad_dense_py, py::arg("X").noconvert(),
          py::arg("y").noconvert(), py::arg("sw").noconvert(), py::arg("w").noconvert(),
          py::arg("b"), py::arg("lo"), py::arg("hi"), py::arg("g").noconvert(),
          "Weighted logistic loss of rows lo:hi of dense X (n, d), float32/float64, C order; "
          "g (d + 1,) float64 overwritten with the gradient sums (intercept last). Returns the "
          "loss sum.");
    m.def("linear_loss_grad_csr", &loss_grad_csr_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("y").noconvert(),
          py::arg("sw").noconvert(), py::arg("w").noconvert(), py::arg("b"), py::arg("lo"),
          py::arg("hi"), py::arg("g").noconvert(),
          "linear_loss_grad_dense for a CSR matrix; d = len(g) - 1.");
    m.def("linear_loss_grad_pattern", &loss_grad_pattern_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("y").noconvert(), py::arg("sw").noconvert(),
          py::arg("w").noconvert(), py::arg("b"), py::arg("lo"), py::arg("hi"),
          py::arg("g").noconvert(),
          "linear_loss_grad_csr for a CSR matrix whose stored values are all 1 (reads the "
          "pattern only).");
    m.def("linear_release_pass_inputs", &release_pass_inputs_py,
          "Wait until no helper thread of an earlier linear_loss_grad_*_chunks call reads its "
          "inputs, and release them (call it when a run of passes, an L-BFGS fit, ends).");
    m.def(
        "linear_loss_grad_dense_chunks", &loss_grad_dense_chunks_py, py::arg("X").noconvert(),
        py::arg("y").noconvert(), py::arg("sw").noconvert(), py::arg("w").noconvert(), py::arg("b"),
        py::arg("bounds").noconvert(), py::arg("partial").noconvert(),
        py::arg("losses").noconvert(), py::arg("n_threads"),
        "linear_loss_grad_dense of every row chunk c = bounds[c]:bounds[c + 1] (bounds int64, "
        "n_chunks + 1 non-decreasing): partial[c] (n_chunks, d + 1) float64 its gradient sums, "
        "losses[c] (n_chunks,) float64 its loss sum; the chunks on the caller and up to n_threads "
        "- 1 helper threads, a helper's chunk redone by the caller rather than waited for, the "
        "results independent of them (see linear_release_pass_inputs).");
    m.def("linear_loss_grad_csr_chunks", &loss_grad_csr_chunks_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("y").noconvert(),
          py::arg("sw").noconvert(), py::arg("w").noconvert(), py::arg("b"),
          py::arg("bounds").noconvert(), py::arg("partial").noconvert(),
          py::arg("losses").noconvert(), py::arg("n_threads"),
          "linear_loss_grad_dense_chunks for a CSR matrix; d = len(w).");
    m.def("linear_loss_grad_pattern_chunks", &loss_grad_pattern_chunks_py,
          py::arg("indptr").noconvert(), py::arg("indices").noconvert(), py::arg("y").noconvert(),
          py::arg("sw").noconvert(), py::arg("w").noconvert(), py::arg("b"),
          py::arg("bounds").noconvert(), py::arg("partial").noconvert(),
          py::arg("losses").noconvert(), py::arg("n_threads"),
          "linear_loss_grad_csr_chunks for a CSR matrix whose stored values are all 1 (reads the "
          "pattern only).");
    m.def("linear_margins_dense", &margins_dense_py, py::arg("X").noconvert(),
          py::arg("w").noconvert(), py::arg("b"), py::arg("lo"), py::arg("hi"),
          py::arg("out").noconvert(), py::arg("n_threads") = 1,
          "out[lo:hi] = X[lo:hi] @ w + b (float64) for dense X, in row chunks on up to "
          "n_threads threads (fewer on a loaded machine; the same values on any).");
    m.def("linear_margins_csr", &margins_csr_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("w").noconvert(),
          py::arg("b"), py::arg("lo"), py::arg("hi"), py::arg("out").noconvert(),
          py::arg("n_threads") = 1,
          "out[lo:hi] = X[lo:hi] @ w + b (float64) for a CSR matrix, in row chunks on up to "
          "n_threads threads (fewer on a loaded machine; the same values on any).");
    m.attr("LINEAR_MAX_ABS_MARGIN") = L::kMaxAbsMargin;
    m.attr("LINEAR_CHUNK_ROWS") = L::kChunkRows;
    m.def("_linear_exp_neg", &elementwise<exp_neg_checked>, py::arg("a").noconvert(),
          "exp(-a) of each value by the kernels' own polynomial (0 <= a <= "
          "LINEAR_MAX_ABS_MARGIN). Private: for tests.");
    m.def("_linear_log1p_unit", &elementwise<log1p_unit_checked>, py::arg("e").noconvert(),
          "log(1 + e) of each value by the kernels' own series (0 <= e <= 1). Private: for tests.");
    m.def("linear_all_ones", &all_ones_py, py::arg("data").noconvert(),
          "True when every value of the 1-D float32/float64 array is 1.");
}
