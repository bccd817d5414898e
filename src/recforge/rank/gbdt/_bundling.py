"""Exclusive feature bundling: one-hot columns grown as a few bundle columns, trees on the originals.

A two-bin numeric feature (a one-hot column, any two-valued column without missing values) is off
its common bin in few rows. Features never off it in the same row are bundled
(``csrc/include/recforge/feature_bundle.hpp``, LightGBM's EFB without its conflict budget): the
bundle's column holds, per row, the code of the member off its common bin (the missing bin when
none is). Its histogram has the members' histograms in its bins, and the split "code == k vs the
rest, missing with the rest" (the kernels' :data:`BUNDLE_COLUMN` kind) is member k's split between
its two bins: the trees have the same split candidates, but the histograms of a 470-column one-hot
matrix take 30 columns. Each grown tree is rewritten onto the original features
(:meth:`FeatureBundles.unbundle`) before it joins the forest, so prediction, ``apply``, feature
importances and saved models see the original features only.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ... import _core
from ...kernels.gbdt import MAX_BIN, N_BINS

#: the kernels' ``is_categorical`` value of a bundle column
BUNDLE_COLUMN = _core.constants.GBDT_BUNDLE_COLUMN


class FeatureBundles:
    """The bundles of a binned matrix's two-bin features (:meth:`find`) and the maps both ways.

    Attributes
    ----------
    plain : ndarray (n_plain,) int32
        The original features kept as columns (the bundled matrix's first columns, in order): all
        but the bundled ones and the constant ones (every row in bin 0, none missing: they cannot
        split, so they are left out).
    member, common_bin, bundle_of, code_of : ndarray (n_members,)
        Per bundled feature: its original index (int32), its common bin (uint8: 0 or 1), its bundle
        (int32) and its code in the bundle (int32).
    members : list of ndarray int32
        Per bundle, its members' original indices by code.
    """

    def __init__(self, n_features, plain, member, common_bin, bundle_of, code_of, n_bundles):
        self.plain = plain
        self.member, self.common_bin = member, common_bin
        self.bundle_of, self.code_of = bundle_of, code_of
        self.n_bundles = n_bundles
        self.members = [
            member[bundle_of == b][np.argsort(code_of[bundle_of == b])] for b in range(n_bundles)
        ]
        self._common = np.zeros(n_features, np.uint8)  # by original feature
        self._common[member] = common_bin

    @property
    def n_columns(self):
        return len(self.plain) + self.n_bundles

    @classmethod
    def find(cls, Xb, bin_mapper, n_threads=1):
        """The bundles of ``Xb`` (uint8 (n_rows, n_features), binned by ``bin_mapper``), or None when
        no two of its two-bin features can share a column and none is constant."""
        n_features = Xb.shape[1]
        cand = np.flatnonzero(~bin_mapper.is_categorical_ & (bin_mapper.n_bins_ <= 2))
        if len(cand) == 0:
            return None
        cand = cand.astype(np.int32)
        bundle_of, code_of, common, constant, n_found = _core.gbdt_bundle_exclusive(
            Xb, cand, MAX_BIN, n_threads
        )
        shared = np.bincount(bundle_of[bundle_of >= 0], minlength=n_found) >= 2
        if not shared.any() and not constant.any():
            return None
        keep = bundle_of >= 0
        keep[keep] = shared[bundle_of[keep]]
        renumber = np.cumsum(shared) - 1
        is_column = np.ones(n_features, bool)
        is_column[cand[keep | (constant == 1)]] = False
        if not is_column.any() and not shared.any():
            return None  # (every column constant: nothing to grow either way)
        return cls(
            n_features,
            np.flatnonzero(is_column).astype(np.int32),
            cand[keep],
            common[keep],
            renumber[bundle_of[keep]].astype(np.int32),
            code_of[keep].astype(np.int32),
            int(shared.sum()),
        )

    def transform(self, Xb, n_threads=1):
        """The bundled matrix of ``Xb``: uint8 (n_rows, :attr:`n_columns`), C order."""
        return _core.gbdt_bundle_columns(
            Xb,
            self.plain,
            self.member,
            self.common_bin,
            self.bundle_of,
            self.code_of,
            self.n_bundles,
            n_threads,
        )

    def bin_view(self, bin_mapper):
        """What the growers read of a bin mapper (``n_bins_``, ``is_categorical_``,
        ``threshold_table_``), for the bundled matrix's columns."""
        sizes = np.array([len(m) for m in self.members], np.int32)
        table = np.full((self.n_columns, bin_mapper.threshold_table_.shape[1]), np.nan, np.float32)
        table[: len(self.plain)] = bin_mapper.threshold_table_[self.plain]
        widest = int(sizes.max(initial=0))
        table[len(self.plain) :, 1 : 1 + widest] = np.arange(widest, dtype=np.float32)
        return SimpleNamespace(
            n_bins_=np.concatenate([bin_mapper.n_bins_[self.plain], sizes]).astype(np.int32),
            is_categorical_=np.concatenate(
                [
                    bin_mapper.is_categorical_[self.plain].astype(np.uint8),
                    np.full(self.n_bundles, BUNDLE_COLUMN, np.uint8),
                ]
            ),
            threshold_table_=table,
        )

    def split_rank(self):
        """int32 (:attr:`n_columns`, 256): each column's and bin's original feature (a bundle's bin
        k: its member k), so that of two splits of equal gain the one of the lower original
        feature wins, as without bundling (``SplitParams::split_rank``)."""
        n_plain = len(self.plain)
        rank = np.full((self.n_columns, N_BINS), np.iinfo(np.int32).max, np.int32)
        rank[:n_plain] = self.plain[:, None]
        for b, members in enumerate(self.members):
            rank[n_plain + b, : len(members)] = members
        return rank

    def unbundle(self, tree, bin_mapper):
        """``tree`` (a grower's node arrays, on the bundled columns) on the original features of
        ``bin_mapper``: plain columns renumbered, a bundle split ``code == k`` made member k's split
        ``bin <= 0`` (its children swapped when the member's common bin is 0, so that the rows off
        it stay on their side; missing values go right, as an unbundled fit without missing values
        sends them). Returns the arrays, changed in place."""
        feature = tree["feature"]
        split = feature >= 0
        n_plain = len(self.plain)
        on_bundle = np.flatnonzero(split & (feature >= n_plain))
        on_plain = np.flatnonzero(split & (feature < n_plain))
        feature[on_plain] = self.plain[feature[on_plain]]
        if len(on_bundle):
            codes = tree["threshold_bin"][on_bundle]
            original = np.array(
                [self.members[b][k] for b, k in zip(feature[on_bundle] - n_plain, codes)],
                np.int32,
            )
            feature[on_bundle] = original
            tree["threshold_bin"][on_bundle] = 0
            tree["threshold"][on_bundle] = bin_mapper.threshold_table_[original, 1]
            tree["default_left"][on_bundle] = 0
            tree["categorical"][on_bundle] = 0  # (a bundle split has no cat_set)
            swap = on_bundle[self._common[original] == 0]
            if len(swap):
                left, right = tree["left"], tree["right"]
                left[swap], right[swap] = right[swap].copy(), left[swap].copy()
                tree = _children_adjacent(tree)
        return tree


def _children_adjacent(tree):
    """``tree`` renumbered breadth-first, so that every split's right child is its left child + 1
    (the layout the predictors read; swapping two children breaks it). Fresh arrays."""
    left, right = tree["left"], tree["right"]
    order = [0]
    for node in order:  # (grows while it is read: a breadth-first walk)
        if left[node] >= 0:
            order += (left[node], right[node])
    order = np.asarray(order, np.int64)
    new_id = np.empty(len(order), np.int32)
    new_id[order] = np.arange(len(order), dtype=np.int32)
    out = {name: values[order] for name, values in tree.items()}
    for side in ("left", "right"):
        child = out[side]
        out[side] = np.where(child >= 0, new_id[np.maximum(child, 0)], -1).astype(np.int32)
    return out
