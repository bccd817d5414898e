"""Batched top-k selection: validation in Python, the selection in C++ (``recforge._core.topk_rows``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._threads import resolve_n_threads
from .._validation import check_int
from ._csr import csr_kernel_arrays


def topk(scores, k, *, exclude=None, global_mask=None, n_threads=1):
    """Best ``k`` items of each score row, skipping excluded items.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_items), float32 or float64
        Scores, higher is better. Items scoring ``-inf`` are never returned; NaN is an error.
    k : int >= 1
        Number of columns of the result. Rows with fewer than ``k`` candidates are padded.
    exclude : sparse matrix of shape (n_rows, n_items), optional
        Row ``r``'s stored entries are excluded from row ``r`` (e.g. the items a user has seen).
    global_mask : ndarray of shape (n_items,), bool, optional
        ``True`` removes the item from every row.
    n_threads : int, default 1
        Worker threads (``None``/0 = all available cores). The result does not depend on it.

    Returns
    -------
    indices : ndarray of shape (n_rows, k), int64
        Item indices, best first; equal scores are ordered by lower index; ``-1`` pads.
    values : ndarray of shape (n_rows, k), same dtype as ``scores``
        Their scores; ``-inf`` pads.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.topk import topk
    >>> idx, val = topk(np.array([[0.1, 0.9, 0.5]], dtype=np.float32), 2)
    >>> idx.tolist(), val.tolist()
    ([[1, 2]], [[0.8999999761581421, 0.5]])
    """
    if sp.issparse(scores):
        raise TypeError("scores must be a dense array, got a sparse matrix")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_rows, n_items), got shape {scores.shape}")
    if scores.dtype.kind not in "biuf":
        raise TypeError(f"scores must be numeric, got dtype {scores.dtype}")
    if scores.dtype != np.float64:
        scores = scores.astype(np.float32, copy=False)
    scores = np.ascontiguousarray(scores)
    n_rows, n_items = scores.shape
    k = check_int(k, "k", min_value=1)
    if n_rows == 0:
        return np.empty((0, k), np.int64), np.empty((0, k), scores.dtype)

    indptr = indices = None
    if exclude is not None:
        if not sp.issparse(exclude):
            raise TypeError("exclude must be a scipy sparse matrix (rows aligned with scores)")
        if exclude.shape != scores.shape:
            raise ValueError(f"exclude has shape {exclude.shape}, scores has shape {scores.shape}")
        indptr, indices, _ = csr_kernel_arrays(sp.csr_matrix(exclude))
    mask = None
    if global_mask is not None:
        mask = np.asarray(global_mask)
        if mask.shape != (n_items,):
            raise ValueError(f"global_mask must have shape ({n_items},), got {mask.shape}")
        mask = np.ascontiguousarray(mask, dtype=np.uint8)

    idx, val, n_nan = _core.topk_rows(
        scores, k, indptr, indices, mask, resolve_n_threads(n_threads)
    )
    if n_nan:
        raise ValueError(f"scores contain {n_nan} NaN value(s); a model produced invalid scores")
    return idx, val
