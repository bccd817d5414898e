"""The recommend contract shared by every recall model.

A recall model learns from an :class:`~recforge.data.Interactions` (users × items) and answers:

* ``recommend(user_ids, k=10, filter_seen=True, filter_items=None, items=None)``
* ``recommend_from_history(item_ids, weights=None, k=10, ...)`` — a user the model never saw (fold-in)
* ``similar_items(item_ids, k=10, ...)``

Each returns ``(item_ids, scores)``: 1-D arrays for a scalar query, 2-D ``(n_queries, k)`` for an
array of queries, always **exactly k** columns, best first (equal scores: lower internal index
first), padded with ``-1`` (``None`` for string ids and for ids beyond int64, returned as an object
array of Python ints) and ``-inf`` when fewer than ``k`` candidates exist. Item id ``-1`` is
therefore refused by ``fit``. ``k`` may exceed the catalogue (padding) up to ``MAX_PADDED_K``.
Batch results equal looped scalar calls. Ids are the external ids of the training data; unknown
user or query item ids raise ``KeyError`` naming the id, while unknown
ids inside ``filter_items``/``items`` (any iterable of ids; not a boolean mask) are ignored
(they cannot be recommended anyway).

Subclasses implement ``_fit`` and the scoring hooks; everything else — id mapping, filtering,
batching with bounded memory, top-k selection in C++, save/load — lives here once.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._params import ParamsMixin
from .._threads import resolve_n_threads
from .._validation import as_numpy, check_1d, check_int
from ..data import IdMap, Interactions
from ..exceptions import NotFittedError
from ..io import ModelArrays, describe_file, load_arrays, model_file_errors, save_arrays
from ..kernels.topk import topk

#: Upper bound on the dense score block scored at once (bytes); keeps batch recommend O(chunk × n_items).
SCORE_BLOCK_BYTES = 64 * 2**20
#: ``k`` may exceed the catalogue (the extra columns are padding) up to this many columns
MAX_PADDED_K = 2**16
#: the arrays every model file holds beside its ``_get_state()``
_BASE_ARRAYS = (
    "user_ids",
    "item_ids",
    "user_items_indptr",
    "user_items_indices",
    "user_items_data",
)


def as_id_collection(values, name: str) -> np.ndarray:
    """External ids from a scalar, an array, a Series or any iterable (list, set, ``dict.keys()``,
    generator) as a 1-D array; boolean masks and elements that are not ids (unhashable, nested,
    ``None``) raise ``TypeError`` naming ``name``."""
    if isinstance(values, (np.ndarray, pd.Series, pd.Index)):
        arr = as_numpy(values).reshape(-1) if np.ndim(values) == 0 else as_numpy(values)
    else:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            values = [values]
        values = list(values)
        arr = np.empty(len(values), dtype=object)
        arr[:] = values  # element by element: a nested sequence stays one (rejected) element
    if arr.dtype.kind == "b":
        raise TypeError(
            f"{name} must be item ids, got booleans; pass the ids themselves "
            "(ids[mask]), not a boolean mask"
        )
    if arr.ndim != 1:
        raise TypeError(f"{name} must be a flat collection of item ids, got shape {arr.shape}")
    if arr.dtype.kind == "O":
        for v in arr.tolist():
            if isinstance(v, bool) or not isinstance(v, (str, numbers.Real)):
                raise TypeError(f"{name} must hold item ids (ints or strings), got {v!r}")
    return arr


def as_interactions(data, name: str = "interactions") -> Interactions:
    """Accept an :class:`Interactions` or a scipy sparse (n_users, n_items) matrix."""
    if isinstance(data, Interactions):
        return data
    if sp.issparse(data):
        return Interactions(data)
    raise TypeError(
        f"{name} must be a recforge.data.Interactions or a scipy sparse matrix of shape (n_users, n_items), "
        f"got {type(data).__name__}; build one with Interactions.from_dataframe(df, user_col=..., item_col=...)"
    )


def history_indices(item_map: IdMap, item_ids, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """A new user's history as internal item indices and weights (``recommend_from_history``).

    ``item_ids``: external ids (may be empty; unknown ids raise ``KeyError``); ``weights``: finite,
    >= 0, one per id (default 1.0). Returns int64 (n,) indices and float32 (n,) weights.

    >>> from recforge.data import IdMap
    >>> idx, w = history_indices(IdMap([10, 20, 30]), [30, 10])
    >>> idx.tolist(), w.tolist()
    ([2, 0], [1.0, 1.0])
    """
    history = as_id_collection(item_ids, "item_ids")
    item_idx = (
        np.asarray(item_map.index(history, name="item_id"), dtype=np.int64).reshape(-1)
        if history.size
        else np.empty(0, np.int64)
    )
    if weights is None:
        return item_idx, np.ones(len(item_idx), np.float32)
    w = check_1d(weights, "weights", dtype=np.float32, finite=True)
    if len(w) != len(item_idx):
        raise ValueError(f"weights has length {len(w)}, item_ids has length {len(item_idx)}")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    return item_idx, w


class RecallModel(ParamsMixin):
    """Base class of recall models. See the module docstring for the contract.

    Fitted attributes
    -----------------
    user_map_, item_map_ : IdMap
        External ↔ internal ids of the training data.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items), float32
        The training interactions (used to filter seen items).
    """

    # ---- hooks for subclasses -------------------------------------------------------------------
    def _fit(self, data: Interactions, **fit_params) -> None:
        """Learn from ``data``; ``fit_params``: the fit-time arguments of the subclass's ``fit``."""
        raise NotImplementedError

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores (len(user_idx), n_items) float32 for internal user indices (int64)."""
        raise NotImplementedError

    def _score_history(self, item_idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Scores (n_items,) float32 for a new user who interacted with ``item_idx`` (int64) with ``weights``."""
        raise NotImplementedError

    def _score_similar(self, item_idx: np.ndarray) -> np.ndarray:
        """Similarity scores (len(item_idx), n_items) float32 of the query items to every item."""
        raise NotImplementedError

    def _get_state(self) -> dict:
        """Fitted arrays to save, beyond the id maps and ``user_items_``."""
        return {}

    def _set_state(self, arrays: dict) -> None:
        """Restore what ``_get_state`` returned."""

    # ---- fitting ------------------------------------------------------------------------------
    def fit(self, interactions, **fit_params):
        """Learn from ``interactions`` (an :class:`Interactions` or sparse (n_users, n_items)).

        Returns ``self``.

        ``fit_params`` (a subclass's fit-time arguments, e.g. LFM's ``callback``) go to ``_fit``
        unchanged: they belong to this call, never to the model."""
        data = as_interactions(interactions)
        if data.nnz == 0:
            raise ValueError(
                "interactions has no entries; a recall model needs at least one interaction"
            )
        if data.item_map.kind == "i" and data.item_map.contains(-1):
            raise ValueError(
                "item id -1 is the padding value of recommend's integer item ids, so "
                "it cannot be an item id of a recall model; map it to another id"
            )
        self._validate_params()
        self._fit(data, **fit_params)
        self.user_map_ = data.user_map
        self.item_map_ = data.item_map
        self.user_items_ = data.matrix
        return self

    def _validate_params(self) -> None:
        """Check hyper-parameters (called at the start of ``fit``); subclasses extend it."""
        if getattr(self, "n_threads", None) is not None:
            resolve_n_threads(self.n_threads)

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_map_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(interactions) first"
            )

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return len(self.user_map_)

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return len(self.item_map_)

    def _n_threads(self) -> int:
        return resolve_n_threads(getattr(self, "n_threads", None))

    # ---- the contract --------------------------------------------------------------------------
    def recommend(self, user_ids, k=10, *, filter_seen=True, filter_items=None, items=None):
        """Top-``k`` items for known users.

        Parameters
        ----------
        user_ids : scalar or array-like of external user ids
        k : int >= 1
        filter_seen : bool, default True
            Remove the items each user interacted with in the training data.
        filter_items : iterable of external item ids (array, list, set, ...), optional
            Never recommend these.
        items : iterable of external item ids, optional
            Recommend only among these (a whitelist).

        Returns
        -------
        item_ids : ndarray (k,) or (n_users, k)
            External item ids, best first; ``-1`` pads (``None`` for string ids and ids beyond
            int64).
        scores : ndarray (k,) or (n_users, k), float32
            Their scores; ``-inf`` pads.
        """
        self._check_fitted()
        k = self._check_k(k)
        scalar = np.ndim(user_ids) == 0
        user_idx = np.atleast_1d(
            np.asarray(self.user_map_.index(user_ids, name="user_id"), dtype=np.int64)
        )
        idx, val = self._topk_users(
            user_idx, k, filter_seen, self._global_mask(filter_items, items)
        )
        return self._finish(idx, val, scalar)

    def _topk_users(self, user_idx, k, filter_seen, mask):
        """Top-``k`` internal item indices and scores (len(user_idx), k) for internal users.

        The default scores dense blocks with ``_score_users`` and selects in C++. A subclass may
        override it with a fused kernel (never a dense block) that returns **the same** result:
        same scores, ties by lower index, exactly ``k`` columns padded with ``-1`` / ``-inf``.
        ``mask`` is a bool (n_items,) array (True = never recommend) or None.
        """
        exclude = (lambda rows: self.user_items_[rows]) if filter_seen else (lambda rows: None)
        return self._topk_in_blocks(user_idx, self._score_users, exclude, k, mask)

    def recommend_from_history(
        self, item_ids, weights=None, k=10, *, filter_seen=True, filter_items=None, items=None
    ):
        """Top-``k`` items for a new user who interacted with ``item_ids`` (fold-in, no refit).

        Parameters
        ----------
        item_ids : array-like of external item ids (may be empty: the model's cold-start answer)
        weights : array-like of float, same length, optional (default 1.0 each)
        filter_seen : bool, default True
            Remove the history items from the result.

        Returns
        -------
        item_ids : ndarray (k,), scores : ndarray (k,) float32
        """
        self._check_fitted()
        k = self._check_k(k)
        item_idx, w = history_indices(self.item_map_, item_ids, weights)
        scores = np.asarray(self._score_history(item_idx, w), dtype=np.float32).reshape(1, -1)
        exclude = None
        if filter_seen and len(item_idx):
            cols = np.unique(item_idx)
            exclude = sp.csr_matrix(
                (np.ones(len(cols), np.float32), cols, [0, len(cols)]), shape=(1, self.n_items_)
            )
        work = min(k, self.n_items_)  # the columns beyond the catalogue are padding
        idx, val = topk(
            scores,
            work,
            exclude=exclude,
            global_mask=self._global_mask(filter_items, items),
            n_threads=1,
        )
        if work < k:
            idx = np.concatenate([idx, np.full((1, k - work), -1, np.int64)], axis=1)
            val = np.concatenate([val, np.full((1, k - work), -np.inf, val.dtype)], axis=1)
        return self._finish(idx, val, scalar=True)

    def similar_items(self, item_ids, k=10, *, filter_items=None, items=None):
        """The ``k`` items most similar to each query item (the query item itself excluded).

        Returns
        -------
        item_ids : ndarray (k,) or (n_queries, k); scores : same shape, float32
        """
        self._check_fitted()
        k = self._check_k(k)
        scalar = np.ndim(item_ids) == 0
        query = np.atleast_1d(
            np.asarray(self.item_map_.index(item_ids, name="item_id"), dtype=np.int64)
        )

        def itself(rows):
            return sp.csr_matrix(
                (np.ones(len(rows), np.float32), rows, np.arange(len(rows) + 1)),
                shape=(len(rows), self.n_items_),
            )

        idx, val = self._topk_in_blocks(
            query, self._score_similar, itself, k, self._global_mask(filter_items, items)
        )
        return self._finish(idx, val, scalar)

    # ---- helpers -------------------------------------------------------------------------------
    def _topk_in_blocks(self, queries, score, exclude, k, mask):
        """Score ``queries`` in blocks of bounded memory and keep each row's top ``k``.

        ``score(rows)`` → (len(rows), n_items) scores; ``exclude(rows)`` → sparse rows to drop, or None.
        """
        block = max(1, SCORE_BLOCK_BYTES // (4 * max(1, self.n_items_)))
        out_idx = np.full((len(queries), k), -1, np.int64)
        out_val = np.full((len(queries), k), -np.inf, np.float32)
        work = min(k, self.n_items_)  # the columns beyond the catalogue are padding
        for start in range(0, len(queries), block):
            rows = queries[start : start + block]
            idx, val = topk(
                score(rows),
                work,
                exclude=exclude(rows),
                global_mask=mask,
                n_threads=self._n_threads(),
            )
            out_idx[start : start + len(rows), :work] = idx
            out_val[start : start + len(rows), :work] = val
        return out_idx, out_val

    def _global_mask(self, filter_items, items):
        if filter_items is None and items is None:
            return None
        n_items = self.n_items_
        if items is not None:
            mask = np.ones(n_items, dtype=bool)
            mask[self._known_item_indices(items, "items")] = False
        else:
            mask = np.zeros(n_items, dtype=bool)
        if filter_items is not None:
            mask[self._known_item_indices(filter_items, "filter_items")] = True
        return mask

    def _check_k(self, k) -> int:
        """``k`` as an int in ``[1, max(n_items_, MAX_PADDED_K)]``: more columns than the catalogue
        are only padding, so an absurd ``k`` is refused rather than allocated."""
        limit = max(self.n_items_, MAX_PADDED_K)
        k = check_int(k, "k", min_value=1)
        if k > limit:
            raise ValueError(
                f"k must be <= {limit} (the catalogue has {self.n_items_} items; "
                f"columns beyond it are only padding), got {k}"
            )
        return k

    def _known_item_indices(self, values, name: str) -> np.ndarray:
        values = as_id_collection(values, name)
        if values.size == 0:
            return np.empty(0, np.int64)
        known = values[self.item_map_.contains(values)]
        if known.size == 0:
            return np.empty(0, np.int64)
        return np.asarray(self.item_map_.index(known, name="item_id"), dtype=np.int64).reshape(-1)

    def _finish(self, idx: np.ndarray, val: np.ndarray, scalar: bool):
        ids = self.item_map_.ids
        valid = idx >= 0
        if ids.dtype.kind == "i":
            out = np.full(idx.shape, -1, dtype=np.int64)
            out[valid] = ids[idx[valid]]
        else:
            out = np.full(idx.shape, None, dtype=object)
            out[valid] = ids[idx[valid]]
        val = val.astype(np.float32, copy=False)
        if scalar:
            return out[0], val[0]
        return out, val

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, file) -> None:
        """Write the fitted model to ``file`` (path or binary file object): ``.npz`` + JSON, no pickle."""
        self._check_fitted()
        save_arrays(
            file, model_class=type(self).__name__, params=self.get_params(), arrays=self._arrays()
        )

    def _arrays(self) -> dict:
        """Every array :meth:`save` writes, by name: the ids, the training interactions
        ``user_items_*`` (CSR) and ``_get_state()``'s arrays."""
        ui = self.user_items_
        arrays = {
            "user_ids": self.user_map_.ids,
            "item_ids": self.item_map_.ids,
            "user_items_indptr": ui.indptr,
            "user_items_indices": ui.indices,
            "user_items_data": ui.data,
        }
        state = self._get_state()
        clash = set(state) & set(arrays)
        if clash:
            raise RuntimeError(f"state arrays {sorted(clash)} clash with the base arrays")
        arrays.update(state)
        return arrays

    @classmethod
    def load(cls, file):
        """Read a model written by :meth:`save`; a corrupt or foreign file raises ``ModelFileError``."""
        params, arrays, _ = load_arrays(file, expected_class=cls.__name__, required=_BASE_ARRAYS)
        return cls._from_arrays(params, arrays, file)

    @classmethod
    def _from_arrays(cls, params: dict, arrays, file=None):
        """The model of ``params`` and ``arrays`` (name → array, as :meth:`_arrays` gives them),
        every array checked as :meth:`load` checks a file's; errors name ``file``."""
        with model_file_errors(file, cls.__name__):
            arrays = ModelArrays.of(arrays, describe_file(file))
            missing = [name for name in _BASE_ARRAYS if name not in arrays]
            if missing:
                raise arrays.error(f"missing arrays {missing}")
            model = cls(**params)
            model._validate_params()
            user_map = IdMap(arrays.take("user_ids", kinds="iuU", pop=True))
            item_map = IdMap(arrays.take("item_ids", kinds="iuU", pop=True))
            matrix = arrays.csr("user_items", (len(user_map), len(item_map)), pop=True)
            if matrix.nnz == 0:
                raise arrays.error("the training interactions 'user_items' are empty")
            model.user_items_ = Interactions(matrix, user_map=user_map, item_map=item_map).matrix
            model.user_map_, model.item_map_ = user_map, item_map
            model._set_state(arrays)
        return model
