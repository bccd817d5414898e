// Constants the C++ kernels and Python share, defined here only (Python reads them from
// recforge._core.constants; see csrc/bindings/bind_constants.cpp).
#pragma once

#include <cstdint>

namespace recforge {

namespace gbdt {

// Histogram bins per feature: value bins 0 .. kMaxBin - 1, then the bin of missing values.
constexpr int kBins = 256;
constexpr uint8_t kMissingBin = 255;
// Most value bins of a feature: a numeric feature has at most kMaxBin - 1 edges (kMaxBin bins), a
// categorical feature at most kMaxBin categories (one bin each).
constexpr int kMaxBin = kMissingBin;
// The kernels' is_categorical flag per column: 0 numeric, 1 categorical, kBundleColumn a column of
// exclusive two-bin features (feature_bundle.hpp), split one bin vs the rest with missing values in
// the rest.
constexpr uint8_t kBundleColumn = 2;

// Objective codes of the gradient kernels.
enum Objective : int {
    kBinaryLogistic = 0,  // "binary:logistic"
    kSquaredError = 1,    // "reg:squarederror"
    kRankPairwise = 2,    // "rank:pairwise" (gradients per query group: rank_objective.hpp)
    kRankNdcg = 3,        // "rank:ndcg"
};

}  // namespace gbdt

namespace nn {

// Optimiser codes of the neural rankers' update kernel (recforge.kernels.nn.update).
enum Optimizer : int {
    kSgd = 0,
    kAdagrad = 1,
    kAdam = 2,
    kFtrl = 3,  // the wide part of Wide&Deep only
};

}  // namespace nn

}  // namespace recforge
