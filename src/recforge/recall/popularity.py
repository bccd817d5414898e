"""Popularity: recommend the most popular items not yet seen. The baseline every model must beat."""

from __future__ import annotations

import numpy as np

from .._validation import check_choice
from ..data import Interactions
from ..io import ModelArrays
from .base import RecallModel


class Popularity(RecallModel):
    """Most popular items first.

    Parameters
    ----------
    weighting : {"count", "weight"}, default "count"
        ``"count"``: an item's score is the number of users who interacted with it;
        ``"weight"``: the sum of their interaction weights (e.g. ratings).
    n_threads : int or None, default None
        Threads of the top-k selection (``None`` = all available cores).

    Attributes
    ----------
    item_scores_ : ndarray of shape (n_items,), float32

    Notes
    -----
    ``recommend_from_history`` and ``similar_items`` return the popular items too (excluding the
    history / query item): popularity does not depend on who asks.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import Popularity
    >>> m = sp.csr_matrix([[1, 1, 0], [0, 1, 0], [0, 1, 1]], dtype="float32")
    >>> model = Popularity().fit(m)
    >>> model.recommend(0, k=2)[0].tolist()
    [2, -1]
    """

    def __init__(self, *, weighting: str = "count", n_threads: int | None = None) -> None:
        self.weighting = weighting
        self.n_threads = n_threads

    def _validate_params(self) -> None:
        super()._validate_params()
        check_choice(self.weighting, "weighting", {"count", "weight"})

    def _fit(self, data: Interactions) -> None:
        matrix = data.matrix
        weights = None if self.weighting == "count" else matrix.data.astype(np.float64)
        self.item_scores_ = np.bincount(
            matrix.indices, weights=weights, minlength=data.n_items
        ).astype(np.float32)

    def _score_users(self, user_idx):
        return np.broadcast_to(self.item_scores_, (len(user_idx), len(self.item_scores_)))

    def _score_history(self, item_idx, weights):
        return self.item_scores_

    def _score_similar(self, item_idx):
        return np.broadcast_to(self.item_scores_, (len(item_idx), len(self.item_scores_)))

    def _get_state(self) -> dict:
        return {"item_scores": self.item_scores_}

    def _set_state(self, arrays: ModelArrays) -> None:
        self.item_scores_ = arrays.take("item_scores", shape=(self.n_items_,), dtype=np.float32)
