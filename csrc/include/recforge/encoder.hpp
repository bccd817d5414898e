// The FeatureEncoder's kernels: bucketing and scaling numeric columns, assembling the CSR output.
// Same arithmetic as the Numba kernels they replace (results bit for bit equal): each value is
// converted to double, z = (v - mean) / scale in double, stored as float.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace recforge::encoder {

// The value at p (any alignment) of type T, as a double.
template <class T>
inline double load_double(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return static_cast<double>(v);
}

// Number of edges[lo:hi] (sorted) that are <= v: a branch-free count for short edge lists (the
// usual case, n_bins <= 64), a binary search (first position with edges[p] > v) for long ones.
inline int64_t bucket_count(double v, const double* edges, int64_t lo, int64_t hi) {
    if (hi - lo <= 64) {
        int64_t c = 0;
        for (int64_t e = lo; e < hi; ++e) c += edges[e] <= v;
        return c;
    }
    const int64_t first = lo;
    while (lo < hi) {
        const int64_t mid = (lo + hi) >> 1;
        if (edges[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - first;
}

// out[i] = 0 if x[i] is NaN, else 1 + #{edges <= x[i]}. x: n values of type T, `stride` bytes
// apart.
template <class T>
void bucketize(const char* x, int64_t n, int64_t stride, const double* edges, int64_t n_edges,
               int64_t* out) {
    for (int64_t i = 0; i < n; ++i) {
        const double v = load_double<T>(x + i * stride);
        out[i] = std::isnan(v) ? 0 : 1 + bucket_count(v, edges, 0, n_edges);
    }
}

// The two output blocks of k numeric columns in one pass over n rows.
// x: row i, column t is the T at x + i * row_stride + col_offset[t] (bytes).
// Column t's edges are edges[edge_ptr[t]:edge_ptr[t + 1]].
// Bucket block: bins_out[t][i] = off_bins[t] + code (code 0 = NaN, else 1 + bucket_count).
// Scaled block, when scaled_out[t] is not null: scaled_out[t][i] = off_scaled[t],
// vals_out[t][i] = (v - mean[t]) / scale[t] (0 where v is NaN).
// n_inf[t] = number of infinite values of column t (the caller raises).
template <class T, class Index>
void numeric_blocks(const char* x, int64_t n, int64_t row_stride, int64_t k,
                    const int64_t* col_offset, const double* edges, const int64_t* edge_ptr,
                    const double* mean, const double* scale, Index* const* bins_out,
                    const int64_t* off_bins, Index* const* scaled_out, const int64_t* off_scaled,
                    float* const* vals_out, int64_t* n_inf) {
    for (int64_t t = 0; t < k; ++t) n_inf[t] = 0;
    for (int64_t i = 0; i < n; ++i) {
        const char* row = x + i * row_stride;
        for (int64_t t = 0; t < k; ++t) {
            const double v = load_double<T>(row + col_offset[t]);
            int64_t code = 0;
            double z = 0.0;
            if (!std::isnan(v)) {
                if (std::isinf(v)) ++n_inf[t];
                code = 1 + bucket_count(v, edges, edge_ptr[t], edge_ptr[t + 1]);
                z = (v - mean[t]) / scale[t];
            }
            bins_out[t][i] = static_cast<Index>(off_bins[t] + code);
            if (scaled_out[t] != nullptr) {
                scaled_out[t][i] = static_cast<Index>(off_scaled[t]);
                vals_out[t][i] = static_cast<float>(z);
            }
        }
    }
}

// Row-major CSR from per-block columns, dropping zero values.
// cols: (n_blocks, n) row-major, output column of block b in row i; vals: (n_valued, n) row-major;
// val_row[b]: row of vals for block b, -1 = value 1. Blocks are in increasing column order, so
// each row's indices come out sorted. Returns nnz, or -1 when more than `capacity` entries
// (indices, data) or more than the largest Index would be needed.
template <class Index>
int64_t assemble_csr(const Index* cols, const float* vals, const int64_t* val_row, int64_t n_blocks,
                     int64_t n, Index* indptr, Index* indices, float* data, int64_t capacity) {
    constexpr int64_t kMaxIndex = std::numeric_limits<Index>::max();
    int64_t k = 0;
    indptr[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t b = 0; b < n_blocks; ++b) {
            const int64_t r = val_row[b];
            const float v = r < 0 ? 1.0f : vals[r * n + i];
            if (v != 0.0f) {
                if (k >= capacity || k >= kMaxIndex) return -1;
                indices[k] = cols[b * n + i];
                data[k] = v;
                ++k;
            }
        }
        indptr[i + 1] = static_cast<Index>(k);
    }
    return k;
}

}  // namespace recforge::encoder
