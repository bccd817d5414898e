"""Kernels of the FeatureEncoder: bucketing a numeric column, assembling the CSR output.

Thin wrappers over the C++ kernels of ``recforge._core`` (``csrc/include/recforge/encoder.hpp``),
which run without the GIL and without Numba. Pure functions on arrays; the encoder validates and
prepares them. Raw values come in any native integer or float dtype (float32/64, int8..int64,
uint8..uint64) and any strides; other numeric dtypes (bool, float16, longdouble, non-native byte
order) are converted to float64 first.
"""

from __future__ import annotations

import numpy as np

from .. import _core

#: (kind, itemsize) of the raw-value dtypes the C++ kernels read as they are
_NATIVE_VALUE_TYPES = {("f", 4), ("f", 8)} | {(k, s) for k in "iu" for s in (1, 2, 4, 8)}


def _raw_values(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` itself when the kernels read its dtype, else a float64 copy (same values)."""
    if x.dtype.isnative and (x.dtype.kind, x.dtype.itemsize) in _NATIVE_VALUE_TYPES:
        return x
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x.astype(np.float64)


def bucketize(x, edges, out):
    """``out[i] = 0`` if ``x[i]`` is NaN, else ``1 + #{edges <= x[i]}``.

    x : ndarray of shape (n,), numeric, any stride  # IN
    edges : ndarray of shape (m,), float64, sorted   # IN
    out : ndarray of shape (n,), int64             # OUT

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.encoder import bucketize
    >>> out = np.empty(4, dtype=np.int64)
    >>> bucketize(np.array([np.nan, -1.0, 0.5, 2.0]), np.array([0.0, 1.0]), out)
    >>> out.tolist()
    [0, 1, 2, 3]
    """
    _core.encoder_bucketize(_raw_values(x, "x"), edges, out)


def numeric_blocks(
    x, edges, mean, scale, with_scaled, off_scaled, cols_scaled, vals_scaled, off_bins, cols_bins
):
    """A numeric column's two output blocks in one pass over its raw values (float or int, any stride).

    Scaled block (when ``with_scaled``): ``cols_scaled[i] = off_scaled``, ``vals_scaled[i] = (x - mean) / scale``
    (float64 arithmetic stored as float32; 0 where x is NaN). Bucket block:
    ``cols_bins[i] = off_bins + code`` with the code of :func:`bucketize`.
    cols_scaled, cols_bins : (n,) int32/int64 (the same dtype); vals_scaled : (n,) float32.
    Returns the number of infinite values met (the caller raises).
    """
    return _core.encoder_numeric_blocks(
        _raw_values(x, "x"),
        edges,
        float(mean),
        float(scale),
        bool(with_scaled),
        int(off_scaled),
        cols_scaled,
        vals_scaled,
        int(off_bins),
        cols_bins,
    )


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
    """:func:`numeric_blocks` for ``k`` columns of a 2-D array at once (one pass over its rows).

    X : ndarray of shape (n, p), numeric, any strides                   # IN
    col_idx : (k,) int64 — which columns of X                             # IN
    edges : concatenated bucket edges; column t's are edges[edge_ptr[t]:edge_ptr[t + 1]]   # IN
    mean, scale : (k,) float64                                            # IN
    scaled_row : (k,) int64 — row of ``cols`` of the scaled block, -1 = none; val_row: its row of ``vals``
    bins_row : (k,) int64 — row of ``cols`` of the bucket block           # IN
    off_scaled, off_bins : (k,) int64 — the blocks' first output column   # IN
    cols : (n_blocks, n) int32/int64, vals : (n_valued, n) float32        # OUT (rows of these columns)
    n_inf : (k,) int64                                                    # OUT (count of infinite values)
    """
    _core.encoder_numeric_blocks_2d(
        _raw_values(X, "X"),
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
    )


def assemble_csr(cols, vals, val_row, indptr, indices, data):
    """Row-major CSR from per-block columns, dropping zero values.

    cols : ndarray of shape (n_blocks, n), int32/int64 — output column of block b in row i   # IN
    vals : ndarray of shape (n_valued, n), float32 — values of the blocks that have them      # IN
    val_row : ndarray of shape (n_blocks,), int64 — row of ``vals`` for block b, -1 = value 1  # IN
    indptr : ndarray of shape (n + 1,), the dtype of cols                                     # OUT
    indices, data : ndarrays of length >= nnz, the dtype of cols and float32                  # OUT
    Returns nnz. Blocks are in increasing column order, so each row's indices are sorted.
    """
    return _core.encoder_assemble_csr(cols, vals, val_row, indptr, indices, data)


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
