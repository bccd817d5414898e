"""Numba kernels of PersonalRank: one step of the random walk for a dense block of start users.

The user–item graph is bipartite, so one step of ``x ← α Mᵀ x`` moves all of the walk's mass from
the user side to the item side or back. Each kernel computes one such half-step for a block of
``B`` walks at once (sparse CSR × dense ``(n, B)``, parallel over destination rows, each row
written by one thread: no shared reductions, same result for any thread count). The rows are cut into
chunks of about equal work that the threads pull dynamically (``kernels._chunks``), so a thread slowed
by a busy core holds up only its current chunk.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._chunks import CHUNKS_PER_WORKER, balanced_bounds, even_bounds, pulled_chunks
from ._jit import jit


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
    _half_step(indptr, indices, data, src, dst, alpha, numba.get_num_threads())


@jit(parallel=True)
def _half_step(indptr, indices, data, src, dst, alpha, n_workers):
    """:func:`half_step` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``);
    with ``data=None`` :func:`half_step_pattern` (Numba compiles that variant without the weights)."""
    n_cols = dst.shape[1]
    bounds = balanced_bounds(indptr, n_workers * CHUNKS_PER_WORKER, 1.0)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                for j in range(n_cols):
                    dst[r, j] = 0.0
                for p in range(indptr[r], indptr[r + 1]):
                    s = indices[p]
                    if data is None:
                        for j in range(n_cols):
                            dst[r, j] += src[s, j]
                    else:
                        w = alpha * data[p]
                        for j in range(n_cols):
                            dst[r, j] += w * src[s, j]


def accumulate_active(total, x, scale, active):
    """``total[:, j] += scale · x[:, j]`` for the columns with ``active[j]`` (uint8), parallel over rows."""
    _accumulate_active(total, x, scale, active, numba.get_num_threads())


@jit(parallel=True)
def _accumulate_active(total, x, scale, active, n_workers):
    """:func:`accumulate_active` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``)."""
    n_rows, n_cols = total.shape
    bounds = even_bounds(n_rows, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                for j in range(n_cols):
                    if active[j]:
                        total[r, j] += scale * x[r, j]


def rows_times_csr(x, indptr, indices, data, scale, out):
    """``out[j, :] = scale · Σ_s x[j, s] · A[s, :]`` for a dense block ``x`` and a CSR ``A``, parallel over ``j``.

    The row-layout twin of :func:`half_step` (``out = scale · x A``), for blocks whose rows are the queries;
    zero entries of ``x`` are skipped, so indicator rows cost one CSR row.

    Parameters
    ----------
    x : float64 (B, n_src), C-contiguous
    indptr : int64 (n_src + 1,); indices : int32 (nnz,); data : float64 (nnz,)
        ``A`` (n_src × n_dst) as CSR.
    scale : float
    out : float64 (B, n_dst), C-contiguous, overwritten
    """
    _rows_times_csr(x, indptr, indices, data, scale, out, numba.get_num_threads())


@jit(parallel=True)
def _rows_times_csr(x, indptr, indices, data, scale, out, n_workers):
    """:func:`rows_times_csr` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``)."""
    n_rows, n_src = x.shape
    n_dst = out.shape[1]
    bounds = even_bounds(n_rows, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for j in range(r0, r1):
                for d in range(n_dst):
                    out[j, d] = 0.0
                for s in range(n_src):
                    v = x[j, s]
                    if v != 0.0:
                        v *= scale
                        for p in range(indptr[s], indptr[s + 1]):
                            out[j, indices[p]] += v * data[p]


def half_step_pattern(indptr, indices, src, dst):
    """``dst[r, :] = Σ_p src[indices[p], :]`` over row ``r``'s entries: :func:`half_step` without weights.

    For graphs whose transition weights are ``1 / deg(source)``: the caller passes ``src`` already scaled
    by ``alpha / deg(source)``, so no weight array is streamed (a third less memory traffic per edge).

    Parameters
    ----------
    indptr : int64 (n_dst + 1,); indices : int32 (nnz,)
    src : float64 (n_src, B), C-contiguous
    dst : float64 (n_dst, B), C-contiguous, overwritten
    """
    _half_step(indptr, indices, None, src, dst, 1.0, numba.get_num_threads())


@jit
def column_dots(a, b):
    """``Σ_i a[i, j] · b[i, j]`` per column, summed in row order: (B,) float64.

    The order does not depend on the number of columns (unlike NumPy's reductions), so a walk gives the
    same result whichever block of columns it is computed in.

    Parameters
    ----------
    a, b : float64 (n, B), C-contiguous
    """
    n_rows, n_cols = a.shape
    out = np.zeros(n_cols)
    for i in range(n_rows):
        for j in range(n_cols):
            out[j] += a[i, j] * b[i, j]
    return out


def _warmup():
    """Every kernel with the types PersonalRank passes (``recall/personal_rank._kernel_arrays``:
    int64 indptr, int32 indices, float64 data; float64 C-contiguous blocks), on a 1 × 1 graph."""
    indptr, indices, data = np.array([0, 1], np.int64), np.zeros(1, np.int32), np.ones(1)
    src, dst = np.ones((1, 1)), np.zeros((1, 1))
    half_step(indptr, indices, data, src, dst, 0.8)
    half_step_pattern(indptr, indices, src, dst)
    accumulate_active(dst, src, 0.2, np.ones(1, np.uint8))
    rows_times_csr(src, indptr, indices, data, 0.8, dst)
    column_dots(src, dst)
