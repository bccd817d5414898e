"""Column access for the FeatureEncoder: DataFrames and 2-D arrays, missing-value masks, parsing.

Everything here is vectorised over rows; loops run over columns (or over the distinct values of
one column), never over rows.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import scipy.sparse as sp


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

    def _frame_key(self, key: str):
        for c in self.frame.columns:
            if str(c) == key:
                return c
        raise KeyError(key)


def missing_mask(values: np.ndarray, missing_values) -> np.ndarray:
    """True where ``values`` is NaN, None, pd.NA or equal to one of ``missing_values`` (e.g. ``"?"``)."""
    mask = np.asarray(pd.isna(values), dtype=bool)
    if values.dtype.kind in "OUS" and missing_values:
        mask |= pd.Series(values, copy=False).isin(list(missing_values)).to_numpy()
    return mask


def looks_numeric(values: np.ndarray, missing: np.ndarray) -> bool:
    """Whether a column should be encoded as numeric: a numeric dtype, or an object column whose
    non-missing values all parse as numbers. Booleans are categorical."""
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind != "O":
        return False
    present = values[~missing]
    if present.size == 0:
        return False
    uniques = pd.unique(present)  # parse each distinct value once
    if any(isinstance(v, (bool, np.bool_)) for v in uniques):
        return False
    parsed = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce")
    return not parsed.isna().any()


def parse_numeric(values: np.ndarray, missing: np.ndarray, column: str) -> np.ndarray:
    """float64 copy of a numeric column, NaN where missing; non-numbers and infinities raise ValueError."""
    if values.dtype.kind in "iuf":
        out = values.astype(np.float64, copy=True)
    elif values.dtype.kind == "b":
        out = values.astype(np.float64)
    else:
        present = ~missing
        codes, uniques = pd.factorize(values[present])  # parse each distinct value once
        parsed_u = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )
        parsed = parsed_u[codes]
        bad = np.isnan(parsed_u)
        if bad.any():
            first = uniques[np.flatnonzero(bad)[0]]
            raise ValueError(
                f"column {column!r} is numeric but holds a non-number {first!r} "
                f"(declare it in `categorical`, or mark the value as missing with `missing_values`)"
            )
        out = np.full(values.shape[0], np.nan)
        out[present] = parsed
    out[missing] = np.nan
    if np.isinf(out).any():
        raise ValueError(f"column {column!r} holds an infinite value")
    return out


def as_category_strings(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct category strings of the non-missing values and, per row, the index into them (-1 = missing).

    Categories are compared as strings (``1`` and ``"1"`` are the same category), so a model file
    can store them without pickle. Integral floats print without ``.0`` (``3.0`` -> ``"3"``), so a
    column read as float because of a missing value matches its integer spelling.
    """
    codes = np.full(values.shape[0], -1, dtype=np.int64)
    present = np.flatnonzero(~missing)
    if present.size == 0:
        return np.array([], dtype=str), codes
    sub_codes, uniques = pd.factorize(values[present], sort=False, use_na_sentinel=True)
    labels = np.array([_category_label(u) for u in uniques], dtype=object)
    # different raw values may share a label (1 and "1"): merge them
    merged, inverse = np.unique(labels.astype(str), return_inverse=True)
    codes[present] = inverse[sub_codes]
    return merged, codes


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
