"""Exclusive feature bundling in the GBDT fit: the bundles (exclusive, every row's member found in
its column), and fits with and without bundling that predict the same, on every growth path."""

import numpy as np
import pandas as pd
import pytest

from recforge import _core
from recforge.rank import GBDTClassifier, GBDTRanker, GBDTRegressor
from recforge.rank.gbdt._binning import BinMapper
from recforge.rank.gbdt._bundling import FeatureBundles
from recforge.rank.gbdt._grower import Tree


def _one_hot_data(n=3000, seed=0):
    """One-hot blocks of three categorical columns (exclusive within a block), a {-3, 0} column, a
    dense 0/1 column (mostly 1), a 0/1 column with missing values, two numeric columns and a
    constant one; y from all but the last."""
    rng = np.random.default_rng(seed)
    blocks, codes = [], []
    for n_values in (6, 11, 4):
        code = rng.integers(0, n_values, n)
        block = np.zeros((n, n_values), np.float32)
        block[np.arange(n), code] = 1.0
        blocks.append(block)
        codes.append(code)
    negative = np.where(rng.random(n) < 0.2, -3.0, 0.0).astype(np.float32)
    dense = (rng.random(n) < 0.7).astype(np.float32)
    with_missing = (rng.random(n) < 0.3).astype(np.float32)
    with_missing[rng.random(n) < 0.05] = np.nan
    numeric = rng.normal(size=(n, 2)).astype(np.float32)
    constant = np.zeros(n, np.float32)  # (a one-hot slot of a category not in the data)
    X = np.column_stack([*blocks, negative, dense, with_missing, numeric, constant])
    logit = (
        (codes[0] % 3 == 0) * 1.2
        - 0.8 * (codes[1] > 6)
        + 0.5 * (codes[2] == 1)
        + 0.7 * (negative < 0)
        - 0.4 * dense
        + 0.6 * np.nan_to_num(with_missing)
        + numeric[:, 0]
        - 0.5 * numeric[:, 1]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y, logit


def _bundles(X):
    mapper = BinMapper().fit(X, np.zeros(X.shape[1], bool))
    Xb = mapper.transform(X)
    return Xb, mapper, FeatureBundles.find(Xb, mapper)


def test_bundles_are_exclusive_and_their_columns_name_the_member_off_its_common_bin():
    X, _, _ = _one_hot_data()
    Xb, _, bundles = _bundles(X)
    assert bundles is not None and bundles.n_bundles >= 1
    n_features = X.shape[1]
    # every feature is a column or a member, once, but the constant one
    assert sorted([*bundles.plain.tolist(), *bundles.member.tolist()]) == [
        j for j in range(n_features) if j != n_features - 1
    ]
    # the column with missing values and the numeric ones stay plain columns
    assert {n_features - 4, n_features - 3, n_features - 2} <= set(bundles.plain.tolist())
    Z = bundles.transform(Xb)
    assert Z.shape == (len(X), len(bundles.plain) + bundles.n_bundles) and Z.dtype == np.uint8
    np.testing.assert_array_equal(Z[:, : len(bundles.plain)], Xb[:, bundles.plain])
    for b, members in enumerate(bundles.members):
        assert len(members) >= 2
        off = np.stack(
            [Xb[:, j] != bundles.common_bin[bundles.member == j][0] for j in members], axis=1
        )
        assert off.sum(axis=1).max() <= 1  # exclusive: at most one member off per row
        column = Z[:, len(bundles.plain) + b]
        for code in range(len(members)):
            np.testing.assert_array_equal(column == code, off[:, code])
        np.testing.assert_array_equal(column == 255, ~off.any(axis=1))


@pytest.mark.parametrize(("n", "n_threads"), [(500, 1), (20_000, 1), (20_000, 2)])
def test_bundle_placement_matches_a_python_greedy(n, n_threads):
    """The C++ placement against a plain reference: the features off their common bin in the
    most rows first, each into the first bundle it shares no such row with (at 20k rows: several
    blocks of rows, counted and listed by two threads)."""
    rng = np.random.default_rng(3)
    F = 40
    Xb = (rng.random((n, F)) < rng.uniform(0.005, 0.6, F)).astype(np.uint8)
    Xb[rng.random(n) < 0.02, 7] = 255  # a missing value: not bundled
    cand = np.arange(F, dtype=np.int32)
    Xb[:, 11] = 0  # constant: not bundled
    bundle_of, code_of, common, constant, n_bundles = _core.gbdt_bundle_exclusive(
        Xb, cand, 255, n_threads
    )
    np.testing.assert_array_equal(np.flatnonzero(constant), [11])
    ones = (Xb == 1).sum(axis=0)
    np.testing.assert_array_equal(common, (ones > n - ones).astype(np.uint8))
    off = Xb != common[None, :]
    order = [c for c in np.argsort(-off.sum(axis=0), kind="stable") if c not in (7, 11)]
    bundles, occupied = [], []
    expected = np.full(F, -1)
    for c in order:
        for b, rows in enumerate(occupied):
            if not (rows & off[:, c]).any():
                bundles[b].append(c)
                rows |= off[:, c]
                expected[c] = b
                break
        else:
            expected[c] = len(bundles)
            bundles.append([c])
            occupied.append(off[:, c].copy())
    np.testing.assert_array_equal(bundle_of, expected)
    assert n_bundles == len(bundles)
    for members in bundles:
        np.testing.assert_array_equal(code_of[members], np.arange(len(members)))
    # at most max_members per bundle
    capped = _core.gbdt_bundle_exclusive(Xb, cand, 2)[0]
    assert np.bincount(capped[capped >= 0]).max() <= 2


def test_no_bundles_without_two_valued_columns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    assert _bundles(X)[2] is None


def test_constant_columns_alone_are_left_out():
    """No two-valued columns to bundle, but constant ones: they are dropped, the rest grows as is."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4)).astype(np.float32)
    X = np.column_stack([X[:, :2], np.zeros(600, np.float32), X[:, 2:]])
    y = (X[:, 0] + X[:, 3] > 0).astype(np.int64)
    bundles = _bundles(X)[2]
    assert bundles.n_bundles == 0 and bundles.plain.tolist() == [0, 1, 3, 4]
    kw = {"n_estimators": 10, "max_depth": 3}
    np.testing.assert_array_equal(
        GBDTClassifier(**kw).fit(X, y).predict_proba(X),
        GBDTClassifier(**kw, feature_bundling=False).fit(X, y).predict_proba(X),
    )


GROWTHS = {
    "depthwise": {"max_depth": 5},
    "depthwise_subsample": {"max_depth": 5, "subsample": 0.7},
    "best_first": {"max_leaves": 12, "max_depth": None},
}


@pytest.mark.parametrize("growth", sorted(GROWTHS))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_bundled_fit_predicts_what_the_unbundled_fit_predicts(growth, n_threads):
    X, y, _ = _one_hot_data()
    Xtr, ytr = X[:2400], y[:2400]

    def fit(bundling):
        return GBDTClassifier(
            n_estimators=25,
            random_state=0,
            n_threads=n_threads,
            feature_bundling=bundling,
            **GROWTHS[growth],
        ).fit(Xtr, ytr)

    bundled, plain = fit(True), fit(False)
    # the same split candidates, and ties between equal splits go to the lower original column in
    # both (split_rank): the same trees, so the same predictions on any row
    np.testing.assert_allclose(bundled.predict_proba(X), plain.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        bundled.feature_importances_, plain.feature_importances_, rtol=0, atol=1e-12
    )
    # the trees speak of the original columns only: numeric splits on them
    trees = bundled.trees_to_dataframe()
    splits = trees[trees.feature >= 0]
    assert splits.feature.max() < X.shape[1] and (splits.categorical == 0).all()
    one_hot_splits = splits[splits.feature < 21]
    assert len(one_hot_splits) > 0  # (a test of the mapping only if some split is on a member)


def test_apply_and_leaf_numbering_follow_the_rewritten_trees():
    X, y, _ = _one_hot_data()
    model = GBDTClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    leaves = model.apply(X)
    model._forest._flush()
    a, roots = model._forest.arrays, model._forest.arrays["roots"]
    value = np.stack([a["value"][roots[t] + leaves[:, t]] for t in range(leaves.shape[1])], axis=1)
    np.testing.assert_allclose(value.sum(axis=1) + model.base_margin_, model.decision_function(X))
    for t in range(len(roots)):  # every split's right child follows its left child
        end = roots[t + 1] if t + 1 < len(roots) else len(a["feature"])
        left, right = a["left"][roots[t] : end], a["right"][roots[t] : end]
        np.testing.assert_array_equal(right[left >= 0], left[left >= 0] + 1)


def test_regressor_ranker_and_categorical_columns_with_bundles(tmp_path):
    X, _, logit = _one_hot_data(seed=1)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    frame["city"] = pd.Categorical(np.random.default_rng(1).choice(list("abcdefg"), len(X)))
    params = {"n_estimators": 15, "max_depth": 4, "categorical_split": "partition"}
    reg = GBDTRegressor(**params).fit(frame, logit)
    plain = GBDTRegressor(**params, feature_bundling=False).fit(frame, logit)
    np.testing.assert_allclose(reg.predict(frame), plain.predict(frame), rtol=0, atol=1e-6)
    assert not np.array_equal(reg.predict(frame), np.full(len(frame), reg.predict(frame)[0]))
    path = tmp_path / "bundled.npz"
    reg.save(path)
    np.testing.assert_array_equal(GBDTRegressor.load(path).predict(frame), reg.predict(frame))

    group = np.full(len(X) // 20, 20)
    relevance = np.clip(np.round(logit + 1), 0, 3).astype(np.int64)
    rank = GBDTRanker(n_estimators=10, max_depth=4).fit(X, relevance, group=group)
    rank_plain = GBDTRanker(n_estimators=10, max_depth=4, feature_bundling=False).fit(
        X, relevance, group=group
    )
    np.testing.assert_allclose(rank.predict(X), rank_plain.predict(X), rtol=0, atol=1e-6)


def test_column_sample_grows_on_the_original_columns():
    X, y, _ = _one_hot_data()
    kw = {"n_estimators": 8, "max_depth": 4, "colsample_bytree": 0.5, "random_state": 3}
    a = GBDTClassifier(**kw).fit(X, y)
    b = GBDTClassifier(**kw, feature_bundling=False).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_feature_bundling_must_be_a_bool():
    X, y, _ = _one_hot_data(n=200)
    with pytest.raises(TypeError, match="feature_bundling"):
        GBDTClassifier(feature_bundling="yes").fit(X, y)


def test_tree_fields_are_unchanged_by_the_rewrite():
    """unbundle keeps every field of the tree (and their dtypes)."""
    X, y, _ = _one_hot_data(n=800)
    model = GBDTClassifier(n_estimators=3, max_depth=3).fit(X, y)
    tree = model._forest.tree(0)
    assert set(tree) == set(Tree.FIELDS)
    for name, dtype in zip(Tree.FIELDS, Tree.DTYPES):
        assert tree[name].dtype == dtype
