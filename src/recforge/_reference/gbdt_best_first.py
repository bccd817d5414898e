"""GBDT best-first growth driven from Python: the specification of the fused best-first grower.

:class:`BestFirstReferenceGrower` is :class:`~recforge.rank.gbdt._grower.TreeGrower` with its
best-first trees grown the readable way: a heap of leaves ordered by loss reduction (ties: the leaf
found first), and for every split one round of kernel calls (partition of the leaf's rows, the
children's histograms, their best splits). ``csrc/include/recforge/gbdt_leafwise.hpp`` grows the
same trees, bit for bit, in one call per tree. Tests only.
"""

from __future__ import annotations

import heapq

import numpy as np

from ..rank.gbdt._grower import TreeGrower


class BestFirstReferenceGrower(TreeGrower):
    """A :class:`TreeGrower` whose best-first trees are driven node by node from Python."""

    fused_best_first = False

    def _grow_best_first(self, tree, root_sum, root_hist):
        heap, counter, n_leaves = [], 0, 1

        def consider(node, start, end, s, h, depth):
            nonlocal counter
            if self._can_split(depth):
                split = self._splits(h[None] if h.ndim == 3 else h, s.reshape(1, 2))
                if split[0][0] >= 0:
                    heapq.heappush(
                        heap, (-float(split[3][0]), counter, (node, start, end, s, h, depth, split))
                    )
                    counter += 1
                    return
            self._leaves.append((np.array([node]), np.array([start]), np.array([end])))

        consider(0, 0, len(self.rows), root_sum[0], root_hist[0], 0)
        while heap and n_leaves < self.p.max_leaves:
            _, _, (node, start, end, s, h, depth, split) = heapq.heappop(heap)
            ids, c_starts, c_ends, c_sums = self._split_nodes(
                tree,
                np.array([node]),
                np.array([start], np.int64),
                np.array([end], np.int64),
                s.reshape(1, 2),
                split,
                depth,
            )
            n_leaves += 1
            if self._can_split(depth + 1):
                c_hist = self._child_histograms(h[None], c_starts, c_ends)
            else:
                c_hist = [None, None]
            for j in range(2):
                consider(
                    int(ids[j]), int(c_starts[j]), int(c_ends[j]), c_sums[j], c_hist[j], depth + 1
                )
        for _, _, (node, start, end, *_rest) in heap:
            self._leaves.append((np.array([node]), np.array([start]), np.array([end])))
