"""Choosing what ranks the candidates, on validation users inside the training data.

``TwoStage.fit`` holds out a share of its training users (never the test split: they come from the
labelled cut of the training data). Each candidate ranker is fitted on the other users' rows and
orders the held-out users' candidates. Reciprocal rank fusion and every single source learn nothing
from the labels: they are scored on every training user's full candidate list
(:func:`simple_ndcg_rows`, before the negative sampling) and the best of them is the baseline; the
best ranker ranks from then on only when it beats that baseline on the held-out users by
``min_gain``. A source chosen this way answers like the source alone (:class:`SourceOrder`), so
the pipeline does not do worse than its best source on the training users of the data it is
fitted on.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_random_state

#: The name of the fusion baseline among the choices.
RRF_CHOICE = "rrf"


class SourceOrder:
    """Ranks the candidates exactly as one source did: its listed items by its rank, then the rest
    in fusion order.

    Parameters
    ----------
    source : str — the source's name
    feature_names : list of str — the pipeline's ``feature_names_out_`` (``<source>_rank``,
        ``n_sources`` and ``rrf`` are read from the feature matrix)

    ``predict(X)`` returns float32 (n,) scores: ``1 / rank`` for the items the source listed (in
    (0, 1]), ``rrf / (n_source_columns + 1) - 1`` (in [-1, 0)) for the others.

    Examples
    --------
    >>> import numpy as np
    >>> order = SourceOrder("itemcf", ["itemcf_rank", "rrf"])
    >>> order.predict(np.array([[2, 0.03], [np.nan, 0.02], [1, 0.03]], np.float32)).tolist()
    [0.5, -0.9900000095367432, 1.0]
    """

    def __init__(self, source: str, feature_names):
        names = list(feature_names)
        self.source = source
        self.rank_column = names.index(f"{source}_rank")
        self.rrf_column = names.index("rrf")
        self.n_rank_columns = sum(name.endswith("_rank") for name in names)

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X)
        rank = X[:, self.rank_column].astype(np.float64)
        rrf = X[:, self.rrf_column].astype(np.float64)
        listed = np.isfinite(rank) & (rank > 0)
        fallback = rrf / (self.n_rank_columns + 1) - 1.0
        return np.where(listed, 1.0 / np.where(listed, rank, 1.0), fallback).astype(np.float32)


def validation_users(users: np.ndarray, fraction: float, random_state) -> np.ndarray:
    """The held-out users: a random ``fraction`` (at least one, and never all) of the sorted unique
    ``users`` (int64). Returns the sorted held-out users, int64; empty when ``fraction`` is 0 or
    fewer than two users exist."""
    users = np.unique(np.asarray(users, np.int64))
    if fraction <= 0 or len(users) < 2:
        return np.empty(0, np.int64)
    n = min(max(1, round(fraction * len(users))), len(users) - 1)
    rng = check_random_state(random_state)
    return np.sort(rng.choice(users, n, replace=False))


def simple_order_names(feature_names) -> list:
    """The names of :func:`simple_orders`, in order: :data:`RRF_CHOICE`, then each source."""
    return [RRF_CHOICE] + [n[: -len("_rank")] for n in feature_names if n.endswith("_rank")]


def simple_orders(X, feature_names) -> dict:
    """The orders that learn nothing from the labels: name → float (n,) scores of the candidate
    rows ``X`` — fusion (:data:`RRF_CHOICE`, its ``rrf`` column) first, then each source as
    :class:`SourceOrder` ranks, in the order of the ``<source>_rank`` columns."""
    names = list(feature_names)
    orders = {RRF_CHOICE: np.asarray(X)[:, names.index("rrf")]}
    for source in simple_order_names(names)[1:]:
        orders[source] = SourceOrder(source, names).predict(X)
    return orders


def simple_ndcg_rows(X, feature_names, rows, items, labels, k: int) -> np.ndarray:
    """Each row's user's NDCG@``k`` under every :func:`simple_orders` order, over all that user's
    candidates in ``X`` (call it before any negative sampling): float32 (n, n_orders), NaN for a
    user without a positive. The orders need no training, so every training user can score them,
    not only the held-out ones: a choice among them on all users is ~5× less noisy.
    ``rows`` int64 (n,) grouped by user; ``labels`` 0/1 (n,)."""
    rows = np.asarray(rows, np.int64)
    orders = simple_orders(X, feature_names)
    out = np.full((len(rows), len(orders)), np.nan, np.float32)
    if len(rows) == 0:
        return out
    uniq, inverse = np.unique(rows, return_inverse=True)
    for j, scores in enumerate(orders.values()):
        users, ndcg = user_ndcg(rows, items, labels, scores, k)
        per_user = np.full(len(uniq), np.nan)
        per_user[np.searchsorted(uniq, users)] = ndcg
        out[:, j] = per_user[inverse]
    return out


def user_ndcg(rows, items, labels, scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """NDCG@``k`` of each row (user) with a positive: each row's candidates ordered by ``scores``
    (descending, ties by lower item index, as ``recommend``), the ideal list from the row's
    positives among its candidates. ``rows`` int64 (n,) grouped; ``labels`` 0/1 (n,).
    Returns (the users with a positive, int64; their NDCG, float64)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0:
        return np.empty(0, np.int64), np.empty(0)
    order = np.lexsort((np.asarray(items), -np.asarray(scores, np.float64), rows))
    r, y = rows[order], np.asarray(labels, np.float64)[order]
    position = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    discount = 1.0 / np.log2(position + 2.0)
    uniq, inverse = np.unique(r, return_inverse=True)
    dcg = np.bincount(inverse, weights=y * discount * (position < k), minlength=len(uniq))
    n_pos = np.bincount(inverse, weights=y, minlength=len(uniq)).astype(np.int64)
    ideal_discount = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    idcg = ideal_discount[np.minimum(n_pos, k)]
    has = n_pos > 0
    return uniq[has], dcg[has] / idcg[has]


def mean_ndcg(rows, items, labels, scores, k: int) -> float:
    """Mean NDCG@``k`` over the rows (users) with a positive (:func:`user_ndcg`); NaN if none."""
    _, ndcg = user_ndcg(rows, items, labels, scores, k)
    return float(np.mean(ndcg)) if len(ndcg) else float("nan")
