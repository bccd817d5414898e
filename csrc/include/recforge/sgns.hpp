// Word2vec with negative sampling (skip-gram and CBOW) over integer sequences, Hogwild threads.
//
// in_vecs (n_items x dim) are the item vectors users keep; out_vecs (n_items x dim) the output
// ("context") vectors of negative sampling. One call trains one epoch; Python drives the epochs.
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

// sigmoid(x) from a table over (-SIGMOID_MAX, SIGMOID_MAX), 0/1 outside (word2vec's convention).
// The table holds sigmoid at bin centres: |error| <= 0.25 * half a bin = 0.25 * SIGMOID_MAX /
// SIGMOID_BINS.
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
    // Branch-free (the clamped index is always valid; selects pick 0/1 outside the range).
    float operator()(float x) const {
        const float bin = (x + SIGMOID_MAX) * (SIGMOID_BINS / (2.0f * SIGMOID_MAX));
        const float t = v[static_cast<int>(
            std::min(std::max(0.0f, bin), static_cast<float>(SIGMOID_BINS - 1)))];
        return x >= SIGMOID_MAX ? 1.0f : (x <= -SIGMOID_MAX ? 0.0f : t);
    }
};

inline const SigmoidTable& sigmoid_table() {
    static const SigmoidTable table;
    return table;
}

// out[d] = dot(l1, rows[d], dim) for d < n, bit-identical to dot() (same partial sums in the same
// order), two rows per pass so that their loads and add chains overlap.
RECFORGE_ALWAYS_INLINE void dot_rows(const float* l1, float* const* rows, int n, int dim,
                                     float* out) {
#if defined(__GNUC__)
    int d = 0;
    for (; d + 2 <= n; d += 2) {
        const float *r0 = rows[d], *r1 = rows[d + 1];
        f32x8 a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0;
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            const f32x8 l = load8(l1 + i);
            a0 += l * load8(r0 + i);
            a1 += l * load8(r1 + i);
        }
        float s0 = hsum8(a0), s1 = hsum8(a1);
        for (; i < dim; ++i) {
            s0 += l1[i] * r0[i];
            s1 += l1[i] * r1[i];
        }
        out[d] = s0;
        out[d + 1] = s1;
    }
    if (d < n) out[d] = dot(l1, rows[d], dim);
#else
    for (int d = 0; d < n; ++d) out[d] = dot(l1, rows[d], dim);
#endif
}

// The updates of ns_update's fast path, one column block at a time: e = sum_d g[d] * rows[d]
// (accumulated in order d = 0, 1, ...) and rows[d] += g[d] * l1, each row read before it is
// written. e is stored in neu1e, or, with ADD_TO_INPUT, added to l1 itself (skip-gram) once the
// block is done.
template <bool ADD_TO_INPUT>
RECFORGE_ALWAYS_INLINE void ns_apply(float* l1, float* const* rows, const float* g, int n, int dim,
                                     float* neu1e) {
#if defined(__GNUC__)
    int j = 0;
    for (; j + 8 <= dim; j += 8) {
        const f32x8 l = load8(l1 + j);
        f32x8 e = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int d = 0; d < n; ++d) {
            const f32x8 gd = {g[d], g[d], g[d], g[d], g[d], g[d], g[d], g[d]};
            const f32x8 r = load8(rows[d] + j);
            e += gd * r;
            store8(rows[d] + j, r + gd * l);
        }
        if (ADD_TO_INPUT)
            store8(l1 + j, l + e);
        else
            store8(neu1e + j, e);
    }
#else
    int j = 0;
#endif
    for (; j < dim; ++j) {
        const float l = l1[j];
        float e = 0.0f;
        for (int d = 0; d < n; ++d) {
            const float r = rows[d][j];
            e += g[d] * r;
            rows[d][j] = r + g[d] * l;
        }
        if (ADD_TO_INPUT)
            l1[j] = l + e;
        else
            neu1e[j] = e;
    }
}

// Negative-sampling update of input vector `l1` towards `target` (label 1) and away from the
// negatives neg[0..negative) (a negative equal to `target` is skipped). Every output row moves in
// turn, each using its current value. The input gradient (times lr) is added to l1 (ADD_TO_INPUT,
// skip-gram) or returned in `neu1e` (CBOW), which is overwritten either way. `rows` and `g` are
// scratch of at least negative + 1 entries.
//
// When the rows are distinct (almost always) no row update can change a later dot product, so all
// dot products are taken first -- the row loads overlap instead of waiting on each other -- and the
// updates then run in one pass over the columns, with the same float operations in the same order
// as the row-by-row form (the fallback for repeated rows): the results are bit-identical.
template <bool ADD_TO_INPUT>
RECFORGE_ALWAYS_INLINE void ns_update(float* l1, int32_t target, const int32_t* neg, int negative,
                                      float* out_vecs, int dim, float lr, float* neu1e,
                                      float** rows, float* g) {
    const SigmoidTable& sig = sigmoid_table();
    int n = 0;
    rows[n++] = out_vecs + static_cast<int64_t>(target) * dim;
    for (int d = 0; d < negative; ++d)
        if (neg[d] != target) rows[n++] = out_vecs + static_cast<int64_t>(neg[d]) * dim;
    bool distinct = true;
    for (int a = 1; a < n && distinct; ++a)
        for (int b = 1; b < a; ++b)
            if (rows[a] == rows[b]) distinct = false;
    if (!distinct) {
        std::fill(neu1e, neu1e + dim, 0.0f);
        for (int d = 0; d < n; ++d) {
            const float gd = ((d == 0 ? 1.0f : 0.0f) - sig(dot(l1, rows[d], dim))) * lr;
            axpy(gd, rows[d], neu1e, dim);
            axpy(gd, l1, rows[d], dim);
        }
        if (ADD_TO_INPUT) axpy(1.0f, neu1e, l1, dim);
        return;
    }
    dot_rows(l1, rows, n, dim, g);
    for (int d = 0; d < n; ++d) g[d] = ((d == 0 ? 1.0f : 0.0f) - sig(g[d])) * lr;
    ns_apply<ADD_TO_INPUT>(l1, rows, g, n, dim, neu1e);
}

// Skip-gram pair: the input vector of `context` predicts `center`.
RECFORGE_ALWAYS_INLINE void sg_pair(int32_t center, int32_t context, const int32_t* neg,
                                    int negative, float* in_vecs, float* out_vecs, int dim,
                                    float lr, float* neu1e, float** rows, float* g) {
    ns_update<true>(in_vecs + static_cast<int64_t>(context) * dim, center, neg, negative, out_vecs,
                    dim, lr, neu1e, rows, g);
}

// ---- skip-gram with negatives shared by a window (pWord2Vec: Ji et al. 2016, "Parallelizing
// Word2Vec in Shared and Distributed Memory") ----------------------------------------------------
//
// The input vectors of a window's contexts each predict the centre against the same negatives, so
// the window's pairs form one block: the dot products of (contexts x outputs) rows, then every row
// moves by -lr x its gradient of the block's summed loss, all taken at the values before the block.
// Each row is read and written once per block instead of once per pair, and the window draws
// `negative` negatives instead of `negative` per context.

// Most output rows (the centre and distinct negatives) and contexts in one block; a window with
// more contexts, or more distinct negatives, is trained as several blocks in turn.
constexpr int SHARED_MAX_OUTPUTS = 8;
constexpr int SHARED_MAX_CONTEXTS = 32;

// Scratch of the shared-negatives update (one per trainer thread).
struct SharedScratch {
    float* in_rows[SHARED_MAX_CONTEXTS];
    float in_weight[SHARED_MAX_CONTEXTS];
    float* out_rows[SHARED_MAX_OUTPUTS];
    float out_weight[SHARED_MAX_OUTPUTS];
    float g[SHARED_MAX_CONTEXTS * SHARED_MAX_OUTPUTS];
};

// rows[0..n) with weights: `row` gets weight 1 at the end, or adds 1 to the weight of its earlier
// copy (a repeated row's gradients at the same point sum to weight x one gradient). Returns n.
RECFORGE_ALWAYS_INLINE int add_distinct_row(float** rows, float* weight, int n, float* row) {
    for (int i = 0; i < n; ++i)
        if (rows[i] == row) {
            weight[i] += 1.0f;
            return n;
        }
    rows[n] = row;
    weight[n] = 1.0f;
    return n + 1;
}

// in[c] += sum_k g[c][k] out[k] and out[k] += sum_c g[c][k] in[c] for the K (distinct) output rows
// and n_in (distinct) input rows, every term from the values before the call, one column block at
// a time with the block's output rows and their updates held in registers. g is (n_in x K).
template <int K>
RECFORGE_ALWAYS_INLINE void shared_rank_updates(float* const* in, int n_in, float* const* out,
                                                const float* g, int dim) {
    int j = 0;
#if defined(__GNUC__)
    for (; j + 8 <= dim; j += 8) {
        f32x8 o[K], acc[K];
        for (int k = 0; k < K; ++k) {
            o[k] = load8(out[k] + j);
            acc[k] = f32x8{0, 0, 0, 0, 0, 0, 0, 0};
        }
        for (int c = 0; c < n_in; ++c) {
            const f32x8 x = load8(in[c] + j);
            f32x8 e = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int k = 0; k < K; ++k) {
                const float gk = g[c * K + k];
                const f32x8 gv = {gk, gk, gk, gk, gk, gk, gk, gk};
                e += gv * o[k];
                acc[k] += gv * x;
            }
            store8(in[c] + j, x + e);
        }
        for (int k = 0; k < K; ++k) store8(out[k] + j, o[k] + acc[k]);
    }
#endif
    for (; j < dim; ++j) {
        float o[K], acc[K];
        for (int k = 0; k < K; ++k) {
            o[k] = out[k][j];
            acc[k] = 0.0f;
        }
        for (int c = 0; c < n_in; ++c) {
            const float x = in[c][j];
            float e = 0.0f;
            for (int k = 0; k < K; ++k) {
                e += g[c * K + k] * o[k];
                acc[k] += g[c * K + k] * x;
            }
            in[c][j] = x + e;
        }
        for (int k = 0; k < K; ++k) out[k][j] = o[k] + acc[k];
    }
}

// shared_rank_updates<n_out> for 1 <= n_out <= K: the block's width as a compile-time constant, so
// that its output rows and their updates stay in registers.
template <int K>
RECFORGE_ALWAYS_INLINE void shared_rank_updates_upto(int n_out, float* const* in, int n_in,
                                                     float* const* out, const float* g, int dim) {
    if constexpr (K > 1)
        if (n_out < K) return shared_rank_updates_upto<K - 1>(n_out, in, n_in, out, g, dim);
    shared_rank_updates<K>(in, n_in, out, g, dim);
}

// One block: input rows s.in_rows[0..n_in) against output rows s.out_rows[0..n_out), the first of
// them the positive when `has_positive`; weights as add_distinct_row left them.
RECFORGE_ALWAYS_INLINE void shared_block(SharedScratch& s, int n_in, int n_out, bool has_positive,
                                         int dim, float lr) {
    const SigmoidTable& sig = sigmoid_table();
    for (int c = 0; c < n_in; ++c) {
        float* gc = s.g + c * n_out;
        dot_rows(s.in_rows[c], s.out_rows, n_out, dim, gc);
        for (int k = 0; k < n_out; ++k) {
            const float label = (has_positive && k == 0) ? 1.0f : 0.0f;
            gc[k] = (label - sig(gc[k])) * lr * (s.in_weight[c] * s.out_weight[k]);
        }
    }
    shared_rank_updates_upto<SHARED_MAX_OUTPUTS>(n_out, s.in_rows, n_in, s.out_rows, s.g, dim);
}

// Skip-gram window with shared negatives: the input vectors of contexts[0..n_contexts) predict
// `center` (label 1) against neg[0..negative) (label 0; a negative equal to `center` is skipped, a
// repeated one counts with its multiplicity). Contexts are taken SHARED_MAX_CONTEXTS at a time and
// outputs SHARED_MAX_OUTPUTS at a time (the centre in the first group), each group one block that
// sees the updates of the blocks before it.
RECFORGE_ALWAYS_INLINE void sg_shared_window(int32_t center, const int32_t* contexts,
                                             int n_contexts, const int32_t* neg, int negative,
                                             float* in_vecs, float* out_vecs, int dim, float lr,
                                             SharedScratch& s) {
    for (int c0 = 0; c0 < n_contexts; c0 += SHARED_MAX_CONTEXTS) {
        const int c1 = std::min(n_contexts, c0 + SHARED_MAX_CONTEXTS);
        int n_in = 0;
        for (int c = c0; c < c1; ++c)
            n_in = add_distinct_row(s.in_rows, s.in_weight, n_in,
                                    in_vecs + static_cast<int64_t>(contexts[c]) * dim);
        int d = 0;  // the next negative
        for (bool first = true; first || d < negative; first = false) {
            int n_out = 0;
            if (first) {
                s.out_rows[0] = out_vecs + static_cast<int64_t>(center) * dim;
                s.out_weight[0] = 1.0f;
                n_out = 1;
            }
            for (; d < negative && n_out < SHARED_MAX_OUTPUTS; ++d)
                if (neg[d] != center)
                    n_out = add_distinct_row(s.out_rows, s.out_weight, n_out,
                                             out_vecs + static_cast<int64_t>(neg[d]) * dim);
            if (n_out > 0) shared_block(s, n_in, n_out, first, dim, lr);
        }
    }
}

// CBOW: the mean of the contexts' input vectors predicts `center`; each context gets the full
// error.
RECFORGE_ALWAYS_INLINE void cbow_update(int32_t center, const int32_t* contexts, int n_contexts,
                                        const int32_t* neg, int negative, float* in_vecs,
                                        float* out_vecs, int dim, float lr, float* neu1,
                                        float* neu1e, float** rows, float* g) {
    if (n_contexts <= 0) return;
    std::fill(neu1, neu1 + dim, 0.0f);
    for (int c = 0; c < n_contexts; ++c)
        axpy(1.0f, in_vecs + static_cast<int64_t>(contexts[c]) * dim, neu1, dim);
    const float inv = 1.0f / static_cast<float>(n_contexts);
    for (int j = 0; j < dim; ++j) neu1[j] *= inv;
    ns_update<false>(neu1, center, neg, negative, out_vecs, dim, lr, neu1e, rows, g);
    for (int c = 0; c < n_contexts; ++c)
        axpy(1.0f, neu1e, in_vecs + static_cast<int64_t>(contexts[c]) * dim, dim);
}

// Negatives drawn `lookahead` updates ahead of their use from a stream of their own, so that their
// output rows can be prefetched: on a large catalogue the rows are far from the cache and waiting
// for them dominated the update. The draws do not depend on the lookahead.
class NegativeQueue {
  public:
    NegativeQueue(const AliasTable& table, uint64_t seed, int negative, int lookahead,
                  const float* out_vecs, int dim)
        : table_(table),
          rng_(seed),
          negative_(negative),
          ahead_(negative * lookahead),
          buf_(static_cast<size_t>(negative) * (lookahead + 1)),
          out_vecs_(out_vecs),
          dim_(dim) {
        for (int i = 0; i < ahead_; ++i) draw(i);
    }
    // The `negative` draws of the next update (valid until the following call).
    const int32_t* next() {
        const size_t cap = buf_.size();
        size_t tail = head_ + static_cast<size_t>(ahead_);
        if (tail >= cap) tail -= cap;
        for (int k = 0; k < negative_; ++k) draw(tail + static_cast<size_t>(k));
        const int32_t* group = buf_.data() + head_;
        head_ += static_cast<size_t>(negative_);
        if (head_ == cap) head_ = 0;
        return group;
    }

  private:
    void draw(size_t i) {
        buf_[i] = static_cast<int32_t>(table_.draw(rng_.next()));
        prefetch_lines(out_vecs_ + static_cast<int64_t>(buf_[i]) * dim_, dim_);
    }
    const AliasTable& table_;
    Rng rng_;
    int negative_, ahead_;
    std::vector<int32_t> buf_;
    size_t head_ = 0;
    const float* out_vecs_;
    int dim_;
};

// Updates between drawing a negative (and prefetching its output row) and using it.
constexpr int NEGATIVE_LOOKAHEAD = 2;

struct SgnsConfig {
    int dim = 64;
    int window = 5;
    int negative = 5;
    bool cbow = false;
    bool basket = false;            // window = the whole sequence
    bool shared_negatives = false;  // skip-gram: one set of negatives per window (sg_shared_window)
    float alpha_start = 0.025f;     // learning rate at the first word of the epoch
    float alpha_end = 0.025f;       // ... and after its last word (linear in between)
    uint64_t seed = 0;
    int n_threads = 1;
    int64_t block_words = 2000;  // sequences are grouped into blocks of about this many words
};

// Train on the sequences of one block [s_begin, s_end) with its own random stream.
RECFORGE_HOT_CLONES
inline int64_t sgns_train_block(const int64_t* offsets, int64_t s_begin, int64_t s_end,
                                const int32_t* items, const float* keep_prob,
                                const AliasTable& negatives, float* in_vecs, float* out_vecs,
                                const SgnsConfig& cfg, uint64_t block_seed, int64_t first,
                                int64_t total) {
    Rng rng(block_seed);  // subsampling and window shrink; the negatives have a stream of their own
    NegativeQueue negs(negatives, derive_seed(block_seed, 1), cfg.negative, NEGATIVE_LOOKAHEAD,
                       out_vecs, cfg.dim);
    const int dim = cfg.dim;
    std::vector<float> neu1(static_cast<size_t>(dim)), neu1e(static_cast<size_t>(dim));
    std::vector<float*> rows(static_cast<size_t>(cfg.negative) + 1);
    std::vector<float> g(static_cast<size_t>(cfg.negative) + 1);
    SharedScratch shared;
    std::vector<int32_t> sent, ctx;
    int64_t count = 0;
    for (int64_t s = s_begin; s < s_end; ++s) {
        const float lr = cfg.alpha_start + (cfg.alpha_end - cfg.alpha_start) *
                                               static_cast<float>(offsets[s] - first) /
                                               static_cast<float>(total);
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
            if (pos + 1 < n)
                prefetch_lines(out_vecs + static_cast<int64_t>(sent[pos + 1]) * dim, dim);
            const int win = cfg.basket ? n : cfg.window - static_cast<int>(rng.below(cfg.window));
            const int lo = std::max(0, pos - win), hi = std::min(n, pos + win + 1);
            if (cfg.cbow) {
                ctx.clear();
                for (int c = lo; c < hi; ++c)
                    if (c != pos) ctx.push_back(sent[c]);
                cbow_update(sent[pos], ctx.data(), static_cast<int>(ctx.size()), negs.next(),
                            cfg.negative, in_vecs, out_vecs, dim, lr, neu1.data(), neu1e.data(),
                            rows.data(), g.data());
            } else if (cfg.shared_negatives) {
                // the row entering the next position's widest window
                if (pos + 1 + cfg.window < n)
                    prefetch_lines(in_vecs + static_cast<int64_t>(sent[pos + 1 + cfg.window]) * dim,
                                   dim);
                ctx.clear();
                for (int c = lo; c < hi; ++c)
                    if (c != pos) ctx.push_back(sent[c]);
                sg_shared_window(sent[pos], ctx.data(), static_cast<int>(ctx.size()), negs.next(),
                                 cfg.negative, in_vecs, out_vecs, dim, lr, shared);
            } else {
                for (int c = lo; c < hi; ++c) {
                    if (c + 1 < hi)
                        prefetch_lines(in_vecs + static_cast<int64_t>(sent[c + 1]) * dim, dim);
                    if (c != pos)
                        sg_pair(sent[pos], sent[c], negs.next(), cfg.negative, in_vecs, out_vecs,
                                dim, lr, neu1e.data(), rows.data(), g.data());
                }
            }
        }
    }
    return count;
}

// One epoch over the sequences items[offsets[s]:offsets[s+1]], s < n_seq.
// keep_prob (n_items, may be null): probability of keeping each occurrence of an item
// (subsampling). Randomness comes from two streams per block of sequences (subsampling and windows;
// negatives), both seeded from cfg.seed and the block index, and the learning rate of a sequence
// from its position in the corpus, so at n_threads=1 the result is bit-identical for a seed; with
// more threads the Hogwild updates race (as in word2vec and gensim), and the threads run the blocks
// while they are measured faster than the calling thread alone (parallel_for_adaptive: far-apart
// cores or a busy one can make them slower). Returns the number of words
// trained on (after subsampling).
inline int64_t sgns_train_epoch(const int64_t* offsets, int64_t n_seq, const int32_t* items,
                                const float* keep_prob, const AliasTable& negatives, float* in_vecs,
                                float* out_vecs, const SgnsConfig& cfg) {
    if (n_seq <= 0) return 0;
    const int64_t first = offsets[0], total = std::max<int64_t>(1, offsets[n_seq] - offsets[0]);
    std::vector<int64_t> block_start{0};
    for (int64_t s = 0; s < n_seq; ++s)
        if (offsets[s + 1] - offsets[block_start.back()] >= cfg.block_words)
            block_start.push_back(s + 1);
    if (block_start.back() != n_seq) block_start.push_back(n_seq);
    const int64_t n_blocks = static_cast<int64_t>(block_start.size()) - 1;
    std::vector<int64_t> trained(static_cast<size_t>(n_blocks), 0);
    static detail::AdaptiveMemory memory[2];  // (skip-gram, CBOW: the epochs of a fit)
    parallel_for_adaptive(
        n_blocks, cfg.n_threads,
        [&](int64_t b, int) {
            trained[static_cast<size_t>(b)] = sgns_train_block(
                offsets, block_start[b], block_start[b + 1], items, keep_prob, negatives, in_vecs,
                out_vecs, cfg, derive_seed(cfg.seed, static_cast<uint64_t>(b)), first, total);
        },
        &memory[cfg.cbow]);
    int64_t sum = 0;
    for (int64_t c : trained) sum += c;
    return sum;
}

}  // namespace recforge

RECFORGE_SIMD_END
