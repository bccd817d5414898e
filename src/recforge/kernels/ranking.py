"""Numba kernel behind the ranking metrics: which recommended items are relevant.

The kernel is a pure function on arrays; validation happens in :mod:`recforge.metrics`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._chunks import CHUNKS_PER_WORKER, balanced_bounds, even_bounds, pulled_chunks
from ._jit import jit
from ._search import lower_bound


def hit_matrix(recommended, indptr, indices):
    """Mark each recommended item that is in the user's relevant set.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, k), int64
        Item indices per user, ``-1`` = padding (never a hit). C-contiguous.
    indptr : ndarray of shape (n_users + 1,), int32 or int64
        CSR row pointers of the relevant matrix (row ``u`` = user ``u``'s relevant items).
    indices : ndarray of shape (nnz,), int32 or int64
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


def recommended_rows(recommended, n_items):
    """Check every row of a recommendation array in one parallel pass.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, n_cols), int64, C-contiguous
    n_items : int
        Ids must be below it; ``-1`` checks no upper bound.

    Returns
    -------
    invalid : ndarray of shape (n_users,), bool
        The row holds an id ``< -1``, an id ``>= n_items`` (when ``n_items >= 0``) or an id other
        than ``-1`` twice.
    row_max : ndarray of shape (n_users,), int64
        The largest id of each row (``-1`` for an empty row).

    Examples
    --------
    >>> import numpy as np
    >>> invalid, row_max = recommended_rows(np.array([[0, 2, -1], [1, 1, 3]]), -1)
    >>> invalid.tolist(), row_max.tolist()
    ([False, True], [2, 3])
    """
    return _recommended_rows(recommended, np.int64(n_items), numba.get_num_threads())


@jit(parallel=True)
def _recommended_rows(recommended, n_items, n_workers):
    """:func:`recommended_rows` on ``n_workers`` workers pulling chunks of rows; repeated ids are
    found with an open-addressing table per worker (O(n_cols) per row, no sort)."""
    n_users, n_cols = recommended.shape
    invalid = np.zeros(n_users, dtype=np.bool_)
    row_max = np.full(n_users, -1, dtype=np.int64)
    bits = 4
    while (1 << bits) < 2 * n_cols:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    bounds = even_bounds(n_users, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        keys = np.empty(mask + 1, dtype=np.int64)
        owner = np.full(mask + 1, -1, dtype=np.int64)  # the row whose id occupies a slot
        for r0, r1 in pulled_chunks(counter, bounds):
            for u in range(r0, r1):
                largest = -1
                bad = False
                for j in range(n_cols):
                    item = recommended[u, j]
                    largest = max(largest, item)
                    if item < 0:
                        bad = bad or item < -1
                        continue
                    if n_items >= 0 and item >= n_items:
                        bad = True
                    slot = np.int64((np.uint64(item) * np.uint64(0x9E3779B97F4A7C15)) >> shift)
                    while owner[slot] == u and keys[slot] != item:
                        slot = (slot + 1) & mask
                    if owner[slot] == u:
                        bad = True
                    owner[slot] = u
                    keys[slot] = item
                invalid[u] = bad
                row_max[u] = largest
    return invalid, row_max


def hit_stats(recommended, k, indptr, indices, discounts):
    """Per user: hits among the first ``k`` recommendations and their DCG (binary gain).

    Parameters
    ----------
    recommended : ndarray of shape (n_users, n_cols), int64, ``k <= n_cols``, ``-1`` = padding
    k : int
    indptr : ndarray of shape (n_users + 1,); indices : ndarray (nnz,) (int32 or int64 each)
        The relevant matrix as in :func:`hit_matrix` (indices sorted within each row).
    discounts : ndarray of shape (k,), float64
        The gain of a hit at each position.

    Returns
    -------
    n_hits : ndarray of shape (n_users,), int64
    dcg : ndarray of shape (n_users,), float64
        ``Σ_j discounts[j]`` over the hit positions, summed in position order (as
        :func:`dcg_of_hits` sums a hit matrix: the same value).

    Examples
    --------
    >>> import numpy as np
    >>> n_hits, dcg = hit_stats(np.array([[2, 0, 1]]), 2, np.array([0, 1]), np.array([0]),
    ...                         np.array([1.0, 0.5]))
    >>> n_hits.tolist(), dcg.tolist()
    ([1], [0.5])
    """
    return _hit_stats(recommended, k, indptr, indices, discounts, numba.get_num_threads())


@jit(parallel=True)
def _hit_stats(recommended, k, indptr, indices, discounts, n_workers):
    """:func:`hit_stats` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``)."""
    n_users = recommended.shape[0]
    n_hits = np.zeros(n_users, dtype=np.int64)
    dcg = np.zeros(n_users, dtype=np.float64)
    bounds = even_bounds(n_users, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for u in range(r0, r1):
                start = indptr[u]
                stop = indptr[u + 1]
                if stop == start:
                    continue
                count = 0
                gain = 0.0
                for j in range(k):
                    item = recommended[u, j]
                    if item < 0:
                        continue
                    lo = lower_bound(indices, start, stop, item)
                    if lo < stop and indices[lo] == item:
                        count += 1
                        gain += discounts[j]
                n_hits[u] = count
                dcg[u] = gain
    return n_hits, dcg


def unsorted_rows(indptr, indices):
    """Which rows of a CSR structure are not strictly increasing (unsorted or a repeated index).

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,), int32 or int64
    indices : ndarray of shape (nnz,), int32 or int64

    Returns
    -------
    bad : ndarray of shape (n_rows,), bool

    Examples
    --------
    >>> import numpy as np
    >>> unsorted_rows(np.array([0, 2, 4, 6]), np.array([0, 3, 2, 1, 5, 5])).tolist()
    [False, True, True]
    """
    return _unsorted_rows(indptr, indices, numba.get_num_threads())


@jit(parallel=True)
def _unsorted_rows(indptr, indices, n_workers):
    """:func:`unsorted_rows` on ``n_workers`` workers pulling chunks of about equal entries."""
    n_rows = indptr.shape[0] - 1
    bad = np.zeros(n_rows, dtype=np.bool_)
    bounds = balanced_bounds(indptr, n_workers * CHUNKS_PER_WORKER, 1.0)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for u in range(r0, r1):
                for p in range(indptr[u] + 1, indptr[u + 1]):
                    if indices[p] <= indices[p - 1]:
                        bad[u] = True
                        break
    return bad


@jit
def dcg_of_hits(hits, discounts):
    """Per row of a hit matrix (bool (n_users, k)): ``Σ_j discounts[j]`` over its hits, in position
    order: float64 (n_users,), the values :func:`hit_stats` gives."""
    n_users, k = hits.shape
    dcg = np.zeros(n_users, dtype=np.float64)
    for u in range(n_users):
        gain = 0.0
        for j in range(k):
            if hits[u, j]:
                gain += discounts[j]
        dcg[u] = gain
    return dcg


def _warmup():
    """The kernels for the relevant matrix's index dtypes as scipy stores them (int32 or int64)."""
    rec = np.zeros((1, 1), np.int64)
    for dtype in (np.int32, np.int64):
        indptr, indices = np.array([0, 1], dtype), np.zeros(1, dtype)
        hit_matrix(rec, indptr, indices)
        hit_stats(rec, 1, indptr, indices, np.ones(1))
        unsorted_rows(indptr, indices)
    recommended_rows(rec, -1)
    dcg_of_hits(np.zeros((1, 1), np.bool_), np.ones(1))
