"""The fitted forest: trees concatenated into flat node arrays for the C++ predictor."""

from __future__ import annotations

import numpy as np

from ...kernels import gbdt as kern
from ._grower import Tree, set_bins


class Forest:
    """Flat storage of many trees.

    ``arrays`` holds every :class:`~recforge.rank.gbdt._grower.Tree` field over all nodes
    (child indices absolute) plus ``roots`` int64 (n_trees,): tree ``t`` starts at node ``roots[t]``.
    """

    @classmethod
    def from_state(cls, arrays, prefix, mapper, n_features):
        """The forest saved as ``{prefix}{field}`` arrays of a model file (a
        :class:`recforge.io.ModelArrays`), checked so that nothing invalid reaches the predict kernel.

        Every field must have one entry per node and the tree's dtype; leaf values, gains and
        covers finite; ``roots`` start at 0 and increase; a split node's children are ``left > node``,
        ``right == left + 1``, inside its own tree (so every path ends at a leaf); its feature is
        ``< n_features`` with the mapper's kind (numeric / categorical), its bin threshold within the
        feature's bins and its raw threshold the mapper's value for that bin; a categorical
        partition split (bin threshold -1) has a non-empty ``cat_set`` within the feature's bins,
        every other node an empty one (files written before partition splits have no ``cat_set``:
        all empty). A leaf has no children.
        Raises :class:`~recforge.exceptions.ModelFileError` naming the file and the array.
        """
        roots = arrays.take(f"{prefix}roots", kinds="iu", dtype=np.int64)
        n_nodes = len(arrays.get(f"{prefix}feature", ()))
        a = {}
        for name, dt in zip(Tree.FIELDS, Tree.DTYPES):
            if name == "cat_set" and f"{prefix}{name}" not in arrays:
                a[name] = Tree.empty(name, n_nodes)  # a file from before partition splits
                continue
            kinds = "f" if np.dtype(dt).kind == "f" else "iu"
            a[name] = arrays.take(
                f"{prefix}{name}",
                kinds=kinds,
                ndim=1 + len(Tree.SHAPES.get(name, ())),
                shape=(n_nodes, *Tree.SHAPES.get(name, ())),
                dtype=dt,
                finite=name != "threshold",
            )  # thresholds may be ±inf or NaN (checked below)
        a["roots"] = roots
        if (
            n_nodes == 0
            or len(roots) == 0
            or roots[0] != 0
            or np.any(np.diff(roots) <= 0)
            or roots[-1] >= n_nodes
        ):
            raise arrays.error(
                f"array {prefix + 'roots'!r} must start at 0 and increase within the "
                f"{n_nodes} nodes"
            )
        node = np.arange(n_nodes)
        tree_end = np.append(roots[1:], n_nodes)[
            np.repeat(np.arange(len(roots)), np.diff(np.append(roots, n_nodes)))
        ]
        left, right, feature = a["left"], a["right"], a["feature"]
        split = left >= 0
        if np.any(~split & ((left != -1) | (right != -1))):
            raise arrays.error(
                f"a leaf in {prefix + 'left'!r}/{prefix + 'right'!r} has a child index other than -1"
            )
        if np.any(split & ((left <= node) | (right != left + 1) | (right >= tree_end))):
            raise arrays.error(
                f"child indices in {prefix + 'left'!r}/{prefix + 'right'!r} leave their tree or "
                "point backwards (corrupt model)"
            )
        f = feature[split]
        if np.any((f < 0) | (f >= n_features)):
            raise arrays.error(
                f"array {prefix + 'feature'!r} holds feature indices outside [0, {n_features})"
            )
        cat = mapper.is_categorical_[f]
        if np.any(a["categorical"][split] != cat) or np.any(a["default_left"] > 1):
            raise arrays.error(
                f"arrays {prefix + 'categorical'!r}/{prefix + 'default_left'!r} do not match the "
                "features"
            )
        tb = a["threshold_bin"][split]
        if np.any((tb < -1) | (tb >= mapper.n_bins_[f])):
            raise arrays.error(
                f"array {prefix + 'threshold_bin'!r} holds bins outside their feature's bins"
            )
        bins = set_bins(a["cat_set"])
        has_set = bins.any(axis=1)
        in_range = np.arange(bins.shape[1]) < mapper.n_bins_[f][:, None]
        if (
            np.any(has_set[~split])
            or np.any(has_set[split] != (cat & (tb == -1)))
            or np.any(bins[split] & ~in_range)
        ):
            raise arrays.error(
                f"array {prefix + 'cat_set'!r} holds a set on a node that is not a categorical "
                "partition split, or bins outside its feature's bins"
            )
        expected = mapper.threshold_table_[f, tb + 1]
        if not np.array_equal(a["threshold"][split], expected, equal_nan=True):
            raise arrays.error(
                f"array {prefix + 'threshold'!r} does not match the bin edges of its features"
            )
        return cls(a, mapper.edges_)

    def __init__(self, arrays=None, category_codes=None):
        """``category_codes``: the bin mapper's ``edges_`` (per feature, float32; a categorical
        feature's are its category codes, bin ``b`` = code ``edges[b]``), needed to predict with
        partition splits."""
        if arrays is None:
            arrays = {name: Tree.empty(name, 0) for name in Tree.FIELDS}
            arrays["roots"] = np.zeros(0, np.int64)
        self.arrays = arrays
        self.category_codes = category_codes
        self._pending = []
        # the partition splits' codes of the first n flushed nodes: (n, cat_count, cat_codes parts)
        self._code_sets = (0, np.zeros(0, np.int32), [])

    @property
    def n_trees(self):
        self._flush()
        return len(self.arrays["roots"])

    def append(self, tree_arrays):
        self._pending.append(tree_arrays)

    def _flush(self):
        if not self._pending:
            return
        # one concatenation per field over all pending trees (not one per tree and field)
        sizes = np.array([len(t["feature"]) for t in self._pending], np.int64)
        roots = len(self.arrays["feature"]) + np.cumsum(sizes) - sizes
        shift = np.repeat(roots, sizes)  # per new node: its tree's first node
        arrays = {}
        for name in Tree.FIELDS:
            new = np.concatenate([t[name] for t in self._pending])
            if name in ("left", "right"):
                new = np.where(new >= 0, new + shift, -1).astype(np.int32)
            arrays[name] = np.concatenate([self.arrays[name], new])
        arrays["roots"] = np.concatenate([self.arrays["roots"], roots])
        self.arrays = arrays
        self._pending = []

    def _trees(self):
        """The flat arrays for the predict kernels: with ``cat_count`` int32 (n_nodes,) and
        ``cat_codes`` float32 (the sorted raw codes each partition split sends left, node after
        node) when some split is a partition."""
        self._flush()
        a = self.arrays
        n = len(a["feature"])
        done, count, codes = self._code_sets
        if done != n:  # trees appended since: their nodes' code sets
            new = a["cat_set"][done:]
            nodes = np.flatnonzero(new.any(axis=1))
            bins = set_bins(new[nodes])
            count = np.concatenate([count, np.zeros(n - done, np.int32)])
            for i, b in zip(nodes, bins):
                # a bin's code: the feature's edges (sorted codes), so a node's codes increase
                c = self.category_codes[a["feature"][done + i]][np.flatnonzero(b)]
                count[done + i] = len(c)
                codes.append(c.astype(np.float32))
            codes = [np.concatenate(codes)] if codes else []
            self._code_sets = (n, count, codes)
        if not codes:
            return a
        return {**a, "cat_count": count, "cat_codes": codes[0]}

    def predict_raw(self, X, t1=None, *, t0=0, out=None, n_threads=1):
        return kern.predict_raw(X, self._trees(), t0=t0, t1=t1, out=out, n_threads=n_threads)

    def apply(self, X, t1=None, *, n_threads=1):
        return kern.apply(X, self._trees(), t1=t1, n_threads=n_threads)

    def tree(self, t):
        """Node arrays of tree ``t`` with tree-local child indices."""
        self._flush()
        roots = self.arrays["roots"]
        start = int(roots[t])
        end = int(roots[t + 1]) if t + 1 < len(roots) else len(self.arrays["feature"])
        out = {name: self.arrays[name][start:end].copy() for name in Tree.FIELDS}
        for name in ("left", "right"):
            out[name] = np.where(out[name] >= 0, out[name] - start, -1).astype(np.int32)
        return out

    def n_leaves(self, t1=None):
        """Leaves per tree (int64 (n_trees,))."""
        self._flush()
        roots = self.arrays["roots"][:t1]
        is_leaf = (self.arrays["left"] < 0).astype(np.int64)
        bounds = np.append(self.arrays["roots"], len(is_leaf))
        csum = np.concatenate([[0], np.cumsum(is_leaf)])
        return csum[bounds[1 : len(roots) + 1]] - csum[bounds[: len(roots)]]

    def leaf_ordinals(self, t1=None):
        """``(ordinal, roots)`` of the first ``t1`` trees: ``ordinal`` int32 (nodes of those trees,) is a
        leaf's position among its tree's leaves in node order (-1 for a split node), ``roots`` int64
        (t1,) the first node of each tree (so tree ``t``'s node ``k`` is ``ordinal[roots[t] + k]``)."""
        self._flush()
        roots = self.arrays["roots"][:t1]
        end = (
            int(self.arrays["roots"][len(roots)])
            if len(roots) < len(self.arrays["roots"])
            else len(self.arrays["left"])
        )
        is_leaf = self.arrays["left"][:end] < 0
        before = np.cumsum(is_leaf) - is_leaf  # leaves before each node, over all trees
        tree_of = np.repeat(np.arange(len(roots)), np.diff(np.append(roots, end)))
        first = before[roots] if len(roots) else np.zeros(0, np.int64)
        ordinal = np.where(is_leaf, before - first[tree_of], -1).astype(np.int32)
        return ordinal, roots.astype(np.int64)
