"""Slow, readable NumPy versions of ItemCF / UserCF (the specification of ``kernels.neighbors``)."""

import numpy as np


def penalised_cosine_topk(binary, penalty, n_neighbors):
    """Top-K neighbours of each row of a dense 0/1 matrix (rows × intermediates).

    sim(a, b) = Σ_m binary[a, m] binary[b, m] penalty[m] / sqrt(|a| |b|), a != b; keep the
    ``n_neighbors`` largest positive values per row, ties by lower index. Returns a dense (rows × rows)
    float64 matrix with the kept similarities, zeros elsewhere.
    """
    binary = np.asarray(binary, dtype=np.float64)
    degree = np.maximum(binary.sum(axis=1), 1.0)
    co = (binary * penalty[None, :]) @ binary.T
    sim = co / np.sqrt(np.outer(degree, degree))
    np.fill_diagonal(sim, 0.0)
    kept = np.zeros_like(sim)
    for a in range(sim.shape[0]):
        candidates = np.flatnonzero(sim[a] > 0)
        order = np.lexsort((candidates, -sim[a, candidates]))[:n_neighbors]
        kept[a, candidates[order]] = sim[a, candidates[order]]
    return kept


def itemcf_scores(user_items, n_neighbors, weights=None, normalize_max=False):
    """Dense (users × items) ItemCF scores: Σ_j w(u, j) sim(j, i) with the activity penalty 1/log(1+|N(u)|)."""
    binary = (np.asarray(user_items) != 0).astype(np.float64)
    penalty = 1.0 / np.log1p(np.maximum(binary.sum(axis=1), 1))
    sim = penalised_cosine_topk(binary.T, penalty, n_neighbors)
    if normalize_max:
        top = sim.max(axis=1, keepdims=True)
        sim = sim / np.where(top > 0, top, 1.0)
    w = binary if weights is None else np.asarray(weights, dtype=np.float64)
    return w @ sim


def usercf_scores(user_items, n_neighbors, weights=None):
    """Dense (users × items) UserCF scores: Σ_v sim(u, v) w(v, i) with the popularity penalty 1/log(1+|N(i)|)."""
    binary = (np.asarray(user_items) != 0).astype(np.float64)
    penalty = 1.0 / np.log1p(np.maximum(binary.sum(axis=0), 1))
    sim = penalised_cosine_topk(binary, penalty, n_neighbors)
    w = binary if weights is None else np.asarray(weights, dtype=np.float64)
    return sim @ w
