"""``IdMap``: external ids (ints or strings) <-> internal positions ``0..n-1``.

Lookups are vectorised (one ``argsort`` at construction, ``searchsorted`` per query), so a map of
millions of ids costs two arrays and no Python dict.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pandas as pd

from .._validation import check_1d

_INT64_MAX = np.iinfo(np.int64).max


def _is_scalar(values) -> bool:
    return np.ndim(values) == 0 and not isinstance(values, (list, tuple))


def _integral_floats_to_int64(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contain missing values (NaN/None) at position "
            f"{int(np.flatnonzero(~np.isfinite(arr))[0])}"
        )
    if not np.all(arr == np.round(arr)):
        bad = int(np.flatnonzero(arr != np.round(arr))[0])
        raise TypeError(
            f"{name} must be integers or strings, got the float {arr[bad]!r} at position {bad}"
        )
    if arr.size and np.abs(arr).max() >= 2.0**63:
        raise TypeError(
            f"{name} holds floats beyond the int64 range; pass integer ids (uint64 is supported)"
        )
    return arr.astype(np.int64)


def _ends_with_nul(strings: np.ndarray) -> np.ndarray:
    """Bool mask of the Python strings (object array) that end with NUL (NumPy's ``U`` drops
    them)."""
    return np.fromiter(
        (len(v) > 0 and v[-1] == "\x00" for v in strings.tolist()), dtype=bool, count=strings.size
    )


def _python_ints_to_64(values: np.ndarray) -> np.ndarray | None:
    """An object array of ints as int64 (uint64 when beyond int64 and all >= 0), or None when an
    int does not fit in 64 bits."""
    try:
        return values.astype(np.int64)
    except OverflowError:
        pass
    try:
        return values.astype(np.uint64)
    except OverflowError:
        return None


def as_id_array(values, name: str = "ids") -> np.ndarray:
    """Normalise external ids to one of three dtypes: int64, uint64 (beyond int64) or unicode ``U``.

    Missing values (NaN, None, pd.NA) raise ``ValueError`` naming ``name``; booleans, non-integral
    floats and mixed types raise ``TypeError``. Integral floats (as pandas makes them) become int64.
    The result never shares memory with ``values``.
    """
    if isinstance(values, (pd.Series, pd.Index)) or hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.array(values, copy=True)
    if isinstance(values, (list, tuple)) and arr.dtype.kind in "UfO" and arr.ndim == 1:
        # np.array silently turns [1, "a"] into strings and [1, None] into objects: re-infer
        obj = np.empty(arr.size, dtype=object)
        obj[:] = list(values)
        arr = obj
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "u":
        if arr.size and arr.max() > _INT64_MAX:
            return arr.astype(np.uint64, copy=False)
        return arr.astype(np.int64, copy=False)
    if kind == "U":
        return arr
    if kind == "f":
        return _integral_floats_to_int64(arr, name)
    if kind == "O":
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        missing = pd.isna(arr)
        if missing.any():
            raise ValueError(
                f"{name} contain missing values (NaN/None) at position "
                f"{int(np.flatnonzero(missing)[0])}"
            )
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "string":
            nul = _ends_with_nul(arr)
            if nul.any():
                bad = int(np.flatnonzero(nul)[0])
                raise ValueError(
                    f"{name} must not end with a NUL character ('\\x00'): NumPy "
                    f"strings drop trailing NULs, so {arr[bad]!r} (position {bad}) "
                    f"would merge with {arr[bad].rstrip(chr(0))!r}"
                )
            return arr.astype(str)
        if inferred == "integer":
            typed = _python_ints_to_64(arr)
            if typed is None:
                bad = int(np.flatnonzero([not -(2**63) <= int(v) < 2**64 for v in arr])[0])
                raise ValueError(
                    f"{name} must fit in 64 bits (int64, or uint64 when all >= 0); "
                    f"position {bad} is {int(arr[bad])}"
                )
            return typed
        if inferred in ("floating", "mixed-integer-float"):
            return _integral_floats_to_int64(arr.astype(np.float64), name)
        raise TypeError(f"{name} must all be integers or all be strings, got {inferred!r} values")
    raise TypeError(f"{name} must be integers or strings, got dtype {arr.dtype}")


class IdMap:
    """Bijection between external ids and internal indices ``0..n-1`` (index = position in ``ids``).

    Parameters
    ----------
    ids : array-like of shape (n,)
        Unique external ids, all integers or all strings. Integers are stored as int64 (uint64 when
        beyond the int64 range), strings as a NumPy unicode array; integral floats become int64.

    Raises
    ------
    ValueError
        If ``ids`` holds duplicates or missing values.
    TypeError
        If ``ids`` mixes types or holds booleans / non-integral floats.

    Examples
    --------
    >>> from recforge.data import IdMap
    >>> m = IdMap(["b", "a", "c"])
    >>> m.index(["c", "b"])
    array([2, 0])
    >>> m.index("a")
    1
    >>> m.to_external([0, 2])
    array(['b', 'c'], dtype='<U1')
    >>> m.contains(["a", "z"])
    array([ True, False])
    >>> IdMap.from_list(m.to_list()) == m
    True
    """

    __slots__ = ("_ids", "_is_range", "_order", "_sorted")

    def __init__(self, ids):
        ids = as_id_array(ids, "ids")
        n = ids.size
        if n > 1 and np.all(ids[1:] > ids[:-1]):
            order, sorted_ids = None, ids
        else:
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            if n > 1:
                dup = sorted_ids[1:] == sorted_ids[:-1]
                if dup.any():
                    first = sorted_ids[1:][dup][0]
                    raise ValueError(
                        f"ids must be unique; {int(dup.sum())} duplicated, e.g. {first.item()!r}"
                    )
            order.flags.writeable = False
        ids.flags.writeable = False
        self._ids = ids
        self._order = order
        self._sorted = sorted_ids
        self._is_range = bool(
            ids.dtype.kind == "i"
            and (n == 0 or (ids[0] == 0 and ids[-1] == n - 1))
            and order is None
        )

    # ------------------------------------------------------------------ basic protocol
    @property
    def ids(self) -> np.ndarray:
        """External ids in internal order, shape (n,), read-only (int64, uint64 or unicode)."""
        return self._ids

    @property
    def kind(self) -> str:
        """dtype kind of the ids: ``'i'`` (int64), ``'u'`` (uint64) or ``'U'`` (str)."""
        return self._ids.dtype.kind

    def __len__(self) -> int:
        return int(self._ids.size)

    def __eq__(self, other) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        if other is self:
            return True
        a, b = self._ids, other._ids
        if a.size != b.size or (a.dtype.kind == "U") != (b.dtype.kind == "U"):
            return False
        return bool(np.array_equal(a, b))

    __hash__ = None

    def __repr__(self) -> str:
        n = len(self)
        head = ", ".join(repr(x) for x in self._ids[:3].tolist())
        tail = (
            f", ..., {self._ids[-1].item()!r}"
            if n > 4
            else ("".join(f", {x!r}" for x in self._ids[3:].tolist()))
        )
        return f"IdMap(n={n}, dtype={self._ids.dtype}, ids=[{head}{tail}])"

    def __reduce__(self):
        return (IdMap, (np.array(self._ids),))

    # ------------------------------------------------------------------ lookups
    def _coerce(self, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (raw 1-D array, candidates in the map's dtype, mask of convertible entries)."""
        if isinstance(values, (pd.Series, pd.Index)) or hasattr(values, "to_numpy"):
            values = values.to_numpy()
        if isinstance(values, str) or (
            isinstance(values, list) and any(isinstance(v, str) for v in values)
        ):
            # as objects: NumPy's U dtype would drop a trailing NUL and match another id
            values = [values] if isinstance(values, str) else values
            raw = np.empty(len(values), dtype=object)
            raw[:] = values
        else:
            raw = np.asarray(values)
        if raw.ndim == 0:
            raw = raw.reshape(1)
        if raw.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {raw.shape}")
        want_str = self._ids.dtype.kind == "U"
        kind = raw.dtype.kind
        if kind == "O" and raw.size:
            inferred = pd.api.types.infer_dtype(raw, skipna=False)
            if inferred == "string":
                # a NUL-terminated string is never an id (maps refuse them); as U it would match one
                nul = _ends_with_nul(raw)
                if nul.any():
                    typed = raw.astype(str)
                    return raw, typed, ~nul if want_str else np.zeros(raw.size, dtype=bool)
                raw_typed, kind = raw.astype(str), "U"
            elif inferred == "integer":
                typed = _python_ints_to_64(raw)
                if typed is None:  # ints beyond 64 bits are unknown; the others looked up 1 by 1
                    lo, hi = (-(2**63), 2**63) if self._ids.dtype.kind == "i" else (0, 2**64)
                    ok = np.array([not want_str and lo <= int(v) < hi for v in raw], dtype=bool)
                    cand = np.zeros(raw.size, dtype=self._ids.dtype)
                    if ok.any():
                        cand[ok] = np.array([int(v) for v in raw[ok]], dtype=self._ids.dtype)
                    return raw, cand, ok
                raw_typed, kind = typed, typed.dtype.kind
            elif inferred in ("floating", "mixed-integer-float"):
                raw_typed, kind = (
                    np.array([x if x is not None else np.nan for x in raw], dtype=np.float64),
                    "f",
                )
            else:  # mixed: convert element by element (rare, slow path)
                if want_str:
                    ok = np.array([isinstance(x, str) for x in raw], dtype=bool)
                else:  # an int outside the ids' dtype cannot be one of them: unknown, not an error
                    info = np.iinfo(self._ids.dtype)
                    ok = np.array(
                        [
                            isinstance(x, (int, np.integer))
                            and not isinstance(x, (bool, np.bool_))
                            and info.min <= int(x) <= info.max
                            for x in raw
                        ],
                        dtype=bool,
                    )
                cand = np.zeros(raw.size, dtype=self._ids.dtype)
                if ok.any():
                    cand[ok] = np.array(raw[ok].tolist(), dtype=self._ids.dtype)
                return raw, cand, ok
        else:
            raw_typed = raw
        if want_str:
            if kind == "U":
                return raw, raw_typed, np.ones(raw.size, dtype=bool)
            return raw, np.zeros(raw.size, dtype=self._ids.dtype), np.zeros(raw.size, dtype=bool)
        if kind in "iu":
            if self._ids.dtype.kind == "i" and kind == "u":
                ok = raw_typed <= _INT64_MAX
                return raw, np.where(ok, raw_typed, 0).astype(np.int64), ok
            if self._ids.dtype.kind == "u" and kind == "i":
                ok = raw_typed >= 0
                return raw, np.where(ok, raw_typed, 0).astype(np.uint64), ok
            return raw, raw_typed.astype(self._ids.dtype, copy=False), np.ones(raw.size, dtype=bool)
        if kind == "f":
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(raw_typed) & (raw_typed == np.round(raw_typed))
            ok &= np.abs(np.where(ok, raw_typed, 0)) < 2.0**63
            return raw, np.where(ok, raw_typed, 0).astype(self._ids.dtype), ok
        return raw, np.zeros(raw.size, dtype=self._ids.dtype), np.zeros(raw.size, dtype=bool)

    def _lookup(self, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (raw values, internal indices (garbage where unknown), found mask)."""
        raw, cand, ok = self._coerce(values)
        n = self._ids.size
        if n == 0:
            return raw, np.zeros(raw.size, dtype=np.int64), np.zeros(raw.size, dtype=bool)
        if self._is_range:
            found = ok & (cand >= 0) & (cand < n)
            return raw, np.where(found, cand, 0).astype(np.int64), found
        pos = np.searchsorted(self._sorted, cand)
        np.minimum(pos, n - 1, out=pos)
        found = ok & (self._sorted[pos] == cand)
        idx = pos if self._order is None else self._order[pos]
        return raw, idx.astype(np.int64, copy=False), found

    def index(self, values, *, name: str = "id"):
        """Internal indices of external ids.

        Parameters
        ----------
        values : scalar or array-like of shape (m,)
            External ids.
        name : str, default "id"
            Used in the error message (e.g. ``"user"``, ``"item"``).

        Returns
        -------
        int or ndarray of shape (m,), int64
            A Python int for a scalar input.

        Raises
        ------
        KeyError
            ``unknown {name} {value!r}`` for the first unknown value, with the count of unknown values.
        """
        scalar = _is_scalar(values)
        raw, idx, found = self._lookup(values)
        if not found.all():
            missing = ~found
            first = raw[missing][0]
            first = first.item() if isinstance(first, np.generic) else first
            n_bad = int(missing.sum())
            raise KeyError(f"unknown {name} {first!r} ({n_bad} of {raw.size} values unknown)")
        if scalar:
            return int(idx[0])
        return np.array(idx, dtype=np.int64, copy=True)

    def contains(self, values):
        """Boolean mask, shape (m,): which of ``values`` are known ids (a bool for a scalar)."""
        if (
            self._ids.dtype.kind == "i"
            and isinstance(values, (int, np.integer))
            and not isinstance(values, (bool, np.bool_))
        ):
            return self._contains_int(int(values))
        scalar = _is_scalar(values)
        found = self._lookup(values)[2]
        return bool(found[0]) if scalar else found

    def _contains_int(self, value: int) -> bool:
        """Whether one Python int is an id of this int64 map, by bisection in Python (no NumPy
        call: a one-id check such as ``fit``'s padding-id test pays no first-call setup)."""
        n = self._ids.size
        if self._is_range:
            return 0 <= value < n
        if n == 0 or not -(2**63) <= value <= _INT64_MAX:
            return False
        if value < int(self._sorted[0]) or value > int(self._sorted[n - 1]):
            return False  # outside the ids' range (fit's check of -1 on positive ids)
        pos = bisect_left(self._sorted, value)
        return pos < n and int(self._sorted[pos]) == value

    def to_external(self, idx):
        """External ids at internal indices ``idx`` (int array of shape (m,); a scalar for a scalar).

        Raises
        ------
        ValueError
            If an index is outside ``[0, n)`` (negative indices are not wrapped).
        """
        scalar = _is_scalar(idx)
        arr = check_1d(idx, "idx", dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self._ids.size):
            bad = arr[(arr < 0) | (arr >= self._ids.size)][0]
            raise ValueError(f"idx must be in [0, {self._ids.size}), got {int(bad)}")
        out = self._ids[arr]
        return out[0].item() if scalar else out

    # ------------------------------------------------------------------ serialisation
    def to_list(self) -> list:
        """The ids as a JSON-able list of Python ints or strs (``IdMap.from_list`` inverts it)."""
        return self._ids.tolist()

    @classmethod
    def from_list(cls, values, kind: str | None = None) -> IdMap:
        """Rebuild a map from :meth:`to_list` output.

        Parameters
        ----------
        values : list of int or list of str
        kind : {"i", "u", "U"}, optional
            dtype kind (see :attr:`kind`); needed only to restore the kind of an *empty* map or to
            force one. Inferred from the values otherwise (ints stay ints, strings stay strings).
        """
        if kind is None:
            return cls(list(values) if len(values) else np.zeros(0, dtype=np.int64))
        dtypes = {"i": np.int64, "u": np.uint64, "U": str}
        if kind not in dtypes:
            raise ValueError(f"kind must be one of ['U', 'i', 'u'], got {kind!r}")
        return cls(np.array(values, dtype=dtypes[kind]))
