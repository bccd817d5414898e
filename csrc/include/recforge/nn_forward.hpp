// Forward pass of the neural rankers (DNN, Wide&Deep): embedding look-ups, the dense layers as BLAS
// calls (scipy's, handed in as function pointers: no BLAS is linked into recforge), the wide part
// on CSR. The arrays follow the layout of recforge/kernels/nn.py's docstring:
//
//   codes (n, n_cat) int32, dense (n, n_num) float32;
//   column c's embedding of code k: emb[col_flat_off[c] + k * col_dim[c] + j], j < col_dim[c],
//   copied to x0[col_in_off[c] + j]; the numeric inputs follow at x0[d0 - n_num ...];
//   sizes (L + 1) = [d0, h1, ..., 1]; params: per layer l, W_l (sizes[l], sizes[l+1]) row-major
//   then b_l (sizes[l+1]); ReLU on the hidden layers, the last one linear;
//   wide: CSR (indptr int32/int64, indices int32, data float32) and weights wide_w float32.
//
// The arithmetic is the Numba kernels' (float32, the same BLAS calls as their np.dot): on the same
// block of rows, the same bits. (BLAS's result for a row may depend on the block it is in; never on
// the thread that computes the block.)
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace recforge::nn {

// The Fortran BLAS routines the kernels call, as scipy.linalg.cython_blas exports them.
struct Blas {
    void (*gemm)(char* transa, char* transb, int* m, int* n, int* k, float* alpha, float* a,
                 int* lda, float* b, int* ldb, float* beta, float* c, int* ldc);
    void (*gemv)(char* trans, int* m, int* n, float* alpha, float* a, int* lda, float* x, int* incx,
                 float* beta, float* y, int* incy);
    float (*dot)(int* n, float* x, int* incx, float* y, int* incy);
};

// A float32 matrix as Numba's np.dot sees it: rows x cols, C-ordered or F-ordered (a transposed
// view of a C-ordered array), at data.
struct Mat {
    const float* data;
    int rows, cols;
    bool c_order;
};

// out (x.rows x y.cols, C-ordered) = x @ y by the BLAS call Numba's np.dot(x, y, out) makes, so
// the two give the same bits: zeros when the inner dimension is 0, sdot for 1 x 1, sgemv when one
// side is a vector, else sgemm on the column-major product out^T = y^T x^T.
inline void numba_dot(const Blas& blas, Mat x, Mat y, float* out) {
    int m = x.rows, k = x.cols, n = y.cols;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        std::fill(out, out + static_cast<int64_t>(m) * n, 0.0f);
        return;
    }
    float one = 1.0f, zero = 0.0f;
    int inc = 1;
    auto* xd = const_cast<float*>(x.data);
    auto* yd = const_cast<float*>(y.data);
    // a matrix operand of sgemv: (BLAS rows, BLAS columns, leading dimension) of its storage
    auto gemv_shape = [](const Mat& a, int& rows, int& cols, int& ld) {
        rows = a.c_order ? a.cols : a.rows;
        cols = a.c_order ? a.rows : a.cols;
        ld = rows;
    };
    int rows, cols, ld;
    if (n == 1 && m == 1) {
        out[0] = blas.dot(&k, xd, &inc, yd, &inc);
    } else if (n == 1) {  // matrix x vector
        char trans = x.c_order ? 't' : 'n';
        gemv_shape(x, rows, cols, ld);
        blas.gemv(&trans, &rows, &cols, &one, xd, &ld, yd, &inc, &zero, out, &inc);
    } else if (m == 1) {  // vector x matrix
        char trans = y.c_order ? 'n' : 't';
        gemv_shape(y, rows, cols, ld);
        blas.gemv(&trans, &rows, &cols, &one, yd, &ld, xd, &inc, &zero, out, &inc);
    } else {
        char ta = y.c_order ? 'n' : 't', tb = x.c_order ? 'n' : 't';
        int lda = y.c_order ? y.cols : y.rows, ldb = x.c_order ? x.cols : x.rows;
        blas.gemm(&ta, &tb, &n, &m, &k, &one, yd, &lda, xd, &ldb, &zero, out, &n);
    }
}

// C (m x n) = A (m x k) @ B (k x n), all C-ordered (numba_dot).
inline void matmul(const Blas& blas, const float* A, const float* B, float* C, int m, int k,
                   int n) {
    numba_dot(blas, {A, m, k, true}, {B, k, n, true}, C);
}

// The inputs of the dense part, see the layout above.
struct Inputs {
    const int32_t* codes;
    int64_t n_cat;
    const float* dense;
    int64_t n_num;
    const int64_t* col_flat_off;
    const int64_t* col_dim;
    const int64_t* col_in_off;
    const float* emb;
};

// The dense layers: sizes[0..n_layers], params flat.
struct Layers {
    const int64_t* sizes;
    int n_layers;
    const float* params;

    int64_t d0() const { return sizes[0]; }
    // floats of one row's layer outputs (sum of sizes[1..n_layers])
    int64_t acts_per_row() const {
        int64_t a = 0;
        for (int l = 1; l <= n_layers; ++l) a += sizes[l];
        return a;
    }
};

// The wide part (CSR of the model's n rows) and its weights; has == false: no wide part.
template <class Indptr>
struct Wide {
    using IndptrType = Indptr;
    bool has;
    const Indptr* indptr;
    const int32_t* indices;
    const float* data;
    const float* w;
};

// x0 (nb, d0) row-major = the embedded inputs of rows row(0), ..., row(nb - 1).
template <class Row>
void gather_inputs(const Inputs& in, int64_t d0, int64_t nb, Row&& row, float* x0) {
    const int64_t num_off = d0 - in.n_num;
    for (int64_t r = 0; r < nb; ++r) {
        const int64_t i = row(r);
        float* x = x0 + r * d0;
        const int32_t* code = in.codes + i * in.n_cat;
        for (int64_t c = 0; c < in.n_cat; ++c) {
            const int64_t d = in.col_dim[c];
            const float* e = in.emb + in.col_flat_off[c] + code[c] * d;
            std::copy(e, e + d, x + in.col_in_off[c]);
        }
        const float* num = in.dense + i * in.n_num;
        std::copy(num, num + in.n_num, x + num_off);
    }
}

// Numba's np.random.random() on a generator seeded by np.random.seed(seed) (MT19937 with the
// reference initialisation, 53 bits from two draws): the dropout masks of the training pass.
class NumbaRandom {
  public:
    explicit NumbaRandom(uint32_t seed) : mt_(seed) {}
    double random() {
        const double a = static_cast<double>(mt_() >> 5), b = static_cast<double>(mt_() >> 6);
        return (a * 67108864.0 + b) / 9007199254740992.0;
    }

  private:
    std::mt19937 mt_;
};

// The dense layers on x0 (nb, d0): layer l's output (nb, sizes[l+1]) goes to acts at offset
// nb * (sizes[1] + ... + sizes[l]); returns the (nb,) logits (the last block of acts). With
// dropout > 0 (training), each hidden unit is zeroed with that probability (one draw of `rng` per
// unit, rows then units, layer by layer) and the kept ones scaled by 1 / (1 - dropout).
inline float* mlp_forward(const Blas& blas, const Layers& net, const float* x0, int64_t nb,
                          float* acts, double dropout = 0.0, NumbaRandom* rng = nullptr) {
    const float* inp = x0;
    float* out = acts;
    const float* p = net.params;
    const float keep_scale = static_cast<float>(1.0 / (1.0 - dropout));
    for (int l = 0; l < net.n_layers; ++l) {
        const int64_t k = net.sizes[l], m = net.sizes[l + 1];
        const float* W = p;
        const float* b = p + k * m;
        p = b + m;
        matmul(blas, inp, W, out, static_cast<int>(nb), static_cast<int>(k), static_cast<int>(m));
        const bool relu = l < net.n_layers - 1;
        if (relu && dropout > 0.0) {
            for (int64_t r = 0; r < nb; ++r) {
                float* o = out + r * m;
                for (int64_t j = 0; j < m; ++j) {
                    float v = o[j] + b[j];
                    if (v < 0.0f) v = 0.0f;
                    o[j] = rng->random() < dropout ? 0.0f : v * keep_scale;
                }
            }
        } else {
            for (int64_t r = 0; r < nb; ++r) {
                float* o = out + r * m;
                for (int64_t j = 0; j < m; ++j) {
                    const float v = o[j] + b[j];
                    o[j] = relu && v < 0.0f ? 0.0f : v;
                }
            }
        }
        inp = out;
        if (l < net.n_layers - 1) out += nb * m;
    }
    return out;
}

// z[r] += x_wide[row(r)] . wide_w for r < nb.
template <class Indptr, class Row>
void add_wide_logits(const Wide<Indptr>& wide, int64_t nb, Row&& row, float* z) {
    if (!wide.has) return;
    for (int64_t r = 0; r < nb; ++r) {
        const int64_t i = row(r);
        float s = 0.0f;
        for (Indptr p = wide.indptr[i]; p < wide.indptr[i + 1]; ++p)
            s += wide.data[p] * wide.w[wide.indices[p]];
        z[r] += s;
    }
}

// out[s0 .. s1) = the logits (as float64) of rows s0 .. s1 - 1; scratch x0 of (s1 - s0) * d0
// floats and acts of (s1 - s0) * net.acts_per_row() floats.
template <class Indptr>
void predict_rows(const Blas& blas, const Inputs& in, const Layers& net, const Wide<Indptr>& wide,
                  int64_t s0, int64_t s1, float* x0, float* acts, double* out) {
    const int64_t nb = s1 - s0;
    auto row = [s0](int64_t r) { return s0 + r; };
    gather_inputs(in, net.d0(), nb, row, x0);
    float* z = mlp_forward(blas, net, x0, nb, acts);
    add_wide_logits(wide, nb, row, z);
    for (int64_t r = 0; r < nb; ++r) out[s0 + r] = z[r];
}

}  // namespace recforge::nn
