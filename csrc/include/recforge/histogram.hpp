// GBDT histograms: per node, per feature, per bin sums of (gradient, hessian).
//
// Layout: hist[node][feature][bin][2] (double), kBins bins per feature, bin kMissingBin holds
// rows whose value is missing. Rows of a node are rows[start, end) of a shared row-index buffer.
// Threads split the work by (node, block of features): every (node, feature, bin) sum is a
// sequential pass over the node's rows in buffer order, so the result is bit-identical for any
// n_threads (no per-thread partial histograms to merge).
// A feature whose bin is the same for most of a node's rows (one-hot-like columns) skips those
// rows: that bin is the node's total minus the feature's other rows (accumulate_skipping_common).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "recforge/constants.hpp"
#include "recforge/parallel.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define RECFORGE_HIST_SSE2 1
#endif

namespace recforge {
namespace gbdt {

// The number of the len sorted values e0[0, len) that are <= each of the kLanes values v (NaN
// compares false: 0), into count. kLanes independent branchless binary searches run in lockstep,
// so the loads of one lane do not wait for those of another (one search alone is a chain of
// dependent loads). len >= 1.
constexpr int kBinLanes = 8;
inline void count_edges_le(const float* e0, int64_t len, const float* v, int64_t* count) {
    int64_t base[kBinLanes] = {};
    for (int64_t n = len; n > 1;) {
        const int64_t half = n / 2;
        for (int i = 0; i < kBinLanes; ++i) base[i] += (e0[base[i] + half] <= v[i]) ? half : 0;
        n -= half;
    }
    for (int i = 0; i < kBinLanes; ++i) count[i] = base[i] + (e0[base[i]] <= v[i]);
}

// Assign each value of X (n_rows, n_features) float32, C order, to its bin: the number of
// edges[f] that are <= x (edges of feature f are edges[offsets[f], offsets[f+1]), sorted
// ascending). NaN → kMissingBin. For categorical features the edges are the category codes and the
// bin is the code's position (a code not in edges is treated as missing).
inline void bin_features(const float* X, int64_t n_rows, int64_t n_features, const float* edges,
                         const int64_t* offsets, const uint8_t* is_categorical, uint8_t* out,
                         int n_threads) {
    const int64_t block =
        256;  // rows per task: the block of X stays in cache while features change
    const int64_t n_blocks = (n_rows + block - 1) / block;
    // numeric features of one edge (two-valued, one-hot columns): one compare per value, row by
    // row (a pass down each column's stride costs more than the compare)
    std::vector<int64_t> one_edge;
    for (int64_t f = 0; f < n_features; ++f)
        if (!is_categorical[f] && offsets[f + 1] - offsets[f] == 1) one_edge.push_back(f);
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t r0 = b * block, r1 = std::min(n_rows, r0 + block);
        if (!one_edge.empty())
            for (int64_t r = r0; r < r1; ++r) {
                const float* x = X + r * n_features;
                uint8_t* o = out + r * n_features;
                for (const int64_t f : one_edge) {
                    const float v = x[f];
                    o[f] =
                        std::isnan(v) ? kMissingBin : static_cast<uint8_t>(edges[offsets[f]] <= v);
                }
            }
        for (int64_t f = 0; f < n_features; ++f) {
            const float* e0 = edges + offsets[f];
            const int64_t len = offsets[f + 1] - offsets[f];
            const bool cat = is_categorical[f] != 0;
            if (!cat && len == 1) continue;  // (done above)
            if (!cat && len > 0) {  // numeric: kBinLanes rows at a time (the last group padded)
                auto lane_group = [&](int64_t r, int lanes) {  // rows [r, r + lanes)
                    float v[kBinLanes];
                    int64_t count[kBinLanes];
                    for (int i = 0; i < kBinLanes; ++i)
                        v[i] = X[(r + std::min(i, lanes - 1)) * n_features + f];
                    count_edges_le(e0, len, v, count);
                    for (int i = 0; i < lanes; ++i)
                        out[(r + i) * n_features + f] =
                            std::isnan(v[i]) ? kMissingBin : static_cast<uint8_t>(count[i]);
                };
                int64_t r = r0;
                for (; r + kBinLanes <= r1; r += kBinLanes) lane_group(r, kBinLanes);
                if (r < r1) lane_group(r, static_cast<int>(r1 - r));
                continue;
            }
            for (int64_t r = r0; r < r1; ++r) {  // categorical, or a feature without edges
                const float v = X[r * n_features + f];
                uint8_t bin;
                if (std::isnan(v) || len == 0) {
                    bin = (std::isnan(v) || cat) ? kMissingBin : 0;
                } else {  // the code's position: a branchless count of the codes < v
                    const float* base = e0;
                    int64_t n = len;
                    while (n > 1) {
                        const int64_t half = n / 2;
                        base = (base[half] < v) ? base + half : base;
                        n -= half;
                    }
                    const int64_t pos = (base - e0) + (*base < v);
                    bin = (pos < len && e0[pos] == v) ? static_cast<uint8_t>(pos) : kMissingBin;
                }
                out[r * n_features + f] = bin;
            }
        }
    });
}

// out[0, n) = values[0, n) in ascending order (no NaN; -0.0 before 0.0, which compare equal): an
// LSD radix sort of the values' order-preserving 32-bit keys, three passes of 11, 11 and 10 bits
// (the binning's quantiles of a 200k-value sample: a comparison sort took 25-30 ns per value).
inline void sort_floats(const float* values, int64_t n, float* out) {
    // keys in the values' order: a negative's bits all flipped (reversed, below the positives),
    // a positive's sign bit set
    std::vector<uint32_t> a(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, values + i, 4);
        a[static_cast<size_t>(i)] = u ^ ((u >> 31) ? 0xFFFFFFFFu : 0x80000000u);
    }
    if (n < 4096) {
        std::sort(a.begin(), a.end());
    } else {
        constexpr int kShift[3] = {0, 11, 22};
        constexpr uint32_t kMask[3] = {0x7FF, 0x7FF, 0x3FF};
        std::vector<uint32_t> b(static_cast<size_t>(n));
        std::vector<int64_t> count(3 * 2048, 0);
        for (const uint32_t k : a)
            for (int p = 0; p < 3; ++p) ++count[p * 2048 + ((k >> kShift[p]) & kMask[p])];
        for (int p = 0; p < 3; ++p) {
            int64_t* c = count.data() + p * 2048;
            int64_t sum = 0;
            for (int d = 0; d < 2048; ++d) {
                const int64_t k = c[d];
                c[d] = sum;
                sum += k;
            }
            for (const uint32_t k : a) b[static_cast<size_t>(c[(k >> kShift[p]) & kMask[p]]++)] = k;
            a.swap(b);
        }
    }
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t k = a[static_cast<size_t>(i)];
        const uint32_t u = k ^ ((k >> 31) ? 0x80000000u : 0xFFFFFFFFu);
        std::memcpy(out + i, &u, 4);
    }
}

// Per column of X (n_rows, n_features) float32, C order: whether it holds at most two distinct
// values besides NaN (two_valued[f]) and, if it holds two, the larger (upper[f]; NaN when it holds
// fewer). One pass over the rows.
inline void two_valued_columns(const float* X, int64_t n_rows, int64_t n_features, float* upper,
                               uint8_t* two_valued) {
    constexpr float kNone = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> a(static_cast<size_t>(n_features), kNone), b(a);
    std::vector<uint8_t> more(static_cast<size_t>(n_features), 0);
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* x = X + r * n_features;
        for (int64_t f = 0; f < n_features; ++f) {
            const float v = x[f];
            if (v == a[f] || v == b[f] || std::isnan(v)) continue;  // (NaN == nothing)
            if (std::isnan(a[f]))
                a[f] = v;
            else if (std::isnan(b[f]))
                b[f] = v;
            else
                more[f] = 1;
        }
    }
    for (int64_t f = 0; f < n_features; ++f) {
        two_valued[f] = !more[f];
        upper[f] = std::isnan(b[f]) ? kNone : std::max(a[f], b[f]);
    }
}

// One-hot-like columns (LightGBM's trick): when most of a node's rows share one bin of a feature
// (its common bin), the rows in that bin are not added one by one; the bin gets the node's total
// minus the feature's other rows. Which bin is common is decided per node from its first
// kCommonBinSample rows (the same rows in the same order whoever builds the node, so every path
// and every n_threads picks the same bins and computes the same sums).
constexpr int64_t kCommonBinSample = 64;

// Common bins of features [f0, f0 + w) of the node rows [s, e) (w <= 256, e - s >=
// kCommonBinSample): common[j] is the majority bin of feature f0 + j among the first sampled rows,
// has_common[j] = 1 when it holds at least 7/8 of them. Returns the number of such features.
inline int64_t common_bins(const uint8_t* X, int64_t F, const int32_t* rows, int64_t s, int64_t f0,
                           int64_t w, uint8_t* common, uint8_t* has_common) {
    int32_t votes[256];
    for (int64_t j = 0; j < w; ++j) {
        common[j] = 0;
        votes[j] = 0;
    }
    for (int64_t p = s; p < s + kCommonBinSample; ++p) {  // Boyer-Moore majority vote
        const uint8_t* x = X + (rows ? rows[p] : p) * F + f0;
        for (int64_t j = 0; j < w; ++j) {
            if (votes[j] == 0) common[j] = x[j];
            votes[j] += x[j] == common[j] ? 1 : -1;
        }
    }
    for (int64_t j = 0; j < w; ++j) votes[j] = 0;
    for (int64_t p = s; p < s + kCommonBinSample; ++p) {
        const uint8_t* x = X + (rows ? rows[p] : p) * F + f0;
        for (int64_t j = 0; j < w; ++j) votes[j] += x[j] == common[j];
    }
    int64_t n = 0;
    for (int64_t j = 0; j < w; ++j) {
        has_common[j] = 8 * votes[j] >= 7 * kCommonBinSample;
        n += has_common[j];
    }
    return n;
}

// Rows indexed through `rows` (a deep node's, scattered): fetch the X row (from feature f0) and the
// gradient of the row kRowsAhead positions after p, so that the loads of successive rows overlap.
// Contiguous rows (rows null) need no help.
constexpr int64_t kRowsAhead = 24;
inline void prefetch_row_ahead(const uint8_t* X, int64_t F, int64_t f0, const float* gh,
                               const int32_t* rows, int64_t p, int64_t e) {
#if defined(__GNUC__) || defined(__clang__)
    if (rows && p + kRowsAhead < e) {
        const int64_t ra = rows[p + kRowsAhead];
        __builtin_prefetch(X + ra * F + f0);
        __builtin_prefetch(gh + 2 * ra);
    }
#else
    (void)X, (void)F, (void)f0, (void)gh, (void)rows, (void)p, (void)e;
#endif
}

// Bit j set: byte j of the 16 at x differs from byte j of the 16 at c.
inline unsigned differing_bytes16(const uint8_t* x, const uint8_t* c) {
#ifdef RECFORGE_HIST_SSE2
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
    return ~static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(a, b))) & 0xFFFFu;
#else
    unsigned m = 0;
    for (int j = 0; j < 16; ++j) m |= static_cast<unsigned>(x[j] != c[j]) << j;
    return m;
#endif
}

inline int lowest_bit(unsigned m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int j = 0;
    while (!(m & 1u)) {
        m >>= 1;
        ++j;
    }
    return j;
#endif
}

// Adds (g, h) to the histogram cell c (two doubles): one 16-byte load, add and store.
inline void add_pair(double* c, double g, double h) {
#ifdef RECFORGE_HIST_SSE2
    _mm_storeu_pd(c, _mm_add_pd(_mm_loadu_pd(c), _mm_setr_pd(g, h)));
#else
    c[0] += g;
    c[1] += h;
#endif
}

// accumulate_node for a contiguous block of w = f1 - f0 >= 16 features, some with a common bin
// (common_bins): per row, 16 features at a time are compared with their common bins and only the
// other features are added (the features without a common bin straight into H, the others through
// the bin-major scratch T below); each common bin then gets (node total) - (the feature's other
// rows), both sums taken in row order.
inline void accumulate_skipping_common(const uint8_t* X, int64_t F, const float* gh,
                                       const int32_t* rows, int64_t s, int64_t e, int64_t f0,
                                       int64_t w, const uint8_t* common, const uint8_t* has_common,
                                       double* H) {
    // chunk c: features [off[c], off[c] + 16) of the block (the last one overlaps the one before
    // it); keep[c]: its features not in an earlier chunk, skip[c]: those with a common bin
    int64_t off[16];
    unsigned keep[16], skip[16];
    const int64_t n_chunks = (w + 15) / 16;
    for (int64_t c = 0; c < n_chunks; ++c) {
        off[c] = std::min<int64_t>(16 * c, w - 16);
        keep[c] = 0xFFFFu & (0xFFFFu << (16 * c - off[c]));
        skip[c] = 0;
        for (int j = 0; j < 16; ++j) skip[c] |= static_cast<unsigned>(has_common[off[c] + j]) << j;
    }
    double other[2 * 256] = {};  // per feature: (g, h) of the rows added one by one
    double total_g = 0.0, total_h = 0.0;
    double* Hb = H + f0 * kBins * 2;
    // The rows of features with a common bin are summed into a bin-major scratch T[bin][feature]
    // first: the few bins these features use then lie in a few KB, where in H (feature-major) the
    // same bin of successive features is 4 KB apart and they all compete for one set of the L1
    // cache. T is all zero between calls; a cell of H gets 0 + the same sequential sum, so the sums
    // do not change.
    static thread_local std::vector<double> scratch(static_cast<size_t>(kBins) * 256 * 2, 0.0);
    double* T = scratch.data();
    uint8_t touched[kBins] = {};
    for (int64_t p = s; p < e; ++p) {
        prefetch_row_ahead(X, F, f0, gh, rows, p, e);
        const int64_t r = rows ? rows[p] : p;
        const uint8_t* x = X + r * F + f0;
        const double g = gh[2 * r], h = gh[2 * r + 1];
        total_g += g;
        total_h += h;
        for (int64_t c = 0; c < n_chunks; ++c) {
            unsigned m = differing_bytes16(x + off[c], common + off[c]) & skip[c] & keep[c];
            while (m) {  // a feature with a common bin, off it in this row: via T
                const int64_t j = off[c] + lowest_bit(m);
                m &= m - 1;
                touched[x[j]] = 1;
                add_pair(T + (static_cast<int64_t>(x[j]) * 256 + j) * 2, g, h);
                add_pair(other + 2 * j, g, h);
            }
            unsigned d = ~skip[c] & keep[c];
            while (d) {  // a feature without a common bin (numeric): straight into H
                const int64_t j = off[c] + lowest_bit(d);
                d &= d - 1;
                add_pair(Hb + (j * kBins + x[j]) * 2, g, h);
            }
        }
    }
    int32_t with_common[256];
    int64_t n_with_common = 0;
    for (int64_t j = 0; j < w; ++j)
        if (has_common[j]) with_common[n_with_common++] = static_cast<int32_t>(j);
    for (int b = 0; b < kBins; ++b) {  // (only features with a common bin went through T)
        if (!touched[b]) continue;
        double* t = T + static_cast<int64_t>(b) * 256 * 2;
        for (int64_t i = 0; i < n_with_common; ++i) {
            const int64_t j = with_common[i];
            double* cell = Hb + (j * kBins + b) * 2;
            cell[0] += t[2 * j];
            cell[1] += t[2 * j + 1];
            t[2 * j] = 0.0;
            t[2 * j + 1] = 0.0;
        }
    }
    for (int64_t j = 0; j < w; ++j) {
        if (!has_common[j]) continue;
        double* cell = Hb + (j * kBins + common[j]) * 2;
        cell[0] += total_g - other[2 * j];
        cell[1] += total_h - other[2 * j + 1];
    }
}

// accumulate_node's common case: every feature of [f0, f1) switched on, no common bins. The
// features go kFeatureUnroll at a time from one base pointer, so each cell's address is the bin
// plus a constant offset (one load, add and store per feature, no index arithmetic): ~20% fewer
// cycles than a loop over f on 1M x 50 (the same additions in the same order, so the same sums).
// H0 holds the first feature's bins; feature j's are stride doubles further.
constexpr int64_t kFeatureUnroll = 8;
inline void accumulate_rows_strided(const uint8_t* X, int64_t n_features, const float* gh,
                                    const int32_t* rows, int64_t s, int64_t e, int64_t f0,
                                    int64_t w, double* H0, int64_t stride) {
    for (int64_t p = s; p < e; ++p) {
        prefetch_row_ahead(X, n_features, f0, gh, rows, p, e);
        const int64_t r = rows ? rows[p] : p;
        const uint8_t* x = X + r * n_features + f0;
        const double g = gh[2 * r], h = gh[2 * r + 1];
        double* Hf = H0;
        int64_t j = 0;
        for (; j + kFeatureUnroll <= w; j += kFeatureUnroll, Hf += kFeatureUnroll * stride) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (int64_t u = 0; u < kFeatureUnroll; ++u)
                add_pair(Hf + u * stride + static_cast<int64_t>(x[j + u]) * 2, g, h);
        }
        for (; j < w; ++j, Hf += stride) add_pair(Hf + static_cast<int64_t>(x[j]) * 2, g, h);
    }
}

// In H's layout the same bin of two features lies a multiple of 4 KiB apart, and the CPU takes a
// load whose address matches an earlier store's in its low 12 bits as depending on it: with
// few-valued features (one-hot bundles, flags, small categories) nearly every add of a row waits
// for the one before (8-20x slower per add than on many-valued features, measured). Big nodes
// therefore add into a copy whose features lie kSkewStride doubles apart (a 64-byte line more)
// and copy the sums back: the same additions in the same order, so the same sums.
constexpr int64_t kSkewStride = kBins * 2 + 8;
constexpr int64_t kSkewMinAdds = int64_t{1}
                                 << 15;  // rows x features (smaller: the copies cost as much)
inline void accumulate_contiguous_features(const uint8_t* X, int64_t n_features, const float* gh,
                                           const int32_t* rows, int64_t s, int64_t e, int64_t f0,
                                           int64_t f1, double* H) {
    const int64_t w = f1 - f0;
    double* const H0 = H + f0 * kBins * 2;
    if (w < 2 || (e - s) * w < kSkewMinAdds) {
        accumulate_rows_strided(X, n_features, gh, rows, s, e, f0, w, H0, kBins * 2);
        return;
    }
    thread_local std::vector<double> skewed;
    skewed.resize(static_cast<size_t>(w * kSkewStride));
    const size_t bytes = kBins * 2 * sizeof(double);
    for (int64_t j = 0; j < w; ++j)
        std::memcpy(&skewed[j * kSkewStride], H0 + j * kBins * 2, bytes);
    accumulate_rows_strided(X, n_features, gh, rows, s, e, f0, w, skewed.data(), kSkewStride);
    for (int64_t j = 0; j < w; ++j)
        std::memcpy(H0 + j * kBins * 2, &skewed[j * kSkewStride], bytes);
}

// Add the (g, h) of rows [s, e) (positions in rows, or of X/gh themselves when rows is null) to
// the histogram H of one node, features [f0, f1) only (mask 0: skipped). Rows in buffer order, so
// each (feature, bin) sum is the same sequential sum whoever runs it.
inline void accumulate_node(const uint8_t* X, int64_t n_features, const float* gh,
                            const int32_t* rows, int64_t s, int64_t e, int64_t f0, int64_t f1,
                            const uint8_t* feature_mask, double* H) {
    if (f0 >= f1) return;
    if (f1 - f0 > 256) {  // (the same sums, one pass over the rows per 256 features)
        for (int64_t b = f0; b < f1; b += 256)
            accumulate_node(X, n_features, gh, rows, s, e, b, std::min(f1, b + 256), feature_mask,
                            H);
        return;
    }
    int32_t feats[256];
    int64_t nf = 0;
    for (int64_t f = f0; f < f1; ++f)
        if (!feature_mask || feature_mask[f]) feats[nf++] = static_cast<int32_t>(f);
    if (nf == 0) return;
    if (nf == f1 - f0 && f1 - f0 >= 16 && e - s >= kCommonBinSample) {
        uint8_t common[256], has_common[256];
        const int64_t n_common =
            common_bins(X, n_features, rows, s, f0, f1 - f0, common, has_common);
        if (2 * n_common >= f1 - f0) {
            accumulate_skipping_common(X, n_features, gh, rows, s, e, f0, f1 - f0, common,
                                       has_common, H);
            return;
        }
    }
    if (nf == f1 - f0) {
        accumulate_contiguous_features(X, n_features, gh, rows, s, e, f0, f1, H);
    } else {
        for (int64_t p = s; p < e; ++p) {
            const int64_t r = rows ? rows[p] : p;
            const uint8_t* x = X + r * n_features;
            const double g = gh[2 * r], h = gh[2 * r + 1];
            for (int64_t j = 0; j < nf; ++j) {
                const int64_t f = feats[j];
                add_pair(H + (f * kBins + x[f]) * 2, g, h);
            }
        }
    }
}

// The bins of a node histogram that split finding reads: per switched-on feature f (mask may be
// null), bins [0, n_bins[f]) and kMissingBin. fn(offset, length) for each run of them, offsets
// in doubles from the node's start.
template <typename Fn>
inline void for_each_used_bin_run(int64_t F, const int32_t* n_bins, const uint8_t* feature_mask,
                                  Fn&& fn) {
    for (int64_t f = 0; f < F; ++f) {
        if (feature_mask && !feature_mask[f]) continue;
        const int64_t o = f * kBins * 2;
        const int64_t len = 2 * std::min<int64_t>(n_bins[f], kMissingBin);
        fn(o, len);
        fn(o + 2 * kMissingBin, int64_t{2});
    }
}

// L = P - S and S zeroed (zero_used_bins) on the used bins only: histograms whose other bins are
// never read (the growers' own buffers) need not be cleared or subtracted there — with many
// few-valued features (one-hot columns: 3 of 256 bins used) that is most of their memory.
inline void zero_used_bins(double* S, int64_t F, const int32_t* n_bins,
                           const uint8_t* feature_mask) {
    for_each_used_bin_run(F, n_bins, feature_mask, [&](int64_t o, int64_t len) {
        std::memset(S + o, 0, sizeof(double) * static_cast<size_t>(len));
    });
}

inline void subtract_used_bins(double* L, const double* P, const double* S, int64_t F,
                               const int32_t* n_bins, const uint8_t* feature_mask) {
    for_each_used_bin_run(F, n_bins, feature_mask, [&](int64_t o, int64_t len) {
        for (int64_t i = o; i < o + len; ++i) L[i] = P[i] - S[i];
    });
}

// Feature blocks per node so that n_threads threads have work: one block per node when the level
// has enough nodes, else the features split into about n_threads blocks.
// (Every block reads the node's whole rows, so no more blocks than needed.)
inline int64_t feature_blocks(int64_t n_nodes, int64_t n_features, int n_threads) {
    if (n_threads <= 1 || n_nodes >= 4 * n_threads) return 1;
    // (2 blocks per thread where features allow: a thread descheduled on a busy machine then holds
    // back less of the work)
    const int64_t want = n_nodes == 1 ? (n_features >= 8 * n_threads ? 2 * n_threads : n_threads)
                                      : (2 * n_threads + n_nodes - 1) / n_nodes;
    return std::max<int64_t>(1, std::min<int64_t>(n_features, want));
}

// Threads worth waking for `work` (rows x features) histogram updates. (Measured on Adult: a
// second thread from 40k updates and 2 blocks per thread from 4 features per thread cost the
// calling thread more CPU than they took off it.)
inline int histogram_threads(int64_t work, int n_threads) {
    return threads_for_work(n_threads, static_cast<double>(work), 120000.0);
}

// The one task decomposition of the histogram builds: fn(k, f0, f1) for node k in [0, n_nodes)
// and each non-empty block [f0, f1) of its features, on as many threads as `work` (row x feature
// updates) pays for. Every (node, feature) is one task's sequential pass, so the histograms do not
// depend on n_threads.
template <typename Fn>
inline void for_each_node_block(int64_t n_nodes, int64_t n_features, int64_t work, int n_threads,
                                Fn&& fn) {
    n_threads = histogram_threads(work, n_threads);
    const int64_t n_blocks = feature_blocks(n_nodes, n_features, n_threads);
    const int64_t per_block = (n_features + n_blocks - 1) / n_blocks;
    parallel_for(
        n_nodes * n_blocks, n_threads,
        [&](int64_t task, int) {
            const int64_t k = task / n_blocks, f0 = (task % n_blocks) * per_block;
            const int64_t f1 = std::min(n_features, f0 + per_block);
            if (f0 < f1) fn(k, f0, f1);
        },
        1);
}

// Build the histograms of n_nodes nodes. gh: interleaved (g, h) float32 per row.
// rows == nullptr: node k is rows [starts[k], ends[k]) of X and gh themselves (data kept in node
// order, so every node reads contiguous memory); otherwise rows[starts[k], ends[k]) index them.
// feature_mask (may be null): features with mask 0 are left as zeros.
inline void build_histograms(const uint8_t* X, int64_t n_features, const float* gh,
                             const int32_t* rows, const int64_t* starts, const int64_t* ends,
                             int64_t n_nodes, const uint8_t* feature_mask, double* hist,
                             int n_threads) {
    const int64_t node_stride = n_features * kBins * 2;
    int64_t work = 0;
    for (int64_t k = 0; k < n_nodes; ++k) work += (ends[k] - starts[k]) * n_features;
    for_each_node_block(
        n_nodes, n_features, work, n_threads, [&](int64_t k, int64_t f0, int64_t f1) {
            double* H = hist + k * node_stride;
            std::memset(H + f0 * kBins * 2, 0,
                        sizeof(double) * static_cast<size_t>((f1 - f0) * kBins * 2));
            accumulate_node(X, n_features, gh, rows, starts[k], ends[k], f0, f1, feature_mask, H);
        });
}

// Histograms of the two children of each of n_parents split nodes, node-ordered data (rows of
// child c are positions [c_starts[c], c_ends[c]) of X and gh). Children 2j and 2j + 1 belong to
// parent j, whose histogram is parent_hist[j]. The smaller child (the left one on a tie) is built
// from its rows, the other is parent − smaller (the subtraction trick). out: (2 n_parents) nodes.
// parent_index (may be null): parent j's histogram is parent_hist[parent_index[j]] instead.
inline void build_child_histograms(const uint8_t* X, int64_t n_features, const float* gh,
                                   const double* parent_hist, const int64_t* parent_index,
                                   const int64_t* c_starts, const int64_t* c_ends,
                                   int64_t n_parents, const uint8_t* feature_mask, double* out,
                                   int n_threads) {
    const int64_t node_stride = n_features * kBins * 2;
    auto small_of = [&](int64_t j) {
        const int64_t nl = c_ends[2 * j] - c_starts[2 * j],
                      nr = c_ends[2 * j + 1] - c_starts[2 * j + 1];
        return 2 * j + (nr < nl ? 1 : 0);
    };
    int64_t work = 0;
    for (int64_t j = 0; j < n_parents; ++j) {
        const int64_t c = small_of(j);
        work += (c_ends[c] - c_starts[c]) * n_features;
    }
    for_each_node_block(
        n_parents, n_features, work, n_threads, [&](int64_t j, int64_t f0, int64_t f1) {
            const int64_t c = small_of(j);
            const int64_t lo = f0 * kBins * 2, len = (f1 - f0) * kBins * 2;
            double* S = out + c * node_stride;
            double* L = out + (c ^ 1) * node_stride;
            const double* P = parent_hist + (parent_index ? parent_index[j] : j) * node_stride;
            std::memset(S + lo, 0, sizeof(double) * static_cast<size_t>(len));
            accumulate_node(X, n_features, gh, nullptr, c_starts[c], c_ends[c], f0, f1,
                            feature_mask, S);
            for (int64_t i = lo; i < lo + len; ++i) L[i] = P[i] - S[i];
        });
}

}  // namespace gbdt
}  // namespace recforge
