"""Batch recommendation for many users on a Dask cluster, partition by partition."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from .._validation import check_int
from ..recall.base import RecallModel
from ._compat import check_client, require_dask
from ._memory import MMAP_THRESHOLD_BYTES, reuse_freed_memory
from ._shipping import check_model, load_shipped, ship_model
from ._slices import ModelSplit, model_of_slice, splittable
from .interactions import DaskInteractions

__all__ = ["batch_recommend"]

#: output partitions per worker thread when the users are not already partitioned
PARTITIONS_PER_THREAD = 4
#: fewest users per ``recommend`` call on a worker (bounds the per-call overhead)
MIN_USERS_PER_CALL = 32
#: most output rows (users × k) of a partition of the model's users, unless ``batch_size`` users
#: give more: ~48 MiB of (user, rank, item, score) rows; fewer, larger tasks than ``batch_size``
#: users each (245 tasks of 4096 users cost the 1M-user ItemCF recommend-all ~2x the worker CPU of
#: one ``recommend`` call: per-task scheduling, one DataFrame and one result per task)
PARTITION_ROWS = 2**21


def users_per_call(n_items: int, batch_size: int) -> int:
    """Users per ``model.recommend`` call on a worker: at most ``batch_size``, and few enough that
    a dense float32 score block (users × ``n_items`` × 4 B, the one full-width block of
    :func:`~recforge.recall._embedding.rowwise_scores`) stays below the heap's mmap threshold
    while :func:`~recforge.distributed._memory.reuse_freed_memory` is on, so the block's memory is
    reused from call to call instead of being faulted in afresh (never below
    ``MIN_USERS_PER_CALL``). As many as fit: every call streams all item vectors through BLAS.

    >>> users_per_call(10_000, 4096)
    837
    """
    fits = (MMAP_THRESHOLD_BYTES - 2**16) // (4 * max(1, n_items))
    return max(1, min(batch_size, max(MIN_USERS_PER_CALL, fits)))


def recommend_step(model, batch_size: int) -> int:
    """Users per ``model.recommend`` call on a worker: :func:`users_per_call` for a model that
    scores dense blocks (the base class's ``_topk_users``: LFM, Item2Vec, ...), ``batch_size`` for
    one with its own kernel (ItemCF's fused top-K allocates no block; small calls would only add
    per-call work: 24k calls of 41 users cost the 1M × 100k ItemCF recommend-all ~60 % more CPU)."""
    if getattr(type(model), "_topk_users", None) is not RecallModel._topk_users:
        return batch_size
    return users_per_call(len(model.item_map_), batch_size)


def _id_dtype(ids: np.ndarray):
    return ids.dtype if ids.dtype.kind in "iu" else object


def _meta(user_ids: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": pd.Series([], dtype=_id_dtype(user_ids)),
            "rank": pd.Series([], dtype=np.int32),
            "item": pd.Series([], dtype=np.int64 if item_ids.dtype.kind in "iu" else object),
            "score": pd.Series([], dtype=np.float32),
        }
    )


def _user_array(users) -> np.ndarray:
    if isinstance(users, pd.DataFrame):
        if users.shape[1] != 1:
            raise ValueError(
                f"users must have one column of user ids, got columns {list(users.columns)}"
            )
        users = users.iloc[:, 0]
    if isinstance(users, (pd.Series, pd.Index)):
        users = users.to_numpy()
    arr = np.asarray(users)
    if arr.ndim != 1:
        raise ValueError(f"users must be 1-D, got shape {arr.shape}")
    return arr


def _partition_user_ids(part) -> np.ndarray:
    return part.user_map.ids


@dataclasses.dataclass(frozen=True)
class ModelUsers:
    """The users ``model.user_map_.ids[start:stop]``, read from the shipped model on the worker:
    a task that carries two integers instead of the ids and depends on no partition, so the
    scheduler may run it on any idle worker."""

    start: int
    stop: int


def resolve_users(users, model):
    """The user ids a task scores: ``users`` itself, or the model's range for a :class:`ModelUsers`."""
    if isinstance(users, ModelUsers):
        return model.user_map_.ids[users.start : users.stop]
    return users


def _recommend_partition(blob: bytes, class_path: str, digest: str, users, *options):
    """One partition of users → rows (user, rank, item, score), ``k`` per user, best first
    (the model shipped whole); ``options`` as for :func:`_recommend_users`."""
    model = load_shipped(class_path, digest, blob)
    return _recommend_users(model, _user_array(resolve_users(users, model)), *options)


def _recommend_slice(class_path: str, params_json: str, names: list, arrays: list, *options):
    """One partition of users → rows, the model rebuilt from the arrays ``names`` → ``arrays``:
    its item side and the partition's user slice (:mod:`._slices`)."""
    model, users = model_of_slice(class_path, params_json, names, arrays)
    return _recommend_users(model, users, *options)


def _recommend_users(
    model, users: np.ndarray, k: int, filter_seen: bool, filter_items, items, batch_size: int
) -> pd.DataFrame:
    """``model.recommend(users, k, filter_seen=..., filter_items=..., items=...)`` of ``users``
    (1-D ids) in calls of :func:`recommend_step` users → a DataFrame of ``k`` rows per user."""
    meta = _meta(model.user_map_.ids, model.item_map_.ids)
    if users.size == 0:
        return meta
    ids, scores = [], []
    step = recommend_step(model, batch_size)
    with reuse_freed_memory():
        for start in range(0, users.size, step):
            item_ids, item_scores = model.recommend(
                users[start : start + step],
                k=k,
                filter_seen=filter_seen,
                filter_items=filter_items,
                items=items,
            )
            ids.append(np.asarray(item_ids).reshape(-1))
            scores.append(np.asarray(item_scores, dtype=np.float32).reshape(-1))
    return pd.DataFrame(
        {
            "user": np.repeat(users, k).astype(meta["user"].dtype, copy=False),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), users.size),
            "item": np.concatenate(ids).astype(meta["item"].dtype, copy=False),
            "score": np.concatenate(scores),
        }
    )


def _n_parts(n_users, client, n_partitions, max_users):
    """Partitions for ``n_users`` cut anywhere: ``n_partitions``, else at least
    ``PARTITIONS_PER_THREAD`` per worker thread and at most ``max_users`` users each (small
    tasks: the last ones to finish are short, so the workers end together)."""
    if n_partitions is None:
        threads = max(1, sum(client.nthreads().values()))
        n_partitions = max(PARTITIONS_PER_THREAD * threads, -(-n_users // max_users))
    n_partitions = check_int(n_partitions, "n_partitions", min_value=1)
    return min(n_partitions, max(1, n_users))


def _user_sources(users, model, client, n_partitions, max_users=4096):
    """The user partitions: :class:`ModelUsers` ranges (every user of the model, or a
    ``DaskInteractions`` with the model's user map), numpy arrays of ids, or the delayed
    partitions of a Dask collection."""
    dask, dd, _ = require_dask()
    import dask.array as da

    model_ids = model.user_map_.ids
    if users is None or (
        isinstance(users, DaskInteractions) and np.array_equal(users.user_map.ids, model_ids)
    ):
        n_parts = _n_parts(model_ids.size, client, n_partitions, max_users)
        cuts = np.linspace(0, model_ids.size, n_parts + 1).round().astype(np.int64)
        return [ModelUsers(int(a), int(b)) for a, b in itertools.pairwise(cuts)]
    if isinstance(users, (np.ndarray, list, tuple, pd.Series, pd.Index)):
        ids = _user_array(users)
        n_parts = _n_parts(ids.size, client, n_partitions, max_users)
        return list(np.array_split(ids, n_parts))
    if isinstance(users, DaskInteractions):  # the ids are read on the worker holding the partition
        return [dask.delayed(_partition_user_ids, pure=True)(part) for part in users.partitions]
    if isinstance(users, dd.DataFrame):
        if len(users.columns) != 1:
            raise ValueError(
                f"users must have one column of user ids, got columns {list(users.columns)}"
            )
        return list(users.to_delayed())
    if isinstance(users, (dd.Series, dd.Index)):
        return list(users.to_delayed())
    if isinstance(users, da.Array):
        if users.ndim != 1:
            raise ValueError(f"users must be 1-D, got a dask array of shape {users.shape}")
        return list(users.to_delayed().ravel())
    raise TypeError(
        "users must be None (every user of the model), a DaskInteractions, a Dask "
        "Series/Index/Array/one-column DataFrame or an array of user ids, got "
        f"{type(users).__name__}"
    )


def batch_recommend(
    model,
    client,
    users=None,
    *,
    k: int = 10,
    filter_seen: bool = True,
    filter_items=None,
    items=None,
    n_partitions=None,
    batch_size: int = 4096,
):
    """Top-``k`` items for many users on a cluster: a lazy Dask DataFrame (user, rank, item, score).

    Each partition of users is scored with ``model.recommend`` on a worker; the model is never
    pickled.
    An LFM or ItemCF with in-memory users (``None``, ids, or a ``DaskInteractions`` read as the
    model's users) is split by user (:mod:`recforge.distributed._slices`): its item side is
    broadcast once and each partition's task gets only its users' rows (factors or weights and
    training interactions), so a worker holds the item side, its partitions' rows and one output.
    The slices are sent here, at the call, and stay on their workers while the returned frame
    lives; a worker lost before the frame is computed takes its slices with it (compute fails
    with lost data: call ``batch_recommend`` again).
    Any other model, or users given as a Dask collection, is saved to ``.npz`` bytes once,
    broadcast to every worker and loaded there once per worker process.

    Parameters
    ----------
    model : fitted recall model
        Anything with the recommend contract of :mod:`recforge.recall.base` and ``save``/``load``.
    client : distributed.Client
    users : optional
        ``None`` (every user of the model), a :class:`DaskInteractions` (its users, by partition;
        when its user map is the model's, as for the data the model was fitted on, it is read like
        ``None``: ranges of the model's users, nothing taken from the partitions), a Dask
        Series / Index / 1-D Array / one-column DataFrame of user ids (its partitions), or an
        array-like of user ids (split into ``n_partitions``).
    k, filter_seen, filter_items, items
        As in ``model.recommend``.
    n_partitions : int >= 1, optional
        Partitions of an in-memory ``users`` or of the model's users (default: 4 per worker
        thread, more if needed to keep each within ``max(batch_size, PARTITION_ROWS // k)``
        users, about 48 MiB of output rows).
    batch_size : int >= 1, default 4096
        Most users per ``recommend`` call inside a partition (bounds a worker's scoring memory;
        fewer when a dense score block of that many users would not fit the heap, see
        :func:`users_per_call`).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``user`` (the ids as given), ``rank`` (int32, 1 = best), ``item`` (the model's item
        ids; int64 or object) and ``score`` (float32): ``k`` rows per user in rank order, the
        rows of ``model.recommend(users, k)`` flattened, padding (``-1``/``None``, ``-inf``)
        included.
        Unknown user ids raise ``KeyError`` (here for an in-memory ``users`` of a model split by
        user, else when the frame is computed).

    Examples
    --------
    On a cluster (not run as a doctest)::

        from recforge.distributed import batch_recommend
        recs = batch_recommend(model, client, k=20)
        recs.to_parquet("recs/")                 # or recs.compute()
    """
    dask, dd, _ = require_dask()
    check_client(client)
    k = check_int(k, "k", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    check_model(model)
    sources = _user_sources(
        users, model, client, n_partitions, max(batch_size, PARTITION_ROWS // k)
    )
    extras = [
        None if arr is None else client.scatter(np.asarray(arr), broadcast=True, hash=False)
        for arr in (filter_items, items)
    ]
    args = (k, bool(filter_seen), *extras, batch_size)
    sliced = _sliced_parts(model, client, sources, args) if splittable(model) else None
    if sliced is not None:
        parts = sliced
    else:
        shipped = ship_model(client, model)
        task = dask.delayed(_recommend_partition, pure=True)
        parts = [
            task(shipped.blob, shipped.class_path, shipped.digest, src, *args) for src in sources
        ]
    return dd.from_delayed(
        parts, meta=_meta(model.user_map_.ids, model.item_map_.ids), verify_meta=False
    )


def _sliced_parts(model, client, sources, args):
    """The tasks of ``sources`` (:class:`ModelUsers` or arrays of ids) with the model split by
    user: the item side broadcast once, each partition's user slice scattered to one worker
    (round robin: the partitions hold about equal numbers of users). None when a source is a
    Dask partition (its users are known only on the cluster) or a partition's users have no
    training interactions (no model file of them): the caller ships the whole model."""
    import dask

    rows = []
    for src in sources:
        if isinstance(src, ModelUsers):
            rows.append((slice(src.start, src.stop), None))
        elif isinstance(src, np.ndarray):
            idx = np.asarray(model.user_map_.index(src, name="user_id"), np.int64)
            rows.append(np.unique(idx, return_inverse=True))
        else:
            return None
    split = ModelSplit(model)
    if any(split.n_interactions(r) == 0 for r, _ in rows):
        return None
    workers = sorted(client.scheduler_info()["workers"])
    item_names = list(split.item_side)
    item_side = client.scatter(list(split.item_side.values()), broadcast=True, hash=False)
    task = dask.delayed(_recommend_slice, pure=True)
    parts = []
    for i, (r, positions) in enumerate(rows):
        user_slice = split.user_slice(r, positions)
        futures = client.scatter(
            list(user_slice.values()), workers=[workers[i % len(workers)]], hash=False
        )
        parts.append(
            task(
                split.class_path,
                split.params_json,
                item_names + list(user_slice),
                item_side + futures,
                *args,
            )
        )
    return parts
