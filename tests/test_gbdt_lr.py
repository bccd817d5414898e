"""GBDT+LR: leaf one-hot features, the two fits, save/load, and quality on UCI Adult."""

import io

import numpy as np
import pandas as pd
import pytest

from recforge.datasets import adult
from recforge.exceptions import ModelFileError
from recforge.metrics import roc_auc_score
from recforge.rank import GBDTLR


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = ((X[:, 0] * X[:, 1] > 0) ^ (rng.random(n) < 0.1)).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


def test_leaf_features_one_per_tree():
    X, y = _data()
    model = GBDTLR(n_estimators=8, max_depth=3, include_original=False, n_threads=1).fit(X, y)
    F = model._features(model._prepare_X(X, reset=False))
    assert F.shape == (1500, model.n_leaf_features_) == (1500, int(model.leaf_offsets_[-1]))
    np.testing.assert_array_equal(F.sum(axis=1).A1, 8)  # exactly one leaf per tree
    for t in range(8):  # tree t's leaf is in its own column block
        block = F[:, model.leaf_offsets_[t] : model.leaf_offsets_[t + 1]]
        np.testing.assert_array_equal(block.sum(axis=1).A1, 1)
    assert model.leaf_offsets_[-1] == model.gbdt_._forest.n_leaves().sum()
    assert model.apply(X).shape == (1500, 8)
    assert model.lr_.coef_.shape == (1, model.n_leaf_features_)


def test_original_features_are_appended():
    X, y = _data()
    model = GBDTLR(n_estimators=20, max_depth=3, C=1.0, original_bins=10, n_threads=1).fit(X, y)
    F = model._features(model._prepare_X(X, reset=False))
    assert F.shape[1] == model.n_leaf_features_ + model.n_original_features_
    assert model.n_original_features_ <= 4 * (10 + 1)
    np.testing.assert_array_equal(
        F[:, model.n_leaf_features_ :].sum(axis=1).A1, 4
    )  # one bucket per feature
    assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.75


def _stacked_features(model, X):
    """The LR's features built the long way: the leaf one-hot CSR and the original features'
    bucket CSR (missing values in each feature's last bucket) stacked by scipy."""
    import scipy.sparse as sp

    from recforge.kernels.gbdt import MISSING_BIN

    leaves = model.gbdt_.apply(X, numbering="leaf")
    n, n_trees = leaves.shape
    leaf = sp.csr_matrix(
        (
            np.ones(n * n_trees),
            (leaves + model.leaf_offsets_[None, :-1]).ravel(),
            np.arange(0, n * n_trees + 1, n_trees),
        ),
        shape=(n, model.n_leaf_features_),
    )
    bins = model._original_bins.transform(model.gbdt_.encode_input(X), n_threads=1).astype(np.int64)
    n_bins = model._original_bins.n_bins_.astype(np.int64)
    bins = np.where(bins == MISSING_BIN, n_bins[None, :], bins)
    starts = np.concatenate([[0], np.cumsum(n_bins + 1)[:-1]])
    F = bins.shape[1]
    orig = sp.csr_matrix(
        (np.ones(n * F), (bins + starts).ravel(), np.arange(0, n * F + 1, F)),
        shape=(n, model.n_original_features_),
    )
    return sp.hstack([leaf, orig], format="csr")


def test_features_equal_the_stacked_one_hot_blocks():
    X, y = _data()
    model = GBDTLR(n_estimators=12, max_depth=3, original_bins=10, n_threads=1).fit(X, y)
    Xp = model._prepare_X(X, reset=False)
    F, expected = model._features(Xp), _stacked_features(model, Xp)
    assert F.shape == expected.shape and F.has_canonical_format
    np.testing.assert_array_equal(F.indptr, expected.indptr)
    np.testing.assert_array_equal(F.indices, expected.indices)
    np.testing.assert_array_equal(F.data, expected.data)
    # float32 ones and int32 columns: half the bytes of the float64 / int64 a plain build makes
    assert F.data.dtype == np.float32 and F.indices.dtype == np.int32


def test_dataframe_with_categories_and_save_load(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=800), "c": rng.choice(["x", "y", "z"], size=800)})
    y = ((df.a > 0) ^ (df.c == "y")).astype(int).to_numpy()
    model = GBDTLR(n_estimators=6, max_depth=3, gbdt_params={"reg_lambda": 2.0}, n_threads=1).fit(
        df, y
    )
    path = tmp_path / "gbdt_lr.npz"
    model.save(path)
    loaded = GBDTLR.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(df), model.predict_proba(df))
    np.testing.assert_array_equal(loaded.leaf_offsets_, model.leaf_offsets_)
    assert loaded.get_params() == model.get_params()
    from recforge.io import load_arrays, save_arrays

    params, arrays, meta = load_arrays(path)
    lr_params, lr_arrays, lr_meta = load_arrays(
        io.BytesIO(arrays["lr"].tobytes())
    )  # the LR part, a whole file
    lr_arrays["coef"] = lr_arrays["coef"][:, :3]
    part = io.BytesIO()
    save_arrays(
        part, model_class="LogisticRegression", params=lr_params, arrays=lr_arrays, meta=lr_meta
    )
    arrays["lr"] = np.frombuffer(part.getvalue(), np.uint8)
    save_arrays(path, model_class="GBDTLR", params=params, arrays=arrays, meta=meta)
    with pytest.raises(ModelFileError, match=r"gbdt_lr.npz"):
        GBDTLR.load(path)
    arrays["gbdt"] = arrays["gbdt"][:100]  # a truncated part
    save_arrays(path, model_class="GBDTLR", params=params, arrays=arrays, meta=meta)
    with pytest.raises(ModelFileError, match=r"gbdt_lr.npz.*'gbdt' part"):
        GBDTLR.load(path)


def test_bad_parameters():
    X, y = _data(200)
    with pytest.raises(ValueError, match="gbdt_params"):
        GBDTLR(gbdt_params={"nope": 1}).fit(X, y)
    with pytest.raises(ValueError, match="C"):
        GBDTLR(C=0).fit(X, y)
    with pytest.raises(ValueError, match="max_depth"):
        GBDTLR(max_depth=-1).fit(X, y)


@pytest.mark.data
def test_adult_auc():
    """Measured: defaults (50 trees depth 5 eta 0.1, LR C=0.1 on leaves + original buckets) → 0.9258."""
    data = adult()
    model = GBDTLR(n_threads=2).fit(data.X_train, data.y_train)
    assert roc_auc_score(data.y_test, model.predict_proba(data.X_test)[:, 1]) >= 0.925
