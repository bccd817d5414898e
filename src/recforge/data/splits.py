"""Offline train/test splits of an :class:`Interactions`, per user.

Every split returns ``(train, test)`` with the SAME ``user_map`` / ``item_map`` objects and shape
as the input, so internal indices mean the same thing on both sides. Each entry goes to exactly
one side; weights and timestamps travel with it.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int, check_random_state
from ._segsort import order_within_rows
from .interactions import Interactions


def _check_interactions(interactions) -> Interactions:
    if not isinstance(interactions, Interactions):
        raise TypeError(
            f"interactions must be a recforge.data.Interactions, got {type(interactions).__name__}"
        )
    return interactions


def _time_order(interactions: Interactions, func: str) -> np.ndarray:
    """Permutation ordering the entries by (user, timestamp, item index)."""
    if interactions.timestamps is None:
        raise ValueError(
            f"{func} needs timestamps; interactions has none (use random_split, or build "
            "it with timestamps=... / timestamp_col=...)"
        )
    # the sort is stable and entries are item-sorted inside each row: timestamp ties -> item index
    return order_within_rows(interactions._indptr, interactions.timestamps)


def _split_last(
    interactions: Interactions, order: np.ndarray, n_test: np.ndarray
) -> tuple[Interactions, Interactions]:
    """Send the last ``n_test[u]`` entries of each user (in ``order``) to test."""
    indptr = interactions._indptr.astype(np.int64)
    # ``order`` only permutes entries inside their row, so sorted position p holds an entry of the
    # same row as stored position p: it goes to test iff p >= (row end - n_test[row])
    cut = np.repeat(indptr[1:] - n_test, np.diff(indptr))
    test_mask = np.zeros(order.size, dtype=bool)
    test_mask[order[np.arange(order.size, dtype=np.int64) >= cut]] = True
    return interactions._subset(~test_mask), interactions._subset(test_mask)


def _check_fraction_split(interactions, test_fraction, min_interactions):
    """The checked arguments of a split by fraction: (Interactions, float in (0, 1), int >= 1)."""
    interactions = _check_interactions(interactions)
    test_fraction = check_float(
        test_fraction,
        "test_fraction",
        min_value=0.0,
        max_value=1.0,
        min_inclusive=False,
        max_inclusive=False,
    )
    min_interactions = check_int(min_interactions, "min_interactions", min_value=1)
    return interactions, test_fraction, min_interactions


def _fraction_counts(counts: np.ndarray, test_fraction: float, min_interactions: int) -> np.ndarray:
    # round() first so that e.g. 15 * 0.2 = 3.0000000000000004 does not ceil to 4
    n_test = np.ceil(np.round(counts * test_fraction, 9)).astype(np.int64)
    n_test[counts < min_interactions] = 0
    return n_test


def temporal_split(interactions, test_fraction: float = 0.2, min_interactions: int = 5):
    """Per user, the most recent ``ceil(n * test_fraction)`` entries go to test.

    Each user's entries are ordered by (timestamp, item index). A user with
    ``n >= min_interactions`` entries sends the last ``ceil(n * test_fraction)`` to test; users
    with fewer stay train-only. This is the protocol of ``evaluate_recall`` (ANCHORS.md).

    Parameters
    ----------
    interactions : Interactions
        Must have timestamps.
    test_fraction : float in (0, 1), default 0.2
    min_interactions : int >= 1, default 5

    Returns
    -------
    train, test : Interactions
        Same id maps and shape as ``interactions``; ``train.nnz + test.nnz == interactions.nnz``.

    Raises
    ------
    ValueError
        If ``interactions`` has no timestamps or an argument is out of range.

    Examples
    --------
    >>> from recforge.data import temporal_split
    >>> from recforge.datasets import movielens_small
    >>> positives = movielens_small().interactions(min_rating=4.0)
    >>> train, test = temporal_split(positives, test_fraction=0.2, min_interactions=5)
    >>> train.nnz, test.nnz, int((test.user_activity() > 0).sum())
    (38620, 9960, 603)
    """
    interactions, test_fraction, min_interactions = _check_fraction_split(
        interactions, test_fraction, min_interactions
    )
    order = _time_order(interactions, "temporal_split")
    n_test = _fraction_counts(interactions.user_activity(), test_fraction, min_interactions)
    return _split_last(interactions, order, n_test)


def leave_last_k_split(interactions, k: int = 1, min_interactions: int = 2):
    """Per user, the ``k`` most recent entries go to test.

    Ordering as in :func:`temporal_split`. Users with fewer than ``min_interactions`` entries stay
    train-only; if ``min_interactions <= k``, a user with ``n <= k`` entries has all of them in test.

    Parameters
    ----------
    interactions : Interactions
        Must have timestamps.
    k : int >= 1, default 1
    min_interactions : int >= 1, default 2

    Returns
    -------
    train, test : Interactions
        Same id maps and shape as ``interactions``.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.data import Interactions, leave_last_k_split
    >>> x = Interactions.from_arrays([1, 1, 1, 2], [10, 20, 30, 10], timestamps=[3, 1, 2, 5])
    >>> train, test = leave_last_k_split(x, k=1, min_interactions=2)
    >>> test.to_dataframe()[["user_id", "item_id"]].values.tolist()
    [[1, 10]]
    """
    interactions = _check_interactions(interactions)
    k = check_int(k, "k", min_value=1)
    min_interactions = check_int(min_interactions, "min_interactions", min_value=1)
    order = _time_order(interactions, "leave_last_k_split")
    counts = interactions.user_activity()
    n_test = np.where(counts >= min_interactions, np.minimum(counts, k), 0)
    return _split_last(interactions, order, n_test)


def random_split(
    interactions, test_fraction: float = 0.2, min_interactions: int = 5, random_state=None
):
    """Per user, ``ceil(n * test_fraction)`` entries drawn at random go to test.

    Users with fewer than ``min_interactions`` entries stay train-only. Timestamps are not needed
    (and travel with their entries when present).

    Parameters
    ----------
    interactions : Interactions
    test_fraction : float in (0, 1), default 0.2
    min_interactions : int >= 1, default 5
    random_state : None, int or numpy.random.Generator
        The same int always gives the same split.

    Returns
    -------
    train, test : Interactions
        Same id maps and shape as ``interactions``.

    Examples
    --------
    >>> from recforge.data import random_split, synthetic_interactions
    >>> x = synthetic_interactions(100, 50, 2_000, seed=0)
    >>> a, _ = random_split(x, random_state=1)
    >>> b, _ = random_split(x, random_state=1)
    >>> bool((a.matrix != b.matrix).nnz == 0)
    True
    """
    interactions, test_fraction, min_interactions = _check_fraction_split(
        interactions, test_fraction, min_interactions
    )
    rng = check_random_state(random_state)
    order = order_within_rows(interactions._indptr, rng.random(interactions.nnz))
    n_test = _fraction_counts(interactions.user_activity(), test_fraction, min_interactions)
    return _split_last(interactions, order, n_test)
