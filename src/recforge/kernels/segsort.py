"""Numba kernel: a stable argsort of a key within each CSR row (behind sequences and temporal splits)."""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def segment_argsort(indptr, keys):
    """Permutation that orders each row's entries by ``keys`` (stable), rows kept in place.

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,), int64
    keys : ndarray of shape (nnz,), float64

    Returns
    -------
    ndarray of shape (nnz,), int64 — equal to ``np.lexsort((keys, rows))``.
    """
    out = np.empty(keys.size, dtype=np.int64)
    for u in range(indptr.size - 1):
        a, b = indptr[u], indptr[u + 1]
        if b - a == 1:
            out[a] = a
        elif b > a:
            o = np.argsort(keys[a:b], kind="mergesort")
            for j in range(b - a):
                out[a + j] = a + o[j]
    return out


def _warmup():
    segment_argsort(np.array([0, 2], np.int64), np.array([1.0, 0.0]))
