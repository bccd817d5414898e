// SIMD and prefetch helpers of the SGD kernels (LFM, word2vec): runtime ISA dispatch, cache-line
// prefetch of a row, and dot / axpy on float vectors with a fixed summation order.
#pragma once

#include <cstdint>

// Runtime dispatch for the hot SGD loops: an AVX2 clone next to the portable one (no -march flags,
// so the binary still runs on any x86-64). Elsewhere the portable build only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RECFORGE_HOT_CLONES __attribute__((noinline, target_clones("avx2", "default")))
#else
#define RECFORGE_HOT_CLONES
#endif

// The helpers of the hot loops must be inlined into the trainers' per-ISA clones: called out of
// line they would be compiled for the baseline ISA only.
#if defined(__GNUC__)
#define RECFORGE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RECFORGE_ALWAYS_INLINE inline
#endif

// Around code that uses the 8-lane vectors (GCC vector extensions): every use is inlined and no
// vector crosses a call boundary, so GCC's note about the ABI of 32-byte vector arguments does not
// apply.
#if defined(__GNUC__)
#define RECFORGE_SIMD_BEGIN \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define RECFORGE_SIMD_END _Pragma("GCC diagnostic pop")
#else
#define RECFORGE_SIMD_BEGIN
#define RECFORGE_SIMD_END
#endif

namespace recforge {

#if defined(__GNUC__) || defined(__clang__)
#define RECFORGE_PREFETCH(p) __builtin_prefetch((p), 1, 3)
#else
#define RECFORGE_PREFETCH(p) ((void)0)
#endif

// Prefetch every cache line of a row of k floats, wherever it starts (NumPy's large arrays are
// often 16 bytes past a line boundary, so a 64-float row spans five lines).
inline void prefetch_lines(const float* row, int k) {
    const uintptr_t end = reinterpret_cast<uintptr_t>(row + k);
    for (uintptr_t a = reinterpret_cast<uintptr_t>(row) & ~uintptr_t(63); a < end; a += 64)
        RECFORGE_PREFETCH(reinterpret_cast<const void*>(a));
}

// The sum of 8 lanes (a vector or an array), in the one order every 8-lane reduction here uses.
template <class Lanes>
RECFORGE_ALWAYS_INLINE float hsum8(const Lanes& a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

// Dot product and axpy on float vectors, 8 lanes at a time with a fixed order of partial sums
// (vectorised without -ffast-math; the same result on every run of the same binary).
#if defined(__GNUC__)
RECFORGE_SIMD_BEGIN
typedef float f32x8 __attribute__((vector_size(32)));

inline f32x8 load8(const float* p) {
    f32x8 v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
}

inline void store8(float* p, f32x8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

inline float dot(const float* a, const float* b, int n) {
    f32x8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8) acc += load8(a + i) * load8(b + i);
    float s = hsum8(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline void axpy(float alpha, const float* x, float* y, int n) {
    const f32x8 va = {alpha, alpha, alpha, alpha, alpha, alpha, alpha, alpha};
    int i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) + va * load8(x + i));
    for (; i < n; ++i) y[i] += alpha * x[i];
}
RECFORGE_SIMD_END
#else
inline float dot(const float* a, const float* b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = hsum8(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline void axpy(float alpha, const float* x, float* y, int n) {
    for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}
#endif

}  // namespace recforge
