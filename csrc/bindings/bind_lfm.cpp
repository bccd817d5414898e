#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "recforge/lfm.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F32, F64, I32, I64

py::handle epoch_result_type;  // the LfmEpochResult named tuple (the module holds it)

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

// The sampler of one fit and the arrays it points into (held here, so they outlive it).
class Sampler {
  public:
    Sampler(I32 pos_users, I32 pos_items, I64 touched_indptr, I32 touched_indices, F64 neg_weights,
            int64_t n_users, int touched_check)
        : pos_users_(std::move(pos_users)),
          pos_items_(std::move(pos_items)),
          indptr_(std::move(touched_indptr)),
          indices_(std::move(touched_indices)),
          n_users_(n_users),
          n_items_(neg_weights.ndim() == 1 ? neg_weights.shape(0) : 0),
          sampler_(make(pos_users_, pos_items_, indptr_, indices_, neg_weights, n_users,
                        touched_check)) {}

    py::object epoch(F32 user_factors, F32 item_factors, F32 item_bias, int64_t n_steps, int loss,
                     float lr, float reg_user, float reg_item, float reg_bias, bool fit_bias,
                     int n_negatives, uint64_t seed, int n_threads) const {
        check_factors(user_factors, item_factors, item_bias);
        require(user_factors.shape(0) == n_users_ && item_factors.shape(0) == n_items_,
                "user_factors and item_factors must have the sampler's n_users and n_items rows");
        require(n_negatives >= 1, "n_negatives must be >= 1");
        require(n_steps >= 0, "n_steps must be >= 0");
        recforge::LfmConfig cfg = make_config(loss, lr, reg_user, reg_item, reg_bias, fit_bias);
        cfg.n_negatives = n_negatives;
        cfg.seed = seed;
        cfg.n_threads = n_threads;
        const int k = static_cast<int>(user_factors.shape(1));
        float *uf = user_factors.mutable_data(), *itf = item_factors.mutable_data(),
              *b = item_bias.mutable_data();
        recforge::LfmEpochResult r;
        {
            py::gil_scoped_release release;
            r = recforge::lfm_train_epoch(sampler_, n_steps, uf, itf, b, k, cfg);
        }
        return epoch_result_type(r.loss.value(), r.n_terms, r.n_skipped);
    }

    bool uses_touched_bits() const { return sampler_.uses_bits(); }

  private:
    // The structural checks the kernel relies on (ranges and sorted rows are the caller's).
    static recforge::LfmSampler make(const I32& pos_users, const I32& pos_items, const I64& indptr,
                                     const I32& indices, const F64& neg_weights, int64_t n_users,
                                     int touched_check) {
        require(pos_users.ndim() == 1 && pos_items.ndim() == 1 &&
                    pos_users.shape(0) == pos_items.shape(0),
                "pos_users and pos_items must be 1-D of equal length");
        require(n_users >= 0 && indptr.ndim() == 1 && indptr.shape(0) == n_users + 1,
                "touched_indptr must have length n_users + 1");
        require(indices.ndim() == 1 && indptr.data()[0] == 0 &&
                    indptr.data()[n_users] == indices.shape(0),
                "touched_indptr must start at 0 and end at len(touched_indices)");
        require(neg_weights.ndim() == 1 && neg_weights.shape(0) >= 1,
                "neg_weights must have length n_items >= 1");
        require(touched_check >= -1 && touched_check <= 1,
                "touched_check must be -1 (automatic), 0 (binary search) or 1 (bit matrix)");
        return recforge::LfmSampler(pos_users.data(), pos_items.data(), pos_users.shape(0),
                                    indptr.data(), indices.data(), n_users, neg_weights.data(),
                                    neg_weights.shape(0),
                                    static_cast<recforge::TouchedCheck>(touched_check));
    }

    I32 pos_users_, pos_items_;
    I64 indptr_;
    I32 indices_;
    int64_t n_users_, n_items_;
    recforge::LfmSampler sampler_;
};

void initial_factors_py(F32 out, float half_width, uint64_t seed, int n_threads) {
    require(out.ndim() == 2 && out.writeable(), "out must be a writeable 2-D float32 array");
    require(std::isfinite(half_width) && half_width >= 0.0f, "half_width must be finite and >= 0");
    float* o = out.mutable_data();
    const int64_t n_rows = out.shape(0);
    const int k = static_cast<int>(out.shape(1));
    py::gil_scoped_release release;
    recforge::lfm_initial_factors(o, n_rows, k, half_width, seed, n_threads);
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
        return recforge::lfm_bpr_step(uf + u * k, itf + i * k, itf + j * k, b + i, b + j, k, cfg)
            .value();
    }
    return recforge::lfm_pointwise_step(uf + u * k, itf + i * k, b + i, k, label, cfg).value();
}

}  // namespace

void bind_lfm(py::module_& m) {
    py::object result = py::module_::import("collections")
                            .attr("namedtuple")("LfmEpochResult",
                                                py::make_tuple("loss_sum", "n_terms", "n_skipped"));
    result.attr("__module__") = m.attr("__name__");
    result.attr("__doc__") =
        "One LFM epoch: loss_sum (float, before each step, regularisation excluded) over n_terms "
        "loss terms (int); n_skipped (int) negatives given up on.";
    m.attr("LfmEpochResult") = result;
    epoch_result_type = result;
    py::class_<Sampler>(m, "LfmSampler",
                        "What the LFM epochs of one fit sample from: positives, touched rows, "
                        "negative weights. Holds the arrays; they must not change while it lives.")
        .def(py::init<I32, I32, I64, I32, F64, int64_t, int>(), py::arg("pos_users").noconvert(),
             py::arg("pos_items").noconvert(), py::arg("touched_indptr").noconvert(),
             py::arg("touched_indices").noconvert(), py::arg("neg_weights").noconvert(),
             py::arg("n_users"), py::arg("touched_check") = -1)
        .def("epoch", &Sampler::epoch, py::arg("user_factors").noconvert(),
             py::arg("item_factors").noconvert(), py::arg("item_bias").noconvert(),
             py::arg("n_steps"), py::arg("loss"), py::arg("lr"), py::arg("reg_user"),
             py::arg("reg_item"), py::arg("reg_bias"), py::arg("fit_bias"), py::arg("n_negatives"),
             py::arg("seed"), py::arg("n_threads"),
             "One Hogwild SGD epoch of the latent factor model; factors updated in place. "
             "Returns an LfmEpochResult.")
        .def_property_readonly("uses_touched_bits", &Sampler::uses_touched_bits,
                               "Whether the touched check is a bit matrix (else binary search).");
    m.def("lfm_initial_factors", &initial_factors_py, py::arg("out").noconvert(),
          py::arg("half_width"), py::arg("seed"), py::arg("n_threads"),
          "Fill out (n_rows, k) float32 uniform on [-half_width, half_width) in place; the same "
          "values for any n_threads.");
    m.def("lfm_step", &step_py, py::arg("user_factors").noconvert(),
          py::arg("item_factors").noconvert(), py::arg("item_bias").noconvert(), py::arg("u"),
          py::arg("i"), py::arg("j"), py::arg("label"), py::arg("loss"), py::arg("lr"),
          py::arg("reg_user"), py::arg("reg_item"), py::arg("reg_bias"), py::arg("fit_bias"),
          "One SGD step (pointwise on (u, i, label), or BPR on (u, i, j)); returns the loss before "
          "it.");
}
