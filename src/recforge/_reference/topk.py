"""Brute-force top-k: the specification of ``recforge.kernels.topk.topk``."""

import numpy as np


def topk_reference(scores, k, exclude_rows=None, global_mask=None):
    """For each row: drop excluded / NaN / -inf items, order by (-score, index), keep k, pad -1/-inf.

    ``exclude_rows`` is a list (one per row) of item indices to drop.
    """
    scores = np.asarray(scores)
    n_rows, n_items = scores.shape
    out_idx = np.full((n_rows, k), -1, dtype=np.int64)
    out_val = np.full((n_rows, k), -np.inf, dtype=scores.dtype)
    for r in range(n_rows):
        keep = np.ones(n_items, dtype=bool)
        if exclude_rows is not None:
            keep[np.asarray(exclude_rows[r], dtype=np.int64)] = False
        if global_mask is not None:
            keep &= ~np.asarray(global_mask, dtype=bool)
        keep &= np.isfinite(scores[r]) | (scores[r] == np.inf)
        candidates = np.flatnonzero(keep)
        order = np.lexsort((candidates, -scores[r, candidates]))  # by -score, then index
        chosen = candidates[order][:k]
        out_idx[r, : len(chosen)] = chosen
        out_val[r, : len(chosen)] = scores[r, chosen]
    return out_idx, out_val
