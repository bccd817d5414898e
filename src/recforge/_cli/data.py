"""Reading an interaction log named on the command line: CSV / TSV / Parquet or a MovieLens folder.

Columns are detected from the header (``user``/``user_id``/``userId``..., ``item``/``movieId``...,
``rating``/``score``..., ``timestamp``/``ts``/``time``...) or named with ``--user-col`` etc.; a file
without a header row is read as ``user, item[, rating[, timestamp]]``. Every error names the file
and, for a bad value, the column and the line.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import UserError

#: Normalised header names (lower case, letters and digits only) that each role accepts, best first.
COLUMN_ALIASES = {
    "user": (
        "user",
        "userid",
        "uid",
        "customer",
        "customerid",
        "visitorid",
        "clientid",
        "accountid",
        "memberid",
        "session",
        "sessionid",
    ),
    "item": (
        "item",
        "itemid",
        "iid",
        "movieid",
        "productid",
        "articleid",
        "songid",
        "trackid",
        "sku",
        "contentid",
        "docid",
        "videoid",
        "bookid",
        "isbn",
    ),
    "rating": ("rating", "score", "stars", "weight", "value", "count", "plays", "clicks"),
    "timestamp": (
        "timestamp",
        "ts",
        "time",
        "datetime",
        "date",
        "eventtime",
        "createdat",
        "unixtime",
        "timestampms",
    ),
}
ROLES = tuple(COLUMN_ALIASES)
_FLAGS = {
    "user": "--user-col",
    "item": "--item-col",
    "rating": "--rating-col",
    "timestamp": "--time-col",
}
_INTEGER = re.compile(r"[+-]?\d+")
_MOVIELENS_FILES = ("u.data", "ratings.dat")


@dataclass
class Dataset:
    """What :func:`read_interactions` found."""

    interactions: object  # recforge.data.Interactions, all rows (weights = ratings or 1)
    source: str  # the path as given
    columns: dict  # role -> column name in the file (None when absent)
    movielens: object = None  # recforge.datasets.MovieLens for a MovieLens folder (item genres)

    @property
    def has_rating(self) -> bool:
        return self.columns.get("rating") is not None

    @property
    def has_timestamp(self) -> bool:
        return self.columns.get("timestamp") is not None


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The DATA argument, the flags that say how to read it, and ``--min-rating``."""
    parser.add_argument(
        "data",
        metavar="DATA",
        help="interaction log: .csv, .tsv (also .gz) or .parquet with one row per interaction, "
        "or a MovieLens folder (u.data / ratings.dat / ratings.csv)",
    )
    group = parser.add_argument_group("reading DATA")
    for role, flag in _FLAGS.items():
        group.add_argument(
            flag,
            dest=f"{role}_col",
            metavar="NAME",
            default=None,
            help=f"the {role} column (default: detected from the header)",
        )
    group.add_argument(
        "--sep",
        default=None,
        help="field separator of a text file (default: from the extension, else sniffed)",
    )
    group.add_argument(
        "--duplicates",
        choices=["last", "first", "max", "sum", "raise"],
        default="last",
        help="what to do when a user-item pair occurs more than once (default: keep the last)",
    )
    parser.add_argument(
        "--min-rating",
        type=float,
        default=None,
        help="ratings >= this are positives (default 4; needs a rating column)",
    )


def _normalise(name) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def detect_columns(columns: list, given: dict, source: str) -> dict:
    """Map each role to a column: the given name, else the first alias found.

    User and item are required.
    """
    found = {}
    by_norm = {}
    for col in columns:
        by_norm.setdefault(_normalise(col), col)
    for role in ROLES:
        name = given.get(role)
        if name is not None:
            if name not in columns:
                raise UserError(
                    f"{source}: {_FLAGS[role]} {name!r} is not a column (columns: {list(columns)})"
                )
            found[role] = name
            continue
        found[role] = next((by_norm[a] for a in COLUMN_ALIASES[role] if a in by_norm), None)
    for role in ("user", "item"):
        if found[role] is None:
            raise UserError(
                f"{source}: no {role} column found among {list(columns)}; "
                f"name it with {_FLAGS[role]}"
            )
    chosen = [c for c in found.values() if c is not None]
    if len(set(chosen)) != len(chosen):
        raise UserError(
            f"{source}: one column plays two roles ({found}); name them with the --*-col flags"
        )
    return found


def _text_separator(path: Path, sep: str | None) -> str:
    if sep is not None:
        return "\t" if sep in ("\\t", "tab") else sep
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    head = _first_line(path)
    for candidate in ("\t", ",", ";", "|"):
        if candidate in head:
            return candidate
    raise UserError(
        f"{path}: cannot tell the field separator from the first line {head[:80]!r}; "
        "give it with --sep"
    )


def _first_line(path: Path) -> str:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None
    raise UserError(f"{path}: the file is empty")


def _read_text(path: Path, sep: str) -> tuple[pd.DataFrame, int]:
    """All fields as strings; returns the frame and the file line number of its first row."""
    from ..datasets._parse import is_number

    first = [f.strip().strip('"') for f in _first_line(path).split(sep)]
    header = not all(is_number(f) for f in first)
    names = None
    if not header:
        if len(first) > len(ROLES):
            raise UserError(
                f"{path}: no header row and {len(first)} fields per line; add a header line naming "
                "the columns (user, item, rating, timestamp)"
            )
        names = list(ROLES[: len(first)])
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            names=names,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            index_col=False,
            encoding="utf-8-sig",
            engine="c" if len(sep) == 1 else "python",
        )
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        message = str(exc).strip().replace("Error tokenizing data. C error: ", "")
        raise UserError(f"{path}: cannot be parsed: {message}") from None
    blank = (df == "").all(axis=1).to_numpy() if len(df.columns) else np.zeros(len(df), bool)
    first_line = 2 if header else 1
    df.index = np.arange(first_line, first_line + len(df))  # the index is now the line number
    return df[~blank], first_line


def _read_parquet(path: Path) -> pd.DataFrame:
    if importlib.util.find_spec("pyarrow") is None:
        raise UserError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own types for a broken file
        raise UserError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})"
        ) from None
    df.index = np.arange(1, len(df) + 1)  # "row N" in messages
    return df


def _where(source: str, index, parquet: bool) -> str:
    return f"{source}, row {index}" if parquet else f"{source}, line {index}"


def _refuse_first(bad, values: pd.Series, column: str, source: str, parquet: bool, problem: str):
    """UserError ``<source>, line N: column 'c'<problem>`` at the first row where the bool array
    ``bad`` is true (``problem`` may name the value as ``{value!r}``); nothing when none is."""
    if bad.any():
        at = values.index[np.argmax(bad)]
        where = _where(source, at, parquet)
        raise UserError(f"{where}: column {column!r}{problem.format(value=values.loc[at])}")


def _ids(values: pd.Series, column: str, source: str, parquet: bool) -> np.ndarray:
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        text = values.astype(str).str.strip()
        empty = (text == "").to_numpy() | values.isna().to_numpy()
        _refuse_first(empty, values, column, source, parquet, " is empty")
        if text.str.fullmatch(_INTEGER.pattern).all():
            try:
                return text.astype(np.int64).to_numpy()
            except OverflowError:
                pass
        return text.to_numpy(dtype=str)
    _refuse_first(values.isna().to_numpy(), values, column, source, parquet, " is missing")
    return values.to_numpy()


def _numbers(values: pd.Series, column: str, source: str, parquet: bool) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64))
    _refuse_first(bad, values, column, source, parquet, ": {value!r} is not a finite number")
    return numbers.to_numpy(dtype=np.float64)


def _times(values: pd.Series, column: str, source: str, parquet: bool) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        return _numbers(values, column, source, parquet)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    problem = ": {value!r} is neither a number nor a date/time"
    _refuse_first(parsed.isna().to_numpy(), values, column, source, parquet, problem)
    return parsed.dt.tz_localize(None).to_numpy()


def read_interactions(args) -> Dataset:
    """Read ``args.data`` with the reading flags of :func:`add_data_arguments`."""
    from ..data import Interactions

    path = Path(args.data)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    given = {role: getattr(args, f"{role}_col", None) for role in ROLES}
    if path.is_dir() or path.name.lower().removesuffix(".gz") in _MOVIELENS_FILES:
        return _read_movielens(path, given)
    parquet = path.name.lower().endswith((".parquet", ".pq"))
    df = _read_parquet(path) if parquet else _read_text(path, _text_separator(path, args.sep))[0]
    source = str(path)
    if len(df) == 0:
        raise UserError(f"{source}: no interactions (only a header)")
    columns = detect_columns(list(df.columns), given, source)
    users = _ids(df[columns["user"]], columns["user"], source, parquet)
    items = _ids(df[columns["item"]], columns["item"], source, parquet)
    weights = (
        None
        if columns["rating"] is None
        else _numbers(df[columns["rating"]], columns["rating"], source, parquet)
    )
    times = (
        None
        if columns["timestamp"] is None
        else _times(df[columns["timestamp"]], columns["timestamp"], source, parquet)
    )
    if weights is not None:
        rating = pd.Series(weights, index=df.index)
        problem = ": negative value {value:g} (weights must be >= 0)"
        _refuse_first(weights < 0, rating, columns["rating"], source, parquet, problem)
    try:
        interactions = Interactions.from_arrays(
            users, items, weights, times, duplicates=args.duplicates
        )
    except (ValueError, TypeError) as exc:
        raise UserError(f"{source}: {exc}") from None
    return Dataset(interactions, source, columns)


def _read_movielens(path: Path, given: dict) -> Dataset:
    from ..datasets import load_movielens

    if any(v is not None for v in given.values()):
        raise UserError(
            f"{path}: a MovieLens release has fixed columns; "
            f"the --*-col flags are for CSV/TSV/Parquet"
        )
    try:
        ml = load_movielens(path)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    columns = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    return Dataset(ml.interactions(), str(path), columns, movielens=ml if len(ml.movies) else None)


def positives(data: Dataset, min_rating: float | None):
    """What the models learn from: rating >= ``min_rating`` (default 4) when there are ratings."""
    if not data.has_rating:
        if min_rating is not None:
            raise UserError(
                f"--min-rating needs a rating column, and {data.source} has none "
                "(every row counts as a positive); name it with --rating-col"
            )
        return data.interactions, None
    threshold = 4.0 if min_rating is None else float(min_rating)
    kept = data.interactions.positives(threshold)
    if kept.nnz == 0:
        raise UserError(
            f"{data.source}: no rating >= {threshold:g} in column {data.columns['rating']!r}; "
            "lower --min-rating"
        )
    return kept, threshold
