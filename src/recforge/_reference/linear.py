"""Readable NumPy specification of the logistic-regression kernels (tests only, never a fast path).

* :func:`objective` — the weighted mean log-loss plus the L2 penalty that ``solver="lbfgs"``
  minimises, and its gradient, straight from the formulas.
* :func:`ftrl_epoch` — one FTRL-proximal pass, one row and one coordinate at a time, exactly as
  Algorithm 1 of McMahan et al. (2013), "Ad Click Prediction: a View from the Trenches".
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def objective(X, y, sample_weight, w, b, lam):
    """``f(w, b) = sum_i s_i logloss(y_i, x_i.w + b) / sum_i s_i + lam / 2 * |w|^2`` and its gradient.

    Returns ``(f, grad_w, grad_b)``.
    """
    X = _dense(X)
    s = np.asarray(sample_weight, dtype=np.float64)
    z = X @ w + b
    p = 1.0 / (1.0 + np.exp(-z))
    loss_i = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    S = s.sum()
    f = (s * loss_i).sum() / S + 0.5 * lam * (w @ w)
    r = s * (p - y) / S
    return f, X.T @ r + lam * w, r.sum()


def ftrl_epoch(X, y, sample_weight, order, z, n, alpha, beta, l1, l2, fit_intercept=True):
    """One FTRL-proximal pass; returns the new ``(z, n)`` (length d + 1, the last slot the intercept)
    and the progressive weighted log-loss summed over the pass."""
    X = _dense(X)
    z, n = z.astype(np.float64).copy(), n.astype(np.float64).copy()
    d = X.shape[1]

    def weight(j, lam1, lam2):
        if abs(z[j]) <= lam1:
            return 0.0
        return -(z[j] - np.sign(z[j]) * lam1) / ((beta + np.sqrt(n[j])) / alpha + lam2)

    total = 0.0
    for i in order:
        active = [j for j in range(d) if X[i, j] != 0.0]
        w = {j: weight(j, l1, l2) for j in active}
        wb = weight(d, 0.0, 0.0) if fit_intercept else 0.0
        m = sum(X[i, j] * w[j] for j in active) + wb
        p = 1.0 / (1.0 + np.exp(-m))
        total += sample_weight[i] * -(y[i] * np.log(p) + (1 - y[i]) * np.log(1 - p))
        for j in active:
            g = sample_weight[i] * (p - y[i]) * X[i, j]
            sigma = (np.sqrt(n[j] + g * g) - np.sqrt(n[j])) / alpha
            z[j] += g - sigma * w[j]
            n[j] += g * g
        if fit_intercept:
            g = sample_weight[i] * (p - y[i])
            sigma = (np.sqrt(n[d] + g * g) - np.sqrt(n[d])) / alpha
            z[d] += g - sigma * wb
            n[d] += g * g
    return z, n, total
