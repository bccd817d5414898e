"""The staged request path of a served model: recall per source, merge, features, rank, top-k.

A :class:`RequestPlan` is built once at load from a fitted model and answers one user at a time
with what the model's own ``recommend`` / ``recommend_from_history`` return (the equality tests
hold it to that), timing each stage. It saves the per-call work of the public path: ids are
looked up in C++ hash maps (:class:`~recforge.serving._fastpath.IdIndex`), sources are called
through their internal-index hooks (no id round trips), the embedding sources' target vectors
are converted once instead of per call, and the top-k of a dense row runs in C++ without the GIL.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from .._threads import limit_blas_threads, numba_threads
from ..recall._embedding import EmbeddingRecall
from ..recall.base import RecallModel
from ._fastpath import IdIndex, topk_excluding


def _now() -> float:
    return time.perf_counter()


@contextlib.contextmanager
def one_thread():
    """One request is too small to share: one Numba thread and one BLAS thread (a threaded
    1-row product waits ~30 ms for busy helper threads on a loaded machine, 0.1 ms alone)."""
    with numba_threads(1), limit_blas_threads(1):
        yield


class SourcePath:
    """One recall source on the request path: its top ``depth`` for an internal user (or a history)
    as internal item indices int64 (depth,) with ``-1`` pads and float32 scores with ``-inf`` pads."""

    def __init__(self, name: str, model, items: IdIndex, ann=None):
        self.name = name
        self.model = model
        self._items = items
        self._ann = ann
        self._dense = type(model)._topk_users is RecallModel._topk_users
        self._targets = self._two_hop = None
        if getattr(model, "_fused", False) and callable(getattr(model, "_two_hop", None)):
            # ItemCF / UserCF: their kernel's arrays prepared once (their _topk_users converts
            # the graph's row pointers and slices user_items_ through scipy on every call)
            self._two_hop = model._two_hop()
        if isinstance(model, EmbeddingRecall) and self._dense:
            # rowwise_scores' float64 product, with the conversion of the targets done once
            self._targets = np.asarray(model._target_vectors(), np.float64)
            self._bias = model._target_bias()

    def _scores(self, u: int) -> np.ndarray:
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

            mask_u8 = np.zeros(model.n_items_, np.uint8) if mask is None else mask.view(np.uint8)
            idx, val = two_hop_topk(
                np.array([u], np.int64),
                *self._two_hop[0],
                *self._two_hop[1],
                model.n_items_,
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
        excluded = np.zeros(model.n_items_, np.uint8) if mask is None else mask.astype(np.uint8)
        excluded[seen] = 1
        scores = np.ascontiguousarray(self._scores(u), np.float32)
        work = min(depth, model.n_items_)
        idx, val = topk_excluding(scores, work, excluded)
        if work < depth:
            idx = np.concatenate([idx, np.full(depth - work, -1, np.int64)])
            val = np.concatenate([val, np.full(depth - work, -np.inf, np.float32)])
        return idx, val

    def history(self, history, depth: int, excluded_ids: list) -> tuple[np.ndarray, np.ndarray]:
        ids, val = self.model.recommend_from_history(
            history, k=depth, filter_seen=True, filter_items=excluded_ids
        )
        valid = np.isfinite(val)
        idx = np.full(depth, -1, np.int64)
        idx[valid] = self._items.indices(ids[valid].tolist())
        return idx, np.where(valid, val, -np.inf).astype(np.float32)


class RequestPlan:
    """The staged path of a fitted :class:`~recforge.pipeline.TwoStage` for one request.

    Parameters
    ----------
    model : fitted TwoStage (read-only from here on)
    ann : dict source name → ANN index (see :mod:`recforge.serving.ann`), optional

    Each ``user`` / ``history`` call returns ``(item indices int64 (<= k,), scores float32, sources)``
    — ``sources`` is, per item, the ``+``-joined names of the sources that listed it — and fills
    ``timings`` (milliseconds) with ``recall:<source>``, ``merge``, ``features``, ``rank``, ``topk``.
    """

    def __init__(self, model, items: IdIndex, ann=None):
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

    def _recall(self, fetch, k, timings):
        from ..pipeline.candidates import merge_lists

        target = max(self.n_candidates, k)
        depth = max(self.depth, target)
        lists = np.full((len(self.sources), 1, depth), -1, np.int64)
        scores = np.full((len(self.sources), 1, depth), -np.inf, np.float32)
        for s, source in enumerate(self.sources):
            t = _now()
            lists[s, 0], scores[s, 0] = fetch(source, depth)
            timings[f"recall:{source.name}"] = (_now() - t) * 1e3
        t = _now()
        cands = merge_lists(lists, scores, self.quotas, target, self.model.rrf_k)
        timings["merge"] = (_now() - t) * 1e3
        return cands

    def _rank(self, cands, users, as_of, k, history, timings, explain):
        from ..kernels.pipeline import segment_topk
        from ..pipeline.features import build_features

        model = self.model
        t = _now()
        if model.ranker_ is None:
            scores = cands.rrf.astype(np.float32)
            timings["features"] = 0.0
        else:
            sim, emb = model._serving_inputs
            X = build_features(
                model.state_,
                users,
                as_of,
                cands,
                windows=self.windows,
                n_last=model.n_last,
                similarity=sim,
                embeddings=emb,
                decay=model.genre_decay,
                history=history,
            )
            timings["features"] = (_now() - t) * 1e3
            t = _now()
            scores = model._score(X, cands)
        timings["rank"] = (_now() - t) * 1e3
        t = _now()
        out_items = np.empty((1, k), np.int64)
        out_scores = np.empty((1, k), np.float32)
        segment_topk(
            cands.offsets,
            cands.items,
            np.ascontiguousarray(scores, np.float32),
            k,
            out_items,
            out_scores,
        )
        keep = out_items[0] >= 0
        idx, val = out_items[0][keep], out_scores[0][keep]
        timings["topk"] = (_now() - t) * 1e3
        return idx, val, (self._found_by(cands, idx) if explain else None)

    def _found_by(self, cands, idx) -> list:
        position = {int(item): p for p, item in enumerate(cands.items.tolist())}
        out = []
        for item in idx.tolist():
            ranks = cands.source_ranks[position[item]]
            out.append("+".join(n for n, r in zip(self.names, ranks.tolist()) if r == r))
        return out

    def user(self, u: int, k: int, mask, timings: dict, explain: bool = False):
        """Top ``k`` for internal user ``u``; ``mask`` bool (n_items,) or None (never recommend)."""
        with one_thread():
            cands = self._recall(lambda source, depth: source.user(u, depth, mask), k, timings)
            users = np.array([u], np.int64)
            return self._rank(cands, users, self.model.as_of_[users], k, None, timings, explain)

    def history(self, item_idx, history_ids, k: int, excluded_ids: list, timings, explain=False):
        """Top ``k`` for a fresh user whose known recent items are ``item_idx`` (internal, oldest
        first) with external ids ``history_ids``."""
        with one_thread():
            cands = self._recall(
                lambda source, depth: source.history(history_ids, depth, excluded_ids), k, timings
            )
            n = len(item_idx)
            rows_history = (
                np.array([0, n], np.int64),
                np.asarray(item_idx, np.int64),
                np.full(n, self._now),
                np.ones(n, np.float32),
            )
            as_of = np.array([self._now])
            return self._rank(cands, None, as_of, k, rows_history, timings, explain)
