"""GBDT histograms of one-hot-like columns: a feature's common bin (most of a node's rows) is not
summed row by row but set to the node's total minus the feature's other rows. The histograms equal
the direct sums up to rounding, are bit-identical for any n_threads and for indexed or node-ordered
rows, and the fused and level-by-level growers still grow the same trees."""

import numpy as np
import pandas as pd
import pytest

from recforge import _core
from recforge._reference import gbdt as ref
from recforge.kernels import gbdt as kern
from recforge.metrics import roc_auc_score
from recforge.rank import GBDTClassifier
from recforge.rank.gbdt._grower import Tree
from tests._team_load import teams_whatever_the_load  # noqa: F401


def _one_hot_bins(n, n_features, seed, n_hot=3):
    """Binned rows with ``n_hot`` features in bin 1 or 2 (a few missing), the rest in bin 0."""
    rng = np.random.default_rng(seed)
    Xb = np.zeros((n, n_features), np.uint8)
    hot = rng.integers(0, n_features, size=(n, n_hot))
    Xb[np.arange(n)[:, None], hot] = rng.integers(1, 3, size=(n, n_hot))
    Xb[rng.random(Xb.shape) < 0.002] = kern.MISSING_BIN
    gh = np.column_stack([rng.normal(size=n), rng.uniform(0.05, 1.0, size=n)]).astype(np.float32)
    return Xb, gh


@pytest.mark.parametrize("n_features", [16, 40, 300])
def test_one_hot_histograms_match_the_reference(n_features):
    Xb, gh = _one_hot_bins(3000, n_features, seed=n_features)
    rows = np.random.default_rng(1).permutation(3000).astype(np.int32)
    starts, ends = np.array([0, 1000, 2900]), np.array([1000, 2900, 3000])
    hist = kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=2)
    for k in range(3):
        expected = ref.build_histogram(Xb, gh.astype(np.float64), rows[starts[k] : ends[k]])
        np.testing.assert_allclose(hist[k], expected, rtol=1e-12, atol=1e-10)
        assert np.all(hist[k][:, 3:255] == 0)  # bins no row is in stay exactly zero


def test_numeric_features_beside_one_hot_ones_are_exact_row_order_sums():
    # a block with 16 one-hot-like features and 8 numeric ones (no common bin): the common-bin path
    # is taken and the numeric features' bins are the plain float64 sums of their rows in row order
    rng = np.random.default_rng(5)
    n = 3000
    Xb, gh = _one_hot_bins(n, 24, seed=5)
    Xb[:, 16:] = rng.integers(0, 200, size=(n, 8))
    rows = rng.permutation(n).astype(np.int32)
    starts, ends = np.array([0, 1200]), np.array([1200, n])
    hist = kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=2)
    for k in range(2):
        node = rows[starts[k] : ends[k]]
        expected = ref.build_histogram(Xb, gh.astype(np.float64), node)
        np.testing.assert_allclose(hist[k], expected, rtol=1e-12, atol=1e-10)
        exact = np.zeros((8, 256, 2))
        for r in node:
            for j in range(8):
                exact[j, Xb[r, 16 + j]] += (float(gh[r, 0]), float(gh[r, 1]))
        assert np.array_equal(hist[k][16:], exact)


def test_common_bin_is_the_node_total_minus_the_other_rows():
    # a huge gradient in a rare bin: summed directly the common bin (bin 0) holds exactly 1.0 per
    # row; as total - others it holds what (1e12 + sum) - 1e12 rounds to. Which one the kernel
    # wrote shows the common-bin path was taken, for the 20 one-hot-like features of every row
    n, F = 200, 20
    Xb = np.zeros((n, F), np.uint8)
    Xb[0, :] = 1
    gh = np.ones((n, 2), np.float32)
    gh[0, 0] = 1e12
    gh[1:, 0] = 0.1
    hist = kern.build_histograms(Xb, gh, None, [0], [n])[0]
    direct = total = 0.0  # sequential sums in row order, as the kernel takes them
    for i, g in enumerate(gh[:, 0].astype(np.float64)):
        total += g
        direct += g if i else 0.0
    derived = total - float(gh[0, 0])
    assert direct != derived  # (the test data tells the two apart)
    np.testing.assert_array_equal(hist[:, 0, 0], np.full(F, derived))
    np.testing.assert_array_equal(hist[:, 1, 0], np.full(F, float(gh[0, 0])))
    np.testing.assert_array_equal(hist[:, 0, 1], np.full(F, n - 1.0))


@pytest.mark.parametrize("n", [5000, 60_000])
def test_one_hot_histograms_identical_for_any_n_threads_and_row_order_source(n):
    Xb, gh = _one_hot_bins(n, 48, seed=3)
    rows = np.random.default_rng(2).permutation(n).astype(np.int32)
    starts, ends = np.array([0, n // 3]), np.array([n // 3, n])
    hists = [kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=t) for t in (1, 2, 3)]
    for h in hists[1:]:
        np.testing.assert_array_equal(hists[0], h)
    # the same rows node-ordered (rows=None) give the same sums
    Xn, ghn = Xb[rows], gh[rows]
    np.testing.assert_array_equal(hists[0], kern.build_histograms(Xn, ghn, None, starts, ends))
    # children: the smaller one built as directly, the larger = parent - smaller
    parent = kern.build_histograms(Xn, ghn, None, [0], [n])
    c_starts, c_ends = np.array([0, n // 3], np.int64), np.array([n // 3, n], np.int64)
    out = _core.gbdt_build_child_histograms(Xn, ghn, parent, c_starts, c_ends, None, 2)
    np.testing.assert_array_equal(out[0], hists[0][0])
    np.testing.assert_array_equal(out[1], parent[0] - hists[0][0])


def _one_hot_frame(n, n_columns, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 12, size=(n, n_columns))
    X = np.zeros((n, 12 * n_columns), np.float32)
    for c in range(n_columns):
        X[np.arange(n), 12 * c + codes[:, c]] = 1.0
    X[rng.random(X.shape) < 0.001] = np.nan
    logit = (codes[:, 0] % 3 == 0) - 0.8 * (codes[:, 1] < 4) + 0.5 * (codes[:, 2] == codes[:, 3])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def test_one_hot_trees_same_for_fused_and_level_paths_and_any_n_threads(monkeypatch):
    from recforge.rank.gbdt import _grower

    X, y = _one_hot_frame(20_000, 6, seed=5)  # 72 0/1 columns
    kw = dict(n_estimators=5, max_depth=6, learning_rate=0.3, random_state=0)
    models = [GBDTClassifier(n_threads=t, **kw).fit(X, y) for t in (1, 2, 3)]
    monkeypatch.setattr(
        _grower.FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False)
    )
    models.append(GBDTClassifier(n_threads=2, **kw).fit(X, y))
    models.append(GBDTClassifier(n_threads=2, colsample_bytree=0.5, **kw).fit(X, y))
    arrays = [m._forest.arrays for m in models]
    assert np.sum(arrays[0]["left"] >= 0) > 5 * 15
    for other in arrays[1:4]:
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(arrays[0][name], other[name], err_msg=name)
    assert roc_auc_score(y, models[4].predict_proba(X)[:, 1]) > 0.6


def test_one_hot_best_first_same_for_any_n_threads():
    X, y = _one_hot_frame(20_000, 6, seed=8)
    frame = pd.DataFrame(X)
    kw = dict(n_estimators=5, max_depth=None, max_leaves=31, learning_rate=0.3)
    a, b = (GBDTClassifier(n_threads=t, **kw).fit(frame, y) for t in (1, 2))
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(a._forest.arrays[name], b._forest.arrays[name])
