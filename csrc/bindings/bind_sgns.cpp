#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "arrays.hpp"
#include "recforge/sgns.hpp"

namespace py = pybind11;

namespace {

using namespace recforge::bindings;  // F32, F64, I32, I64

void check_vectors(const F32& in_vecs, const F32& out_vecs) {
    if (in_vecs.ndim() != 2 || out_vecs.ndim() != 2 || in_vecs.shape(0) != out_vecs.shape(0) ||
        in_vecs.shape(1) != out_vecs.shape(1))
        throw std::invalid_argument(
            "in_vecs and out_vecs must be 2-D float32 arrays of the same shape (n_items, dim)");
    if (!in_vecs.writeable() || !out_vecs.writeable())
        throw std::invalid_argument(
            "in_vecs and out_vecs must be writeable (they are updated in place)");
}

int64_t train_epoch_py(I64 offsets, I32 items, std::optional<F32> keep_prob, F64 neg_weights,
                       F32 in_vecs, F32 out_vecs, int window, int negative, bool cbow, bool basket,
                       bool shared_negatives, float alpha_start, float alpha_end, uint64_t seed,
                       int n_threads) {
    check_vectors(in_vecs, out_vecs);
    const int64_t n_items = in_vecs.shape(0);
    if (offsets.ndim() != 1 || offsets.shape(0) < 1)
        throw std::invalid_argument("offsets must be 1-D, length >= 1");
    const int64_t n_seq = offsets.shape(0) - 1;
    const int64_t* off = offsets.data();
    if (off[0] < 0 || off[n_seq] > items.shape(0))
        throw std::invalid_argument("offsets out of range of items");
    for (int64_t s = 0; s < n_seq; ++s)
        if (off[s + 1] < off[s]) throw std::invalid_argument("offsets must be non-decreasing");
    if (neg_weights.ndim() != 1 || neg_weights.shape(0) != n_items)
        throw std::invalid_argument("neg_weights must have length n_items");
    const float* keep = nullptr;
    if (keep_prob) {
        if (keep_prob->ndim() != 1 || keep_prob->shape(0) != n_items)
            throw std::invalid_argument("keep_prob must have length n_items");
        keep = keep_prob->data();
    }
    if (window < 1) throw std::invalid_argument("window must be >= 1");
    if (negative < 1) throw std::invalid_argument("negative must be >= 1");
    recforge::SgnsConfig cfg;
    cfg.dim = static_cast<int>(in_vecs.shape(1));
    cfg.window = window;
    cfg.negative = negative;
    cfg.cbow = cbow;
    cfg.basket = basket;
    cfg.shared_negatives = shared_negatives;
    cfg.alpha_start = alpha_start;
    cfg.alpha_end = alpha_end;
    cfg.seed = seed;
    cfg.n_threads = n_threads;
    float* in = in_vecs.mutable_data();
    float* out = out_vecs.mutable_data();
    const int32_t* it = items.data();
    const double* w = neg_weights.data();
    py::gil_scoped_release release;
    const recforge::AliasTable table(w, n_items);
    return recforge::sgns_train_epoch(off, n_seq, it, keep, table, in, out, cfg);
}

void step_py(F32 in_vecs, F32 out_vecs, int32_t center, I32 contexts, I32 negatives, float lr,
             bool cbow, bool shared_negatives) {
    check_vectors(in_vecs, out_vecs);
    const int64_t n_items = in_vecs.shape(0);
    const int dim = static_cast<int>(in_vecs.shape(1));
    auto in_range = [&](int32_t i) { return i >= 0 && i < n_items; };
    if (!in_range(center)) throw std::invalid_argument("center out of range");
    for (int64_t i = 0; i < contexts.shape(0); ++i)
        if (!in_range(contexts.data()[i])) throw std::invalid_argument("contexts out of range");
    for (int64_t i = 0; i < negatives.shape(0); ++i)
        if (!in_range(negatives.data()[i])) throw std::invalid_argument("negatives out of range");
    const int n_neg = static_cast<int>(negatives.shape(0));
    std::vector<float> neu1(static_cast<size_t>(dim)), neu1e(static_cast<size_t>(dim)),
        g(n_neg + 1);
    std::vector<float*> rows(n_neg + 1);
    float* in = in_vecs.mutable_data();
    float* out = out_vecs.mutable_data();
    if (cbow) {
        recforge::cbow_update(center, contexts.data(), static_cast<int>(contexts.shape(0)),
                              negatives.data(), n_neg, in, out, dim, lr, neu1.data(), neu1e.data(),
                              rows.data(), g.data());
    } else if (shared_negatives) {
        recforge::SharedScratch scratch;
        recforge::sg_shared_window(center, contexts.data(), static_cast<int>(contexts.shape(0)),
                                   negatives.data(), n_neg, in, out, dim, lr, scratch);
    } else {
        for (int64_t i = 0; i < contexts.shape(0); ++i)
            recforge::sg_pair(center, contexts.data()[i], negatives.data(), n_neg, in, out, dim, lr,
                              neu1e.data(), rows.data(), g.data());
    }
}

F32 sigmoid_py(F32 x) {
    F32 out(x.shape(0));
    const auto& table = recforge::sigmoid_table();
    for (int64_t i = 0; i < x.shape(0); ++i) out.mutable_data()[i] = table(x.data()[i]);
    return out;
}

}  // namespace

void bind_sgns(py::module_& m) {
    m.def("sgns_train_epoch", &train_epoch_py, py::arg("offsets").noconvert(),
          py::arg("items").noconvert(), py::arg("keep_prob").noconvert(),
          py::arg("neg_weights").noconvert(), py::arg("in_vecs").noconvert(),
          py::arg("out_vecs").noconvert(), py::arg("window"), py::arg("negative"), py::arg("cbow"),
          py::arg("basket"), py::arg("shared_negatives"), py::arg("alpha_start"),
          py::arg("alpha_end"), py::arg("seed"), py::arg("n_threads"),
          "One word2vec negative-sampling epoch (skip-gram or CBOW) over sequences, updating "
          "in_vecs/out_vecs in "
          "place. Returns the number of words trained on after subsampling.");
    m.def("sgns_step", &step_py, py::arg("in_vecs").noconvert(), py::arg("out_vecs").noconvert(),
          py::arg("center"), py::arg("contexts").noconvert(), py::arg("negatives").noconvert(),
          py::arg("lr"), py::arg("cbow"), py::arg("shared_negatives"),
          "One negative-sampling update on fixed negatives (skip-gram: one pair per context, in "
          "order, or with shared_negatives the window's contexts as one block).");
    m.def("sgns_sigmoid", &sigmoid_py, py::arg("x").noconvert(),
          "The trainer's table sigmoid, for tests.");
}
