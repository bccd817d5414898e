"""The staged request path of a served model: recall per source, merge, features, rank, top-k.

A :class:`RequestPlan` is built once at load from a fitted model and answers one user at a time
with what the model's own ``recommend`` / ``recommend_from_history`` return (the equality tests
hold it to that), timing each stage. Everything a request reads is prepared at load and never
changed afterwards, so many threads share one plan: ids are looked up in C++ hash maps
(:class:`~recforge.serving._fastpath.IdIndex`); the embedding sources score with their item
vectors transposed (one compiled pass per request), popularity walks its precomputed order; the
merge, the feature rows (from the user table computed at load and the item tables of
:class:`~recforge.serving._fastpath.FeatureTables`) and the GBDT ranker's trees
(:class:`~recforge.serving._fastpath.TreeScorer`, ``tree_predict.hpp``) run compiled without the
GIL.
"""

from __future__ import annotations

import contextlib
import copy
import time

import numpy as np

from .._threads import limit_blas_threads, numba_threads
from ..pipeline.candidates import Candidates
from ..pipeline.features import hour_and_weekday
from ..pipeline.selection import SourceOrder
from ..rank._base import _expit
from ..recall import Popularity
from ..recall._embedding import EmbeddingRecall
from ..recall.base import RecallModel
from ._fastpath import (
    FeatureTables,
    IdIndex,
    TreeScorer,
    TwoHopRow,
    best_rows,
    dense_scores,
    history_neighbours,
    merge_row,
    ordered_topk,
    topk_excluding,
)
from .precomputed import (
    PrecomputedCandidates,
    PrecomputedRecall,
    wants_precomputed,
    wants_precomputed_candidates,
)

#: the stage clock (seconds)
_now = time.perf_counter


def _clock(seconds: float) -> tuple[float, float]:
    """(hour of the day, weekday) of ``seconds`` since the epoch, by ``build_features``'s own
    :func:`~recforge.pipeline.features.hour_and_weekday`."""
    hour, weekday = hour_and_weekday(np.array([seconds]))
    return float(hour[0]), float(weekday[0])


@contextlib.contextmanager
def one_thread():
    """One request is too small to share: one Numba thread and one BLAS thread (a threaded
    1-row product waits ~30 ms for busy helper threads on a loaded machine, 0.1 ms alone)."""
    with numba_threads(1), limit_blas_threads(1):
        yield


class FreshHistory:
    """A fresh user's history as every source reads it, computed once per request.

    Attributes
    ----------
    idx : int64 (n,) — the known recent items' internal indices, oldest first
    ids : external ids of those items (for a source answered by its public method)
    items : int32 (m,) — the distinct items, ascending; counts : float32 (m,) — their multiplicity
    weights : float32 (n,) — ones, the weights ``recommend_from_history`` folds in
    mask : bool (n_items,) or None — the request's ``exclude``; mask_u8 : its uint8 view (zeros)
    excluded : uint8 (n_items,) — the history and ``mask``: what no source may return
    excluded_ids : list — the request's ``exclude`` as external ids
    """

    __slots__ = (
        "counts",
        "excluded",
        "excluded_ids",
        "ids",
        "idx",
        "items",
        "mask",
        "mask_u8",
        "weights",
    )

    def __init__(self, item_idx, history_ids, n_items: int, mask, excluded_ids):
        self.idx = np.ascontiguousarray(item_idx, np.int64)
        self.ids = history_ids
        items, counts = np.unique(self.idx, return_counts=True)
        self.items = items.astype(np.int32)
        self.counts = counts.astype(np.float32)
        self.weights = np.ones(len(self.idx), np.float32)
        self.mask = mask
        if mask is None:
            self.mask_u8 = np.zeros(n_items, np.uint8)
        else:
            self.mask_u8 = np.ascontiguousarray(mask).view(np.uint8)
        self.excluded = self.mask_u8.copy()
        self.excluded[self.idx] = 1
        self.excluded_ids = excluded_ids


def _one_thread_copy(model):
    """A shallow copy of ``model`` (the fitted arrays shared) with ``n_threads=1``: one request's
    work on the calling thread (a model fitted with ``n_threads=None`` would open a parallel
    region per call, which on a loaded machine waits for helper threads and leaves them spinning
    on the cores the server's threads need); the recommend contract gives the same answers at any
    ``n_threads``."""
    if getattr(model, "n_threads", 1) == 1:
        return model
    served = copy.copy(model)
    served.n_threads = 1
    return served


class SourcePath:
    """One recall source on the request path: its top ``depth`` for an internal user (or a history)
    as internal item indices int64 (depth,) with ``-1`` pads and float32 scores with ``-inf`` pads."""

    def __init__(self, name: str, model, items: IdIndex, ann=None):
        self.name = name
        self.model = _one_thread_copy(model)
        model = self.model
        self._items = items
        self._ann = ann
        self._n_items = model.n_items_
        self._dense = type(model)._topk_users is RecallModel._topk_users
        self._targets = self._two_hop = None
        if getattr(model, "_fused", False) and callable(getattr(model, "_two_hop", None)):
            # ItemCF / UserCF: their kernel's arrays prepared once (their _topk_users converts
            # the graph's row pointers and slices user_items_ through scipy on every call)
            self._two_hop = model._two_hop()
        self._targets_t = self._order = None
        # a fold-in with the model's arrays prepared once (UserCF: its similarity to the users)
        scorer = getattr(model, "history_scorer", None)
        self._score_history = (
            scorer() if callable(scorer) else getattr(model, "_score_history", None)
        )
        # UserCF: the history's neighbours through the fused two-hop top-k (no dense score row)
        self._history_query = None
        if self._two_hop is not None and getattr(self._score_history, "canonical", False):
            self._history_query = _UserNeighbours(model, self._score_history)
        elif self._two_hop is not None and _scores_history_row(model):
            self._history_query = _history_row
        self._two_hop_row = None
        if self._history_query is not None:
            self._two_hop_row = TwoHopRow(*self._two_hop[1], self._n_items)
        if isinstance(model, EmbeddingRecall) and self._dense:
            targets = np.asarray(model._target_vectors())
            self._bias = model._target_bias()
            if targets.dtype == np.float32:  # items contiguous for the scorer; float64 sums
                self._targets_t = np.ascontiguousarray(targets.T)
            else:
                self._targets = np.asarray(targets, np.float64)
        if type(model) is Popularity:
            # one score row for every user: its order (ties by lower index, as topk) once
            self._pop_scores = np.asarray(model.item_scores_, np.float32)
            if not np.isnan(self._pop_scores).any():
                self._order = np.argsort(-self._pop_scores, kind="stable").astype(np.int64)

    @property
    def compiled(self) -> bool:
        """True when :meth:`user` calls no BLAS and runs every kernel on the calling thread."""
        return self._ann is None and (
            self._two_hop is not None or self._targets_t is not None or self._order is not None
        )

    def _scores(self, u: int) -> np.ndarray:
        if self._targets_t is not None:
            query = np.asarray(self.model._user_queries(np.array([u], np.int64)), np.float64)[0]
            scores = np.empty(self._targets_t.shape[1], np.float32)
            dense_scores(self._targets_t, np.ascontiguousarray(query), scores)
            return scores if self._bias is None else scores + self._bias
        if self._targets is None:
            return self.model._score_users(np.array([u], np.int64))[0]
        query = np.asarray(self.model._user_queries(np.array([u], np.int64)), np.float64)
        scores = (query @ self._targets.T).astype(np.float32)[0]
        return scores if self._bias is None else scores + self._bias

    def user(self, u: int, depth: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        model = self.model
        seen = model.user_items_.indices[
            model.user_items_.indptr[u] : model.user_items_.indptr[u + 1]
        ]
        if self._ann is not None:
            return self._ann.user(u, depth, seen, mask)
        if self._two_hop is not None:
            from ..kernels.neighbors import two_hop_topk

            mask_u8 = np.zeros(self._n_items, np.uint8) if mask is None else mask.view(np.uint8)
            # one request: the kernel on the calling thread (n_workers=1)
            idx, val = two_hop_topk(
                np.array([u], np.int64),
                *self._two_hop[0],
                *self._two_hop[1],
                self._n_items,
                np.array([0, len(seen)], np.int64),
                seen.astype(np.int32),
                np.ascontiguousarray(mask_u8),
                int(depth),
                1,
            )
            return idx[0], val[0]
        if not self._dense:
            idx, val = model._topk_users(np.array([u], np.int64), depth, True, mask)
            return idx[0], val[0]
        excluded = np.zeros(self._n_items, np.uint8) if mask is None else mask.astype(np.uint8)
        excluded[seen] = 1
        if self._order is not None:
            idx = ordered_topk(self._order, excluded, depth)
            val = np.where(idx >= 0, self._pop_scores[idx], -np.inf).astype(np.float32)
            return idx, val
        scores = np.ascontiguousarray(self._scores(u), np.float32)
        work = min(depth, self._n_items)
        idx, val = topk_excluding(scores, work, excluded)
        if work < depth:
            idx = np.concatenate([idx, np.full(depth - work, -1, np.int64)])
            val = np.concatenate([val, np.full(depth - work, -np.inf, np.float32)])
        return idx, val

    @property
    def history_compiled(self) -> bool:
        """True when :meth:`history` runs no Numba kernel (it may call BLAS: ``history_blas``)."""
        model = self.model
        if self._ann is not None or not isinstance(model, RecallModel):
            return False
        if type(model).recommend_from_history is not RecallModel.recommend_from_history:
            return False
        return (
            self._order is not None
            or self._history_query is not None
            or (
                self._targets_t is not None
                and type(model)._score_history is EmbeddingRecall._score_history
            )
        )

    @property
    def history_blas(self) -> bool:
        """True when :meth:`history` may call BLAS (the embedding fold-ins)."""
        return self._order is None and self._history_query is None

    def _fused_history(self, h: FreshHistory, k: int):
        """The top ``k`` of a history's two-hop scores by the fused kernel (what ``two_hop_topk``
        documents as the dense scores' top-k, the history and ``mask`` excluded), one row through
        :class:`~recforge.serving._fastpath.TwoHopRow` (its scratch kept between requests)."""
        chosen, vals = self._history_query(h)
        if chosen is None:
            chosen, vals = np.zeros(0, np.int32), np.zeros(0, np.float32)
        return self._two_hop_row.topk(chosen, vals, h.items, h.mask_u8, int(k))

    def history(self, h: FreshHistory, depth: int):
        """Top ``depth`` for a fresh user's history ``h``, as ``recommend_from_history`` computes
        it: internal indices, -1 / -inf pads."""
        model = self.model
        if isinstance(model, RecallModel) and (
            type(model).recommend_from_history is RecallModel.recommend_from_history
        ):
            if self._order is not None:  # popularity: the same row for every history
                idx = ordered_topk(self._order, h.excluded, depth)
                return idx, np.where(idx >= 0, self._pop_scores[idx], -np.inf).astype(np.float32)
            work = min(depth, self._n_items)
            if self._history_query is not None:
                idx, val = self._fused_history(h, work)
            else:
                scores = np.asarray(self._score_history(h.idx, h.weights), np.float32).ravel()
                idx, val = topk_excluding(np.ascontiguousarray(scores), work, h.excluded)
            if work < depth:
                idx = np.concatenate([idx, np.full(depth - work, -1, np.int64)])
                val = np.concatenate([val, np.full(depth - work, -np.inf, np.float32)])
            return idx, val
        ids, val = self.model.recommend_from_history(
            h.ids, k=depth, filter_seen=True, filter_items=h.excluded_ids
        )
        valid = np.isfinite(val)
        idx = np.full(depth, -1, np.int64)
        idx[valid] = self._items.indices(ids[valid].tolist())
        return idx, np.where(valid, val, -np.inf).astype(np.float32)


def _scores_history_row(model) -> bool:
    """Whether ``model`` folds a history in as one query row of its two-hop product: the
    history's items weighted by their multiplicity (``ItemCF._score_history``)."""
    from ..recall import ItemCF

    return isinstance(model, ItemCF) and type(model)._score_history is ItemCF._score_history


class _UserNeighbours:
    """UserCF's query row of a history (``history_scorer().neighbours``) by the compiled
    :func:`~recforge.serving._fastpath.history_neighbours`, its arrays prepared once."""

    def __init__(self, model, scorer):
        self._args = (
            np.ascontiguousarray(scorer._item_indptr, np.int64),
            np.ascontiguousarray(scorer._item_users, np.int32),
            np.ascontiguousarray(scorer._penalty, np.float64),
            np.ascontiguousarray(scorer._degree, np.float64),
        )
        self._n_neighbors = int(model.n_neighbors)
        self._normalize_max = bool(model.normalize_max)

    def __call__(self, h: FreshHistory):
        if len(h.items) == 0:
            return None, None
        return history_neighbours(*self._args, h.items, self._n_neighbors, self._normalize_max)


def _history_row(h: FreshHistory):
    """ItemCF's query row of a history with unit weights: its distinct items (ascending) and their
    counts, what ``_score_history``'s ``sum_duplicates`` makes of it (sums of ones are exact)."""
    if len(h.items) == 0:
        return None, None
    return h.items, h.counts


class RequestPlan:
    """The staged path of a fitted :class:`~recforge.pipeline.TwoStage` for one request.

    Parameters
    ----------
    model : fitted TwoStage (read-only from here on)
    ann : dict source name → ANN index (see :mod:`recforge.serving.ann`), optional
    precompute_recall : True, False or "auto" (default)
        Compute every source's list of every known user at load
        (:class:`~recforge.serving.precomputed.PrecomputedRecall`), and from them each known
        user's merged candidates and feature rows
        (:class:`~recforge.serving.precomputed.PrecomputedCandidates`); a known user's request
        without ``exclude`` and with ``k`` at most the candidate count then reads those and only
        ranks. ``"auto"``: the lists when users × depth × sources × 8 B ≤ 256 MiB, the candidate
        blocks too when both fit in it (``precomputed.candidate_bytes`` per candidate).

    What orders the candidates follows the pipeline's choice (``ranker_``): the ranker, fusion
    (``None``) or one source alone (a :class:`~recforge.pipeline.selection.SourceOrder`, scored
    from the candidates' ranks without the feature rows).

    Each ``user`` / ``history`` call returns ``(item indices int64 (<= k,), scores float32, sources)``
    — ``sources`` is, per item, the ``+``-joined names of the sources that listed it — and fills
    ``timings`` (milliseconds) with ``recall:<source>``, ``merge``, ``features``, ``rank``, ``topk``.
    """

    def __init__(self, model, items: IdIndex, ann=None, precompute_recall="auto"):
        self.model = model
        self.items = items
        quotas, n_candidates, depth, windows = model._settings
        self.quotas, self.n_candidates, self.depth = quotas, n_candidates, depth
        self.windows = windows
        self.names = list(model.sources_)
        ann = ann or {}
        for name, source in model.sources_.items():
            for attr in ("item_map_", "user_map_"):
                if not np.array_equal(getattr(source, attr).ids, getattr(model, attr).ids):
                    raise ValueError(
                        f"source {name!r} is not fitted on the pipeline's {attr}; "
                        "serve it with fastpath=False"
                    )
        self.sources = [SourcePath(n, s, items, ann.get(n)) for n, s in model.sources_.items()]
        self._now = float(model.state_.h_times.max()) if len(model.state_.h_times) else 0.0
        self._now_clock = _clock(self._now)  # a fresh user's hour and weekday
        self._quotas = np.ascontiguousarray(quotas, np.int64)
        self._rrf_k = float(model.rrf_k)
        self._tables = self._user_table = self._user_profile = self._scorer = None
        self._source_order = None
        if isinstance(model.ranker_, SourceOrder):
            self._source_order = (model.ranker_, self.names.index(model.ranker_.source))
        elif model.ranker_ is not None:
            self._tables, self._user_table, self._user_profile = _feature_tables(model, self._now)
            self._scorer = _tree_scorer(model.ranker_, self._tables.n_features)
        self.compiled = all(source.compiled for source in self.sources)
        # a fresh user's request: no Numba when every source's fold-in and the ranker are compiled
        self._history_plain = all(source.history_compiled for source in self.sources) and (
            self._scorer is not None or self._tables is None
        )
        self._history_blas = any(source.history_blas for source in self.sources)
        self.precomputed = None
        base_depth = max(self.depth, self.n_candidates)
        n_users = len(model.user_map_.ids)
        if wants_precomputed(precompute_recall, n_users, base_depth, len(self.sources)):
            with numba_threads(1) if self.compiled else one_thread():
                self.precomputed = PrecomputedRecall(self.sources, n_users, base_depth)
        self.candidates = None
        n_features = 0 if self._tables is None else self._tables.n_features
        if self.precomputed is not None and wants_precomputed_candidates(
            precompute_recall, n_users, base_depth, self.n_candidates, len(self.sources), n_features
        ):
            self.candidates = PrecomputedCandidates(self._known_user_block, n_users)

    def _known_user_block(self, u: int):
        """Known user ``u``'s merged candidates and (with a ranker reading them) feature rows, as a
        request without ``exclude`` and with ``k`` <= the candidate count computes them."""
        cands = self._recall(None, 1, {}, user=u)
        return cands, (None if self._tables is None else self._features(cands, u, None))

    def _recall(self, fetch, k, timings, user=None):
        """The merged candidates; ``user`` (internal) reads the precomputed lists when they hold
        this request's depth (``fetch`` is then not called)."""
        target = max(self.n_candidates, k)
        depth = max(self.depth, target)
        lists = np.full((len(self.sources), depth), -1, np.int64)
        scores = np.full((len(self.sources), depth), -np.inf, np.float32)
        if user is not None and self.precomputed is not None and depth == self.precomputed.depth:
            t = _now()
            self.precomputed.fill(user, lists, scores)
            timings["recall:precomputed"] = (_now() - t) * 1e3
        else:
            for s, source in enumerate(self.sources):
                t = _now()
                lists[s], scores[s] = fetch(source, depth)
                timings[f"recall:{source.name}"] = (_now() - t) * 1e3
        t = _now()
        items, src_scores, src_ranks, n_sources, rrf = merge_row(
            lists, scores, self._quotas, target, self._rrf_k
        )
        cands = Candidates(
            offsets=np.array([0, len(items)], np.int64),
            items=items,
            source_scores=src_scores,
            source_ranks=src_ranks,
            n_sources=n_sources,
            rrf=rrf,
        )
        timings["merge"] = (_now() - t) * 1e3
        return cands

    def _features(self, cands, u, history):
        """The ranker's rows of one user's candidates: float32 (n, n_features), as
        ``build_features`` writes them."""
        state, tables = self.model.state_, self._tables
        if history is None:
            user_row, profile = self._user_table[u], self._user_profile[u]
            h_items, h_times = state.h_items, state.h_times
            ha, h_end = int(state.h_indptr[u]), int(state.h_indptr[u + 1])
            as_of = float(self.model.as_of_[u])
            hour, weekday = _clock(as_of)
        else:
            h_items, h_times, h_weights = history
            as_of = self._now
            hour, weekday = self._now_clock
            user_row = np.empty(7 + tables.n_windows, np.float32)
            profile = np.empty(tables.n_genres, np.float32)
            tables.user_row(
                h_items, h_times, h_weights, as_of, float(self.model.genre_decay), user_row, profile
            )
            ha, h_end = 0, len(h_items)
        X = np.empty((len(cands.items), tables.n_features), np.float32)
        tables.fill(
            cands.items,
            cands.source_scores,
            cands.source_ranks,
            cands.n_sources,
            cands.rrf,
            user_row,
            profile,
            h_items,
            h_times,
            ha,
            h_end,
            as_of,
            hour,
            weekday,
            X,
        )
        n_w, n_s = tables.n_windows, len(self.sources)
        user_log_pop = 2 * n_s + 2 + 6 + n_w
        item_events = 2 * n_s + 2 + 7 + n_w
        X[:, -1] = np.log1p(X[:, item_events]) - X[:, user_log_pop]
        return X

    def _rank(self, cands, u, history, k, timings, explain, X=None):
        """Top ``k`` of ``cands``; ``X``: their feature rows when precomputed."""
        model = self.model
        t = _now()
        if model.ranker_ is None or len(cands.items) == 0:
            scores = cands.rrf.astype(np.float32)
            timings["features"] = 0.0
        elif self._source_order is not None:
            timings["features"] = 0.0
            scores = self._source_scores(cands)
        else:
            if X is None:
                X = self._features(cands, u, history)
            timings["features"] = (_now() - t) * 1e3
            t = _now()
            if self._scorer is not None:
                scores = _expit(self._scorer.raw(X)).astype(np.float32)
            else:
                scores = model._score(X, cands)
        timings["rank"] = (_now() - t) * 1e3
        t = _now()
        scores = np.ascontiguousarray(scores, np.float32)
        # segment_topk's order: score descending, ties by lower item index
        best = best_rows(scores, cands.items, k)
        idx, val = cands.items[best], scores[best]
        timings["topk"] = (_now() - t) * 1e3
        return idx, val, (self._found_by(cands.source_ranks[best]) if explain else None)

    def _source_scores(self, cands) -> np.ndarray:
        """The chosen source's order (:class:`SourceOrder`), from the only two feature columns it
        reads: the source's rank and the fusion score."""
        order, s = self._source_order
        X = np.full((len(cands.items), len(self.model.feature_names_out_)), np.nan, np.float32)
        X[:, order.rank_column] = cands.source_ranks[:, s]
        X[:, order.rrf_column] = cands.rrf
        return order.predict(X)

    def _found_by(self, ranks) -> list:
        """Per row of ``ranks`` (the chosen candidates' source ranks, NaN = not listed): the
        ``+``-joined names of the sources that listed it."""
        return ["+".join(n for n, r in zip(self.names, row) if r == r) for row in ranks.tolist()]

    def user(self, u: int, k: int, mask, timings: dict, explain: bool = False):
        """Top ``k`` for internal user ``u``; ``mask`` bool (n_items,) or None (never recommend)."""
        if mask is None and self.candidates is not None and k <= self.n_candidates:
            t = _now()
            cands, X = self.candidates.take(u)
            timings["recall:precomputed"] = (_now() - t) * 1e3
            if self._scorer is not None or self._tables is None:  # no Numba, no BLAS
                return self._rank(cands, u, None, k, timings, explain, X)
            # another ranker's own predict: on one thread, as below
            with numba_threads(1) if self.compiled else one_thread():
                return self._rank(cands, u, None, k, timings, explain, X)
        # one Numba thread (a parallel launch per request waits ~90 ms for busy helpers on a
        # loaded machine); the BLAS limit only where a source still calls BLAS
        with numba_threads(1) if self.compiled else one_thread():
            cands = self._recall(
                lambda source, depth: source.user(u, depth, mask),
                k,
                timings,
                user=u if mask is None else None,
            )
            return self._rank(cands, u, None, k, timings, explain)

    def history(
        self, item_idx, history_ids, k: int, excluded_ids: list, timings, explain=False, mask=None
    ):
        """Top ``k`` for a fresh user whose known recent items are ``item_idx`` (internal, oldest
        first) with external ids ``history_ids``; ``mask`` bool (n_items,): ``excluded_ids``."""
        h = FreshHistory(item_idx, history_ids, self.items.size, mask, excluded_ids)
        with self._history_threads():
            cands = self._recall(lambda source, depth: source.history(h, depth), k, timings)
            n = len(h.idx)
            history = (h.idx, np.full(n, self._now), h.weights)
            return self._rank(cands, -1, history, k, timings, explain)

    def _history_threads(self):
        """What a fresh user's request needs of the thread settings: nothing when no source calls
        BLAS or Numba and the ranker is compiled; one BLAS thread when only the embedding
        fold-ins call BLAS; else one Numba and one BLAS thread."""
        if not self._history_plain:
            return one_thread()
        return limit_blas_threads(1) if self._history_blas else contextlib.nullcontext()


def _feature_tables(model, now: float):
    """(FeatureTables, user table float32 (n_users, 7 + n_windows), genre profiles float32
    (n_users, n_genres)) of a fitted TwoStage: the users' features as of ``as_of_`` are computed
    once, by the pipeline's own kernel; the items' as of ``now`` (a fresh user's time) too."""
    from ..kernels.pipeline import user_features

    state = model.state_
    windows = np.asarray(model._settings[3], np.float64) * 86400.0
    similarity, embeddings = model._serving_inputs
    if similarity is None:
        s_indptr, s_indices, s_data = np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0)
    else:
        s_indptr = np.asarray(similarity.indptr, np.int64)
        s_indices = np.asarray(similarity.indices, np.int32)
        s_data = np.asarray(similarity.data, np.float64)  # exact: the kernel reads them as float64
    emb = np.zeros((state.n_items, 0), np.float32) if embeddings is None else embeddings
    genres = np.ascontiguousarray(state.genres, np.float32)
    tables = FeatureTables(
        np.ascontiguousarray(state.i_indptr, np.int64),
        np.ascontiguousarray(state.i_times, np.float64),
        np.ascontiguousarray(state.i_cumw, np.float64),
        np.ascontiguousarray(state.i_cumhigh, np.float64),
        windows,
        float(state.high),
        int(model.n_last),
        s_indptr,
        s_indices,
        s_data,
        np.ascontiguousarray(emb, np.float32),
        genres,
        len(model.sources_),
        state.transitions,
        item_time=now,
    )
    if tables.n_features != len(model.feature_names_out_):
        raise ValueError(
            f"the pipeline has {len(model.feature_names_out_)} features, the serving tables "
            f"{tables.n_features}; serve it with fastpath=False"
        )
    n_users = state.n_users
    table = np.empty((n_users, 7 + len(windows)), np.float32)
    profile = np.zeros((n_users, genres.shape[1]), np.float32)
    user_features(
        np.ascontiguousarray(state.h_indptr, np.int64),
        np.ascontiguousarray(state.h_items, np.int64),
        np.ascontiguousarray(state.h_times, np.float64),
        np.ascontiguousarray(state.h_weights, np.float32),
        np.ascontiguousarray(model.as_of_, np.float64),
        windows,
        float(state.high),
        state.i_indptr,
        state.i_times,
        genres,
        float(model.genre_decay),
        table,
        profile,
    )
    return tables, table, profile


def _tree_scorer(ranker, n_features):
    """A :class:`TreeScorer` of a GBDT classifier whose input is the feature matrix as it is
    (no encoder, no categorical columns), else None (the ranker's own ``_score`` is used)."""
    from ..rank import GBDTClassifier

    if type(ranker) is not GBDTClassifier or getattr(ranker, "encoder", None) is not None:
        return None
    schema = getattr(ranker, "_schema", None)
    if schema is None or np.any(schema.is_categorical) or ranker.n_features_in_ != n_features:
        return None
    forest = ranker._forest
    forest._flush()
    a = forest.arrays
    return TreeScorer(
        a["feature"],
        a["threshold"],
        a["left"],
        a["right"],
        a["default_left"],
        a["categorical"],
        a["value"],
        a["roots"],
        ranker._n_used(),
        n_features,
        float(ranker.base_margin_),
    )
