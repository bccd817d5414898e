"""FTRL-proximal kernels of LogisticRegression (Numba; sequential: one pass in the given row order)
and the scalar helpers they share with the neural rankers' kernels.

The loss/gradient and margin kernels of the L-BFGS path are C++, in :mod:`recforge.kernels.logistic`
(no Numba); their names are re-exported here for the callers that take every LR kernel from this
module. Pure functions on arrays; validation lives in :mod:`recforge.rank.linear`. The readable
NumPy specification is :mod:`recforge._reference.linear`.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .logistic import (  # noqa: F401  (re-exported)
    CHUNK_ROWS,
    MAX_CHUNKS,
    MAX_PARTIAL_FLOATS,
    all_ones,
    chunk_bounds,
    loss_grad_csr,
    loss_grad_dense,
    loss_grad_pattern,
    margins_csr,
    margins_dense,
    n_chunks_for,
    narrow_indices,
)


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
