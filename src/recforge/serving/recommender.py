"""The in-process request path: one user in, one list out, shared read-only by server threads."""

from __future__ import annotations

import contextlib
import dataclasses
import io as _io
import threading
import time

import numpy as np

from .._validation import check_choice, check_int
from ..data import Interactions
from ..io import load_arrays, model_file_errors, save_arrays, to_bytes
from ..recall import Popularity
from ..recall.base import as_id_collection
from ._fastpath import IdIndex
from .loader import load_model
from .plan import one_thread
from .precomputed import check_precompute_recall

#: Name of the fallback source in ``Recommendation.sources``.
POPULARITY_SOURCE = "popularity"


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One answer of :meth:`Recommender.recommend_one`.

    Attributes
    ----------
    items : list of ids (int or str), best first, at most ``k`` (no padding)
    scores : list of float, one per item (each source's own score scale)
    path : {"user", "history", "popularity"}
        stored history, fold-in of ``recent_items``, or the popularity fallback
    sources : list of str or None — with ``explain``: the source that found each item (for a
        pipeline: the ``+``-joined names of every recall source that listed it)
    timings_ms : dict stage → milliseconds or None — with ``explain`` (a pipeline adds
        ``recall:<source>``, ``merge``, ``features``, ``rank`` and ``topk``)
    """

    items: list
    scores: list
    path: str
    sources: list | None = None
    timings_ms: dict | None = None


def _popularity_of(model) -> Popularity:
    """The popularity fallback: the model itself if it is one, else a fitted ``Popularity`` among
    its recall sources (a pipeline's ``sources_``), else one fitted on its stored interactions."""
    if isinstance(model, Popularity):
        return model
    sources = getattr(model, "sources_", None)
    if isinstance(sources, dict):
        for source in sources.values():
            if isinstance(source, Popularity):
                return source
    if not hasattr(model, "user_items_"):
        raise TypeError(
            f"{type(model).__name__} has no stored interactions (user_items_) and no "
            "Popularity source to answer users without history"
        )
    data = Interactions(model.user_items_, user_map=model.user_map_, item_map=model.item_map_)
    return Popularity(n_threads=1).fit(data)


def _numba_is_thread_safe() -> bool:
    """Numba can run parallel kernels from several threads at once: its threading layer is (or
    will be) TBB or OpenMP, not the workqueue fallback that aborts on concurrent launches."""
    import importlib

    import numba

    forced = str(numba.config.THREADING_LAYER).lower()
    if forced == "workqueue":
        return False
    candidates = {"tbb": ["tbbpool"], "omp": ["omppool"]}.get(forced, ["tbbpool", "omppool"])
    for name in candidates:
        try:
            importlib.import_module(f"numba.np.ufunc.{name}")
            return True
        except ImportError:
            continue
    return False


def _as_user_id(user_id):
    if isinstance(user_id, (bool, np.bool_)) or not isinstance(user_id, (int, np.integer, str)):
        raise TypeError(f"user_id must be an int or a str, got {type(user_id).__name__}")
    return user_id


def _real(items: np.ndarray, scores: np.ndarray) -> tuple[list, list]:
    """Drop the contract's padding (score ``-inf``) and convert to Python values."""
    keep = np.isfinite(scores)
    return items[keep].tolist(), scores[keep].astype(float).tolist()


class Recommender:
    """A loaded recall model answering one request at a time, immutable after construction.

    A known ``user_id`` is answered from the stored history (``model.recommend``); a fresh or
    unknown user with ``recent_items`` is folded in (``model.recommend_from_history``; recent
    items the model does not know are ignored); with neither, the popularity of the model's
    stored interactions answers. A list shorter than ``k`` is filled up from popularity.

    Everything a request reads is built at construction and never changed, so many server
    threads share one ``Recommender`` and call it at the same time, without a lock (the one
    exception: when Numba has only its workqueue threading layer, which aborts the process on
    concurrent parallel calls, calls into the model are serialised). Replacing the model means
    building a new one and swapping the reference (in-flight requests finish on the old one).

    Parameters
    ----------
    model : a fitted recall model (any :class:`~recforge.recall.RecallModel`), or any fitted model
        with the recommend contract and either ``user_items_`` or a Popularity in ``sources_``
    backfill : bool, default True
        Fill a list shorter than ``k`` with popular items.
    fastpath : bool, default True
        Serve a :class:`~recforge.pipeline.TwoStage` through its staged request path
        (:class:`~recforge.serving.plan.RequestPlan`: the same answers, less per-call work, timings
        per stage), and an LFM / Item2Vec with its item vectors prepared once. False calls the
        model's public ``recommend`` methods.
    index : {"exact", "ann"}, default "exact"
        ``"ann"`` answers the embedding sources (LFM, Item2Vec; a pipeline's or the model itself)
        from an approximate nearest-neighbour index built at construction
        (:class:`~recforge.serving.ann.AnnIndex`, extra ``[ann]``) — for large catalogues.
    warm : bool, default True
        Answer one request of each kind at construction (compiles/loads the kernels now).
    precompute_recall : True, False or "auto" (default)
        With the staged path of a TwoStage: compute every source's recall list of every known
        user at construction, and from them each known user's merged candidates and feature
        rows (the model is immutable, so the answers are the same); a known user's request then
        only ranks them. ``"auto"``: the lists when users × depth × sources × 8 B ≤ 256 MiB, the
        candidates and rows too when both fit in it (:mod:`recforge.serving.precomputed`).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import ItemCF
    >>> m = sp.csr_matrix([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype="float32")
    >>> rec = Recommender(ItemCF().fit(m), warm=False)
    >>> rec.recommend_one(user_id=0, k=1).items
    [2]
    >>> rec.recommend_one(recent_items=[0], k=2, explain=True).sources
    ['ItemCF', 'ItemCF']
    >>> rec.recommend_one(k=1).path
    'popularity'
    """

    __slots__ = (
        "_ann",
        "_backfill",
        "_calls",
        "_file",
        "_frozen",
        "_index",
        "_items",
        "_model",
        "_plan",
        "_popularity",
        "_single",
        "_source",
        "_users",
    )

    def __init__(
        self,
        model,
        *,
        backfill: bool = True,
        warm: bool = True,
        file=None,
        fastpath: bool = True,
        index: str = "exact",
        precompute_recall="auto",
    ):
        for attr in (
            "recommend",
            "recommend_from_history",
            "similar_items",
            "item_map_",
            "user_map_",
        ):
            if not hasattr(model, attr):
                raise TypeError(
                    f"model must be a fitted recforge recall model; "
                    f"{type(model).__name__} has no {attr!r}"
                )
        self._model = model
        self._popularity = _popularity_of(model)
        self._backfill = bool(backfill)
        self._source = type(model).__name__
        self._file = file
        # C++ hash lookups per request (~0.1 us) instead of IdMap.contains (~60 us)
        self._users = IdIndex(model.user_map_.ids)
        self._items = IdIndex(model.item_map_.ids)
        self._index = check_choice(index, "index", {"exact", "ann"})
        check_precompute_recall(precompute_recall)
        self._plan = self._single = None
        self._ann = {}
        if fastpath or index == "ann":
            self._plan, self._single = self._request_plan(model, index, precompute_recall)
        self._calls = contextlib.nullcontext() if _numba_is_thread_safe() else threading.Lock()
        self._frozen = True  # set last: from here on the object is immutable
        if warm:
            self._warm()

    def _request_plan(self, model, index, precompute_recall):
        """(RequestPlan of a TwoStage or None, SourcePath of an embedding model or None)."""
        from ..pipeline import TwoStage
        from ..recall._embedding import EmbeddingRecall
        from .plan import RequestPlan, SourcePath

        sources = model.sources_ if isinstance(model, TwoStage) else {self._source: model}
        ann = {}
        if index == "ann":
            embedding = {n: s for n, s in sources.items() if isinstance(s, EmbeddingRecall)}
            if not embedding:
                raise ValueError(
                    f"index='ann' needs an embedding source (LFM, Item2Vec); "
                    f"{type(model).__name__} has none"
                )
            ann = self._ann_indexes(embedding)
            self._ann = ann
        if isinstance(model, TwoStage):
            return RequestPlan(model, self._items, ann, precompute_recall), None
        if isinstance(model, EmbeddingRecall):
            return None, SourcePath(self._source, model, self._items, ann.get(self._source))
        return None, None

    def _ann_indexes(self, embedding: dict) -> dict:
        """Source name → AnnIndex: read from ``self._file`` when :meth:`save` stored them there,
        else built now."""
        from .ann import AnnIndex, saved_indexes

        saved = None
        if self._file is not None:
            if hasattr(self._file, "seek"):
                self._file.seek(0)
            _, arrays, _ = load_arrays(self._file)
            saved = saved_indexes(arrays, embedding)
        if saved is None:
            return {name: AnnIndex(source) for name, source in embedding.items()}
        with model_file_errors(self._file, self._source):
            return {name: AnnIndex(s, saved=saved[name]) for name, s in embedding.items()}

    @classmethod
    def load(cls, file, **kwargs) -> Recommender:
        """A ``Recommender`` over the model saved in ``file`` (any servable class, see
        :func:`~recforge.serving.load_model`); a bad file raises ``ModelFileError``.

        With ``index="ann"``, the ANN indexes that :meth:`save` stored in the file are read back
        (checked against the model's item vectors) instead of built; a file without them builds
        them."""
        return cls(load_model(file), file=file, **kwargs)

    def save(self, file) -> None:
        """Save the served model to ``file`` (a path or a binary file object), with the ANN
        indexes of ``index="ann"`` (faiss' serialisation as uint8 arrays beside the model's own,
        no pickle), so that ``Recommender.load(file, index="ann")`` does not rebuild them. The
        file loads as the model too (``load_model`` / the model class' ``load`` ignore the extra
        arrays)."""
        from .ann import index_arrays

        params, arrays, meta = load_arrays(_io.BytesIO(to_bytes(self._model.save)))
        save_arrays(
            file,
            model_class=type(self._model).__name__,
            params=params,
            arrays={**arrays, **index_arrays(self._ann)},
            meta=meta,
        )

    # ------------------------------------------------------------------ read-only views
    @property
    def model(self):
        """The served model (do not modify it)."""
        return self._model

    @property
    def file(self):
        """The file the model was loaded from, or None."""
        return self._file

    @property
    def index(self) -> str:
        """``"exact"`` or ``"ann"``: how the embedding sources are searched."""
        return self._index

    @property
    def n_items(self) -> int:
        return len(self._model.item_map_)

    @property
    def n_users(self) -> int:
        return len(self._model.user_map_)

    def __setattr__(self, name, value):
        if hasattr(self, "_frozen"):
            raise AttributeError(
                "a Recommender is immutable; build a new one to serve another model"
            )
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ requests
    def recommend_one(
        self, user_id=None, recent_items=None, k: int = 10, exclude=None, explain: bool = False
    ) -> Recommendation:
        """Up to ``k`` items for one user.

        Parameters
        ----------
        user_id : int or str, optional
            A user of the training data uses the stored history; any other id is a fresh user.
        recent_items : iterable of item ids, optional
            A fresh user's recent items (fold-in); ignored for a known user. Unknown ids are
            ignored.
        k : int >= 1
        exclude : iterable of item ids, optional
            Never recommend these; unknown ids are ignored.
        explain : bool
            Also return the source of each item and per-stage timings in milliseconds.

        Returns
        -------
        Recommendation
        """
        t0 = time.perf_counter()
        k = check_int(k, "k", min_value=1)
        timings = {}
        excluded = [] if exclude is None else as_id_collection(exclude, "exclude").tolist()
        history = history_idx = None
        user_idx = -1 if user_id is None else self._users.get(_as_user_id(user_id))
        known_user = user_idx >= 0
        if not known_user and recent_items is not None:
            recent = as_id_collection(recent_items, "recent_items")
            history_idx = self._items.indices(recent.tolist())
            history = recent[history_idx >= 0]
            history_idx = history_idx[history_idx >= 0]
        timings["lookup"] = (time.perf_counter() - t0) * 1e3

        with self._calls:
            t1 = time.perf_counter()
            plan_path = None
            if self._plan is not None:
                has_history = history is not None and history.size > 0
                plan_path = "user" if known_user else "history" if has_history else None
            elif self._single is not None and known_user:
                plan_path = "user"
            mask = None
            if plan_path is not None and excluded:
                known = self._items.indices(excluded)
                mask = np.zeros(self.n_items, bool)
                mask[known[known >= 0]] = True
            if plan_path is not None and self._single is not None:
                path = plan_path
                with one_thread():
                    idx, val = self._single.user(user_idx, k, mask)
                idx, val = idx[idx >= 0], val[idx >= 0]
                items = self._model.item_map_.ids[idx].tolist()
                scores = val.astype(float).tolist()
                sources = [self._source] * len(items)
            elif plan_path is not None:
                path = plan_path
                if known_user:
                    idx, val, found = self._plan.user(user_idx, k, mask, timings, explain)
                else:
                    idx, val, found = self._plan.history(
                        history_idx, history, k, excluded, timings, explain, mask
                    )
                items = self._model.item_map_.ids[idx].tolist()
                scores = val.astype(float).tolist()
                sources = found or [self._source] * len(items)
            elif known_user:
                path = "user"
                items, scores = self._model.recommend(user_id, k, filter_items=excluded)
            elif history is not None and history.size:
                path = "history"
                items, scores = self._model.recommend_from_history(
                    history, k=k, filter_items=excluded
                )
            else:
                path, history = "popularity", np.empty(0, np.int64)
                items, scores = self._popularity.recommend_from_history(
                    history, k=k, filter_items=excluded
                )
            if plan_path is None:
                items, scores = _real(items, scores)
                name = POPULARITY_SOURCE if path == "popularity" else self._source
                sources = [name] * len(items)
            timings["recall"] = (time.perf_counter() - t1) * 1e3

            t2 = time.perf_counter()
            if self._backfill and len(items) < k and path != "popularity":
                more, more_scores = self._fill(
                    user_id if known_user else None, history, k - len(items), excluded + items
                )
                items += more
                scores += more_scores
                sources += [POPULARITY_SOURCE] * len(more)
            timings["backfill"] = (time.perf_counter() - t2) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        if not explain:
            return Recommendation(items, scores, path)
        return Recommendation(items, scores, path, sources, timings)

    def _fill(self, user_id, history, n, excluded):
        pop = self._popularity
        n = min(n, self.n_items)
        if user_id is not None:
            items, scores = pop.recommend(user_id, n, filter_items=excluded)
        else:
            items, scores = pop.recommend_from_history(history, k=n, filter_items=excluded)
        return _real(items, scores)

    def similar_items(self, item_id, k: int = 10) -> tuple[list, list]:
        """The ``k`` items most similar to ``item_id`` (itself excluded), as ``(items, scores)``
        lists without padding; an unknown ``item_id`` raises ``KeyError`` naming it."""
        if isinstance(item_id, (bool, np.bool_)) or not isinstance(item_id, (int, np.integer, str)):
            raise TypeError(f"item_id must be an int or a str, got {type(item_id).__name__}")
        k = check_int(k, "k", min_value=1)
        with self._calls:
            items, scores = self._model.similar_items(item_id, k)
        return _real(items, scores)

    def _warm(self) -> None:
        first_item = self._model.item_map_.ids[0].item()
        first_user = self._model.user_map_.ids[0].item() if self.n_users else None
        self.recommend_one(user_id=first_user, k=1)
        self.recommend_one(recent_items=[first_item], k=1)
        self.recommend_one(k=1)
        self.similar_items(first_item, 1)
