"""Candidates: the merge of several recall sources' lists per user.

Each source contributes its first ``quota`` items not already taken by an earlier source; when the
sources together find fewer than the target, the remaining slots are filled from all the fetched
items in reciprocal-rank-fusion order. Every candidate keeps each source's score and rank (NaN
where that source did not list it), the number of sources that listed it and its fusion score
``rrf = sum_s 1 / (rrf_k + rank_s)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._threads import resolve_n_threads
from .._validation import check_float, check_int

#: The constant of reciprocal rank fusion (Cormack et al. 2009).
RRF_K = 60.0


@dataclasses.dataclass
class Candidates:
    """One block of users' merged candidates (user-sorted, CSR-like).

    Attributes
    ----------
    offsets : int64 (n_rows + 1,)
        Row ``r``'s candidates are ``items[offsets[r]:offsets[r + 1]]``.
    items : int64 (n,)
        Internal item indices, in fusion order within a row.
    source_scores, source_ranks : float32 (n, n_sources)
        Each source's score and 1-based rank of the item; NaN where the source did not list it.
    n_sources : float32 (n,)
        How many sources listed the item.
    rrf : float32 (n,)
        Reciprocal rank fusion score.
    """

    offsets: np.ndarray
    items: np.ndarray
    source_scores: np.ndarray
    source_ranks: np.ndarray
    n_sources: np.ndarray
    rrf: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1

    def rows(self) -> np.ndarray:
        """The row of every candidate, int64 (n,)."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.offsets))


def check_quotas(quotas, names) -> np.ndarray:
    """``quotas``: one int for every source, or a dict name → int (every source named). int64 (n_sources,)."""
    if isinstance(quotas, dict):
        unknown = set(quotas) - set(names)
        if unknown:
            raise KeyError(
                f"quotas names unknown source(s) {sorted(unknown)}; sources are {list(names)}"
            )
        missing = [n for n in names if n not in quotas]
        if missing:
            raise ValueError(f"quotas has no entry for source(s) {missing}")
        values = [check_int(quotas[n], f"quotas[{n!r}]", min_value=0) for n in names]
    else:
        values = [check_int(quotas, "quotas", min_value=0)] * len(names)
    if sum(values) == 0:
        raise ValueError("quotas must give at least one candidate in total")
    return np.asarray(values, np.int64)


def merge_lists(
    lists, scores, quotas, target: int, rrf_k: float = RRF_K, n_threads: int = 1
) -> Candidates:
    """Merge per-source ranked lists into :class:`Candidates`.

    Parameters
    ----------
    lists : int64 (n_sources, n_rows, depth)
        Internal item indices per source and row, best first; ``-1`` pads.
    scores : float32 (n_sources, n_rows, depth)
        The sources' scores of those items.
    quotas : int64 (n_sources,)
        New items each source contributes first (in source order).
    target : int
        Candidates per row (at most): the quotas, then fill-up in fusion order.
    rrf_k : float
        Fusion constant.
    n_threads : int, default 1
        Threads of the merge kernel (the result does not depend on it).

    Examples
    --------
    >>> import numpy as np
    >>> lists = np.array([[[5, 6, 7]], [[6, 8, -1]]])       # 2 sources, 1 user, depth 3
    >>> scores = np.array([[[3., 2., 1.]], [[9., 8., -np.inf]]], np.float32)
    >>> c = merge_lists(lists, scores, quotas=np.array([1, 1]), target=3)
    >>> c.items.tolist(), c.n_sources.tolist()               # 5 and 6 by quota, 8 fills (fusion order)
    ([6, 5, 8], [2.0, 1.0, 1.0])
    >>> c.source_ranks.tolist()
    [[2.0, 1.0], [1.0, nan], [nan, 2.0]]
    """
    from ..kernels.pipeline import merge_candidates

    lists = np.ascontiguousarray(lists, np.int64)
    scores = np.ascontiguousarray(scores, np.float32)
    if lists.ndim != 3 or scores.shape != lists.shape:
        raise ValueError(
            f"lists and scores must both have shape (n_sources, n_rows, depth), "
            f"got {lists.shape} and {scores.shape}"
        )
    quotas = np.ascontiguousarray(quotas, np.int64)
    if quotas.shape != (lists.shape[0],):
        raise ValueError(
            f"quotas must have one entry per source ({lists.shape[0]}), got shape {quotas.shape}"
        )
    target = check_int(target, "target", min_value=1)
    rrf_k = check_float(rrf_k, "rrf_k", min_value=0.0)
    n_sources, n_rows, _ = lists.shape
    items = np.full((n_rows, target), -1, np.int64)
    src_scores = np.full((n_rows, target, n_sources), np.nan, np.float32)
    src_ranks = np.full((n_rows, target, n_sources), np.nan, np.float32)
    rrf = np.zeros((n_rows, target), np.float32)
    n_src = np.zeros((n_rows, target), np.float32)
    counts = np.zeros(n_rows, np.int64)
    merge_candidates(
        lists,
        quotas,
        target,
        rrf_k,
        items,
        src_scores,
        src_ranks,
        rrf,
        n_src,
        counts,
        scores,
        n_threads=resolve_n_threads(n_threads),
    )
    keep = np.arange(target)[None, :] < counts[:, None]
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Candidates(
        offsets=offsets,
        items=items[keep],
        source_scores=src_scores[keep],
        source_ranks=src_ranks[keep],
        n_sources=n_src[keep],
        rrf=rrf[keep],
    )


def _answers_in_indices(model, item_map) -> bool:
    from ..recall.base import RecallModel

    return isinstance(model, RecallModel) and (
        model.item_map_ is item_map or model.item_map_ == item_map
    )


def fetch_lists(
    sources: dict,
    item_map,
    user_ids=None,
    *,
    history=None,
    depth: int,
    filter_seen=True,
    filter_items=None,
    items=None,
):
    """Each source's top-``depth`` lists as internal item indices: (lists, scores), (n_sources, n_rows, depth).

    ``user_ids`` (external ids) calls ``recommend``; ``history=(item_ids, weights)`` calls
    ``recommend_from_history`` for one new user instead.
    """
    n_rows = 1 if history is not None else len(user_ids)
    lists = np.full((len(sources), n_rows, depth), -1, np.int64)
    scores = np.full((len(sources), n_rows, depth), -np.inf, np.float32)
    user_idx = {}  # internal user indices per user map (the sources usually share one)
    for s, model in enumerate(sources.values()):
        if history is not None:
            ids, val = model.recommend_from_history(
                history[0],
                weights=history[1],
                k=depth,
                filter_seen=filter_seen,
                filter_items=filter_items,
                items=items,
            )
            ids, val = ids[None, :], val[None, :]
        elif _answers_in_indices(model, item_map):
            # a recforge recall model on the same item map: its internal top-k directly (what
            # ``recommend`` computes before mapping the indices to ids, which we would map back)
            key = id(model.user_map_)
            if key not in user_idx:
                user_idx[key] = np.atleast_1d(
                    np.asarray(model.user_map_.index(user_ids, name="user_id"), np.int64)
                )
            model._check_k(depth)
            idx, val = model._topk_users(
                user_idx[key], depth, filter_seen, model._global_mask(filter_items, items)
            )
            val = val.astype(np.float32, copy=False)
            valid = np.isfinite(val)
            lists[s][valid] = idx[valid]
            scores[s][valid] = val[valid]
            continue
        else:
            ids, val = model.recommend(
                user_ids, k=depth, filter_seen=filter_seen, filter_items=filter_items, items=items
            )
        valid = np.isfinite(val)
        if valid.any():
            lists[s][valid] = np.asarray(
                item_map.index(ids[valid], name="item_id"), np.int64
            ).reshape(-1)
            scores[s][valid] = val[valid]
    return lists, scores
