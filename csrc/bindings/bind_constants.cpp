// recforge._core.constants: the shared constants of csrc/include/recforge/constants.hpp.
#include <pybind11/pybind11.h>

#include "recforge/constants.hpp"

namespace py = pybind11;
namespace gb = recforge::gbdt;
namespace nn = recforge::nn;

void bind_constants(py::module_& m) {
    py::module_ c = m.def_submodule("constants", "Constants shared by the C++ kernels and Python.");
    c.attr("GBDT_N_BINS") = gb::kBins;
    c.attr("GBDT_MISSING_BIN") = static_cast<int>(gb::kMissingBin);
    c.attr("GBDT_MAX_BIN") = gb::kMaxBin;
    c.attr("GBDT_BUNDLE_COLUMN") = static_cast<int>(gb::kBundleColumn);
    py::dict objectives;
    objectives["binary:logistic"] = static_cast<int>(gb::kBinaryLogistic);
    objectives["reg:squarederror"] = static_cast<int>(gb::kSquaredError);
    objectives["rank:pairwise"] = static_cast<int>(gb::kRankPairwise);
    objectives["rank:ndcg"] = static_cast<int>(gb::kRankNdcg);
    c.attr("GBDT_OBJECTIVES") = objectives;
    py::dict optimizers;
    optimizers["sgd"] = static_cast<int>(nn::kSgd);
    optimizers["adagrad"] = static_cast<int>(nn::kAdagrad);
    optimizers["adam"] = static_cast<int>(nn::kAdam);
    optimizers["ftrl"] = static_cast<int>(nn::kFtrl);
    c.attr("NN_OPTIMIZERS") = optimizers;
}
