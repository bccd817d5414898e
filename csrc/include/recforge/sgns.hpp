// Word2vec with negative sampling (skip-gram and CBOW) over integer sequences, Hogwild threads.
//
// in_vecs (n_items x dim) are the item vectors users keep; out_vecs (n_items x dim) the output
// ("context") vectors of negative sampling. One call trains one epoch; Python drives the epochs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "recforge/parallel.hpp"
#include "recforge/rng.hpp"

namespace recforge {

// sigmoid(x) from a table over (-SIGMOID_MAX, SIGMOID_MAX), 0/1 outside (word2vec's convention).
// The table holds sigmoid at bin centres: |error| <= 0.25 * half a bin = 0.25 * SIGMOID_MAX / SIGMOID_BINS.
constexpr float SIGMOID_MAX = 6.0f;
constexpr int SIGMOID_BINS = 4096;

struct SigmoidTable {
    float v[SIGMOID_BINS];
    SigmoidTable() {
        for (int i = 0; i < SIGMOID_BINS; ++i) {
            const double x = -SIGMOID_MAX + (i + 0.5) * (2.0 * SIGMOID_MAX / SIGMOID_BINS);
            v[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)));
        }
    }
    float operator()(float x) const {
        if (x >= SIGMOID_MAX) return 1.0f;
        if (x <= -SIGMOID_MAX) return 0.0f;
        int i = static_cast<int>((x + SIGMOID_MAX) * (SIGMOID_BINS / (2.0f * SIGMOID_MAX)));
        return v[std::min(i, SIGMOID_BINS - 1)];
    }
};

inline const SigmoidTable& sigmoid_table() {
    static const SigmoidTable table;
    return table;
}

// Negative-sampling update of input vector `l1` towards `target` (label 1) and away from the
// negatives next_negative(d), d = 1..negative (a negative equal to `target` is skipped).
// Accumulates the input gradient (times lr) into `neu1e`; out_vecs rows are updated in place.
template <typename NextNegative>
inline void ns_update(const float* l1, int32_t target, int negative, NextNegative&& next_negative, float* out_vecs,
                      int dim, float lr, float* neu1e) {
    const SigmoidTable& sig = sigmoid_table();
    for (int d = 0; d <= negative; ++d) {
        int32_t t;
        float label;
        if (d == 0) {
            t = target;
            label = 1.0f;
        } else {
            t = next_negative(d);
            if (t == target) continue;
            label = 0.0f;
        }
        float* l2 = out_vecs + static_cast<int64_t>(t) * dim;
        const float g = (label - sig(dot(l1, l2, dim))) * lr;
        axpy(g, l2, neu1e, dim);
        axpy(g, l1, l2, dim);
    }
}

// Skip-gram pair: the input vector of `context` predicts `center`.
template <typename NextNegative>
inline void sg_pair(int32_t center, int32_t context, int negative, NextNegative&& next_negative, float* in_vecs,
                    float* out_vecs, int dim, float lr, float* neu1e) {
    float* l1 = in_vecs + static_cast<int64_t>(context) * dim;
    std::fill(neu1e, neu1e + dim, 0.0f);
    ns_update(l1, center, negative, next_negative, out_vecs, dim, lr, neu1e);
    axpy(1.0f, neu1e, l1, dim);
}

// CBOW: the mean of the contexts' input vectors predicts `center`; each context gets the full error.
template <typename NextNegative>
inline void cbow_update(int32_t center, const int32_t* contexts, int n_contexts, int negative,
                        NextNegative&& next_negative, float* in_vecs, float* out_vecs, int dim, float lr, float* neu1,
                        float* neu1e) {
    if (n_contexts <= 0) return;
    std::fill(neu1, neu1 + dim, 0.0f);
    std::fill(neu1e, neu1e + dim, 0.0f);
    for (int c = 0; c < n_contexts; ++c) axpy(1.0f, in_vecs + static_cast<int64_t>(contexts[c]) * dim, neu1, dim);
    const float inv = 1.0f / static_cast<float>(n_contexts);
    for (int j = 0; j < dim; ++j) neu1[j] *= inv;
    ns_update(neu1, center, negative, next_negative, out_vecs, dim, lr, neu1e);
    for (int c = 0; c < n_contexts; ++c) axpy(1.0f, neu1e, in_vecs + static_cast<int64_t>(contexts[c]) * dim, dim);
}

struct SgnsConfig {
    int dim = 64;
    int window = 5;
    int negative = 5;
    bool cbow = false;
    bool basket = false;       // window = the whole sequence
    float alpha_start = 0.025f;  // learning rate at the first word of the epoch
    float alpha_end = 0.025f;    // ... and after its last word (linear in between)
    uint64_t seed = 0;
    int n_threads = 1;
    int64_t block_words = 2000;  // sequences are grouped into blocks of about this many words
};

// Train on the sequences of one block [s_begin, s_end) with its own random stream.
RECFORGE_HOT_CLONES
inline int64_t sgns_train_block(const int64_t* offsets, int64_t s_begin, int64_t s_end, const int32_t* items,
                                const float* keep_prob, const AliasTable& negatives, float* in_vecs, float* out_vecs,
                                const SgnsConfig& cfg, uint64_t block_seed, int64_t first, int64_t total) {
    Rng rng(block_seed);
    const int dim = cfg.dim;
    std::vector<float> neu1(static_cast<size_t>(dim)), neu1e(static_cast<size_t>(dim));
    std::vector<int32_t> sent, ctx;
    // Negatives are drawn one update ahead so that their output rows can be prefetched: on a large
    // catalogue the rows are far from the cache, and waiting for them dominates the update.
    std::vector<int32_t> negs_cur(static_cast<size_t>(cfg.negative)), negs_next(static_cast<size_t>(cfg.negative));
    auto refill = [&]() {
        for (auto& j : negs_next) {
            j = static_cast<int32_t>(negatives.draw(rng.next()));
            prefetch_row(out_vecs + static_cast<int64_t>(j) * dim, dim);
        }
    };
    refill();
    auto next_negative = [&](int d) {
        if (d == 1) {  // a new update starts: take the prefetched draws, draw (and prefetch) the next ones
            negs_cur.swap(negs_next);
            refill();
        }
        return negs_cur[static_cast<size_t>(d - 1)];
    };
    int64_t count = 0;
    for (int64_t s = s_begin; s < s_end; ++s) {
        const float lr = cfg.alpha_start + (cfg.alpha_end - cfg.alpha_start) *
                                               static_cast<float>(offsets[s] - first) / static_cast<float>(total);
        sent.clear();
        for (int64_t p = offsets[s]; p < offsets[s + 1]; ++p) {
            const int32_t w = items[p];
            if (keep_prob && keep_prob[w] < 1.0f && rng.uniform() >= keep_prob[w]) continue;
            sent.push_back(w);
        }
        const int n = static_cast<int>(sent.size());
        count += n;
        if (n < 2) continue;
        for (int pos = 0; pos < n; ++pos) {
            if (pos + 1 < n) prefetch_row(out_vecs + static_cast<int64_t>(sent[pos + 1]) * dim, dim);
            const int win = cfg.basket ? n : cfg.window - static_cast<int>(rng.below(cfg.window));
            const int lo = std::max(0, pos - win), hi = std::min(n, pos + win + 1);
            if (cfg.cbow) {
                ctx.clear();
                for (int c = lo; c < hi; ++c)
                    if (c != pos) ctx.push_back(sent[c]);
                cbow_update(sent[pos], ctx.data(), static_cast<int>(ctx.size()), cfg.negative, next_negative, in_vecs,
                            out_vecs, dim, lr, neu1.data(), neu1e.data());
            } else {
                for (int c = lo; c < hi; ++c) {
                    if (c + 1 < hi) prefetch_row(in_vecs + static_cast<int64_t>(sent[c + 1]) * dim, dim);
                    if (c != pos)
                        sg_pair(sent[pos], sent[c], cfg.negative, next_negative, in_vecs, out_vecs, dim, lr,
                                neu1e.data());
                }
            }
        }
    }
    return count;
}

// One epoch over the sequences items[offsets[s]:offsets[s+1]], s < n_seq.
// keep_prob (n_items, may be null): probability of keeping each occurrence of an item (subsampling).
// Randomness comes from one stream per block of sequences (seeded from cfg.seed and the block index),
// and the learning rate of a sequence from its position in the corpus, so at n_threads=1 the result is
// bit-identical for a seed; with more threads the Hogwild updates race (as in word2vec and gensim).
// Returns the number of words trained on (after subsampling).
inline int64_t sgns_train_epoch(const int64_t* offsets, int64_t n_seq, const int32_t* items, const float* keep_prob,
                                const AliasTable& negatives, float* in_vecs, float* out_vecs, const SgnsConfig& cfg) {
    if (n_seq <= 0) return 0;
    const int64_t first = offsets[0], total = std::max<int64_t>(1, offsets[n_seq] - offsets[0]);
    std::vector<int64_t> block_start{0};
    for (int64_t s = 0; s < n_seq; ++s)
        if (offsets[s + 1] - offsets[block_start.back()] >= cfg.block_words) block_start.push_back(s + 1);
    if (block_start.back() != n_seq) block_start.push_back(n_seq);
    const int64_t n_blocks = static_cast<int64_t>(block_start.size()) - 1;
    std::vector<int64_t> trained(static_cast<size_t>(n_blocks), 0);
    parallel_for(
        n_blocks, cfg.n_threads,
        [&](int64_t b, int) {
            trained[static_cast<size_t>(b)] =
                sgns_train_block(offsets, block_start[b], block_start[b + 1], items, keep_prob, negatives, in_vecs,
                                 out_vecs, cfg, derive_seed(cfg.seed, static_cast<uint64_t>(b)), first, total);
        },
        1);
    int64_t sum = 0;
    for (int64_t c : trained) sum += c;
    return sum;
}

}  // namespace recforge
