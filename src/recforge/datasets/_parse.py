"""Reading delimited text files with errors that name the file and the line.

The fast path is one ``pandas.read_csv`` call. When it fails, or its result does not validate
(missing fields, unparsable numbers, unknown labels), a slow line-by-line pass finds the first bad
line and raises ``ValueError("<file>, line <n>: <what is wrong>")``. Small files may use the
line-by-line parser directly (``engine="python"``).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

INT, FLOAT, NUM, STR, MAP = "int", "float", "num", "str", "map"
_BOM = b"\xef\xbb\xbf"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class DecodeError(ValueError):
    """The file is not in the expected text encoding (the message names the file and line)."""


@dataclass(frozen=True)
class Col:
    """One column: ``kind`` is int (int64), float (finite float64), num (float64, NaN for a missing
    marker), str (stripped; NaN for a missing marker only if ``na_ok``; empty only if ``empty_ok``)
    or map (stripped string looked up in ``mapping``; ``dtype`` of the result). ``max_abs`` bounds
    the absolute value of a float/num column."""

    name: str
    kind: str
    na_ok: bool = False
    empty_ok: bool = False
    mapping: dict = field(default_factory=dict)
    dtype: str = "int8"
    max_abs: float | None = None


@dataclass(frozen=True)
class Source:
    """A file to read: a display name for messages and a function returning a fresh binary stream."""

    name: str
    opener: Callable[[], IO[bytes]]

    @classmethod
    def from_path(cls, path) -> Source:
        path = Path(path)
        if path.suffix == ".gz":
            return cls(str(path), lambda: gzip.open(path, "rb"))
        return cls(str(path), lambda: open(path, "rb"))

    @classmethod
    def bundled(cls, relpath: str) -> Source:
        """A gzip file of ``recforge/datasets/_data`` (works from a wheel or a zip too)."""
        res = resources.files("recforge.datasets").joinpath("_data", *relpath.split("/"))

        def opener():
            with res.open("rb") as raw:
                return io.BytesIO(gzip.decompress(raw.read()))

        return cls(f"recforge bundled data _data/{relpath}", opener)

    @contextlib.contextmanager
    def reading(self):
        """The binary stream past a UTF-8 byte-order mark; a corrupt or truncated gzip file raises
        ``ValueError`` naming the file."""
        try:
            with self.opener() as stream:
                if stream.read(len(_BOM)) != _BOM:
                    stream.seek(0)
                yield stream
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{self.name}: corrupt or truncated gzip file ({type(exc).__name__}: {exc})"
            ) from None


def is_number(text: str) -> bool:
    """Whether ``float(text)`` parses (a header field is not a number)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_line(line: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line], delimiter=sep, quotechar='"'))
    return line.split(sep)


def _skip(line: str, comment: str | None) -> bool:
    stripped = line.strip()
    return not stripped or (comment is not None and stripped.startswith(comment))


def detect_header(
    src: Source, *, sep: str, encoding: str, comment: str | None = None, quoted: bool = False
) -> int:
    """Number of physical lines before the first data row (the header row, if any, included).

    A row whose first field is not a number is a header.
    """
    with src.reading() as raw:
        for lineno, data in enumerate(raw, start=1):
            line = data.decode(encoding, errors="replace")  # sniffing only; parse errors come later
            if _skip(line, comment):
                continue
            first = _split_line(line.rstrip("\r\n"), sep, quoted)[0].strip()
            return lineno if not is_number(first) else lineno - 1
    return 0


def _convert(value: str, col: Col, na_values: tuple[str, ...]):
    """Parse one field; raise ValueError with a short reason."""
    v = value.strip()
    if col.kind == INT:
        try:
            x = int(v)
        except ValueError:
            raise ValueError(f"column {col.name!r}: {value!r} is not an integer") from None
        if not _INT64_MIN <= x <= _INT64_MAX:
            raise ValueError(f"column {col.name!r}: {value!r} is beyond the int64 range")
        return x
    if col.kind in (FLOAT, NUM):
        if col.kind == NUM and v in na_values:
            return math.nan
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"column {col.name!r}: {value!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"column {col.name!r}: {value!r} is not a finite number")
        if col.max_abs is not None and abs(x) > col.max_abs:
            raise ValueError(
                f"column {col.name!r}: {value!r} is out of range (|value| <= {col.max_abs:.6g})"
            )
        return x
    if col.kind == MAP:
        if v not in col.mapping:
            raise ValueError(f"column {col.name!r}: {value!r} is not one of {sorted(col.mapping)}")
        return col.mapping[v]
    if v in na_values:
        if not col.na_ok:
            raise ValueError(f"column {col.name!r} is missing")
        return math.nan
    if not v and not col.empty_ok:
        raise ValueError(f"column {col.name!r} is empty")
    return v


def parse_lines(
    src: Source,
    cols: list[Col],
    *,
    sep: str,
    encoding: str,
    skip: int = 0,
    comment: str | None = None,
    quoted: bool = False,
    na_values: tuple[str, ...] = (),
    first_error_only: bool = False,
) -> pd.DataFrame | None:
    """Line-by-line parser: the DataFrame, or the first bad line as ``ValueError``.

    With ``first_error_only`` nothing is kept and ``None`` is returned when no line is bad.
    """
    values: list[list] = [[] for _ in cols]
    lineno = 0
    with src.reading() as raw:
        for (
            data
        ) in raw:  # binary lines, decoded one by one so a bad byte is reported on its own line
            lineno += 1
            if lineno <= skip:
                continue
            try:
                line = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DecodeError(
                    f"{src.name}, line {lineno}: cannot be decoded as {encoding} ({exc})"
                ) from None
            if _skip(line, comment):
                continue
            line = line.rstrip("\r\n")
            try:
                fields = _split_line(line, sep, quoted)
                if len(fields) == len(cols) + 1 and not fields[-1].strip():
                    fields.pop()  # a separator at the end of the line
                if len(fields) != len(cols):
                    raise ValueError(
                        f"expected {len(cols)} fields separated by {sep!r}, found {len(fields)}"
                    )
                row = [_convert(f, c, na_values) for f, c in zip(fields, cols)]
            except (ValueError, csv.Error) as exc:
                shown = line if len(line) <= 120 else line[:117] + "..."
                raise ValueError(f"{src.name}, line {lineno}: {exc} (line: {shown!r})") from None
            if not first_error_only:
                for store, v in zip(values, row):
                    store.append(v)
    if first_error_only:
        return None
    return _frame(cols, values)


def _frame(cols: list[Col], values: list[list]) -> pd.DataFrame:
    data = {}
    for col, vals in zip(cols, values):
        if col.kind == INT:
            data[col.name] = np.array(vals, dtype=np.int64)
        elif col.kind in (FLOAT, NUM):
            data[col.name] = np.array(vals, dtype=np.float64)
        elif col.kind == MAP:
            data[col.name] = np.array(vals, dtype=col.dtype)
        else:
            data[col.name] = pd.Series(vals, dtype="str") if vals else pd.Series([], dtype="str")
    return pd.DataFrame(data)


def read_table(
    src: Source,
    cols: list[Col],
    *,
    sep: str,
    encoding: str = "utf-8",
    skip: int = 0,
    comment: str | None = None,
    quoted: bool = False,
    na_values: tuple[str, ...] = (),
    engine: str = "pandas",
    colon_pairs: bool = False,
    skipinitialspace: bool = False,
) -> pd.DataFrame:
    """Read ``src`` into a DataFrame with the columns ``cols`` (in order).

    Parameters
    ----------
    skip : int
        Physical lines to skip first (the header row; see :func:`detect_header`).
    comment : str, optional
        Lines starting with it are ignored. Blank lines are always ignored.
    quoted : bool
        Fields may be double-quoted (CSV).
    na_values : tuple of str
        Missing-value markers (for ``num`` columns and ``str`` columns with ``na_ok``).
    engine : {"pandas", "python"}
        ``python`` parses line by line (for small files or separators pandas' C parser lacks).
    colon_pairs : bool
        ``sep="::"`` files read by the C parser as ``:``-separated with empty odd fields.
    skipinitialspace : bool
        Ignore spaces after a separator (``", "``-separated files).
    """
    text_format = dict(
        sep=sep,
        encoding=encoding,
        skip=skip,
        comment=comment,
        quoted=quoted,
        na_values=na_values,
    )
    if engine == "python":
        return parse_lines(src, cols, **text_format)
    # UnicodeDecodeError and pandas' ParserError / EmptyDataError are ValueErrors
    try:
        df = _read_fast(
            src,
            cols,
            **text_format,
            colon_pairs=colon_pairs,
            skipinitialspace=skipinitialspace,
        )
        problem = None
    except (ValueError, csv.Error, IndexError, OverflowError) as exc:
        df, problem = None, exc
    if df is None:
        parse_lines(src, cols, **text_format, first_error_only=True)
        raise ValueError(f"{src.name}: could not be parsed ({problem or 'inconsistent rows'})")
    return df


def _all_empty(column: pd.Series) -> bool:
    """True if every field of ``column`` is missing or blank."""
    if column.dtype.kind == "f":
        return bool(column.isna().all())
    return bool((column.isna() | (column.astype(str).str.strip() == "")).all())


def _read_fast(
    src: Source,
    cols: list[Col],
    *,
    sep,
    encoding,
    skip,
    comment,
    quoted,
    na_values,
    colon_pairs,
    skipinitialspace,
) -> pd.DataFrame | None:
    """One ``read_csv``; ``None`` when the result does not validate.

    Every field that is not a column (the empty halves of ``::``, a separator at the end of the
    line) must be empty: an extra field fails the validation.
    """
    n = len(cols)
    positions = [2 * i for i in range(n)] if colon_pairs else list(range(n))
    dtype = {}
    for pos, col in zip(positions, cols):
        dtype[pos] = {INT: "int64", FLOAT: "float64", NUM: "float64"}.get(col.kind, "str")
    with src.reading() as raw:
        df = pd.read_csv(
            raw,
            sep=":" if colon_pairs else sep,
            header=None,
            skiprows=skip,
            dtype=dtype,
            encoding=encoding,
            comment=comment,
            skip_blank_lines=True,
            keep_default_na=False,
            na_values=list(na_values),
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            engine="c",
            low_memory=False,
            skipinitialspace=skipinitialspace,
        )
    width = positions[-1] + 1
    trailing = 2 if colon_pairs else 1  # the fields a separator at the end of the line adds
    if df.shape[1] not in (width, width + trailing) or list(df.columns[:width]) != list(
        range(width)
    ):
        return None
    if not all(_all_empty(df[c]) for c in df.columns if c not in dtype):
        return None
    df = df[positions]
    df.columns = [c.name for c in cols]
    for col in cols:
        s = df[col.name]
        if col.kind in (FLOAT, NUM):
            values = s.to_numpy()
            finite = np.isfinite(values) if col.kind == FLOAT else ~np.isinf(values)
            if not finite.all():
                return None
            if col.max_abs is not None and np.nanmax(np.abs(values), initial=0) > col.max_abs:
                return None
        if col.kind == STR:
            if s.isna().any() and not col.na_ok:
                return None
            stripped = s.str.strip()
            if not col.empty_ok and (stripped == "").any():
                return None
            if col.na_ok:
                stripped = stripped.mask(stripped.isin(na_values))
            df[col.name] = stripped
        if col.kind == MAP:
            mapped = s.str.strip().map(col.mapping)
            if mapped.isna().any():
                return None
            df[col.name] = mapped.to_numpy().astype(col.dtype)
    return df
