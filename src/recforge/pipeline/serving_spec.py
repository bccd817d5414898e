"""What a serving path needs from a fitted :class:`~recforge.pipeline.TwoStage`, read-only.

:meth:`TwoStage.serving_spec` returns a :class:`ServingSpec`: the fitted sources and how their
lists are merged, what orders the candidates (a ranker, fusion, or one source alone), the feature
settings and the arrays the features are computed from. A serving layer reads this instead of the
pipeline's private attributes; the arrays are read-only views of the model's own (no copies).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np

#: The values of :attr:`ServingSpec.ranked_by`.
RANKED_BY = ("ranker", "rrf", "source")


def _read_only(array):
    if array is None:
        return None
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """A fitted pipeline as a serving path sees it (all read-only).

    Attributes
    ----------
    sources : mapping name → fitted recall model, in source order
    quotas : int64 (n_sources,) — each source's first new candidates
    n_candidates, depth : int — candidates per user; how deep each source's list is fetched
    rrf_k : float — the reciprocal rank fusion constant
    ranked_by : {"ranker", "rrf", "source"} — what orders the candidates
    ranker : the fitted ranker (``ranked_by == "ranker"``), else None
    source : str or None — the source whose order serves (``ranked_by == "source"``)
    rank_column, rrf_column : int or None — with ``ranked_by == "source"``: the feature columns
        of that source's rank and of the fusion score (what its order is computed from)
    feature_names : tuple of str — the columns of the ranker's input, in order
    windows : float64 (n_windows,) — activity / popularity windows in days
    n_last : int — the user's last items the similarity features read
    genre_decay : float — per-day decay of the genre profile
    sequence_window : int — the reach of the transition counts the ``seq_*`` features read
        (``state.transitions``; 0: none)
    similarity : CSR (n_items, n_items) with sorted indices, or None — the ItemCF-like similarity
        the features read
    embeddings : float32 (n_items, d) unit rows, or None — the item vectors the features read
    state : AsOfState — the training history arranged for the feature kernels, its transition
        counts included (treat as read-only)
    as_of : float64 (n_users,) — the time each known user's features are computed at
    now : float — the time a new user's history is placed at (the end of the training data)
    user_ids, item_ids : ndarray — external ids of the internal user / item indices
    """

    sources: MappingProxyType
    quotas: np.ndarray
    n_candidates: int
    depth: int
    rrf_k: float
    ranked_by: str
    ranker: object
    source: str | None
    rank_column: int | None
    rrf_column: int | None
    feature_names: tuple
    windows: np.ndarray
    n_last: int
    genre_decay: float
    sequence_window: int
    similarity: object
    embeddings: np.ndarray | None
    state: object
    as_of: np.ndarray
    now: float
    user_ids: np.ndarray
    item_ids: np.ndarray


def serving_spec(model) -> ServingSpec:
    """The :class:`ServingSpec` of a fitted TwoStage (see :meth:`TwoStage.serving_spec`).

    Examples
    --------
    >>> from recforge.datasets import movielens_small
    >>> from recforge.pipeline import TwoStage
    >>> from recforge.recall import ItemCF, Popularity
    >>> data = movielens_small().interactions().positives(4.0)
    >>> sources = {"popularity": Popularity(), "itemcf": ItemCF()}
    >>> spec = serving_spec(TwoStage(sources, quotas=10, random_state=0).fit(data))
    >>> spec.ranked_by in RANKED_BY, spec.quotas.tolist(), spec.feature_names[:2]
    (True, [10, 10], ('popularity_score', 'itemcf_score'))
    """
    from .selection import SourceOrder

    quotas, n_candidates, depth, windows = model._settings
    similarity, embeddings = model._serving_inputs
    ranker = model.ranker_
    source = rank_column = rrf_column = None
    if isinstance(ranker, SourceOrder):
        ranked_by = "source"
        source, rank_column, rrf_column = ranker.source, ranker.rank_column, ranker.rrf_column
        ranker = None
    elif ranker is None:
        ranked_by = "rrf"
    else:
        ranked_by = "ranker"
    state = model.state_
    return ServingSpec(
        sources=MappingProxyType(dict(model.sources_)),
        quotas=_read_only(np.asarray(quotas, np.int64)),
        n_candidates=int(n_candidates),
        depth=int(depth),
        rrf_k=float(model.rrf_k),
        ranked_by=ranked_by,
        ranker=ranker,
        source=source,
        rank_column=rank_column,
        rrf_column=rrf_column,
        feature_names=tuple(model.feature_names_out_),
        windows=_read_only(np.asarray(windows, np.float64)),
        n_last=int(model.n_last),
        genre_decay=float(model.genre_decay),
        sequence_window=int(model.sequence_window),
        similarity=similarity,
        embeddings=_read_only(embeddings),
        state=state,
        as_of=_read_only(model.as_of_),
        now=float(state.h_times.max()) if len(state.h_times) else 0.0,
        user_ids=_read_only(model.user_map_.ids),
        item_ids=_read_only(model.item_map_.ids),
    )
