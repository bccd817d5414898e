"""Shared machinery of the neighbourhood models (ItemCF, UserCF): sparse top-K similarity and two-hop scoring.

Scores of both models have the form ``(Q @ N)[user]`` with two sparse non-negative matrices
(ItemCF: Q = user → item weights, N = item → top-K similar items; UserCF: Q = user → top-K
similar users, N = user → items). ``recommend`` reduces them to top-k with a fused C++ kernel
(no dense score block); the dense block path of the base class gives the identical result.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._progress import progress
from .._validation import check_float, check_int
from ..data import Interactions
from ..io import ModelArrays
from ..kernels._csr import csr_kernel_arrays
from ..kernels.neighbors import (
    cooccurrence_topk,
    cooccurrence_topk_symmetric,
    neighbors_to_csr,
    two_hop_scores,
    two_hop_topk,
)
from .base import RecallModel

#: pair work (Σ over intermediates of degree²) above which each pair is computed once (see
#: kernels.neighbors). Measured CPU seconds (rows / pairs kernel, 1 and 2 threads, K=50): 0.48 /
#: 0.60 at 1.1e8 (the busy bench's ItemCF), 3.07 / 2.91 at 1 thread and 3.04 / 3.31 at 2 at 1.1e9,
#: 11.0 / 6.7 at 6.3e9 (its UserCF; the pair kernel's heaps shared by the threads cost no more
#: CPU at 2 threads than at 1 there). The break-even is near 1e9.
SYMMETRIC_MIN_WORK = 10**9
SECONDS_PER_DAY = 86_400.0


def log_penalty(counts: np.ndarray) -> np.ndarray:
    """``1 / log(1 + count)`` (float64); counts >= 1 give a positive finite penalty."""
    return 1.0 / np.log1p(np.maximum(counts, 1).astype(np.float64))


def topk_neighbors(
    rows: sp.csr_matrix,
    n_neighbors: int,
    penalty: np.ndarray,
    n_threads: int,
    normalize_max: bool = False,
    cols: sp.csr_matrix | None = None,
    verbose: bool = False,
) -> sp.csr_matrix:
    """Top-``n_neighbors`` penalised-cosine neighbours of every row of the binary pattern of ``rows``.

    ``rows`` is (n_rows × n_mid) CSR; ``penalty`` (n_mid,) weighs each shared intermediate. Returns a
    (n_rows × n_rows) CSR float32 with at most ``n_neighbors`` entries per row, neighbours sorted by
    (similarity desc, index asc); with ``normalize_max`` each row is divided by its maximum.
    Rows and columns must have sorted indices.
    """
    rows = sp.csr_matrix(rows)
    if cols is None:  # the transpose, if the caller has it
        cols = rows.T.tocsr()
        cols.sort_indices()
    a_indptr, a_indices, _ = csr_kernel_arrays(rows)
    b_indptr, b_indices, _ = csr_kernel_arrays(cols)
    degree = np.diff(a_indptr).astype(np.float64)
    norm = np.sqrt(np.maximum(degree, 1.0))
    n_rows = rows.shape[0]
    work = float(np.square(np.diff(b_indptr).astype(np.float64)).sum())
    symmetric = work >= SYMMETRIC_MIN_WORK
    kernel = cooccurrence_topk_symmetric if symmetric else cooccurrence_topk
    with progress(verbose, total=n_rows, desc="similarity", unit="row") as bar:
        n_workers = max(1, min(n_rows, n_threads))  # each with its own accumulator
        idx, val, counts = kernel(
            a_indptr,
            a_indices,
            b_indptr,
            b_indices,
            np.ascontiguousarray(penalty, dtype=np.float64),
            norm,
            int(n_neighbors),
            n_workers,
            n_slices=50 if verbose else 1,
            progress=bar.update if verbose else None,
        )
    indptr, indices, data = neighbors_to_csr(idx, val, counts, bool(normalize_max))
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_rows))


def time_decay_weights(matrix: sp.csr_matrix, timestamps, rate: float) -> np.ndarray:
    """Per stored entry: ``exp(-rate * age_days)``, age = the row's latest timestamp minus the entry's.

    Without decay (``rate == 0``) every weight is 1. Returns float32 (nnz,).
    """
    if rate == 0.0:
        return np.ones(matrix.nnz, np.float32)
    if timestamps is None:
        raise ValueError(
            "time_decay > 0 needs interactions with timestamps (Interactions(..., timestamps=...))"
        )
    indptr = matrix.indptr
    counts = np.diff(indptr)
    latest = np.zeros(len(counts), np.float64)
    nonempty = counts > 0
    latest[nonempty] = np.maximum.reduceat(timestamps, indptr[:-1][nonempty])
    age_days = (np.repeat(latest, counts) - timestamps) / SECONDS_PER_DAY
    return np.exp(-rate * age_days).astype(np.float32)


#: the largest similarity :func:`topk_neighbors` gives: a penalty 1 / log(1 + count) <= 1 / log 2
#: per shared intermediate, at most sqrt(deg(i) deg(j)) of them, divided by sqrt(deg(i) deg(j))
MAX_SIMILARITY = 1.0 / np.log(2.0)


def load_similarity(arrays: ModelArrays, n: int) -> sp.csr_matrix:
    """The (n × n) similarity CSR ``sim_*`` of a model file: consistent, in [0, MAX_SIMILARITY]."""
    sim = arrays.csr("sim", (n, n))
    if sim.nnz and (sim.data.min() < 0 or sim.data.max() > MAX_SIMILARITY * (1 + 1e-6)):
        raise arrays.error(
            f"the similarities 'sim_data' must lie in [0, 1 / log 2], found "
            f"{sim.data.min()} .. {sim.data.max()}"
        )
    return sim


def load_interaction_weights(
    arrays: ModelArrays, name: str, user_items: sp.csr_matrix
) -> sp.csr_matrix:
    """The per-interaction weights ``name`` of a model file, as ``user_items``: a decay in [0, 1]
    times the interaction's weight (or 1), so in [0, max(1, weight)]."""
    weights = arrays.take(name, shape=(user_items.nnz,), dtype=np.float32, min_value=0.0)
    if np.any(weights > np.maximum(user_items.data, 1.0)):
        raise arrays.error(f"the weights {name!r} exceed the interactions' own weights")
    return sp.csr_matrix((weights, user_items.indices, user_items.indptr), shape=user_items.shape)


class TwoHopModel(RecallModel):
    """Base of models scoring ``(Q @ N)[user]``; subclasses set ``query_`` (Q) and ``next_`` (N) CSR."""

    #: use the fused top-k kernel in ``recommend`` (tests switch it off to compare with the dense path)
    _fused = True
    #: the fitted ``w(u, i)``: attribute ``<name>_`` and the model file's array ``<name>``
    _weights_name = ""
    #: the side ``similarity_`` relates (square over it): ``"items"`` or ``"users"``
    _similar_side = ""

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int(self.n_neighbors, "n_neighbors", min_value=1)
        check_float(self.time_decay, "time_decay", min_value=0.0)

    def _get_state(self) -> dict:
        s = self.similarity_
        return {
            "sim_indptr": s.indptr,
            "sim_indices": s.indices,
            "sim_data": s.data,
            self._weights_name: getattr(self, self._weights_name + "_").data,
        }

    def _set_state(self, arrays: ModelArrays) -> None:
        n = self.n_items_ if self._similar_side == "items" else self.n_users_
        self.similarity_ = load_similarity(arrays, n)
        weights = load_interaction_weights(arrays, self._weights_name, self.user_items_)
        setattr(self, self._weights_name + "_", weights)

    def _interaction_weights(self, data: Interactions) -> sp.csr_matrix:
        """``w(u, i)``: the time decay of each interaction, times its weight when ``use_weights`` (float32 CSR)."""
        matrix = data.matrix
        weights = time_decay_weights(matrix, data.timestamps, float(self.time_decay))
        if self.use_weights:
            weights = weights * matrix.data
        return sp.csr_matrix(
            (weights, matrix.indices.copy(), matrix.indptr.copy()), shape=matrix.shape
        )

    def _two_hop(self):
        q = csr_kernel_arrays(self.query_)
        n = csr_kernel_arrays(self.next_)
        return q, n

    def _score_users(self, user_idx):
        q, n = self._two_hop()
        return two_hop_scores(
            np.ascontiguousarray(user_idx, dtype=np.int64), *q, *n, self.n_items_, self._n_threads()
        )

    def _score_rows(self, q_matrix: sp.csr_matrix) -> np.ndarray:
        """Dense scores of ad-hoc query rows (``q_matrix`` has the columns of ``query_``)."""
        q = csr_kernel_arrays(sp.csr_matrix(q_matrix))
        _, n = self._two_hop()
        rows = np.arange(q_matrix.shape[0], dtype=np.int64)
        return two_hop_scores(rows, *q, *n, self.n_items_, self._n_threads())

    def _topk_users(self, user_idx, k, filter_seen, mask):
        if not self._fused:
            return super()._topk_users(user_idx, k, filter_seen, mask)
        user_idx = np.ascontiguousarray(user_idx, dtype=np.int64)
        if filter_seen:
            seen = self.user_items_[user_idx]
            ex_indptr, ex_indices, _ = csr_kernel_arrays(seen)
        else:
            ex_indptr = np.zeros(len(user_idx) + 1, np.int64)
            ex_indices = np.empty(0, np.int32)
        mask_u8 = (
            np.zeros(self.n_items_, np.uint8)
            if mask is None
            else np.ascontiguousarray(mask, dtype=np.uint8)
        )
        q, n = self._two_hop()
        n_workers = max(1, min(len(user_idx), self._n_threads()))
        return two_hop_topk(
            user_idx, *q, *n, self.n_items_, ex_indptr, ex_indices, mask_u8, int(k), n_workers
        )
