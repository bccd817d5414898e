"""Turn (row, col, weight[, timestamp]) triplets into canonical CSR arrays, merging duplicates.

Canonical = rows in order, column indices strictly increasing inside a row (so no duplicates).
Everything is a sort plus linear passes; no Python loop over entries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DUPLICATE_POLICIES = ("raise", "sum", "last", "first", "max")
#: item indices are int32 in every CSR the kernels read
MAX_ITEMS = 2**31 - 1


def check_n_items(n_items: int, what: str) -> None:
    """Raise ``ValueError`` if ``n_items`` (of ``what``, e.g. "matrix columns") exceeds
    :data:`MAX_ITEMS`.

    >>> check_n_items(2**31, "items")
    Traceback (most recent call last):
    ...
    ValueError: 2147483648 items; at most 2**31 - 1 items are supported
    """
    if n_items > MAX_ITEMS:
        raise ValueError(f"{n_items} {what}; at most 2**31 - 1 items are supported")


def _sort_order(rows, cols, weights, timestamps, n_items, duplicates):
    """Stable order by (row, col[, tie-break]); None when the input is already canonical."""
    n_users_bound = int(rows.max()) + 1 if rows.size else 0
    if n_users_bound * int(n_items) < 2**62:
        key = rows * np.int64(n_items) + cols
        if key.size < 2 or np.all(key[1:] > key[:-1]):
            return None
        if duplicates == "max":
            tiebreak = (weights,) if timestamps is None else (timestamps, weights)
            return np.lexsort((*tiebreak, key))
        if duplicates in ("last", "first") and timestamps is not None:
            return np.lexsort((timestamps, key))
        return np.argsort(key, kind="stable")
    # (n_users * n_items) too large for an int64 key: sort by the two columns
    if duplicates == "max":
        tiebreak = (weights,) if timestamps is None else (timestamps, weights)
    elif duplicates in ("last", "first") and timestamps is not None:
        tiebreak = (timestamps,)
    else:
        tiebreak = ()
    return np.lexsort((*tiebreak, cols, rows))


def build_csr(
    rows: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    timestamps: np.ndarray | None,
    shape: tuple[int, int],
    *,
    duplicates: str = "raise",
    describe: Callable[[int], str] | None = None,
    argname: str = "duplicates",
    hint: str | None = None,
):
    """Canonical CSR arrays from triplets.

    Parameters
    ----------
    rows, cols : ndarray of shape (nnz,), int64
        Internal indices, already checked to lie in ``[0, n_users)`` / ``[0, n_items)``.
    weights : ndarray of shape (nnz,), float
        Finite, non-negative (checked by the caller).
    timestamps : ndarray of shape (nnz,), float64, or None
    shape : (n_users, n_items)
    duplicates : {"raise", "sum", "last", "first", "max"}
        How repeated (row, col) pairs are merged: ``sum`` adds the weights and keeps the latest
        timestamp; ``last`` / ``first`` keep the latest / earliest entry by timestamp, ties (and
        the no-timestamp case) by input order; ``max`` keeps the largest weight (ties: latest
        timestamp, then input order).
    describe : callable(int) -> str, optional
        Describes the input entry at a position, for the ``raise`` error message.
    argname, hint : str
        The argument the ``raise`` error names, and what it suggests.

    Returns
    -------
    indptr : ndarray of shape (n_users + 1,), int32 (int64 when nnz >= 2**31)
    indices : ndarray of shape (nnz_out,), int32
    data : ndarray of shape (nnz_out,), float32
    timestamps : ndarray of shape (nnz_out,), float64, or None
    """
    n_users, n_items = shape
    nnz = rows.size
    order = _sort_order(rows, cols, weights, timestamps, n_items, duplicates) if nnz else None
    if order is None:
        r, c, w, t = rows, cols, weights, timestamps
    else:
        r, c, w = rows[order], cols[order], weights[order]
        t = None if timestamps is None else timestamps[order]
        same = (r[1:] == r[:-1]) & (c[1:] == c[:-1])
        if same.any():
            n_dup = int(same.sum())
            if duplicates == "raise":
                first_pos = int(order[1:][same].min())
                if describe is not None:
                    what = describe(first_pos)
                else:
                    what = f"(row {rows[first_pos]}, col {cols[first_pos]})"
                if hint is None:
                    hint = "pass duplicates='sum', 'last', 'first' or 'max' to merge them"
                raise ValueError(
                    f"{argname}: found {n_dup} duplicated (user, item) entr{'y' if n_dup == 1 else 'ies'}; "
                    f"the first is {what} at position {first_pos}; {hint}"
                )
            starts = np.flatnonzero(np.concatenate(([True], ~same)))
            if duplicates == "sum":
                w = np.add.reduceat(w.astype(np.float64), starts)
                t = None if t is None else np.maximum.reduceat(t, starts)
                pick = starts
            elif duplicates == "first":
                pick = starts
            else:  # "last" and "max": the sort put the winner last in its group
                pick = np.append(starts[1:], nnz) - 1
            r, c = r[pick], c[pick]
            if duplicates != "sum":
                w = w[pick]
                t = None if t is None else t[pick]
    counts = np.bincount(r, minlength=n_users) if r.size else np.zeros(n_users, dtype=np.int64)
    idx_dtype = np.int32 if r.size < 2**31 - 1 else np.int64
    indptr = np.zeros(n_users + 1, dtype=idx_dtype)
    np.cumsum(counts, out=indptr[1:])
    with np.errstate(over="ignore"):  # overflow -> inf, reported by the caller's finiteness check
        data = np.asarray(w, dtype=np.float32)
    if data is weights or np.shares_memory(data, weights):
        data = data.copy()
    indices = c.astype(np.int32, copy=True) if c is cols else c.astype(np.int32, copy=False)
    if t is not None:
        t = (
            np.array(t, dtype=np.float64, copy=True)
            if t is timestamps
            else np.asarray(t, dtype=np.float64)
        )
    return indptr, indices, data, t
