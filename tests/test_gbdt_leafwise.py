"""The fused best-first grower (``_core.gbdt_grow_leafwise``, one kernel call per tree) against the
Python driver that splits one node per round of kernel calls (``recforge._reference.gbdt_best_first``):
the same trees, bit for bit, at 1 and 2 threads; and its checked entry
``recforge.kernels.gbdt_leafwise.grow_leafwise``."""

import numpy as np
import pandas as pd
import pytest

from recforge._reference.gbdt_best_first import BestFirstReferenceGrower
from recforge.kernels.gbdt_leafwise import grow_leafwise
from recforge.rank import GBDTClassifier, GBDTRegressor
from recforge.rank.gbdt import _grower, estimator
from recforge.rank.gbdt._grower import GrowParams, Tree
from tests._team_load import teams_whatever_the_load  # noqa: F401


def _fit_both(monkeypatch, make, X, y):
    """Models fitted with the fused grower and with the reference driver."""
    fused = make().fit(X, y)
    monkeypatch.setattr(estimator, "TreeGrower", BestFirstReferenceGrower)
    reference = make().fit(X, y)
    monkeypatch.undo()
    return fused, reference


def _assert_same_trees(a, b, X):
    fa, fb = a._forest.arrays, b._forest.arrays
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)
    predict = "decision_function" if hasattr(a, "decision_function") else "predict"
    np.testing.assert_array_equal(getattr(a, predict)(X), getattr(b, predict)(X))


def _mixed(n=6000, seed=0):
    """Numeric columns with ~5 % NaN, categorical columns (one with missing categories), a target
    that depends on both."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    colour = rng.choice(np.array(["red", "green", "blue", "grey", "pink"]), n)
    shop = rng.integers(0, 40, n)
    logit = 1.2 * X[:, 0] - X[:, 1] + (colour == "red") - 0.8 * (shop % 7 == 0) + 0.5 * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X[rng.random(X.shape) < 0.05] = np.nan
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["colour"] = pd.Categorical(np.where(rng.random(n) < 0.05, None, colour))
    frame["shop"] = pd.Categorical(shop)
    return frame, y


@pytest.fixture(scope="module")
def adult_data():
    from recforge.datasets import adult

    data = adult()
    return data.X_train, data.y_train


CASES = [
    {"max_depth": None, "max_leaves": 31},
    {"max_depth": 5, "max_leaves": 20, "gamma": 0.3, "min_child_weight": 5.0},
    {"max_depth": None, "max_leaves": 15, "colsample_bytree": 0.6, "random_state": 4},
    {"max_depth": None, "max_leaves": 31, "subsample": 0.7, "random_state": 2},
    {"max_depth": 2, "max_leaves": 63, "reg_lambda": 5.0},
]


# small data moves row positions at each split and the rows once per tree; larger data moves the
# rows at each split: force the latter on small data too
MODES = {"positions": _grower.TreeGrower.leafwise_index_bytes, "rows": 0}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("params", CASES)
def test_same_trees_as_the_python_driver_on_mixed_data(monkeypatch, params, n_threads, mode):
    X, y = _mixed()
    monkeypatch.setattr(_grower.TreeGrower, "leafwise_index_bytes", MODES[mode])
    make = lambda: GBDTClassifier(  # noqa: E731
        n_estimators=12, learning_rate=0.3, n_threads=n_threads, **params
    )
    a = make().fit(X, y)
    monkeypatch.setattr(estimator, "TreeGrower", BestFirstReferenceGrower)
    b = make().fit(X, y)
    assert np.any(a._forest.arrays["categorical"] == 1)  # categorical splits were chosen
    assert np.any(a._forest.arrays["default_left"] == 1)  # missing values learned a side
    _assert_same_trees(a, b, X)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("params", CASES[:2])
def test_same_trees_as_the_python_driver_on_adult(monkeypatch, adult_data, params, n_threads):
    X, y = adult_data
    a, b = _fit_both(
        monkeypatch,
        lambda: GBDTClassifier(n_estimators=25, learning_rate=0.1, n_threads=n_threads, **params),
        X,
        y,
    )
    n_leaves = (a._forest.arrays["left"] < 0).sum()
    assert n_leaves > 25 * 0.9 * params["max_leaves"]  # the trees reach (about) max_leaves
    _assert_same_trees(a, b, X)


def test_same_trees_when_the_root_split_moves_the_data_to_the_scratch_buffers(monkeypatch):
    # large data (or several threads on enough rows) partitions the root into the scratch buffers,
    # which then swap roles with the data: force that on small data
    X, y = _mixed(3000, seed=5)
    monkeypatch.setattr(_grower.TreeGrower, "swap_rows", 0)
    monkeypatch.setattr(_grower.TreeGrower, "leafwise_index_bytes", 0)
    make = lambda: GBDTRegressor(  # noqa: E731
        n_estimators=6, max_depth=None, max_leaves=12, n_threads=2
    )
    fused = make().fit(X, y.astype(float))
    monkeypatch.setattr(estimator, "TreeGrower", BestFirstReferenceGrower)
    reference = make().fit(X, y.astype(float))
    monkeypatch.undo()
    usual = make().fit(X, y.astype(float))  # positions moved, not rows, and no swap_rows
    _assert_same_trees(fused, reference, X)
    _assert_same_trees(fused, usual, X)


def test_same_trees_for_any_n_threads():
    X, y = _mixed(20000, seed=3)
    models = [
        GBDTClassifier(n_estimators=8, max_depth=None, max_leaves=40, n_threads=t).fit(X, y)
        for t in (1, 2, 3)
    ]
    for other in models[1:]:
        _assert_same_trees(models[0], other, X)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("n_rows, subsample", [(32_000, 1.0), (130_000, 0.9)])
def test_row_blocks_give_the_same_trees_for_any_n_threads(monkeypatch, mode, n_rows, subsample):
    # from 32,000 rows the grower keeps the rows (or their positions) in fixed row blocks (2 here,
    # 7 at 117k sampled rows: more blocks than threads), each split building the blocks' partial
    # histograms of the smaller child in parallel and summing them in block order: the same trees
    # for 1, 2 and 3 threads, equal to the node-by-node driver's (exact sums), with a feature mask
    X, y = _mixed(n_rows, seed=7)
    monkeypatch.setattr(_grower.TreeGrower, "leafwise_index_bytes", MODES[mode])
    kw = dict(n_estimators=4, max_depth=None, max_leaves=24, random_state=3)
    kw.update(colsample_bytree=0.8, subsample=subsample)
    models = [GBDTClassifier(n_threads=t, **kw).fit(X, y) for t in (1, 2, 3)]
    monkeypatch.setattr(estimator, "TreeGrower", BestFirstReferenceGrower)
    models.append(GBDTClassifier(n_threads=2, **kw).fit(X, y))
    assert (models[0]._forest.arrays["left"] < 0).sum() == 4 * 24
    for other in models[1:]:
        _assert_same_trees(models[0], other, X)


def test_row_blocks_best_first_equals_depth_wise_when_it_grows_every_node():
    # max_leaves = 2^depth and no loss limit: the best-first tree splits every node down to
    # max_depth, as the depth-wise grower does (both blocked, their sums in the same block order)
    X, y = _mixed(40_000, seed=8)
    kw = dict(n_estimators=3, min_child_weight=0.0, n_threads=2)
    deep = GBDTClassifier(max_depth=3, **kw).fit(X, y)
    best = GBDTClassifier(max_depth=3, max_leaves=8, **kw).fit(X, y)
    assert (deep._forest.arrays["left"] < 0).sum() == 3 * 8
    np.testing.assert_array_equal(deep.decision_function(X), best.decision_function(X))


# ---- the kernel's checked entry ------------------------------------------------------------------
def _node_data(m=500, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    Xn = rng.integers(0, 20, size=(m, n_features)).astype(np.uint8)
    Xn[rng.random(Xn.shape) < 0.1] = 255  # missing
    g = np.where(Xn[:, 0] < 8, -1.0, 1.0) + 0.5 * (Xn[:, 1] == 3) + rng.normal(0, 0.3, m)
    ghn = np.column_stack([g, rng.uniform(0.5, 1.5, m)]).astype(np.float32)
    is_cat = np.zeros(n_features, bool)
    is_cat[1] = True
    return Xn, ghn, np.arange(m, dtype=np.int32), np.full(n_features, 20, np.int32), is_cat


def _route(nodes, x):
    """Leaf of binned row x by the tree's bin thresholds."""
    k = 0
    while nodes["left"][k] >= 0:
        f, t, b = nodes["feature"][k], nodes["threshold_bin"][k], x[nodes["feature"][k]]
        if b == 255:
            left = nodes["default_left"][k] == 1
        else:
            left = b == t if f == 1 else b <= t
        k = nodes["left"][k] if left else nodes["right"][k]
    return k


@pytest.mark.parametrize("index_bytes", [0, 1 << 20])
@pytest.mark.parametrize("max_leaves, max_depth", [(9, None), (32, 3), (2, None), (1, None)])
def test_kernel_leaves_hold_the_rows_their_splits_send_there(max_leaves, max_depth, index_bytes):
    Xn, ghn, rows, n_bins, is_cat = _node_data()
    X0, gh0 = Xn.copy(), ghn.copy()
    t = grow_leafwise(
        Xn,
        ghn,
        rows,
        n_bins,
        is_cat,
        max_leaves=max_leaves,
        max_depth=max_depth,
        index_bytes=index_bytes,
        n_threads=2,
    )
    nodes = t.nodes
    leaves = np.flatnonzero(nodes["left"] < 0)
    if max_depth is None:
        assert len(leaves) == max_leaves
    else:
        assert 2 < len(leaves) <= 2**max_depth
    assert sorted(t.leaf_node.tolist()) == leaves.tolist()
    if max_depth is not None:
        assert nodes["depth"].max() <= max_depth
    data = (Xn, ghn, rows)  # without `other`, the node-ordered data ends in the arrays given
    order = np.argsort(t.leaf_start)
    np.testing.assert_array_equal(t.leaf_start[order][1:], t.leaf_end[order][:-1])
    assert t.leaf_start[order][0] == 0 and t.leaf_end[order][-1] == len(rows)
    assert not t.swapped
    np.testing.assert_array_equal(data[0], X0[data[2]])  # rows moved with their bins, gradients
    np.testing.assert_array_equal(data[1], gh0[data[2]])
    for leaf, s, e in zip(t.leaf_node, t.leaf_start, t.leaf_end):
        assert all(_route(nodes, X0[r]) == leaf for r in data[2][s:e])
        g, h = gh0[data[2][s:e]].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(nodes["cover"][leaf], h, rtol=1e-9)
        np.testing.assert_allclose(nodes["value"][leaf], -g / (h + 1.0) * 0.3, rtol=1e-9)


@pytest.mark.parametrize("index_bytes", [0, 1 << 20])
def test_kernel_grows_the_reference_tree_and_swaps_into_other(index_bytes):
    Xn, ghn, rows, n_bins, is_cat = _node_data(800, seed=2)
    X0, gh0 = Xn.copy(), ghn.copy()
    data_ref = tuple(a.copy() for a in (Xn, ghn, rows))
    params = GrowParams(None, 10, 1.0, 1.0, 0.0, 0.3)

    class Mapper:  # the bin mapper fields the grower reads
        is_categorical_ = is_cat
        n_bins_ = n_bins
        threshold_table_ = np.zeros((len(n_bins), 257), np.float32)

    scratch = tuple(np.empty_like(a) for a in data_ref)
    reference = BestFirstReferenceGrower(*data_ref, scratch, Mapper, None, params).grow()
    other = tuple(np.empty_like(a) for a in (Xn, ghn, rows))
    t = grow_leafwise(
        Xn,
        ghn,
        rows,
        n_bins,
        is_cat,
        max_leaves=10,
        other=other,
        swap_rows=0,
        index_bytes=index_bytes,
        n_threads=2,
    )
    for name in t.nodes:
        np.testing.assert_array_equal(t.nodes[name], reference.arrays()[name], err_msg=name)
    assert t.swapped  # the root split (or the final gather) wrote the data into `other`
    assert sorted(other[2].tolist()) == list(range(800))
    np.testing.assert_array_equal(other[0], X0[other[2]])
    np.testing.assert_array_equal(other[1], gh0[other[2]])
    for leaf, s, e in zip(t.leaf_node, t.leaf_start, t.leaf_end):
        assert all(_route(t.nodes, X0[r]) == leaf for r in other[2][s:e])


@pytest.mark.parametrize("index_bytes", [0, 1 << 30])
def test_kernel_on_row_blocks_gives_one_range_per_leaf_and_block(index_bytes):
    Xn, ghn, rows, n_bins, is_cat = _node_data(40_000, seed=4)
    X0, gh0 = Xn.copy(), ghn.copy()
    t = grow_leafwise(
        Xn, ghn, rows, n_bins, is_cat, max_leaves=12, index_bytes=index_bytes, n_threads=2
    )
    nodes = t.nodes
    leaves = np.flatnonzero(nodes["left"] < 0)
    assert len(leaves) == 12
    assert sorted(set(t.leaf_node.tolist())) == leaves.tolist()
    assert np.all(np.bincount(t.leaf_node)[leaves] == 2)  # 2 blocks of 20,000 rows
    order = np.argsort(t.leaf_start, kind="stable")
    np.testing.assert_array_equal(t.leaf_start[order][1:], t.leaf_end[order][:-1])
    assert t.leaf_start[order][0] == 0 and t.leaf_end[order][-1] == len(rows)
    np.testing.assert_array_equal(Xn, X0[rows])
    np.testing.assert_array_equal(ghn, gh0[rows])
    for leaf in leaves:
        mine = np.concatenate(
            [rows[s:e] for n, s, e in zip(t.leaf_node, t.leaf_start, t.leaf_end) if n == leaf]
        )
        assert all(_route(nodes, X0[r]) == leaf for r in mine[::97])
        g, h = gh0[mine].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(nodes["cover"][leaf], h, rtol=1e-9)
        np.testing.assert_allclose(nodes["value"][leaf], -g / (h + 1.0) * 0.3, rtol=1e-9)


def test_kernel_without_a_valid_split_grows_one_leaf():
    Xn, ghn, rows, n_bins, is_cat = _node_data(50)
    ghn[:, 0] = 0.25  # every row alike: no split reduces the loss
    t = grow_leafwise(Xn, ghn, rows, n_bins, is_cat, max_leaves=8)
    assert t.nodes["feature"].tolist() == [-1]
    assert (t.leaf_node.tolist(), t.leaf_start.tolist(), t.leaf_end.tolist()) == ([0], [0], [50])
    t = grow_leafwise(*_node_data(50), max_leaves=8, max_depth=0)
    assert t.nodes["feature"].tolist() == [-1]


def test_kernel_bad_input_names_the_argument():
    Xn, ghn, rows, n_bins, is_cat = _node_data(20)
    with pytest.raises(TypeError, match="Xn"):
        grow_leafwise(Xn.astype(np.int32), ghn, rows, n_bins, is_cat, max_leaves=4)
    with pytest.raises(TypeError, match="ghn"):
        grow_leafwise(Xn, ghn.astype(np.float64), rows, n_bins, is_cat, max_leaves=4)
    with pytest.raises(ValueError, match="rows"):
        grow_leafwise(Xn, ghn, rows[:10].copy(), n_bins, is_cat, max_leaves=4)
    with pytest.raises(ValueError, match="n_bins"):
        grow_leafwise(Xn, ghn, rows, n_bins[:2], is_cat, max_leaves=4)
    with pytest.raises(ValueError, match="n_bins"):
        grow_leafwise(Xn, ghn, rows, np.full(4, 300, np.int32), is_cat, max_leaves=4)
    with pytest.raises(ValueError, match="max_leaves"):
        grow_leafwise(Xn, ghn, rows, n_bins, is_cat, max_leaves=0)
    with pytest.raises(TypeError, match="max_depth"):
        grow_leafwise(Xn, ghn, rows, n_bins, is_cat, max_leaves=4, max_depth=2.5)
    with pytest.raises(ValueError, match="Xn"):
        grow_leafwise(Xn[:0], ghn[:0], rows[:0], n_bins, is_cat, max_leaves=4)
    bad = ghn.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="ghn"):
        grow_leafwise(Xn, bad, rows, n_bins, is_cat, max_leaves=4)
    with pytest.raises(ValueError, match="other"):
        grow_leafwise(
            Xn, ghn, rows, n_bins, is_cat, max_leaves=4, other=(Xn[:5], ghn[:5], rows[:5])
        )


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index_bytes", [0, 1 << 30])
def test_kernel_adds_leaf_values_and_fills_the_next_gradients(index_bytes, weighted):
    # with raw, the kernel adds each row's leaf value to raw[row id]; with next_objective, each
    # row's (g, h) in the final node order is then its gradient pair at the new margin, as
    # gbdt_gradients_at computes it (on 40,000 rows: two row blocks; positions or rows moved)
    from recforge import _core

    Xn, ghn, rows, n_bins, is_cat = _node_data(40_000, seed=6)
    rng = np.random.default_rng(1)
    perm = rng.permutation(50_000)[:40_000].astype(np.int32)  # row ids into longer margins
    rows[:] = perm
    X0 = Xn.copy()
    by_id = np.empty((50_000, X0.shape[1]), np.uint8)
    by_id[perm] = X0
    raw0 = rng.normal(size=50_000)
    y = (rng.random(50_000) < 0.3).astype(np.float32)
    w = rng.uniform(0.5, 2.0, 50_000).astype(np.float32) if weighted else None
    raw = raw0.copy()
    other = tuple(np.empty_like(a) for a in (Xn, ghn, rows))
    t = _core.gbdt_grow_leafwise(
        Xn,
        ghn,
        rows,
        *other,
        n_bins,
        is_cat.astype(np.uint8),
        None,
        12,
        -1,
        1.0,
        1.0,
        0.0,
        0.3,
        500_000,
        index_bytes,
        2,
        raw=raw,
        next_objective=0,
        y=y,
        weight=w,
    )
    data = other if t.swapped else (Xn, ghn, rows)
    expected = raw0.copy()
    for r in perm:
        expected[r] += t.nodes["value"][_route(t.nodes, by_id[r])]
    np.testing.assert_array_equal(raw, expected)
    assert sorted(data[2].tolist()) == sorted(perm.tolist())
    np.testing.assert_array_equal(data[0], by_id[data[2]])
    want = np.empty_like(data[1])
    _core.gbdt_gradients_at(0, raw, y, w, data[2], want, 1)
    np.testing.assert_array_equal(data[1], want)
