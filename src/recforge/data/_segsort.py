"""Order the entries of each CSR row by a key (stable), the step behind sequences and splits."""

from __future__ import annotations

import numpy as np

#: below this many entries one ``np.lexsort`` is fast and needs no compilation
SMALL = 1 << 20


def order_within_rows(
    indptr: np.ndarray, keys: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Permutation putting entries in (row, key) order; equal keys keep their stored order.

    Small inputs use one ``np.lexsort``; large ones a compiled per-row merge sort (~10x faster
    on 20M entries, rows sorted independently).

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,), int
        CSR row pointers; entries of a row are contiguous.
    keys : ndarray of shape (nnz,), float64
    rows : ndarray of shape (nnz,), int64, optional
        Row of every entry (computed from ``indptr`` when needed).

    Returns
    -------
    ndarray of shape (nnz,), int64
        The result of ``np.lexsort((keys, rows))``: a row-wise stable argsort of ``keys``.
    """
    if keys.size < SMALL:
        if rows is None:
            rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
        return np.lexsort((keys, rows))
    from ..kernels.segsort import segment_argsort  # imports Numba on first large input only

    return segment_argsort(
        np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(keys, dtype=np.float64)
    )
