"""Numba kernel behind the ranking metrics: which recommended items are relevant.

The kernel is a pure function on arrays; validation happens in :mod:`recforge.metrics`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit


@jit(parallel=True)
def hit_matrix(recommended, indptr, indices):
    """Mark each recommended item that is in the user's relevant set.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, k), int64
        Item indices per user, ``-1`` = padding (never a hit). C-contiguous.
    indptr : ndarray of shape (n_users + 1,), int64
        CSR row pointers of the relevant matrix (row ``u`` = user ``u``'s relevant items).
    indices : ndarray of shape (nnz,), int64
        CSR column indices, **sorted within each row** (binary search relies on it).

    Returns
    -------
    hits : ndarray of shape (n_users, k), bool
        ``hits[u, j]`` is True iff ``recommended[u, j]`` is one of user ``u``'s relevant items.

    Notes
    -----
    Parallel over users (``prange``); each user writes only its own row, so there is no shared
    reduction. Cost O(n_users * k * log(max row length)).
    """
    n_users, k = recommended.shape
    hits = np.zeros((n_users, k), dtype=np.bool_)
    for u in prange(n_users):
        start = indptr[u]
        stop = indptr[u + 1]
        if stop == start:
            continue
        for j in range(k):
            item = recommended[u, j]
            if item < 0:
                continue
            lo = start
            hi = stop
            while lo < hi:  # first position with indices[pos] >= item
                mid = (lo + hi) >> 1
                if indices[mid] < item:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < stop and indices[lo] == item:
                hits[u, j] = True
    return hits


def _warmup():
    hit_matrix(np.zeros((1, 1), np.int64), np.array([0, 1], np.int64), np.zeros(1, np.int64))
