// Logistic-regression kernels of the L-BFGS path: the weighted loss and gradient of a row range
// (dense, CSR, and CSR whose stored values are all 1), and the margins X w + b.
//
// Each call works on rows [lo, hi) and writes only its own outputs, so the caller runs row chunks
// on any threads and sums their partial gradients in chunk order: results do not depend on the
// number of threads. Accumulation is float64 whatever the dtype of X.
//
// Rows go in blocks of kBlockRows: the margins of the whole block first, then its residuals (a
// branch-free loop), then its gradient scatter. Rows inside a phase are independent, so the CPU
// overlaps their gathers instead of waiting on one row's chain (margin -> residual -> scatter);
// the block's rows stay in L1 between the phases.
//
// The summation orders of the CSR and pattern kernels are the ones of the Numba kernels they
// replace (bit-identical results); the dense row dot product sums 8 lanes (column j mod 8) in a
// fixed order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "recforge/simd.hpp"

namespace recforge::linear {

inline constexpr int64_t kBlockRows = 128;
// Rows of a margins call's row chunk, one thread's (recforge.kernels.logistic.CHUNK_ROWS; an L-BFGS
// pass has its own, smaller chunks: PASS_CHUNK_ROWS there).
inline constexpr int64_t kChunkRows = 16384;

// exp(-a) = 2^-k exp(r), r = k ln2 - a in [-ln2/2, ln2/2]; ln 2 is split so that k * kLn2Hi is
// exact for |k| < 2^20.
inline constexpr double kLn2Hi = 6.93147180369123816490e-01;
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;
inline constexpr double kInvLn2 = 1.44269504088896338700e00;
// |margin| beyond which exp(-|margin|) is taken at this bound (a normal double, ~3e-308): the
// loss and residual change by less than 1e-300.
inline constexpr double kMaxAbsMargin = 708.0;

// exp(-a) for 0 <= a <= kMaxAbsMargin: exp(r) by its Taylor polynomial of degree 13 (Horner),
// 1 ulp. Plain arithmetic, unlike libm's exp, so a loop over rows can run in SIMD lanes.
RECFORGE_ALWAYS_INLINE double exp_neg(double a) {
    // floor(a / ln2 + 0.5) by truncation (exact for a >= 0): a lane operation, unlike SSE2's floor
    const int32_t ki = static_cast<int32_t>(a * kInvLn2 + 0.5);
    const double k = static_cast<double>(ki);
    const double r = (k * kLn2Hi - a) + k * kLn2Lo;
    double p = 1.6059043836821613e-10;
    p = p * r + 2.08767569878681e-09;
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 0.0001984126984126984;
    p = p * r + 0.001388888888888889;
    p = p * r + 0.008333333333333333;
    p = p * r + 0.041666666666666664;
    p = p * r + 0.16666666666666666;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int64_t bits = static_cast<int64_t>(1023 - ki) << 52;  // 2^-k, k in [0, 1022]
    double scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

// log(1 + e) for 0 <= e <= 1: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^35 (Horner
// in s^2), 4 ulps.
RECFORGE_ALWAYS_INLINE double log1p_unit(double e) {
    const double s = e / (2.0 + e);
    const double s2 = s * s;
    double q = 1.0 / 35;
    q = q * s2 + 1.0 / 33;
    q = q * s2 + 1.0 / 31;
    q = q * s2 + 1.0 / 29;
    q = q * s2 + 1.0 / 27;
    q = q * s2 + 1.0 / 25;
    q = q * s2 + 1.0 / 23;
    q = q * s2 + 1.0 / 21;
    q = q * s2 + 1.0 / 19;
    q = q * s2 + 1.0 / 17;
    q = q * s2 + 1.0 / 15;
    q = q * s2 + 1.0 / 13;
    q = q * s2 + 1.0 / 11;
    q = q * s2 + 1.0 / 9;
    q = q * s2 + 1.0 / 7;
    q = q * s2 + 1.0 / 5;
    q = q * s2 + 1.0 / 3;
    q = q * s2 + 1.0;
    return 2.0 * s * q;
}

// sum(v[:n]) in four interleaved partial sums (entry t mod 4), added in a fixed order.
RECFORGE_ALWAYS_INLINE double sum_block(const double* v, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
        s0 += v[t];
        s1 += v[t + 1];
        s2 += v[t + 2];
        s3 += v[t + 3];
    }
    for (; t < n; ++t) s0 += v[t];
    return (s0 + s1) + (s2 + s3);
}

RECFORGE_ALWAYS_INLINE int64_t bits_of(double x) {
    int64_t b;
    std::memcpy(&b, &x, sizeof(b));
    return b;
}

RECFORGE_ALWAYS_INLINE double double_of(int64_t b) {
    double x;
    std::memcpy(&x, &b, sizeof(x));
    return x;
}

// r[t] = s (p - y) of rows lo + t (t < n) from their margins z[t]; returns the block's weighted
// loss sum_t s (log(1 + e^z) - y z), summed by sum_block. `losses` is scratch of n doubles.
// The selects (|z| capped, max(z, 0), the sigmoid's side) are masks on the bits: GCC keeps a float
// comparison (it may trap) or a 64-bit min a branch, and the loop would not run in SIMD lanes.
RECFORGE_ALWAYS_INLINE double block_residuals(const double* z, const double* y, const double* sw,
                                              int64_t lo, int64_t n, double* r, double* losses) {
    const int64_t cap = bits_of(kMaxAbsMargin);
    const int64_t one = bits_of(1.0);
    for (int64_t t = 0; t < n; ++t) {
        const int64_t i = lo + t;
        const double zt = z[t];
        const int64_t zb = bits_of(zt);
        const int64_t negative = zb >> 63;  // every bit set when the sign bit is
        const int64_t abs_bits = zb & INT64_MAX;
        const int64_t over = (cap - abs_bits) >> 63;  // every bit set when |z| > the cap
        const double e = exp_neg(double_of(abs_bits ^ ((abs_bits ^ cap) & over)));
        const double inv = 1.0 / (1.0 + e);
        const double p = double_of((negative & bits_of(e)) | (~negative & one)) * inv;
        const double relu = double_of(zb & ~negative);  // max(z, 0)
        const double s = sw[i];
        losses[t] = s * (relu + log1p_unit(e) - y[i] * zt);
        r[t] = s * (p - y[i]);
    }
    return sum_block(losses, n);
}

// x . w of one dense row, x float32 or float64, in 8 float64 lanes (column j mod 8) added in a
// fixed order, then the tail.
template <class X>
RECFORGE_ALWAYS_INLINE double row_dot(const X* x, const double* w, int64_t d) {
    double lane[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(x[j + l]) * w[j + l];
    double s =
        ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
    for (; j < d; ++j) s += static_cast<double>(x[j]) * w[j];
    return s;
}

// The block loop of the loss/gradient kernels: g (d + 1 entries) zeroed, then for each block of
// rows their margins margin(i), their residuals r_i, and scatter(i, r_i) with r_i also added to
// the intercept's g[d]; returns the weighted loss.
#if defined(__GNUC__)
#define RECFORGE_INLINE_LAMBDA __attribute__((always_inline))
#else
#define RECFORGE_INLINE_LAMBDA
#endif
template <class Margin, class Scatter>
RECFORGE_ALWAYS_INLINE double blocked_loss_grad(const double* y, const double* sw, int64_t d,
                                                int64_t lo, int64_t hi, double* g,
                                                const Margin& margin, const Scatter& scatter) {
    std::fill(g, g + d + 1, 0.0);
    double z[kBlockRows], r[kBlockRows], scratch[kBlockRows];
    double loss = 0.0;
    for (int64_t start = lo; start < hi; start += kBlockRows) {
        const int64_t n = std::min(kBlockRows, hi - start);
        for (int64_t t = 0; t < n; ++t) z[t] = margin(start + t);
        loss += block_residuals(z, y, sw, start, n, r, scratch);
        for (int64_t t = 0; t < n; ++t) {
            scatter(start + t, r[t]);
            g[d] += r[t];
        }
    }
    return loss;
}

// b + x_i . w of CSR row i, summed in the order of its entries.
template <class IP, class IX, class V>
RECFORGE_ALWAYS_INLINE double csr_margin(const IP* indptr, const IX* indices, const V* data,
                                         const double* w, double b, int64_t i) {
    double z = b;
    for (int64_t k = indptr[i]; k < static_cast<int64_t>(indptr[i + 1]); ++k)
        z += static_cast<double>(data[k]) * w[indices[k]];
    return z;
}

// Weighted logistic loss and gradient of rows [lo, hi) of a dense C-contiguous (n, d) matrix:
// g[:d] = sum_i s_i (p_i - y_i) x_i, g[d] = sum_i s_i (p_i - y_i) (g overwritten); returns
// sum_i s_i logloss_i.
template <class X>
RECFORGE_ALWAYS_INLINE double loss_grad_dense_impl(const X* x, int64_t d, const double* y,
                                                   const double* sw, const double* w, double b,
                                                   int64_t lo, int64_t hi, double* g) {
    return blocked_loss_grad(
        y, sw, d, lo, hi, g,
        [&](int64_t i) RECFORGE_INLINE_LAMBDA { return b + row_dot(x + i * d, w, d); },
        [&](int64_t i, double ri) RECFORGE_INLINE_LAMBDA {
            const X* row = x + i * d;
            for (int64_t j = 0; j < d; ++j) g[j] += ri * static_cast<double>(row[j]);
        });
}

// loss_grad_dense for a CSR matrix (indptr of n + 1 entries, indices / data of nnz); d is the
// number of columns. Each row's margin is summed in the order of its entries.
template <class IP, class IX, class V>
RECFORGE_ALWAYS_INLINE double loss_grad_csr_impl(const IP* indptr, const IX* indices, const V* data,
                                                 int64_t d, const double* y, const double* sw,
                                                 const double* w, double b, int64_t lo, int64_t hi,
                                                 double* g) {
    return blocked_loss_grad(
        y, sw, d, lo, hi, g,
        [&](int64_t i)
            RECFORGE_INLINE_LAMBDA { return csr_margin(indptr, indices, data, w, b, i); },
        [&](int64_t i, double ri) RECFORGE_INLINE_LAMBDA {
            for (int64_t k = indptr[i]; k < static_cast<int64_t>(indptr[i + 1]); ++k)
                g[indices[k]] += ri * static_cast<double>(data[k]);
        });
}

// loss_grad_csr for a CSR matrix whose stored values are all 1 (one-hot features): reads only the
// sparsity pattern. A row's margin is summed in four interleaved partial sums (entry k mod 4,
// added in a fixed order): four independent gather chains per row.
template <class IP, class IX>
RECFORGE_ALWAYS_INLINE double loss_grad_pattern_impl(const IP* indptr, const IX* indices, int64_t d,
                                                     const double* y, const double* sw,
                                                     const double* w, double b, int64_t lo,
                                                     int64_t hi, double* g) {
    return blocked_loss_grad(
        y, sw, d, lo, hi, g,
        [&](int64_t i) RECFORGE_INLINE_LAMBDA {
            const int64_t stop = indptr[i + 1];
            double z0 = 0.0, z1 = 0.0, z2 = 0.0, z3 = 0.0;
            int64_t k = indptr[i];
            for (; k + 4 <= stop; k += 4) {
                z0 += w[indices[k]];
                z1 += w[indices[k + 1]];
                z2 += w[indices[k + 2]];
                z3 += w[indices[k + 3]];
            }
            for (; k < stop; ++k) z0 += w[indices[k]];
            return b + ((z0 + z1) + (z2 + z3));
        },
        [&](int64_t i, double ri) RECFORGE_INLINE_LAMBDA {
            for (int64_t k = indptr[i]; k < static_cast<int64_t>(indptr[i + 1]); ++k)
                g[indices[k]] += ri;
        });
}

// out[i] = x_i . w + b for rows [lo, hi) of a dense C-contiguous (n, d) matrix.
template <class X>
RECFORGE_ALWAYS_INLINE void margins_dense_impl(const X* x, int64_t d, const double* w, double b,
                                               int64_t lo, int64_t hi, double* out) {
    for (int64_t i = lo; i < hi; ++i) out[i] = b + row_dot(x + i * d, w, d);
}

// out[i] = x_i . w + b for rows [lo, hi) of a CSR matrix, each row in the order of its entries.
template <class IP, class IX, class V>
RECFORGE_ALWAYS_INLINE void margins_csr_impl(const IP* indptr, const IX* indices, const V* data,
                                             const double* w, double b, int64_t lo, int64_t hi,
                                             double* out) {
    for (int64_t i = lo; i < hi; ++i) out[i] = csr_margin(indptr, indices, data, w, b, i);
}

// Each kernel in two builds, the portable one and an AVX2 one (4 double lanes for the residuals and
// the dense rows; no -march flags, so the binary still runs on any x86-64), chosen at run time.
// Both do the same operations in the same order (no FMA contraction: -std=c++17 keeps
// -ffp-contract=off), so the results are the same on every CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RECFORGE_LINEAR_KERNEL(name)                                           \
    template <class... Args>                                                   \
    __attribute__((target("avx2"), noinline)) auto name##_avx2(Args... args) { \
        return name##_impl(args...);                                           \
    }                                                                          \
    template <class... Args>                                                   \
    __attribute__((noinline)) auto name##_portable(Args... args) {             \
        return name##_impl(args...);                                           \
    }                                                                          \
    template <class... Args>                                                   \
    auto name(Args... args) {                                                  \
        static const bool avx2 = __builtin_cpu_supports("avx2");               \
        return avx2 ? name##_avx2(args...) : name##_portable(args...);         \
    }
#else
#define RECFORGE_LINEAR_KERNEL(name) \
    template <class... Args>         \
    auto name(Args... args) {        \
        return name##_impl(args...); \
    }
#endif
RECFORGE_LINEAR_KERNEL(loss_grad_dense)
RECFORGE_LINEAR_KERNEL(loss_grad_csr)
RECFORGE_LINEAR_KERNEL(loss_grad_pattern)
RECFORGE_LINEAR_KERNEL(margins_dense)
RECFORGE_LINEAR_KERNEL(margins_csr)
#undef RECFORGE_LINEAR_KERNEL
#undef RECFORGE_INLINE_LAMBDA

// True when every one of the n values is 1 (the pattern kernel applies).
template <class V>
bool all_ones(const V* data, int64_t n) {
    for (int64_t k = 0; k < n; ++k)
        if (data[k] != V{1}) return false;
    return true;
}

}  // namespace recforge::linear
