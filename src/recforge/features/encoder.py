"""FeatureEncoder: raw mixed columns -> the inputs every ranker needs.

One fitted encoder serves all rankers:

* :meth:`FeatureEncoder.transform` — CSR float32 for linear models (LR, the wide part of
  Wide&Deep, GBDT+LR): standardised numerics, quantile buckets, one-hot categoricals, crosses.
* :meth:`FeatureEncoder.transform_dense` — float32 matrix for trees: raw numerics with NaN for
  missing, categorical columns as integer codes (see ``categorical_mask_``).
* :meth:`FeatureEncoder.transform_codes` / :meth:`FeatureEncoder.transform_numeric` — int32 codes
  for embedding tables and standardised float32 numerics for DNNs.

Codes (per column, shared by every output)::

    categorical column (vocabulary)   0 = missing, 1 = other (unseen or rarer than min_frequency),
                                      2 + i = categories_[col][i]
    categorical column (hashed)       0 = missing, 1 = other (never used), 2 + crc32(value) % n_hash_buckets
    numeric column (buckets)          0 = missing, 1 + b = bucket b: x < edges[0] is b = 0,
                                      edges[b-1] <= x < edges[b], x >= edges[-1] is the last bucket
    cross (a, b)                      0 = other (pair unseen in fit or rarer than min_frequency),
                                      1 + i = i-th known pair; hashed: 1 + mix64(pair) % n_hash_buckets
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._params import ParamsMixin
from .._validation import check_int
from ..exceptions import NotFittedError
from ..io import ModelArrays, load_arrays, model_file_errors, save_arrays
from ._columns import Column, Table, mix64, stable_hash

_STATE_VERSION = 1


class FeatureEncoder(ParamsMixin):
    """Encode a DataFrame or array of mixed columns for linear models, trees and DNNs.

    Parameters
    ----------
    categorical : list of str or int, optional
        Columns to treat as categorical (names, or positions for arrays). Columns not listed in
        ``categorical`` or ``numeric`` are inferred: numeric dtypes (and object columns whose values
        all parse as numbers) are numeric, everything else (strings, booleans, pandas categories) is
        categorical.
    numeric : list of str or int, optional
        Columns to treat as numeric.
    n_bins : int >= 0, default 20
        Quantile buckets per numeric column, one-hot encoded in :meth:`transform` (0 = no buckets).
        Ties collapse edges, so a column with few distinct values gets fewer buckets.
    scale_numeric : bool, default True
        Put each numeric column, standardised (zero mean, unit variance on the fit data; missing -> 0),
        as one column of :meth:`transform`'s output.
    crosses : list of (column, column) pairs, default ()
        Feature crosses: each pair becomes a one-hot block over the observed value pairs (numeric
        columns take part through their bucket). Pairs seen fewer than ``min_frequency`` times, or
        not at all, fall into the block's "other" slot.
    min_frequency : int >= 1, default 1
        Categories (and cross pairs) seen fewer times during fit go to the "other" slot.
    max_categories : int >= 1, optional
        A categorical column (or cross) with more known categories than this is hashed instead.
    hash_columns : list of str or int, default ()
        Categorical columns to hash into ``n_hash_buckets`` slots (CRC-32 of the value's text, stable
        across processes and versions) instead of learning a vocabulary — for ids with millions of values.
    n_hash_buckets : int >= 1, default 4096
        Slots per hashed column or cross.
    missing_values : tuple of str, default ("?", "")
        Values read as missing, besides NaN, None and pd.NA. Missing values get their own slot.
    subsample : int or None, default 200_000
        Bucket edges are the quantiles of at most this many rows (drawn without replacement with
        ``random_state``); None = all rows. Means and scales always use every row.
    random_state : int or None, default 0
        Seed of that draw.

    Attributes
    ----------
    columns_ : list of str
        Input columns in order (``"x0", "x1", ...`` for arrays).
    numeric_columns_, categorical_columns_ : list of str
    categorical_mask_ : ndarray of shape (n_columns,), bool
        Which columns of :meth:`transform_dense` are categorical codes.
    categories_ : dict str -> ndarray of str
        Known categories of each vocabulary-encoded categorical column, sorted.
    cardinalities_ : dict str -> int
        Number of codes of each categorical column (missing and other slots included): the
        embedding-table size for :meth:`transform_codes`.
    bin_edges_ : dict str -> ndarray of float64
        Bucket edges of each numeric column (``n_bins > 0``).
    mean_, scale_ : dict str -> float
        Mean and standard deviation of each numeric column on the fit data (missing values ignored).
    feature_names_out_ : ndarray of str, shape (n_features_out_,)
        Names of :meth:`transform`'s columns, e.g. ``"age"``, ``"age=[25,33)"``, ``"sex=Male"``,
        ``"education*sex=Bachelors*Male"``.
    n_features_out_ : int

    Examples
    --------
    >>> import pandas as pd
    >>> from recforge.features import FeatureEncoder
    >>> df = pd.DataFrame({"age": [25, 38, None, 52], "city": ["a", "b", "a", "?"]})
    >>> enc = FeatureEncoder(n_bins=2).fit(df)
    >>> X = enc.transform(df)                        # CSR float32 for LR
    >>> X.shape, X.dtype
    ((4, 8), dtype('float32'))
    >>> enc.feature_names_out_[:4].tolist()
    ['age', 'age=missing', 'age=[-inf,38)', 'age=[38,inf)']
    >>> enc.transform_codes(pd.DataFrame({"age": [1], "city": ["zzz"]})).tolist()  # unseen -> other
    [[1]]
    >>> enc.transform_dense(df)[:, 1].tolist()       # trees: codes - 1, NaN = missing
    [1.0, 2.0, 1.0, nan]
    """

    def __init__(
        self,
        *,
        categorical=None,
        numeric=None,
        n_bins=20,
        scale_numeric=True,
        crosses=(),
        min_frequency=1,
        max_categories=None,
        hash_columns=(),
        n_hash_buckets=4096,
        missing_values=("?", ""),
        subsample=200_000,
        random_state=0,
    ):
        self.categorical = categorical
        self.numeric = numeric
        self.n_bins = n_bins
        self.scale_numeric = scale_numeric
        self.crosses = crosses
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.hash_columns = hash_columns
        self.n_hash_buckets = n_hash_buckets
        self.missing_values = missing_values
        self.subsample = subsample
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------
    # fit
    # ------------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn column kinds, buckets, vocabularies and cross pairs from ``X``; returns ``self``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like of shape (n_rows, n_columns), or a
            :class:`~recforge.features._columns.Table` of one (its column reads are kept, so that
            transforming the same table afterwards reads no column again)
        y : ignored
        """
        self._validate_params()
        table = X if isinstance(X, Table) else Table(X)
        if table.n_rows == 0:
            raise ValueError("X has no rows; the encoder needs at least one row to fit")
        if not table.names:
            raise ValueError("X has no columns")
        forced_cat = self._resolve(self.categorical, table.names, "categorical")
        forced_num = self._resolve(self.numeric, table.names, "numeric")
        both = forced_cat & forced_num
        if both:
            raise ValueError(
                f"columns {sorted(both)} are listed in both `categorical` and `numeric`"
            )
        hashed = self._resolve(self.hash_columns, table.names, "hash_columns")
        if hashed & forced_num:
            raise ValueError(f"hash_columns {sorted(hashed & forced_num)} are declared numeric")
        mv = tuple(self.missing_values)

        self.columns_ = list(table.names)
        self.numeric_columns_, self.categorical_columns_ = [], []
        self.categories_, self.cardinalities_, self.hashed_ = {}, {}, {}
        self.bin_edges_, self.mean_, self.scale_ = {}, {}, {}
        codes = {}
        in_cross = {c for pair in self._resolve_crosses(table.names) for c in pair}
        for name in table.names:
            column = table.read(name, mv)
            is_num = name in forced_num or (
                name not in forced_cat and name not in hashed and column.looks_numeric()
            )
            if is_num:
                x = column.numbers(name)
                self._fit_numeric(name, x)
                self.numeric_columns_.append(name)
                if name in in_cross:
                    codes[name] = self._numeric_codes(name, x)
            else:
                self._fit_categorical(name, column, name in hashed)
                self.categorical_columns_.append(name)
                if name in in_cross:
                    codes[name] = self._categorical_codes(name, column)
        self.categorical_mask_ = np.array([c in self.hashed_ for c in self.columns_], dtype=bool)
        self.crosses_ = self._resolve_crosses(table.names)
        self.cross_keys_, self.cross_hashed_ = [], []
        for a, b in self.crosses_:
            key = codes[a] * self._n_codes(b) + codes[b]
            uniq, counts = np.unique(key, return_counts=True)
            uniq = uniq[counts >= self.min_frequency]
            hashed_cross = self.max_categories is not None and uniq.size > self.max_categories
            self.cross_hashed_.append(bool(hashed_cross))
            self.cross_keys_.append(
                np.zeros(0, np.int64) if hashed_cross else uniq.astype(np.int64)
            )
        self._build_layout()
        return self

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``: CSR float32 of shape (n_rows, n_features_out_)."""
        return self.fit(X, y).transform(X)

    def _validate_params(self):
        check_int(self.n_bins, "n_bins", min_value=0, max_value=65_536)
        check_int(self.min_frequency, "min_frequency", min_value=1)
        check_int(self.n_hash_buckets, "n_hash_buckets", min_value=1, max_value=2**30)
        if self.subsample is not None:
            check_int(self.subsample, "subsample", min_value=1)
        if self.max_categories is not None:
            check_int(self.max_categories, "max_categories", min_value=1)
        if not isinstance(self.scale_numeric, (bool, np.bool_)):
            raise TypeError(f"scale_numeric must be a bool, got {self.scale_numeric!r}")
        if isinstance(self.missing_values, str) or not all(
            isinstance(v, str) for v in self.missing_values
        ):
            raise TypeError(
                f"missing_values must be a tuple of strings, got {self.missing_values!r}"
            )

    @staticmethod
    def _resolve(spec, names, argname) -> set:
        if spec is None:
            return set()
        if isinstance(spec, (str, int, np.integer)):
            spec = [spec]
        out = set()
        for key in spec:
            out.add(FeatureEncoder._column_name(key, names, argname))
        return out

    @staticmethod
    def _column_name(key, names, argname) -> str:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not 0 <= int(key) < len(names):
                raise ValueError(
                    f"{argname}: column position {key} is out of range for {len(names)} columns"
                )
            return names[int(key)]
        if isinstance(key, str) and key in names:
            return key
        raise ValueError(f"{argname}: unknown column {key!r}; columns are {names}")

    def _resolve_crosses(self, names):
        if isinstance(self.crosses, str):
            raise TypeError("crosses must be a list of (column, column) pairs")
        out = []
        for pair in self.crosses:
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"crosses: each cross must be a pair of columns, got {pair!r}")
            a, b = (self._column_name(k, names, "crosses") for k in pair)
            if a == b:
                raise ValueError(f"crosses: a column cannot be crossed with itself ({a!r})")
            if (a, b) in out:
                raise ValueError(f"crosses: ({a!r}, {b!r}) is listed twice")
            out.append((a, b))
        return out

    def _fit_numeric(self, name, x):
        present = x[~np.isnan(x)]
        if present.size:
            mean = float(present.mean())
            std = float(present.std())
        else:
            mean, std = 0.0, 1.0
        self.mean_[name] = mean
        self.scale_[name] = std if std > 0 else 1.0
        if self.n_bins > 0:
            if self.subsample is not None and present.size > self.subsample:
                rng = np.random.default_rng(self.random_state)
                present = present[
                    np.sort(rng.choice(present.size, int(self.subsample), replace=False))
                ]
            if present.size:
                qs = np.quantile(present, np.arange(1, self.n_bins) / self.n_bins)
                edges = np.unique(qs)
            else:
                edges = np.zeros(0)
            self.bin_edges_[name] = edges.astype(np.float64)

    def _fit_categorical(self, name, column: Column, hashed):
        cats, idx = column.category_strings()
        counts = np.bincount(idx[idx >= 0], minlength=cats.size)
        kept = cats[counts >= self.min_frequency]
        if hashed or (self.max_categories is not None and kept.size > self.max_categories):
            self.hashed_[name] = True
            self.cardinalities_[name] = 2 + int(self.n_hash_buckets)
        else:
            self.hashed_[name] = False
            self.categories_[name] = kept.astype(str)
            self.cardinalities_[name] = 2 + int(kept.size)

    # ------------------------------------------------------------------------------------------
    # per-column codes
    # ------------------------------------------------------------------------------------------
    def _n_codes(self, name) -> int:
        if name in self.cardinalities_:
            return self.cardinalities_[name]
        return 2 + (self.bin_edges_[name].size if self.n_bins > 0 else 0)

    def _numeric_codes(self, name, x) -> np.ndarray:
        """int64 codes: 0 = missing, 1 + bucket (just 1 when there are no buckets)."""
        from ..kernels.encoder import bucketize

        codes = np.empty(x.shape[0], dtype=np.int64)
        edges = self.bin_edges_[name] if self.n_bins > 0 else np.zeros(0)
        bucketize(
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(edges, dtype=np.float64),
            codes,
        )
        return codes

    def _categorical_codes(self, name, column: Column) -> np.ndarray:
        """int64 codes: 0 = missing, 1 = other, 2 + category index (or hash bucket)."""
        labels, idx = column.category_strings()
        if self.hashed_[name]:
            lut = 2 + stable_hash(labels) % int(self.n_hash_buckets)
        else:
            cats = self.categories_[name]
            pos = np.searchsorted(cats, labels)
            pos_c = np.minimum(pos, max(cats.size - 1, 0))
            found = (
                (pos < cats.size) & (cats[pos_c] == labels)
                if cats.size
                else np.zeros(labels.size, bool)
            )
            lut = np.where(found, 2 + pos, 1).astype(np.int64)
        return np.append(lut, 0)[idx]  # missing (-1) reads the appended code 0

    def _cross_codes(self, k, ca, cb, n_b) -> np.ndarray:
        key = ca * n_b + cb
        if self.cross_hashed_[k]:
            return 1 + mix64(key) % int(self.n_hash_buckets)
        known = self.cross_keys_[k]
        pos = np.searchsorted(known, key)
        if known.size == 0:
            return np.zeros(key.shape[0], np.int64)
        found = known[np.minimum(pos, known.size - 1)] == key
        return np.where(found, 1 + pos, 0).astype(np.int64)

    def _read_column(self, table, name, mv) -> Column:
        try:
            return table.read(name, mv)
        except (KeyError, ValueError):
            raise ValueError(
                f"X has no column {name!r}; the encoder was fitted on {self.columns_}"
            ) from None

    def _table(self, X) -> Table:
        self._check_fitted()
        if isinstance(X, Table):
            return X
        table = Table(X)
        if table.frame is None and len(table.names) != len(self.columns_):
            raise ValueError(
                f"X has {len(table.names)} columns, but the encoder was fitted on "
                f"{len(self.columns_)}"
            )
        return table

    def _codes_and_numbers(self, X, need_numbers: bool, skip=frozenset()):
        table = X if isinstance(X, Table) else self._table(X)
        mv = tuple(self.missing_values)
        codes, numbers = {}, {}
        for name in self.columns_:
            if name in skip:
                continue
            column = self._read_column(table, name, mv)
            if name in self.mean_:
                x = column.numbers(name)
                codes[name] = self._numeric_codes(name, x)
                if need_numbers:
                    numbers[name] = x
            else:
                codes[name] = self._categorical_codes(name, column)
        return codes, numbers

    # ------------------------------------------------------------------------------------------
    # outputs
    # ------------------------------------------------------------------------------------------
    def _build_layout(self):
        """Column offsets of :meth:`transform`'s output; the names are built on first use
        (:attr:`feature_names_out_`), since a hashed column has one per bucket."""
        blocks = []  # (kind, column or cross index, offset, width)
        width = 0
        for kind, what, n_slots in self._block_widths():
            blocks.append((kind, what, width, n_slots))
            width += n_slots
        self._blocks = blocks
        self.n_features_out_ = width
        self._feature_names = None

    def _block_widths(self):
        """``(kind, column or cross index, width)`` of each block of :meth:`transform`'s output."""
        if self.scale_numeric:
            for c in self.numeric_columns_:
                yield "scaled", c, 1
        for c in self.numeric_columns_:
            if self.n_bins > 0:
                # the missing slot and len(edges) + 1 buckets
                yield "bins", c, 2 + self.bin_edges_.get(c, np.zeros(0)).size
            elif self.scale_numeric:
                yield "bins", c, 1  # only the missing indicator
        for c in self.categorical_columns_:
            yield "onehot", c, self._n_codes(c)
        for k in range(len(self.crosses_)):
            known = int(self.n_hash_buckets) if self.cross_hashed_[k] else self.cross_keys_[k].size
            yield "cross", k, 1 + known

    @property
    def feature_names_out_(self) -> np.ndarray:
        """Names of :meth:`transform`'s columns, (n_features_out_,) str, built on first use."""
        self._check_fitted()
        if getattr(self, "_feature_names", None) is None:
            names = self._feature_name_list()
            if len(names) != self.n_features_out_:  # pragma: no cover - the two layouts must agree
                raise RuntimeError(f"{len(names)} names for {self.n_features_out_} features")
            self._feature_names = np.array(names, dtype=str)
        return self._feature_names

    def _feature_name_list(self) -> list:
        names = []
        if self.scale_numeric:
            names += list(self.numeric_columns_)
        for c in self.numeric_columns_:
            edges = self.bin_edges_.get(c, np.zeros(0))
            slot_names = [f"{c}=missing"]
            if self.n_bins > 0:
                bounds = np.concatenate([[-np.inf], edges, [np.inf]])
                slot_names += [
                    f"{c}=[{bounds[i]:g},{bounds[i + 1]:g})" for i in range(edges.size + 1)
                ]
            elif self.scale_numeric:
                pass  # only the missing indicator
            else:
                slot_names = []
            names += slot_names
        for c in self.categorical_columns_:
            if self.hashed_[c]:
                buckets = range(int(self.n_hash_buckets))
                names += [f"{c}=missing", f"{c}=other"] + [f"{c}=hash{h}" for h in buckets]
            else:
                names += [f"{c}=missing", f"{c}=other"] + [f"{c}={v}" for v in self.categories_[c]]
        for k, (a, b) in enumerate(self.crosses_):
            prefix = f"{a}*{b}"
            if self.cross_hashed_[k]:
                slots = [f"{prefix}=other"] + [
                    f"{prefix}=hash{h}" for h in range(int(self.n_hash_buckets))
                ]
            else:
                n_b = self._n_codes(b)
                keys = self.cross_keys_[k]
                la, lb = self._code_labels(a), self._code_labels(b)
                slots = [f"{prefix}=other"] + [
                    f"{prefix}={la[i]}*{lb[j]}" for i, j in zip(keys // n_b, keys % n_b)
                ]
            names += slots
        return names

    def _code_labels(self, name) -> list:
        if name in self.mean_:
            edges = self.bin_edges_.get(name, np.zeros(0))
            bounds = np.concatenate([[-np.inf], edges, [np.inf]])
            return ["missing"] + [
                f"[{bounds[i]:g},{bounds[i + 1]:g})" for i in range(bounds.size - 1)
            ]
        if self.hashed_[name]:
            return ["missing", "other"] + [f"hash{h}" for h in range(int(self.n_hash_buckets))]
        return ["missing", "other", *list(self.categories_[name])]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of :meth:`transform`'s columns (scikit-learn's spelling of ``feature_names_out_``)."""
        self._check_fitted()
        return self.feature_names_out_.astype(object)

    def transform(self, X) -> sp.csr_matrix:
        """Sparse features for linear models.

        Returns
        -------
        csr_matrix of shape (n_rows, n_features_out_), float32
            Sorted indices, no explicit zeros. Per row: one value per scaled numeric column, one 1.0
            per bucket block, one-hot block and cross block. Column names: ``feature_names_out_``.
        """
        from ..kernels.encoder import csr_arrays, numeric_blocks

        table = self._table(X)
        # numeric columns of a numeric dtype (not in a cross) go through one fused kernel that writes
        # their scaled value and bucket straight into the output buffers: no temporaries per column
        fused = {}
        if self.n_bins > 0:
            crossed = {c for pair in self.crosses_ for c in pair}
            for name in self.numeric_columns_:
                if name in crossed:
                    continue
                try:
                    values = table.column(name)
                except (KeyError, ValueError):
                    continue  # reported by _codes_and_numbers
                if values.dtype.kind in "iuf":
                    fused[name] = values
        n = table.n_rows
        codes, numbers = self._codes_and_numbers(
            table, need_numbers=self.scale_numeric, skip=set(fused)
        )
        n_blocks = len(self._blocks)
        if n_blocks == 0:
            return sp.csr_matrix((n, 0), dtype=np.float32)

        index_dtype = np.int32 if max(n * n_blocks, self.n_features_out_) < 2**31 - 1 else np.int64
        cols = np.empty(
            (n_blocks, n), dtype=index_dtype
        )  # block-major: each row of cols is contiguous
        valued = [
            j
            for j, blk in enumerate(self._blocks)
            if blk[0] == "scaled" or (blk[0] == "bins" and self.n_bins == 0)
        ]
        val_row = np.full(n_blocks, -1, dtype=np.int64)  # blocks whose value is not 1
        val_row[valued] = np.arange(len(valued))
        vals = np.empty((len(valued), n), dtype=np.float32)
        scaled_block = {
            what: j for j, (kind, what, _, _) in enumerate(self._blocks) if kind == "scaled"
        }
        if fused and table.array is not None and table.array.dtype.kind in "iuf":
            self._fused_2d(table.array, list(fused), scaled_block, cols, vals, val_row)
            fused_done = True
        else:
            fused_done = False
        for j, (kind, what, offset, _width) in enumerate(self._blocks):
            if what in fused and fused_done:
                continue
            if what in fused and kind == "bins":
                js = scaled_block.get(what)
                n_inf = numeric_blocks(
                    fused[what],
                    self.bin_edges_[what],
                    self.mean_[what],
                    self.scale_[what],
                    js is not None,
                    self._blocks[js][2] if js is not None else 0,
                    cols[js] if js is not None else cols[j],
                    vals[val_row[js]] if js is not None else vals[:0].reshape(-1),
                    offset,
                    cols[j],
                )
                if n_inf:
                    raise ValueError(f"column {what!r} holds an infinite value")
            elif what in fused:
                continue  # its scaled block is written together with its bins block
            elif kind == "scaled":
                z = (numbers[what] - self.mean_[what]) / self.scale_[what]
                z[np.isnan(z)] = 0.0
                cols[j] = offset
                vals[val_row[j]] = z
            elif kind == "bins":
                c = codes[what]
                if self.n_bins > 0:
                    np.add(c, offset, out=cols[j], casting="unsafe")
                else:  # missing indicator only
                    cols[j] = offset
                    vals[val_row[j]] = c == 0
            elif kind == "onehot":
                np.add(codes[what], offset, out=cols[j], casting="unsafe")
            else:
                a, b = self.crosses_[what]
                cols[j] = offset + self._cross_codes(what, codes[a], codes[b], self._n_codes(b))
        indptr, indices, data = csr_arrays(cols, vals, val_row, index_dtype)
        del cols, vals
        out = sp.csr_matrix((data, indices, indptr), shape=(n, self.n_features_out_))
        out.has_sorted_indices = True
        return out

    def _fused_2d(self, X, names, scaled_block, cols, vals, val_row):
        """Scaled + bucket blocks of the numeric columns ``names`` of a numeric 2-D array, one row-major pass."""
        from ..kernels.encoder import numeric_blocks_2d

        X = np.ascontiguousarray(X)
        bins_block = {
            what: j for j, (kind, what, _, _) in enumerate(self._blocks) if kind == "bins"
        }
        k = len(names)
        col_idx = np.array([self.columns_.index(c) for c in names], dtype=np.int64)
        edge_list = [self.bin_edges_[c] for c in names]
        edge_ptr = np.zeros(k + 1, dtype=np.int64)
        edge_ptr[1:] = np.cumsum([e.size for e in edge_list])
        edges = np.concatenate(edge_list) if k else np.zeros(0)
        srow = np.array([scaled_block.get(c, -1) for c in names], dtype=np.int64)
        vrow = np.array([val_row[r] if r >= 0 else -1 for r in srow], dtype=np.int64)
        off_s = np.array([self._blocks[r][2] if r >= 0 else 0 for r in srow], dtype=np.int64)
        brow = np.array([bins_block[c] for c in names], dtype=np.int64)
        off_b = np.array([self._blocks[r][2] for r in brow], dtype=np.int64)
        n_inf = np.zeros(k, dtype=np.int64)
        numeric_blocks_2d(
            X,
            col_idx,
            edges.astype(np.float64),
            edge_ptr,
            np.array([self.mean_[c] for c in names]),
            np.array([self.scale_[c] for c in names]),
            srow,
            vrow,
            off_s,
            brow,
            off_b,
            cols,
            vals,
            n_inf,
        )
        if n_inf.any():
            raise ValueError(
                f"column {names[int(np.flatnonzero(n_inf)[0])]!r} holds an infinite value"
            )

    def transform_dense(self, X) -> np.ndarray:
        """Dense features for trees, one column per input column in ``columns_`` order.

        Returns
        -------
        ndarray of shape (n_rows, n_columns), float32, C-contiguous
            Numeric columns: the raw value, NaN where missing. Categorical columns
            (``categorical_mask_``): ``code - 1`` — 0 = other/unseen, 1 + i = the i-th category
            (or hash bucket) — and NaN where missing; values lie in ``[0, cardinalities_[c] - 1)``.
        """
        table = self._table(X)
        n, (codes, numbers) = table.n_rows, self._codes_and_numbers(table, need_numbers=True)
        out = np.empty((n, len(self.columns_)), dtype=np.float32)
        for j, name in enumerate(self.columns_):
            if name in numbers:
                out[:, j] = numbers[name]
            else:
                c = codes[name].astype(np.float32) - 1.0
                c[codes[name] == 0] = np.nan
                out[:, j] = c
        return out

    def transform_codes(self, X, columns=None) -> np.ndarray:
        """Integer codes for embedding look-ups.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_rows, n_columns)
        columns : list of str, optional
            Which columns (default ``categorical_columns_``). A numeric column gives its bucket code
            (0 = missing, 1 + bucket); see :meth:`n_codes` for the table size.

        Returns
        -------
        ndarray of shape (n_rows, len(columns)), int32
            Code of each row in each column, in ``[0, n_codes(column))``.
        """
        columns = self._code_columns(columns)
        table = self._table(X)
        codes, _ = self._codes_and_numbers(table, need_numbers=False)
        return _stack(codes, columns, table.n_rows, np.int32)

    def n_codes(self, column) -> int:
        """Number of distinct codes of ``column`` in :meth:`transform_codes` (an embedding table's rows)."""
        self._check_fitted()
        return self._n_codes(self._column_name(column, self.columns_, "column"))

    def transform_numeric(self, X, standardize: bool = True) -> np.ndarray:
        """Numeric columns only, in ``numeric_columns_`` order.

        Returns
        -------
        ndarray of shape (n_rows, n_numeric), float32
            ``(x - mean_) / scale_`` with missing -> 0 when ``standardize``; else raw values with NaN.
        """
        table = self._table(X)
        _, numbers = self._codes_and_numbers(table, need_numbers=True)
        if standardize:
            numbers = self._standardized(numbers)
        return _stack(numbers, self.numeric_columns_, table.n_rows, np.float32)

    def transform_codes_numeric(self, X, columns=None, *, sparse: bool = False) -> tuple:
        """``(transform_codes(X, columns), transform_numeric(X))`` from one pass over ``X`` (the inputs
        of an embedding model; half the time of the two calls). ``sparse=True`` appends
        ``transform(X)`` (Wide&Deep's wide input), built from the same read of each column."""
        columns = self._code_columns(columns)
        table = self._table(X)
        codes, numbers = self._codes_and_numbers(table, need_numbers=True)
        out = (
            _stack(codes, columns, table.n_rows, np.int32),
            _stack(self._standardized(numbers), self.numeric_columns_, table.n_rows, np.float32),
        )
        return (*out, self.transform(table)) if sparse else out

    def _code_columns(self, columns) -> list:
        """``columns`` checked against ``columns_``; default ``categorical_columns_``."""
        self._check_fitted()
        if columns is None:
            return self.categorical_columns_
        return [self._column_name(c, self.columns_, "columns") for c in columns]

    def _standardized(self, numbers: dict) -> dict:
        """``{name: (x - mean_) / scale_}`` over ``numeric_columns_``, missing (NaN) -> 0."""
        out = {}
        for name in self.numeric_columns_:
            x = (numbers[name] - self.mean_[name]) / self.scale_[name]
            x[np.isnan(x)] = 0.0
            out[name] = x
        return out

    # ------------------------------------------------------------------------------------------
    # persistence (arrays + JSON, embeddable in a model file)
    # ------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "columns_"):
            raise NotFittedError("this FeatureEncoder is not fitted yet; call fit(X) first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "columns_")

    def get_state(self, prefix: str = "") -> tuple[dict, dict]:
        """Fitted state as ``(arrays, meta)``: numeric/str arrays named ``prefix + ...`` and a JSON-able dict.

        A model that embeds an encoder stores both in its own file (see :mod:`recforge.io`) and
        rebuilds it with :meth:`from_state`.
        """
        self._check_fitted()
        arrays = {}
        for j, c in enumerate(self.numeric_columns_):
            if c in self.bin_edges_:
                arrays[f"{prefix}edges{j}"] = self.bin_edges_[c]
        for j, c in enumerate(self.categorical_columns_):
            if not self.hashed_[c]:
                arrays[f"{prefix}categories{j}"] = self.categories_[c]
        for k, keys in enumerate(self.cross_keys_):
            arrays[f"{prefix}cross{k}"] = keys
        meta = {
            "state_version": _STATE_VERSION,
            "params": _jsonable_params(self.get_params()),
            "columns": self.columns_,
            "numeric": self.numeric_columns_,
            "categorical": self.categorical_columns_,
            "hashed": [bool(self.hashed_[c]) for c in self.categorical_columns_],
            "mean": [self.mean_[c] for c in self.numeric_columns_],
            "scale": [self.scale_[c] for c in self.numeric_columns_],
            "crosses": [list(p) for p in self.crosses_],
            "cross_hashed": self.cross_hashed_,
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict, meta: dict, prefix: str = "") -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`get_state`'s output.

        Every entry is checked (types, lengths, finite means and scales > 0, strictly increasing
        bucket edges, sorted unique categories, cross keys in range); an inconsistent state raises
        ``ValueError`` (:class:`~recforge.exceptions.ModelFileError`, naming the file when
        ``arrays`` come from one).
        """
        arrays = ModelArrays.of(arrays)
        if not isinstance(meta, dict) or meta.get("state_version") != _STATE_VERSION:
            version = meta.get("state_version") if isinstance(meta, dict) else None
            raise arrays.error(f"unsupported FeatureEncoder state version {version!r}")
        params = meta.get("params")
        if not isinstance(params, dict):
            raise arrays.error("the encoder state's 'params' must be a JSON object")
        params = dict(params)
        params["crosses"] = [tuple(p) for p in _json_list(arrays, params, "crosses", of=list)]
        params["missing_values"] = tuple(_json_list(arrays, params, "missing_values", of=str))
        enc = cls(**params)
        enc._validate_params()
        enc.columns_ = _json_list(arrays, meta, "columns", of=str)
        enc.numeric_columns_ = _json_list(arrays, meta, "numeric", of=str)
        enc.categorical_columns_ = _json_list(arrays, meta, "categorical", of=str)
        listed = enc.numeric_columns_ + enc.categorical_columns_
        if len(set(enc.columns_)) != len(enc.columns_) or sorted(listed) != sorted(enc.columns_):
            raise arrays.error(
                "the encoder's numeric and categorical columns must split its unique columns"
            )
        n_num, n_cat = len(enc.numeric_columns_), len(enc.categorical_columns_)
        mean = _json_floats(arrays, meta, "mean", n_num)
        scale = _json_floats(arrays, meta, "scale", n_num)
        if np.any(scale <= 0):
            raise arrays.error("the encoder's scales must be > 0")
        enc.mean_ = dict(zip(enc.numeric_columns_, map(float, mean)))
        enc.scale_ = dict(zip(enc.numeric_columns_, map(float, scale)))
        enc.bin_edges_ = {}
        if enc.n_bins > 0:
            for j, c in enumerate(enc.numeric_columns_):
                edges = arrays.take(f"{prefix}edges{j}", dtype=np.float64)
                if edges.size > enc.n_bins - 1 or np.any(np.diff(edges) <= 0):
                    raise arrays.error(
                        f"bucket edges of column {c!r} must be at most n_bins - 1 = "
                        f"{enc.n_bins - 1} strictly increasing values"
                    )
                enc.bin_edges_[c] = edges
        hashed = _json_list(arrays, meta, "hashed", of=bool, length=n_cat)
        enc.hashed_, enc.categories_, enc.cardinalities_ = {}, {}, {}
        for j, (c, h) in enumerate(zip(enc.categorical_columns_, hashed)):
            enc.hashed_[c] = h
            if h:
                enc.cardinalities_[c] = 2 + int(enc.n_hash_buckets)
            else:
                cats = arrays.take(f"{prefix}categories{j}", kinds="U")
                if cats.size > 1 and not np.all(cats[1:] > cats[:-1]):
                    raise arrays.error(f"categories of column {c!r} are not sorted and unique")
                enc.categories_[c] = cats
                enc.cardinalities_[c] = 2 + int(cats.size)
        enc.categorical_mask_ = np.array([c in enc.hashed_ for c in enc.columns_], dtype=bool)
        enc.crosses_ = enc._resolve_crosses(enc.columns_)
        if [list(p) for p in enc.crosses_] != _json_list(arrays, meta, "crosses", of=list):
            raise arrays.error("the encoder's crosses do not match its 'crosses' parameter")
        enc.cross_hashed_ = _json_list(
            arrays, meta, "cross_hashed", of=bool, length=len(enc.crosses_)
        )
        enc.cross_keys_ = []
        for k, (a, b) in enumerate(enc.crosses_):
            n_keys = enc._n_codes(a) * enc._n_codes(b)
            keys = arrays.take(
                f"{prefix}cross{k}", kinds="iu", dtype=np.int64, min_value=0, max_value=n_keys - 1
            )
            if np.any(np.diff(keys) <= 0) or (enc.cross_hashed_[k] and keys.size):
                raise arrays.error(
                    f"the known pairs of cross {a}*{b} must be sorted and unique (none when hashed)"
                )
            enc.cross_keys_.append(keys)
        enc._build_layout()
        return enc

    def save(self, file) -> None:
        """Write the fitted encoder to ``file`` (path or binary file object): ``.npz`` + JSON, no pickle."""
        arrays, meta = self.get_state()
        save_arrays(
            file, model_class=type(self).__name__, params=meta["params"], arrays=arrays, meta=meta
        )

    @classmethod
    def load(cls, file) -> FeatureEncoder:
        """Read an encoder written by :meth:`save`; a corrupt or foreign file raises ``ModelFileError``."""
        _, arrays, meta = load_arrays(file, expected_class=cls.__name__)
        with model_file_errors(file, cls.__name__):
            return cls.from_state(arrays, meta)


def _stack(per_column: dict, columns, n_rows: int, dtype) -> np.ndarray:
    """ndarray (n_rows, len(columns)) of ``dtype`` whose column j is ``per_column[columns[j]]``."""
    out = np.empty((n_rows, len(columns)), dtype=dtype)
    for j, name in enumerate(columns):
        out[:, j] = per_column[name]
    return out


def _json_list(arrays: ModelArrays, record: dict, key: str, *, of, length=None) -> list:
    """``record[key]`` checked to be a list of ``length`` (any if None) elements of type ``of``."""
    value = record.get(key)
    if (
        not isinstance(value, list)
        or (length is not None and len(value) != length)
        or not all(isinstance(v, of) and (of is bool or not isinstance(v, bool)) for v in value)
    ):
        what = getattr(of, "__name__", None) or "/".join(t.__name__ for t in of)
        count = "" if length is None else f"{length} "
        raise arrays.error(
            f"the encoder state's {key!r} must be a list of {count}{what} values, "
            f"got {str(value)[:80]}"
        )
    return value


def _json_floats(arrays: ModelArrays, record: dict, key: str, length: int) -> np.ndarray:
    """``record[key]``: ``length`` finite numbers as float64."""
    values = _json_list(arrays, record, key, of=(int, float), length=length)
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except OverflowError:
        out = np.array([np.inf])
    if not np.all(np.isfinite(out)):
        raise arrays.error(f"the encoder state's {key!r} must hold finite numbers")
    return out


def _jsonable_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, (list, tuple)):
            out[k] = [list(x) if isinstance(x, (list, tuple)) else _plain(x) for x in v]
        else:
            out[k] = _plain(v)
    return out


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
