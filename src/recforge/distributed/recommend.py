"""Batch recommendation for many users on a Dask cluster, partition by partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import check_int
from ._compat import check_client, require_dask
from ._shipping import load_shipped, ship_model
from .interactions import DaskInteractions

__all__ = ["batch_recommend"]

#: output partitions per worker thread when the users are not already partitioned
PARTITIONS_PER_THREAD = 4


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


def _recommend_partition(
    blob: bytes,
    class_path: str,
    digest: str,
    users,
    k: int,
    filter_seen: bool,
    filter_items,
    items,
    batch_size: int,
) -> pd.DataFrame:
    """One partition of users → rows (user, rank, item, score), ``k`` per user, best first."""
    model = load_shipped(class_path, digest, blob)
    users = _user_array(users)
    meta = _meta(model.user_map_.ids, model.item_map_.ids)
    if users.size == 0:
        return meta
    ids, scores = [], []
    for start in range(0, users.size, batch_size):
        item_ids, item_scores = model.recommend(
            users[start : start + batch_size],
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


def _user_sources(users, model, client, n_partitions):
    """The user partitions: numpy arrays of ids, or the delayed partitions of a Dask collection."""
    dask, dd, _ = require_dask()
    import dask.array as da

    if users is None or isinstance(users, (np.ndarray, list, tuple, pd.Series, pd.Index)):
        ids = model.user_map_.ids if users is None else _user_array(users)
        if n_partitions is None:
            n_partitions = PARTITIONS_PER_THREAD * max(1, sum(client.nthreads().values()))
        n_partitions = check_int(n_partitions, "n_partitions", min_value=1)
        return [chunk for chunk in np.array_split(ids, min(n_partitions, max(1, ids.size)))]
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

    The model is saved to ``.npz`` bytes once, broadcast to every worker and loaded there once per
    worker process (never pickled); each partition of users is scored with ``model.recommend``.

    Parameters
    ----------
    model : fitted recall model
        Anything with the recommend contract of :mod:`recforge.recall.base` and ``save``/``load``.
    client : distributed.Client
    users : optional
        ``None`` (every user of the model), a :class:`DaskInteractions` (its users, by partition),
        a Dask Series / Index / 1-D Array / one-column DataFrame of user ids (its partitions), or an
        array-like of user ids (split into ``n_partitions``).
    k, filter_seen, filter_items, items
        As in ``model.recommend``.
    n_partitions : int >= 1, optional
        Partitions of an in-memory ``users`` (default: 4 per worker thread).
    batch_size : int >= 1, default 4096
        Users per ``recommend`` call inside a partition (bounds a worker's scoring memory).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``user`` (the ids as given), ``rank`` (int32, 1 = best), ``item`` (the model's item
        ids; int64 or object) and ``score`` (float32): ``k`` rows per user in rank order, the
        rows of ``model.recommend(users, k)`` flattened, padding (``-1``/``None``, ``-inf``)
        included.
        Unknown user ids raise ``KeyError`` when the frame is computed.

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
    shipped = ship_model(client, model)
    sources = _user_sources(users, model, client, n_partitions)
    extras = [
        None if arr is None else client.scatter(np.asarray(arr), broadcast=True, hash=False)
        for arr in (filter_items, items)
    ]
    task = dask.delayed(_recommend_partition, pure=True)
    parts = [
        task(
            shipped.blob,
            shipped.class_path,
            shipped.digest,
            src,
            k,
            bool(filter_seen),
            *extras,
            batch_size,
        )
        for src in sources
    ]
    return dd.from_delayed(
        parts, meta=_meta(model.user_map_.ids, model.item_map_.ids), verify_meta=False
    )
