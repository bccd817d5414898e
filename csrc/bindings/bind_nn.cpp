// Bindings of the neural rankers' forward pass (recforge/nn_forward.hpp): the logits of a row range
// in blocks on a thread team, and the training calls. BLAS is scipy's: the PyCapsules of
// scipy.linalg.cython_blas, fetched by the first call of a process. Every structural property the
// kernel relies on (array shapes, the layer sizes, each code a row of its column's table inside
// emb, the wide part's indices inside wide_w) is checked here, before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "arrays.hpp"
#include "recforge/nn_forward.hpp"
#include "recforge/nn_train.hpp"
#include "team_chunks.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F32, F64, I32, I64, require, visit_dtype
namespace N = recforge::nn;

template <class Fn>
Fn capsule_function(const py::dict& capsules, const char* name) {
    auto fn = reinterpret_cast<Fn>(capsules[name].cast<py::capsule>().get_pointer());
    if (fn == nullptr) throw std::runtime_error("scipy's BLAS capsule holds a null pointer");
    return fn;
}

// scipy's BLAS routines (scipy.linalg.cython_blas's capsules), fetched by the first call that
// needs them, with the GIL held, and kept for the process (a thread that enters while the first
// one imports sets the same pointers again).
const N::Blas& scipy_blas() {
    static N::Blas blas{};
    static bool loaded = false;
    if (!loaded) {
        const py::dict capsules =
            py::module_::import("scipy.linalg.cython_blas").attr("__pyx_capi__");
        blas.gemm = capsule_function<decltype(blas.gemm)>(capsules, "sgemm");
        blas.gemv = capsule_function<decltype(blas.gemv)>(capsules, "sgemv");
        blas.dot = capsule_function<decltype(blas.dot)>(capsules, "sdot");
        loaded = true;
    }
    return blas;
}

// The dense part's arrays, checked against each other and against the layers.
N::Inputs check_inputs(const I32& codes, const F32& dense, const I64& col_flat_off,
                       const I64& col_row_off, const I64& col_dim, const I64& col_in_off,
                       const F32& emb, const N::Layers& net) {
    require(codes.ndim() == 2 && dense.ndim() == 2 && codes.shape(0) == dense.shape(0),
            "codes (n, n_cat) and dense (n, n_num) must be 2-D with the same rows");
    const int64_t n_cat = codes.shape(1), n_num = dense.shape(1);
    require(col_flat_off.ndim() == 1 && col_flat_off.shape(0) == n_cat && col_dim.ndim() == 1 &&
                col_dim.shape(0) == n_cat && col_in_off.ndim() == 1 && col_in_off.shape(0) == n_cat,
            "col_flat_off, col_dim and col_in_off must be int64 arrays of length n_cat");
    require(
        col_row_off.ndim() == 1 && col_row_off.shape(0) == n_cat + 1 && col_row_off.data()[0] == 0,
        "col_row_off must be an int64 array of length n_cat + 1 starting at 0");
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
    return {codes.data(), n_cat, dense.data(), n_num, flat, dim, in_off, emb.data()};
}

// Every code of rows row(0), ..., row(count - 1) selects a row of its column's table.
template <class Row>
void check_codes(const N::Inputs& in, const int64_t* row_off, int64_t count, Row&& row) {
    for (int64_t r = 0; r < count; ++r) {
        const int32_t* code = in.codes + row(r) * in.n_cat;
        for (int64_t c = 0; c < in.n_cat; ++c)
            require(code[c] >= 0 && code[c] < row_off[c + 1] - row_off[c],
                    "codes must select rows of their column's table");
    }
}

// The wide part's rows row(0), ..., row(count - 1): offsets inside w_indices, not decreasing,
// columns inside wide_w.
template <class Indptr, class Row>
void check_wide_rows(const py::array& w_indptr, const Indptr* ip, const I32& w_indices,
                     int64_t n_wide, int64_t count, Row&& row) {
    require(w_indptr.ndim() == 1, "w_indptr must be 1-D");
    const int64_t n_offsets = w_indptr.shape(0), nnz = w_indices.shape(0);
    for (int64_t r = 0; r < count; ++r) {
        const int64_t i = row(r);
        require(i + 1 < n_offsets, "w_indptr must hold n_rows + 1 offsets");
        require(0 <= ip[i] && ip[i] <= ip[i + 1] && ip[i + 1] <= nnz,
                "w_indptr must point inside w_indices and not decrease");
        require_indices(w_indices.data() + ip[i], ip[i + 1] - ip[i], n_wide,
                        "w_indices must be columns of wide_w");
    }
}

// f(wide): the wide part's arrays checked against each other and typed by indptr's dtype; when
// has_wide, its rows row(0), ..., row(count - 1) are checked too (check_wide_rows).
template <class Row, class F>
void with_wide(bool has_wide, const py::array& w_indptr, const I32& w_indices, const F32& w_data,
               const F32& wide_w, int64_t count, Row&& row, F&& f) {
    require(wide_w.ndim() == 1 && w_indices.ndim() == 1 && w_data.ndim() == 1 &&
                w_data.shape(0) == w_indices.shape(0),
            "wide_w, w_indices and w_data must be 1-D, w_data as long as w_indices");
    visit_dtype<int32_t, int64_t>(w_indptr, "w_indptr", "int32 or int64", [&](auto ip) {
        if (has_wide) check_wide_rows(w_indptr, ip, w_indices, wide_w.shape(0), count, row);
        using Indptr = std::remove_const_t<std::remove_pointer_t<decltype(ip)>>;
        f(N::Wide<Indptr>{has_wide, ip, w_indices.data(), w_data.data(), wide_w.data()});
    });
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
                       const I64& col_in_off, const F32& emb, const I64& sizes, const F32& params,
                       bool has_wide, const py::array& w_indptr, const I32& w_indices,
                       const F32& w_data, const F32& wide_w, int64_t chunk, F64 out,
                       int n_threads) {
    const N::Blas& blas = scipy_blas();
    const N::Layers net = check_layers(sizes, params);
    const N::Inputs in =
        check_inputs(codes, dense, col_flat_off, col_row_off, col_dim, col_in_off, emb, net);
    require(0 <= lo && lo <= hi && hi <= codes.shape(0), "0 <= lo <= hi <= n_rows must hold");
    check_codes(in, col_row_off.data(), hi - lo, [lo](int64_t r) { return lo + r; });
    require(chunk >= 1 && chunk <= INT32_MAX, "chunk must be >= 1");
    require(out.ndim() == 1 && out.shape(0) >= hi, "out must be a float64 array of >= hi values");
    double* o = out.mutable_data();
    auto row = [lo](int64_t r) { return lo + r; };
    with_wide(has_wide, w_indptr, w_indices, w_data, wide_w, hi - lo, row, [&](const auto& wide) {
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

// A float32 state array of the same length as the parameters it belongs to.
void check_like(const F32& a, const F32& like, const char* msg) {
    require(a.ndim() == 1 && a.shape(0) == like.shape(0), msg);
}

struct TrainArgs {
    const I32& codes;
    const F32& dense;
    const F64& y;
    const F64& sw;
    const I64& col_flat_off;
    const I64& col_row_off;
    const I64& col_dim;
    const I64& col_in_off;
    F32& emb;
    F32& emb_m;
    F32& emb_v;
    const I64& sizes;
    F32& params;
    F32& p_m;
    F32& p_v;
    bool has_wide;
    const py::array& w_indptr;
    const I32& w_indices;
    const F32& w_data;
    F32& wide_w;
    F32& wide_m;
    F32& wide_v;
    I64& step;
};

// f(model) with the checked model of a, its wide part's indptr typed; rows row(0 .. count) are the
// rows the call reads (their codes and wide entries are checked).
template <class Row, class F>
void with_model(TrainArgs& a, int64_t count, Row&& row, F&& f) {
    const N::Layers net = check_layers(a.sizes, a.params);
    const N::Inputs in = check_inputs(a.codes, a.dense, a.col_flat_off, a.col_row_off, a.col_dim,
                                      a.col_in_off, a.emb, net);
    const int64_t n = a.codes.shape(0);
    require(a.y.ndim() == 1 && a.y.shape(0) == n && a.sw.ndim() == 1 && a.sw.shape(0) == n,
            "y and sw must be float64 arrays of length n_rows");
    check_like(a.emb_m, a.emb, "emb_m and emb_v must be float32 arrays like emb");
    check_like(a.emb_v, a.emb, "emb_m and emb_v must be float32 arrays like emb");
    check_like(a.p_m, a.params, "p_m and p_v must be float32 arrays like params");
    check_like(a.p_v, a.params, "p_m and p_v must be float32 arrays like params");
    require(a.step.ndim() == 1 && a.step.shape(0) == 1, "step must be an int64 array of 1");
    check_codes(in, a.col_row_off.data(), count, row);
    with_wide(
        a.has_wide, a.w_indptr, a.w_indices, a.w_data, a.wide_w, count, row, [&](const auto& wide) {
            check_like(a.wide_m, a.wide_w, "wide_m and wide_v must be float32 arrays like wide_w");
            check_like(a.wide_v, a.wide_w, "wide_m and wide_v must be float32 arrays like wide_w");
            using Indptr = typename std::decay_t<decltype(wide)>::IndptrType;
            N::Model<Indptr> md{in,
                                a.col_row_off.data(),
                                net,
                                wide,
                                a.y.data(),
                                a.sw.data(),
                                a.emb.mutable_data(),
                                a.emb_m.mutable_data(),
                                a.emb_v.mutable_data(),
                                a.params.mutable_data(),
                                a.p_m.mutable_data(),
                                a.p_v.mutable_data(),
                                a.params.shape(0),
                                a.wide_w.mutable_data(),
                                a.wide_m.mutable_data(),
                                a.wide_v.mutable_data(),
                                a.wide_w.shape(0),
                                a.step.mutable_data()};
            f(md);
        });
}

void check_optimizer(int opt, const char* msg) { require(opt >= N::kSgd && opt <= N::kFtrl, msg); }

double train_batches_py(const I32& codes, const F32& dense, const F64& y, const F64& sw,
                        const I64& order, int64_t start, int64_t stop, int64_t batch_size,
                        const I64& col_flat_off, const I64& col_row_off, const I64& col_dim,
                        const I64& col_in_off, F32 emb, F32 emb_m, F32 emb_v, const I64& sizes,
                        F32 params, F32 p_m, F32 p_v, bool has_wide, const py::array& w_indptr,
                        const I32& w_indices, const F32& w_data, F32 wide_w, F32 wide_m, F32 wide_v,
                        int opt, double lr, double b1, double b2, double eps, double l2,
                        int wide_opt, double wide_lr, double wide_l1, double wide_l2, I64 step,
                        double dropout, int64_t dropout_seed, int n_workers) {
    const N::Blas& blas = scipy_blas();
    require(order.ndim() == 1 && 0 <= start && start <= stop && stop <= order.shape(0),
            "order must be 1-D with 0 <= start <= stop <= len(order)");
    require(batch_size >= 1, "batch_size must be >= 1");
    require(n_workers >= 1, "n_workers must be >= 1");
    check_optimizer(opt, "opt must be an optimiser code (NN_OPTIMIZERS)");
    check_optimizer(wide_opt, "wide_opt must be an optimiser code (NN_OPTIMIZERS)");
    require(lr > 0.0 && wide_lr > 0.0, "lr and wide_lr must be > 0");
    require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
    const int64_t* ord = order.data();
    for (int64_t r = start; r < stop; ++r)
        require(ord[r] >= 0 && ord[r] < codes.shape(0), "order must hold row numbers");
    TrainArgs a{codes,    dense,     y,      sw,     col_flat_off, col_row_off, col_dim, col_in_off,
                emb,      emb_m,     emb_v,  sizes,  params,       p_m,         p_v,     has_wide,
                w_indptr, w_indices, w_data, wide_w, wide_m,       wide_v,      step};
    const N::Hyper hp{opt,      lr,      b1,      b2,      eps,     l2,
                      wide_opt, wide_lr, wide_l1, wide_l2, dropout, dropout_seed};
    double total = 0.0;
    with_model(
        a, stop - start, [ord, start](int64_t r) { return ord[start + r]; },
        [&](auto& md) {
            using Indptr = typename std::decay_t<decltype(md.wide)>::IndptrType;
            N::Trainer<Indptr> trainer(blas, md, hp, ord, start, stop, batch_size, n_workers);
            py::gil_scoped_release release;
            total = trainer.run();
        });
    return total;
}

double loss_grad_py(const I32& codes, const F32& dense, const F64& y, const F64& sw,
                    const I64& rows, const I64& col_flat_off, const I64& col_row_off,
                    const I64& col_dim, const I64& col_in_off, F32 emb, const I64& sizes,
                    F32 params, bool has_wide, const py::array& w_indptr, const I32& w_indices,
                    const F32& w_data, F32 wide_w, double l2, F32 grads, F32 emb_grad,
                    F32 wide_grad) {
    const N::Blas& blas = scipy_blas();
    require(rows.ndim() == 1 && rows.shape(0) >= 1, "rows must be a non-empty 1-D int64 array");
    const int64_t* rw = rows.data();
    for (int64_t r = 0; r < rows.shape(0); ++r)
        require(rw[r] >= 0 && rw[r] < codes.shape(0), "rows must hold row numbers");
    check_like(grads, params, "grads must be a float32 array like params");
    check_like(emb_grad, emb, "emb_grad must be a float32 array like emb");
    require(wide_w.ndim() == 1, "wide_w must be 1-D");
    check_like(wide_grad, wide_w, "wide_grad must be a float32 array like wide_w");
    // the state arrays are not used: the parameters stand in for them
    I64 step(std::vector<py::ssize_t>{1});
    TrainArgs a{codes,    dense,     y,      sw,     col_flat_off, col_row_off, col_dim, col_in_off,
                emb,      emb,       emb,    sizes,  params,       params,      params,  has_wide,
                w_indptr, w_indices, w_data, wide_w, wide_w,       wide_w,      step};
    double loss = 0.0;
    with_model(
        a, rows.shape(0), [rw](int64_t r) { return rw[r]; },
        [&](auto& md) {
            loss = N::loss_grad(blas, md, rw, rows.shape(0), l2, grads.mutable_data(),
                                emb_grad.mutable_data(), emb.shape(0), wide_grad.mutable_data());
        });
    return loss;
}

// -- private helpers for the tests ----------------------------------------------------------------

void update_py(F32 p, const F32& g, F32 m, F32 v, int opt, double lr, float alpha, double b1,
               double b2, double eps, double l1, double l2) {
    check_optimizer(opt, "opt must be an optimiser code (NN_OPTIMIZERS)");
    require(lr > 0.0, "lr must be > 0");
    require(p.ndim() == 1, "p must be 1-D");
    for (const F32* a : {&g, static_cast<const F32*>(&m), static_cast<const F32*>(&v)})
        check_like(*a, p, "g, m and v must be float32 arrays like p");
    N::update(p.mutable_data(), g.data(), m.mutable_data(), v.mutable_data(), p.shape(0), opt, lr,
              alpha, b1, b2, eps, l1, l2);
}

// x0 (nb, d0) float32: the dense layers' inputs of rows; returns nothing.
void gather_inputs_py(const I32& codes, const F32& dense, const I64& rows, const I64& col_flat_off,
                      const I64& col_row_off, const I64& col_dim, const I64& col_in_off,
                      const F32& emb, const I64& sizes, const F32& params, F32 x0) {
    const N::Layers net = check_layers(sizes, params);
    const N::Inputs in =
        check_inputs(codes, dense, col_flat_off, col_row_off, col_dim, col_in_off, emb, net);
    require(rows.ndim() == 1, "rows must be 1-D");
    const int64_t* rw = rows.data();
    const int64_t nb = rows.shape(0);
    for (int64_t r = 0; r < nb; ++r)
        require(rw[r] >= 0 && rw[r] < codes.shape(0), "rows must hold row numbers");
    check_codes(in, col_row_off.data(), nb, [rw](int64_t r) { return rw[r]; });
    require(x0.ndim() == 2 && x0.shape(0) == nb && x0.shape(1) == net.d0(),
            "x0 must be a float32 array (len(rows), sizes[0])");
    N::gather_inputs(in, net.d0(), nb, [rw](int64_t r) { return rw[r]; }, x0.mutable_data());
}

void check_x0_acts(const F32& x0, const F32& acts, const N::Layers& net) {
    require(x0.ndim() == 2 && x0.shape(1) == net.d0(), "x0 must be a float32 array (nb, sizes[0])");
    require(acts.ndim() == 1 && acts.shape(0) >= x0.shape(0) * net.acts_per_row(),
            "acts must be a float32 array of >= nb * sum(sizes[1:]) values");
}

void mlp_forward_py(const F32& x0, const F32& params, const I64& sizes, F32 acts, double dropout,
                    int64_t seed) {
    const N::Blas& blas = scipy_blas();
    const N::Layers net = check_layers(sizes, params);
    check_x0_acts(x0, acts, net);
    require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
    N::NumbaRandom rng(static_cast<uint32_t>(seed));
    N::mlp_forward(blas, net, x0.data(), x0.shape(0), acts.mutable_data(), dropout, &rng);
}

F32 mlp_backward_py(const F32& x0, const F32& params, const I64& sizes, const F32& acts,
                    const F32& dz, double l2, F32 grads, double dropout) {
    const N::Blas& blas = scipy_blas();
    const N::Layers net = check_layers(sizes, params);
    check_x0_acts(x0, acts, net);
    const int64_t nb = x0.shape(0);
    require(dz.ndim() == 1 && dz.shape(0) == nb, "dz must be a float32 array of nb values");
    check_like(grads, params, "grads must be a float32 array like params");
    require(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1)");
    F32 dx0(std::vector<py::ssize_t>{nb, net.d0()});
    N::BackwardScratch scratch(net, nb);
    N::mlp_backward(blas, net, x0.data(), nb, acts.data(), dz.data(), l2, grads.mutable_data(),
                    dx0.mutable_data(), dropout, scratch);
    return dx0;
}

// late_chunk and record_fastest on int64 arrays (owner, started: one batch's entries from o0)
int64_t late_chunk_py(const I64& owner, const I64& started, int64_t o0, int64_t n_chunks,
                      const I64& fastest) {
    require(owner.ndim() == 1 && started.ndim() == 1 && owner.shape(0) == started.shape(0) &&
                0 <= o0 && n_chunks >= 0 && o0 + n_chunks <= owner.shape(0),
            "owner and started must be int64 arrays holding entries o0 .. o0 + n_chunks");
    require(fastest.ndim() == 1 && fastest.shape(0) == 1, "fastest must be an int64 array of 1");
    const int64_t *ow = owner.data(), *st = started.data();
    return N::late_chunk([ow](int64_t i) { return ow[i]; }, [st](int64_t i) { return st[i]; }, o0,
                         n_chunks, fastest.data()[0]);
}

void record_fastest_py(I64 fastest, int64_t elapsed) {
    require(fastest.ndim() == 1 && fastest.shape(0) == 1, "fastest must be an int64 array of 1");
    N::AtomicI64 value(fastest.data()[0]);
    N::record_fastest(value, elapsed);
    fastest.mutable_data()[0] = value.load();
}

}  // namespace

void bind_nn(py::module_& m) {
    m.def("nn_predict_logits", &predict_logits_py, py::arg("codes").noconvert(),
          py::arg("dense").noconvert(), py::arg("lo"), py::arg("hi"),
          py::arg("col_flat_off").noconvert(), py::arg("col_row_off").noconvert(),
          py::arg("col_dim").noconvert(), py::arg("col_in_off").noconvert(),
          py::arg("emb").noconvert(), py::arg("sizes").noconvert(), py::arg("params").noconvert(),
          py::arg("has_wide"), py::arg("w_indptr").noconvert(), py::arg("w_indices").noconvert(),
          py::arg("w_data").noconvert(), py::arg("wide_w").noconvert(), py::arg("chunk"),
          py::arg("out").noconvert(), py::arg("n_threads") = 1,
          "out[lo:hi] = the logits (float64) of rows lo..hi-1 of a DNN / Wide&Deep model, in "
          "blocks of `chunk` rows on up to n_threads threads (the same values on any; BLAS must "
          "run one thread per call: see recforge._threads.limit_blas_threads).");
    m.def("nn_train_batches", &train_batches_py, py::arg("codes").noconvert(),
          py::arg("dense").noconvert(), py::arg("y").noconvert(), py::arg("sw").noconvert(),
          py::arg("order").noconvert(), py::arg("start"), py::arg("stop"), py::arg("batch_size"),
          py::arg("col_flat_off").noconvert(), py::arg("col_row_off").noconvert(),
          py::arg("col_dim").noconvert(), py::arg("col_in_off").noconvert(),
          py::arg("emb").noconvert(), py::arg("emb_m").noconvert(), py::arg("emb_v").noconvert(),
          py::arg("sizes").noconvert(), py::arg("params").noconvert(), py::arg("p_m").noconvert(),
          py::arg("p_v").noconvert(), py::arg("has_wide"), py::arg("w_indptr").noconvert(),
          py::arg("w_indices").noconvert(), py::arg("w_data").noconvert(),
          py::arg("wide_w").noconvert(), py::arg("wide_m").noconvert(),
          py::arg("wide_v").noconvert(), py::arg("opt"), py::arg("lr"), py::arg("b1"),
          py::arg("b2"), py::arg("eps"), py::arg("l2"), py::arg("wide_opt"), py::arg("wide_lr"),
          py::arg("wide_l1"), py::arg("wide_l2"), py::arg("step").noconvert(),
          py::arg("dropout") = 0.0, py::arg("dropout_seed") = 0, py::arg("n_workers") = 1,
          "Train on the rows order[start:stop] in mini-batches of batch_size (in place); returns "
          "the summed weighted log-loss (float64) of those rows before each batch's update. "
          "See recforge.kernels.nn.train_batches.");
    m.def("nn_loss_grad", &loss_grad_py, py::arg("codes").noconvert(), py::arg("dense").noconvert(),
          py::arg("y").noconvert(), py::arg("sw").noconvert(), py::arg("rows").noconvert(),
          py::arg("col_flat_off").noconvert(), py::arg("col_row_off").noconvert(),
          py::arg("col_dim").noconvert(), py::arg("col_in_off").noconvert(),
          py::arg("emb").noconvert(), py::arg("sizes").noconvert(), py::arg("params").noconvert(),
          py::arg("has_wide"), py::arg("w_indptr").noconvert(), py::arg("w_indices").noconvert(),
          py::arg("w_data").noconvert(), py::arg("wide_w").noconvert(), py::arg("l2"),
          py::arg("grads").noconvert(), py::arg("emb_grad").noconvert(),
          py::arg("wide_grad").noconvert(),
          "Loss of one batch (rows) and its gradients in grads, emb_grad and wide_grad, without "
          "updating anything. See recforge.kernels.nn.loss_grad.");
    m.def("_nn_update", &update_py, py::arg("p").noconvert(), py::arg("g").noconvert(),
          py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("opt"), py::arg("lr"),
          py::arg("alpha"), py::arg("b1"), py::arg("b2"), py::arg("eps"), py::arg("l1"),
          py::arg("l2"), "One optimiser step in place. Private: for tests.");
    m.def("_nn_gather_inputs", &gather_inputs_py, py::arg("codes").noconvert(),
          py::arg("dense").noconvert(), py::arg("rows").noconvert(),
          py::arg("col_flat_off").noconvert(), py::arg("col_row_off").noconvert(),
          py::arg("col_dim").noconvert(), py::arg("col_in_off").noconvert(),
          py::arg("emb").noconvert(), py::arg("sizes").noconvert(), py::arg("params").noconvert(),
          py::arg("x0").noconvert(), "x0 = the dense layers' inputs of rows. Private: for tests.");
    m.def("_nn_mlp_forward", &mlp_forward_py, py::arg("x0").noconvert(),
          py::arg("params").noconvert(), py::arg("sizes").noconvert(), py::arg("acts").noconvert(),
          py::arg("dropout"), py::arg("seed"),
          "The dense layers' outputs into acts (dropout masks from seed). Private: for tests.");
    m.def("_nn_mlp_backward", &mlp_backward_py, py::arg("x0").noconvert(),
          py::arg("params").noconvert(), py::arg("sizes").noconvert(), py::arg("acts").noconvert(),
          py::arg("dz").noconvert(), py::arg("l2"), py::arg("grads").noconvert(),
          py::arg("dropout"),
          "grads = d loss / d params; returns d loss / d x0. Private: for tests.");
    m.def("_nn_late_chunk", &late_chunk_py, py::arg("owner").noconvert(),
          py::arg("started").noconvert(), py::arg("o0"), py::arg("n_chunks"),
          py::arg("fastest").noconvert(), "The first late chunk of a batch. Private: for tests.");
    m.def("_nn_record_fastest", &record_fastest_py, py::arg("fastest").noconvert(),
          py::arg("elapsed"), "fastest[0] = min(fastest[0], elapsed). Private: for tests.");
    m.attr("NN_TRAIN_CHUNK_ROWS") = N::kTrainChunkRows;
    m.attr("NN_UPDATE_BLOCK") = N::kUpdateBlock;
    m.attr("NN_LATE_CHUNK_FACTOR") = N::kLateChunkFactor;
    m.attr("NN_FIRST_LATE_NS") = N::kFirstLateNs;
}
