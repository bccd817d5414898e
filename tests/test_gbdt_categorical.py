"""GBDT categorical splits by sorted partition (``categorical_split="partition"``): the split kernel
against the NumPy reference, a case where the partition must beat one vs the rest, every grower
(fused depth-wise, level by level, fused best-first, the best-first reference driver) giving the
same trees, predict / apply on raw codes equal to the walk of the binned training data, save/load,
threads, and the Dask fit."""

import io
import json

import numpy as np
import pytest

from recforge._reference import gbdt as ref
from recforge._reference.gbdt_best_first import BestFirstReferenceGrower
from recforge.exceptions import ModelFileError
from recforge.kernels import gbdt as kern
from recforge.metrics import roc_auc_score
from recforge.rank import GBDTLR, GBDTClassifier, GBDTRegressor
from recforge.rank.gbdt import _grower, estimator
from recforge.rank.gbdt._grower import Tree, set_bins, set_words


def _random_hist(rng, n_bins, n_rows=600, missing=True):
    """A consistent (n_features, 256, 2) histogram built from random rows; per-category effects
    so that a partition has something to find."""
    Xb = np.stack([rng.integers(0, nb, size=n_rows) for nb in n_bins], axis=1).astype(np.uint8)
    if missing:
        Xb[rng.random(Xb.shape) < 0.08] = 255
    effect = rng.normal(size=256)
    g = rng.normal(size=n_rows) + effect[Xb[:, 0]]
    gh = np.column_stack([g, rng.uniform(0.05, 1.0, size=n_rows)])
    hist = np.zeros((len(n_bins), 256, 2))
    for f in range(len(n_bins)):
        np.add.at(hist[f], Xb[:, f], gh)
    return hist


@pytest.mark.parametrize("seed", range(16))
def test_partition_search_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 5))
    n_bins = rng.integers(2, 60, size=n_features).astype(np.int32)
    is_cat = (rng.random(n_features) < 0.7).astype(np.uint8)
    hist = _random_hist(rng, n_bins, missing=seed % 2 == 0)
    params = {
        "reg_lambda": float(rng.choice([0.0, 1.0, 5.0])),
        "gamma": float(rng.choice([0.0, 1.0])),
        "min_child_weight": float(rng.choice([0.0, 1.0, 5.0])),
        "max_cat_to_onehot": int(rng.choice([1, 4, 8])),
        "max_cat_threshold": int(rng.choice([1, 3, 32])),
        "cat_smooth": float(rng.choice([0.0, 10.0])),
        "cat_l2": float(rng.choice([0.0, 10.0])),
        "min_group_weight": float(rng.choice([0.0, 0.0, 5.0, 20.0])),
        "min_category_weight": float(rng.choice([0.0, 0.0, 2.0, 8.0])),
    }
    sum_g, sum_h = hist[0].sum(axis=0)
    out = kern.find_splits(hist[None], [sum_g], [sum_h], n_bins, is_cat, n_threads=2, **params)
    exp = ref.best_split(hist, sum_g, sum_h, n_bins, is_cat, **params)
    assert out.feature[0] == exp[0]
    if exp[0] < 0:
        return
    assert (out.threshold[0], bool(out.default_left[0])) == (exp[1], exp[2])
    assert out.loss_chg[0] == pytest.approx(exp[3], rel=1e-9)
    bins = tuple(np.flatnonzero(set_bins(out.cat_set)[0]).tolist())
    assert bins == exp[4]
    if bins:  # the children's sums are those of the set (plus the missing values if left)
        left = hist[exp[0], list(bins)].sum(axis=0) + (hist[exp[0], 255] if exp[2] else 0)
        assert (out.left_g[0], out.left_h[0]) == pytest.approx(tuple(left), rel=1e-9, abs=1e-9)
        assert len(bins) <= params["max_cat_threshold"]
        assert n_bins[exp[0]] > params["max_cat_to_onehot"] and is_cat[exp[0]]


def _gain(g, h, lam=1.0):
    return g * g / (h + lam)


@pytest.mark.parametrize(
    "min_group_weight, min_category_weight, candidates",
    [
        # no limits: every prefix of the order 0 < 1 < ... < 5 (G/H), at most 3 bins from each end
        (0.0, 0.0, [{0}, {0, 1}, {0, 1, 2}, {5}, {5, 4}, {5, 4, 3}]),
        # bin 0 (H = 1) is no group of its own: it joins bin 1; the back end's bins hold 10 each
        (5.0, 0.0, [{0, 1}, {0, 1, 2}, {5}, {5, 4}, {5, 4, 3}]),
        # bin 0 is rare: not sorted, it stays right; 3 of the other 5 bins from each end
        (0.0, 2.0, [{1}, {1, 2}, {1, 2, 3}, {5}, {5, 4}, {5, 4, 3}]),
        # groups of >= 15: {0, 1, 2} (H 21) from the front, {5, 4} (H 20) from the back; {5, 4, 3}
        # would start a new group of H 10
        (15.0, 0.0, [{0, 1, 2}, {5, 4}]),
        # groups of >= 30 leave less than 30 on the other side: no split
        (30.0, 0.0, []),
    ],
)
def test_partition_group_limits_choose_the_set_by_hand(
    min_group_weight, min_category_weight, candidates
):
    g = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0])
    h = np.array([1.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    hist = np.zeros((1, 1, 256, 2))
    hist[0, 0, :6, 0], hist[0, 0, :6, 1] = g, h
    out = kern.find_splits(
        hist,
        [g.sum()],
        [h.sum()],
        np.array([6], np.int32),
        np.array([1], np.uint8),
        reg_lambda=1.0,
        min_child_weight=0.0,
        max_cat_to_onehot=4,
        cat_smooth=0.0,
        min_group_weight=min_group_weight,
        min_category_weight=min_category_weight,
    )
    if not candidates:
        assert out.feature[0] == -1
        return
    parent = _gain(g.sum(), h.sum())
    gains = [
        _gain(g[list(s)].sum(), h[list(s)].sum())
        + _gain(g.sum() - g[list(s)].sum(), h.sum() - h[list(s)].sum())
        - parent
        for s in candidates
    ]
    best = candidates[int(np.argmax(gains))]
    assert out.feature[0] == 0 and out.threshold[0] == -1
    assert set(np.flatnonzero(set_bins(out.cat_set)[0]).tolist()) == best
    assert out.loss_chg[0] == pytest.approx(max(gains), rel=1e-12)


def test_set_words_and_bins_round_trip():
    bins = np.zeros((3, 256), bool)
    bins[0, [0, 63, 64, 200, 254]] = True
    bins[2, 5] = True
    words = set_words(bins)
    assert words.dtype == np.uint64 and words.shape == (3, 4)
    assert words[0, 0] == (1 | (1 << 63)) and words[0, 1] == 1
    np.testing.assert_array_equal(set_bins(words), bins)


def _alternating(n=4000, k=12, seed=0):
    """A categorical column whose even codes are positive and odd codes negative: one category vs
    the rest cannot separate them in one split, a partition can."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, k, n)
    X = np.column_stack([c, rng.normal(size=n)]).astype(np.float32)
    y = (c % 2 == 0).astype(int)
    return X, y


def test_a_partition_split_beats_one_vs_rest_by_hand():
    X, y = _alternating()
    kw = dict(n_estimators=1, max_depth=1, learning_rate=1.0, categorical_features=[0])
    part = GBDTClassifier(categorical_split="partition", **kw).fit(X, y)
    one = GBDTClassifier(categorical_split="one_vs_rest", **kw).fit(X, y)
    assert roc_auc_score(y, part.predict_proba(X)[:, 1]) == 1.0
    assert roc_auc_score(y, one.predict_proba(X)[:, 1]) < 0.7
    df = part.trees_to_dataframe()
    root = df.iloc[0]
    assert root["threshold_bin"] == -1 and np.isnan(root["threshold"])
    left = set(root["left_categories"])
    assert left in ({0.0, 2.0, 4.0, 6.0, 8.0, 10.0}, {1.0, 3.0, 5.0, 7.0, 9.0, 11.0})
    assert part._forest.arrays["gain"][0] > one._forest.arrays["gain"][0]
    # "auto" is one vs the rest (the partition loses AUC on Adult); few categories stay so too
    auto = GBDTClassifier(**kw).fit(X, y)
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(auto._forest.arrays[name], one._forest.arrays[name])
    few = GBDTClassifier(categorical_split="partition", max_cat_to_onehot=12, **kw).fit(X, y)
    assert not few._forest.arrays["cat_set"].any()


def _mixed(n=3000, seed=0, k=30):
    """Numeric columns, a many-category column with missing values, a 3-category column."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 5), np.float32)
    X[:, :2] = rng.normal(size=(n, 2))
    X[:, 2] = rng.integers(0, k, n)
    X[rng.random(n) < 0.07, 2] = np.nan
    X[:, 3] = rng.integers(0, 3, n)
    X[:, 4] = rng.integers(0, 8, n)
    effect = rng.normal(size=k) * 1.5
    cat = np.where(np.isnan(X[:, 2]), 0.8, effect[np.nan_to_num(X[:, 2]).astype(int)])
    logit = X[:, 0] - 0.5 * X[:, 1] + cat + 0.4 * (X[:, 3] == 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


CATS = [2, 3, 4]


def _walk_binned(model, X):
    """Leaf per (row, used tree) by walking the model's trees on the binned rows with the reference
    direction rule (:func:`recforge._reference.gbdt.goes_left`, bin sets for partition splits)."""
    Xb = model._mapper.transform(X.astype(np.float32))
    out = np.zeros((len(X), model._n_used()), np.int32)
    for t in range(model._n_used()):
        a = model._forest.tree(t)
        bins = set_bins(a["cat_set"])
        for r in range(len(X)):
            node = 0
            while a["left"][node] >= 0:
                f = a["feature"][node]
                go = ref.goes_left(
                    Xb[r : r + 1, f],
                    a["threshold_bin"][node],
                    a["default_left"][node],
                    bool(a["categorical"][node]),
                    tuple(np.flatnonzero(bins[node])),
                )[0]
                node = a["left"][node] + (0 if go else 1)
            out[r, t] = node
    return out


@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 5},
        {"max_depth": None, "max_leaves": 20},
        {"max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8, "random_state": 3},
    ],
)
@pytest.mark.parametrize("offset", [0.0, 100_000.0])  # codes in a bitset / in a sorted list
def test_predict_and_apply_on_raw_codes_equal_the_binned_walk(params, offset):
    X, y = _mixed()
    X[:, 2] += offset
    model = GBDTClassifier(
        n_estimators=6, categorical_features=CATS, categorical_split="partition", n_threads=2,
        **params,
    ).fit(X, y)  # fmt: skip
    assert model._forest.arrays["cat_set"].any()
    leaves = model.apply(X[:300])
    np.testing.assert_array_equal(leaves, _walk_binned(model, X[:300]))
    # predict = base margin + the sum (in tree order) of the values of the applied leaves
    values = model._forest.arrays["value"]
    roots = model._forest.arrays["roots"][: model._n_used()]
    acc = np.zeros(300)
    for t in range(model._n_used()):
        acc = acc + values[roots[t] + leaves[:, t]]
    np.testing.assert_array_equal(model.decision_function(X[:300]), model.base_margin_ + acc)
    # an unseen code goes right of every partition split (and of every one-vs-rest split)
    unseen = X[:50].copy()
    unseen[:, 2] = 1000.0 + offset
    assert np.isfinite(model.decision_function(unseen)).all()


def _assert_same_trees(a, b):
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(a._forest.arrays[name], b._forest.arrays[name], name)


# the group limits change the trees of _mixed(4000, seed=2) (checked below)
_LIMITS = {"min_group_weight": 40.0, "min_category_weight": 8.0}


@pytest.mark.parametrize("limits", [{}, _LIMITS], ids=["no-limits", "limits"])
def test_every_grower_gives_the_same_trees(monkeypatch, limits):
    X, y = _mixed(4000, seed=2)
    kw = dict(n_estimators=5, categorical_features=CATS, categorical_split="partition", **limits)
    depth = [GBDTClassifier(max_depth=5, n_threads=t, **kw).fit(X, y) for t in (1, 2)]
    best = [
        GBDTClassifier(max_depth=None, max_leaves=24, n_threads=t, **kw).fit(X, y) for t in (1, 2)
    ]
    monkeypatch.setattr(
        _grower.FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False)
    )
    depth.append(GBDTClassifier(max_depth=5, n_threads=2, **kw).fit(X, y))  # level by level
    monkeypatch.setattr(estimator, "TreeGrower", BestFirstReferenceGrower)
    best.append(GBDTClassifier(max_depth=None, max_leaves=24, n_threads=2, **kw).fit(X, y))
    monkeypatch.undo()
    for models in (depth, best):
        assert models[0]._forest.arrays["cat_set"].any()
        for other in models[1:]:
            _assert_same_trees(models[0], other)
            np.testing.assert_array_equal(
                models[0].decision_function(X), other.decision_function(X)
            )
    if limits:  # the limits reach every grower: each differs from its trees without them
        for model in (depth[0], best[0]):
            plain = GBDTClassifier(**{**model.get_params(), **dict.fromkeys(limits, 0.0)})
            assert not np.array_equal(
                plain.fit(X, y).decision_function(X), model.decision_function(X)
            )


def test_save_load_round_trip_and_old_files(tmp_path):
    X, y = _mixed()
    model = GBDTRegressor(
        n_estimators=8,
        max_depth=4,
        categorical_features=CATS,
        categorical_split="partition",
        **_LIMITS,
    ).fit(X, y.astype(float))
    path = tmp_path / "m.npz"
    model.save(path)
    back = GBDTRegressor.load(path)
    _assert_same_trees(model, back)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.get_params()["categorical_split"] == "partition"
    assert {k: back.get_params()[k] for k in _LIMITS} == _LIMITS

    # a file written before the group limits (no such parameters) loads with the limits off
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    record = json.loads(bytes(arrays["__meta__"]).decode())
    for name in _LIMITS:
        del record["params"][name]
    np.savez(path, **{**arrays, "__meta__": np.frombuffer(json.dumps(record).encode(), np.uint8)})
    back = GBDTRegressor.load(path)
    assert {k: back.get_params()[k] for k in _LIMITS} == dict.fromkeys(_LIMITS, 0.0)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))

    # a file written before partition splits (no forest_cat_set) still loads
    old = GBDTRegressor(
        n_estimators=4, max_depth=3, categorical_features=CATS, categorical_split="one_vs_rest"
    ).fit(X, y.astype(float))
    old.save(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    del arrays["forest_cat_set"]
    np.savez(path, **arrays)
    np.testing.assert_array_equal(GBDTRegressor.load(path).predict(X), old.predict(X))

    # a set on a numeric split, or bins beyond the feature's, is refused
    model.save(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    numeric = np.flatnonzero((arrays["forest_left"] >= 0) & (arrays["forest_categorical"] == 0))
    bad = arrays["forest_cat_set"].copy()
    bad[numeric[0], 0] = 1
    np.savez(path, **{**arrays, "forest_cat_set": bad})
    with pytest.raises(ModelFileError, match="cat_set"):
        GBDTRegressor.load(path)
    bad = arrays["forest_cat_set"].copy()
    setnode = np.flatnonzero(bad.any(axis=1))[0]
    bad[setnode, 3] |= np.uint64(1) << np.uint64(63)  # bin 255: beyond every feature's bins
    np.savez(path, **{**arrays, "forest_cat_set": bad})
    with pytest.raises(ModelFileError, match="cat_set"):
        GBDTRegressor.load(path)


def test_gbdt_lr_on_partition_trees():
    X, y = _mixed()
    model = GBDTLR(
        gbdt_params=dict(
            n_estimators=5, max_depth=3, categorical_features=CATS, categorical_split="partition"
        )
    ).fit(X, y)
    assert model.gbdt_._forest.arrays["cat_set"].any()
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    np.testing.assert_array_equal(GBDTLR.load(buf).predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"categorical_split": "onehot"}, ValueError),
        ({"max_cat_to_onehot": 0}, ValueError),
        ({"max_cat_threshold": 0}, ValueError),
        ({"cat_smooth": -1.0}, ValueError),
        ({"cat_l2": -1.0}, ValueError),
        ({"max_cat_threshold": 2.5}, TypeError),
        ({"min_group_weight": -1.0}, ValueError),
        ({"min_category_weight": float("nan")}, ValueError),
        ({"min_group_weight": "10"}, TypeError),
    ],
)
def test_bad_parameters_are_named(bad, error):
    X, y = _alternating(200)
    name = next(iter(bad))
    with pytest.raises(error, match=name):
        GBDTClassifier(n_estimators=1, categorical_features=[0], **bad).fit(X, y)


def test_dask_fit_equals_one_machine(dask_client):
    pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    from recforge.distributed import fit_gbdt

    X, y = _mixed(2000, seed=5)
    kw = dict(n_estimators=4, max_depth=4, categorical_features=CATS, n_threads=1)
    model = fit_gbdt(
        da.from_array(X, chunks=((700, 600, 700), -1)),
        da.from_array(y, chunks=((700, 600, 700),)),
        dask_client,
        categorical_split="partition",
        **kw,
    )
    local = GBDTClassifier(categorical_split="partition", **kw).fit(X, y)
    assert local._forest.arrays["cat_set"].any()
    _assert_same_trees(model, local)
    np.testing.assert_array_equal(model.decision_function(X), local.decision_function(X))
