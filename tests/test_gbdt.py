"""GBDTClassifier / GBDTRegressor through the public API: fit/predict, determinism, missing values,
categorical columns, early stopping, apply, importances, save/load, bad input."""

import io

import numpy as np
import pandas as pd
import pytest

from recforge.exceptions import ModelFileError, NotFittedError
from recforge.metrics import roc_auc_score
from recforge.rank import GBDTClassifier, GBDTRegressor
from recforge.rank.gbdt._grower import Tree
from tests._team_load import teams_whatever_the_load  # noqa: F401


def _data(n=2000, seed=0, missing=0.05):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    logit = 1.5 * X[:, 0] - X[:, 1] + 0.8 * (X[:, 2] > 0.5) * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X[rng.random(X.shape) < missing] = np.nan
    return X, y


def _small(**kw):
    return GBDTClassifier(
        n_estimators=kw.pop("n_estimators", 20),
        max_depth=kw.pop("max_depth", 4),
        learning_rate=0.3,
        **kw,
    )


def test_fit_predict_shapes_and_quality():
    X, y = _data()
    model = _small(n_threads=1).fit(X[:1500], y[:1500])
    assert model.fit(X[:1500], y[:1500]) is model
    proba = model.predict_proba(X[1500:])
    assert proba.shape == (500, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y[1500:], proba[:, 1]) > 0.75
    np.testing.assert_array_equal(model.predict(X[1500:]), (proba[:, 1] > 0.5).astype(int))
    np.testing.assert_allclose(1 / (1 + np.exp(-model.decision_function(X[1500:]))), proba[:, 1])
    assert model.n_features_in_ == 5 and model.n_trees_ == 20 and model.best_iteration_ == 19


def test_string_labels_and_classes():
    X, y = _data(500)
    labels = np.where(y == 1, "click", "skip")
    model = _small(n_estimators=5).fit(X, labels)
    assert model.classes_.tolist() == ["click", "skip"]
    assert set(model.predict(X)) <= {"click", "skip"}


@pytest.mark.parametrize(
    "extra", [{}, {"subsample": 0.7, "colsample_bytree": 0.6}, {"max_leaves": 8}]
)
def test_same_model_for_any_n_threads(extra):
    X, y = _data(3000)
    a = _small(n_threads=1, random_state=3, **extra).fit(X, y)
    b = _small(n_threads=2, random_state=3, **extra).fit(X, y)
    c = _small(n_threads=4, random_state=3, **extra).fit(X, y)
    for other in (b, c):
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(a._forest.arrays[name], other._forest.arrays[name])
        np.testing.assert_array_equal(a.decision_function(X), other.decision_function(X))


@pytest.mark.parametrize("extra", [{}, {"subsample": 0.8}])
def test_same_model_for_any_n_threads_on_multithreaded_sizes(extra):
    # big enough that the kernels really split the work (row blocks, feature blocks, node-parallel)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(250_000, 8)).astype(np.float32)
    X[rng.random(X.shape) < 0.02] = np.nan
    y = (X[:, 0] + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=len(X)) > 0).astype(int)
    models = [
        _small(n_estimators=3, max_depth=6, n_threads=t, random_state=0, **extra).fit(X, y)
        for t in (1, 2, 3)
    ]
    for other in models[1:]:
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(
                models[0]._forest.arrays[name], other._forest.arrays[name]
            )
        np.testing.assert_array_equal(
            models[0].decision_function(X[:5000]), other.decision_function(X[:5000])
        )


def test_fused_levels_on_threads_give_the_same_trees_as_one_thread_and_the_level_path(monkeypatch):
    # Adult-sized data with categorical columns and missing values: the fused grower runs each level
    # below the root as one parallel region over nodes (partition, children's histograms, splits
    # per task), so 2 and 3 threads really share the nodes; the trees must equal the 1-thread ones
    # and those of the level-by-level Python driver, bit for bit
    from recforge.rank.gbdt import _grower

    rng = np.random.default_rng(17)
    n = 40_000
    frame = pd.DataFrame(rng.normal(size=(n, 10)).astype(np.float32), columns=list("abcdefghij"))
    frame.iloc[rng.random(n) < 0.03, 2] = np.nan
    for c, k in (("u", 7), ("v", 16), ("w", 3), ("z", 40)):
        frame[c] = pd.Categorical(rng.integers(0, k, n).astype(str))
    logit = frame["a"] - 0.7 * frame["b"].to_numpy() * (frame["u"].cat.codes.to_numpy() > 3)
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit + 0.2 * frame["z"].cat.codes % 5)))).astype(int)
    kw = dict(n_estimators=4, max_depth=6, min_child_weight=5.0, random_state=2)
    models = [_small(n_threads=t, **kw).fit(frame, y) for t in (1, 2, 3)]
    monkeypatch.setattr(
        _grower.FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False)
    )
    models.append(_small(n_threads=2, **kw).fit(frame, y))
    arrays = [m._forest.arrays for m in models]
    assert np.sum(arrays[0]["left"] >= 0) > 4 * 31  # deep trees: several levels of many nodes
    for other in arrays[1:]:
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(arrays[0][name], other[name], err_msg=name)


@pytest.mark.parametrize("n_rows, subsample", [(31_999, 1.0), (32_000, 1.0), (130_000, 0.9)])
def test_row_blocks_give_the_same_trees_for_any_n_threads(monkeypatch, n_rows, subsample):
    # from 32,000 rows the fused grower keeps the rows in fixed blocks (2 here, 8 at 130k: more
    # blocks than threads), each block's partial histograms summed in block order; the blocks
    # depend on the row count only, so the trees are the same for 1, 2 and 3 threads, with a
    # feature mask (and subsampling: 117k rows, 7 blocks), and equal to the level-by-level driver's (exact sums)
    from recforge.rank.gbdt import _grower

    X, y = _data(n_rows, seed=5)
    kw = dict(
        n_estimators=3, max_depth=5, colsample_bytree=0.8, subsample=subsample, random_state=3
    )
    models = [_small(n_threads=t, **kw).fit(X, y) for t in (1, 2, 3)]
    monkeypatch.setattr(
        _grower.FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False)
    )
    models.append(_small(n_threads=2, **kw).fit(X, y))
    arrays = [m._forest.arrays for m in models]
    assert np.sum(arrays[0]["left"] >= 0) > 3 * 15
    for other in arrays[1:]:
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(arrays[0][name], other[name], err_msg=name)


def test_level_partition_into_scratch_gives_the_same_trees(monkeypatch):
    # large data partitions whole levels into the scratch buffers, carrying early leaves over;
    # force that path on small data (with early leaves: a feature of few values, min_child_weight)
    from recforge.rank.gbdt import _grower

    X, y = _data(4000, seed=7)
    X[:, 4] = np.round(X[:, 4])
    kw = dict(n_estimators=6, max_depth=6, min_child_weight=8.0, n_threads=2)
    for extra in ({}, {"subsample": 0.7, "random_state": 1}):
        usual = _small(**kw, **extra).fit(X, y)
        monkeypatch.setattr(_grower.TreeGrower, "swap_rows", 0)
        swapped = _small(**kw, **extra).fit(X, y)
        monkeypatch.undo()
        assert np.any(
            usual._forest.arrays["depth"][usual._forest.arrays["left"] < 0] < 6
        )  # early leaves
        for name in Tree.FIELDS:
            np.testing.assert_array_equal(usual._forest.arrays[name], swapped._forest.arrays[name])
        np.testing.assert_array_equal(usual.decision_function(X), swapped.decision_function(X))


@pytest.mark.parametrize("swap_rows", [500_000, 0])
@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 6, "n_threads": 1},
        {"max_depth": 6, "n_threads": 2, "colsample_bytree": 0.6, "random_state": 4},
        {"max_depth": 4, "n_threads": 2, "min_child_weight": 30.0},
        {"max_depth": 8, "n_threads": 1, "gamma": 0.5},
        {"max_depth": 1, "n_threads": 1},
    ],
)
def test_fused_tree_kernel_grows_the_level_by_level_trees(monkeypatch, params, swap_rows):
    # one kernel call per tree (FusedDepthwiseGrower) vs the Python driver calling the kernels
    # level by level: the same trees bit for bit, with early leaves, missing values, categorical
    # and masked features, both partition modes
    from recforge.rank.gbdt import _grower

    X, y = _data(4000, seed=11)
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["cat"] = pd.Categorical(
        np.array(["x", "y", "z", "w"])[(np.nan_to_num(X[:, 0]) > 0) + 2 * (y == 1)]
    )
    monkeypatch.setattr(_grower.TreeGrower, "swap_rows", swap_rows)
    models = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(
                _grower.FusedDepthwiseGrower, "usable", classmethod(lambda cls, p, f: False)
            )
        models.append(_small(n_estimators=8, **params).fit(frame, y))
    a, b = (m._forest.arrays for m in models)
    assert len(a["feature"]) > 8
    for name in Tree.FIELDS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(
        models[0].decision_function(frame), models[1].decision_function(frame)
    )


def test_seed_controls_subsampling():
    X, y = _data(1000)
    a = _small(subsample=0.5, random_state=1).fit(X, y).decision_function(X)
    b = _small(subsample=0.5, random_state=1).fit(X, y).decision_function(X)
    c = _small(subsample=0.5, random_state=2).fit(X, y).decision_function(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_missing_values_follow_learned_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    y = (x > 0).astype(int)
    y_missing = rng.random(4000) < 0.2
    X = x[:, None].copy()
    X[y_missing & (y == 1), 0] = np.nan  # missing means "positive" here
    model = _small(n_estimators=10, max_depth=2).fit(X, y)
    assert model.predict_proba(np.array([[np.nan]]))[0, 1] > 0.9
    assert model.predict_proba(np.array([[-1.0]]))[0, 1] < 0.1


def test_categorical_dataframe_columns():
    rng = np.random.default_rng(1)
    n = 3000
    city = rng.choice(["paris", "rome", "oslo", "lima"], size=n)
    num = rng.normal(size=n)
    y = ((city == "oslo") | ((city == "lima") & (num > 0))).astype(int)
    df = pd.DataFrame({"city": city, "num": num})
    df.loc[rng.random(n) < 0.05, "city"] = None
    model = _small(n_estimators=30).fit(df, y)
    assert model._schema.is_categorical.tolist() == [True, False]
    assert model.feature_names_in_.tolist() == ["city", "num"]
    test = pd.DataFrame(
        {"city": ["oslo", "paris", "lima", "lima", "tokyo"], "num": [0.0, 0.0, 1.0, -1.0, 0.0]}
    )
    p = model.predict_proba(test)[:, 1]
    assert (
        p[0] > 0.9 and p[1] < 0.1 and p[2] > 0.9 and p[3] < 0.1
    )  # unseen "tokyo" is treated as missing
    assert np.isfinite(p[4])
    # the same as pandas category dtype
    cat = df.assign(city=df["city"].astype("category"))
    np.testing.assert_allclose(
        _small(n_estimators=30).fit(cat, y).predict_proba(test.astype({"city": "category"})),
        model.predict_proba(test),
        atol=1e-12,
    )


def test_schema_fit_transform_equals_fit_then_transform():
    # a fit hashes each text column once (fit_transform); the codes are those of fit + transform:
    # str labels sorted, missing (None, NaN) and the 1 vs "1" of a mixed column as transform sees them
    from recforge.rank.gbdt._input import InputSchema

    rng = np.random.default_rng(4)
    n = 5000
    df = pd.DataFrame(
        {
            "city": rng.choice(["paris", "rome", "oslo", "lima", "Zurich"], size=n).astype(object),
            "num": rng.normal(size=n),
            "mixed": rng.choice(np.array([1, "1", "b", 2.5, None], dtype=object), size=n),
            "cat": pd.Categorical(rng.choice(["x", "y", "z"], size=n)),
        }
    )
    df.loc[rng.random(n) < 0.05, "city"] = None
    df.loc[rng.random(n) < 0.05, "city"] = np.nan
    reference = InputSchema().fit(df)
    schema = InputSchema()
    out = schema.fit_transform(df)
    np.testing.assert_array_equal(out, reference.transform(df))
    np.testing.assert_array_equal(out, schema.transform(df))
    for mine, theirs in zip(schema.categories, reference.categories):
        assert (mine is None and theirs is None) or mine.tolist() == theirs.tolist()
    assert schema.categories[0].tolist() == ["Zurich", "lima", "oslo", "paris", "rome"]
    assert np.isnan(out[:, 0]).sum() == df["city"].isna().sum()


def test_schema_transform_row_by_row_and_after_a_refit():
    # one row at a time gives the whole frame's rows (unseen labels and missing values NaN,
    # nullable columns' NA too); a schema fitted again codes by its new categories
    from recforge.rank.gbdt._input import InputSchema

    rng = np.random.default_rng(5)
    n = 400
    train = pd.DataFrame(
        {
            "city": rng.choice(["paris", "rome", "oslo"], size=n).astype(object),
            "count": pd.array(rng.integers(0, 9, size=n), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "num": rng.normal(size=n),
        }
    )
    test = train.iloc[:40].copy()
    test.loc[test.index[::7], "city"] = "tokyo"
    test.loc[test.index[3::9], "city"] = None
    test.loc[test.index[5::6], "count"] = pd.NA
    schema = InputSchema().fit(train)
    whole = schema.transform(test)
    rows = np.vstack([schema.transform(test.iloc[[i]]) for i in range(len(test))])
    np.testing.assert_array_equal(rows, whole)
    codes = {"oslo": 0, "paris": 1, "rome": 2}
    expected_city = [codes.get(c, np.nan) if isinstance(c, str) else np.nan for c in test["city"]]
    np.testing.assert_array_equal(whole[:, 0], np.array(expected_city, np.float32))
    assert np.isnan(whole[5::6, 1]).all() and not np.isnan(whole[::6, 1]).all()

    schema.fit(train.assign(city=train["city"].replace({"paris": "athens"})))
    again = schema.transform(test.iloc[:3])
    expected = {"athens": 0, "oslo": 1, "rome": 2}
    for value, code in zip(test["city"].iloc[:3], again[:, 0]):
        assert (np.isnan(code) and value not in expected) or code == expected[value]


def test_categorical_codes_in_numpy():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 6, size=2000).astype(float)
    y = np.isin(codes, [1, 4]).astype(int)
    model = _small(categorical_features=[0], n_estimators=20).fit(codes[:, None], y)
    p = model.predict_proba(np.arange(6, dtype=float)[:, None])[:, 1]
    assert (p[[1, 4]] > 0.9).all() and (p[[0, 2, 3, 5]] < 0.1).all()
    with pytest.raises(ValueError, match="categorical"):
        model.predict_proba(np.array([[1.5]]))


def test_eval_set_and_early_stopping():
    X, y = _data(3000, seed=4)
    model = GBDTClassifier(
        n_estimators=500, learning_rate=0.5, max_depth=6, early_stopping_rounds=5
    )
    model.fit(X[:2000], y[:2000], eval_set=[(X[2000:], y[2000:])])
    history = model.evals_result_["validation_0"]["logloss"]
    assert model.n_trees_ < 500 and model.n_trees_ == len(history)
    assert model.best_iteration_ == int(np.argmin(history))
    assert model.n_trees_ == model.best_iteration_ + 1 + 5
    assert model.best_score_ == pytest.approx(min(history))
    assert model.apply(X[:3]).shape == (
        3,
        model.best_iteration_ + 1,
    )  # predictions use the best trees
    auc = GBDTClassifier(n_estimators=30, eval_metric="auc", early_stopping_rounds=3).fit(
        X[:2000], y[:2000], eval_set=[(X[2000:], y[2000:])]
    )
    assert auc.best_score_ == pytest.approx(max(auc.evals_result_["validation_0"]["auc"]))
    with pytest.raises(ValueError, match="eval_set"):
        GBDTClassifier(early_stopping_rounds=3).fit(X, y)


def test_apply_gives_leaves_and_their_values_sum_to_margin():
    X, y = _data(1000)
    model = _small(n_estimators=7).fit(X, y)
    leaves = model.apply(X)
    assert leaves.shape == (1000, 7) and leaves.dtype == np.int32
    margin = np.full(1000, model.base_margin_)
    for t in range(7):
        tree = model._forest.tree(t)
        assert (tree["left"][leaves[:, t]] == -1).all()
        margin += tree["value"][leaves[:, t]]
    np.testing.assert_allclose(margin, model.decision_function(X), atol=1e-12)


def test_feature_importances_are_total_gain():
    X, y = _data(2000)
    model = _small().fit(X, y)
    imp = model.feature_importances_
    assert imp.shape == (5,) and imp.sum() == pytest.approx(1.0)
    assert imp[0] == imp.max() and imp[4] < 0.1  # feature 4 is noise
    df = model.trees_to_dataframe()
    gain = df[df.feature >= 0].groupby("feature").gain.sum()
    np.testing.assert_allclose(imp[gain.index], gain / gain.sum())


def test_best_first_growth_respects_max_leaves():
    X, y = _data(2000)
    model = GBDTClassifier(n_estimators=5, max_leaves=6, max_depth=None).fit(X, y)
    leaves = model._forest.n_leaves()
    assert leaves.max() <= 6 and leaves.max() == 6


def test_regressor():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 3))
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + rng.normal(scale=0.1, size=2000)
    model = GBDTRegressor(n_estimators=100, max_depth=4, learning_rate=0.2).fit(
        X[:1500], y[:1500], eval_set=[(X[1500:], y[1500:])]
    )
    pred = model.predict(X[1500:])
    assert np.sqrt(np.mean((pred - y[1500:]) ** 2)) < 0.35
    assert model.evals_result_["validation_0"]["rmse"][-1] == pytest.approx(
        np.sqrt(np.mean((pred - y[1500:]) ** 2))
    )


def test_sample_weight_zero_rows_are_ignored():
    X, y = _data(1000)
    X = np.round(X * 2)  # few distinct values: both fits bin every value apart
    w = np.ones(1000)
    w[500:] = 0
    a = _small().fit(X, y, sample_weight=w).decision_function(X[:500])
    b = _small().fit(X[:500], y[:500]).decision_function(X[:500])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"a": rng.normal(size=500), "c": rng.choice(["x", "y", "z"], size=500)})
    y = ((df.a > 0) ^ (df.c == "y")).astype(int)
    model = _small(n_estimators=10, early_stopping_rounds=2).fit(df, y, eval_set=[(df, y)])
    path = tmp_path / "gbdt.npz"
    model.save(path)
    loaded = GBDTClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(df), model.predict_proba(df))
    np.testing.assert_array_equal(loaded.apply(df), model.apply(df))
    assert (
        loaded.get_params() == model.get_params()
        and loaded.best_iteration_ == model.best_iteration_
    )
    assert loaded.classes_.tolist() == [0, 1]
    buf = io.BytesIO()
    GBDTRegressor(n_estimators=3).fit(df[["a"]], df.a * 2).save(buf)
    buf.seek(0)
    with pytest.raises(ModelFileError, match="GBDTRegressor"):
        GBDTClassifier.load(buf)


def test_corrupt_model_file_is_rejected(tmp_path):
    from recforge.io import load_arrays, save_arrays

    X, y = _data(300)
    path = tmp_path / "m.npz"
    _small(n_estimators=3).fit(X, y).save(path)
    params, arrays, meta = load_arrays(path)
    arrays["forest_left"] = arrays["forest_left"].copy()
    arrays["forest_left"][0] = 10_000
    save_arrays(path, model_class="GBDTClassifier", params=params, arrays=arrays, meta=meta)
    with pytest.raises(ModelFileError, match=r"corrupt|range"):
        GBDTClassifier.load(path)


def test_not_fitted_and_bad_input():
    X, y = _data(200)
    with pytest.raises(NotFittedError):
        GBDTClassifier().predict_proba(X)
    with pytest.raises(ValueError, match="binary"):
        _small().fit(X, np.arange(200) % 3)
    with pytest.raises(ValueError, match="continuous"):
        _small().fit(X, np.linspace(0, 1, 200))
    with pytest.raises(ValueError, match="infinity"):
        _small().fit(np.where(np.isnan(X), np.inf, X), y)
    with pytest.raises(ValueError, match="rows"):
        _small().fit(X, y[:100])
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse as sp

        _small().fit(sp.csr_matrix(np.nan_to_num(X)), y)
    model = _small(n_estimators=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(X[:, :3])
    for name, value in [
        ("n_estimators", 0),
        ("learning_rate", -1.0),
        ("max_depth", -1),
        ("subsample", 1.5),
        ("colsample_bytree", 0.0),
        ("max_bin", 1),
        ("max_bin", 300),
        ("max_leaves", 1),
        ("reg_lambda", -1.0),
        ("gamma", -0.1),
        ("min_child_weight", -1.0),
    ]:
        with pytest.raises(ValueError, match=name):
            GBDTClassifier(**{name: value}).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        _small().fit(X, y, sample_weight=-np.ones(200))
    with pytest.raises(ValueError, match="eval_metric"):
        _small(eval_metric="rmse").fit(X, y)


def test_max_depth_zero_is_a_constant_model():
    X, y = _data(300)
    model = GBDTClassifier(n_estimators=3, max_depth=0).fit(X, y)
    assert np.ptp(model.decision_function(X)) == 0


def test_regressor_save_load_and_categorical(tmp_path):
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"a": rng.normal(size=600), "c": rng.choice(["u", "v"], size=600)})
    y = df.a.to_numpy() * 2 + (df.c == "v") * 3
    model = GBDTRegressor(n_estimators=20, max_depth=3).fit(df, y)
    assert model._schema.is_categorical.tolist() == [False, True]
    path = tmp_path / "reg.npz"
    model.save(path)
    loaded = GBDTRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(df), model.predict(df))
    assert loaded.feature_names_in_.tolist() == ["a", "c"]
    with pytest.raises(NotFittedError):
        GBDTRegressor().predict(df)


def test_regressor_checks_feature_names_and_fitted_state_like_the_classifier():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = GBDTRegressor(n_estimators=5, max_depth=2, n_threads=1)
    with pytest.raises(NotFittedError):
        model.predict(df)
    model.fit(df, 2 * df.a, eval_set=[(df, 2 * df.a)])
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(df.rename(columns={"b": "c"}))
    assert not hasattr(model, "predict_proba") and not hasattr(model, "decision_function")
    assert model.score(df, 2 * df.a) > 0.9


def test_public_forest_surface_leaf_numbering():
    X, y = _data(800)
    model = GBDTClassifier(n_estimators=6, max_depth=3, max_leaves=5, n_threads=1).fit(X, y)
    nodes, leaves = model.apply(X), model.apply(X, numbering="leaf")
    per_tree = model.leaves_per_tree_
    assert per_tree.shape == (6,) and np.all(leaves >= 0) and np.all(leaves < per_tree[None, :])
    trees = model.trees_to_dataframe()
    for t in range(6):  # leaf number = rank of the node among the tree's leaves
        leaf_nodes = trees[(trees.tree == t) & (trees.left < 0)].node.to_numpy()
        assert len(leaf_nodes) == per_tree[t]
        np.testing.assert_array_equal(leaf_nodes[leaves[:, t]], nodes[:, t])
    assert model.is_categorical_.tolist() == [False] * X.shape[1]
    np.testing.assert_array_equal(model.encode_input(X), X.astype(np.float32))
    with pytest.raises(ValueError, match="numbering"):
        model.apply(X, numbering="tree")


@pytest.mark.parametrize("n_features", [7, 8, 11, 14, 16, 17])
def test_partition_of_narrow_rows_is_stable_and_stays_in_its_nodes(n_features):
    # rows of 8..16 bytes move as 16-byte blocks whose tails run into the next position: check the
    # stable order and that nothing outside the nodes' ranges changes (tiny, all-left, all-right
    # nodes; a gap between nodes; the last node ends at the last row)
    from recforge.kernels import gbdt as kern

    rng = np.random.default_rng(n_features)
    m = 400
    Xb = rng.integers(0, 6, size=(m, n_features), dtype=np.uint8)
    gh = rng.normal(size=(m, 2)).astype(np.float32)
    ids = rng.permutation(m).astype(np.int32)
    starts = np.array([0, 1, 3, 6, 50, 120, 200, 310])
    ends = np.array([1, 3, 6, 50, 110, 200, 310, 400])  # 110..120 belongs to no node
    k = len(starts)
    feature = (np.arange(k) % n_features).astype(np.int32)
    threshold = np.array([2, 2, 2, 2, 6, -1, 3, 1], np.int32)  # node 4 all left, node 5 all right
    dleft = np.zeros(k, np.uint8)
    is_cat = np.zeros(n_features, np.uint8)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    n_left = kern.partition_ordered(Xn, ghn, rows, starts, ends, feature, threshold, dleft, is_cat)
    np.testing.assert_array_equal(Xn[110:120], Xb[110:120])
    for j in range(k):
        seg = np.arange(starts[j], ends[j])
        go = Xb[seg, feature[j]] <= threshold[j]
        order = np.concatenate([seg[go], seg[~go]])
        assert n_left[j] == go.sum()
        np.testing.assert_array_equal(Xn[seg], Xb[order])
        np.testing.assert_array_equal(ghn[seg], gh[order])
        np.testing.assert_array_equal(rows[seg], ids[order])


@pytest.mark.parametrize("n_rows", [3_000, 40_000])
def test_depthwise_kernel_fills_the_next_gradients_as_it_adds_the_leaf_values(n_rows):
    # next_objective: after a tree, each row's (g, h) in the final node order is its gradient pair
    # at its new margin, as gbdt_gradients_at computes it; the tree and the margins are those of a
    # call without it (on 40,000 rows: the row-block grower)
    from recforge import _core

    rng = np.random.default_rng(3)
    Xn = rng.integers(0, 30, size=(n_rows, 5)).astype(np.uint8)
    y = (rng.random(n_rows) < 0.4).astype(np.float32)
    w = rng.uniform(0.5, 2.0, n_rows).astype(np.float32)
    raw0 = rng.normal(size=n_rows)
    gh0 = np.empty((n_rows, 2), np.float32)
    _core.gbdt_gradients_at(0, raw0, y, w, np.arange(n_rows, dtype=np.int32), gh0, 1)
    n_bins = np.full(5, 30, np.int32)
    is_cat = np.zeros(5, np.uint8)
    results = []
    for objective in (-1, 0):
        data = [Xn.copy(), gh0.copy(), np.arange(n_rows, dtype=np.int32)]
        other = [np.empty_like(a) for a in data]
        raw = raw0.copy()
        hist = np.empty((2, 8, 5, 256, 2))
        nodes, swapped = _core.gbdt_grow_depthwise(
            *data,
            *other,
            n_bins,
            is_cat,
            None,
            4,
            1.0,
            1.0,
            0.0,
            0.3,
            500_000,
            hist,
            raw,
            2,
            next_objective=objective,
            y=y if objective >= 0 else None,
            weight=w,
        )
        results.append((nodes, raw, other if swapped else data))
    (plain, raw_plain, _), (nodes, raw, data) = results
    for name in plain:
        np.testing.assert_array_equal(nodes[name], plain[name], err_msg=name)
    np.testing.assert_array_equal(raw, raw_plain)
    assert (nodes["left"] < 0).sum() > 8
    want = np.empty_like(data[1])
    _core.gbdt_gradients_at(0, raw, y, w, data[2], want, 1)
    np.testing.assert_array_equal(data[1], want)
    np.testing.assert_array_equal(data[0], Xn[data[2]])
