"""Numba kernels of PersonalRank: one step of the random walk for a dense block of start users.

The user–item graph is bipartite, so one step of ``x ← α Mᵀ x`` moves all of the walk's mass from
the user side to the item side or back. Each kernel computes one such half-step for a block of
``B`` walks at once (sparse CSR × dense ``(n, B)``, parallel over destination rows, each row
written by one thread: no shared reductions, same result for any thread count).
"""
from __future__ import annotations

from numba import prange

from ._jit import jit


@jit(parallel=True)
def half_step(indptr, indices, data, src, dst, alpha):
    """``dst[r, :] = alpha · Σ_p data[p] · src[indices[p], :]`` over row ``r``'s entries.

    Parameters
    ----------
    indptr : int64 (n_dst + 1,); indices : int32 (nnz,); data : float64 (nnz,)
        Transition probabilities into each destination row (a CSR of ``Mᵀ`` restricted to one side).
    src : float64 (n_src, B), C-contiguous
    dst : float64 (n_dst, B), C-contiguous, overwritten
    alpha : float
    """
    n_dst, n_cols = dst.shape
    for r in prange(n_dst):
        for j in range(n_cols):
            dst[r, j] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            w = alpha * data[p]
            s = indices[p]
            for j in range(n_cols):
                dst[r, j] += w * src[s, j]


@jit(parallel=True)
def accumulate_active(total, x, scale, active):
    """``total[:, j] += scale · x[:, j]`` for the columns with ``active[j]`` (uint8), parallel over rows."""
    n_rows, n_cols = total.shape
    for r in prange(n_rows):
        for j in range(n_cols):
            if active[j]:
                total[r, j] += scale * x[r, j]
