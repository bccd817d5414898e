"""Column access for the FeatureEncoder: DataFrames and 2-D arrays, missing-value masks, parsing.

Everything here is vectorised over rows; loops run over columns (or over the distinct values of
one column), never over rows.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import scipy.sparse as sp

# A DataFrame's text (or categorical, nullable) column of up to this many rows is factorised as
# Python objects, not from its Arrow or categorical storage, whose factorisation costs ~4x as much
# on a few rows (few_rows_as_objects: the encoder's reads here, GBDT's InputSchema).
FEW_ROWS = 32


def few_rows_as_objects(col: pd.Series):
    """What to factorise of a DataFrame's column: its values as an object array when it has at most
    ``FEW_ROWS`` rows, else the column itself (factorised from its own storage)."""
    return col.to_numpy(dtype=object) if len(col) <= FEW_ROWS else col


class Table:
    """A read-only view of the encoder's input as named columns.

    ``X`` may be a pandas DataFrame (columns by name) or a 2-D array (columns named
    ``"x0", "x1", ...``; an object array may mix numbers and strings).
    """

    def __init__(self, X, name: str = "X"):
        if sp.issparse(X):
            raise TypeError(
                f"{name} must be a DataFrame or a dense 2-D array, got a sparse matrix "
                "(the encoder turns raw columns into features; pass encoded matrices to the model)"
            )
        if isinstance(X, pd.DataFrame):
            self.frame = X
            self.names = [str(c) for c in X.columns]
            if len(set(self.names)) != len(self.names):
                raise ValueError(f"{name} has duplicated column names")
            self.array = None
            self._keys = dict(zip(self.names, X.columns))
        else:
            if isinstance(X, pd.Series):
                raise TypeError(
                    f"{name} must be 2-D (a DataFrame or an array of shape (n_rows, n_columns)), "
                    "got a Series"
                )
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise ValueError(f"{name} must be 2-D (n_rows, n_columns), got shape {arr.shape}")
            if arr.dtype.kind == "c":
                raise TypeError(f"{name} must not hold complex numbers")
            self.frame = None
            self.array = arr
            self.names = [f"x{j}" for j in range(arr.shape[1])]
        self.n_rows = len(X) if self.frame is not None else self.array.shape[0]
        self._reads = {}

    def column(self, key: str) -> np.ndarray:
        """1-D array of one column (a view when possible; never modified by the encoder)."""
        if self.frame is not None:
            col = self.frame[self._frame_key(key)]
            if isinstance(col.dtype, pd.CategoricalDtype):
                return col.astype(object).to_numpy()
            if col.dtype.kind in "biuf":
                return col.to_numpy()
            # nullable and string extension dtypes -> object array with NaN for missing
            return col.to_numpy(dtype=object, na_value=np.nan)
        return self.array[:, self.names.index(key)]

    def read(self, key: str, missing_values) -> Column:
        """One column as the encoder reads it (see :class:`Column`): a numeric-dtype column as is,
        any other factorised straight from the DataFrame's own storage (an Arrow string column is
        dictionary-encoded without building a Python string per row). Read once per table: the
        outputs built from one table share the reads."""
        memo_key = (key, tuple(missing_values))
        if memo_key not in self._reads:
            self._reads[memo_key] = self._read(key, missing_values)
        return self._reads[memo_key]

    def _read(self, key: str, missing_values) -> Column:
        if self.frame is not None:
            col = self.frame[self._frame_key(key)]
            if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype.kind not in "biuf":
                return Column.factorize(
                    few_rows_as_objects(col), missing_values, object_values=True
                )
            values = col.to_numpy()
        else:
            values = self.array[:, self.names.index(key)]
        if values.dtype.kind in "biuf":
            return Column(values)
        return Column.factorize(values, missing_values, object_values=values.dtype.kind == "O")

    def _frame_key(self, key: str):
        return self._keys[key]


class Column:
    """One input column of ``n`` rows, as the encoder reads it.

    Either ``raw`` — an ndarray (n,) of a numeric or bool dtype, missing = NaN — or its distinct
    values: ``codes`` int64 (n,), the index of each row's value in ``uniques`` (object (k,), the
    distinct present values in order of first appearance), -1 where missing (NaN, None, pd.NA or
    one of the ``missing_values`` strings such as ``"?"``). Every per-value step (the missing
    strings, number parsing, category labels) then runs once per distinct value, never per row.
    ``object_values``: whether the values are Python objects (an object array, or a string,
    categorical or nullable DataFrame column), which alone may hold numbers written as text.
    """

    def __init__(self, raw=None, codes=None, uniques=None, object_values=False):
        self.raw = raw
        self.codes = codes
        self.uniques = uniques
        self.object_values = object_values
        self._categories = None

    @classmethod
    def factorize(cls, values, missing_values, object_values: bool) -> Column:
        """The distinct values of ``values`` (ndarray or Series) with the missing ones dropped."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if not isinstance(uniques, np.ndarray):
            # an Index of a DataFrame column's distinct values; a NumPy array keeps its dtype, so
            # that labels print its scalars (np.float32 values as float32)
            uniques = np.asarray(uniques, dtype=object)
        codes = np.asarray(codes, dtype=np.int64)
        missing = np.asarray(pd.isna(uniques), dtype=bool)
        if missing_values and uniques.size:
            # the missing values are strings: only a str (np.str_ included) can equal one
            strings = set(missing_values)
            missing |= np.fromiter(
                (isinstance(u, str) and u in strings for u in uniques), bool, uniques.size
            )
        if missing.any():
            # renumber the present values; code -1 reads the appended -1
            lut = np.append(np.cumsum(~missing) - 1, -1)
            lut[:-1][missing] = -1
            codes = lut[codes]
            uniques = uniques[~missing]
        return cls(codes=codes, uniques=uniques, object_values=object_values)

    @property
    def n_rows(self) -> int:
        return (self.raw if self.raw is not None else self.codes).shape[0]

    def missing(self) -> np.ndarray:
        """bool (n,): True where the value is missing."""
        if self.raw is not None:
            return np.asarray(pd.isna(self.raw), dtype=bool)
        return self.codes < 0

    def looks_numeric(self) -> bool:
        """Whether the column should be encoded as numeric: a numeric dtype, or Python objects whose
        present values all parse as numbers. Booleans are categorical."""
        if self.raw is not None:
            return self.raw.dtype.kind in "iuf"
        if not self.object_values or self.uniques.size == 0:
            return False
        if any(isinstance(v, (bool, np.bool_)) for v in self.uniques):
            return False
        return not np.isnan(_parse_values(self.uniques)).any()

    def numbers(self, column: str) -> np.ndarray:
        """float64 copy of the column, NaN where missing; non-numbers and infinities raise ValueError."""
        if self.raw is not None:
            out = self.raw.astype(np.float64, copy=True)
            out[self.missing()] = np.nan
        else:
            parsed = _parse_values(self.uniques)
            bad = np.isnan(parsed)
            if bad.any():
                first = self.uniques[np.flatnonzero(bad)[0]]
                raise ValueError(
                    f"column {column!r} is numeric but holds a non-number {first!r} "
                    f"(declare it in `categorical`, or mark the value as missing with "
                    f"`missing_values`)"
                )
            out = np.append(parsed, np.nan)[self.codes]  # code -1 reads the appended NaN
        if np.isinf(out).any():
            raise ValueError(f"column {column!r} holds an infinite value")
        return out

    def category_strings(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct category strings of the present values (sorted) and, per row, the index into
        them (int64 (n,), -1 = missing).

        Categories are compared as strings (``1`` and ``"1"`` are the same category), so a model
        file can store them without pickle. Integral floats print without ``.0`` (``3.0`` ->
        ``"3"``), so a column read as float because of a missing value matches its integer
        spelling.
        """
        if self._categories is None:
            if self.raw is not None:
                column = Column.factorize(self.raw, (), object_values=False)
            else:
                column = self
            if column.uniques.size == 0:
                self._categories = (np.array([], dtype=str), column.codes)
            else:
                labels = np.array([_category_label(u) for u in column.uniques], dtype=object)
                # different raw values may share a label (1 and "1"): merge them
                merged, inverse = np.unique(labels.astype(str), return_inverse=True)
                lut = np.append(inverse.astype(np.int64), -1)
                self._categories = (merged, lut[column.codes])
        return self._categories


def _parse_values(uniques: np.ndarray) -> np.ndarray:
    """float64 of each value of an object array, NaN where it is not a number."""
    return pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64
    )


def _category_label(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def stable_hash(strings: np.ndarray) -> np.ndarray:
    """CRC-32 of each string's UTF-8 bytes, as int64: the same in every process, platform and version."""
    return np.fromiter(
        (zlib.crc32(s.encode("utf-8")) for s in strings), dtype=np.int64, count=len(strings)
    )


def mix64(keys: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of int64 keys (vectorised), as non-negative int64: spreads cross keys over buckets."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)
