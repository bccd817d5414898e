"""Readable NumPy version of one LFM SGD step (the specification of the C++ step).

Score ``s = p·q (+ b)``. Losses (``y`` = 1 for a positive, 0 for a sampled negative)::

    squared : ½ (y − s)²                     + ½ λu‖p‖² + ½ λi‖q‖² (+ ½ λb b²)
    logistic: −y log σ(s) − (1 − y) log(1 − σ(s)) + the same regularisation
    bpr     : −log σ(s_ui − s_uj)            + ½ λu‖p‖² + ½ λi(‖q_i‖² + ‖q_j‖²) (+ ½ λb(b_i² + b_j²))

One step moves every parameter by ``−lr ∂L/∂θ`` with all gradients taken at the old values.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lfm_loss(
    p, qi, bi=0.0, *, loss, label=1.0, qj=None, bj=0.0, reg_user=0.0, reg_item=0.0, reg_bias=0.0
):
    """The loss above (NumPy floats)."""
    reg = 0.5 * reg_user * p @ p + 0.5 * reg_item * qi @ qi + 0.5 * reg_bias * bi * bi
    if loss == "bpr":
        x = p @ (qi - qj) + bi - bj
        return -np.log(sigmoid(x)) + reg + 0.5 * reg_item * qj @ qj + 0.5 * reg_bias * bj * bj
    s = p @ qi + bi
    if loss == "squared":
        return 0.5 * (label - s) ** 2 + reg
    return -(label * np.log(sigmoid(s)) + (1 - label) * np.log(1 - sigmoid(s))) + reg


def lfm_step(
    user_factors,
    item_factors,
    item_bias,
    u,
    i,
    j,
    label,
    *,
    loss,
    lr,
    reg_user,
    reg_item,
    reg_bias,
    fit_bias,
):
    """One SGD step in place on float arrays (like ``recforge.kernels.lfm.lfm_step``)."""
    p, qi = user_factors[u].copy(), item_factors[i].copy()
    bi = item_bias[i] if fit_bias else 0.0
    if loss == "bpr":
        qj = item_factors[j].copy()
        bj = item_bias[j] if fit_bias else 0.0
        e = 1.0 - sigmoid(p @ (qi - qj) + bi - bj)
        user_factors[u] = p + lr * (e * (qi - qj) - reg_user * p)
        item_factors[i] = qi + lr * (e * p - reg_item * qi)
        item_factors[j] = qj + lr * (-e * p - reg_item * qj)
        if fit_bias:
            item_bias[i] = bi + lr * (e - reg_bias * bi)
            item_bias[j] = bj + lr * (-e - reg_bias * bj)
        return
    s = p @ qi + bi
    e = (label - s) if loss == "squared" else (label - sigmoid(s))
    user_factors[u] = p + lr * (e * qi - reg_user * p)
    item_factors[i] = qi + lr * (e * p - reg_item * qi)
    if fit_bias:
        item_bias[i] = bi + lr * (e - reg_bias * bi)
