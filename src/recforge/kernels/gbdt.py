"""GBDT kernels: argument checks in Python, the work in C++ (``recforge._core.gbdt_*``).

Every function takes contiguous arrays of the stated dtypes (a cast is made once, here, when the
caller passes another dtype) and ``n_threads``; every result is independent of ``n_threads``.
Histograms have shape ``(n_nodes, n_features, 256, 2)``, float64: ``[..., b, 0]`` is the gradient
sum of bin ``b``, ``[..., b, 1]`` the hessian sum; bin 255 (:data:`MISSING_BIN`) holds missing values.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import resolve_n_threads as _resolve
from .._validation import check_in_place


def resolve_n_threads(n_threads):
    """A positive int is used as is (no cgroup lookup on the hot path); anything else is resolved."""
    if type(n_threads) is int and n_threads > 0:
        return n_threads
    return _resolve(n_threads)


#: bin index of missing values (NaN) in a binned matrix
MISSING_BIN = _core.constants.GBDT_MISSING_BIN
#: bins per feature in a histogram: :data:`MAX_BIN` value bins at most + the missing bin
N_BINS = _core.constants.GBDT_N_BINS
#: most value bins of a feature (numeric: bins between edges; categorical: categories)
MAX_BIN = _core.constants.GBDT_MAX_BIN
#: objective name -> code of the gradient kernels
OBJECTIVES = dict(_core.constants.GBDT_OBJECTIVES)
#: objectives of :func:`gradients` (one row at a time) and of :func:`rank_gradients` (per query group)
POINTWISE_OBJECTIVES = ("binary:logistic", "reg:squarederror")
RANK_OBJECTIVES = ("rank:pairwise", "rank:ndcg")


def _arr(a, dtype, name, ndim):
    # (a misaligned view, e.g. into bytes a Dask worker received, is copied by the binding itself:
    # csrc/bindings/arrays.hpp, read-only, so an output array is refused rather than written to a copy)
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _opt(a, dtype, name, ndim):
    return None if a is None else _arr(a, dtype, name, ndim)


def bin_features(X, edges, offsets, is_categorical, *, n_threads=1):
    """Bin ``X`` (n_rows, n_features) float32 by per-feature edges.

    A numeric value ``x`` of feature ``f`` goes to bin ``#{e in edges[offsets[f]:offsets[f+1]] : e <= x}``;
    a categorical value to the position of its code among the feature's edges (the sorted codes),
    an unknown code and NaN to :data:`MISSING_BIN`. Returns uint8 (n_rows, n_features), C order.
    """
    X = _arr(X, np.float32, "X", 2)
    return _core.gbdt_bin_features(
        X,
        _arr(edges, np.float32, "edges", 1),
        _arr(offsets, np.int64, "offsets", 1),
        _arr(is_categorical, np.uint8, "is_categorical", 1),
        resolve_n_threads(n_threads),
    )


def build_histograms(X_binned, gh, rows, starts, ends, *, feature_mask=None, n_threads=1):
    """Gradient/hessian sums per bin for each node ``k`` = rows ``rows[starts[k]:ends[k]]``
    (``rows=None``: rows ``starts[k]:ends[k]`` of ``X_binned`` and ``gh`` themselves).

    Parameters
    ----------
    X_binned : ndarray (n_rows, n_features) uint8
    gh : ndarray (n_rows, 2) float32
        Gradient and hessian of every row.
    rows : ndarray (m,) int32
        Row-index buffer; node ranges index into it.
    starts, ends : ndarray (n_nodes,) int64
    feature_mask : ndarray (n_features,) bool, optional
        Features left out stay zero.

    Returns
    -------
    ndarray (n_nodes, n_features, 256, 2) float64
    """
    X_binned = _arr(X_binned, np.uint8, "X_binned", 2)
    if rows is not None:
        rows = _arr(rows, np.int32, "rows", 1)
        _check_rows(rows, X_binned.shape[0])
    return _core.gbdt_build_histograms(
        X_binned,
        _arr(gh, np.float32, "gh", 2),
        rows,
        _arr(starts, np.int64, "starts", 1),
        _arr(ends, np.int64, "ends", 1),
        _opt(feature_mask, np.uint8, "feature_mask", 1),
        resolve_n_threads(n_threads),
    )


def find_splits(
    hist,
    sum_g,
    sum_h,
    n_bins,
    is_categorical,
    *,
    feature_mask=None,
    reg_lambda=1.0,
    gamma=0.0,
    min_child_weight=1.0,
    n_threads=1,
    max_cat_to_onehot=N_BINS,
    max_cat_threshold=32,
    cat_smooth=10.0,
    cat_l2=0.0,
    min_group_weight=0.0,
    min_category_weight=0.0,
):
    """Best split of each node's histogram (XGBoost gain; see ``csrc/include/recforge/split.hpp``).

    Returns the named tuple ``GBDTSplits(feature int32, threshold int32, default_left uint8,
    loss_chg float64, left_g float64, left_h float64, cat_set uint64 (n_nodes, 4))``, each of
    shape (n_nodes,) but ``cat_set``; ``feature == -1`` where no split is valid. A numeric split
    sends bins ``<= threshold_bin`` left (``-1``: none), a categorical one the bin
    ``== threshold_bin``, or — a categorical feature with more than ``max_cat_to_onehot`` bins,
    split by a sorted partition (``threshold_bin == -1``) — the bins of ``cat_set`` (bit ``b % 64``
    of word ``b // 64``).
    """
    hist = np.ascontiguousarray(hist, dtype=np.float64)
    if hist.ndim != 4 or hist.shape[2:] != (N_BINS, 2):
        raise ValueError(
            f"hist must have shape (n_nodes, n_features, {N_BINS}, 2), got {hist.shape}"
        )
    return _core.gbdt_find_splits(
        hist,
        _arr(sum_g, np.float64, "sum_g", 1),
        _arr(sum_h, np.float64, "sum_h", 1),
        _arr(n_bins, np.int32, "n_bins", 1),
        _arr(is_categorical, np.uint8, "is_categorical", 1),
        _opt(feature_mask, np.uint8, "feature_mask", 1),
        float(reg_lambda),
        float(gamma),
        float(min_child_weight),
        resolve_n_threads(n_threads),
        int(max_cat_to_onehot),
        int(max_cat_threshold),
        float(cat_smooth),
        float(cat_l2),
        float(min_group_weight),
        float(min_category_weight),
    )


def _check_rows(rows, n_rows):
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must hold row indices in [0, {n_rows})")


def partition_ordered(
    Xn,
    ghn,
    rows,
    starts,
    ends,
    feature,
    threshold,
    default_left,
    is_categorical,
    *,
    cat_sets=None,
    n_threads=1,
):
    """Split node-ordered data in place: positions ``[starts[k], ends[k])`` of ``Xn`` (uint8 (m, F),
    binned rows), ``ghn`` (float32 (m, 2)) and ``rows`` (int32 (m,), original ids) are node ``k``;
    afterwards its left rows come first, then its right rows, each group in its old order.

    Returns the number of left rows per node, int64 (n_nodes,). The three arrays are modified.
    ``cat_sets`` (uint64 (n_nodes, 4), optional): the partition splits' left bins (``find_splits``).
    """
    for name, a, dt, nd in (
        ("Xn", Xn, np.uint8, 2),
        ("ghn", ghn, np.float32, 2),
        ("rows", rows, np.int32, 1),
    ):
        check_in_place(a, name, dt, nd)
    scratch = (np.empty_like(Xn), np.empty_like(ghn), np.empty_like(rows))
    return _core.gbdt_partition_ordered(
        Xn,
        ghn,
        rows,
        *scratch,
        _arr(starts, np.int64, "starts", 1),
        _arr(ends, np.int64, "ends", 1),
        _arr(feature, np.int32, "feature", 1),
        _arr(threshold, np.int32, "threshold", 1),
        _arr(default_left, np.uint8, "default_left", 1),
        _arr(is_categorical, np.uint8, "is_categorical", 1),
        resolve_n_threads(n_threads),
        False,
        _opt(cat_sets, np.uint64, "cat_sets", 2),
    )


def add_leaf_values(rows, starts, ends, values, raw, *, n_threads=1):
    """``raw[rows[starts[k]:ends[k]]] += values[k]`` for every leaf ``k`` (``raw`` float64, in place)."""
    check_in_place(raw, "raw", np.float64)
    rows = _arr(rows, np.int32, "rows", 1)
    _check_rows(rows, raw.shape[0])
    _core.gbdt_add_leaf_values(
        rows,
        _arr(starts, np.int64, "starts", 1),
        _arr(ends, np.int64, "ends", 1),
        _arr(values, np.float64, "values", 1),
        raw,
        resolve_n_threads(n_threads),
    )


def gradients(objective, raw, y, weight=None, *, out=None, n_threads=1):
    """Gradient and hessian of ``objective`` at the margins ``raw`` → float32 (n, 2).

    ``binary:logistic``: ``g = p - y``, ``h = max(p (1 - p), 1e-16)``, ``p = sigmoid(raw)``;
    ``reg:squarederror``: ``g = raw - y``, ``h = 1``; both multiplied by ``weight`` when given.
    """
    if objective not in POINTWISE_OBJECTIVES:
        raise ValueError(
            f"objective must be one of {list(POINTWISE_OBJECTIVES)}, got {objective!r}"
        )
    raw = _arr(raw, np.float64, "raw", 1)
    if out is None:
        out = np.empty((raw.shape[0], 2), np.float32)
    _core.gbdt_gradients(
        OBJECTIVES[objective],
        raw,
        _arr(y, np.float32, "y", 1),
        _opt(weight, np.float32, "weight", 1),
        out,
        resolve_n_threads(n_threads),
    )
    return out


def rank_gradients(
    objective,
    raw,
    y,
    group_ptr,
    group_weight=None,
    *,
    top_k=32,
    normalize=True,
    score_normalize=True,
    exp_gain=True,
    out=None,
    n_threads=1,
):
    """LambdaMART gradient and hessian per row → float32 (n, 2) (``csrc/include/recforge/rank_objective.hpp``).

    Parameters
    ----------
    objective : {"rank:pairwise", "rank:ndcg"}
    raw : ndarray (n,) float64
        Current margins (scores); compared in float32, as xgboost does.
    y : ndarray (n,) float32
        Relevance labels.
    group_ptr : ndarray (n_groups + 1,) int64
        Query group ``g`` is rows ``group_ptr[g]:group_ptr[g + 1]`` (from 0 to n, non-decreasing).
    group_weight : ndarray (n_groups,) float32, optional
        Weight per group (scaled to mean 1).
    top_k : int >= 1
        Pairs start at the first ``top_k`` ranks of a group (xgboost's ``lambdarank_num_pair_per_sample``
        with ``lambdarank_pair_method="topk"``); ``top_k >= group size``: every pair.
    normalize, score_normalize : bool
        xgboost's ``lambdarank_normalization`` and ``lambdarank_score_normalization``.
    exp_gain : bool
        NDCG gain ``2^y - 1`` (else ``y``); xgboost's ``ndcg_exp_gain``.
    """
    if objective not in RANK_OBJECTIVES:
        raise ValueError(f"objective must be one of {list(RANK_OBJECTIVES)}, got {objective!r}")
    raw = _arr(raw, np.float64, "raw", 1)
    group_ptr = _arr(group_ptr, np.int64, "group_ptr", 1)
    if out is None:
        out = np.empty((raw.shape[0], 2), np.float32)
    _core.gbdt_rank_gradients(
        OBJECTIVES[objective],
        raw,
        _arr(y, np.float32, "y", 1),
        group_ptr,
        _opt(group_weight, np.float32, "group_weight", 1),
        out,
        int(top_k),
        bool(normalize),
        bool(score_normalize),
        bool(exp_gain),
        resolve_n_threads(n_threads),
    )
    return out


# the flat node arrays of a forest, in the order the C++ kernels take them
_FOREST_ARRAYS = (
    "feature",
    "threshold",
    "left",
    "right",
    "default_left",
    "categorical",
    "value",
    "roots",
)


def _forest_arrays(trees):
    return tuple(trees[name] for name in _FOREST_ARRAYS)


def _code_sets(trees):
    """``(cat_count, cat_codes)`` of the partition splits (None, None when the trees have none)."""
    count = trees.get("cat_count")
    if count is None or not np.any(count):
        return None, None
    return count, trees["cat_codes"]


def predict_raw(X, trees, *, t0=0, t1=None, out=None, n_threads=1):
    """Sum of the leaf values of trees ``[t0, t1)`` per row of float32 ``X`` → float64 (n_rows,).

    ``trees`` is a dict of flat node arrays (``feature, threshold, left, right, default_left,
    categorical, value, roots``, and for partition splits ``cat_count, cat_codes``; see
    :class:`recforge.rank.gbdt._predict.Forest`). ``out`` is added to.
    """
    X = _arr(X, np.float32, "X", 2)
    t1 = len(trees["roots"]) if t1 is None else t1
    if out is None:
        out = np.zeros(X.shape[0], np.float64)
    _core.gbdt_predict_raw(
        X,
        *_forest_arrays(trees),
        int(t0),
        int(t1),
        out,
        resolve_n_threads(n_threads),
        *_code_sets(trees),
    )
    return out


def apply(X, trees, *, t0=0, t1=None, n_threads=1):
    """Index (within its tree) of the leaf each row reaches in trees ``[t0, t1)`` → int32 (n_rows, t1 - t0)."""
    X = _arr(X, np.float32, "X", 2)
    t1 = len(trees["roots"]) if t1 is None else t1
    return _core.gbdt_apply(
        X,
        *_forest_arrays(trees),
        int(t0),
        int(t1),
        resolve_n_threads(n_threads),
        *_code_sets(trees),
    )
