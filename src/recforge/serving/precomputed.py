"""Recall lists, merged candidates and their feature rows computed offline for the known users.

A served model is immutable after load, so each source's top ``depth`` for a known user is the
same at every request: :class:`PrecomputedRecall` computes it once per user and source, through
the request path's own :meth:`~recforge.serving.plan.SourcePath.user`, and keeps the valid entries
in CSR-like arrays (row pointers int64 (n_users + 1,), items int32, scores float32 per source).
The merge of those lists and the candidates' feature rows are then the same at every request too:
:class:`PrecomputedCandidates` keeps them per user (one contiguous float32 block of rows each), so
a known user's request only ranks and orders.
"""

from __future__ import annotations

import numpy as np

#: ``precompute_recall="auto"`` keeps the lists when users × depth × sources × 8 B fit in this.
AUTO_BUDGET_BYTES = 256 * 2**20

#: Bytes of one kept entry: an int32 item index and a float32 score.
ENTRY_BYTES = 8


def check_precompute_recall(setting):
    """``setting`` as given (True, False or ``"auto"``), else ValueError naming the argument."""
    if isinstance(setting, (bool, np.bool_)) or (isinstance(setting, str) and setting == "auto"):
        return setting
    raise ValueError(f"precompute_recall must be True, False or 'auto'; got {setting!r}")


def wants_precomputed(setting, n_users: int, depth: int, n_sources: int) -> bool:
    """Whether to precompute: ``setting`` True / False forces it, ``"auto"`` when the largest
    possible lists (``n_users × depth × n_sources × 8`` bytes) fit in :data:`AUTO_BUDGET_BYTES`."""
    if check_precompute_recall(setting) == "auto":
        return n_users * depth * n_sources * ENTRY_BYTES <= AUTO_BUDGET_BYTES
    return bool(setting)


def candidate_bytes(n_sources: int, n_features: int) -> int:
    """Bytes :class:`PrecomputedCandidates` keeps per candidate: the item (int64), its score and
    rank in each source, source count and fusion score (float32), and its feature row (float32
    ``n_features``)."""
    return 8 + 4 * (2 * n_sources + 2) + 4 * n_features


def wants_precomputed_candidates(
    setting, n_users: int, depth: int, n_candidates: int, n_sources: int, n_features: int
) -> bool:
    """Whether to keep the merged candidates and feature rows as well as the lists: ``setting``
    True / False forces both; ``"auto"`` when the lists and the largest possible candidate blocks
    (``n_users × n_candidates × candidate_bytes``) fit in :data:`AUTO_BUDGET_BYTES` together."""
    if check_precompute_recall(setting) == "auto":
        lists = n_users * depth * n_sources * ENTRY_BYTES
        blocks = n_users * n_candidates * candidate_bytes(n_sources, n_features)
        return lists + blocks <= AUTO_BUDGET_BYTES
    return bool(setting)


class PrecomputedRecall:
    """Each source's top ``depth`` (internal item indices and scores, no exclusions beyond the
    user's seen items) for every known user, computed once.

    Parameters
    ----------
    sources : list of SourcePath — the plan's sources, in order
    n_users : int — the known users are internal indices ``0 .. n_users - 1``
    depth : int — the list length the request path asks each source for

    ``fill(u, lists, scores)`` writes user ``u``'s lists into ``lists`` int64 (n_sources, depth)
    and ``scores`` float32 (n_sources, depth), which the caller has filled with ``-1`` / ``-inf``.
    """

    def __init__(self, sources, n_users: int, depth: int):
        self.depth = int(depth)
        self.n_users = int(n_users)
        self._indptr, self._items, self._scores = [], [], []
        for source in sources:
            counts = np.zeros(self.n_users + 1, np.int64)
            rows_items, rows_scores = [], []
            for u in range(self.n_users):
                idx, val = source.user(u, self.depth, None)
                valid = idx >= 0
                counts[u + 1] = valid.sum()
                rows_items.append(idx[valid].astype(np.int32))
                rows_scores.append(val[valid].astype(np.float32))
            self._indptr.append(np.cumsum(counts))
            self._items.append(np.concatenate(rows_items) if rows_items else np.zeros(0, np.int32))
            self._scores.append(
                np.concatenate(rows_scores) if rows_scores else np.zeros(0, np.float32)
            )

    @property
    def nbytes(self) -> int:
        """Bytes held by the lists (row pointers, items and scores of every source)."""
        return sum(a.nbytes for a in (*self._indptr, *self._items, *self._scores))

    def fill(self, u: int, lists: np.ndarray, scores: np.ndarray) -> None:
        for s, indptr in enumerate(self._indptr):
            a, b = indptr[u], indptr[u + 1]
            lists[s, : b - a] = self._items[s][a:b]
            scores[s, : b - a] = self._scores[s][a:b]


class PrecomputedCandidates:
    """Every known user's merged candidates (``Candidates`` arrays) and their feature rows, built
    once by the request path's own steps.

    Parameters
    ----------
    build : callable u -> (Candidates of one row, float32 (n, n_features) or None)
        The plan's merge and feature steps for internal user ``u`` (no exclusions, the default
        candidate count).
    n_users : int — the known users are internal indices ``0 .. n_users - 1``

    ``take(u)`` returns user ``u``'s candidates (views, no copies) and its rows: a C-contiguous
    float32 (n, n_features) view of one table, or None when the plan ranks without feature rows.
    """

    def __init__(self, build, n_users: int):
        from ..pipeline.candidates import Candidates

        self._candidates = Candidates
        counts = np.zeros(n_users + 1, np.int64)
        parts, rows = [], []
        for u in range(n_users):
            cands, X = build(u)
            counts[u + 1] = len(cands.items)
            parts.append(cands)
            rows.append(X)
        self.offsets = np.cumsum(counts)
        self.items = np.concatenate([c.items for c in parts]).astype(np.int64)
        self.source_scores = np.concatenate([c.source_scores for c in parts])
        self.source_ranks = np.concatenate([c.source_ranks for c in parts])
        self.n_sources = np.concatenate([c.n_sources for c in parts])
        self.rrf = np.concatenate([c.rrf for c in parts])
        self.rows = None if rows[0] is None else np.ascontiguousarray(np.concatenate(rows))
        # shared by every request thread: a ranker cannot change them in place
        for array in (self.offsets, self.items, self.source_scores, self.source_ranks):
            array.flags.writeable = False
        for array in (self.n_sources, self.rrf, self.rows):
            if array is not None:
                array.flags.writeable = False

    @property
    def nbytes(self) -> int:
        """Bytes held (row pointers, candidates, feature rows)."""
        arrays = (self.offsets, self.items, self.source_scores, self.source_ranks, self.n_sources)
        return sum(a.nbytes for a in (*arrays, self.rrf)) + (
            0 if self.rows is None else self.rows.nbytes
        )

    def take(self, u: int):
        a, b = self.offsets[u], self.offsets[u + 1]
        cands = self._candidates(
            offsets=np.array([0, b - a], np.int64),
            items=self.items[a:b],
            source_scores=self.source_scores[a:b],
            source_ranks=self.source_ranks[a:b],
            n_sources=self.n_sources[a:b],
            rrf=self.rrf[a:b],
        )
        return cands, (None if self.rows is None else self.rows[a:b])
