"""Labels without leakage: cut each user's history in time, label the candidates by what came after.

Two cuts are offered:

* ``"last"`` — per user, the last ``fraction`` of the events (by time, ties by item index) lies
  after the cut (:func:`recforge.data.temporal_split`); the user's features are computed as of
  the last event before the cut.
* ``"window"`` — one global time ``T`` (default ``max time - window``): the events in
  ``[T, T + window)`` are the labels; every user's features are computed as of ``T``.

The recall sources and the features only ever see the part before the cut; a candidate's label is
whether the user interacted with it after the cut (or, with an impression log, whether a later
impression of it was clicked).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from .._validation import check_choice, check_float, check_int, check_random_state
from ..data import Interactions, temporal_split

SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass
class Cut:
    """A history / future split of one Interactions (same id maps and shape).

    Attributes
    ----------
    history, future : Interactions
    as_of : float64 (n_users,)
        The time each user's features are computed at.
    """

    history: Interactions
    future: Interactions
    as_of: np.ndarray


def entries_where(data: Interactions, mask: np.ndarray) -> Interactions:
    """The entries of ``data`` where ``mask`` (bool, aligned with ``data.matrix.data``) holds; same maps."""
    m = data.matrix
    kept_before = np.zeros(len(mask) + 1, np.int64)
    np.cumsum(mask, out=kept_before[1:])
    indptr = kept_before[m.indptr]
    matrix = sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
    ts = None if data.timestamps is None else data.timestamps[mask]
    return Interactions(matrix, timestamps=ts, user_map=data.user_map, item_map=data.item_map)


def last_event_times(data: Interactions, default: float) -> np.ndarray:
    """Each user's latest timestamp, float64 (n_users,); ``default`` for users without events."""
    m = data.matrix
    out = np.full(m.shape[0], default, np.float64)
    has = np.diff(m.indptr) > 0
    if has.any():
        last = np.maximum.reduceat(data.timestamps, m.indptr[:-1][has])
        out[has] = last
    return out


def cut_history(
    data: Interactions,
    *,
    cut: str = "last",
    fraction: float = 0.2,
    window: float | None = None,
    cut_time: float | None = None,
    min_interactions: int = 2,
) -> Cut:
    """Split ``data`` into the part before the cut and the part after it.

    Parameters
    ----------
    data : Interactions with timestamps (seconds)
    cut : {"last", "window"}
    fraction : float in (0, 1) — for ``"last"``: each user's share of events after the cut
    window : float > 0 — for ``"window"``: the label window in days; the part after the cut is
        ``[cut_time, cut_time + window)``
    cut_time : float, optional — for ``"window"``: the cut (seconds); default ``max time - window``
    min_interactions : int >= 2 — for ``"last"``: users with fewer events are left uncut (history only)

    Returns
    -------
    Cut

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.data import Interactions
    >>> data = Interactions(sp.csr_matrix(np.ones((1, 4))), timestamps=[0, 86400, 2 * 86400, 3 * 86400])
    >>> c = cut_history(data, cut="window", window=1.5)
    >>> c.history.nnz, c.future.nnz, c.as_of.tolist()
    (2, 2, [129600.0])
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be a recforge.data.Interactions, got {type(data).__name__}")
    if data.timestamps is None:
        raise ValueError(
            "data has no timestamps; the pipeline cuts each history in time "
            "(build it with Interactions.from_dataframe(..., timestamp_col=...))"
        )
    cut = check_choice(cut, "cut", {"last", "window"})
    if data.nnz == 0:
        raise ValueError("data has no entries")
    if cut == "last":
        fraction = check_float(
            fraction,
            "fraction",
            min_value=0.0,
            max_value=1.0,
            min_inclusive=False,
            max_inclusive=False,
        )
        min_interactions = check_int(min_interactions, "min_interactions", min_value=2)
        history, future = temporal_split(
            data, test_fraction=fraction, min_interactions=min_interactions
        )
        as_of = last_event_times(
            history, default=float(history.timestamps.max()) if history.nnz else 0.0
        )
        return Cut(history, future, as_of)
    if window is None:
        raise ValueError("cut='window' needs window= (the label window in days)")
    window = check_float(window, "window", min_value=0.0, min_inclusive=False)
    ts = data.timestamps
    if cut_time is None:
        at = float(ts.max()) - window * SECONDS_PER_DAY
    else:
        at = check_float(cut_time, "cut_time")
    before = ts < at
    if not before.any():
        raise ValueError(f"the cut at {at} leaves no event before it")
    after = ts >= at
    if cut_time is not None:  # the default window ends with the data, its last event included
        after &= ts < at + window * SECONDS_PER_DAY
    return Cut(entries_where(data, before), entries_where(data, after), np.full(data.n_users, at))


def label_candidates(rows_users: np.ndarray, items: np.ndarray, future: Interactions) -> np.ndarray:
    """1 where the user interacted with the candidate item after the cut, else 0: int8 (n,)."""
    n_items = future.n_items
    m = future.matrix
    fut_keys = (
        np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_items + m.indices
    )
    return np.isin(rows_users * n_items + items, fut_keys).astype(np.int8)


def label_from_impressions(rows_users, items, impressions, cut_times, user_map, item_map):
    """Labels from an impression log after each user's cut: (labels int8 (n,), labelled bool (n,)).

    ``impressions``: a DataFrame with columns ``user``, ``item``, ``clicked`` (0/1) and ``time``
    (seconds). A candidate shown after the user's cut is labelled 1 if any such impression was
    clicked, else 0; candidates never shown after the cut stay unlabelled (dropped from training).
    Impressions of unknown users or items are ignored.
    """
    missing = {"user", "item", "clicked", "time"} - set(getattr(impressions, "columns", []))
    if missing:
        raise ValueError(
            f"impressions must be a DataFrame with columns user, item, clicked, time; "
            f"missing {sorted(missing)}"
        )
    users = impressions["user"].to_numpy()
    imp_items = impressions["item"].to_numpy()
    known = np.asarray(user_map.contains(users), bool) & np.asarray(
        item_map.contains(imp_items), bool
    )
    if not known.any():
        return np.zeros(len(items), np.int8), np.zeros(len(items), bool)
    u = np.asarray(user_map.index(users[known], name="impressions user"), np.int64).reshape(-1)
    i = np.asarray(item_map.index(imp_items[known], name="impressions item"), np.int64).reshape(-1)
    t = np.asarray(impressions["time"].to_numpy()[known], np.float64)
    clicked = np.asarray(impressions["clicked"].to_numpy()[known], np.float64)
    if not np.isin(clicked, (0.0, 1.0)).all():
        raise ValueError("impressions['clicked'] must be 0/1")
    after = t >= cut_times[u]
    n_items = len(item_map)
    keys = u[after] * n_items + i[after]
    order = np.argsort(keys, kind="stable")
    keys, clicked = keys[order], clicked[after][order]
    cand = rows_users * n_items + items
    labels = np.zeros(len(cand), np.int8)
    if len(keys) == 0:
        return labels, np.zeros(len(cand), bool)
    uniq, start = np.unique(keys, return_index=True)
    any_click = np.maximum.reduceat(clicked, start)
    pos = np.minimum(np.searchsorted(uniq, cand), len(uniq) - 1)
    labelled = uniq[pos] == cand
    labels[labelled] = any_click[pos[labelled]].astype(np.int8)
    return labels, labelled


def sampling_keys(seed: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float64 (n,) in [0, 1): a random key per (user, item) that depends on ``seed`` and the pair
    only (SplitMix64 of the seed, the user and the item index).

    The negatives a user keeps are then the same whatever the blocks or partitions the user's
    candidates are built in: one machine and a cluster sample alike.
    """
    users = np.asarray(users, np.int64).astype(np.uint64)
    items = np.asarray(items, np.int64).astype(np.uint64)
    seeded = _splitmix64(np.full(len(users), int(seed) & 0xFFFFFFFFFFFFFFFF, np.uint64) ^ users)
    bits = _splitmix64(seeded ^ items) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0**-53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_negatives(
    rows: np.ndarray, labels: np.ndarray, per_user, random_state=None, *, keys=None
) -> np.ndarray:
    """Keep every positive and at most ``per_user`` random negatives of each row: bool mask (n,).

    ``rows`` must be sorted (the candidates of a row are contiguous). ``per_user=None`` keeps all.
    ``keys`` (float64 (n,), e.g. :func:`sampling_keys`) orders each row's negatives instead of
    draws from ``random_state``: the negatives with the smallest keys are kept.
    """
    keep = np.ones(len(rows), bool)
    if per_user is None or len(rows) == 0:
        return keep
    per_user = check_int(per_user, "negatives_per_user", min_value=1)
    if keys is None:
        keys = check_random_state(random_state).random(len(rows))
    elif len(keys) != len(rows):
        raise ValueError(f"keys has {len(keys)} entries, rows {len(rows)}")
    neg = labels == 0
    # within each row: positives first, then the negatives in key order; keep per_user of them
    order = np.lexsort((keys, neg, rows))
    sorted_rows = rows[order]
    position = np.arange(len(rows)) - np.searchsorted(sorted_rows, sorted_rows, side="left")
    n_pos = np.bincount(rows, weights=~neg, minlength=int(rows.max()) + 1).astype(np.int64)
    drop = neg[order] & (position - n_pos[sorted_rows] >= per_user)
    keep[order[drop]] = False
    return keep


@dataclasses.dataclass
class SampledRows:
    """Which of a block's labelled candidates the ranker's training set keeps (bool (n,) each).

    Attributes
    ----------
    keep : the rows kept at all: ``in_sample`` plus every row of a held-out user
    in_sample : the rows the negative sampling keeps (what the final ranker learns from)
    complete : the rows of the users none of whose candidates were dropped
    """

    keep: np.ndarray
    in_sample: np.ndarray
    complete: np.ndarray


def sample_training_rows(rows, users, items, labels, held, per_user, seed) -> SampledRows:
    """Sample one block's candidates for the ranker: every positive, ``per_user`` negatives keyed
    by (``seed``, user, item) (:func:`sampling_keys`), and all the rows of the held-out users.

    ``rows`` int64 (n,) sorted, the block's row (user) of each candidate; ``users`` / ``items``
    int64 (n,) the internal user and item indices; ``labels`` 0/1 (n,); ``held`` bool (n,).
    The result depends on the users' candidates only, not on how users are grouped in blocks.
    """
    rows = np.asarray(rows, np.int64)
    keys = None if per_user is None else sampling_keys(seed, users, items)
    in_sample = sample_negatives(rows, labels, per_user, keys=keys)
    sampled = in_sample | held
    n_rows = int(rows.max()) + 1 if len(rows) else 0
    complete = np.bincount(rows[~sampled], minlength=n_rows)[rows] == 0
    return SampledRows(keep=sampled, in_sample=in_sample, complete=complete)


def negatives_seed(rng) -> int:
    """The seed of :func:`sampling_keys`, drawn from the pipeline's generator right after the
    training users are sampled (one machine and a cluster draw it at the same point)."""
    return int(check_random_state(rng).integers(2**31 - 1))
