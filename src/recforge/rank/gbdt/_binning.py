"""Feature binning for GBDT: per-feature quantile edges, uint8 bins, a bin for missing values.

A numeric feature with at most ``max_bin`` distinct values gets one bin per value (its edges are
the distinct values but the smallest, so a split "bin <= t" is the split "x < edges[t]" — the
thresholds xgboost's hist method uses on such data). Otherwise edges are quantiles of the values
(taken from a subsample of ``subsample`` rows), so bins hold about equal numbers of rows.
A categorical feature (non-negative integer codes) gets one bin per category seen in fit.
NaN goes to bin :data:`~recforge.kernels.gbdt.MISSING_BIN` (255).
"""

from __future__ import annotations

import numpy as np

from ... import _core
from ..._threads import ChunkPool, run_chunks
from ...kernels import gbdt as kern
from ...kernels.gbdt import MAX_BIN

#: bytes of the sample transposed at a time in :meth:`BinMapper.fit`
_TRANSPOSE_BYTES = 4 << 20


class BinMapper:
    """Learn bin edges on training data and map any data to uint8 bins.

    Parameters
    ----------
    max_bin : int in [2, 255]
        Most value bins per numeric feature (the missing-value bin comes on top). A categorical
        feature may have up to 255 categories whatever ``max_bin``.
    subsample : int or None
        Rows used to find the quantiles of a numeric feature (None: all).
    random_state : numpy Generator

    Attributes
    ----------
    edges_ : list of ndarray float32
        Sorted edges per feature (numeric: bin upper bounds; categorical: the category codes).
    n_bins_ : ndarray (n_features,) int32
        Value bins per feature (``len(edges) + 1`` numeric, ``len(edges)`` categorical).
    is_categorical_ : ndarray (n_features,) bool
    """

    def __init__(self, max_bin=MAX_BIN, subsample=200_000, random_state=None):
        self.max_bin = max_bin
        self.subsample = subsample
        self.random_state = random_state

    def fit(self, X, is_categorical, n_threads=1):
        """X: float32 (n_rows, n_features), C order, NaN = missing, no inf. Features in parallel threads."""
        n_rows, n_features = X.shape
        self.is_categorical_ = np.asarray(is_categorical, dtype=bool)
        sample = X
        if self.subsample is not None and n_rows > self.subsample:
            rng = self.random_state if self.random_state is not None else np.random.default_rng(0)
            idx = np.sort(rng.choice(n_rows, self.subsample, replace=False))
            sample = X[idx]

        def edges(f, sample_col):
            col = X[:, f] if self.is_categorical_[f] else sample_col
            col = col[~np.isnan(col)]
            if self.is_categorical_[f]:
                codes = np.unique(col)
                if codes.size > MAX_BIN:
                    raise ValueError(
                        f"categorical feature {f} has {codes.size} categories; at most "
                        f"{MAX_BIN} are supported"
                    )
                return codes.astype(np.float32)
            return _numeric_edges(col, self.max_bin)

        # columns of at most two values (one-hot ones, flags) from one pass over the rows: their
        # edge is the larger value (_numeric_edges' edges without the sort)
        upper, two_valued = _core.gbdt_two_valued_columns(np.ascontiguousarray(sample))
        few = two_valued.astype(bool) & ~self.is_categorical_
        # the sample's columns a block at a time, each block transposed once so that every column
        # is contiguous (a block, not the whole sample: a buffer the allocator reuses, not a fresh
        # mapping whose first touch costs as much as the edges on a one-hot matrix)
        width = max(1, _TRANSPOSE_BYTES // max(1, 4 * sample.shape[0]))
        threaded = n_threads > 1 and n_features > 1 and sample.shape[0] > 10_000
        if threaded:  # two blocks per thread or more, taken one at a time
            width = min(width, -(-n_features // (2 * n_threads)))
        n_blocks = -(-n_features // width)

        def block_edges(b):
            f0, f1 = b * width, min(n_features, (b + 1) * width)
            block_t = None if few[f0:f1].all() else np.ascontiguousarray(sample[:, f0:f1].T)
            return [
                _few_edges(upper[f]) if few[f] else edges(f, block_t[f - f0]) for f in range(f0, f1)
            ]

        with ChunkPool(min(n_threads, n_blocks) if threaded else 1) as pool:
            blocks = run_chunks(block_edges, n_blocks, pool)  # the sorts release the GIL
        self.edges_ = [e for block in blocks for e in block]
        self.n_bins_ = np.array(
            [len(e) if c else len(e) + 1 for e, c in zip(self.edges_, self.is_categorical_)],
            dtype=np.int32,
        )
        return self

    def transform(self, X, n_threads=1):
        """uint8 bins of float32 ``X`` (n_rows, n_features), C order."""
        offsets = np.zeros(len(self.edges_) + 1, np.int64)
        offsets[1:] = np.cumsum([len(e) for e in self.edges_])
        edges = np.concatenate(self.edges_) if self.edges_ else np.zeros(0, np.float32)
        return kern.bin_features(X, edges, offsets, self.is_categorical_, n_threads=n_threads)

    @property
    def threshold_table_(self):
        """:meth:`threshold_table`, computed once (the edges do not change after fit)."""
        table = getattr(self, "_threshold_table", None)
        if table is None:
            table = self._threshold_table = self.threshold_table()
        return table

    def threshold_table(self):
        """float32 (n_features, 257): ``table[f, t + 1]`` is the raw threshold of split bin ``t`` (-1..255)."""
        table = np.full((len(self.edges_), 257), np.inf, np.float32)
        for f, e in enumerate(self.edges_):
            if self.is_categorical_[f]:
                table[f, 0] = np.nan
                table[f, 1 : 1 + len(e)] = e
            else:
                table[f, 0] = -np.inf
                table[f, 1 : 1 + len(e)] = e
        return table

    # ---- state (save/load) -------------------------------------------------------------------
    def get_state(self):
        """The fitted edges as two arrays: ``(edges float32 (n_edges,), offsets int64 (n_features + 1,))``;
        feature ``f``'s edges are ``edges[offsets[f]:offsets[f + 1]]``."""
        offsets = np.zeros(len(self.edges_) + 1, np.int64)
        offsets[1:] = np.cumsum([len(e) for e in self.edges_])
        edges = (
            np.concatenate(self.edges_).astype(np.float32)
            if offsets[-1]
            else np.zeros(0, np.float32)
        )
        return edges, offsets

    @classmethod
    def from_state(cls, edges, offsets, is_categorical, max_bin=MAX_BIN):
        """A fitted mapper from :meth:`get_state`'s arrays (e.g. read from a model file).

        Raises ``ValueError`` unless ``offsets`` (int64, ``n_features + 1``, from 0 to ``len(edges)``,
        non-decreasing) and ``edges`` (float32, finite, strictly increasing per feature; categorical
        codes non-negative integers; at most ``MAX_BIN - 1`` numeric edges or ``MAX_BIN`` categories)
        describe valid bins for the ``is_categorical`` mask (bool (n_features,)).
        """
        is_categorical = np.asarray(is_categorical, dtype=bool)
        edges, offsets = np.asarray(edges), np.asarray(offsets)
        n_features = len(is_categorical)
        if edges.dtype != np.float32 or edges.ndim != 1:
            raise ValueError(
                f"bin edges must be a 1-D float32 array, got {edges.dtype} of shape {edges.shape}"
            )
        if offsets.dtype != np.int64 or offsets.shape != (n_features + 1,):
            raise ValueError(
                f"bin offsets must be int64 of shape ({n_features + 1},), got {offsets.dtype} of "
                f"shape {offsets.shape}"
            )
        if offsets[0] != 0 or offsets[-1] != len(edges) or np.any(np.diff(offsets) < 0):
            raise ValueError("bin offsets must rise from 0 to the number of edges")
        if not np.all(np.isfinite(edges)):
            raise ValueError("bin edges must be finite")
        mapper = cls(max_bin=max_bin)
        mapper.edges_ = [edges[offsets[f] : offsets[f + 1]] for f in range(n_features)]
        for f, e in enumerate(mapper.edges_):
            if np.any(np.diff(e) <= 0):
                raise ValueError(f"bin edges of feature {f} are not strictly increasing")
            cat = is_categorical[f]
            if len(e) > (MAX_BIN if cat else MAX_BIN - 1):
                raise ValueError(
                    f"feature {f} has {len(e)} bin edges, more than a uint8 bin can index"
                )
            if cat and len(e) and (e[0] < 0 or np.any(e != np.round(e))):
                raise ValueError(
                    f"categorical feature {f} has codes that are not non-negative integers"
                )
        mapper.is_categorical_ = is_categorical
        mapper.n_bins_ = np.array(
            [len(e) if c else len(e) + 1 for e, c in zip(mapper.edges_, is_categorical)],
            dtype=np.int32,
        )
        return mapper


def _few_edges(upper):
    """:func:`_numeric_edges` of a column of at most two values (NaN aside): its larger value
    ``upper`` when it has two (NaN: fewer, no edge)."""
    if np.isnan(upper):
        return np.zeros(0, np.float32)
    return np.array([upper], np.float32)


def _numeric_edges(values, max_bin):
    """Edges (float32, strictly increasing) so that bins hold about equal numbers of values.

    ``values``: float32 (n,), no NaN."""
    if values.size == 0:
        return np.zeros(0, np.float32)
    ordered = _core.gbdt_sort_values(np.ascontiguousarray(values, dtype=np.float32))
    is_new = np.empty(ordered.size, bool)
    is_new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=is_new[1:])
    if np.count_nonzero(is_new) <= max_bin:
        return ordered[is_new][1:].astype(np.float32)
    positions = (np.arange(1, max_bin) * ordered.size) // max_bin
    edges = np.unique(ordered[positions])
    return edges[edges > ordered[0]].astype(np.float32)
