"""The base of recall models that score with item vectors (LFM, Item2Vec).

A subclass names its vectors through four hooks and inherits the scoring: a user's or a history's
query vector dotted with every item's target vector (plus an optional per-item bias), and
``similar_items`` as the cosine of item vectors, whose unit rows are computed once per fit, on first
use.
"""

from __future__ import annotations

import numpy as np

from .base import RecallModel

#: targets per float64 product of :func:`rowwise_scores` (fixed, so an item's product never depends
#: on the batch); the product's scratch is (n_q, TARGET_CHUNK) float64, 32 KiB per query row
TARGET_CHUNK = 4096


def rowwise_scores(queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``queries @ targets.T``: (n_q, dim) × (n_targets, dim) → (n_q, n_targets), float32.

    Computed in float64 so that a user's scores do not depend on which other users share the batch
    (BLAS blocks float32 products differently per batch shape; the float64 differences vanish when
    rounded to float32), ``TARGET_CHUNK`` targets at a time into one reused float64 scratch block
    that each chunk's float32 scores are cast from: the only (n_q, n_targets) block is the float32
    result, so a caller can score more queries per call in the same memory (every call streams
    all of ``targets`` through BLAS's packing: 41 queries per call of 100k × 64 cost 1.5× the
    GEMM time of 167). Float64 ``targets`` are used as they are (no copy); others are converted
    chunk by chunk.
    """
    queries = np.asarray(queries, np.float64)
    n_q, n_t = len(queries), len(targets)
    out = np.empty((n_q, n_t), np.float32)
    scratch = np.empty((n_q, min(TARGET_CHUNK, n_t)), np.float64)
    for start in range(0, n_t, TARGET_CHUNK):
        stop = min(start + TARGET_CHUNK, n_t)
        width = stop - start  # the last chunk may be narrower: its own scratch
        product = scratch if width == scratch.shape[1] else np.empty((n_q, width), np.float64)
        np.matmul(queries, np.asarray(targets[start:stop], np.float64).T, out=product)
        out[:, start:stop] = product
    return out


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` (n, dim) scaled to unit length, float32; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)


class EmbeddingRecall(RecallModel):
    """Recall by item vectors. Subclasses implement

    * ``_item_vectors()`` — (n_items, dim) float32, compared by cosine in ``similar_items``;
    * ``_user_queries(user_idx)`` — (len(user_idx), dim) query vectors of training users;
    * ``_history_query(item_idx, weights)`` — (dim,) query vector of a new user's history;
    * ``_target_vectors()`` — (n_items, dim) vectors the queries are dotted with;

    and may override ``_target_bias()`` — (n_items,) float32 added to every score, or ``None``.
    A subclass calls ``_cache_unit_rows()`` once its item vectors are final (end of fit, load).
    """

    _unit_rows_ = None
    _targets64_ = None

    def _item_vectors(self) -> np.ndarray:
        raise NotImplementedError

    def _user_queries(self, user_idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _history_query(self, item_idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _target_vectors(self) -> np.ndarray:
        raise NotImplementedError

    def _target_bias(self) -> np.ndarray | None:
        return None

    # ---- unit rows -------------------------------------------------------------------------------
    def _cache_unit_rows(self) -> None:
        """Mark the current item vectors final: their unit rows are computed on the first
        ``_unit_item_vectors()`` call and kept (a fit does not pay for them; implicit's and
        gensim's norms are lazy too); the float64 target copy of the previous vectors is dropped
        (``_target_vectors64`` makes the new one on first use: 8 B per item and dimension)."""
        self._unit_rows_ = (self._item_vectors(), None)
        self._targets64_ = None

    def _unit_item_vectors(self) -> np.ndarray:
        """Unit rows of ``_item_vectors()``: cached once the vectors are final (marked by
        ``_cache_unit_rows``), computed afresh for vectors that may still move (during training)."""
        vectors = self._item_vectors()
        cache = getattr(self, "_unit_rows_", None)
        if cache is None or cache[0] is not vectors:
            return unit_rows(vectors)
        if cache[1] is None:  # two threads may both compute it: the same values
            self._unit_rows_ = cache = (vectors, unit_rows(vectors))
        return cache[1]

    def _vectors_final(self) -> bool:
        """Whether ``_item_vectors()`` is the array ``_cache_unit_rows`` marked final (the marker
        holds a reference, so the identity cannot be a recycled id)."""
        cache = self._unit_rows_
        return cache is not None and cache[0] is self._item_vectors()

    def _target_vectors64(self) -> np.ndarray:
        """``_target_vectors()`` as float64 (n_items, dim), the copy ``rowwise_scores`` needs.

        Kept once the vectors are final, keyed on the target array's identity and shape: served
        again only while ``_target_vectors()`` returns that very array, of that shape, and the item
        vectors are still the ones marked final (reset by ``_cache_unit_rows`` at the end of every
        fit and at load; vectors still training — an LFM callback sees the live arrays — are
        converted afresh on every call)."""
        targets = self._target_vectors()
        if not self._vectors_final():
            return np.asarray(targets, np.float64)
        cache = self._targets64_
        if cache is None or cache[0] is not targets or cache[1].shape != targets.shape:
            self._targets64_ = cache = (targets, np.asarray(targets, np.float64))
        return cache[1]

    # ---- scoring ---------------------------------------------------------------------------------
    def _with_bias(self, scores: np.ndarray) -> np.ndarray:
        bias = self._target_bias()
        if bias is None:
            return scores
        if bias.dtype == scores.dtype:  # scores is a fresh block: add in place, no second block
            scores += bias
            return scores
        return scores + bias

    def _score_users(self, user_idx):
        targets = self._target_vectors64()
        return self._with_bias(rowwise_scores(self._user_queries(user_idx), targets))

    def _score_history(self, item_idx, weights):
        return self._with_bias(self._target_vectors() @ self._history_query(item_idx, weights))

    def _score_similar(self, item_idx):
        unit = self._unit_item_vectors()
        return rowwise_scores(unit[item_idx], unit)
