"""Logistic-regression kernels: the L-BFGS path's loss + gradient and margins (C++, in
``recforge._core``, header ``csrc/include/recforge/linear.hpp``) and FTRL-proximal (Numba).

Pure functions on arrays; validation lives in :mod:`recforge.rank.linear`. The readable NumPy
specification is :mod:`recforge._reference.linear`.

Threads: the loss/gradient and margin kernels work on a row range and release the GIL;
:func:`recforge._threads.run_chunks` runs them on row chunks in a pool of Python threads. Those
threads block when idle (unlike an OpenMP team, which spins after each parallel region and starves
the L-BFGS driver, and everyone else, on a busy machine). The rows are split into ``n_chunks``
contiguous chunks chosen by :func:`n_chunks_for` from the data's shape only; each chunk writes its
own row of a partial gradient buffer, and the rows are summed in chunk order, so results are
bit-identical for any number of threads. They call no Numba: an L-BFGS fit or a prediction does
not pay Numba's start in a fresh process. The FTRL kernel is sequential (one pass in the given row
order).

Layout of the partial-gradient buffer::

    partial[c, :n_features]  sum over rows of chunk c of  s_i (p_i - y_i) x_i
    partial[c, n_features]   sum over rows of chunk c of  s_i (p_i - y_i)        (intercept)
    losses[c]                sum over rows of chunk c of  s_i * logloss_i

Kernels (each on rows ``lo:hi``; X float32 or float64, CSR ``indptr`` int32/int64 and
``indices`` uint16/int32/int64, everything else float64, all C-contiguous; float64 accumulation):

* ``loss_grad_dense(X, y, sw, w, b, lo, hi, g) -> float`` — ``g`` (d + 1,) overwritten with the
  gradient sums above (intercept last); returns the weighted loss sum.
* ``loss_grad_csr(indptr, indices, data, y, sw, w, b, lo, hi, g) -> float`` — the same for CSR.
* ``loss_grad_pattern(indptr, indices, y, sw, w, b, lo, hi, g) -> float`` — CSR whose stored
  values are all 1 (one-hot): reads the sparsity pattern only.
* ``margins_dense(X, w, b, lo, hi, out)``, ``margins_csr(indptr, indices, data, w, b, lo, hi,
  out)`` — ``out[lo:hi] = X[lo:hi] @ w + b``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ._jit import jit

loss_grad_dense = _core.linear_loss_grad_dense
loss_grad_csr = _core.linear_loss_grad_csr
loss_grad_pattern = _core.linear_loss_grad_pattern
margins_dense = _core.linear_margins_dense
margins_csr = _core.linear_margins_csr

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


def narrow_indices(indices, n_features: int):
    """Column indices as uint16 when every column fits (a copy, half the bytes of int32 that the
    gather/scatter loops of the CSR and pattern kernels stream each pass), else ``indices``
    unchanged."""
    if n_features <= 1 << 16 and indices.dtype != np.uint16:
        return indices.astype(np.uint16)
    return indices


def all_ones(data) -> bool:
    """True when every stored value of a CSR matrix is 1 (the pattern kernels apply)."""
    return data.size > 0 and _core.linear_all_ones(data)


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
    """The FTRL kernels with the types LogisticRegression passes: CSR with int32 or int64 indices
    (scipy keeps indptr and indices of one dtype) and float32 or float64 data, dense C-contiguous
    float32 or float64 (``rank._base.check_X`` keeps those dtypes), float64 rest."""
    y, sw = np.zeros(1), np.ones(1)  # 1 row, 1 feature
    z, nsq, out = np.zeros(2), np.zeros(2), np.zeros(2)  # features + intercept
    order = np.zeros(1, np.int64)
    for data_dtype in (np.float32, np.float64):
        for index_dtype in (np.int32, np.int64):
            indptr, indices = np.array([0, 1], index_dtype), np.zeros(1, index_dtype)
            data = np.ones(1, data_dtype)
            ftrl_epoch_csr(indptr, indices, data, y, sw, order, z, nsq, 0.1, 1.0, 0.0, 0.0, True)
        X = np.ones((1, 1), data_dtype)
        ftrl_epoch_dense(X, y, sw, order, z, nsq, 0.1, 1.0, 0.0, 0.0, True)
    ftrl_weights(z, nsq, 0.1, 1.0, 0.0, 0.0, out)
