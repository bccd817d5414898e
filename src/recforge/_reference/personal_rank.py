"""The PersonalRank recurrence in plain NumPy (the specification of the ``"iterate"`` method)."""

import numpy as np


def transition_matrix(user_items):
    """Row-stochastic M (dense, (n_users + n_items)²) of the bipartite graph of a dense (users × items) matrix."""
    w = np.asarray(user_items, dtype=np.float64)
    n_users, n_items = w.shape
    adj = np.zeros((n_users + n_items,) * 2)
    adj[:n_users, n_users:] = w
    adj[n_users:, :n_users] = w.T
    deg = adj.sum(axis=1, keepdims=True)
    return np.divide(adj, deg, out=np.zeros_like(adj), where=deg > 0)


def personal_rank(user_items, user, alpha, tol=1e-12, max_iter=10_000):
    """Iterate ``r ← α Mᵀ r + (1 − α) r0`` from ``r = (1 − α) r0`` until ``|r_new − r|₁ < tol``.

    Returns the item part of ``r`` (n_items,) for the walk restarting at ``user``.
    """
    m = transition_matrix(user_items)
    n_users = np.asarray(user_items).shape[0]
    r0 = np.zeros(m.shape[0])
    r0[user] = 1.0
    r = (1 - alpha) * r0
    for _ in range(max_iter):
        new = alpha * m.T @ r + (1 - alpha) * r0
        change = np.abs(new - r).sum()
        r = new
        if change < tol:
            break
    return r[n_users:]
