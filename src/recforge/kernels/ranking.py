"""Numba kernel behind the ranking metrics: which recommended items are relevant.

The kernel is a pure function on arrays; validation happens in :mod:`recforge.metrics`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._chunks import CHUNKS_PER_WORKER, even_bounds, pulled_chunks
from ._jit import jit
from ._search import lower_bound


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
    Parallel over users, in chunks the threads pull dynamically (``kernels._chunks``); each user
    writes only its own row, so there is no shared reduction. Cost O(n_users * k * log(max row
    length)).
    """
    return _hit_matrix(recommended, indptr, indices, numba.get_num_threads())


@jit(parallel=True)
def _hit_matrix(recommended, indptr, indices, n_workers):
    """:func:`hit_matrix` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``)."""
    n_users, k = recommended.shape
    hits = np.zeros((n_users, k), dtype=np.bool_)
    bounds = even_bounds(n_users, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for u in range(r0, r1):
                start = indptr[u]
                stop = indptr[u + 1]
                for j in range(k):
                    item = recommended[u, j]
                    if item < 0 or stop == start:
                        continue
                    lo = lower_bound(indices, start, stop, item)
                    if lo < stop and indices[lo] == item:
                        hits[u, j] = True
    return hits


def _warmup():
    hit_matrix(np.zeros((1, 1), np.int64), np.array([0, 1], np.int64), np.zeros(1, np.int64))
