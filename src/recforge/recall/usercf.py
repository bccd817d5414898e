"""UserCF: user-based collaborative filtering with a sparse top-K user–user similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import Interactions
from ..kernels._csr import csr_kernel_arrays
from ..kernels.neighbors import two_hop_scores
from ._neighbors import (
    TwoHopModel,
    log_penalty,
    topk_neighbors,
)


class UserCF(TwoHopModel):
    """User-based collaborative filtering.

    Similarity of users ``u != v`` (binary interactions, each item weighted by the popularity penalty)::

        sim(u, v) = Σ_{i ∈ N(u) ∩ N(v)} 1 / log(1 + |N(i)|)  /  sqrt(|N(u)| · |N(v)|)

    Only the ``n_neighbors`` most similar users of each user are kept (sparse CSR). A user's score
    of item ``i`` is ``Σ_{v ∈ K(u)} sim(u, v) · w(v, i)`` with ``w(v, i) = [r(v, i)] · exp(-time_decay · age)``
    (``age`` in days since ``v``'s latest interaction; ``w = 1`` without decay).

    Parameters
    ----------
    n_neighbors : int, default 20
        Neighbours kept per user.
    normalize_max : bool, default False
        Divide each user's similarity row by its largest value.
    use_weights : bool, default True
        Multiply ``w`` by the interaction weight (e.g. the rating); the similarity stays binary.
    time_decay : float >= 0, default 0.0
        Decay rate per day of ``w(v, i)``; needs timestamps when > 0.
    n_threads : int or None, default None
        Threads of the kernels (``None`` = all available cores). Results do not depend on it.
    verbose : bool, default False
        Progress bar (tqdm) over the similarity computation.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_users, n_users), float32
    item_weights_ : scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        ``w(v, i)`` on the training interactions.

    Notes
    -----
    ``recommend_from_history`` computes the new user's similarities to every training user on the
    fly (same formula) and keeps the top ``n_neighbors``. ``similar_items`` uses the penalised item
    cosine of ItemCF computed on the fly (UserCF itself has no item similarity).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import UserCF
    >>> m = sp.csr_matrix([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0]], dtype="float32")
    >>> UserCF(n_neighbors=2).fit(m).recommend(0, k=2)[0].tolist()
    [2, 3]
    """

    _weights_name = "item_weights"
    _similar_side = "users"

    def __init__(
        self,
        *,
        n_neighbors: int = 20,
        normalize_max: bool = False,
        use_weights: bool = True,
        time_decay: float = 0.0,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.normalize_max = normalize_max
        self.use_weights = use_weights
        self.time_decay = time_decay
        self.n_threads = n_threads
        self.verbose = verbose

    def _fit(self, data: Interactions) -> None:
        matrix = data.matrix
        self.similarity_ = topk_neighbors(
            matrix,
            self.n_neighbors,
            self._item_penalty(matrix),
            self._n_threads(),
            normalize_max=bool(self.normalize_max),
            verbose=bool(self.verbose),
        )
        self.item_weights_ = self._interaction_weights(data)

    @staticmethod
    def _item_penalty(matrix) -> np.ndarray:
        return log_penalty(np.bincount(matrix.indices, minlength=matrix.shape[1]))

    # TwoHopModel: scores = similarity_ @ item_weights_
    @property
    def query_(self):
        return self.similarity_

    @property
    def next_(self):
        return self.item_weights_

    def _score_history(self, item_idx, weights):
        items = np.unique(item_idx)
        if len(items) == 0:
            return np.zeros(self.n_items_, np.float32)
        ui = self.user_items_
        penalty = self._item_penalty(ui)
        binary = sp.csr_matrix((np.ones(ui.nnz), ui.indices, ui.indptr), shape=ui.shape)
        overlap = binary[:, items] @ penalty[items]  # (n_users,)
        degree = np.maximum(np.diff(ui.indptr), 1).astype(np.float64)
        sim = (overlap / np.sqrt(len(items) * degree)).astype(np.float32)
        candidates = np.flatnonzero(sim > 0)
        order = np.lexsort((candidates, -sim[candidates]))[: int(self.n_neighbors)]
        chosen = np.sort(candidates[order])
        vals = sim[chosen]
        if self.normalize_max and len(vals):
            vals = vals / vals.max()
        q = sp.csr_matrix(
            (vals.astype(np.float32), chosen.astype(np.int32), [0, len(chosen)]),
            shape=(1, self.n_users_),
        )
        return self._score_rows(q)[0]

    def history_scorer(self):
        """A callable ``(item_idx int64 (n,), weights float32 (n,)) -> float32 (n_items,)`` that
        returns exactly what ``recommend_from_history`` scores a history with, for a caller that
        folds in many histories (a server): the item penalty, the item → users index, the user
        degrees and the kernel's arrays are prepared here once, and a history's similarity to the
        training users touches only the users who share an item with it (not every user).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> m = sp.csr_matrix([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype="float32")
        >>> model = UserCF(n_neighbors=2).fit(m)
        >>> score = model.history_scorer()
        >>> history, weights = np.array([0, 1]), np.ones(2, np.float32)
        >>> bool((score(history, weights) == model._score_history(history, weights)).all())
        True
        """
        self._check_fitted()
        return _HistoryScorer(self)

    def _score_similar(self, item_idx):
        ui = self.user_items_
        binary = sp.csr_matrix((np.ones(ui.nnz, np.float64), ui.indices, ui.indptr), shape=ui.shape)
        penalty = log_penalty(np.diff(ui.indptr))
        cols = binary.T.tocsr()
        overlap = (cols[item_idx] @ sp.diags(penalty) @ binary).toarray()
        norm = np.sqrt(np.maximum(np.diff(cols.indptr), 1).astype(np.float64))
        return (overlap / norm[item_idx, None] / norm[None, :]).astype(np.float32)


class _HistoryScorer:
    """``UserCF._score_history`` with the model's arrays prepared once (see ``history_scorer``)."""

    def __init__(self, model: UserCF):
        self._model = model
        ui = model.user_items_
        # the per-user sums below add a history's items in ascending order, as the CSR product of
        # _score_history does on a canonical matrix; any other layout takes that path itself
        #: whether :meth:`neighbours` is available (a canonical CSR: sorted, no duplicates)
        self.canonical = bool(ui.has_canonical_format)
        self._penalty = model._item_penalty(ui)
        by_item = sp.csr_matrix((np.ones(ui.nnz), ui.indices, ui.indptr), shape=ui.shape).tocsc()
        self._item_indptr, self._item_users = by_item.indptr, by_item.indices
        self._degree = np.maximum(np.diff(ui.indptr), 1).astype(np.float64)
        self._next = csr_kernel_arrays(model.next_)

    def __call__(self, item_idx, weights) -> np.ndarray:
        model = self._model
        if not self.canonical:
            return model._score_history(item_idx, weights)
        chosen, vals = self.neighbours(item_idx)
        if chosen is None:
            return np.zeros(model.n_items_, np.float32)
        return two_hop_scores(
            np.zeros(1, np.int64),
            np.array([0, len(chosen)], np.int64),
            chosen,
            vals,
            *self._next,
            model.n_items_,
        )[0]

    def neighbours(self, item_idx):
        """The history's query row: chosen users int32 (ascending) and their similarities
        float32, or ``(None, None)`` for an empty history (every score 0); needs ``canonical``."""
        if not self.canonical:
            raise ValueError("neighbours needs user_items_ in canonical CSR format")
        model = self._model
        items = np.unique(item_idx)
        if len(items) == 0:
            return None, None
        starts, ends = self._item_indptr[items], self._item_indptr[items + 1]
        users = np.concatenate([self._item_users[a:b] for a, b in zip(starts, ends)])
        touched, slot = np.unique(users, return_inverse=True)
        overlap = np.zeros(len(touched))
        # in order: each user's float64 sum takes its items in ascending order, from 0.0
        np.add.at(overlap, slot, np.repeat(self._penalty[items], ends - starts))
        sim = (overlap / np.sqrt(len(items) * self._degree[touched])).astype(np.float32)
        positive = sim > 0
        candidates, sim = touched[positive], sim[positive]
        order = np.lexsort((candidates, -sim))[: int(model.n_neighbors)]
        keep = np.sort(order)  # candidates are ascending: the chosen users in ascending order
        chosen, vals = candidates[keep], sim[keep]
        if model.normalize_max and len(vals):
            vals = vals / vals.max()
        return np.ascontiguousarray(chosen, np.int32), np.ascontiguousarray(vals, np.float32)
