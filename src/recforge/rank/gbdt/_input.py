"""Turn the user's X (ndarray or DataFrame, numeric and categorical columns) into float32 for GBDT.

Categorical columns become float codes (position in the categories learned in fit; unseen
categories and missing values become NaN, i.e. the missing-value bin). Numeric values keep NaN
as missing; infinity is an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...features._columns import few_rows_as_objects
from .._base import check_2d, check_min_shape


def _is_categorical_series(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)
    )


class InputSchema:
    """Columns, which are categorical, and the categories of each, learned in :meth:`fit`."""

    def fit(self, X, categorical_features="auto"):
        self._fit(X, categorical_features)
        return self

    def fit_transform(self, X, categorical_features="auto"):
        """:meth:`fit` then :meth:`transform` of the same ``X``, hashing each text column once."""
        return self._transform(X, "X", self._fit(X, categorical_features))

    def _fit(self, X, categorical_features):
        """Learn the schema; returns ``{column: (value_ids, value_codes)}`` for the text columns whose
        labels it learned: each row's distinct-value id (``pd.factorize``, -1 for missing) and each
        distinct value's category code (what :meth:`_transform` of the same X would compute again)."""
        if sp.issparse(X):
            raise TypeError("X is a sparse matrix; GBDT needs a dense array or a DataFrame")
        self.is_frame = isinstance(X, pd.DataFrame)
        frame_columns = None
        if self.is_frame:
            self.columns = [str(c) for c in X.columns]
            frame_columns = [s for _, s in X.items()]  # (items(): a fraction of iloc's cost)
            shape = X.shape
        else:
            arr = np.asarray(X)
            check_2d(arr, "X")
            self.columns = None
            shape = arr.shape
        check_min_shape(shape, "X", rows=False)  # (Dask GBDT learns it from an empty frame)
        n_features = shape[1]
        self.n_features = n_features
        is_cat = np.zeros(n_features, bool)
        if isinstance(categorical_features, str) and categorical_features == "auto":
            if self.is_frame:
                is_cat[:] = [_is_categorical_series(s) for s in frame_columns]
        elif categorical_features is not None:
            sel = np.asarray(categorical_features)
            if sel.dtype == bool:
                if sel.shape != (n_features,):
                    raise ValueError(f"categorical_features mask must have length {n_features}")
                is_cat = sel.copy()
            else:
                for c in sel.ravel():
                    if isinstance(c, (str, np.str_)):
                        if not self.is_frame or str(c) not in self.columns:
                            raise ValueError(f"categorical_features names unknown column {c!r}")
                        is_cat[self.columns.index(str(c))] = True
                    else:
                        j = int(c)
                        if not -n_features <= j < n_features:
                            raise ValueError(
                                f"categorical_features index {j} out of range for {n_features} "
                                "features"
                            )
                        is_cat[j] = True
        self.is_categorical = is_cat
        self.categories = [
            None
        ] * n_features  # labels (str arrays) of DataFrame categorical columns
        self._code_tables = {}
        factorized = {}
        if self.is_frame:
            for j in np.flatnonzero(is_cat):
                s = frame_columns[j]
                if isinstance(s.dtype, pd.CategoricalDtype):
                    labels = np.asarray(s.cat.categories.astype(str))
                elif pd.api.types.is_numeric_dtype(s):
                    continue  # numeric codes, used as they are
                else:  # the labels as str; hashing the distinct values first is much faster than str-ing every row
                    value_ids, values = pd.factorize(s)  # (missing: -1, not among the values)
                    labels, value_codes = np.unique(
                        np.asarray(values, dtype=object).astype(str), return_inverse=True
                    )
                    factorized[j] = (value_ids, value_codes)
                self.categories[j] = labels.astype(str)
        return factorized

    def _category_codes(self, j):
        """``{label: code}`` of column j's categories, built at its first use after fit or load."""
        if j not in self._code_tables:
            self._code_tables[j] = {c: code for code, c in enumerate(self.categories[j].tolist())}
        return self._code_tables[j]

    def transform(self, X, name="X"):
        """float32 (n_rows, n_features), C order."""
        return self._transform(X, name, {})

    def _transform(self, X, name, factorized):
        """:meth:`transform`, with ``factorized`` (:meth:`_fit`'s) for the columns already hashed."""
        if sp.issparse(X):
            raise TypeError(f"{name} is a sparse matrix; GBDT needs a dense array or a DataFrame")
        if isinstance(X, pd.DataFrame):
            if X.shape[1] != self.n_features:
                raise ValueError(
                    f"{name} has {X.shape[1]} features, the model was fitted with {self.n_features}"
                )
            if self.columns is not None and [str(c) for c in X.columns] != self.columns:
                raise ValueError(
                    f"{name} columns {list(X.columns)[:5]}... differ from the fitted columns "
                    f"{self.columns[:5]}..."
                )
            out = np.empty(X.shape, np.float32)
            for j, (_, s) in enumerate(X.items()):
                if self.categories[j] is not None:
                    # code of str(value) among the categories, found once per distinct value
                    if j in factorized:
                        value_ids, value_codes = factorized[j]
                    else:
                        value_ids, values = pd.factorize(few_rows_as_objects(s))  # missing: -1
                        codes = self._category_codes(j)
                        value_codes = np.fromiter(
                            (
                                codes.get(v, -1)
                                for v in np.asarray(values, dtype=object).astype(str)
                            ),
                            np.int64,
                            len(values),
                        )
                    col = np.append(value_codes, -1)[value_ids].astype(np.float32)
                    col[col < 0] = np.nan
                    out[:, j] = col
                elif not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                    raise TypeError(
                        f"{name} column {X.columns[j]!r} is not numeric; declare it in "
                        "categorical_features"
                    )
                else:
                    with np.errstate(over="ignore"):  # (NumPy dtypes as they are: no NA)
                        out[:, j] = (
                            s.to_numpy()
                            if isinstance(s.dtype, np.dtype)
                            else s.to_numpy(dtype=np.float32, na_value=np.nan)
                        )
        else:
            arr = np.asarray(X)
            check_2d(arr, name)
            if arr.dtype.kind == "c":
                raise ValueError(f"Complex data not supported in {name}")
            if arr.dtype.kind not in "biuf":
                try:
                    arr = arr.astype(np.float32)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"{name} must be numeric, got dtype {arr.dtype} ({exc})"
                    ) from None
            if arr.shape[1] != self.n_features:
                raise ValueError(
                    f"{name} has {arr.shape[1]} features, the model was fitted with {self.n_features}"
                )
            with np.errstate(
                over="ignore"
            ):  # values beyond float32's range become inf: refused below
                out = np.ascontiguousarray(arr, dtype=np.float32)
        check_min_shape(out.shape, name)
        if np.isinf(out).any():
            raise ValueError(
                f"{name} contains infinity or values beyond float32's range (NaN is allowed: it means "
                "missing)"
            )
        cat = np.flatnonzero(self.is_categorical)
        if cat.size:
            vals = out[:, cat]
            bad = ~np.isnan(vals) & ((vals < 0) | (vals != np.round(vals)))
            if bad.any():
                raise ValueError(
                    f"{name}: categorical features must hold non-negative integer codes (or NaN)"
                )
        return out

    def state(self):
        """Arrays and JSON for save/load."""
        labels = [c if c is not None else np.zeros(0, str) for c in self.categories]
        offsets = np.zeros(self.n_features + 1, np.int64)
        offsets[1:] = np.cumsum([len(c) for c in labels])
        flat = np.concatenate(labels).astype(str) if offsets[-1] else np.zeros(0, "<U1")
        has = np.array([c is not None for c in self.categories], np.uint8)
        arrays = {
            "schema_is_categorical": self.is_categorical.astype(np.uint8),
            "schema_cat_labels": flat,
            "schema_cat_offsets": offsets,
            "schema_has_labels": has,
        }
        meta = {"is_frame": self.is_frame, "columns": self.columns, "n_features": self.n_features}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays, meta):
        """The schema from :meth:`state`'s output read back from a model file (``arrays`` a
        :class:`recforge.io.ModelArrays`); an inconsistent record raises ``ModelFileError``/``ValueError``."""
        self = cls()
        n = meta["n_features"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"schema n_features must be a positive int, got {n!r}")
        self.n_features = n
        self.is_frame = meta["is_frame"]
        if not isinstance(self.is_frame, bool):
            raise ValueError("schema is_frame must be a bool")
        self.columns = meta["columns"]
        if self.columns is not None and (
            not isinstance(self.columns, list)
            or len(self.columns) != n
            or not all(isinstance(c, str) for c in self.columns)
        ):
            raise ValueError(f"schema columns must be None or {n} strings")
        self.is_categorical = arrays.take("schema_is_categorical", kinds="biu", shape=(n,)).astype(
            bool
        )
        has = arrays.take("schema_has_labels", kinds="biu", shape=(n,)).astype(bool)
        off = arrays.take("schema_cat_offsets", kinds="iu", shape=(n + 1,), dtype=np.int64)
        flat = arrays.take("schema_cat_labels", kinds="U", finite=False)
        if off[0] != 0 or off[-1] != len(flat) or np.any(np.diff(off) < 0):
            raise ValueError("schema category offsets must rise from 0 to the number of labels")
        if np.any(has & ~self.is_categorical):
            raise ValueError("schema has category labels for a numeric column")
        self.categories = [
            flat[off[j] : off[j + 1]].astype(str) if has[j] else None for j in range(n)
        ]
        self._code_tables = {}
        return self
