"""Offline evaluation of a recall model on a train/test split (the protocol of ANCHORS.md).

Protocol of :func:`evaluate_recall`:

1. ``train`` and ``test`` must share their user and item id maps (the splits in
   :mod:`recforge.data` guarantee it).
2. Evaluated users: test users (at least one stored test entry) that also have at least one
   train entry. Test users without any train entry (cold users) are *skipped* and counted in
   ``n_users_skipped``; they do not enter the means.
3. Item universe: items with at least one stored train entry. Test items outside it still count
   in the recall/NDCG denominators (a ceiling on recall, as in a real deployment).
4. Full ranking: ``model.recommend(user_ids, k=k, filter_seen=True, items=universe_ids)`` is
   called for batches of users through the public contract (external ids in and out).
5. Leak guard: a returned item that is one of the user's train items, or outside the universe,
   never counts: it is treated as a miss in its slot (and not as covered).
6. precision / recall / NDCG / hit rate @k as in :mod:`recforge.metrics` (means over evaluated
   users); coverage = distinct recommended items / size of the universe.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ._progress import progress
from ._validation import check_int
from .kernels.ranking import hit_matrix
from .metrics import _check_recommended, _relevant_structure, coverage_at_k, ranking_metrics

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .data import Interactions
    from .recall.base import RecallModel

__all__ = ["RecallReport", "evaluate_recall"]


@dataclasses.dataclass(frozen=True)
class RecallReport:
    """Result of :func:`evaluate_recall`.

    Attributes
    ----------
    precision, recall, ndcg, hit_rate : float
        Means @k over the evaluated users, each in [0, 1].
    coverage : float
        Distinct recommended items / ``n_items_universe``, in [0, 1].
    k : int
        Cut-off.
    n_users_evaluated : int
        Test users with at least one train entry (the users averaged over).
    n_users_skipped : int
        Test users with no train entry (cold users), left out of the means.
    n_items_universe : int
        Items with at least one train entry (the candidates the model ranked).
    """

    precision: float
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    k: int
    n_users_evaluated: int
    n_users_skipped: int
    n_items_universe: int

    def as_dict(self) -> dict:
        """All fields as a plain ``dict`` (JSON-serialisable Python floats/ints)."""
        return dataclasses.asdict(self)


def _check_split_part(obj, name: str):
    for attr in ("matrix", "user_map", "item_map"):
        if not hasattr(obj, attr):
            raise TypeError(
                f"{name} must be a recforge.data.Interactions (with .matrix, .user_map "
                f"and .item_map), got {type(obj).__name__} without .{attr}"
            )
    matrix = obj.matrix
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise TypeError(
            f"{name}.matrix must be a 2-D scipy sparse matrix, got {type(matrix).__name__}"
        )
    return matrix.tocsr()


def _padding_mask(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Padding slots: score ``-inf``, or id ``-1`` (integer ids) / ``None`` (other ids)."""
    mask = np.isneginf(scores)
    if ids.dtype.kind in "iu":
        mask |= ids == -1
    elif ids.dtype == object:
        mask |= np.equal(ids, None)
    return mask


def _recommend_batch(model, ext_users, k, universe_ext, item_map, n_items):
    """Call the public recommend contract and map the result to internal item indices."""
    out = model.recommend(ext_users, k=k, filter_seen=True, items=universe_ext)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            f"model.recommend must return a tuple (item_ids, scores), got {type(out).__name__}"
        )
    ids, scores = np.asarray(out[0]), np.asarray(out[1])
    expected = (len(ext_users), k)
    if ids.shape != expected or scores.shape != expected:
        raise ValueError(
            f"model.recommend returned item_ids of shape {ids.shape} and scores of "
            f"shape {scores.shape} for {len(ext_users)} users and k={k}; "
            f"expected {expected} (exactly k columns, padded with -1 / -inf)"
        )
    if scores.dtype.kind not in "biuf":
        raise TypeError(
            f"model.recommend returned scores of dtype {scores.dtype}; expected a float array"
        )
    pad = _padding_mask(ids, scores)
    internal = np.full(expected, -1, dtype=np.int64)
    if (~pad).any():
        internal[~pad] = item_map.index(ids[~pad], name="item")
    return _check_recommended(
        internal,
        "model.recommend item ids (as internal indices)",
        n_items=n_items,
        items_name="n_items of train",
    )


def _recommend_unseen(
    model, train, train_csr, eval_users, k, in_universe, batch_size, on_batch=None
):
    """Top-k internal item indices of ``eval_users`` through the public recommend contract.

    ``train``: its id maps; ``train_csr``: its matrix, CSR (n_users, n_items); ``eval_users``:
    int64 (n,) internal user indices; ``in_universe``: bool (n_items,), the items that may be
    recommended. Returns int64 (n, k): ``-1`` for padding and, the leak guard, for a user's own
    train items and items outside the universe (those never count as hits). Asks ``batch_size``
    users per ``recommend`` call and calls ``on_batch(n_users_in_batch)`` after each.
    """
    n_items = train_csr.shape[1]
    universe_ext = train.item_map.ids[in_universe]
    user_ids = train.user_map.ids
    seen_indptr, seen_indices, _ = _relevant_structure(
        train_csr[eval_users], eval_users.size, name="train", rows_name="users"
    )
    recommended = np.empty((eval_users.size, k), dtype=np.int64)
    for start in range(0, eval_users.size, batch_size):
        stop = min(start + batch_size, eval_users.size)
        rec = _recommend_batch(
            model, user_ids[eval_users[start:stop]], k, universe_ext, train.item_map, n_items
        )
        seen = hit_matrix(
            rec,
            seen_indptr[start : stop + 1] - seen_indptr[start],
            seen_indices[seen_indptr[start] : seen_indptr[stop]],
        )
        outside = (rec >= 0) & ~in_universe[np.maximum(rec, 0)]
        rec[seen | outside] = -1
        recommended[start:stop] = rec
        if on_batch is not None:
            on_batch(stop - start)
    return recommended


def evaluate_recall(
    model: RecallModel,
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    users: ArrayLike | None = None,
    batch_size: int = 1024,
    show_progress: bool = False,
) -> RecallReport:
    """Evaluate a fitted recall model with full ranking over the train item universe.

    Parameters
    ----------
    model : object
        A fitted recall model following the recommend contract of :mod:`recforge.recall.base`:
        ``model.recommend(user_ids, k=k, filter_seen=True, items=item_ids)`` with external ids,
        returning ``(item_ids, scores)`` of shape (n, k), padded with ``-1`` (``None`` for
        non-integer ids) / ``-inf``.
        It should be fitted on ``train``.
    train, test : recforge.data.Interactions
        A split with identical id maps (``user_map``, ``item_map``) and shape. Only their
        ``matrix`` (CSR of shape (n_users, n_items)), ``user_map`` and ``item_map`` are used;
        stored entries (explicit zeros included) are interactions / relevant items.
    k : int >= 1, default 10
        Cut-off.
    users : array-like of external user ids, optional
        Evaluate only these users (unique, all known; unknown ids raise ``KeyError``). Those
        without test entries are ignored; those without train entries are skipped (counted).
        Default: every test user.
    batch_size : int >= 1, default 1024
        Users per ``recommend`` call; memory O(batch_size x n_items) inside the model. The
        result does not depend on it.
    show_progress : bool, default False
        Show a tqdm progress bar over users.

    Returns
    -------
    RecallReport
        precision, recall, ndcg, hit_rate, coverage, k, n_users_evaluated, n_users_skipped,
        n_items_universe. See the module docstring for the exact protocol.

    Raises
    ------
    TypeError
        ``model`` has no ``recommend`` method, or ``train``/``test`` are not Interactions-like.
    ValueError
        Different id maps or shapes; no user to evaluate; an empty train universe; a
        ``recommend`` result of the wrong shape or with repeated items in a row.
    KeyError
        ``users`` holds an unknown user id, or the model returned an unknown item id.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.evaluate import evaluate_recall
    >>> from recforge.data import Interactions
    >>> train = Interactions(sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0]])))
    >>> test = Interactions(sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0]])))
    >>> class MostPopular:  # any object with the recommend contract works
    ...     def recommend(self, user_ids, k=10, filter_seen=True, items=None):
    ...         ids = np.array([[2, 0] if u == 0 else [0, -1] for u in user_ids])[:, :k]
    ...         return ids, np.where(ids >= 0, 1.0, -np.inf)
    >>> report = evaluate_recall(MostPopular(), train, test, k=2)
    >>> report.precision, report.recall, report.hit_rate, report.n_users_evaluated
    (0.5, 1.0, 1.0, 2)
    """
    if not callable(getattr(model, "recommend", None)):
        raise TypeError(
            f"model must have a recommend(user_ids, k, filter_seen, items) method, "
            f"got {type(model).__name__}"
        )
    train_csr = _check_split_part(train, "train")
    test_csr = _check_split_part(test, "test")
    if not bool(train.user_map == test.user_map):
        raise ValueError(
            "train and test have different user id maps; build them with one split "
            "(recforge.data.temporal_split etc.) so users are indexed identically"
        )
    if not bool(train.item_map == test.item_map):
        raise ValueError(
            "train and test have different item id maps; build them with one split "
            "(recforge.data.temporal_split etc.) so items are indexed identically"
        )
    if train_csr.shape != test_csr.shape:
        raise ValueError(f"train has shape {train_csr.shape} but test has shape {test_csr.shape}")
    k = check_int(k, "k", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_users, n_items = train_csr.shape

    train_count = np.diff(train_csr.indptr)
    test_count = np.diff(test_csr.indptr)
    if users is None:
        candidates = np.arange(n_users, dtype=np.int64)
    else:
        ext = np.atleast_1d(np.asarray(users))
        if ext.ndim != 1:
            raise ValueError(f"users must be 1-D, got shape {ext.shape}")
        candidates = np.atleast_1d(
            np.asarray(train.user_map.index(ext, name="user"), dtype=np.int64)
        )
        uniq, counts = np.unique(candidates, return_counts=True)
        if (counts > 1).any():
            dup = train.user_map.ids[uniq[counts > 1][0]]
            raise ValueError(
                f"users has duplicated user id {dup!r} ({int((counts > 1).sum())} duplicated id(s))"
            )
    test_users = candidates[test_count[candidates] > 0]
    cold = train_count[test_users] == 0
    eval_users = test_users[~cold]
    n_skipped = int(cold.sum())

    in_universe = np.zeros(n_items, dtype=np.bool_)
    in_universe[train_csr.indices[: train_csr.indptr[-1]]] = True
    universe = np.flatnonzero(in_universe)
    if universe.size == 0:
        raise ValueError("train has no interaction; the item universe is empty")
    if eval_users.size == 0:
        raise ValueError(
            f"test has no user with both a test entry and a train entry to evaluate "
            f"({n_skipped} cold test user(s) skipped)"
        )
    with progress(
        show_progress, total=int(eval_users.size), desc="evaluate_recall", unit="user"
    ) as bar:
        recommended = _recommend_unseen(
            model,
            train,
            train_csr,
            eval_users,
            k,
            in_universe,
            batch_size,
            on_batch=None if bar is None else bar.update,
        )

    metrics = ranking_metrics(recommended, test_csr[eval_users], k=k)
    position = np.full(n_items, -1, dtype=np.int64)
    position[universe] = np.arange(universe.size)
    coverage = coverage_at_k(
        np.where(recommended >= 0, position[np.maximum(recommended, 0)], -1), universe.size, k=k
    )
    return RecallReport(
        precision=metrics["precision"],
        recall=metrics["recall"],
        ndcg=metrics["ndcg"],
        hit_rate=metrics["hit_rate"],
        coverage=coverage,
        k=k,
        n_users_evaluated=int(eval_users.size),
        n_users_skipped=n_skipped,
        n_items_universe=int(universe.size),
    )
