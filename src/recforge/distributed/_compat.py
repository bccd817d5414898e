"""The optional ``[dask]`` extra: import dask and distributed, or name the ``pip install``."""

from __future__ import annotations

import numpy as np

INSTALL_HINT = 'pip install "recforge[dask]"'


def require_dask():
    """``(dask, dask.dataframe, distributed)``; an ``ImportError`` naming the extra when missing."""
    try:
        import dask
        import dask.dataframe as dd
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"recforge.distributed needs dask[dataframe] and distributed ({exc.name} is "
            f"missing): {INSTALL_HINT}"
        ) from exc
    return dask, dd, distributed


def check_client(client):
    """``client`` must be a ``distributed.Client``."""
    _, _, distributed = require_dask()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def tree_reduce(client, combine, futures, *args):
    """Pairwise-combine ``futures`` on the cluster (``combine(a, b, *args)``), left to right.

    The pairing is fixed by the order of ``futures``, so the result does not depend on timing.
    Returns one future (the first of ``futures`` when there is only one).
    """
    if not futures:
        raise ValueError("tree_reduce needs at least one future")
    level = list(futures)
    while len(level) > 1:
        merged = [
            client.submit(combine, level[i], level[i + 1], *args, pure=False)
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
    return level[0]


def regroup(client, splits, n_groups: int, take, build, group_args) -> list:
    """The all-to-all exchange: every future of ``splits`` holds a piece for each of ``n_groups``
    groups (``take(split, q)`` extracts group ``q``'s); group ``q`` is built on the cluster as
    ``build(*group_args(q), *pieces)`` from its pieces in the order of ``splits``.

    Returns the ``n_groups`` futures of the groups.
    """
    groups = []
    for q in range(n_groups):
        pieces = [client.submit(take, split, q, pure=False) for split in splits]
        groups.append(client.submit(build, *group_args(q), *pieces, pure=False))
    return groups


def worker_threads() -> int:
    """Threads of the Dask worker running the current task (1 outside a worker)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def balanced_bounds(weights: np.ndarray, n_parts: int) -> np.ndarray:
    """Cut ``range(len(weights))`` into at most ``n_parts`` non-empty ranges of about equal weight.

    Returns int64 ``bounds``: range ``q`` is ``bounds[q]:bounds[q + 1]``; every weight must be > 0.
    """
    n = weights.size
    n_parts = max(1, min(int(n_parts), n))
    cum = np.cumsum(weights, dtype=np.float64)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_parts) / n_parts, side="left") + 1
    return np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]])).astype(np.int64)
