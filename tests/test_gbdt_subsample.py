"""Row subsampling: the rows a tree was not grown on get its leaf values by walking their binned
rows (``_core.gbdt_add_tree_values_binned``) instead of the float32 predictor over every row, and
depth-wise trees on the sample are grown by the fused one-call grower. The margins, and so every
later tree, are the same as through the float32 path and the level-by-level grower, bit for bit."""

import numpy as np
import pandas as pd
import pytest

from recforge import _core
from recforge.rank import GBDTClassifier, GBDTRegressor
from recforge.rank.gbdt import estimator
from recforge.rank.gbdt._grower import FusedDepthwiseGrower, Tree
from recforge.rank.gbdt._predict import Forest
from tests._team_load import teams_whatever_the_load  # noqa: F401


def _mixed(n=5000, seed=0):
    """Numeric columns with ~5 % NaN, two categorical columns (one with missing values, one with
    more categories than the one-vs-rest search takes), a target depending on both."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    colour = rng.choice(np.array(["red", "green", "blue", "grey", "pink"]), n)
    shop = rng.integers(0, 60, n)
    logit = 1.2 * X[:, 0] - X[:, 1] + (colour == "red") - 0.8 * (shop % 7 == 0) + 0.5 * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X[rng.random(X.shape) < 0.05] = np.nan
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["colour"] = pd.Categorical(np.where(rng.random(n) < 0.05, None, colour))
    frame["shop"] = pd.Categorical(shop)
    return frame, y


def _float_path(Xf, out_rows, tree, codes, raw):
    """What the booster did before: the newest tree through the float32 predictor (here for the rows
    not sampled only; the sampled rows get their leaves' values either way)."""
    forest = Forest({**tree, "roots": np.zeros(1, np.int64)}, codes)
    part = np.zeros(len(out_rows))
    forest.predict_raw(np.ascontiguousarray(Xf[out_rows]), out=part)
    raw[out_rows] += part


GROWTHS = [
    {"max_depth": 4},
    {"max_depth": None, "max_leaves": 15},
    {"max_depth": 5, "categorical_split": "partition"},
]


@pytest.mark.parametrize("growth", GROWTHS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_binned_out_of_sample_rows_give_the_float_path_model(monkeypatch, growth, n_threads):
    X, y = _mixed()
    params = dict(n_estimators=25, learning_rate=0.3, subsample=0.6, random_state=3, **growth)
    params["n_threads"] = n_threads
    binned = GBDTClassifier(**params).fit(X, y)

    Xf = binned._prepare_X(X, reset=False)
    codes = binned._mapper.edges_

    calls = []

    def float_path(Xb, out_rows, tree, mapper, raw, n_threads=1):
        calls.append(1)
        _float_path(Xf, out_rows, tree, codes, raw)

    monkeypatch.setattr(estimator, "add_tree_values_binned", float_path)
    reference = GBDTClassifier(**params).fit(X, y)
    monkeypatch.undo()
    assert len(calls) == params["n_estimators"]  # every tree went through the patched step
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(
            binned._forest.arrays[name], reference._forest.arrays[name], err_msg=name
        )
    np.testing.assert_array_equal(binned.decision_function(X), reference.decision_function(X))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_fused_grower_on_the_sample_gives_the_level_by_level_trees(monkeypatch, n_threads):
    X, y = _mixed(seed=2)
    params = dict(
        n_estimators=20,
        max_depth=5,
        subsample=0.7,
        colsample_bytree=0.8,
        random_state=4,
        n_threads=n_threads,
    )
    fused = GBDTClassifier(**params).fit(X, y)
    monkeypatch.setattr(FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False))
    levels = GBDTClassifier(**params).fit(X, y)
    monkeypatch.undo()
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(
            fused._forest.arrays[name], levels._forest.arrays[name], err_msg=name
        )
    np.testing.assert_array_equal(fused.decision_function(X), levels.decision_function(X))


def test_kernel_adds_each_trees_float_prediction():
    """Every tree of a fitted forest, walked on the binned rows, adds exactly what the float32
    predictor adds for those rows (NaN, categorical one-vs-rest and partition splits included)."""
    X, y = _mixed(seed=1)
    model = GBDTClassifier(
        n_estimators=12, max_depth=5, categorical_split="partition", subsample=0.5, random_state=0
    ).fit(X, y)
    Xf = model._prepare_X(X, reset=False)
    Xb = model._mapper.transform(Xf)
    is_cat = model._mapper.is_categorical_.astype(np.uint8)
    rows = np.arange(0, len(X), 3, dtype=np.int32)
    assert np.any(model._forest.arrays["threshold_bin"] == -1)  # a partition split is among them
    for t in range(model._forest.n_trees):
        tree = model._forest.tree(t)
        expected = np.full(len(X), 0.25)
        model._forest.predict_raw(Xf, t0=t, t1=t + 1, out=expected)
        got = np.full(len(X), 0.25)
        _core.gbdt_add_tree_values_binned(
            Xb,
            rows,
            tree["feature"],
            tree["threshold_bin"],
            tree["default_left"],
            is_cat,
            tree["cat_set"],
            tree["left"],
            tree["right"],
            tree["value"],
            got,
            2,
        )
        np.testing.assert_array_equal(got[rows], expected[rows])
        untouched = np.setdiff1d(np.arange(len(X)), rows)
        assert np.all(got[untouched] == 0.25)


def test_kernel_rejects_a_tree_that_points_backwards():
    Xb = np.zeros((4, 2), np.uint8)
    tree = {name: Tree.empty(name, 3) for name in Tree.FIELDS}
    tree["left"][:] = [1, -1, -1]
    tree["right"][:] = [0, -1, -1]  # a cycle: the walk would never end
    args = [tree[k] for k in ("feature", "threshold_bin", "default_left")]
    with pytest.raises(ValueError, match="child index"):
        _core.gbdt_add_tree_values_binned(
            Xb,
            np.arange(4, dtype=np.int32),
            *args,
            np.zeros(2, np.uint8),
            tree["cat_set"],
            tree["left"],
            tree["right"],
            tree["value"],
            np.zeros(4),
            1,
        )


def test_regressor_with_subsample_fits_the_training_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    y = X[:, 0] * 2 - X[:, 1] + 0.1 * rng.normal(size=3000)
    model = GBDTRegressor(n_estimators=60, max_depth=4, subsample=0.5, random_state=0).fit(X, y)
    assert np.mean((model.predict(X) - y) ** 2) < 0.1 * np.var(y)


def test_unset_random_state_gives_the_same_model_every_fit():
    """random_state=None is the fixed seed DEFAULT_RANDOM_STATE (as xgboost's and LightGBM's
    defaults): the quantile row sample (drawn above 200,000 rows), the row and the column samples
    repeat, so two fits give the same bins and trees. Another seed draws other samples (so the
    equality below is not that of a draw that does not matter)."""
    rng = np.random.default_rng(5)
    n = 210_000  # above BinMapper's 200,000-row quantile sample
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=n) > 0).astype(np.int64)
    params = dict(n_estimators=3, max_depth=3, subsample=0.7, colsample_bytree=0.67, n_threads=1)

    def fitted(**extra):
        model = GBDTClassifier(**params, **extra).fit(X, y)
        return model._mapper.edges_, model.decision_function(X[:2000])

    (edges_a, pred_a), (edges_b, pred_b) = fitted(), fitted()
    edges_0, pred_0 = fitted(random_state=estimator.DEFAULT_RANDOM_STATE)
    edges_1, _ = fitted(random_state=1)
    for a, b, c in zip(edges_a, edges_b, edges_0):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(pred_a, pred_b)
    np.testing.assert_array_equal(pred_a, pred_0)
    assert any(not np.array_equal(a, d) for a, d in zip(edges_a, edges_1))
