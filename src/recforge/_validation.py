"""Argument checks shared by every public entry point.

Each check raises ``TypeError``/``ValueError`` with a message that names the argument, and none
of them modifies the caller's data: when a conversion is needed, a new array is returned.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: the largest finite float32: the models compute in float32, so larger inputs are refused
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_int(
    value, name: str, *, min_value: int | None = None, max_value: int | None = None
) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_float(
    value,
    name: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite Python float, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (numbers.Real, np.floating, np.integer)
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    try:
        value = float(value)
    except OverflowError:  # a Python int beyond float64's range
        bits = int(value).bit_length()
        raise ValueError(f"{name} must be finite, got an integer of {bits} bits") from None
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None and (value < min_value or (not min_inclusive and value == min_value)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {min_value}, got {value}")
    if max_value is not None and (value > max_value or (not max_inclusive and value == max_value)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {op} {max_value}, got {value}")
    return value


def check_choice(value, name: str, choices) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value


def check_random_state(random_state) -> np.random.Generator:
    """Turn ``None``/int/Generator into a ``numpy.random.Generator``."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        if random_state is not None and int(random_state) < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator, got {type(random_state).__name__}"
    )


def as_numpy(values) -> np.ndarray:
    """``values`` as a NumPy array; a pandas Series/Index keeps its dtype (its own values, not a
    lossy cast), and a nullable extension dtype (``Int64``, ``Float64``, ``boolean``) becomes its
    NumPy dtype, or float64 with NaN where values are missing."""
    if isinstance(values, (pd.Series, pd.Index)):
        dtype = values.dtype
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        if (
            isinstance(dtype, pd.api.extensions.ExtensionDtype)
            and numpy_dtype is not None
            and numpy_dtype.kind in "biuf"
        ):
            if values.isna().any():
                return values.to_numpy(dtype=np.float64, na_value=np.nan)
            return values.to_numpy(dtype=numpy_dtype)
        return values.to_numpy()
    return np.asarray(values)


def check_unique_columns(frame, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the repeated labels if a DataFrame's columns
    repeat."""
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        shown = list(dict.fromkeys(duplicated))[:5]
        raise ValueError(
            f"{name} has duplicated column names {shown}; every column needs its own name"
        )


def check_columns(frame, name: str, columns: dict) -> None:
    """Raise ``ValueError`` unless every label of ``columns`` (``{argument name: label or None}``)
    names exactly one column of the (pandas or Dask) DataFrame ``frame``, called ``name``.

    >>> import pandas as pd
    >>> check_columns(pd.DataFrame({"u": [1]}), "df", {"user_col": "user"})
    Traceback (most recent call last):
    ...
    ValueError: user_col='user' is not a column of df (columns: ['u'])
    """
    for arg, col in columns.items():
        if col is None:
            continue
        if col not in frame.columns:
            raise ValueError(
                f"{arg}={col!r} is not a column of {name} (columns: {list(frame.columns)})"
            )
        count = int((frame.columns == col).sum())
        if count > 1:
            raise ValueError(
                f"{arg}={col!r} names {count} columns of {name}; column names must be unique"
            )


def check_1d(
    values, name: str, *, dtype=None, allow_empty: bool = True, finite: bool = False
) -> np.ndarray:
    """Return ``values`` as a 1-D array (a copy when cast), or raise naming ``name``."""
    if sp.issparse(values):
        raise TypeError(f"{name} must be a 1-D array, got a sparse matrix")
    arr = as_numpy(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if dtype is not None:
        target = np.dtype(dtype)
        if target.kind in "iu" and arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ValueError(f"{name} must hold integers, got non-integral floats")
        if target.kind in "iuf" and arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(target, copy=False)
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite (no NaN/inf); position {bad} is {arr[bad]}")
    return arr


def sampling_weights(base, exponent: float, name: str) -> np.ndarray:
    """Negative-sampling weights ``base ** exponent`` (float64, ``base`` > 0), or ``ValueError``
    naming the exponent's parameter ``name`` when a weight leaves float64's range (overflows to
    inf, or underflows to 0 so that an item could never be drawn)."""
    base = np.asarray(base, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        weights = np.power(base, float(exponent))
    if not (np.all(np.isfinite(weights)) and np.all(weights > 0)):
        raise ValueError(
            f"{name}={exponent} is too extreme: the negative-sampling weights (count "
            f"or popularity) ** {name} leave float64's range; use a smaller |{name}|"
        )
    return weights


def check_2d_float(values, name: str, *, dtype=np.float32) -> np.ndarray:
    """Return a C-contiguous 2-D float array without NaN/inf, or raise naming ``name``."""
    if sp.issparse(values):
        raise TypeError(f"{name} must be a dense array, got a sparse matrix")
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return arr


def check_in_place(arr, name: str, dtype, ndim: int | None = None) -> np.ndarray:
    """Check an array a kernel updates in place: an ndarray of exactly ``dtype`` (and ``ndim``
    unless None), C-contiguous and writeable (no converted copy can stand in for it: the caller reads the result
    from this very array). Returns it unchanged; raises ``TypeError`` naming ``name``."""
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype != dtype
        or (ndim is not None and arr.ndim != ndim)
        or not arr.flags.c_contiguous
        or not arr.flags.writeable
    ):
        shape = "" if ndim is None else f"{ndim}-D "
        raise TypeError(
            f"{name} must be a writeable C-contiguous {shape}{np.dtype(dtype).name} ndarray "
            "(it is updated in place)"
        )
    return arr


_INDEX_KINDS = "iu"


def check_csr_arrays(indptr, indices, data, shape: tuple[int, int], name: str):
    """Validate the three arrays of a CSR matrix of ``shape`` before any kernel or scipy sees them.

    scipy's ``check_format(full_check=True)`` skips its checks when ``indptr[-1]`` is negative, and a
    kernel given an ``indptr`` past the data reads out of bounds, so every CSR that reaches compiled
    code goes through this one O(nnz) check: integer ``indptr``/``indices`` of 1-D shape,
    ``len(indptr) == n_rows + 1``, ``indptr[0] == 0``, non-decreasing ``indptr``,
    ``indptr[-1] == len(indices) == len(data)``, every index in ``[0, n_cols)``.

    Returns ``(indptr, indices, data)`` as int64, int64 (int32 kept when already int32) and the data
    unchanged; raises ``ValueError``/``TypeError`` naming ``name``.
    """
    n_rows, n_cols = int(shape[0]), int(shape[1])
    indptr, indices, data = np.asarray(indptr), np.asarray(indices), np.asarray(data)
    for part, arr in (("indptr", indptr), ("indices", indices)):
        if arr.dtype.kind not in _INDEX_KINDS:
            raise TypeError(f"{name}: {part} must hold integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"{name}: {part} must be 1-D, got shape {arr.shape}")
    if data.ndim != 1:
        raise ValueError(f"{name}: data must be 1-D, got shape {data.shape}")
    if len(indptr) != n_rows + 1:
        raise ValueError(
            f"{name}: indptr has {len(indptr)} entries, expected n_rows + 1 = {n_rows + 1}"
        )
    if indptr.dtype.kind == "u" and indptr.size and int(indptr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: indptr holds values beyond int64")
    indptr = indptr.astype(np.int64, copy=False)
    if indptr[0] != 0:
        raise ValueError(f"{name}: indptr[0] must be 0, got {int(indptr[0])}")
    if n_rows and np.any(indptr[1:] < indptr[:-1]):
        bad = int(np.flatnonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"{name}: indptr must be non-decreasing; it falls at row {bad}")
    nnz = int(indptr[-1])
    if nnz != len(indices) or nnz != len(data):
        raise ValueError(
            f"{name}: indptr[-1] = {nnz} must equal len(indices) = {len(indices)} and len(data) = {len(data)}"
        )
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= n_cols:
            raise ValueError(
                f"{name}: column indices must lie in [0, {n_cols}), found {lo if lo < 0 else hi}"
            )
    if indices.dtype != np.int32:
        indices = indices.astype(np.int64, copy=False)
    return indptr, indices, data


def check_csr_matrix(matrix, name: str):
    """Validate a ``scipy.sparse`` CSR/CSC matrix's arrays in place of ``check_format`` (see :func:`check_csr_arrays`).

    Returns the matrix unchanged (a CSC matrix is checked as the CSR of its transpose).
    """
    n_major = matrix.shape[0] if matrix.format == "csr" else matrix.shape[1]
    n_minor = matrix.shape[1] if matrix.format == "csr" else matrix.shape[0]
    check_csr_arrays(matrix.indptr, matrix.indices, matrix.data, (n_major, n_minor), name)
    return matrix


def check_sparse(matrix, name: str):
    """Check a user-given ``scipy.sparse`` matrix's structure before scipy or a kernel reads it.

    CSR/CSC go through :func:`check_csr_matrix`; COO's ``row``/``col`` must be integer, as long as
    ``data`` and in range; BSR's block ``indptr``/``indices`` go through :func:`check_csr_arrays`.
    (LIL, DOK and DIA hold Python or dense structures that scipy converts with bounds checks.)
    Returns the matrix unchanged; raises ``TypeError``/``ValueError`` naming ``name``.
    """
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D sparse matrix, got shape {matrix.shape}")
    fmt = matrix.format
    if fmt in ("csr", "csc"):
        check_csr_matrix(matrix, name)
    elif fmt == "coo":
        n_rows, n_cols = matrix.shape
        data = np.asarray(matrix.data)
        for part, arr, bound in (("row", matrix.row, n_rows), ("col", matrix.col, n_cols)):
            arr = np.asarray(arr)
            if arr.dtype.kind not in _INDEX_KINDS or arr.ndim != 1:
                raise TypeError(
                    f"{name}: COO {part} must be a 1-D integer array, got {arr.dtype} {arr.shape}"
                )
            if arr.shape != data.shape:
                raise ValueError(f"{name}: COO {part} has {arr.size} entries, data has {data.size}")
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= bound):
                raise ValueError(f"{name}: COO {part} indices must lie in [0, {bound})")
    elif fmt == "bsr":
        r, c = matrix.blocksize
        n_blocks = len(matrix.indices)
        if np.ndim(matrix.data) != 3 or len(matrix.data) != n_blocks:
            raise ValueError(f"{name}: BSR data must hold one ({r}, {c}) block per index")
        check_csr_arrays(
            matrix.indptr,
            matrix.indices,
            np.empty(n_blocks),
            (matrix.shape[0] // r, matrix.shape[1] // c),
            name,
        )
    return matrix
