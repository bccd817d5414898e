// Latent factor model trained by SGD on implicit feedback, Hogwild threads.
//
// Score s(u, i) = p_u . q_i (+ b_i when item biases are fitted). Losses, with y the label:
//   squared  : 1/2 (y - s)^2  (the course formulation; y = 1 positive, 0 sampled negative)
//   logistic : -y log sig(s) - (1 - y) log(1 - sig(s))
//   bpr      : -log sig(s(u, i) - s(u, j))  (i positive, j sampled negative)
// plus 1/2 reg_user |p_u|^2 + 1/2 reg_item |q|^2 + 1/2 reg_bias b^2 on the rows a step touches.
// One SGD step moves every touched parameter by -lr * its gradient, all gradients taken at the old
// values.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "recforge/adaptive_parallel.hpp"
#include "recforge/parallel.hpp"
#include "recforge/rng.hpp"
#include "recforge/simd.hpp"

RECFORGE_SIMD_BEGIN

namespace recforge {

enum class LfmLoss : int { squared = 0, logistic = 1, bpr = 2 };

// A loss term log(1 + log1p_of) + rest (log1p_of in [0, 1]): the log-losses split so that an epoch
// sums their log1p parts as one product (LogLossSum) instead of taking a log per step.
struct LossTerm {
    float log1p_of = 0.0f;
    double rest = 0.0;
    double value() const { return std::log1p(static_cast<double>(log1p_of)) + rest; }
};

// A sum of LossTerms: the log1p parts as a running product of (1 + log1p_of) in double (each
// factor in [1, 2]) whose binary exponent is taken out as it grows, so a term costs a multiply,
// an add and a compare (the log of every term was a seventh of a BPR epoch).
class LogLossSum {
  public:
    void add(const LossTerm& t) {
        product_ *= 1.0 + static_cast<double>(t.log1p_of);
        rest_ += t.rest;
        if (product_ > kScale) {
            product_ *= 1.0 / kScale;
            ++scales_;
        }
    }
    void merge(const LogLossSum& o) {
        product_ *= o.product_;  // < 2^(2 * 256): no overflow
        scales_ += o.scales_;
        rest_ += o.rest_;
        while (product_ > kScale) {
            product_ *= 1.0 / kScale;
            ++scales_;
        }
    }
    double value() const {
        return std::log(product_) + static_cast<double>(scales_) * kLogScale + rest_;
    }

  private:
    static constexpr double kScale = 0x1p256;  // a power of two: taking it out is exact
    static constexpr double kLogScale = 256 * 0.693147180559945309417232121458;
    double product_ = 1.0, rest_ = 0.0;
    int64_t scales_ = 0;
};

// sigmoid(x), and -log sigmoid(x) = log(1 + exp(-|x|)) + max(-x, 0), from one exp(-|x|).
RECFORGE_ALWAYS_INLINE LossTerm logistic_terms(float x, float& sigmoid) {
    const float e = std::exp(-std::min(40.0f, std::abs(x)));
    sigmoid = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    LossTerm minus_log_sigmoid;
    minus_log_sigmoid.log1p_of = e;
    minus_log_sigmoid.rest = std::max(-x, 0.0f);
    return minus_log_sigmoid;
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
};

// Pointwise step on (p, q, b) with label y; returns the loss before the step (regularisation
// excluded). p and q are rows of different arrays (never overlapping).
RECFORGE_ALWAYS_INLINE LossTerm lfm_pointwise_step(float* __restrict p, float* __restrict q,
                                                   float* b, int k, float y, const LfmConfig& c) {
    const float s = dot(p, q, k) + (c.fit_bias ? *b : 0.0f);
    float e;
    LossTerm loss;
    if (c.loss == LfmLoss::squared) {
        e = y - s;
        loss.rest = 0.5 * static_cast<double>(e) * e;
    } else {
        float sig;
        loss = logistic_terms(s, sig);  // -log sigmoid(s); a negative's -log sigmoid(-s) differs
        if (y <= 0.5f) loss.rest = std::max(s, 0.0f);  // only in the max
        e = y - sig;
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
RECFORGE_ALWAYS_INLINE LossTerm lfm_bpr_step(float* __restrict p, float* __restrict qi,
                                             float* __restrict qj, float* bi, float* bj, int k,
                                             const LfmConfig& c) {
    float x = dot_diff(p, qi, qj, k);
    if (c.fit_bias) x += *bi - *bj;
    float sig;
    const LossTerm loss = logistic_terms(x, sig);
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
    return loss;
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

// What the epochs of one fit sample from: the positives (pos_users[r], pos_items[r]), every item
// each user touched (sorted CSR rows: never drawn as their negatives) and the negative sampler.
// Built once per fit; it points into the caller's arrays, which must outlive it unchanged.
//
// "Did user u touch item j" is asked once or more per step. While a bit per (user, item) takes no
// more memory than the touched lists themselves (or at most kTouchedBitsMinBytes), it is a bit
// matrix: one load, prefetched with the step's rows; otherwise a binary search of u's row (both
// give the same answers; `check` forces one of them, for tests and measurements).
enum class TouchedCheck : int { automatic = -1, search = 0, bits = 1 };

class LfmSampler {
  public:
    static constexpr int64_t kTouchedBitsMinBytes = int64_t(1) << 20;

    LfmSampler(const int32_t* pos_users, const int32_t* pos_items, int64_t n_pos,
               const int64_t* touched_indptr, const int32_t* touched_indices, int64_t n_users,
               const double* neg_weights, int64_t n_items,
               TouchedCheck check = TouchedCheck::automatic)
        : pos_users_(pos_users),
          pos_items_(pos_items),
          n_pos_(n_pos),
          indptr_(touched_indptr),
          indices_(touched_indices),
          negatives_(neg_weights, n_items),
          words_per_user_((n_items + 63) / 64) {
        const int64_t nnz = touched_indptr[n_users];
        const double bit_bytes = 8.0 * static_cast<double>(words_per_user_) * n_users;
        const bool small = bit_bytes <= std::max<double>(kTouchedBitsMinBytes, 4.0 * nnz);
        if (check == TouchedCheck::search || (check == TouchedCheck::automatic && !small)) return;
        bits_.assign(static_cast<size_t>(words_per_user_ * n_users), 0);
        for (int64_t u = 0; u < n_users; ++u) {
            uint64_t* row = bits_.data() + u * words_per_user_;
            for (int64_t t = touched_indptr[u]; t < touched_indptr[u + 1]; ++t)
                row[touched_indices[t] >> 6] |= uint64_t(1) << (touched_indices[t] & 63);
        }
    }

    int64_t n_pos() const { return n_pos_; }
    int32_t user(int64_t r) const { return pos_users_[r]; }
    int32_t item(int64_t r) const { return pos_items_[r]; }
    uint32_t draw_negative(uint64_t random) const { return negatives_.draw(random); }
    bool uses_bits() const { return !bits_.empty(); }
    const int64_t* touched_indptr() const { return indptr_; }
    const int32_t* touched_indices() const { return indices_; }

    bool touched(int32_t u, int32_t j) const {
        if (!bits_.empty())
            return (bits_[static_cast<size_t>(u * words_per_user_ + (j >> 6))] >> (j & 63)) & 1;
        return sorted_contains(indices_ + indptr_[u], indptr_[u + 1] - indptr_[u], j);
    }

    // Prefetches for the touched(u, j) check of a step ahead of the current one: with the bit
    // matrix, the bit; else the row's bounds (the block then prefetches the row, half as far
    // ahead, once its start can be read).
    void prefetch_touched_bit(int32_t u, int32_t j) const {
        RECFORGE_PREFETCH(bits_.data() + u * words_per_user_ + (j >> 6));
    }
    void prefetch_touched_bounds(int32_t u) const { RECFORGE_PREFETCH(indptr_ + u); }
    void prefetch_positive(int64_t r) const {
        RECFORGE_PREFETCH(pos_users_ + r);
        RECFORGE_PREFETCH(pos_items_ + r);
    }

  private:
    const int32_t* pos_users_;
    const int32_t* pos_items_;
    int64_t n_pos_;
    const int64_t* indptr_;
    const int32_t* indices_;
    AliasTable negatives_;
    int64_t words_per_user_;
    std::vector<uint64_t> bits_;  // (n_users, words_per_user_) bit matrix, or empty
};

struct LfmEpochResult {
    LogLossSum loss;
    int64_t n_terms = 0;
    int64_t n_skipped = 0;  // negatives given up on (every draw was an item the user touched)

    void merge(const LfmEpochResult& o) {
        loss.merge(o.loss);
        n_terms += o.n_terms;
        n_skipped += o.n_skipped;
    }
};

// Steps [0, steps) of one block, with its own random stream. The positives and first negatives of
// the whole block are drawn first, so the rows of step s + LOOKAHEAD can be prefetched while step s
// runs (every step touches random rows of arrays far larger than the cache).
RECFORGE_HOT_CLONES
inline LfmEpochResult lfm_train_block(const LfmSampler& sampler, int64_t steps, float* user_factors,
                                      float* item_factors, float* item_bias, int k,
                                      const LfmConfig& cfg, uint64_t block_seed) {
    constexpr int64_t LOOKAHEAD = 8;
    Rng rng(block_seed);
    LfmEpochResult r;
    const int64_t n_pos = sampler.n_pos();
    const bool bits = sampler.uses_bits();
    const int64_t* touched_indptr = sampler.touched_indptr();
    const int32_t* touched_indices = sampler.touched_indices();
    std::vector<int64_t> picks(static_cast<size_t>(steps));
    std::vector<int32_t> first_negative(static_cast<size_t>(steps));
    for (int64_t s = 0; s < steps; ++s) {
        const uint64_t x = rng.next();
        picks[s] = n_pos < (int64_t(1) << 32)
                       ? static_cast<int64_t>(((x >> 32) * static_cast<uint64_t>(n_pos)) >> 32)
                       : static_cast<int64_t>(x % static_cast<uint64_t>(n_pos));
        first_negative[s] = static_cast<int32_t>(sampler.draw_negative(rng.next()));
    }
    // A negative for user u: `candidate` if the user never touched it, else redraws (up to
    // max_tries in all).
    auto negative_for = [&](int32_t u, int32_t candidate) -> int32_t {
        for (int t = 0; t < cfg.max_tries; ++t) {
            if (t > 0) candidate = static_cast<int32_t>(sampler.draw_negative(rng.next()));
            if (!sampler.touched(u, candidate)) return candidate;
        }
        return -1;
    };
    for (int64_t s = 0; s < steps; ++s) {
        if (s + 2 * LOOKAHEAD < steps) sampler.prefetch_positive(picks[s + 2 * LOOKAHEAD]);
        if (s + LOOKAHEAD < steps) {
            const int64_t ahead = picks[s + LOOKAHEAD];
            const int32_t ua = sampler.user(ahead), ja = first_negative[s + LOOKAHEAD];
            prefetch_lines(user_factors + static_cast<int64_t>(ua) * k, k);
            prefetch_lines(item_factors + static_cast<int64_t>(sampler.item(ahead)) * k, k);
            prefetch_lines(item_factors + static_cast<int64_t>(ja) * k, k);
            if (bits)
                sampler.prefetch_touched_bit(ua, ja);
            else
                sampler.prefetch_touched_bounds(ua);
        }
        if (!bits && s + LOOKAHEAD / 2 < steps) {  // the user's row, where the check will search
            const int32_t ua = sampler.user(picks[s + LOOKAHEAD / 2]);
            const int32_t* row = touched_indices + touched_indptr[ua];
            const int64_t len = touched_indptr[ua + 1] - touched_indptr[ua];
            if (len <= 256) {
                for (int64_t o = 0; o < len; o += 16) RECFORGE_PREFETCH(row + o);
            } else {  // the first probes of the binary search
                for (int64_t d = 1; d <= 8; ++d) RECFORGE_PREFETCH(row + len * d / 9);
            }
        }
        const int32_t u = sampler.user(picks[s]), i = sampler.item(picks[s]);
        float* p = user_factors + static_cast<int64_t>(u) * k;
        float* qi = item_factors + static_cast<int64_t>(i) * k;
        if (cfg.loss == LfmLoss::bpr) {
            const int32_t j = negative_for(u, first_negative[s]);
            if (j < 0) {
                ++r.n_skipped;
                continue;
            }
            r.loss.add(lfm_bpr_step(p, qi, item_factors + static_cast<int64_t>(j) * k,
                                    item_bias + i, item_bias + j, k, cfg));
            ++r.n_terms;
        } else {
            r.loss.add(lfm_pointwise_step(p, qi, item_bias + i, k, 1.0f, cfg));
            ++r.n_terms;
            for (int n = 0; n < cfg.n_negatives; ++n) {
                const int32_t j = negative_for(
                    u, n == 0 ? first_negative[s]
                              : static_cast<int32_t>(sampler.draw_negative(rng.next())));
                if (j < 0) {
                    ++r.n_skipped;
                    continue;
                }
                r.loss.add(lfm_pointwise_step(p, item_factors + static_cast<int64_t>(j) * k,
                                              item_bias + j, k, 0.0f, cfg));
                ++r.n_terms;
            }
        }
    }
    return r;
}

// Steps per block of an epoch of n_steps: small enough that 2+ threads share even a short epoch
// evenly (~64 blocks), large enough that a block's setup is nothing next to its steps. A function
// of n_steps only, never of n_threads: the random streams are the same for any n_threads.
inline int64_t lfm_block_steps(int64_t n_steps) {
    return std::min<int64_t>(4096, std::max<int64_t>(512, n_steps / 64));
}

// One epoch of n_steps SGD steps. Each step picks a positive uniformly among the sampler's; its
// negatives are drawn from the sampler's alias table and redrawn while the user touched them.
// One random stream per block of steps (seeded from cfg.seed and the block index): bit-identical at
// n_threads=1; Hogwild races with more threads, which run the blocks while they are measured faster
// than the calling thread alone (parallel_for_adaptive).
inline LfmEpochResult lfm_train_epoch(const LfmSampler& sampler, int64_t n_steps,
                                      float* user_factors, float* item_factors, float* item_bias,
                                      int k, const LfmConfig& cfg) {
    LfmEpochResult total;
    if (sampler.n_pos() <= 0 || n_steps <= 0) return total;
    const int64_t block_steps = lfm_block_steps(n_steps);
    const int64_t n_blocks = (n_steps + block_steps - 1) / block_steps;
    std::vector<LfmEpochResult> parts(static_cast<size_t>(n_blocks));
    static detail::AdaptiveMemory memory;  // (the epochs of a fit)
    parallel_for_adaptive(
        n_blocks, cfg.n_threads,
        [&](int64_t b, int) {
            const int64_t steps = std::min(block_steps, n_steps - b * block_steps);
            parts[static_cast<size_t>(b)] =
                lfm_train_block(sampler, steps, user_factors, item_factors, item_bias, k, cfg,
                                derive_seed(cfg.seed, static_cast<uint64_t>(b)));
        },
        &memory);
    for (const auto& r : parts) total.merge(r);
    return total;
}

// v[0:n] uniform on [lo, lo + 2^24 * scale): four xoshiro256** streams (seeded from seed and the
// lane) stepped together in the lanes of one vector, each 64-bit draw giving two 24-bit values:
// eight values per step, in the order of the lanes (lane l: v[2l] from bits 40..63, v[2l + 1] from
// bits 8..31). The same values with or without vector extensions.
RECFORGE_HOT_CLONES
inline void fill_uniform_4x(float* v, int64_t n, float lo, float scale, uint64_t seed) {
    float tail[8];
#if defined(__GNUC__)
    typedef uint64_t Lanes __attribute__((vector_size(32)));
    typedef int32_t Halves __attribute__((vector_size(32)));
    Lanes s[4];  // lane l holds the state of Rng(derive_seed(seed, l))
    for (int l = 0; l < 4; ++l) {
        uint64_t x = derive_seed(seed, static_cast<uint64_t>(l));
        for (int w = 0; w < 4; ++w) s[w][l] = splitmix64(x);
    }
    for (int64_t t = 0; t < n; t += 8) {
        float* out = t + 8 <= n ? v + t : tail;
        const Lanes result = xoshiro256ss_step(s);
        // lane l's two values as the int32 pair (2l, 2l + 1) of one vector
        const Lanes pairs = (result >> 40) | (((result >> 8) & 0xFFFFFF) << 32);
        Halves h;
        __builtin_memcpy(&h, &pairs, sizeof(h));
        const f32x8 f = __builtin_convertvector(h, f32x8) * scale + lo;
        store8(out, f);
        if (out == tail) std::copy(tail, tail + (n - t), v + t);
    }
#else
    Rng lanes[4] = {Rng(derive_seed(seed, 0)), Rng(derive_seed(seed, 1)), Rng(derive_seed(seed, 2)),
                    Rng(derive_seed(seed, 3))};
    for (int64_t t = 0; t < n; t += 8) {
        float* out = t + 8 <= n ? v + t : tail;
        for (int l = 0; l < 4; ++l) {
            const uint64_t result = lanes[l].next();
            out[2 * l] = static_cast<float>(result >> 40) * scale + lo;
            out[2 * l + 1] = static_cast<float>((result >> 8) & 0xFFFFFF) * scale + lo;
        }
        if (out == tail) std::copy(tail, tail + (n - t), v + t);
    }
#endif
}

// Initial factors: out (n_rows, k) uniform on [-half_width, half_width), 24 random bits per value,
// one set of random streams per block of rows (seeded from seed and the block index), so the values
// do not depend on n_threads.
inline void lfm_initial_factors(float* out, int64_t n_rows, int k, float half_width, uint64_t seed,
                                int n_threads) {
    constexpr int64_t kBlockRows = 256;
    const int64_t n_blocks = (n_rows + kBlockRows - 1) / kBlockRows;
    const float scale = 2.0f * half_width / 16777216.0f;
    parallel_for(n_blocks, threads_for_work(n_threads, static_cast<double>(n_rows) * k, 1 << 17),
                 [&](int64_t b, int) {
                     const int64_t rows = std::min(n_rows, (b + 1) * kBlockRows) - b * kBlockRows;
                     fill_uniform_4x(out + b * kBlockRows * k, rows * k, -half_width, scale,
                                     derive_seed(seed, static_cast<uint64_t>(b)));
                 });
}

}  // namespace recforge

RECFORGE_SIMD_END
