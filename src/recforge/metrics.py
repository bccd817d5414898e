"""Offline metrics: top-k ranking metrics for recall, AUC and log-loss for rankers.

Ranking metrics work on **internal indices**:

* ``recommended`` — integer array of shape (n_users, n_cols); row ``u`` is user ``u``'s list,
  best first; ``-1`` pads rows with fewer recommendations (a padded slot is never a hit, and it
  still counts in the ``k`` of P@k). Ids must be unique within a row.
* ``relevant`` — scipy sparse matrix of shape (n_users, n_items), rows aligned with
  ``recommended``; the **stored entries** of row ``u`` are user ``u``'s relevant items, whatever
  their value (a dense array is accepted too: its non-zeros are the relevant items).

For a user with ``R`` relevant items and ``h`` hits among the first ``k`` recommendations:

* precision@k = h / k
* recall@k = h / R
* hit_rate@k = 1 if h > 0 else 0
* NDCG@k = DCG / IDCG with binary gain, DCG = sum over hit positions j (0-based) of
  1 / log2(j + 2) and IDCG = sum_{j < min(k, R)} 1 / log2(j + 2)

Each metric is averaged over the users with at least one relevant item; users without any are
left out of the means and of ``ranking_metrics(...)["n_users"]``. All values lie in [0, 1] by
construction. The row checks and the per-user hits come from parallel Numba kernels
(:mod:`recforge.kernels.ranking`); everything else is vectorised NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ._validation import check_1d, check_float, check_int, check_sparse
from .kernels.ranking import dcg_of_hits, hit_matrix, hit_stats, recommended_rows, unsorted_rows

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "coverage_at_k",
    "hit_rate_at_k",
    "log_loss",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "roc_auc_score",
]


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _check_recommended(
    recommended,
    name: str = "recommended",
    *,
    n_items: int | None = None,
    items_name: str = "n_items",
) -> np.ndarray:
    """Return ``recommended`` as a C-contiguous int64 2-D array (copy only if needed), or raise."""
    return _checked_recommended(recommended, name, n_items=n_items, items_name=items_name)[0]


def _checked_recommended(
    recommended,
    name: str = "recommended",
    *,
    n_items: int | None = None,
    items_name: str = "n_items",
) -> tuple[np.ndarray, int]:
    """:func:`_check_recommended` and the largest id (``-1`` if none): one parallel pass over the
    rows (:func:`~recforge.kernels.ranking.recommended_rows`); the error names the first bad entry."""
    if sp.issparse(recommended):
        raise TypeError(f"{name} must be a dense 2-D integer array, got a sparse matrix")
    arr = np.asarray(recommended)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must have an integer dtype (internal item indices, -1 = padding), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_users, k), got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds ids too large for int64 (max {arr.max()})")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size == 0:
        return arr, -1
    invalid, row_max = recommended_rows(arr, -1 if n_items is None else n_items)
    if invalid.any():
        _raise_first_invalid(arr[invalid], np.flatnonzero(invalid), name, n_items, items_name)
    return arr, int(row_max.max())


def _raise_first_invalid(rows, row_numbers, name: str, n_items, items_name: str) -> None:
    """Raise for the first bad entry of the invalid ``rows`` (int64 2-D), numbered ``row_numbers``."""
    if rows.min() < -1:
        u, j = np.argwhere(rows < -1)[0]
        raise ValueError(
            f"{name} must hold item indices >= 0 or -1 (padding); "
            f"row {row_numbers[u]}, column {j} is {rows[u, j]}"
        )
    if n_items is not None and rows.max() >= n_items:
        u, j = np.argwhere(rows >= n_items)[0]
        raise ValueError(
            f"{name} holds item index {rows[u, j]} (row {row_numbers[u]}, column {j}), out of "
            f"range for {items_name}={n_items}"
        )
    srt = np.sort(rows, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    u, j = np.argwhere(dup)[0]
    raise ValueError(
        f"{name} has duplicated item {srt[u, j + 1]} in row {row_numbers[u]} "
        f"({rows.shape[0]} row(s) with duplicates); each row must list distinct items"
    )


def _check_below(arr, n_items: int, name: str, catalogue: str) -> None:
    """Raise ``ValueError`` naming the first entry of ``arr`` (2-D) that is ``>= n_items``."""
    if arr.size and arr.max() >= n_items:
        u, j = np.argwhere(arr >= n_items)[0]
        raise ValueError(
            f"{name} holds item index {arr[u, j]} (row {u}, column {j}), out of range "
            f"for {catalogue}"
        )


def _check_k(k, n_cols: int, name: str = "recommended") -> int:
    if k is None:
        if n_cols == 0:
            raise ValueError(f"{name} has no columns; cannot evaluate top-k")
        return n_cols
    k = check_int(k, "k", min_value=1)
    if k > n_cols:
        raise ValueError(
            f"k={k} is larger than the number of recommended columns ({n_cols}) "
            f"of {name}; pass k <= {n_cols} or recommend more items"
        )
    return k


def _relevant_structure(
    relevant, n_rows: int, *, name: str = "relevant", rows_name: str = "recommended"
):
    """CSR structure of ``relevant`` as (indptr, indices sorted per row, n_items); the index
    arrays keep scipy's dtype (int32 or int64), as the kernels take either.

    The caller's matrix is never modified: a canonical copy is made only when rows are unsorted
    or hold duplicated entries.
    """
    if sp.issparse(relevant):
        mat = check_sparse(relevant, name).tocsr()
    else:
        arr = np.asarray(relevant)
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D sparse matrix (n_users, n_items), got shape {arr.shape}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        mat = sp.csr_matrix(arr)
    if mat.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_users, n_items), got shape {mat.shape}")
    if mat.shape[0] != n_rows:
        raise ValueError(
            f"{rows_name} has {n_rows} rows but {name} has {mat.shape[0]}; they must "
            f"have one row per user, in the same order"
        )
    # scipy's own index dtype (int32 or int64): the kernels take either, no copy of the entries
    indptr = np.ascontiguousarray(mat.indptr)
    indices = np.ascontiguousarray(mat.indices)
    nnz = int(indptr[-1])
    indices = indices[:nnz]
    if nnz > 1 and unsorted_rows(indptr, indices).any():
        canon = sp.csr_matrix(
            (np.ones(nnz, dtype=np.int8), indices.copy(), indptr.copy()), shape=mat.shape
        )
        canon.sum_duplicates()  # sorts; sums of ones are never dropped as zeros
        indptr = np.ascontiguousarray(canon.indptr)
        indices = np.ascontiguousarray(canon.indices)
    return np.ascontiguousarray(indptr), np.ascontiguousarray(indices), int(mat.shape[1])


def _validated(recommended, relevant, k):
    """``recommended`` (int64, C-contiguous), ``relevant``'s CSR structure and ``k``, all checked."""
    rec, largest = _checked_recommended(recommended)
    indptr, indices, n_items = _relevant_structure(relevant, rec.shape[0])
    k = _check_k(k, rec.shape[1])
    if largest >= n_items:
        _check_below(rec, n_items, "recommended", f"relevant with {n_items} columns (items)")
    return rec, indptr, indices, k


def _hits(recommended, relevant, k):
    """Validated hit matrix (n_users, k) bool, relevant counts (n_users,) int64 and k."""
    rec, indptr, indices, k = _validated(recommended, relevant, k)
    hits = hit_matrix(np.ascontiguousarray(rec[:, :k]), indptr, indices)
    return hits, np.diff(indptr), k


def _discounts(k: int) -> np.ndarray:
    """The binary-gain DCG discount of each position: ``1 / log2(j + 2)``, float64 (k,)."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _per_user(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict:
    """Per-user metric arrays (float64) for the users with >= 1 relevant item."""
    n_hits = hits.sum(axis=1, dtype=np.int64)
    return _metrics_of(n_hits, dcg_of_hits(hits, _discounts(k)), n_relevant, k)


def _metrics_of(n_hits: np.ndarray, dcg: np.ndarray, n_relevant: np.ndarray, k: int) -> dict:
    """:func:`_per_user` from each user's hit count (int64) and DCG (float64)."""
    keep = n_relevant > 0
    if not keep.any():
        raise ValueError("relevant has no user with a relevant item; the metrics are undefined")
    n_hits, dcg, n_rel = n_hits[keep], dcg[keep], n_relevant[keep]
    idcg = np.cumsum(_discounts(k))[np.minimum(n_rel, k) - 1]
    return {
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        # dcg <= idcg mathematically; the clip only absorbs a last-bit rounding difference.
        "ndcg": np.minimum(dcg / idcg, 1.0),
        "hit_rate": (n_hits > 0).astype(np.float64),
    }


def _per_user_metrics(recommended, relevant, k) -> dict:
    """:func:`_per_user` of ``_hits(recommended, relevant, k)`` without the hit matrix: each user's
    hit count and DCG come from one parallel pass (:func:`~recforge.kernels.ranking.hit_stats`)."""
    rec, indptr, indices, k = _validated(recommended, relevant, k)
    n_hits, dcg = hit_stats(rec, k, indptr, indices, _discounts(k))
    return _metrics_of(n_hits, dcg, np.diff(indptr), k)


def _mean_over_users(metric: str, recommended, relevant, k) -> float:
    """One of :func:`_per_user`'s metrics, averaged over the users with a relevant item."""
    return float(_per_user_metrics(recommended, relevant, k)[metric].mean())


# ----------------------------------------------------------------------------------------------
# ranking metrics
# ----------------------------------------------------------------------------------------------
_SHARED_PARAMS = """
    Parameters
    ----------
    recommended : array-like of shape (n_users, n_cols), integer dtype
        Internal item indices per user, best first; ``-1`` = padding. Ids unique within a row.
    relevant : scipy sparse matrix of shape (n_users, n_items)
        Row ``u``'s stored entries are user ``u``'s relevant items (rows aligned with
        ``recommended``). A dense array is accepted; its non-zeros are the relevant items.
    k : int, optional
        Cut-off, ``1 <= k <= n_cols``; default ``n_cols``.

    Returns
    -------
    float
        Mean over users with at least one relevant item, in [0, 1].

    Raises
    ------
    TypeError
        ``recommended`` is not of an integer dtype.
    ValueError
        Row counts differ, an id is out of range (< -1 or >= n_items), a row repeats an id,
        ``k`` exceeds the columns, or no user has a relevant item.
"""


#: the inputs of the examples of the four metrics below
_EXAMPLE = """
    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.metrics import {name}
    >>> rec = np.array([[2, 0, -1], [1, 3, 0]])
    >>> rel = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]]))
"""


def _ranking_metric(metric: str, summary: str, example: str):
    """The public function ``<metric>_at_k``: the mean of ``metric`` over the users with a
    relevant item; its docstring is ``summary``, the shared parameters and ``example`` (doctest
    lines run after the inputs of :data:`_EXAMPLE`)."""

    def at_k(
        recommended: ArrayLike, relevant: sp.spmatrix | ArrayLike, k: int | None = None
    ) -> float:
        return _mean_over_users(metric, recommended, relevant, k)

    at_k.__name__ = at_k.__qualname__ = f"{metric}_at_k"
    at_k.__doc__ = summary + "\n" + _SHARED_PARAMS + _EXAMPLE.format(name=at_k.__name__) + example
    return at_k


precision_at_k = _ranking_metric(
    "precision",
    "Precision@k = hits in the first k / k, averaged over users with a relevant item.",
    """    >>> round(precision_at_k(rec, rel, k=2), 4)
    0.75
""",
)
recall_at_k = _ranking_metric(
    "recall",
    "Recall@k = hits in the first k / number of relevant items, averaged over users.",
    """    >>> recall_at_k(rec, rel, k=1)
    0.25
""",
)
ndcg_at_k = _ranking_metric(
    "ndcg",
    "Binary-gain NDCG@k, ideal DCG over min(k, number of relevant items), averaged over users.",
    """    >>> round(ndcg_at_k(rec, rel, k=2), 4)  # user 0: 1.0; user 1, one hit at rank 2: 1 / log2(3)
    0.8155
""",
)
hit_rate_at_k = _ranking_metric(
    "hit_rate",
    "Hit rate@k = share of users with at least one relevant item among their first k.",
    """    >>> hit_rate_at_k(rec, rel, k=1)
    0.5
""",
)


def ranking_metrics(
    recommended: ArrayLike, relevant: sp.spmatrix | ArrayLike, k: int | None = None
) -> dict[str, float]:
    """Precision, recall, NDCG and hit rate @k in one pass over the hit matrix.

    Parameters
    ----------
    recommended : array-like of shape (n_users, n_cols), integer dtype
        Internal item indices per user, best first; ``-1`` = padding. Ids unique within a row.
    relevant : scipy sparse matrix of shape (n_users, n_items)
        Row ``u``'s stored entries are user ``u``'s relevant items.
    k : int, optional
        Cut-off, ``1 <= k <= n_cols``; default ``n_cols``.

    Returns
    -------
    dict
        ``{"precision", "recall", "ndcg", "hit_rate"}`` -> float in [0, 1] (means over the users
        with at least one relevant item) and ``"n_users"`` -> int, the number of those users.
        Formulas: see :mod:`recforge.metrics`.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.metrics import ranking_metrics
    >>> rec = np.array([[2, 0, -1], [1, 3, 0], [0, 1, 2]])
    >>> rel = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
    >>> m = ranking_metrics(rec, rel, k=2)
    >>> m["precision"], m["recall"], m["hit_rate"], m["n_users"]
    (0.75, 1.0, 1.0, 2)
    """
    per_user = _per_user_metrics(recommended, relevant, k)
    out = {name: float(values.mean()) for name, values in per_user.items()}
    out["n_users"] = int(per_user["precision"].shape[0])
    return out


def coverage_at_k(recommended: ArrayLike, n_items: int, k: int | None = None) -> float:
    """Catalogue coverage@k: distinct items recommended in the first k / ``n_items``.

    This is *catalogue* (aggregate) coverage, not per-user prediction coverage.

    Parameters
    ----------
    recommended : array-like of shape (n_users, n_cols), integer dtype
        Item indices in ``[0, n_items)`` per user; ``-1`` = padding (not an item).
    n_items : int >= 1
        Size of the catalogue (the universe the items were recommended from).
    k : int, optional
        Cut-off, ``1 <= k <= n_cols``; default ``n_cols``.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.metrics import coverage_at_k
    >>> coverage_at_k(np.array([[0, 1], [1, -1]]), n_items=4)
    0.5
    """
    n_items = check_int(n_items, "n_items", min_value=1)
    rec = _check_recommended(recommended, n_items=n_items)
    k = _check_k(k, rec.shape[1])
    seen = np.zeros(n_items, dtype=np.bool_)
    top = rec[:, :k]
    seen[top[top >= 0]] = True
    return float(np.count_nonzero(seen) / n_items)


# ----------------------------------------------------------------------------------------------
# classification metrics
# ----------------------------------------------------------------------------------------------
def _check_binary(y_true, name: str = "y_true") -> np.ndarray:
    arr = check_1d(y_true, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold binary labels 0/1, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    arr = arr.astype(np.float64)
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must hold binary labels 0/1; position {pos} is {arr[pos]!r}")
    return arr


def _check_scores(values, name: str, n: int) -> np.ndarray:
    """``values`` as float64 (n,): numeric, one per label of ``y_true`` (NaN is left to the caller)."""
    arr = check_1d(values, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values but y_true has {n}")
    return arr


def _check_weight(sample_weight, n: int, name: str = "sample_weight") -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    w = check_1d(sample_weight, name, dtype=np.float64, finite=True)
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} values but y_true has {n}")
    if (w < 0).any():
        pos = int(np.flatnonzero(w < 0)[0])
        raise ValueError(f"{name} must be >= 0; position {pos} is {w[pos]}")
    return w


def roc_auc_score(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Area under the ROC curve, by ranks in O(n log n) with tied scores counted as 1/2.

    AUC = sum over (positive i, negative j) of w_i w_j [s_i > s_j] + 0.5 w_i w_j [s_i == s_j],
    divided by (total positive weight) * (total negative weight). Equal to
    ``sklearn.metrics.roc_auc_score`` (tests check it, with and without weights).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels 0/1 (bool, int or float); 1 = positive. Both classes must occur.
    y_score : array-like of shape (n_samples,), numeric
        Scores, higher = more likely positive. NaN is an error; +-inf are allowed.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative finite weights; both classes need a positive total weight.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> from recforge.metrics import roc_auc_score
    >>> roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _check_binary(y_true, "y_true")
    s = _check_scores(y_score, "y_score", y.shape[0])
    if np.isnan(s).any():
        pos = int(np.flatnonzero(np.isnan(s))[0])
        raise ValueError(f"y_score must not contain NaN; position {pos} is NaN")
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.shape[0]:
        raise ValueError(
            f"y_true contains only one class ({int(y[0])}); ROC AUC is undefined. "
            f"Both positives (1) and negatives (0) are needed"
        )
    w = _check_weight(sample_weight, y.shape[0])

    order = np.argsort(s, kind="stable")
    s = s[order]
    wp = (y * w)[order]
    wn = ((1.0 - y) * w)[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    pos_w = np.add.reduceat(wp, starts)
    neg_w = np.add.reduceat(wn, starts)
    total_pos = pos_w.sum()
    total_neg = neg_w.sum()
    if total_pos <= 0 or total_neg <= 0:
        cls = "positives" if total_pos <= 0 else "negatives"
        raise ValueError(f"sample_weight gives the {cls} a total weight of 0; ROC AUC is undefined")
    neg_below = np.cumsum(neg_w) - neg_w
    area = np.sum(pos_w * (neg_below + 0.5 * neg_w))
    return float(min(1.0, max(0.0, area / (total_pos * total_neg))))


def log_loss(
    y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-15, sample_weight: ArrayLike | None = None
) -> float:
    """Binary cross-entropy: weighted mean of -[y log p + (1 - y) log(1 - p)], natural log.

    Probabilities are clipped to ``[eps, 1 - eps]`` first.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels 0/1 (bool, int or float).
    y_prob : array-like of shape (n_samples,), numeric
        Predicted probability of the positive class, each in [0, 1] (no NaN).
    eps : float in [0, 0.5), default 1e-15
        Clipping bound; ``eps=0`` disables clipping (a certain wrong answer then gives ``inf``).
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative finite weights with a positive sum.

    Returns
    -------
    float
        >= 0.

    Examples
    --------
    >>> from recforge.metrics import log_loss
    >>> round(log_loss([1, 0, 1], [0.9, 0.2, 0.6]), 4)
    0.2798
    """
    y = _check_binary(y_true, "y_true")
    p = _check_scores(y_prob, "y_prob", y.shape[0])
    bad = ~((p >= 0) & (p <= 1))  # also catches NaN
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"y_prob must hold probabilities in [0, 1]; position {pos} is {p[pos]}")
    eps = check_float(eps, "eps", min_value=0.0, max_value=0.5, max_inclusive=False)
    w = _check_weight(sample_weight, y.shape[0])
    if w.sum() <= 0:
        raise ValueError("sample_weight must have a positive sum")
    p = np.clip(p, eps, 1.0 - eps)
    p_true = np.where(y == 1, p, 1.0 - p)
    with np.errstate(divide="ignore"):
        losses = -np.log(p_true)  # inf only when eps == 0 and the true class has probability 0
    weighted = np.zeros_like(losses)
    nonzero = w > 0  # a zero weight cancels even an infinite loss
    weighted[nonzero] = w[nonzero] * losses[nonzero]
    return float(weighted.sum() / w.sum())
