"""Grow one regression tree on gradients: Python drives, the C++ kernels do the row work.

Depth-wise growth (``max_leaves=None``) handles a whole level per kernel call: one call builds the
histograms of the smaller child of every split (the larger sibling is parent − smaller, the
subtraction trick, one NumPy operation for the level), one finds every node's best split, one
partitions all rows. Without row subsampling and with a depth limit, :class:`FusedDepthwiseGrower`
grows the same trees in one kernel call per tree (no Python between levels). Best-first growth
(``max_leaves`` set) splits the leaf with the largest loss reduction next; one kernel call grows the
whole tree (``_core.gbdt_grow_leafwise``; the Python driver that splits one node per round of kernel
calls is its reference, ``recforge._reference.gbdt_best_first``). The bookkeeping is vectorised over
the nodes of a level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import _core
from ...kernels.gbdt import N_BINS

#: ``max_cat_to_onehot`` that splits every categorical feature one category vs the rest
CAT_ONE_VS_REST = N_BINS


@dataclass
class GrowParams:
    max_depth: int | None
    max_leaves: int | None
    min_child_weight: float
    reg_lambda: float
    gamma: float
    learning_rate: float
    # the categorical split search (csrc/include/recforge/split.hpp): features with more value bins
    # than max_cat_to_onehot are split by a sorted partition, the others one category vs the rest
    max_cat_to_onehot: int = CAT_ONE_VS_REST
    max_cat_threshold: int = 32
    cat_smooth: float = 10.0
    cat_l2: float = 0.0
    # the partition search's group limits (LightGBM's min_data_per_group and rare-category
    # filter, in hessian units)
    min_group_weight: float = 0.0
    min_category_weight: float = 0.0
    # int32 (n_columns, 256) or None: which of two splits of equal gain wins (split.hpp), for a
    # bundled matrix (FeatureBundles.split_rank); None: the lower column
    split_rank: np.ndarray | None = None

    def cat_kwargs(self):
        """The split search parameters as the kernels' keyword arguments."""
        rank = {} if self.split_rank is None else {"split_rank": self.split_rank}
        return {
            **rank,
            "max_cat_to_onehot": self.max_cat_to_onehot,
            "max_cat_threshold": self.max_cat_threshold,
            "cat_smooth": self.cat_smooth,
            "cat_l2": self.cat_l2,
            "min_group_weight": self.min_group_weight,
            "min_category_weight": self.min_category_weight,
        }


class Tree:
    """One tree's nodes (root = 0). Leaves have ``feature == -1`` and ``left == right == -1``.

    Arrays (n_nodes,): ``feature`` int32, ``threshold_bin`` int32, ``threshold`` float32 (raw value:
    numeric ``x < threshold`` goes left, categorical ``x == threshold``), ``default_left`` uint8
    (side of missing values), ``categorical`` uint8, ``left``/``right`` int32, ``value`` float64 (leaf
    output, learning rate applied; 0 for splits), ``gain`` float64 (loss reduction of the split),
    ``cover`` float64 (hessian sum), ``depth`` int32; and ``cat_set`` uint64 (n_nodes, 4): the bins a
    categorical partition split sends left (bit ``b % 64`` of word ``b // 64``; such a split has
    ``threshold_bin == -1`` and ``threshold`` NaN), zero for every other node.
    """

    FIELDS = (
        "feature",
        "threshold_bin",
        "threshold",
        "default_left",
        "categorical",
        "left",
        "right",
        "value",
        "gain",
        "cover",
        "depth",
        "cat_set",
    )
    DTYPES = (
        np.int32,
        np.int32,
        np.float32,
        np.uint8,
        np.uint8,
        np.int32,
        np.int32,
        np.float64,
        np.float64,
        np.float64,
        np.int32,
        np.uint64,
    )
    SHAPES: ClassVar[dict] = {"cat_set": (4,)}  # trailing dimensions of the 2-D fields

    @classmethod
    def empty(cls, name, n):
        """A zero array for field ``name`` of ``n`` nodes."""
        return np.zeros((n, *cls.SHAPES.get(name, ())), cls.DTYPES[cls.FIELDS.index(name)])

    def __init__(self, capacity=64):
        self.n = 0
        self.a = {name: self.empty(name, capacity) for name in self.FIELDS}
        self._own = False  # (the arrays are views into capacity: arrays() copies them)

    @classmethod
    def of(cls, nodes):
        """The tree whose node arrays are ``nodes`` (a dict with every field, each of the tree's
        length: a kernel's fresh arrays, taken over without a copy)."""
        tree = cls.__new__(cls)
        tree.n = len(nodes["feature"])
        tree.a = {name: nodes[name] for name in cls.FIELDS}
        tree._own = True
        return tree

    def add(self, depth, cover, value):
        """Append leaves (array arguments); returns their node ids."""
        depth, cover, value = np.atleast_1d(depth), np.atleast_1d(cover), np.atleast_1d(value)
        k = len(cover)
        if self.n + k > len(self.a["feature"]):
            cap = max(2 * len(self.a["feature"]), self.n + k)
            for name in self.FIELDS:
                grown = self.empty(name, cap)
                grown[: self.n] = self.a[name][: self.n]
                self.a[name] = grown
        ids = np.arange(self.n, self.n + k)
        self.a["feature"][ids] = -1
        self.a["left"][ids] = -1
        self.a["right"][ids] = -1
        self.a["depth"][ids] = depth
        self.a["cover"][ids] = cover
        self.a["value"][ids] = value
        self.n += k
        return ids

    def set_split(
        self,
        ids,
        feature,
        threshold_bin,
        default_left,
        gain,
        left,
        right,
        cat_set,
        thr_table,
        is_cat,
    ):
        """Make nodes ``ids`` splits (array arguments, one entry per node; ``cat_set`` (k, 4)
        uint64 or None). A split's raw threshold is ``thr_table[feature, threshold_bin + 1]`` (a bin
        mapper's ``threshold_table_``, (n_features, 257) float32) and its categorical flag
        ``is_cat[feature]`` ((n_features,) uint8): the rule of ``tree_arrays`` in C++, which the
        fused growers apply."""
        a = self.a
        if cat_set is not None:
            a["cat_set"][ids] = cat_set
        a["feature"][ids], a["threshold_bin"][ids] = feature, threshold_bin
        a["threshold"][ids] = thr_table[feature, threshold_bin + 1]
        a["default_left"][ids], a["categorical"][ids], a["gain"][ids] = (
            default_left,
            is_cat[feature],
            gain,
        )
        a["left"][ids], a["right"][ids], a["value"][ids] = left, right, 0.0

    def arrays(self):
        """The node arrays (fresh arrays of the tree's length, each field of :attr:`FIELDS`)."""
        if self._own and len(self.a["feature"]) == self.n:  # (nothing added since Tree.of)
            self._own = False  # (handed out once)
            return dict(self.a)
        return {name: self.a[name][: self.n].copy() for name in self.FIELDS}


@dataclass
class PlainGradients:
    """The gradients of an objective the C++ kernels compute row by row (``gradient_pair`` in
    ``partition.hpp``): ``objective`` code (-1: none), targets ``y`` and sample weights ``weight``
    (float32 (n_rows,) or None) by original row id. Called as ``(raw, rows, ghn)``: writes the
    (gradient, hessian) of rows ``rows`` (int32) at margins ``raw`` (float64 (n_rows,)) into ``ghn``
    (float32 (len(rows), 2)); the best-first grower also fills them itself after a tree."""

    objective: int
    y: np.ndarray | None
    weight: np.ndarray | None
    n_threads: int

    def __call__(self, raw, rows, ghn):
        _core.gbdt_gradients_at(self.objective, raw, self.y, self.weight, rows, ghn, self.n_threads)


#: the kernels' arguments for "no next gradients"
NO_NEXT_GRADIENTS = PlainGradients(-1, None, None, 1)


def set_bins(cat_set: np.ndarray) -> np.ndarray:
    """bool (n, 256): the bins in each of ``cat_set``'s (uint64 (n, 4)) sets."""
    words = np.ascontiguousarray(cat_set, dtype="<u8")
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little").astype(bool)


def set_words(bins: np.ndarray) -> np.ndarray:
    """uint64 (n, 4): the sets of bins marked in bool ``bins`` (n, 256) (:func:`set_bins`'s inverse)."""
    packed = np.packbits(np.asarray(bins, bool), axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)


def add_tree_values_binned(Xb, out_rows, tree, bin_mapper, raw, n_threads=1):
    """``raw[r] += `` the leaf value of the grown ``tree`` (:meth:`Tree.arrays`) for each row ``r``
    of ``out_rows`` (int32): rows of the binned matrix ``Xb`` (uint8 (n_rows, n_features), from
    ``bin_mapper``) that the tree was not grown on (a row subsample's others). Walks the binned rows,
    so it adds what the float32 predictor adds for the rows the bins were fitted on, without
    predicting every row again."""
    if len(out_rows):
        _core.gbdt_add_tree_values_binned(
            Xb,
            out_rows,
            tree["feature"],
            tree["threshold_bin"],
            tree["default_left"],
            bin_mapper.is_categorical_.astype(np.uint8),
            tree["cat_set"],
            tree["left"],
            tree["right"],
            tree["value"],
            raw,
            n_threads,
        )


class TreeGrower:
    """Grow a tree on node-ordered data: binned rows ``Xn`` (uint8, (m, n_features), C order), their
    gradients ``ghn`` (float32, (m, 2)) and original row ids ``rows`` (int32, (m,)).

    Every split moves the three arrays (stable), so a node is always a contiguous range of
    positions and its histogram reads contiguous memory. ``scratch`` holds three buffers of the
    same shapes. The split of a node that holds every row writes its result into the scratch
    buffers, which then swap roles with the arrays: after :meth:`grow`, ``X``, ``gh``, ``rows`` and
    ``scratch`` may be each other's former buffers. The last level of a depth-limited tree is not
    partitioned: :meth:`add_leaf_values` routes those rows by their split.
    The estimator builds every array with the right dtype, layout and range, so the kernels of
    ``recforge._core`` are called directly (``recforge.kernels.gbdt`` is the checked public entry).
    """

    swap_rows = 500_000  # from this many rows on, every depth-wise level is partitioned into the scratch buffers
    fused_best_first = True  # best-first trees by one kernel call each (False: the Python driver)
    # below this many bytes of node-ordered data (m * (n_features + 12)), the fused best-first grower
    # moves row positions at each split and the rows once per tree
    leafwise_index_bytes = 4 << 20

    def __init__(
        self, Xn, ghn, rows, scratch, bin_mapper, feature_mask, params: GrowParams, n_threads=1
    ):
        self.X = Xn
        self.gh = ghn
        self.rows = rows
        self.scratch = scratch
        self.is_cat = bin_mapper.is_categorical_.astype(np.uint8)
        self.n_bins = bin_mapper.n_bins_
        self.thr_table = bin_mapper.threshold_table_
        self.mask = None if feature_mask is None else np.ascontiguousarray(feature_mask, np.uint8)
        self.p = params
        self.n_threads = n_threads
        self._leaves = []  # (node ids, starts, ends) arrays
        self._last = []  # splits of the last level: (starts, ends, feature, threshold, default_left, left, right)
        self._carry = []  # (starts, ends) of leaves whose rows are not yet in the scratch buffers

    # ---- kernel calls --------------------------------------------------------------------------
    def _hist(self, starts, ends):
        return _core.gbdt_build_histograms(
            self.X,
            self.gh,
            None,
            np.ascontiguousarray(starts, np.int64),
            np.ascontiguousarray(ends, np.int64),
            self.mask,
            self.n_threads,
        )

    def _splits(self, hist, sums):
        return _core.gbdt_find_splits(
            hist,
            np.ascontiguousarray(sums[:, 0]),
            np.ascontiguousarray(sums[:, 1]),
            self.n_bins,
            self.is_cat,
            self.mask,
            self.p.reg_lambda,
            self.p.gamma,
            self.p.min_child_weight,
            self.n_threads,
            **self.p.cat_kwargs(),
        )

    def _leaf_values(self, sums):
        g, h = sums[:, 0], sums[:, 1]
        ok = (h >= self.p.min_child_weight) & (h > 0)
        return np.where(
            ok, -g / np.where(ok, h + self.p.reg_lambda, 1.0) * self.p.learning_rate, 0.0
        )

    def _can_split(self, depth):
        return self.p.max_depth is None or depth < self.p.max_depth

    def leaf_ranges(self):
        """(node ids, starts, ends) of every leaf whose rows are a range, int64 arrays (the children of
        the unpartitioned last level are not among them)."""
        if not self._leaves:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return tuple(
            np.concatenate([np.asarray(part[i], np.int64) for part in self._leaves])
            for i in range(3)
        )

    def add_leaf_values(self, raw, values):
        """``raw[r] += values[leaf of row r]`` for every row of the grown tree (``raw`` float64 (n_rows,),
        indexed by the original row ids; ``values`` float64 (tree nodes,))."""
        nodes, starts, ends = self.leaf_ranges()
        if len(nodes):
            _core.gbdt_add_leaf_values(
                self.rows, starts, ends, np.ascontiguousarray(values[nodes]), raw, self.n_threads
            )
        for starts, ends, feature, threshold, dleft, cat_set, left, right in self._last:
            _core.gbdt_add_split_leaf_values(
                self.X,
                self.rows,
                starts,
                ends,
                feature,
                threshold,
                dleft,
                self.is_cat,
                np.ascontiguousarray(values[left]),
                np.ascontiguousarray(values[right]),
                raw,
                self.n_threads,
                cat_set,
            )

    # ---- growth --------------------------------------------------------------------------------
    def grow(self, raw=None, next_gradients=None) -> Tree:
        """Grow the tree. With ``raw`` (float64 (n_rows,), indexed by the original row ids), also add
        its leaf values to the margins of its rows (as :meth:`add_leaf_values`); with
        ``next_gradients`` too (a :class:`PlainGradients`), then fill :attr:`gh` with the rows'
        gradient pairs at their new margins (in :attr:`rows`' order): the next tree's."""
        n = len(self.rows)
        if self.p.max_leaves is not None and n and self.fused_best_first:
            return self._grow_best_first_fused(raw, next_gradients)
        tree = self._grow()
        if raw is not None:
            self.add_leaf_values(raw, tree.a["value"][: tree.n])
            if next_gradients is not None:
                next_gradients(raw, self.rows, self.gh)
        return tree

    def _grow(self) -> Tree:
        n = len(self.rows)
        starts, ends = np.array([0], np.int64), np.array([n], np.int64)
        hist = self._hist(starts, ends) if n else None
        if n:  # every (switched-on) feature's bins add up to the node's totals
            f = 0 if self.mask is None else int(np.flatnonzero(self.mask)[0])
            root_sum = hist[0, f].sum(axis=0).reshape(1, 2)
        else:
            root_sum = np.zeros((1, 2))
        cap = (
            2 ** (self.p.max_depth + 1) - 1
            if self.p.max_leaves is None and self.p.max_depth is not None
            else 64
        )
        tree = Tree(min(cap, 4096))
        tree.add(0, root_sum[:, 1], self._leaf_values(root_sum))
        if (
            n == 0
            or not self._can_split(0)
            or (self.p.max_leaves is not None and self.p.max_leaves < 2)
        ):
            self._leaves.append((np.array([0]), starts, ends))
            return tree
        if self.p.max_leaves is None:
            self._grow_depthwise(tree, np.array([0]), starts, ends, root_sum, hist, 0)
        else:  # (only the reference driver, recforge._reference.gbdt_best_first, gets here)
            self._grow_best_first(tree, root_sum, hist)
        return tree

    def _partition(self, starts, ends, feature, threshold, dleft, cat_set, whole_level=False):
        """Partition nodes' rows; returns their left counts. With every row in one node (several threads
        or large data), or a whole level of depth-wise growth on large data, the result goes to the
        scratch buffers, which then swap roles with the arrays: one write per row, and the leaves made
        since the last swap (``self._carry``) are copied over so that the arrays hold every row again."""
        m = len(self.rows)
        whole = len(starts) == 1 and starts[0] == 0 and ends[0] == m
        # on one thread (the kernel uses two from 500 kB of rows on) the in-place partition is faster
        threaded = self.n_threads > 1 and m * (self.X.shape[1] + 12) >= 500_000
        into_scratch = bool(
            (whole and (threaded or m >= self.swap_rows)) or (whole_level and m >= self.swap_rows)
        )
        k = len(starts)
        if into_scratch and self._carry:
            c_starts, c_ends = (
                np.concatenate([np.asarray(c[i], np.int64) for c in self._carry]) for i in (0, 1)
            )
            starts, ends = np.concatenate([starts, c_starts]), np.concatenate([ends, c_ends])
            extra = len(c_starts)
            feature = np.concatenate([feature, np.full(extra, -1, np.int32)])
            threshold = np.concatenate([threshold, np.zeros(extra, np.int32)])
            dleft = np.concatenate([dleft, np.zeros(extra, np.uint8)])
            cat_set = np.concatenate([cat_set, np.zeros((extra, 4), np.uint64)])
        n_left = _core.gbdt_partition_ordered(
            self.X,
            self.gh,
            self.rows,
            *self.scratch,
            starts,
            ends,
            feature,
            threshold,
            dleft,
            self.is_cat,
            self.n_threads,
            into_scratch,
            np.ascontiguousarray(cat_set),
        )
        if not into_scratch:
            return n_left
        old = (self.X, self.gh, self.rows)
        self.X, self.gh, self.rows = self.scratch
        self.scratch = old
        self._carry = []
        return n_left[:k]

    def _split_nodes(
        self, tree, ids, starts, ends, sums, split, depth, last=False, whole_level=False
    ):
        """Partition the rows of nodes ``ids`` and add their children. Returns the children's
        (ids, starts, ends, sums) ordered left0, right0, left1, right1, ...
        ``last``: the children will be leaves; their rows are not partitioned (starts, ends: None)."""
        feature, threshold, dleft, chg, lg, lh, cat_set = split
        n_left = (
            None
            if last
            else self._partition(starts, ends, feature, threshold, dleft, cat_set, whole_level)
        )
        k = len(ids)
        left_sum = np.column_stack([lg, lh])
        child_sums = np.empty((2 * k, 2))
        child_sums[0::2] = left_sum
        child_sums[1::2] = sums - left_sum
        child = tree.add(np.full(2 * k, depth + 1), child_sums[:, 1], self._leaf_values(child_sums))
        tree.set_split(
            ids,
            feature,
            threshold,
            dleft,
            chg,
            child[0::2],
            child[1::2],
            cat_set,
            self.thr_table,
            self.is_cat,
        )
        if last:
            self._last.append(
                (starts, ends, feature, threshold, dleft, cat_set, child[0::2], child[1::2])
            )
            return child, None, None, child_sums
        mid = starts + n_left
        c_starts = np.empty(2 * k, np.int64)
        c_ends = np.empty(2 * k, np.int64)
        c_starts[0::2], c_ends[0::2] = starts, mid
        c_starts[1::2], c_ends[1::2] = mid, ends
        return child, c_starts, c_ends, child_sums

    def _child_histograms(self, parent_hist, c_starts, c_ends):
        """Histograms of both children of each parent: the smaller by the kernel, the larger by subtraction."""
        return _core.gbdt_build_child_histograms(
            self.X,
            self.gh,
            np.ascontiguousarray(parent_hist),
            c_starts,
            c_ends,
            self.mask,
            self.n_threads,
        )

    def _grow_depthwise(self, tree, ids, starts, ends, sums, hist, depth):
        while True:
            split = self._splits(hist, sums)
            ok = split[0] >= 0
            if not ok.all():
                self._leaves.append((ids[~ok], starts[~ok], ends[~ok]))
                self._carry.append((starts[~ok], ends[~ok]))
            if not ok.any():
                return
            if not ok.all():
                ids, starts, ends, sums, hist = ids[ok], starts[ok], ends[ok], sums[ok], hist[ok]
                split = tuple(np.ascontiguousarray(a[ok]) for a in split)
            depth += 1
            last = not self._can_split(depth)
            ids, starts, ends, sums = self._split_nodes(
                tree, ids, starts, ends, sums, split, depth - 1, last, True
            )
            if last:
                return
            hist = self._child_histograms(hist, starts, ends)

    def _grow_best_first_fused(self, raw=None, next_gradients=None) -> Tree:
        """The whole best-first tree in one kernel call (``_core.gbdt_grow_leafwise``): the same
        tree as the Python driver that splits one node per round of kernel calls
        (:class:`recforge._reference.gbdt_best_first.BestFirstReferenceGrower`), bit for bit below
        32,000 rows and, on the kernel's row blocks, whenever float64 sums of the gradients are
        exact (as :class:`FusedDepthwiseGrower`). A leaf may come back as several row ranges.
        ``raw`` and ``next_gradients`` as :meth:`grow`: the kernel adds the values and fills the
        gradients on the tree's threads, in one pass with the gather of small data."""
        p = self.p
        nxt = next_gradients or NO_NEXT_GRADIENTS
        grown = _core.gbdt_grow_leafwise(
            self.X,
            self.gh,
            self.rows,
            *self.scratch,
            self.n_bins,
            self.is_cat,
            self.mask,
            min(p.max_leaves, 2**31 - 1),  # (more leaves than int32 rows cannot grow)
            -1 if p.max_depth is None else min(p.max_depth, p.max_leaves),  # (nor deeper trees)
            p.min_child_weight,
            p.reg_lambda,
            p.gamma,
            p.learning_rate,
            self.swap_rows,
            self.leafwise_index_bytes,
            self.n_threads,
            **p.cat_kwargs(),
            raw=raw,
            next_objective=nxt.objective,
            y=nxt.y,
            weight=nxt.weight,
            threshold_table=self.thr_table,
        )
        if grown.swapped:
            (self.X, self.gh, self.rows), self.scratch = self.scratch, (self.X, self.gh, self.rows)
        if raw is None:  # (else the values are in raw)
            self._leaves.append((grown.leaf_node, grown.leaf_start, grown.leaf_end))
        return Tree.of(grown.nodes)


class FusedDepthwiseGrower:
    """Depth-wise trees grown by one kernel call each (``_core.gbdt_grow_depthwise``): the same trees,
    bit for bit, as :class:`TreeGrower`'s depth-wise path, without the Python work per level.
    From 32,000 rows the kernel keeps the rows in fixed blocks (their number set by the row count,
    never by ``n_threads``) and sums each histogram block by block in block order: the trees are
    still independent of ``n_threads``, and equal the level-by-level ones whenever float64 sums of
    the float32 gradients are exact (log2(rows) plus the span of their binary exponents within 29
    bits, the condition of the distributed fit too).

    Holds the two histogram buffers of a fit (``(2, 2**(max_depth - 1), n_features, 256, 2)``
    float64), so they are allocated once, not per level. :meth:`usable` says whether the
    parameters allow it (a depth limit, no best-first growth, histogram buffers of at most
    :attr:`max_hist_bytes`).
    """

    max_hist_bytes = 256 << 20

    @classmethod
    def usable(cls, params: GrowParams, n_features):
        if params.max_leaves is not None or params.max_depth is None or params.max_depth < 1:
            return False
        return 2 * 2 ** (params.max_depth - 1) * n_features * 256 * 2 * 8 <= cls.max_hist_bytes

    def __init__(self, bin_mapper, params: GrowParams, n_features, n_threads=1):
        self.is_cat = bin_mapper.is_categorical_.astype(np.uint8)
        self.n_bins = np.ascontiguousarray(bin_mapper.n_bins_, np.int32)
        self.thr_table = bin_mapper.threshold_table_
        self.p = params
        self.cat_kwargs = params.cat_kwargs()
        self.n_threads = n_threads
        self.hist = np.empty((2, 2 ** (params.max_depth - 1), n_features, 256, 2))

    def grow(self, data, other, feature_mask, raw, next_gradients=None):
        """Grow one tree on node-ordered ``data`` = ``(Xn, ghn, rows)`` (``other``: buffers of the same
        shapes), add its leaf values to ``raw[rows]`` (with ``next_gradients``, a
        :class:`PlainGradients`, then replace the rows' gradient pairs by those at their new
        margins, in the kernel's pass over the rows). Returns ``(tree arrays, data, other)``: the
        arrays as :meth:`Tree.arrays` gives them, and the buffers that now hold the node-ordered
        data and the free ones (the kernel may have moved the data into ``other``)."""
        mask = None if feature_mask is None else np.ascontiguousarray(feature_mask, np.uint8)
        p = self.p
        nxt = next_gradients or NO_NEXT_GRADIENTS
        a, swapped = _core.gbdt_grow_depthwise(
            *data,
            *other,
            self.n_bins,
            self.is_cat,
            mask,
            p.max_depth,
            p.min_child_weight,
            p.reg_lambda,
            p.gamma,
            p.learning_rate,
            TreeGrower.swap_rows,
            self.hist,
            raw,
            self.n_threads,
            **self.cat_kwargs,
            next_objective=nxt.objective,
            y=nxt.y,
            weight=nxt.weight,
            threshold_table=self.thr_table,
        )
        return (a, other, data) if swapped else (a, data, other)
