"""Grow one regression tree on gradients: Python drives, the C++ kernels do the row work.

Depth-wise growth (``max_leaves=None``) splits every node of a level at once: one kernel call
builds the histograms of the smaller child of every split (the larger sibling is parent − smaller,
the subtraction trick), one finds all best splits, one partitions all rows. Best-first growth
(``max_leaves`` set) always splits the leaf with the largest loss reduction next.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from ...kernels import gbdt as kern


@dataclass
class GrowParams:
    max_depth: int | None
    max_leaves: int | None
    min_child_weight: float
    reg_lambda: float
    gamma: float
    learning_rate: float


class Tree:
    """One tree's nodes (root = 0). Leaves have ``feature == -1`` and ``left == right == -1``.

    Arrays (n_nodes,): ``feature`` int32, ``threshold_bin`` int32, ``threshold`` float32 (raw value),
    ``default_left`` uint8, ``categorical`` uint8, ``left``/``right`` int32, ``value`` float64 (leaf
    output, learning rate applied), ``gain`` float64 (loss reduction of the split), ``cover`` float64
    (hessian sum), ``depth`` int32.
    """

    FIELDS = ("feature", "threshold_bin", "threshold", "default_left", "categorical", "left", "right", "value",
              "gain", "cover", "depth")
    DTYPES = (np.int32, np.int32, np.float32, np.uint8, np.uint8, np.int32, np.int32, np.float64, np.float64,
              np.float64, np.int32)

    def __init__(self):
        self._rows = []

    def add(self, depth, cover, value):
        self._rows.append([-1, 0, 0.0, 0, 0, -1, -1, value, 0.0, cover, depth])
        return len(self._rows) - 1

    def set_split(self, node, feature, threshold_bin, threshold, default_left, categorical, gain, left, right):
        row = self._rows[node]
        row[0:7] = [feature, threshold_bin, threshold, default_left, categorical, left, right]
        row[7] = 0.0
        row[8] = gain

    def arrays(self):
        cols = list(zip(*self._rows))
        return {name: np.array(col, dtype=dt) for name, col, dt in zip(self.FIELDS, cols, self.DTYPES)}


class TreeGrower:
    """Grow a tree on binned data ``X_binned`` (uint8, C order) with gradients ``gh`` (float32, (n, 2)).

    ``rows``: int32 indices of the rows to use (sorted; all rows or a subsample); it is partitioned
    in place, so that after :meth:`grow` each leaf's rows are ``rows[leaf_start:leaf_end]``.
    """

    def __init__(self, X_binned, gh, rows, bin_mapper, feature_mask, params: GrowParams, n_threads=1):
        self.X = X_binned
        self.gh = gh
        self.rows = rows
        self.mapper = bin_mapper
        self.is_cat = bin_mapper.is_categorical_.astype(np.uint8)
        self.n_bins = bin_mapper.n_bins_
        self.mask = feature_mask
        self.p = params
        self.n_threads = n_threads
        self.leaf_ranges = []  # (node, start, end)

    # ---- kernel calls --------------------------------------------------------------------------
    def _hist(self, starts, ends):
        return kern.build_histograms(self.X, self.gh, self.rows, np.asarray(starts, np.int64),
                                     np.asarray(ends, np.int64), feature_mask=self.mask, n_threads=self.n_threads)

    def _splits(self, hist, sums):
        sums = np.asarray(sums, dtype=np.float64).reshape(-1, 2)
        return kern.find_splits(hist, sums[:, 0].copy(), sums[:, 1].copy(), self.n_bins, self.is_cat,
                                feature_mask=self.mask, reg_lambda=self.p.reg_lambda, gamma=self.p.gamma,
                                min_child_weight=self.p.min_child_weight, n_threads=self.n_threads)

    def _leaf_value(self, g, h):
        if h < self.p.min_child_weight or h <= 0:
            return 0.0
        return -g / (h + self.p.reg_lambda) * self.p.learning_rate

    def _can_split(self, depth):
        return self.p.max_depth is None or depth < self.p.max_depth

    # ---- growth --------------------------------------------------------------------------------
    def grow(self) -> Tree:
        n = len(self.rows)
        root_sum = self.gh[self.rows].astype(np.float64).sum(axis=0) if n else np.zeros(2)
        tree = Tree()
        root = tree.add(0, float(root_sum[1]), self._leaf_value(*root_sum))
        node = {"id": root, "start": 0, "end": n, "sum": root_sum, "depth": 0}
        if n == 0 or not self._can_split(0) or (self.p.max_leaves is not None and self.p.max_leaves < 2):
            self.leaf_ranges.append((root, 0, n))
            return tree
        node["hist"] = self._hist([0], [n])[0]
        if self.p.max_leaves is None:
            self._grow_depthwise(tree, [node])
        else:
            self._grow_best_first(tree, node)
        return tree

    def _apply_split(self, tree, nodes, split, n_left):
        """Create both children of each node; returns the list of child dicts (left, right, ...)."""
        feature, threshold, dleft, chg, lg, lh = split
        children = []
        for i, nd in enumerate(nodes):
            f, t = int(feature[i]), int(threshold[i])
            left_sum = np.array([lg[i], lh[i]])
            right_sum = nd["sum"] - left_sum
            mid = nd["start"] + int(n_left[i])
            d = nd["depth"] + 1
            li = tree.add(d, float(left_sum[1]), self._leaf_value(*left_sum))
            ri = tree.add(d, float(right_sum[1]), self._leaf_value(*right_sum))
            tree.set_split(nd["id"], f, t, self.mapper.threshold_value(f, t), int(dleft[i]),
                           int(self.is_cat[f]), float(chg[i]), li, ri)
            children.append({"id": li, "start": nd["start"], "end": mid, "sum": left_sum, "depth": d})
            children.append({"id": ri, "start": mid, "end": nd["end"], "sum": right_sum, "depth": d})
        return children

    def _child_histograms(self, parents, children):
        """Histogram of the smaller child of each parent by the kernel, the larger by subtraction."""
        small = []
        for i in range(len(parents)):
            a, b = children[2 * i], children[2 * i + 1]
            small.append(a if (a["end"] - a["start"]) <= (b["end"] - b["start"]) else b)
        hist = self._hist([c["start"] for c in small], [c["end"] for c in small])
        for i, par in enumerate(parents):
            a, b = children[2 * i], children[2 * i + 1]
            s = small[i]
            large = b if s is a else a
            s["hist"] = hist[i]
            large["hist"] = par.pop("hist") - hist[i]

    def _partition(self, nodes, split):
        feature, threshold, dleft = split[0], split[1], split[2]
        return kern.partition(self.X, self.rows, np.array([nd["start"] for nd in nodes], np.int64),
                              np.array([nd["end"] for nd in nodes], np.int64), feature, threshold, dleft,
                              self.is_cat, n_threads=self.n_threads)

    def _grow_depthwise(self, tree, frontier):
        while frontier:
            hist = np.stack([nd["hist"] for nd in frontier]) if len(frontier) > 1 else frontier[0]["hist"][None]
            split = self._splits(hist, [nd["sum"] for nd in frontier])
            ok = split[0] >= 0
            for i, nd in enumerate(frontier):
                if not ok[i]:
                    self.leaf_ranges.append((nd["id"], nd["start"], nd["end"]))
                    nd.pop("hist", None)
            if not ok.any():
                return
            sel = np.flatnonzero(ok)
            parents = [frontier[i] for i in sel]
            split = tuple(a[sel] for a in split)
            n_left = self._partition(parents, split)
            children = self._apply_split(tree, parents, split, n_left)
            if not self._can_split(children[0]["depth"]):
                for c in children:
                    self.leaf_ranges.append((c["id"], c["start"], c["end"]))
                return
            self._child_histograms(parents, children)
            frontier = children

    def _grow_best_first(self, tree, root):
        heap, counter, n_leaves = [], 0, 1

        def consider(nd):
            nonlocal counter
            if not self._can_split(nd["depth"]):
                self.leaf_ranges.append((nd["id"], nd["start"], nd["end"]))
                nd.pop("hist", None)
                return
            split = self._splits(nd["hist"][None], [nd["sum"]])
            if split[0][0] < 0:
                self.leaf_ranges.append((nd["id"], nd["start"], nd["end"]))
                nd.pop("hist", None)
                return
            nd["split"] = split
            heapq.heappush(heap, (-float(split[3][0]), counter, nd))
            counter += 1

        consider(root)
        while heap and n_leaves < self.p.max_leaves:
            _, _, nd = heapq.heappop(heap)
            split = nd.pop("split")
            n_left = self._partition([nd], split)
            children = self._apply_split(tree, [nd], split, n_left)
            n_leaves += 1
            if self._can_split(children[0]["depth"]):
                self._child_histograms([nd], children)
            for c in children:
                consider(c)
        for _, _, nd in heap:
            self.leaf_ranges.append((nd["id"], nd["start"], nd["end"]))
