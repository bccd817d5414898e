// Latent factor model trained by SGD on implicit feedback, Hogwild threads.
//
// Score s(u, i) = p_u . q_i (+ b_i when item biases are fitted). Losses, with y the label:
//   squared  : 1/2 (y - s)^2                          (the course formulation; y = 1 positive, 0
//   sampled negative) logistic : -y log sig(s) - (1 - y) log(1 - sig(s)) bpr      : -log sig(s(u,
//   i) - s(u, j))             (i positive, j sampled negative)
// plus 1/2 reg_user |p_u|^2 + 1/2 reg_item |q|^2 + 1/2 reg_bias b^2 on the rows a step touches.
// One SGD step moves every touched parameter by -lr * its gradient, all gradients taken at the old
// values.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "recforge/parallel.hpp"
#include "recforge/rng.hpp"
#include "recforge/simd.hpp"

RECFORGE_SIMD_BEGIN

namespace recforge {

enum class LfmLoss : int { squared = 0, logistic = 1, bpr = 2 };

// sigmoid(x) and log(1 + exp(-|x|)) from one exp(-|x|): log(1 + exp(-x)) = that + max(-x, 0).
RECFORGE_ALWAYS_INLINE void logistic_terms(float x, float& sigmoid, float& log1p_exp_neg_abs) {
    const float e = std::exp(-std::min(40.0f, std::abs(x)));
    log1p_exp_neg_abs = std::log1p(e);
    sigmoid = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// p . (a - b), 8 lanes with the fixed order of recforge::dot.
RECFORGE_ALWAYS_INLINE float dot_diff(const float* p, const float* a, const float* b, int k) {
    int f = 0;
    float x;
#if defined(__GNUC__)
    f32x8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; f + 8 <= k; f += 8) acc += load8(p + f) * (load8(a + f) - load8(b + f));
    x = hsum8(acc);
#else
    x = 0.0f;
#endif
    for (; f < k; ++f) x += p[f] * (a[f] - b[f]);
    return x;
}

struct LfmConfig {
    LfmLoss loss = LfmLoss::bpr;
    float lr = 0.05f;
    float reg_user = 0.01f;
    float reg_item = 0.01f;
    float reg_bias = 0.01f;
    bool fit_bias = false;
    int n_negatives = 1;  // pointwise losses: negatives per positive
    int max_tries = 16;   // re-draws of a negative the user has touched before giving up on it
    uint64_t seed = 0;
    int n_threads = 1;
    int64_t block_steps = 4096;
};

// Pointwise step on (p, q, b) with label y; returns the loss before the step (regularisation
// excluded). p and q are rows of different arrays (never overlapping).
RECFORGE_ALWAYS_INLINE double lfm_pointwise_step(float* __restrict p, float* __restrict q, float* b,
                                                 int k, float y, const LfmConfig& c) {
    const float s = dot(p, q, k) + (c.fit_bias ? *b : 0.0f);
    float e;
    double loss;
    if (c.loss == LfmLoss::squared) {
        e = y - s;
        loss = 0.5 * static_cast<double>(e) * e;
    } else {
        float sig, l;
        logistic_terms(s, sig, l);
        e = y - sig;
        loss = l + std::max(y > 0.5f ? -s : s, 0.0f);  // log(1 + exp(-s)) or log(1 + exp(s))
    }
    const float lr = c.lr, ru = c.reg_user, ri = c.reg_item;
    int f = 0;
#if defined(__GNUC__)
    for (; f + 8 <= k; f += 8) {
        const f32x8 pf = load8(p + f), qf = load8(q + f);
        store8(p + f, pf + lr * (e * qf - ru * pf));
        store8(q + f, qf + lr * (e * pf - ri * qf));
    }
#endif
    for (; f < k; ++f) {
        const float pf = p[f], qf = q[f];
        p[f] = pf + lr * (e * qf - ru * pf);
        q[f] = qf + lr * (e * pf - ri * qf);
    }
    if (c.fit_bias) *b += lr * (e - c.reg_bias * *b);
    return loss;
}

// BPR step on user p, positive (qi, bi), negative (qj, bj); returns -log sig(x_uij) before the
// step. p, qi and qj never overlap (j != i: negatives are never items the user touched).
RECFORGE_ALWAYS_INLINE double lfm_bpr_step(float* __restrict p, float* __restrict qi,
                                           float* __restrict qj, float* bi, float* bj, int k,
                                           const LfmConfig& c) {
    float x = dot_diff(p, qi, qj, k);
    if (c.fit_bias) x += *bi - *bj;
    float sig, l;
    logistic_terms(x, sig, l);
    const float e = 1.0f - sig;
    const float lr = c.lr, ru = c.reg_user, ri = c.reg_item;
    int f = 0;
#if defined(__GNUC__)
    for (; f + 8 <= k; f += 8) {
        const f32x8 pf = load8(p + f), qif = load8(qi + f), qjf = load8(qj + f);
        store8(p + f, pf + lr * (e * (qif - qjf) - ru * pf));
        store8(qi + f, qif + lr * (e * pf - ri * qif));
        store8(qj + f, qjf + lr * (-e * pf - ri * qjf));
    }
#endif
    for (; f < k; ++f) {
        const float pf = p[f], qif = qi[f], qjf = qj[f];
        p[f] = pf + lr * (e * (qif - qjf) - ru * pf);
        qi[f] = qif + lr * (e * pf - ri * qif);
        qj[f] = qjf + lr * (-e * pf - ri * qjf);
    }
    if (c.fit_bias) {
        *bi += lr * (e - c.reg_bias * *bi);
        *bj += lr * (-e - c.reg_bias * *bj);
    }
    return l + std::max(-x, 0.0f);
}

// Whether the sorted row[0:len] holds x: a binary search whose steps are conditional moves, not
// branches (whether a random negative sorts left or right of a probe is a coin flip the branch
// predictor loses half the time).
RECFORGE_ALWAYS_INLINE bool sorted_contains(const int32_t* row, int64_t len, int32_t x) {
    if (len <= 0) return false;
    while (len > 1) {
        const int64_t half = len / 2;
        row = row[half] <= x ? row + half : row;
        len -= half;
    }
    return *row == x;
}

struct LfmEpochResult {
    double loss_sum = 0.0;
    int64_t n_terms = 0;
    int64_t n_skipped = 0;  // negatives given up on (every draw was an item the user touched)
};

// Steps [0, steps) of one block, with its own random stream. The positives and first negatives of
// the whole block are drawn first, so the rows of step s + LOOKAHEAD can be prefetched while step s
// runs (every step touches random rows of arrays far larger than the cache).
RECFORGE_HOT_CLONES
inline LfmEpochResult lfm_train_block(const int32_t* pos_users, const int32_t* pos_items,
                                      int64_t n_pos, int64_t steps, const int64_t* touched_indptr,
                                      const int32_t* touched_indices, const AliasTable& negatives,
                                      float* user_factors, float* item_factors, float* item_bias,
                                      int k, const LfmConfig& cfg, uint64_t block_seed) {
    constexpr int64_t LOOKAHEAD = 8;
    Rng rng(block_seed);
    LfmEpochResult r;
    std::vector<int64_t> picks(static_cast<size_t>(steps));
    std::vector<int32_t> first_negative(static_cast<size_t>(steps));
    for (int64_t s = 0; s < steps; ++s) {
        const uint64_t x = rng.next();
        picks[s] = n_pos < (int64_t(1) << 32)
                       ? static_cast<int64_t>(((x >> 32) * static_cast<uint64_t>(n_pos)) >> 32)
                       : static_cast<int64_t>(x % static_cast<uint64_t>(n_pos));
        first_negative[s] = static_cast<int32_t>(negatives.draw(rng.next()));
    }
    auto touched = [&](int32_t u, int32_t j) {
        return sorted_contains(touched_indices + touched_indptr[u],
                               touched_indptr[u + 1] - touched_indptr[u], j);
    };
    // A negative for user u: `candidate` if the user never touched it, else redraws (up to
    // max_tries in all).
    auto negative_for = [&](int32_t u, int32_t candidate) -> int32_t {
        for (int t = 0; t < cfg.max_tries; ++t) {
            if (t > 0) candidate = static_cast<int32_t>(negatives.draw(rng.next()));
            if (!touched(u, candidate)) return candidate;
        }
        return -1;
    };
    for (int64_t s = 0; s < steps; ++s) {
        if (s + 2 * LOOKAHEAD < steps) {
            RECFORGE_PREFETCH(pos_users + picks[s + 2 * LOOKAHEAD]);
            RECFORGE_PREFETCH(pos_items + picks[s + 2 * LOOKAHEAD]);
        }
        if (s + LOOKAHEAD < steps) {
            const int64_t ahead = picks[s + LOOKAHEAD];
            const int32_t ua = pos_users[ahead];
            prefetch_lines(user_factors + static_cast<int64_t>(ua) * k, k);
            prefetch_lines(item_factors + static_cast<int64_t>(pos_items[ahead]) * k, k);
            prefetch_lines(item_factors + static_cast<int64_t>(first_negative[s + LOOKAHEAD]) * k,
                           k);
            RECFORGE_PREFETCH(touched_indptr + ua);
        }
        if (s + LOOKAHEAD / 2 <
            steps) {  // the user's touched row, where the negative's check will search
            const int32_t ua = pos_users[picks[s + LOOKAHEAD / 2]];
            const int32_t* row = touched_indices + touched_indptr[ua];
            const int64_t len = touched_indptr[ua + 1] - touched_indptr[ua];
            if (len <= 256) {
                for (int64_t o = 0; o < len; o += 16) RECFORGE_PREFETCH(row + o);
            } else {  // the first probes of the binary search
                for (int64_t d = 1; d <= 8; ++d) RECFORGE_PREFETCH(row + len * d / 9);
            }
        }
        const int32_t u = pos_users[picks[s]], i = pos_items[picks[s]];
        float* p = user_factors + static_cast<int64_t>(u) * k;
        float* qi = item_factors + static_cast<int64_t>(i) * k;
        if (cfg.loss == LfmLoss::bpr) {
            const int32_t j = negative_for(u, first_negative[s]);
            if (j < 0) {
                ++r.n_skipped;
                continue;
            }
            r.loss_sum += lfm_bpr_step(p, qi, item_factors + static_cast<int64_t>(j) * k,
                                       item_bias + i, item_bias + j, k, cfg);
            ++r.n_terms;
        } else {
            r.loss_sum += lfm_pointwise_step(p, qi, item_bias + i, k, 1.0f, cfg);
            ++r.n_terms;
            for (int n = 0; n < cfg.n_negatives; ++n) {
                const int32_t j =
                    negative_for(u, n == 0 ? first_negative[s]
                                           : static_cast<int32_t>(negatives.draw(rng.next())));
                if (j < 0) {
                    ++r.n_skipped;
                    continue;
                }
                r.loss_sum += lfm_pointwise_step(p, item_factors + static_cast<int64_t>(j) * k,
                                                 item_bias + j, k, 0.0f, cfg);
                ++r.n_terms;
            }
        }
    }
    return r;
}

// One epoch of n_steps SGD steps. Each step picks a positive (u, i) uniformly among the n_pos given
// (pos_users[r], pos_items[r]); negatives j are drawn from `negatives` (alias table over items) and
// redrawn while the user touched them (touched_indptr/touched_indices: sorted CSR rows).
// One random stream per block of steps (seeded from cfg.seed and the block index): bit-identical at
// n_threads=1; Hogwild races with more threads.
inline LfmEpochResult lfm_train_epoch(const int32_t* pos_users, const int32_t* pos_items,
                                      int64_t n_pos, int64_t n_steps, const int64_t* touched_indptr,
                                      const int32_t* touched_indices, const AliasTable& negatives,
                                      float* user_factors, float* item_factors, float* item_bias,
                                      int k, const LfmConfig& cfg) {
    LfmEpochResult total;
    if (n_pos <= 0 || n_steps <= 0) return total;
    const int64_t n_blocks = (n_steps + cfg.block_steps - 1) / cfg.block_steps;
    std::vector<LfmEpochResult> parts(static_cast<size_t>(n_blocks));
    parallel_for(
        n_blocks, cfg.n_threads,
        [&](int64_t b, int) {
            const int64_t steps = std::min(cfg.block_steps, n_steps - b * cfg.block_steps);
            parts[static_cast<size_t>(b)] =
                lfm_train_block(pos_users, pos_items, n_pos, steps, touched_indptr, touched_indices,
                                negatives, user_factors, item_factors, item_bias, k, cfg,
                                derive_seed(cfg.seed, static_cast<uint64_t>(b)));
        },
        1);
    for (const auto& r : parts) {
        total.loss_sum += r.loss_sum;
        total.n_terms += r.n_terms;
        total.n_skipped += r.n_skipped;
    }
    return total;
}

}  // namespace recforge

RECFORGE_SIMD_END
