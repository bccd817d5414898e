// Learning-to-rank gradients for GBDT (LambdaMART): xgboost's rank:pairwise and rank:ndcg with the
// "topk" pair method, per query group.
//
// In a group, documents are ranked by their current score s (float32, descending, ties in row
// order). Pairs are (rank i, rank j) with i < min(n, top_k) and i < j; a pair whose labels are
// equal is skipped. For the pair, h = the higher label, l = the lower one:
//   σ = 1 / (1 + exp(−(s_h − s_l)))            (float32, as xgboost)
//   Δ = 1 (pairwise) or |ΔNDCG| of swapping the two ranks (ndcg: gain 2^y − 1 or y, discount
//       1 / log2(rank + 2), divided by the group's ideal DCG over its top min(n, top_k) labels)
//   Δ /= |s_h − s_l| + 0.01 when score_normalize and the group's scores are not all equal
//   λ = (σ − 1) Δ,  w = max(σ (1 − σ), 1e-16) Δ · 2
//   g_h += λ, g_l −= λ, h_h += w, h_l += w   (float32 sums)
// With normalize, the group's (g, h) are scaled by log2(1 + S) / S, S = Σ −2 λ (when S > 0).
// Finally they are multiplied by the group weight × (n_groups / Σ weights) when weights are given.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "recforge/constants.hpp"
#include "recforge/parallel.hpp"

namespace recforge {
namespace gbdt {

struct RankParams {
    int objective = kRankPairwise;  // kRankPairwise or kRankNdcg
    int64_t top_k = 32;             // pairs start at the first top_k ranks
    bool normalize = true;          // log2(1 + S) / S scaling per group
    bool score_normalize = true;    // Δ / (|s_h − s_l| + 0.01)
    bool exp_gain = true;           // NDCG gain 2^y − 1 (else y)
};

inline float rank_sigmoid(float x) {
    const float t = std::min(-x, 88.7f);  // no overflow of exp
    return 1.0f / (std::exp(t) + 1.0f + 1e-16f);
}

inline double ndcg_gain(float y, bool exp_gain) {
    return exp_gain ? std::exp2(static_cast<double>(y)) - 1.0 : y;
}

inline double ndcg_discount(int64_t rank) {
    return 1.0 / std::log2(static_cast<double>(rank) + 2.0);
}

// Gradients of one group: rows [0, n) of raw / y / gh (gh: interleaved float32 (g, h)).
// order, sorted_y: scratch of n entries.
inline void rank_group_gradients(const RankParams& p, const double* raw, const float* y, int64_t n,
                                 float scale, std::vector<int64_t>& order,
                                 std::vector<float>& score, std::vector<float>& sorted_y,
                                 float* gh) {
    std::fill(gh, gh + 2 * n, 0.0f);
    if (n < 2) return;
    order.resize(static_cast<size_t>(n));
    score.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) score[i] = static_cast<float>(raw[i]);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return score[a] > score[b]; });
    const int64_t k = std::min(n, p.top_k);
    double inv_idcg = 0.0;
    if (p.objective == kRankNdcg) {
        sorted_y.assign(y, y + n);
        std::sort(sorted_y.begin(), sorted_y.end(), [](float a, float b) { return a > b; });
        double idcg = 0.0;
        for (int64_t r = 0; r < k; ++r)
            idcg += ndcg_gain(sorted_y[r], p.exp_gain) * ndcg_discount(r);
        inv_idcg = idcg > 0.0 ? 1.0 / idcg : 0.0;
    }
    const float best = score[order.front()], worst = score[order.back()];
    double sum_lambda = 0.0;
    for (int64_t i = 0; i < k; ++i) {
        for (int64_t j = i + 1; j < n; ++j) {
            int64_t rank_high = i, rank_low = j;
            if (y[order[rank_high]] == y[order[rank_low]]) continue;
            if (y[order[rank_high]] < y[order[rank_low]]) std::swap(rank_high, rank_low);
            const int64_t high = order[rank_high], low = order[rank_low];
            const float s_high = score[high], s_low = score[low];
            double delta = 1.0;
            if (p.objective == kRankNdcg) {
                const double g_high = ndcg_gain(y[high], p.exp_gain),
                             g_low = ndcg_gain(y[low], p.exp_gain);
                const double d_high = ndcg_discount(rank_high), d_low = ndcg_discount(rank_low);
                delta =
                    std::abs((g_high * d_high + g_low * d_low - (g_low * d_high + g_high * d_low)) *
                             inv_idcg);
            }
            if (p.score_normalize && best != worst) delta /= std::abs(s_high - s_low) + 0.01;
            const double sigma = rank_sigmoid(s_high - s_low);
            const float lambda = static_cast<float>((sigma - 1.0) * delta);
            const float hess =
                static_cast<float>(std::max(sigma * (1.0 - sigma), 1e-16) * delta * 2.0);
            gh[2 * high] += lambda;
            gh[2 * high + 1] += hess;
            gh[2 * low] -= lambda;
            gh[2 * low + 1] += hess;
            sum_lambda += -2.0 * static_cast<double>(lambda);
        }
    }
    if (p.normalize && sum_lambda > 0.0) {
        const float norm = static_cast<float>(std::log2(1.0 + sum_lambda) / sum_lambda);
        for (int64_t i = 0; i < 2 * n; ++i) gh[i] *= norm;
    }
    if (scale != 1.0f)
        for (int64_t i = 0; i < 2 * n; ++i) gh[i] *= scale;
}

// Gradients of every group: group g is rows [group_ptr[g], group_ptr[g + 1]). group_weight may be
// null (all 1). gh: (n_rows, 2) float32, rows outside every group are left untouched.
inline void rank_gradients(const RankParams& p, const double* raw, const float* y,
                           const int64_t* group_ptr, int64_t n_groups, const float* group_weight,
                           float* gh, int n_threads) {
    double weight_norm = 1.0;
    if (group_weight) {
        double sum = 0.0;
        for (int64_t g = 0; g < n_groups; ++g) sum += group_weight[g];
        weight_norm = sum > 0.0 ? static_cast<double>(n_groups) / sum : 1.0;
    }
    const int64_t pairs = n_groups ? group_ptr[n_groups] * std::min<int64_t>(p.top_k, 64) : 0;
    n_threads = threads_for_work(n_threads, static_cast<double>(pairs), 200000.0);
    std::vector<std::vector<int64_t>> orders(static_cast<size_t>(std::max(1, n_threads)));
    std::vector<std::vector<float>> scores(orders.size()), sorted(orders.size());
    parallel_for(n_groups, n_threads, [&](int64_t g, int t) {
        const int64_t s = group_ptr[g], e = group_ptr[g + 1];
        const float scale = group_weight ? static_cast<float>(group_weight[g] * weight_norm) : 1.0f;
        rank_group_gradients(p, raw + s, y + s, e - s, scale, orders[t], scores[t], sorted[t],
                             gh + 2 * s);
    });
}

}  // namespace gbdt
}  // namespace recforge
