"""ContentBased: topic (e.g. genre) profiles of items and users, with time decay."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import as_numpy, check_choice, check_float, check_int, check_sparse
from ..data import Interactions
from ..io import ModelArrays
from ._neighbors import time_decay_weights
from .base import RecallModel, as_interactions

#: ``fit`` refuses item features that match fewer than this share of the items (a wrong id type)
MIN_MATCHED_SHARE = 0.5


def _item_feature_matrix(item_features, item_ids) -> np.ndarray:
    """Align ``item_features`` to ``item_ids``: (n_items, n_topics) float64; unknown items get
    zeros.

    Raises ``ValueError`` when the feature ids repeat, or match fewer than ``MIN_MATCHED_SHARE`` of
    the items (e.g. ids ``'0', '1'`` for integer item ids), showing examples of both sides.
    """
    import pandas as pd

    if isinstance(item_features, pd.DataFrame):
        ids, values = item_features.index.to_numpy(), item_features.to_numpy()
    elif isinstance(item_features, tuple) and len(item_features) == 2:
        ids, values = as_numpy(item_features[0]), item_features[1]
        if sp.issparse(values):
            values = check_sparse(values, "item_features matrix").toarray()
        values = np.asarray(values)
    else:
        raise TypeError(
            "item_features must be a pandas DataFrame indexed by item id (one column per topic) "
            f"or a tuple (item_ids, matrix), got {type(item_features).__name__}"
        )
    if values.ndim != 2 or ids.ndim != 1 or len(ids) != values.shape[0]:
        raise ValueError(
            f"item_features must be 2-D with one row per item id, got {values.shape} "
            f"for {np.shape(ids)} ids"
        )
    if values.dtype.kind not in "biuf":
        raise TypeError(f"item_features must be numeric, got dtype {values.dtype}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("item_features must be finite and >= 0")
    index = pd.Index(ids)
    if index.has_duplicates:
        repeated = index[index.duplicated()][:3].tolist()
        raise ValueError(
            f"item_features has duplicated item ids, e.g. {repeated}; give one row per item"
        )
    out = np.zeros((len(item_ids), values.shape[1]))
    lookup = index.get_indexer(item_ids)
    found = lookup >= 0
    if found.sum() < MIN_MATCHED_SHARE * len(item_ids):
        missing = np.asarray(item_ids)[~found][:3].tolist()
        raise ValueError(
            f"item_features matches only {int(found.sum())} of the {len(item_ids)} item ids of the "
            f"interactions (at least {MIN_MATCHED_SHARE:.0%} needed); items such as {missing} have "
            f"no row, while the features are indexed by {index[:3].tolist()} ({index.dtype}); "
            "index them by the interactions' item ids (same type), with zero rows for items "
            "without topics"
        )
    out[found] = values[lookup[found]]
    return out


def genre_topics(movies, id_col: str = "movieId", genres_col: str = "genres", sep: str = "|"):
    """Item × genre 0/1 DataFrame (indexed by item id) from a movies table with '|'-separated genres.

    ``"(no genres listed)"`` gives an all-zero row.

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.recall.content_based import genre_topics
    >>> genre_topics(pd.DataFrame({"movieId": [1, 2], "genres": ["Comedy|Drama", "Drama"]})).to_numpy().tolist()
    [[1, 1], [0, 1]]
    """
    import pandas as pd

    dummies = movies[genres_col].astype(str).str.get_dummies(sep=sep)
    dummies = dummies.drop(columns=[c for c in dummies.columns if c.startswith("(no genres")])
    dummies.index = pd.Index(movies[id_col].to_numpy())
    return dummies


class ContentBased(RecallModel):
    """Content-based recall from an item × topic matrix (for MovieLens: the genres).

    Item profiles are the rows of ``item_features`` normalised to unit L2 length. A user profile is
    the sum of the profiles of the user's items weighted by ``w(u, j) = [r(u, j)] · exp(-time_decay · age)``
    (``age`` in days since the user's latest interaction). Two strategies:

    * ``"similarity"``: score(u, i) = cosine(profile(u), profile(i)).
    * ``"genres"`` (the course's two steps): the user's ``n_top_topics`` strongest topics, each with
      its share of the profile; an item's score is ``Σ_{g ∈ top(u), i ∈ g} share(g) · quality(i)``,
      ``quality`` = the item's rating mean shrunk towards the global mean by ``shrinkage``
      pseudo-ratings (``quality="shrunk_mean"``), times ``log(1 + n_ratings)`` (``"shrunk_mean_pop"``),
      or the item's interaction count (``"count"``), scaled to a maximum of 1.

    Parameters
    ----------
    strategy : {"genres", "similarity"}, default "genres"
    time_decay : float >= 0, default 0.0
    use_weights : bool, default True
        Weigh the user's items by the interaction weight (e.g. the rating).
    n_top_topics : int >= 1, default 3
    quality : {"count", "shrunk_mean", "shrunk_mean_pop"}, default "count"
        ``"count"``: the number of interactions (popularity within the genre; the best on MovieLens).
    shrinkage : float >= 0, default 10.0
    n_threads : int or None, default None
        Threads of the top-k selection.

    Attributes
    ----------
    item_profiles_ : ndarray (n_items, n_topics), float32
    user_profiles_ : ndarray (n_users, n_topics), float32 (not normalised)
    quality_ : ndarray (n_items,), float32

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.recall import ContentBased
    >>> m = sp.csr_matrix([[5, 0, 0], [0, 4, 0]], dtype="float32")
    >>> genres = (np.arange(3), np.array([[1, 0], [0, 1], [1, 1]]))
    >>> ContentBased(strategy="similarity").fit(m, item_features=genres).recommend(0, k=2)[0].tolist()
    [2, 1]
    """

    def __init__(
        self,
        *,
        strategy="genres",
        time_decay=0.0,
        use_weights=True,
        n_top_topics=3,
        quality="count",
        shrinkage=10.0,
        n_threads=None,
    ):
        self.strategy = strategy
        self.time_decay = time_decay
        self.use_weights = use_weights
        self.n_top_topics = n_top_topics
        self.quality = quality
        self.shrinkage = shrinkage
        self.n_threads = n_threads

    def fit(self, interactions, item_features=None):
        """Learn the profiles. ``item_features``: DataFrame indexed by item id, or (item_ids, matrix)."""
        if item_features is None:
            raise ValueError(
                "item_features is required: an item × topic matrix, e.g. "
                "genre_topics(movielens_small().movies) or (item_ids, matrix)"
            )
        data = as_interactions(interactions)
        return super().fit(data, features=_item_feature_matrix(item_features, data.item_map.ids))

    def _validate_params(self) -> None:
        super()._validate_params()
        check_choice(self.strategy, "strategy", {"similarity", "genres"})
        check_float(self.time_decay, "time_decay", min_value=0.0)
        check_int(self.n_top_topics, "n_top_topics", min_value=1)
        check_choice(self.quality, "quality", {"shrunk_mean", "shrunk_mean_pop", "count"})
        check_float(self.shrinkage, "shrinkage", min_value=0.0)

    def _fit(self, data: Interactions, *, features) -> None:
        norm = np.linalg.norm(features, axis=1, keepdims=True)
        self.item_profiles_ = (features / np.where(norm > 0, norm, 1.0)).astype(np.float32)
        matrix = data.matrix
        w = time_decay_weights(matrix, data.timestamps, float(self.time_decay)).astype(np.float64)
        if self.use_weights:
            w = w * matrix.data
        weighted = sp.csr_matrix((w, matrix.indices, matrix.indptr), shape=matrix.shape)
        self.user_profiles_ = np.asarray(
            weighted @ self.item_profiles_.astype(np.float64), dtype=np.float32
        )
        counts = np.bincount(matrix.indices, minlength=data.n_items).astype(np.float64)
        sums = np.bincount(
            matrix.indices, weights=matrix.data.astype(np.float64), minlength=data.n_items
        )
        mean = sums.sum() / max(counts.sum(), 1.0)
        shrunk = (sums + float(self.shrinkage) * mean) / (counts + float(self.shrinkage) + 1e-12)
        if self.quality == "count":
            quality = counts
        elif self.quality == "shrunk_mean":
            quality = np.where(counts > 0, shrunk, 0.0)
        else:
            quality = np.where(counts > 0, shrunk, 0.0) * np.log1p(counts)
        self.quality_ = (quality / max(quality.max(), 1e-12)).astype(np.float32)

    # ---- scoring --------------------------------------------------------------------------------
    def _score_profiles(self, profiles: np.ndarray) -> np.ndarray:
        profiles = np.asarray(profiles, dtype=np.float64)
        items = self.item_profiles_.astype(np.float64)
        if self.strategy == "similarity":
            norm = np.linalg.norm(profiles, axis=1, keepdims=True)
            return ((profiles / np.where(norm > 0, norm, 1.0)) @ items.T).astype(np.float32)
        n_top = min(int(self.n_top_topics), profiles.shape[1])
        share = np.zeros_like(profiles)
        order = np.argsort(-profiles, axis=1, kind="stable")[:, :n_top]
        rows = np.arange(len(profiles))[:, None]
        share[rows, order] = profiles[rows, order]
        total = share.sum(axis=1, keepdims=True)
        share /= np.where(total > 0, total, 1.0)
        member = (items > 0).astype(np.float64)
        return ((share @ member.T) * self.quality_[None, :]).astype(np.float32)

    def _score_users(self, user_idx):
        return self._score_profiles(self.user_profiles_[user_idx])

    def _score_history(self, item_idx, weights):
        w = weights.astype(np.float64) if self.use_weights else np.ones(len(item_idx))
        profile = (w[:, None] * self.item_profiles_[item_idx].astype(np.float64)).sum(
            axis=0, keepdims=True
        )
        return self._score_profiles(profile)[0]

    def _score_similar(self, item_idx):
        items = self.item_profiles_.astype(np.float64)
        return (items[item_idx] @ items.T).astype(np.float32)

    def _get_state(self) -> dict:
        return {
            "item_profiles": self.item_profiles_,
            "user_profiles": self.user_profiles_,
            "quality": self.quality_,
        }

    def _set_state(self, arrays: ModelArrays) -> None:
        items = arrays.take("item_profiles", ndim=2, shape=(self.n_items_, None), dtype=np.float32)
        self.item_profiles_ = items
        self.user_profiles_ = arrays.take(
            "user_profiles", ndim=2, shape=(self.n_users_, items.shape[1]), dtype=np.float32
        )
        self.quality_ = arrays.take("quality", shape=(self.n_items_,), dtype=np.float32)
