"""Numba kernels of the FeatureEncoder: bucketing a numeric column, assembling the CSR output.

Pure functions on contiguous arrays; the encoder validates and prepares them.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from ._search import upper_bound


@jit
def _bucket(v, edges, lo, hi):
    """Number of ``edges[lo:hi]`` that are <= v: a branch-free count for short edge lists (the usual
    case, n_bins <= 64), a binary search for long ones."""
    if hi - lo <= 64:
        c = 0
        for e in range(lo, hi):
            c += edges[e] <= v
        return c
    return upper_bound(edges, lo, hi, v) - lo


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
        if math.isnan(v):
            out[i] = 0
            continue
        out[i] = 1 + _bucket(v, edges, 0, m)


@jit
def numeric_blocks(
    x, edges, mean, scale, with_scaled, off_scaled, cols_scaled, vals_scaled, off_bins, cols_bins
):
    """A numeric column's two output blocks in one pass over its raw values (float or int, any stride).

    Scaled block (when ``with_scaled``): ``cols_scaled[i] = off_scaled``, ``vals_scaled[i] = (x - mean) / scale``
    (0 where x is NaN). Bucket block: ``cols_bins[i] = off_bins + code`` with the code of :func:`bucketize`.
    Returns the number of infinite values met (the caller raises).
    """
    m = edges.shape[0]
    n_inf = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        if math.isnan(v):
            code = 0
            z = 0.0
        else:
            if v == np.inf or v == -np.inf:
                n_inf += 1
            code = 1 + _bucket(v, edges, 0, m)
            z = (v - mean) / scale
        cols_bins[i] = off_bins + code
        if with_scaled:
            cols_scaled[i] = off_scaled
            vals_scaled[i] = z
    return n_inf


@jit
def numeric_blocks_2d(
    X,
    col_idx,
    edges,
    edge_ptr,
    mean,
    scale,
    scaled_row,
    val_row,
    off_scaled,
    bins_row,
    off_bins,
    cols,
    vals,
    n_inf,
):
    """:func:`numeric_blocks` for ``k`` columns of a row-major matrix at once (one pass over its rows).

    X : ndarray of shape (n, p), any numeric dtype, C-contiguous         # IN
    col_idx : (k,) int64 — which columns of X                             # IN
    edges : concatenated bucket edges; column t's are edges[edge_ptr[t]:edge_ptr[t + 1]]   # IN
    mean, scale : (k,) float64                                            # IN
    scaled_row : (k,) int64 — row of ``cols`` of the scaled block, -1 = none; val_row: its row of ``vals``
    bins_row : (k,) int64 — row of ``cols`` of the bucket block           # IN
    off_scaled, off_bins : (k,) int64 — the blocks' first output column   # IN
    cols : (n_blocks, n) int32/int64, vals : (n_valued, n) float32        # OUT (rows of these columns)
    n_inf : (k,) int64                                                    # OUT (count of infinite values)
    """
    k = col_idx.shape[0]
    for t in range(k):
        n_inf[t] = 0
    for i in range(X.shape[0]):
        for t in range(k):
            v = np.float64(X[i, col_idx[t]])
            if math.isnan(v):
                code = 0
                z = 0.0
            else:
                if v == np.inf or v == -np.inf:
                    n_inf[t] += 1
                code = 1 + _bucket(v, edges, edge_ptr[t], edge_ptr[t + 1])
                z = (v - mean[t]) / scale[t]
            cols[bins_row[t], i] = off_bins[t] + code
            if scaled_row[t] >= 0:
                cols[scaled_row[t], i] = off_scaled[t]
                vals[val_row[t], i] = z


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


def _warmup():
    """Compile the kernels for the signatures FeatureEncoder calls: a numeric column of int64,
    float64, int32 or float32 values, writeable or read-only (pandas' copy-on-write columns);
    a C-contiguous 2-D array of one of those dtypes; int32 output indices (int64 only beyond
    2**31 entries)."""
    from numba import types

    from ..kernels._jit import array_type

    i4, i8, f4, f8 = (array_type(d) for d in (np.int32, np.int64, np.float32, np.float64))
    int_, float_ = types.int64, types.float64
    bucketize.compile((f8, f8, i8))
    for dtype in (np.int64, np.float64, np.int32, np.float32):
        for read_only in (False, True):
            x = array_type(dtype, read_only=read_only)
            numeric_blocks.compile((x, f8, float_, float_, types.boolean, int_, i4, f4, int_, i4))
        numeric_blocks_2d.compile(
            (
                array_type(dtype, 2),
                i8,
                f8,
                i8,
                f8,
                f8,
                i8,
                i8,
                i8,
                i8,
                i8,
                array_type(np.int32, 2),
                array_type(np.float32, 2),
                i8,
            )
        )
    assemble_csr.compile((array_type(np.int32, 2), array_type(np.float32, 2), i8, i4, i4, f4))
