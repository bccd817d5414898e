"""Numba kernels of the FeatureEncoder: bucketing a numeric column and assembling the CSR output.

Pure functions on contiguous arrays; the encoder validates and prepares them.
"""
from __future__ import annotations

import numpy as np

from ..kernels._jit import jit


@jit
def bucketize(x, edges, out):
    """``out[i] = 0`` if ``x[i]`` is NaN, else ``1 + #{edges <= x[i]}`` (a binary search per value).

    x : ndarray of shape (n,), float64            # IN
    edges : ndarray of shape (m,), float64, sorted # IN
    out : ndarray of shape (n,), int64            # OUT
    """
    m = edges.shape[0]
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            out[i] = 0
            continue
        lo = 0
        hi = m
        while lo < hi:  # first edge > v
            mid = (lo + hi) >> 1
            if edges[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        out[i] = 1 + lo


@jit
def assemble_csr(cols, vals, val_row, indptr, indices, data):
    """Row-major CSR from per-block columns, dropping zero values.

    cols : ndarray of shape (n_blocks, n), int32/int64 — output column of block b in row i   # IN
    vals : ndarray of shape (n_valued, n), float32 — values of the blocks that have them      # IN
    val_row : ndarray of shape (n_blocks,), int64 — row of ``vals`` for block b, -1 = value 1  # IN
    indptr : ndarray of shape (n + 1,), int32/int64                                           # OUT
    indices, data : ndarrays of length >= nnz                                                 # OUT
    Returns nnz. Blocks are in increasing column order, so each row's indices are sorted.
    """
    n_blocks, n = cols.shape
    k = 0
    indptr[0] = 0
    for i in range(n):
        for b in range(n_blocks):
            r = val_row[b]
            v = np.float32(1.0) if r < 0 else vals[r, i]
            if v != 0.0:
                indices[k] = cols[b, i]
                data[k] = v
                k += 1
        indptr[i + 1] = k
    return k


def csr_arrays(cols: np.ndarray, vals: np.ndarray, val_row: np.ndarray, index_dtype):
    """Call :func:`assemble_csr` and trim the outputs; returns ``(indptr, indices, data)``."""
    n_blocks, n = cols.shape
    indptr = np.empty(n + 1, dtype=index_dtype)
    indices = np.empty(n_blocks * n, dtype=index_dtype)
    data = np.empty(n_blocks * n, dtype=np.float32)
    nnz = assemble_csr(cols, vals, val_row, indptr, indices, data)
    if nnz < indices.size:
        indices, data = indices[:nnz].copy(), data[:nnz].copy()
    return indptr, indices, data
