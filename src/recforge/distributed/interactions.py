"""Interactions on a Dask cluster: global id maps, partitions of whole users, per-partition splits.

:func:`from_dask_dataframe` (or :func:`from_parquet`) turns a Dask DataFrame of
(user, item[, weight][, timestamp]) rows into a :class:`DaskInteractions`:

1. each input partition's columns are normalised and checked exactly as
   :meth:`Interactions.from_arrays` does it;
2. the sorted unique user and item ids of every partition are merged in a tree: the id maps are
   those of ``Interactions.from_dataframe`` on the concatenated frame (same id → same index);
3. every user goes to one output partition: partition ``q`` holds the users with internal index in
   ``bounds[q]:bounds[q + 1]`` (cuts chosen for equal interaction counts), with all their entries
   in input order, so the duplicate policies and the per-user splits give the single-machine result.

Each output partition is an ordinary :class:`~recforge.data.Interactions` (its rows are the
partition's users, its columns the global item map) held on a worker.
"""

from __future__ import annotations

import operator

import numpy as np

from .._validation import check_choice, check_columns, check_int
from ..data import IdMap, Interactions, leave_last_k_split, temporal_split
from ..data._coo import DUPLICATE_POLICIES, check_n_items
from ..data.idmap import as_id_array
from ..data.interactions import _as_timestamps, _check_weights
from ._compat import balanced_bounds, check_client, regroup, require_dask, tree_reduce

__all__ = ["DaskInteractions", "from_dask_dataframe", "from_parquet"]


# ---------------------------------------------------------------------------------------------
# worker-side steps (module-level functions: Dask ships them by reference)
# ---------------------------------------------------------------------------------------------
def _columns(frame, user_col, item_col, weight_col, timestamp_col) -> dict:
    """One input partition's columns, normalised and checked as ``Interactions.from_arrays``."""
    n = len(frame)
    weights = None
    if weight_col is not None:
        weights = frame[weight_col].to_numpy(dtype=np.float64, na_value=np.nan)
        _check_weights(weights, "weights")
    return {
        "users": as_id_array(frame[user_col], "users"),
        "items": as_id_array(frame[item_col], "items"),
        "weights": weights,
        "timestamps": _as_timestamps(
            None if timestamp_col is None else frame[timestamp_col].to_numpy(), n
        ),
    }


def _unique_ids(cols: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(cols["users"]), np.unique(cols["items"])


def _union_ids(a: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """Sorted union of two sorted id arrays of the kinds ``as_id_array`` returns."""
    if a.size == 0:
        return b
    if b.size == 0:
        return a
    kinds = {a.dtype.kind, b.dtype.kind}
    if "U" in kinds and len(kinds) > 1:
        raise TypeError(f"{name} must all be integers or all be strings; the partitions hold both")
    if kinds == {"i", "u"}:  # a uint64 column: partitions below 2**63 were narrowed to int64
        if min(a[0], b[0]) < 0:
            raise TypeError(f"{name} mix negative integers with integers beyond the int64 range")
        a, b = a.astype(np.uint64), b.astype(np.uint64)
    return np.union1d(a, b)


def _merge_unique(a, b):
    return _union_ids(a[0], b[0], "users"), _union_ids(a[1], b[1], "items")


def _to_indices(cols: dict, user_map: IdMap, item_map: IdMap) -> dict:
    """Replace external ids by global internal indices (rows int64, cols int64)."""
    return {
        "rows": np.asarray(user_map.index(cols["users"], name="user"), dtype=np.int64).reshape(-1),
        "cols": np.asarray(item_map.index(cols["items"], name="item"), dtype=np.int64).reshape(-1),
        "weights": cols["weights"],
        "timestamps": cols["timestamps"],
    }


def _activity(indexed: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(indexed["rows"], return_counts=True)


def _split_by_partition(indexed: dict, bounds: np.ndarray) -> tuple[dict, np.ndarray]:
    """Entries ordered by output partition (stable: input order kept inside), and the offsets."""
    part = np.searchsorted(bounds, indexed["rows"], side="right") - 1
    order = np.argsort(part, kind="stable")
    offsets = np.searchsorted(part[order], np.arange(bounds.size), side="left")
    moved = {key: None if value is None else value[order] for key, value in indexed.items()}
    return moved, offsets


def _bucket(split: tuple[dict, np.ndarray], q: int) -> dict:
    moved, offsets = split
    lo, hi = offsets[q], offsets[q + 1]
    return {key: None if value is None else value[lo:hi] for key, value in moved.items()}


def _build_partition(
    start: int, user_ids: np.ndarray, item_map: IdMap, duplicates: str, *buckets: dict
) -> Interactions:
    """Output partition: the users ``start .. start + len(user_ids) - 1`` as an ``Interactions``."""
    rows = np.concatenate([b["rows"] for b in buckets]) - np.int64(start)
    cols = np.concatenate([b["cols"] for b in buckets])
    if buckets[0]["weights"] is None:
        weights = np.ones(rows.size, dtype=np.float64)
    else:
        weights = np.concatenate([b["weights"] for b in buckets])
    ts = (
        None
        if buckets[0]["timestamps"] is None
        else np.concatenate([b["timestamps"] for b in buckets])
    )
    return Interactions._from_index(rows, cols, weights, ts, IdMap(user_ids), item_map, duplicates)


def _summary(part: Interactions) -> tuple[int, bool]:
    return part.nnz, part.timestamps is not None


def _apply(part: Interactions, split, kwargs: dict):
    return split(part, **kwargs)


def _positives(part: Interactions, threshold) -> Interactions:
    return part.positives(threshold)


# ---------------------------------------------------------------------------------------------
# the collection
# ---------------------------------------------------------------------------------------------
class DaskInteractions:
    """Users × items interactions split by user across a Dask cluster.

    Built by :func:`from_dask_dataframe` / :func:`from_parquet`; every method returns a new object
    with the same id maps and user partitions.

    Attributes
    ----------
    client : distributed.Client
    user_map, item_map : IdMap
        The global id maps (those of ``Interactions.from_dataframe`` on the whole frame).
    bounds : ndarray of shape (n_partitions + 1,), int64
        Partition ``q`` holds the users with internal index in ``bounds[q]:bounds[q + 1]``.
    partitions : list of distributed.Future
        Partition ``q`` as an :class:`~recforge.data.Interactions` of shape
        ``(bounds[q + 1] - bounds[q], n_items)`` on a worker.
    nnz, n_users, n_items, n_partitions : int
    has_timestamps : bool

    Examples
    --------
    On a cluster (not run as a doctest)::

        import pandas as pd, dask.dataframe as dd
        from distributed import Client
        from recforge.distributed import from_dask_dataframe
        client = Client(n_workers=2, threads_per_worker=1)
        df = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"], "ts": [1, 2, 3]})
        data = from_dask_dataframe(dd.from_pandas(df, npartitions=2), client,
                                   user_col="user", item_col="item", timestamp_col="ts")
        data.shape                          # (2, 2)
    """

    def __init__(
        self, client, partitions, bounds, user_map: IdMap, item_map: IdMap, *, summaries=None
    ):
        self.client = client
        self.partitions = list(partitions)
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.bounds.flags.writeable = False
        self.user_map = user_map
        self.item_map = item_map
        if summaries is None:  # also surfaces a worker's error (bad input) here, at construction
            summaries = client.gather(client.map(_summary, self.partitions, pure=False))
        self.nnz = int(sum(s[0] for s in summaries))
        self.has_timestamps = bool(summaries) and all(s[1] for s in summaries)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_users, self.n_items

    @property
    def n_partitions(self) -> int:
        return len(self.partitions)

    def __repr__(self) -> str:
        return (
            f"DaskInteractions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"n_partitions={self.n_partitions}, timestamps={self.has_timestamps})"
        )

    def partition_user_ids(self, q: int) -> np.ndarray:
        """External ids of partition ``q``'s users, in internal order."""
        q = check_int(q, "q", min_value=0, max_value=self.n_partitions - 1)
        return self.user_map.ids[self.bounds[q] : self.bounds[q + 1]]

    def same_layout(self, other, name: str = "other") -> None:
        """Raise ``ValueError`` unless ``other`` has the same id maps and user partitions."""
        if not isinstance(other, DaskInteractions):
            raise TypeError(f"{name} must be a DaskInteractions, got {type(other).__name__}")
        if not (
            np.array_equal(self.bounds, other.bounds)
            and self.user_map == other.user_map
            and self.item_map == other.item_map
        ):
            raise ValueError(
                f"{name} has other id maps or user partitions; build both sides with one "
                "split of one DaskInteractions"
            )

    def _derive(self, partitions) -> DaskInteractions:
        return DaskInteractions(self.client, partitions, self.bounds, self.user_map, self.item_map)

    def _split(self, func, **kwargs) -> tuple[DaskInteractions, DaskInteractions]:
        client = self.client
        pairs = client.map(_apply, self.partitions, split=func, kwargs=kwargs, pure=False)
        train = [client.submit(operator.getitem, p, 0, pure=False) for p in pairs]
        test = [client.submit(operator.getitem, p, 1, pure=False) for p in pairs]
        return self._derive(train), self._derive(test)

    def positives(self, threshold: float) -> DaskInteractions:
        """Only the entries with weight >= ``threshold`` (as :meth:`Interactions.positives`)."""
        return self._derive(
            self.client.map(_positives, self.partitions, threshold=threshold, pure=False)
        )

    def temporal_split(self, test_fraction: float = 0.2, min_interactions: int = 5):
        """:func:`recforge.data.temporal_split` per partition: the single-machine split.

        The split is a per-user rule and every user lives in one partition, so the union of the
        partitions' (train, test) is the split of the whole data. Returns ``(train, test)``.
        """
        return self._split(
            temporal_split, test_fraction=test_fraction, min_interactions=min_interactions
        )

    def leave_last_k_split(self, k: int = 1, min_interactions: int = 2):
        """:func:`recforge.data.leave_last_k_split` per partition (the single-machine split)."""
        return self._split(leave_last_k_split, k=k, min_interactions=min_interactions)

    def to_local(self) -> Interactions:
        """Gather every partition into one :class:`~recforge.data.Interactions` on the client.

        Equal (matrix, timestamps, id maps) to ``Interactions.from_dataframe`` on the whole frame.
        Memory: the whole data set on the client.
        """
        parts = self.client.gather(self.partitions)
        nnz = sum(p.nnz for p in parts)
        idx_dtype = np.int32 if nnz < 2**31 else np.int64
        indptr = np.zeros(self.n_users + 1, dtype=idx_dtype)
        offset = 0
        for q, p in enumerate(parts):
            lo, hi = self.bounds[q], self.bounds[q + 1]
            indptr[lo + 1 : hi + 1] = p._indptr[1:].astype(idx_dtype) + offset
            offset += p.nnz
        indices = np.concatenate([p._indices for p in parts]).astype(np.int32, copy=False)
        data = np.concatenate([p._data for p in parts]).astype(np.float32, copy=False)
        ts = np.concatenate([p.timestamps for p in parts]) if self.has_timestamps else None
        return Interactions._trusted(
            indptr, indices, data, self.shape, ts, self.user_map, self.item_map
        )


# ---------------------------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------------------------
def from_dask_dataframe(
    ddf,
    client,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col=None,
    timestamp_col=None,
    duplicates: str = "raise",
    n_partitions=None,
) -> DaskInteractions:
    """Build a :class:`DaskInteractions` from a Dask DataFrame with one row per interaction.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Not modified; read once (the steps run on ``client``'s workers).
    client : distributed.Client
    user_col, item_col, weight_col, timestamp_col, duplicates
        As in :meth:`Interactions.from_dataframe` (ids: ints or strings; weights finite and
        >= 0, default 1.0; timestamps numbers or datetimes).
    n_partitions : int >= 1, optional
        Output partitions (default: ``ddf.npartitions``), cut for about equal interaction counts;
        fewer when there are fewer users.

    Returns
    -------
    DaskInteractions
        ``.to_local()`` equals ``Interactions.from_dataframe(ddf.compute(), ...)``.

    Raises
    ------
    TypeError
        ``ddf`` is not a Dask DataFrame, ``client`` not a ``distributed.Client``, ids of mixed type.
    ValueError
        A column is missing, ``ddf`` has no rows, bad weights or timestamps, duplicated
        (user, item) pairs with ``duplicates="raise"``.
    """
    _, dd, _ = require_dask()
    check_client(client)
    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(f"ddf must be a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    check_columns(
        ddf,
        "ddf",
        {
            "user_col": user_col,
            "item_col": item_col,
            "weight_col": weight_col,
            "timestamp_col": timestamp_col,
        },
    )
    check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
    n_partitions = (
        ddf.npartitions
        if n_partitions is None
        else check_int(n_partitions, "n_partitions", min_value=1)
    )
    wanted = [c for c in (user_col, item_col, weight_col, timestamp_col) if c is not None]
    frames = client.compute(ddf[wanted].to_delayed())
    cols = client.map(
        _columns,
        frames,
        user_col=user_col,
        item_col=item_col,
        weight_col=weight_col,
        timestamp_col=timestamp_col,
        pure=False,
    )
    uniques = tree_reduce(client, _merge_unique, client.map(_unique_ids, cols, pure=False))
    user_ids, item_ids = uniques.result()
    if user_ids.size == 0:
        raise ValueError("ddf has no rows; there are no interactions to distribute")
    check_n_items(item_ids.size, "items")
    user_map, item_map = IdMap(user_ids), IdMap(item_ids)
    user_map_f = client.scatter(user_map, broadcast=True, hash=False)
    item_map_f = client.scatter(item_map, broadcast=True, hash=False)
    indexed = client.map(_to_indices, cols, user_map=user_map_f, item_map=item_map_f, pure=False)

    activity = np.zeros(len(user_map), dtype=np.int64)
    for rows, counts in client.gather(client.map(_activity, indexed, pure=False)):
        activity[rows] += counts
    bounds = balanced_bounds(activity, n_partitions)
    splits = client.map(_split_by_partition, indexed, bounds=bounds, pure=False)
    parts = regroup(
        client,
        splits,
        bounds.size - 1,
        _bucket,
        _build_partition,
        lambda q: (int(bounds[q]), user_map.ids[bounds[q] : bounds[q + 1]], item_map_f, duplicates),
    )
    return DaskInteractions(client, parts, bounds, user_map, item_map)


def from_parquet(
    path,
    client,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col=None,
    timestamp_col=None,
    duplicates: str = "raise",
    n_partitions=None,
) -> DaskInteractions:
    """:func:`from_dask_dataframe` on ``dask.dataframe.read_parquet(path)`` (the named columns).

    ``path``: a file, a directory or a glob of Parquet files (anything ``read_parquet`` takes).
    """
    _, dd, _ = require_dask()
    columns = [c for c in (user_col, item_col, weight_col, timestamp_col) if c is not None]
    ddf = dd.read_parquet(path, columns=columns)
    return from_dask_dataframe(
        ddf,
        client,
        user_col=user_col,
        item_col=item_col,
        weight_col=weight_col,
        timestamp_col=timestamp_col,
        duplicates=duplicates,
        n_partitions=n_partitions,
    )
