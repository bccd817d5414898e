"""Best-first (leaf-wise) GBDT tree growth in one kernel call: argument checks in Python, the work
in C++ (``recforge._core.gbdt_grow_leafwise``, ``csrc/include/recforge/gbdt_leafwise.hpp``).

The estimators call the kernel directly from ``recforge.rank.gbdt._grower.TreeGrower`` (their
arrays are built with the right dtypes); this is the checked public entry.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import check_float, check_int
from .gbdt import MAX_BIN, _arr, _opt, resolve_n_threads

#: rows from which the root split is partitioned into the other buffers (as ``TreeGrower.swap_rows``)
DEFAULT_SWAP_ROWS = 500_000
#: below this many bytes of data (m * (n_features + 12)), splits move row positions and the rows
#: move once, at the end (as ``TreeGrower.leafwise_index_bytes``)
DEFAULT_INDEX_BYTES = 4 << 20


def _in_place(a, dtype, name, ndim):
    if not (
        isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
    ):
        raise TypeError(
            f"{name} must be a C-contiguous {np.dtype(dtype).name} {ndim}-D array (modified in place)"
        )
    return a


def grow_leafwise(
    Xn,
    ghn,
    rows,
    n_bins,
    is_categorical,
    *,
    max_leaves,
    max_depth=None,
    min_child_weight=1.0,
    reg_lambda=1.0,
    gamma=0.0,
    learning_rate=0.3,
    feature_mask=None,
    other=None,
    swap_rows=DEFAULT_SWAP_ROWS,
    index_bytes=DEFAULT_INDEX_BYTES,
    n_threads=1,
):
    """Grow one best-first tree: split the leaf with the largest loss reduction next (ties: the
    leaf found first) until ``max_leaves`` leaves or no leaf has a valid split.

    The data is node-ordered and moved as the tree grows, so that every node's rows are a range of
    positions. Splits, gains and leaf values are those of :func:`recforge.kernels.gbdt.find_splits`
    (XGBoost's second-order gain; see ``csrc/include/recforge/split.hpp``); the tree is the same
    for any ``n_threads``. Below 32,000 rows it equals, bit for bit, the one the node-by-node Python
    driver grows; from 32,000 rows the rows are kept in fixed blocks of about 16,000 (their number
    set by the row and feature counts only), whose partial histograms are summed in block order,
    and the tree equals the driver's whenever those float64 sums of the float32 gradients are exact.

    Parameters
    ----------
    Xn : ndarray (m, n_features) uint8, C order
        Binned rows (bin 255: missing). Modified in place.
    ghn : ndarray (m, 2) float32
        Gradient and hessian of each row, finite. Modified in place.
    rows : ndarray (m,) int32
        Original row id of each position. Modified in place.
    n_bins : ndarray (n_features,) int32
        Value bins of each feature (at most 255).
    is_categorical : ndarray (n_features,) bool
        Categorical features split one bin vs the rest.
    max_leaves : int >= 1
    max_depth : int >= 0 or None
        ``None``: no depth limit.
    min_child_weight, reg_lambda, gamma : float >= 0
    learning_rate : float > 0
        Applied to the leaf values ``-G / (H + reg_lambda)``.
    feature_mask : ndarray (n_features,) bool, optional
        Features left out are never split on.
    other : tuple of three arrays shaped like (Xn, ghn, rows), optional
        Buffers the data may be moved into. When not given, the node-ordered data ends in ``Xn``,
        ``ghn``, ``rows`` (``swapped`` is then False).
    swap_rows : int
        From this many rows on, the root split moves the data into ``other`` (one write per row).
    index_bytes : int
        Below ``m * (n_features + 12)`` bytes of data, a split moves the positions of its rows and
        the data is gathered into ``other`` once, at the end; from it on, every split moves the
        rows (the tree is the same either way).
    n_threads : int

    Returns
    -------
    GBDTLeafwiseTree
        ``nodes``: dict of node arrays (root = 0; ``feature`` int32, -1 for leaves;
        ``threshold_bin`` int32; ``default_left`` uint8; ``left``/``right`` int32, -1 for leaves;
        ``value``, ``gain``, ``cover`` float64; ``depth`` int32); ``leaf_node`` int32 and
        ``leaf_start``/``leaf_end`` int64: each leaf's positions in the node-ordered data, which is
        in ``other`` when ``swapped`` (with row blocks, one range per leaf and block: a leaf's
        rows are the union of its ranges).

    Examples
    --------
    >>> import numpy as np
    >>> Xn = np.array([[0], [1], [2], [3]], np.uint8)
    >>> ghn = np.array([[-1, 1], [-1, 1], [1, 1], [1, 1]], np.float32)
    >>> rows = np.arange(4, dtype=np.int32)
    >>> t = grow_leafwise(Xn, ghn, rows, np.array([4], np.int32), np.zeros(1, bool),
    ...                   max_leaves=2, reg_lambda=0.0, min_child_weight=0.0, learning_rate=1.0)
    >>> t.nodes["feature"], t.nodes["threshold_bin"], t.nodes["value"]
    (array([ 0, -1, -1], dtype=int32), array([1, 0, 0], dtype=int32), array([ 0.,  1., -1.]))
    """
    Xn = _in_place(Xn, np.uint8, "Xn", 2)
    ghn = _in_place(ghn, np.float32, "ghn", 2)
    rows = _in_place(rows, np.int32, "rows", 1)
    m, n_features = Xn.shape
    if m == 0 or n_features == 0:
        raise ValueError(f"Xn must have rows and features, got shape {Xn.shape}")
    if ghn.shape != (m, 2) or rows.shape != (m,):
        raise ValueError(
            f"ghn must have shape ({m}, 2) and rows ({m},), got {ghn.shape} and {rows.shape}"
        )
    if not np.isfinite(ghn).all():
        raise ValueError("ghn must be finite")
    n_bins = _arr(n_bins, np.int32, "n_bins", 1)
    is_categorical = _arr(is_categorical, np.uint8, "is_categorical", 1)
    feature_mask = _opt(feature_mask, np.uint8, "feature_mask", 1)
    for name, a in (
        ("n_bins", n_bins),
        ("is_categorical", is_categorical),
        ("feature_mask", feature_mask),
    ):
        if a is not None and a.shape != (n_features,):
            raise ValueError(f"{name} must have length n_features={n_features}, got {a.shape}")
    if n_bins.size and (n_bins.min() < 0 or n_bins.max() > MAX_BIN):
        raise ValueError(f"n_bins must be in [0, {MAX_BIN}]")
    own_other = other is None
    if own_other:
        other = (np.empty_like(Xn), np.empty_like(ghn), np.empty_like(rows))
    if not (isinstance(other, tuple) and len(other) == 3):
        raise TypeError("other must be a tuple of three arrays (X, gh, rows buffers)")
    other = tuple(
        _in_place(a, like.dtype, f"other[{i}]", like.ndim)
        for i, (a, like) in enumerate(zip(other, (Xn, ghn, rows)))
    )
    if any(a.shape != like.shape for a, like in zip(other, (Xn, ghn, rows))):
        raise ValueError("other's arrays must have the shapes of Xn, ghn and rows")
    max_depth = -1 if max_depth is None else check_int(max_depth, "max_depth", min_value=0)
    grown = _core.gbdt_grow_leafwise(
        Xn,
        ghn,
        rows,
        *other,
        n_bins,
        is_categorical,
        feature_mask,
        check_int(max_leaves, "max_leaves", min_value=1, max_value=2**31 - 1),
        min(max_depth, 2**31 - 1),
        check_float(min_child_weight, "min_child_weight", min_value=0.0),
        check_float(reg_lambda, "reg_lambda", min_value=0.0),
        check_float(gamma, "gamma", min_value=0.0),
        check_float(learning_rate, "learning_rate", min_value=0.0, min_inclusive=False),
        check_int(swap_rows, "swap_rows", min_value=0),
        check_int(index_bytes, "index_bytes", min_value=0),
        resolve_n_threads(n_threads),
    )
    if own_other and grown.swapped:
        for mine, moved in zip((Xn, ghn, rows), other):
            mine[...] = moved
        grown = grown._replace(swapped=False)
    return grown
