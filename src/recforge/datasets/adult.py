"""UCI Adult (Census Income): the bundled train/test files, and a loader for any copy of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._parse import MAP, NUM, STR, Col, Source, detect_header, read_table

NUMERIC_COLUMNS = [
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
]
CATEGORICAL_COLUMNS = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
FEATURE_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
]
LABEL_COLUMN = "income"
_LABELS = {"<=50K": 0, "<=50K.": 0, ">50K": 1, ">50K.": 1}
#: numeric fields beyond this are refused (integers stay exact in float64, and fit int64)
MAX_NUMERIC = 2.0**53
_COLS = [
    Col(c, NUM, max_abs=MAX_NUMERIC) if c in NUMERIC_COLUMNS else Col(c, STR, na_ok=True)
    for c in FEATURE_COLUMNS
] + [Col(LABEL_COLUMN, MAP, mapping=_LABELS, dtype="int8")]


@dataclass(frozen=True, eq=False, repr=False)
class Adult:
    """UCI Adult train and test sets.

    Attributes
    ----------
    train, test : pandas.DataFrame
        Columns ``age, workclass, fnlwgt, education, education_num, marital_status, occupation,
        relationship, race, sex, capital_gain, capital_loss, hours_per_week, native_country``
        and ``income`` (int8, 1 when > 50K). Numeric columns are int64 (float64 if a value is
        missing); categorical columns are str with NaN where the file has ``?``.

    Examples
    --------
    >>> from recforge.datasets import adult
    >>> data = adult()
    >>> data.X_train.shape, data.y_train.dtype, data.X_test.shape
    ((32561, 14), dtype('int8'), (16281, 14))
    """

    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def X_train(self) -> pd.DataFrame:
        """Training features, shape (32561, 14) for the standard split (a new DataFrame)."""
        return self.train.drop(columns=LABEL_COLUMN)

    @property
    def y_train(self) -> np.ndarray:
        """Training labels, shape (n_train,), int8 (1 = income > 50K)."""
        return self.train[LABEL_COLUMN].to_numpy(dtype=np.int8, copy=True)

    @property
    def X_test(self) -> pd.DataFrame:
        """Test features (a new DataFrame)."""
        return self.test.drop(columns=LABEL_COLUMN)

    @property
    def y_test(self) -> np.ndarray:
        """Test labels, shape (n_test,), int8."""
        return self.test[LABEL_COLUMN].to_numpy(dtype=np.int8, copy=True)

    def __repr__(self) -> str:
        return f"Adult(train={len(self.train)} rows, test={len(self.test)} rows)"


def _read_adult(src: Source) -> pd.DataFrame:
    skip = detect_header(src, sep=",", encoding="utf-8", comment="|")
    df = read_table(
        src, _COLS, sep=",", skip=skip, comment="|", na_values=("?",), skipinitialspace=True
    )
    for c in NUMERIC_COLUMNS:
        values = df[c].to_numpy()
        if not np.isnan(values).any() and np.all(values == np.round(values)):
            df[c] = values.astype(np.int64)
    return df


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} holds no {stem} (or {stem}.gz)")


def load_adult(path):
    """Load UCI Adult from a file or a folder.

    Handles the original UCI files and common variants: with or without a header row, the
    ``|1x3 Cross validator`` first line of ``adult.test``, labels with or without a trailing dot,
    ``?`` for missing values, spaces around values, blank lines, gzip compression.

    Parameters
    ----------
    path : str or os.PathLike
        ``adult.data`` or ``adult.test`` (any name; optionally ``.gz``), or a folder holding
        ``adult.data`` and ``adult.test``.

    Returns
    -------
    pandas.DataFrame or Adult
        A DataFrame (see :class:`Adult` for its columns) for a file, an :class:`Adult` for a folder.

    Raises
    ------
    FileNotFoundError
        If ``path`` (or a file of the folder) does not exist.
    ValueError
        If a row has the wrong number of fields, a non-numeric number or an unknown label; the
        message names the file and the line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from recforge.datasets import load_adult
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "adult.test"
    >>> _ = f.write_text("25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, "
    ...                  "Black, Male, 0, 0, 40, ?, >50K.\\n")
    >>> df = load_adult(f)
    >>> df["income"].tolist(), df["native_country"].isna().tolist()
    ([1], [True])
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    if p.is_dir():
        return Adult(
            train=_read_adult(Source.from_path(_find(p, "adult.data"))),
            test=_read_adult(Source.from_path(_find(p, "adult.test"))),
        )
    return _read_adult(Source.from_path(p))


def adult() -> Adult:
    """UCI Adult, bundled with recforge: 32,561 training and 16,281 test rows.

    Predict whether income exceeds 50K from census attributes (about 24 % positives).
    Becker & Kohavi (1996), UCI Machine Learning Repository, CC BY 4.0; see
    ``recforge/datasets/_data/adult/README.txt``.

    Returns
    -------
    Adult
        A fresh copy on every call.

    Examples
    --------
    >>> from recforge.datasets import adult
    >>> data = adult()
    >>> round(float(data.y_train.mean()), 3), round(float(data.y_test.mean()), 3)
    (0.241, 0.236)
    """
    return Adult(
        train=_read_adult(Source.bundled("adult/adult.data.gz")),
        test=_read_adult(Source.bundled("adult/adult.test.gz")),
    )
