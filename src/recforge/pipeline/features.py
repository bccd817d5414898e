"""As-of features of (user, candidate item) pairs, in five groups.

* **user** — activity (events in total and per window), days since the last / first event, rating
  mean / spread, the mean popularity of the user's items (taste for the popular);
* **item** — popularity in total and per window, trend, age since its first event, days since its
  last event, rating mean, item features (genres);
* **context** — hour of day and day of week of the time the features are computed at;
* **user_item** — each source's score and rank (NaN where it missed), the number of sources, the
  fusion score, the candidate's ItemCF similarity and embedding cosine to the user's last items,
  the match of its genres with the user's time-decayed genre profile, and the sequence counts:
  how often the history's users took the candidate within ``sequence_window`` events after the
  user's last item (and after the last items, as shares of their transitions), and before it;
* **stats** — rates: the user's and the item's share of high-weight events, the item's popularity
  against the user's usual popularity.

Everything is computed from the history before the cut and only from events at or before each
row's ``as_of`` time, by the Numba kernels of :mod:`recforge.kernels.pipeline`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import Interactions

#: The feature groups, in column order.
GROUPS = ("user_item", "user", "item", "context", "stats")

#: The default ``sequence_window``: a pair (a, b) of one user's history counts as a transition
#: a -> b when b comes at most this many events after a.
SEQUENCE_WINDOW = 10

#: Columns the candidate kernel writes after the item and user-item ones: the sequence counts.
N_SEQUENCE_FEATURES = 4


def time_sorted_rows(indptr, indices, data, times):
    """Entries of a CSR sorted by time within each row: (items int64, times float64, weights float32)."""
    from ..kernels.segsort import segment_argsort

    order = segment_argsort(np.asarray(indptr, np.int64), np.asarray(times, np.float64))
    return (
        np.asarray(indices, np.int64)[order],
        np.asarray(times, np.float64)[order],
        np.asarray(data, np.float32)[order],
    )


class AsOfState:
    """The history the features read, arranged for the kernels (user-sorted and item-sorted by time).

    Parameters
    ----------
    history : Interactions with timestamps
    item_features : float32 (n_items, n_genres) or None
    genre_names : list of str
    high : float — a weight >= high is a "high" event
    sequence_window : int >= 0 — the reach of the transition counts (0: none, the sequence
        features are NaN)

    Attributes
    ----------
    transitions : (indptr int64 (n_items + 1,), indices int32, data float64, total float64
        (n_items,)) — the transition counts as a CSR with sorted rows (:func:`transition_counts`)
    """

    def __init__(
        self,
        history: Interactions,
        item_features=None,
        genre_names=(),
        high: float = np.inf,
        *,
        sequence_window: int = SEQUENCE_WINDOW,
    ):
        m = history.matrix
        self.n_users, self.n_items = m.shape
        self.h_indptr = np.asarray(m.indptr, np.int64)
        self.h_items, self.h_times, self.h_weights = time_sorted_rows(
            m.indptr, m.indices, m.data, history.timestamps
        )
        self.high = float(high)
        self.sequence_window = int(sequence_window)
        self._index_items()
        if item_features is None:
            self.genres = np.zeros((self.n_items, 0), np.float32)
        else:
            g = np.asarray(item_features, np.float32)
            norm = np.linalg.norm(g, axis=1, keepdims=True)
            self.genres = np.ascontiguousarray(g / np.where(norm > 0, norm, 1.0), np.float32)
        self.genre_names = list(genre_names)

    def _index_items(self):
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.h_indptr))
        order = np.lexsort((self.h_times, self.h_items))
        items = self.h_items[order]
        self.i_indptr = np.zeros(self.n_items + 1, np.int64)
        np.cumsum(np.bincount(items, minlength=self.n_items), out=self.i_indptr[1:])
        self.i_times = np.ascontiguousarray(self.h_times[order])
        w = self.h_weights[order].astype(np.float64)
        # per item: a leading 0 then the running sums, so item j's block is [indptr[j] + j, indptr[j+1] + j]
        self.i_cumw = _cumsum_per_item(self.i_indptr, w)
        self.i_cumhigh = _cumsum_per_item(self.i_indptr, (w >= self.high).astype(np.float64))
        del rows
        self.transitions = transition_counts(
            self.h_indptr, self.h_items, self.n_items, self.sequence_window
        )

    def arrays(self) -> dict:
        """What a model file stores to rebuild this state."""
        return {
            "h_indptr": self.h_indptr,
            "h_items": self.h_items,
            "h_times": self.h_times,
            "h_weights": self.h_weights,
            "genres": self.genres,
        }

    @classmethod
    def from_arrays(
        cls, arrays, n_users, n_items, genre_names, high, *, sequence_window=SEQUENCE_WINDOW
    ):
        """Rebuild from :meth:`arrays` as read (and checked) from a model file."""
        self = cls.__new__(cls)
        self.sequence_window = int(sequence_window)
        self.n_users, self.n_items = n_users, n_items
        self.h_indptr = arrays["h_indptr"]
        self.h_items, self.h_times, self.h_weights = (
            arrays["h_items"],
            arrays["h_times"],
            arrays["h_weights"],
        )
        self.genres = arrays["genres"]
        self.genre_names = list(genre_names)
        self.high = float(high)
        self._index_items()
        return self

    def rows_history(self, users: np.ndarray):
        """The time-sorted histories of internal ``users``: (indptr, items, times, weights) of the block."""
        starts, stops = self.h_indptr[users], self.h_indptr[users + 1]
        lengths = stops - starts
        indptr = np.zeros(len(users) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return indptr, self.h_items[take], self.h_times[take], self.h_weights[take]


def transition_counts(indptr, items, n_items: int, window: int):
    """How often one user's history goes from item a to item b within ``window`` events.

    Parameters
    ----------
    indptr : int64 (n_users + 1,); items : int64 — each user's items sorted by time
    n_items : int
    window : int >= 0 — b at most this many events after a (0: no transitions)

    Returns
    -------
    (indptr int64 (n_items + 1,), indices int32, data float64, total float64 (n_items,)):
    the counts as a CSR (row a, column b) with sorted column indices, and each row's sum;
    ``window=0``: an indptr of length 1 (the kernels then write NaN sequence features).

    Examples
    --------
    >>> import numpy as np
    >>> t = transition_counts(np.array([0, 3]), np.array([2, 0, 1]), 3, 1)
    >>> t[0].tolist(), t[1].tolist(), t[2].tolist(), t[3].tolist()
    ([0, 1, 1, 2], [1, 0], [1.0, 1.0], [1.0, 0.0, 1.0])
    """
    if int(window) == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros(n_items)
    indptr = np.asarray(indptr, np.int64)
    items = np.asarray(items, np.int64)
    user = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    counts = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for d in range(1, int(window) + 1):  # one offset at a time: memory of one pair list
        same = user[:-d] == user[d:]
        pairs = sp.csr_matrix(
            (np.ones(int(same.sum())), (items[:-d][same], items[d:][same])),
            shape=(n_items, n_items),
        )
        counts = counts + pairs
    counts.sum_duplicates()
    counts.sort_indices()
    total = np.asarray(counts.sum(axis=1), np.float64).reshape(-1)
    return (
        np.asarray(counts.indptr, np.int64),
        np.asarray(counts.indices, np.int32),
        np.asarray(counts.data, np.float64),
        total,
    )


def _cumsum_per_item(indptr, values):
    n_items = len(indptr) - 1
    out = np.zeros(len(values) + n_items, np.float64)
    pos = np.arange(len(values)) + np.repeat(np.arange(n_items), np.diff(indptr)) + 1
    out[pos] = values
    # running sum restarted at each item's leading zero
    csum = np.cumsum(out)
    starts = indptr[:-1] + np.arange(n_items)
    base = np.repeat(csum[starts], np.diff(indptr) + 1)
    return csum - base


def hour_and_weekday(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hour of the day, weekday) of float64 ``seconds`` since the epoch (UTC), float64 arrays of
    the same shape; weekday 0 = Monday."""
    hour = np.floor((seconds % 86400.0) / 3600.0)
    weekday = (np.floor(seconds / 86400.0) + 3) % 7  # 1970-01-01 was a Thursday
    return hour, weekday


def feature_names(source_names, windows, genre_names) -> tuple[list, list]:
    """Column names and their group, in the order :func:`build_features` writes them."""
    w = [f"{x:g}d" for x in windows]
    cols = []
    cols += [(f"{s}_score", "user_item") for s in source_names]
    cols += [(f"{s}_rank", "user_item") for s in source_names]
    cols += [("n_sources", "user_item"), ("rrf", "user_item")]
    cols += [("user_events", "user")] + [(f"user_events_{x}", "user") for x in w]
    cols += [
        ("user_days_since_last", "user"),
        ("user_days_since_first", "user"),
        ("user_rating_mean", "user"),
        ("user_rating_std", "user"),
        ("user_high_share", "stats"),
        ("user_mean_log_item_pop", "user"),
    ]
    cols += [("item_events", "item")] + [(f"item_events_{x}", "item") for x in w]
    trend = f"item_trend_{w[0]}_vs_{w[1]}" if len(w) >= 2 else "item_trend"
    cols += [
        (trend, "item"),
        ("item_age_days", "item"),
        ("item_days_since_last", "item"),
        ("item_rating_mean", "item"),
        ("item_high_share", "stats"),
    ]
    cols += [
        ("itemcf_sim_max", "user_item"),
        ("itemcf_sim_decayed_sum", "user_item"),
        ("itemcf_sim_mean", "user_item"),
        ("embedding_cos_max", "user_item"),
        ("embedding_cos_mean", "user_item"),
        ("genre_match", "user_item"),
    ]
    cols += [(f"item_genre_{g}", "item") for g in genre_names]
    cols += [
        ("context_hour", "context"),
        ("context_weekday", "context"),
        ("seq_next_last", "user_item"),
        ("seq_next_last_share", "user_item"),
        ("seq_next_decayed_share", "user_item"),
        ("seq_prev_last", "user_item"),
        ("item_log_pop_vs_user_taste", "stats"),
    ]
    return [c[0] for c in cols], [c[1] for c in cols]


def build_features(
    state: AsOfState,
    users,
    as_of,
    cands,
    *,
    windows,
    n_last,
    similarity=None,
    embeddings=None,
    decay=0.0,
    history=None,
    n_threads=1,
) -> np.ndarray:
    """The feature matrix of one block of candidates, float32 (n_candidates, n_features), NaN = missing.

    Parameters
    ----------
    state : AsOfState — the history before the cut
    users : int64 (n_rows,) — internal user of each candidate row block (ignored with ``history``)
    as_of : float64 (n_rows,) — the time each row's features are computed at
    cands : Candidates of the block
    windows : float64 — window lengths in days
    n_last : int — how many of the user's last items the similarities look at
    similarity : CSR (n_items, n_items) with sorted indices, or None
    embeddings : float32 (n_items, d) L2-normalised rows, or None
    decay : per-day decay of the genre profile
    history : (indptr, items, times, weights) — the rows' histories instead of the users' in ``state``
    n_threads : int — threads of the kernels (the result does not depend on it)
    """
    from ..kernels.pipeline import candidate_features, user_features

    win = np.asarray(windows, np.float64) * 86400.0
    as_of = np.ascontiguousarray(as_of, np.float64)
    if history is None:
        history = state.rows_history(np.asarray(users, np.int64))
    h_indptr, h_items, h_times, h_weights = history
    n_rows = len(as_of)
    n_g = state.genres.shape[1]
    uf = np.empty((n_rows, 7 + len(win)), np.float32)
    profile = np.zeros((n_rows, n_g), np.float32)
    user_features(
        h_indptr,
        h_items,
        h_times,
        h_weights,
        as_of,
        win,
        state.high,
        state.i_indptr,
        state.i_times,
        state.genres,
        float(decay),
        uf,
        profile,
        n_threads=n_threads,
    )
    n = len(cands.items)
    cf = np.empty((n, 12 + len(win) + N_SEQUENCE_FEATURES), np.float32)
    if similarity is None:
        s_indptr, s_indices, s_data = (
            np.zeros(1, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
        )
    else:  # one kernel signature (the one warmup compiles), whatever scipy's index dtype
        s_indptr = np.asarray(similarity.indptr, np.int64)
        s_indices = np.asarray(similarity.indices, np.int32)
        s_data = np.asarray(similarity.data, np.float32)
    emb = np.zeros((state.n_items, 0), np.float32) if embeddings is None else embeddings
    candidate_features(
        cands.offsets,
        cands.items,
        h_indptr,
        h_items,
        h_times,
        as_of,
        win,
        state.high,
        state.i_indptr,
        state.i_times,
        state.i_cumw,
        state.i_cumhigh,
        int(n_last),
        s_indptr,
        s_indices,
        s_data,
        emb,
        state.genres,
        profile,
        *state.transitions,
        cf,
        n_threads=n_threads,
    )
    rows = cands.rows()
    hour, weekday = hour_and_weekday(as_of[rows])
    user_block = uf[rows]
    log_pop_vs_taste = np.log1p(cf[:, 0]) - user_block[:, 6 + len(win)]
    n_item_num = 6 + len(win)
    n_user_item = n_item_num + 6
    return np.hstack(
        [
            cands.source_scores,
            cands.source_ranks,
            cands.n_sources[:, None],
            cands.rrf[:, None],
            user_block,
            cf[:, :n_item_num],
            cf[:, n_item_num:n_user_item],
            state.genres[cands.items] > 0 if n_g else np.zeros((n, 0), np.float32),
            hour[:, None],
            weekday[:, None],
            cf[:, n_user_item:],
            log_pop_vs_taste[:, None],
        ]
    ).astype(np.float32, copy=False)


def prepare_similarity(model):
    """A source's item–item similarity as a CSR with sorted indices (its ``similarity_``), or None."""
    sim = getattr(model, "similarity_", None)
    if sim is None or not sp.issparse(sim) or sim.shape[0] != sim.shape[1]:
        return None
    sim = sp.csr_matrix(sim)
    if not sim.has_sorted_indices:
        sim = sim.sorted_indices()
    return sim


def prepare_embeddings(model):
    """A source's item vectors (``item_vectors_`` or ``item_factors_``) with unit rows, or None."""
    vec = getattr(model, "item_vectors_", None)
    if vec is None:
        vec = getattr(model, "item_factors_", None)
    if vec is None:
        return None
    vec = np.asarray(vec, np.float32)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.ascontiguousarray(vec / np.where(norm > 0, norm, 1.0), np.float32)
