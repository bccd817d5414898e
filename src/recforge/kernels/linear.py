"""Numba kernels of logistic regression: weighted loss + gradient (dense and CSR), margins, FTRL-proximal.

Pure functions on arrays; validation lives in :mod:`recforge.rank.linear`. The readable NumPy
specification is :mod:`recforge._reference.linear`.

Threads: the kernels are serial and release the GIL (``nogil``);
:func:`recforge._threads.run_chunks` runs them on row chunks in a pool of Python threads. Those
threads block when idle (unlike an OpenMP team, which spins after each parallel region and starves
the L-BFGS driver, and everyone else, on a busy machine). The rows are split into ``n_chunks``
contiguous chunks chosen by :func:`n_chunks_for` from the data's shape only; each chunk writes its
own row of a partial gradient buffer, and the rows are summed in chunk order, so results are
bit-identical for any number of threads. The FTRL kernel is sequential (one pass in the given row order).

Layout of the partial-gradient buffer::

    partial[c, :n_features]  sum over rows of chunk c of  s_i (p_i - y_i) x_i
    partial[c, n_features]   sum over rows of chunk c of  s_i (p_i - y_i)        (intercept)
    losses[c]                sum over rows of chunk c of  s_i * logloss_i
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import jit

#: LLVM flags of the dense kernels: re-associating the row dot product lets it vectorise (SIMD
#: lanes, then a fixed horizontal sum). The order is fixed by the compiled code, so results stay
#: bit-identical for any number of threads; tests compare them with the NumPy reference and TensorFlow.
FAST = {"reassoc", "contract"}  # a set, as numba.njit expects
CHUNK_ROWS = 16_384
MAX_CHUNKS = 64
MAX_PARTIAL_FLOATS = 1 << 24  # 128 MB of float64 partial gradients at most


def n_chunks_for(n_rows: int, n_features: int) -> int:
    """Row chunks of the loss/gradient kernels: a function of the data's shape only (not of threads)."""
    by_rows = -(-n_rows // CHUNK_ROWS)
    by_memory = MAX_PARTIAL_FLOATS // (n_features + 1)
    return int(max(1, min(by_rows, MAX_CHUNKS, by_memory)))


def chunk_bounds(n_rows: int, n_chunks: int) -> np.ndarray:
    """``n_chunks + 1`` row boundaries of equal contiguous chunks (int64)."""
    step = -(-n_rows // n_chunks)
    return np.minimum(np.arange(n_chunks + 1, dtype=np.int64) * step, n_rows)


@jit
def _log1pexp(z):
    """log(1 + exp(z)) without overflow."""
    if z > 0.0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@jit
def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# The row loss and residual need exp and log1p once per row per L-BFGS step. libm's are scalar calls
# that the block loops cannot vectorise; these two are plain arithmetic, so the block's residual
# loop runs in SIMD lanes. Accuracy: exp 1 ulp, log1p 4 ulps on their domains.
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact for |k| < 2**20
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
#: |margin| beyond which exp(-|margin|) is taken at this bound (a normal double, ~3e-308): the
#: loss and residual change by less than 1e-300
MAX_ABS_MARGIN = 708.0


@intrinsic
def _double_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits`` (LLVM ``bitcast``)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@jit
def _exp_neg(a):
    """``exp(-a)`` for ``0 <= a <= MAX_ABS_MARGIN``: ``2**-k * exp(r)``, ``r = k ln 2 - a`` in
    ``[-ln2/2, ln2/2]``, ``exp(r)`` by its Taylor polynomial of degree 13 (Horner)."""
    k = math.floor(a * INV_LN2 + 0.5)
    r = (k * LN2_HI - a) + k * LN2_LO
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _double_from_bits((1023 - np.int64(k)) << 52)


@jit
def _log1p_unit(e):
    """``log(1 + e)`` for ``0 <= e <= 1``: ``2 atanh(s)``, ``s = e / (2 + e) <= 1/3``, by its series
    to ``s**35`` (Horner in ``s**2``)."""
    s = np.divide(e, 2.0 + e)  # no zero check (Python's `/` has one): the loop vectorises
    s2 = s * s
    q = 1.0 / 35
    q = q * s2 + 1.0 / 33
    q = q * s2 + 1.0 / 31
    q = q * s2 + 1.0 / 29
    q = q * s2 + 1.0 / 27
    q = q * s2 + 1.0 / 25
    q = q * s2 + 1.0 / 23
    q = q * s2 + 1.0 / 21
    q = q * s2 + 1.0 / 19
    q = q * s2 + 1.0 / 17
    q = q * s2 + 1.0 / 15
    q = q * s2 + 1.0 / 13
    q = q * s2 + 1.0 / 11
    q = q * s2 + 1.0 / 9
    q = q * s2 + 1.0 / 7
    q = q * s2 + 1.0 / 5
    q = q * s2 + 1.0 / 3
    q = q * s2 + 1.0
    return 2.0 * s * q


#: rows per block of the loss/gradient kernels: margins of the whole block first, then its
#: residuals (in SIMD lanes), then its gradient scatter (dense: accumulation). Rows inside a phase
#: are independent, so the CPU overlaps their gathers instead of waiting on one row's chain
#: (margin -> residual -> scatter) at a time; the block's rows stay in L1 between the phases.
BLOCK_ROWS = 128


@jit(fastmath=FAST)
def loss_grad_dense(X, y, sw, w, b, lo, hi, g):
    """Weighted logistic loss and gradient of rows ``lo:hi`` of a dense matrix.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64, C-contiguous          # IN
    y : ndarray of shape (n,), float64, values 0 / 1                       # IN
    sw : ndarray of shape (n,), float64, sample weights                    # IN
    w : ndarray of shape (d,), float64                                     # IN
    b : float, intercept                                                   # IN
    lo, hi : int, the row range                                            # IN
    g : ndarray of shape (d + 1,), float64                                 # OUT (overwritten)
        ``g[:d] = sum_i s_i (p_i - y_i) x_i`` and ``g[d] = sum_i s_i (p_i - y_i)``.

    Returns
    -------
    float
        ``sum_i s_i * logloss_i`` over the rows.
    """
    d = X.shape[1]
    for j in range(d + 1):
        g[j] = 0.0
    z = np.empty(BLOCK_ROWS)
    r = np.empty(BLOCK_ROWS)
    scratch = np.empty(BLOCK_ROWS)
    loss = 0.0
    for start in range(lo, hi, BLOCK_ROWS):
        n = min(BLOCK_ROWS, hi - start)
        for t in range(n):
            zi = b
            for j in range(d):
                zi += X[start + t, j] * w[j]
            z[t] = zi
        loss += _block_residuals(z, y, sw, start, n, r, scratch)
        for t in range(n):
            rt = r[t]
            for j in range(d):
                g[j] += rt * X[start + t, j]
            g[d] += rt
    return loss


@jit
def _block_residuals(z, y, sw, lo, n, r, losses):
    """``r[t] = s (p - y)`` of rows ``lo + t`` (t < n) from their margins ``z[t]``; returns the
    block's weighted loss, summed in a fixed order (:func:`_sum_block`). ``losses`` is scratch of
    at least ``n`` floats. Branch-free, so the loop runs in SIMD lanes."""
    for t in range(n):
        i = lo + t
        zt = z[t]
        e = _exp_neg(min(abs(zt), MAX_ABS_MARGIN))
        inv = np.divide(1.0, 1.0 + e)
        p = inv if zt >= 0.0 else e * inv
        s = sw[i]
        losses[t] = s * (max(zt, 0.0) + _log1p_unit(e) - y[i] * zt)
        r[t] = s * (p - y[i])
    return _sum_block(losses, n)


@jit
def _sum_block(v, n):
    """``sum(v[:n])`` in four interleaved partial sums (entry t mod 4), added in a fixed order."""
    s0 = s1 = s2 = s3 = 0.0
    t = 0
    while t + 4 <= n:
        s0 += v[t]
        s1 += v[t + 1]
        s2 += v[t + 2]
        s3 += v[t + 3]
        t += 4
    while t < n:
        s0 += v[t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@jit
def loss_grad_csr(indptr, indices, data, y, sw, w, b, lo, hi, g):
    """Same as :func:`loss_grad_dense` for a CSR matrix (``indptr`` of length n + 1, int32/int64;
    ``indices``/``data`` of length nnz, int32/int64 and float32/float64); ``d = g.shape[0] - 1``.
    Rows go in blocks of :data:`BLOCK_ROWS` (margins, residuals, scatter); each row's sums keep
    the order of its entries."""
    d = g.shape[0] - 1
    for j in range(d + 1):
        g[j] = 0.0
    z = np.empty(BLOCK_ROWS)
    r = np.empty(BLOCK_ROWS)
    scratch = np.empty(BLOCK_ROWS)
    loss = 0.0
    for start in range(lo, hi, BLOCK_ROWS):
        n = min(BLOCK_ROWS, hi - start)
        for t in range(n):
            i = start + t
            zi = b
            for k in range(indptr[i], indptr[i + 1]):
                zi += data[k] * w[indices[k]]
            z[t] = zi
        loss += _block_residuals(z, y, sw, start, n, r, scratch)
        for t in range(n):
            i = start + t
            rt = r[t]
            for k in range(indptr[i], indptr[i + 1]):
                g[indices[k]] += rt * data[k]
            g[d] += rt
    return loss


@jit
def loss_grad_pattern(indptr, indices, y, sw, w, b, lo, hi, g):
    """:func:`loss_grad_csr` for a CSR matrix whose stored values are all 1 (one-hot features).

    Reads only the sparsity pattern (``indptr``, ``indices``), never the value stream. A row's
    margin is summed in four interleaved float64 partial sums (entry k mod 4, added in a fixed
    order): the same order for any number of threads.
    """
    d = g.shape[0] - 1
    for j in range(d + 1):
        g[j] = 0.0
    z = np.empty(BLOCK_ROWS)
    r = np.empty(BLOCK_ROWS)
    scratch = np.empty(BLOCK_ROWS)
    loss = 0.0
    for start in range(lo, hi, BLOCK_ROWS):
        n = min(BLOCK_ROWS, hi - start)
        for t in range(n):
            i = start + t
            stop = indptr[i + 1]
            z0 = z1 = z2 = z3 = 0.0
            k = indptr[i]
            while k + 4 <= stop:
                z0 += w[indices[k]]
                z1 += w[indices[k + 1]]
                z2 += w[indices[k + 2]]
                z3 += w[indices[k + 3]]
                k += 4
            while k < stop:
                z0 += w[indices[k]]
                k += 1
            z[t] = b + ((z0 + z1) + (z2 + z3))
        loss += _block_residuals(z, y, sw, start, n, r, scratch)
        for t in range(n):
            i = start + t
            rt = r[t]
            for k in range(indptr[i], indptr[i + 1]):
                g[indices[k]] += rt
            g[d] += rt
    return loss


def narrow_indices(indices, n_features: int):
    """Column indices as uint16 when every column fits (a copy, half the bytes of int32 that the
    gather/scatter loops of the CSR and pattern kernels stream each pass), else ``indices``
    unchanged."""
    if n_features <= 1 << 16 and indices.dtype != np.uint16:
        return indices.astype(np.uint16)
    return indices


def all_ones(data) -> bool:
    """True when every stored value of a CSR matrix is 1 (the pattern kernels apply)."""
    return data.size > 0 and bool(_all_ones(data))


@jit
def _all_ones(data):
    for k in range(data.shape[0]):
        if data[k] != 1.0:
            return False
    return True


@jit(fastmath=FAST)
def margins_dense(X, w, b, lo, hi, out):
    """``out[i] = X[i] @ w + b`` for rows ``lo:hi``, accumulated in float64 (X float32/float64, w float64)."""
    d = X.shape[1]
    for i in range(lo, hi):
        z = b
        for j in range(d):
            z += X[i, j] * w[j]
        out[i] = z


@jit
def margins_csr(indptr, indices, data, w, b, lo, hi, out):
    """``out[i] = X[i] @ w + b`` for rows ``lo:hi`` of a CSR matrix, accumulated in float64."""
    for i in range(lo, hi):
        z = b
        for k in range(indptr[i], indptr[i + 1]):
            z += data[k] * w[indices[k]]
        out[i] = z


@jit
def _ftrl_weight(z, n, alpha, beta, l1, l2):
    """Closed-form FTRL-proximal weight of one coordinate (McMahan et al. 2013, Algorithm 1)."""
    if abs(z) <= l1:
        return 0.0
    sign = 1.0 if z > 0.0 else -1.0
    return -(z - sign * l1) / ((beta + math.sqrt(n)) / alpha + l2)


@jit
def _ftrl_step(z, nsq, j, g, w, alpha):
    """FTRL-proximal state update of coordinate ``j`` for gradient ``g`` at weight ``w`` (in place)."""
    sigma = (math.sqrt(nsq[j] + g * g) - math.sqrt(nsq[j])) / alpha
    z[j] += g - sigma * w
    nsq[j] += g * g


@jit
def _ftrl_logistic_row(m, z, nsq, y_i, s, alpha, beta, fit_intercept):
    """A row's weighted log loss, residual ``s · (σ(margin) - y)`` and intercept weight.

    ``m`` is the row's margin without the intercept, whose FTRL state is ``z[-1]``, ``nsq[-1]``
    (its weight is 0 without ``fit_intercept``).
    """
    d = z.shape[0] - 1
    wb = 0.0
    if fit_intercept:
        wb = _ftrl_weight(z[d], nsq[d], alpha, beta, 0.0, 0.0)
        m += wb
    return s * (_log1pexp(m) - y_i * m), s * (_sigmoid(m) - y_i), wb


@jit
def ftrl_epoch_csr(indptr, indices, data, y, sw, order, z, nsq, alpha, beta, l1, l2, fit_intercept):
    """One FTRL-proximal pass over the rows ``order`` of a CSR matrix; updates ``z`` and ``nsq`` in place.

    ``z``/``nsq`` have length d + 1 (the last slot is the intercept, never regularised).
    Returns the progressive (before-update) weighted log-loss summed over the pass.
    """
    d = z.shape[0] - 1
    total = 0.0
    for t in range(order.shape[0]):
        i = order[t]
        start = indptr[i]
        stop = indptr[i + 1]
        m = 0.0
        for k in range(start, stop):
            j = indices[k]
            m += data[k] * _ftrl_weight(z[j], nsq[j], alpha, beta, l1, l2)
        loss, r, wb = _ftrl_logistic_row(m, z, nsq, y[i], sw[i], alpha, beta, fit_intercept)
        total += loss
        for k in range(start, stop):
            j = indices[k]
            g = r * data[k]
            _ftrl_step(z, nsq, j, g, _ftrl_weight(z[j], nsq[j], alpha, beta, l1, l2), alpha)
        if fit_intercept:
            _ftrl_step(z, nsq, d, r, wb, alpha)
    return total


@jit
def ftrl_epoch_dense(X, y, sw, order, z, nsq, alpha, beta, l1, l2, fit_intercept):
    """:func:`ftrl_epoch_csr` for a dense C-contiguous matrix (every feature of a row is active)."""
    d = X.shape[1]
    w = np.empty(d)
    total = 0.0
    for t in range(order.shape[0]):
        i = order[t]
        m = 0.0
        for j in range(d):
            w[j] = _ftrl_weight(z[j], nsq[j], alpha, beta, l1, l2)
            m += X[i, j] * w[j]
        loss, r, wb = _ftrl_logistic_row(m, z, nsq, y[i], sw[i], alpha, beta, fit_intercept)
        total += loss
        for j in range(d):
            _ftrl_step(z, nsq, j, r * X[i, j], w[j], alpha)
        if fit_intercept:
            _ftrl_step(z, nsq, d, r, wb, alpha)
    return total


@jit
def ftrl_weights(z, nsq, alpha, beta, l1, l2, out):
    """Weights from FTRL state: ``out[j]`` for j < d with (l1, l2); the intercept slot unregularised."""
    d = z.shape[0] - 1
    for j in range(d):
        out[j] = _ftrl_weight(z[j], nsq[j], alpha, beta, l1, l2)
    out[d] = _ftrl_weight(z[d], nsq[d], alpha, beta, 0.0, 0.0)


def _warmup():
    """Every kernel with the types LogisticRegression passes: CSR with int32 or int64 indices
    (scipy keeps indptr and indices of one dtype) and float32 or float64 data, dense
    C-contiguous float32 or float64 (``rank._base.check_X`` keeps those dtypes), float64 rest."""
    y, sw, w, out = np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1)  # 1 row, 1 feature
    z, nsq, partial = np.zeros(2), np.zeros(2), np.zeros(2)  # features + intercept
    order = np.zeros(1, np.int64)
    for data_dtype in (np.float32, np.float64):
        for index_dtype in (np.int32, np.int64):
            indptr, indices = np.array([0, 1], index_dtype), np.zeros(1, index_dtype)
            data = np.ones(1, data_dtype)
            loss_grad_csr(indptr, indices, data, y, sw, w, 0.0, 0, 1, partial)
            loss_grad_csr(indptr, narrow_indices(indices, 1), data, y, sw, w, 0.0, 0, 1, partial)
            loss_grad_pattern(indptr, indices, y, sw, w, 0.0, 0, 1, partial)
            loss_grad_pattern(indptr, narrow_indices(indices, 1), y, sw, w, 0.0, 0, 1, partial)
            _all_ones(data)
            margins_csr(indptr, indices, data, w, 0.0, 0, 1, out)
            ftrl_epoch_csr(indptr, indices, data, y, sw, order, z, nsq, 0.1, 1.0, 0.0, 0.0, True)
        X = np.ones((1, 1), data_dtype)
        loss_grad_dense(X, y, sw, w, 0.0, 0, 1, partial)
        margins_dense(X, w, 0.0, 0, 1, out)
        ftrl_epoch_dense(X, y, sw, order, z, nsq, 0.1, 1.0, 0.0, 0.0, True)
    ftrl_weights(z, nsq, 0.1, 1.0, 0.0, 0.0, partial)
