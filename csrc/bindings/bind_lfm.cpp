#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "recforge/lfm.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F32, F64, I32, I64

recforge::LfmConfig make_config(int loss, float lr, float reg_user, float reg_item, float reg_bias,
                                bool fit_bias) {
    if (loss < 0 || loss > 2)
        throw std::invalid_argument("loss must be 0 (squared), 1 (logistic) or 2 (bpr)");
    recforge::LfmConfig c;
    c.loss = static_cast<recforge::LfmLoss>(loss);
    c.lr = lr;
    c.reg_user = reg_user;
    c.reg_item = reg_item;
    c.reg_bias = reg_bias;
    c.fit_bias = fit_bias;
    return c;
}

void check_factors(const F32& uf, const F32& itf, const F32& bias) {
    if (uf.ndim() != 2 || itf.ndim() != 2 || uf.shape(1) != itf.shape(1))
        throw std::invalid_argument(
            "user_factors and item_factors must be 2-D float32 with the same n_factors");
    if (bias.ndim() != 1 || bias.shape(0) != itf.shape(0))
        throw std::invalid_argument("item_bias must be float32 of length n_items");
    if (!uf.writeable() || !itf.writeable() || !bias.writeable())
        throw std::invalid_argument("factor arrays must be writeable (they are updated in place)");
}

py::tuple epoch_py(I32 pos_users, I32 pos_items, int64_t n_steps, I64 touched_indptr,
                   I32 touched_indices, F64 neg_weights, F32 user_factors, F32 item_factors,
                   F32 item_bias, int loss, float lr, float reg_user, float reg_item,
                   float reg_bias, bool fit_bias, int n_negatives, uint64_t seed, int n_threads) {
    check_factors(user_factors, item_factors, item_bias);
    const int64_t n_users = user_factors.shape(0), n_items = item_factors.shape(0);
    if (pos_users.ndim() != 1 || pos_items.ndim() != 1 || pos_users.shape(0) != pos_items.shape(0))
        throw std::invalid_argument("pos_users and pos_items must be 1-D of equal length");
    if (touched_indptr.ndim() != 1 || touched_indptr.shape(0) != n_users + 1)
        throw std::invalid_argument("touched_indptr must have length n_users + 1");
    const int64_t* indptr = touched_indptr.data();
    if (indptr[0] != 0 || indptr[n_users] != touched_indices.shape(0))
        throw std::invalid_argument(
            "touched_indptr must start at 0 and end at len(touched_indices)");
    if (neg_weights.ndim() != 1 || neg_weights.shape(0) != n_items)
        throw std::invalid_argument("neg_weights must have length n_items");
    if (n_negatives < 1) throw std::invalid_argument("n_negatives must be >= 1");
    if (n_steps < 0) throw std::invalid_argument("n_steps must be >= 0");
    recforge::LfmConfig cfg = make_config(loss, lr, reg_user, reg_item, reg_bias, fit_bias);
    cfg.n_negatives = n_negatives;
    cfg.seed = seed;
    cfg.n_threads = n_threads;
    const int k = static_cast<int>(user_factors.shape(1));
    const int32_t *pu = pos_users.data(), *pi = pos_items.data(), *ti = touched_indices.data();
    const double* w = neg_weights.data();
    float *uf = user_factors.mutable_data(), *itf = item_factors.mutable_data(),
          *b = item_bias.mutable_data();
    const int64_t n_pos = pos_users.shape(0);
    recforge::LfmEpochResult r;
    {
        py::gil_scoped_release release;
        const recforge::AliasTable table(w, n_items);
        r = recforge::lfm_train_epoch(pu, pi, n_pos, n_steps, indptr, ti, table, uf, itf, b, k,
                                      cfg);
    }
    return py::make_tuple(r.loss_sum, r.n_terms, r.n_skipped);
}

double step_py(F32 user_factors, F32 item_factors, F32 item_bias, int64_t u, int64_t i, int64_t j,
               float label, int loss, float lr, float reg_user, float reg_item, float reg_bias,
               bool fit_bias) {
    check_factors(user_factors, item_factors, item_bias);
    const recforge::LfmConfig cfg = make_config(loss, lr, reg_user, reg_item, reg_bias, fit_bias);
    const int64_t n_users = user_factors.shape(0), n_items = item_factors.shape(0);
    const int k = static_cast<int>(user_factors.shape(1));
    if (u < 0 || u >= n_users || i < 0 || i >= n_items)
        throw std::invalid_argument("u or i out of range");
    float *uf = user_factors.mutable_data(), *itf = item_factors.mutable_data(),
          *b = item_bias.mutable_data();
    if (cfg.loss == recforge::LfmLoss::bpr) {
        if (j < 0 || j >= n_items) throw std::invalid_argument("j out of range");
        return recforge::lfm_bpr_step(uf + u * k, itf + i * k, itf + j * k, b + i, b + j, k, cfg);
    }
    return recforge::lfm_pointwise_step(uf + u * k, itf + i * k, b + i, k, label, cfg);
}

}  // namespace

void bind_lfm(py::module_& m) {
    m.def("lfm_train_epoch", &epoch_py, py::arg("pos_users").noconvert(),
          py::arg("pos_items").noconvert(), py::arg("n_steps"),
          py::arg("touched_indptr").noconvert(), py::arg("touched_indices").noconvert(),
          py::arg("neg_weights").noconvert(), py::arg("user_factors").noconvert(),
          py::arg("item_factors").noconvert(), py::arg("item_bias").noconvert(), py::arg("loss"),
          py::arg("lr"), py::arg("reg_user"), py::arg("reg_item"), py::arg("reg_bias"),
          py::arg("fit_bias"), py::arg("n_negatives"), py::arg("seed"), py::arg("n_threads"),
          "One Hogwild SGD epoch of the latent factor model; factors updated in place. "
          "Returns (loss sum, number of loss terms, negatives skipped).");
    m.def("lfm_step", &step_py, py::arg("user_factors").noconvert(),
          py::arg("item_factors").noconvert(), py::arg("item_bias").noconvert(), py::arg("u"),
          py::arg("i"), py::arg("j"), py::arg("label"), py::arg("loss"), py::arg("lr"),
          py::arg("reg_user"), py::arg("reg_item"), py::arg("reg_bias"), py::arg("fit_bias"),
          "One SGD step (pointwise on (u, i, label), or BPR on (u, i, j)); returns the loss before "
          "it.");
}
