"""``Interactions``: an immutable users x items CSR matrix with id maps and optional timestamps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import (
    as_numpy,
    check_1d,
    check_choice,
    check_columns,
    check_float,
    check_sparse,
)
from ._coo import DUPLICATE_POLICIES, build_csr, check_n_items
from ._segsort import order_within_rows
from .idmap import IdMap, as_id_array

_KEEP = object()


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _check_weights(data: np.ndarray, name: str = "weights") -> None:
    if data.size == 0:
        return
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} must be finite (no NaN/inf); position {bad} is {data[bad]}")
    if data.min() < 0:
        bad = int(np.flatnonzero(data < 0)[0])
        raise ValueError(
            f"{name} must be >= 0 (negative weights are not supported); "
            f"position {bad} is {data[bad]}"
        )


def _as_timestamps(timestamps, n: int) -> np.ndarray | None:
    """float64 seconds since the epoch (UTC) from numbers, datetime64 or (aware) datetimes."""
    if timestamps is None:
        return None
    if isinstance(timestamps, (pd.Series, pd.Index)) and isinstance(
        timestamps.dtype, pd.DatetimeTZDtype
    ):
        timestamps = pd.DatetimeIndex(timestamps).tz_convert("UTC").tz_localize(None)
    ts = as_numpy(timestamps)
    if ts.dtype.kind == "O" and ts.size:
        ts = _object_timestamps(ts)
    if ts.dtype.kind == "M":  # datetime64 -> seconds since the epoch
        if np.isnat(ts).any():
            bad = int(np.flatnonzero(np.isnat(ts))[0])
            raise ValueError(f"timestamps must not be missing (NaT at position {bad})")
        ts = ts.astype("datetime64[ns]").astype(np.int64) / 1e9
    elif ts.dtype.kind in "USm":
        hint = " (parse date strings with pandas.to_datetime)" if ts.dtype.kind in "US" else ""
        raise TypeError(f"timestamps must be numbers or datetimes, got dtype {ts.dtype}{hint}")
    ts = check_1d(ts, "timestamps", dtype=np.float64, finite=True)
    if ts.size != n:
        raise ValueError(
            f"timestamps has {ts.size} entries, expected {n} (one per stored interaction)"
        )
    return ts


def _object_timestamps(ts: np.ndarray) -> np.ndarray:
    """An object array of numbers or numeric strings (float64), or of datetimes (datetime64, aware
    ones converted to UTC)."""
    kind = pd.api.types.infer_dtype(ts, skipna=False)
    if kind in ("datetime", "datetime64", "date"):
        return pd.to_datetime(pd.Series(ts), utc=True).dt.tz_localize(None).to_numpy()
    try:
        return pd.to_numeric(pd.Series(ts)).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        pass
    first = next((v for v in ts.tolist() if not isinstance(v, (int, float))), ts[0])
    hint = " (parse date strings with pandas.to_datetime first)" if isinstance(first, str) else ""
    raise TypeError(
        f"timestamps must be numbers or datetimes, got {kind} values such as {first!r}{hint}"
    )


def _as_idmap(value, n: int, name: str) -> IdMap:
    if value is None:
        return IdMap(np.arange(n, dtype=np.int64))
    m = value if isinstance(value, IdMap) else IdMap(value)
    if len(m) != n:
        what = "rows" if "user" in name else "columns"
        raise ValueError(f"{name} has {len(m)} ids but the matrix has {n} {what}")
    return m


def _external_index(values, ids, name: str) -> tuple[np.ndarray, IdMap]:
    """Internal indices (int64) of external ``values`` and the map (built by np.unique when ids is None)."""
    if ids is not None:
        m = ids if isinstance(ids, IdMap) else IdMap(ids)
        arr = as_id_array(values, f"{name}s")
        return m.index(arr, name=name), m
    arr = as_id_array(values, f"{name}s")
    uniq, inverse = np.unique(arr, return_inverse=True)
    return inverse.astype(np.int64, copy=False).reshape(-1), IdMap(uniq)


class Interactions:
    """Users x items interactions: a canonical CSR matrix, id maps and optional timestamps.

    Immutable: every attribute is a read-only view; methods return new objects.

    Parameters
    ----------
    matrix : scipy.sparse matrix/array or 2-D array-like of shape (n_users, n_items)
        Weights (implicit confidence, rating, count...). Copied to a CSR float32 matrix with int32
        indices, sorted indices and no duplicates. Stored zeros of a sparse input are kept
        (an explicit weight 0); zeros of a dense input are absent entries.
    timestamps : array-like of shape (nnz,), optional
        One time per stored entry, aligned with ``matrix.tocoo()`` order (the ``data`` order of a
        COO/CSR/CSC input; row-major order of the non-zeros of a dense input). Numbers or
        datetime64 (converted to seconds since the epoch). Stored as float64.
    user_map, item_map : IdMap or array-like, optional
        External ids of the rows / columns (default ``arange(n)``).

    Raises
    ------
    ValueError
        Negative, NaN or infinite ``weights``; duplicated (row, col) entries in a sparse input
        (use :meth:`from_arrays` with ``duplicates=`` to merge); id maps or timestamps whose length
        does not match.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of shape (n_users, n_items)
        float32 data, int32 indices, canonical; its arrays are read-only.
    timestamps : ndarray of shape (nnz,), float64, or None
        Aligned with ``matrix.data``; read-only.
    user_map, item_map : IdMap
    n_users, n_items, nnz : int
    shape : tuple of int

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.data import Interactions
    >>> df = pd.DataFrame({"user_id": ["ann", "bob", "ann"], "item_id": [10, 20, 20],
    ...                    "rating": [5.0, 3.0, 4.0], "ts": [1, 2, 3]})
    >>> x = Interactions.from_dataframe(df, weight_col="rating", timestamp_col="ts")
    >>> x
    Interactions(n_users=2, n_items=2, nnz=3, timestamps=True)
    >>> x.matrix.toarray()
    array([[5., 4.],
           [0., 3.]], dtype=float32)
    >>> x.user_map.ids, x.item_map.ids
    (array(['ann', 'bob'], dtype='<U3'), array([10, 20]))
    >>> x.positives(4.0).nnz
    2
    """

    __slots__ = (
        "_data",
        "_indices",
        "_indptr",
        "_item_map",
        "_matrix",
        "_shape",
        "_timestamps",
        "_user_map",
    )

    def __init__(self, matrix, *, timestamps=None, user_map=None, item_map=None):
        if isinstance(matrix, Interactions):
            matrix = matrix.matrix
        if sp.issparse(matrix):
            coo = check_sparse(matrix, "matrix").tocoo()
            rows = np.asarray(coo.row, dtype=np.int64)
            cols = np.asarray(coo.col, dtype=np.int64)
            values = np.asarray(coo.data)
        else:
            dense = np.asarray(matrix)
            if dense.ndim != 2:
                raise ValueError(
                    f"matrix must be a 2-D (n_users, n_items) array or sparse matrix, "
                    f"got shape {dense.shape}"
                )
            rows, cols = np.nonzero(dense)
            values = dense[rows, cols]
            rows, cols = rows.astype(np.int64), cols.astype(np.int64)
            matrix = dense
        if values.dtype.kind not in "biuf":
            raise TypeError(f"matrix must hold numeric weights, got dtype {values.dtype}")
        shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        check_n_items(shape[1], "matrix columns")
        weights = values.astype(np.float64)
        _check_weights(weights, "weights")
        ts = _as_timestamps(timestamps, rows.size)
        umap = _as_idmap(user_map, shape[0], "user_map")
        imap = _as_idmap(item_map, shape[1], "item_map")

        def describe(j):
            return f"(row {rows[j]}, col {cols[j]})"

        indptr, indices, data, ts = build_csr(
            rows,
            cols,
            weights,
            ts,
            shape,
            duplicates="raise",
            describe=describe,
            argname="matrix",
            hint="merge them first (matrix.sum_duplicates() on a copy) or build with "
            "Interactions.from_arrays(..., duplicates='sum'|'last'|'first'|'max')",
        )
        _check_weights(data, "weights (as float32)")
        self._set(indptr, indices, data, shape, ts, umap, imap)

    # ------------------------------------------------------------------ construction helpers
    def _set(self, indptr, indices, data, shape, timestamps, user_map, item_map) -> None:
        self._indptr = _readonly(indptr)
        self._indices = _readonly(indices)
        self._data = _readonly(data)
        self._shape = shape
        self._timestamps = None if timestamps is None else _readonly(timestamps)
        self._user_map = user_map
        self._item_map = item_map
        self._matrix = sp.csr_matrix(
            (self._data, self._indices, self._indptr), shape=shape, copy=False
        )
        self._matrix.has_sorted_indices = True
        self._matrix.has_canonical_format = True

    @classmethod
    def _trusted(cls, indptr, indices, data, shape, timestamps, user_map, item_map) -> Interactions:
        """Build without validation from canonical arrays the caller owns (internal use)."""
        obj = cls.__new__(cls)
        obj._set(indptr, indices, data, shape, timestamps, user_map, item_map)
        return obj

    @classmethod
    def _from_index(cls, rows, cols, weights, timestamps, user_map, item_map, duplicates):
        """Build from COO entries already mapped to INTERNAL indices (int64 rows (n,) into
        ``user_map``, cols (n,) into ``item_map``; float64 weights (n,), checked; timestamps (n,) or
        None), merging repeated pairs by ``duplicates``; a repeat under "raise" is named by its
        external ids."""
        shape = (len(user_map), len(item_map))

        def describe(j):
            return f"(user {user_map.ids[rows[j]].item()!r}, item {item_map.ids[cols[j]].item()!r})"

        indptr, indices, data, ts = build_csr(
            rows,
            cols,
            weights,
            timestamps,
            shape,
            duplicates=duplicates,
            describe=describe,
            argname="duplicates='raise'",
        )
        _check_weights(data, "weights (as float32)")
        return cls._trusted(indptr, indices, data, shape, ts, user_map, item_map)

    def __reduce__(self):
        return (
            Interactions._trusted,
            (
                np.array(self._indptr),
                np.array(self._indices),
                np.array(self._data),
                self._shape,
                None if self._timestamps is None else np.array(self._timestamps),
                self._user_map,
                self._item_map,
            ),
        )

    def _replace(self, *, matrix=_KEEP, timestamps=_KEEP) -> Interactions:
        """A sibling with the SAME id maps and shape and a new matrix and/or timestamps.

        When ``matrix`` is replaced on an object that has timestamps, ``timestamps`` must be
        passed too (``None`` drops them): old timestamps cannot be re-aligned implicitly.
        """
        if matrix is _KEEP:
            matrix = self.matrix
            if timestamps is _KEEP:
                timestamps = self._timestamps
        elif timestamps is _KEEP:
            if self._timestamps is not None:
                raise ValueError(
                    "pass timestamps= (or timestamps=None) when replacing the matrix of "
                    "an Interactions that has timestamps"
                )
            timestamps = None
        if tuple(matrix.shape) != self._shape:
            raise ValueError(
                f"matrix has shape {tuple(matrix.shape)}, expected {self._shape} (same id maps)"
            )
        return Interactions(
            matrix, timestamps=timestamps, user_map=self._user_map, item_map=self._item_map
        )

    def _subset(self, mask: np.ndarray) -> Interactions:
        """Entries where ``mask`` (shape (nnz,), bool) is True; same maps and shape."""
        dtype = self._indptr.dtype
        csum = np.empty(self.nnz + 1, dtype=dtype)
        csum[0] = 0
        np.cumsum(mask, dtype=dtype, out=csum[1:])
        indptr = csum[self._indptr]
        ts = None if self._timestamps is None else self._timestamps[mask]
        return Interactions._trusted(
            indptr,
            self._indices[mask],
            self._data[mask],
            self._shape,
            ts,
            self._user_map,
            self._item_map,
        )

    @classmethod
    def from_arrays(
        cls,
        users,
        items,
        weights=None,
        timestamps=None,
        *,
        duplicates: str = "raise",
        user_ids=None,
        item_ids=None,
    ) -> Interactions:
        """Build from parallel arrays of EXTERNAL user and item ids.

        Parameters
        ----------
        users, items : array-like of shape (n,)
            External ids (ints or strings; int32 and int64 both work). Missing ids (NaN/None)
            raise ``ValueError``.
        weights : array-like of shape (n,), optional
            Finite, non-negative; default 1.0 for every entry. Stored as float32.
        timestamps : array-like of shape (n,), optional
            Numbers or datetime64; stored as float64 seconds.
        duplicates : {"raise", "sum", "last", "first", "max"}, default "raise"
            Policy for repeated (user, item) pairs: ``raise`` a ``ValueError`` naming the first one;
            ``sum`` the weights (keeping the latest timestamp); keep the ``last`` / ``first`` entry
            by timestamp (ties, and no timestamps, by input order); keep the ``max`` weight (ties by
            the latest timestamp, then input order).
        user_ids, item_ids : array-like or IdMap, optional
            The id universe and its order. Default: ``np.unique`` of ``users`` / ``items``. Ids
            outside a given universe raise ``KeyError`` naming the first one.

        Returns
        -------
        Interactions

        Examples
        --------
        >>> import numpy as np
        >>> from recforge.data import Interactions
        >>> x = Interactions.from_arrays(np.array([7, 7, 9]), np.array([1, 1, 2]), duplicates="sum")
        >>> x.matrix.toarray()
        array([[2., 0.],
               [0., 1.]], dtype=float32)
        """
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        n = np.shape(users)[0] if np.ndim(users) else 1
        n_items_in = np.shape(items)[0] if np.ndim(items) else 1
        if np.ndim(users) != 1 or np.ndim(items) != 1:
            raise ValueError(
                f"users and items must be 1-D, got shapes {np.shape(users)} and {np.shape(items)}"
            )
        if n != n_items_in:
            raise ValueError(f"users and items must have the same length, got {n} and {n_items_in}")
        if weights is None:
            w = np.ones(n, dtype=np.float64)
        else:
            w = check_1d(weights, "weights", dtype=np.float64)
            if w.size != n:
                raise ValueError(
                    f"weights has {w.size} entries, expected {n} (the length of users)"
                )
            _check_weights(w, "weights")
        ts = _as_timestamps(timestamps, n)
        rows, user_map = _external_index(users, user_ids, "user")
        cols, item_map = _external_index(items, item_ids, "item")
        check_n_items(len(item_map), "items")
        return cls._from_index(rows, cols, w, ts, user_map, item_map, duplicates)

    @classmethod
    def from_dataframe(
        cls,
        df,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col=None,
        timestamp_col=None,
        duplicates: str = "raise",
        user_ids=None,
        item_ids=None,
    ) -> Interactions:
        """Build from a DataFrame with one row per interaction.

        Parameters
        ----------
        df : pandas.DataFrame
            Not modified.
        user_col, item_col : str
            Columns of external user / item ids.
        weight_col : str, optional
            Column of non-negative weights; all 1.0 when None.
        timestamp_col : str, optional
            Column of times (numbers or datetimes).
        duplicates, user_ids, item_ids
            As in :meth:`from_arrays`.

        Returns
        -------
        Interactions

        Examples
        --------
        >>> import pandas as pd
        >>> from recforge.data import Interactions
        >>> df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"]})
        >>> Interactions.from_dataframe(df).shape
        (2, 2)
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        check_columns(
            df,
            "df",
            {
                "user_col": user_col,
                "item_col": item_col,
                "weight_col": weight_col,
                "timestamp_col": timestamp_col,
            },
        )
        return cls.from_arrays(
            df[user_col].to_numpy(),
            df[item_col].to_numpy(),
            None if weight_col is None else df[weight_col],
            None if timestamp_col is None else df[timestamp_col],
            duplicates=duplicates,
            user_ids=user_ids,
            item_ids=item_ids,
        )

    # ------------------------------------------------------------------ attributes
    @property
    def matrix(self) -> sp.csr_matrix:
        """CSR of shape (n_users, n_items), float32 data, int32 indices, read-only arrays.

        Built once with the Interactions: every access returns the same (read-only) matrix."""
        return self._matrix

    @property
    def timestamps(self) -> np.ndarray | None:
        """float64 array of shape (nnz,) aligned with ``matrix.data``, or None."""
        return self._timestamps

    @property
    def user_map(self) -> IdMap:
        return self._user_map

    @property
    def item_map(self) -> IdMap:
        return self._item_map

    @property
    def n_users(self) -> int:
        return self._shape[0]

    @property
    def n_items(self) -> int:
        return self._shape[1]

    @property
    def nnz(self) -> int:
        return int(self._data.size)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    def __repr__(self) -> str:
        return (
            f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"timestamps={self._timestamps is not None})"
        )

    # ------------------------------------------------------------------ derived views
    def _entry_rows(self) -> np.ndarray:
        """Row index of every stored entry, shape (nnz,), int64."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self._indptr))

    def positives(self, threshold: float) -> Interactions:
        """Only the entries with weight >= ``threshold`` (same id maps and shape, weights kept).

        Examples
        --------
        >>> import numpy as np
        >>> from recforge.data import Interactions
        >>> Interactions(np.array([[1.0, 4.5], [5.0, 0.0]])).positives(4).nnz
        2
        """
        threshold = check_float(threshold, "threshold")
        return self._subset(self._data >= threshold)

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's items in time order (for item2vec).

        Returns
        -------
        offsets : ndarray of shape (n_users + 1,), int64
            User ``u``'s items are ``items[offsets[u]:offsets[u + 1]]``.
        items : ndarray of shape (nnz,), int32
            Internal item indices ordered by (timestamp, item index) within each user; by item
            index when there are no timestamps.
        """
        offsets = self._indptr.astype(np.int64)
        if self._timestamps is None:
            return offsets, self._indices.copy()
        order = order_within_rows(self._indptr, self._timestamps)  # stable: ties keep item order
        return offsets, self._indices[order]

    def item_popularity(self) -> np.ndarray:
        """Stored entries per item, shape (n_items,), int64."""
        return np.bincount(self._indices, minlength=self.n_items).astype(np.int64, copy=False)

    def user_activity(self) -> np.ndarray:
        """Stored entries per user, shape (n_users,), int64."""
        return np.diff(self._indptr).astype(np.int64)

    def user_items(self, user_idx) -> sp.csr_matrix:
        """Rows of ``matrix`` for INTERNAL user indices: CSR of shape (m, n_items) (1 row for a scalar)."""
        idx = check_1d(user_idx, "user_idx", dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_users):
            bad = idx[(idx < 0) | (idx >= self.n_users)][0]
            raise ValueError(f"user_idx must be in [0, {self.n_users}), got {int(bad)}")
        return self.matrix[idx]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per stored entry: user_id, item_id (external ids), weight (float32)[, timestamp]."""
        cols = {
            "user_id": self._user_map.ids[self._entry_rows()],
            "item_id": self._item_map.ids[self._indices],
            "weight": self._data.copy(),
        }
        if self._timestamps is not None:
            cols["timestamp"] = self._timestamps.copy()
        return pd.DataFrame(cols)
