"""The GBDT predict kernel (``tree_predict.hpp``) against a NumPy walk of the same trees.

The kernel walks depth-limited trees in a complete-binary-tree layout over column-major copies of
row blocks (a numeric tree's columns with NaN replaced by -inf / +inf per NaN direction, so it
takes the plain step; NaN-aware / categorical steps otherwise), and keeps the pointer layout for
deep, thin trees. Whatever the path, a row's margin must be the
same float64 sum, in tree order, as this reference: compared with ``assert_array_equal``.
"""

import numpy as np
import pytest

from recforge.kernels import gbdt as kern
from recforge.rank import GBDTClassifier, GBDTRegressor

VALUES = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], np.float32)  # thresholds and data: ties


def _random_tree(rng, n_features, max_depth, p_split, categorical_features, chain=False):
    """Node arrays of one tree (tree-local children, right == left + 1 after the parent)."""
    feature, threshold, left, dl, cat, value = [], [], [], [], [], []
    depth_of = [0]
    i = 0
    feature.append(-1)
    while i < len(depth_of):
        d = depth_of[i]
        if chain:  # only the newest right child splits: depth max_depth, 2 * depth + 1 nodes
            split = d < max_depth and i == len(depth_of) - 1
        else:
            split = d < max_depth and (rng.random() < p_split or d == 0)
        if split:
            f = int(rng.integers(n_features))
            feature[i] = f
            is_cat = f in categorical_features
            threshold.append(np.float32(rng.integers(4)) if is_cat else rng.choice(VALUES))
            left.append(len(depth_of))
            dl.append(int(rng.integers(2)))
            cat.append(int(is_cat))
            value.append(0.0)
            depth_of += [d + 1, d + 1]
            feature += [-1, -1]
        else:
            threshold.append(np.float32(0.0))
            left.append(-1)
            dl.append(0)
            cat.append(0)
            value.append(float(rng.normal()))
        i += 1
    left = np.array(left, np.int32)
    return {
        "feature": np.array(feature, np.int32),
        "threshold": np.array(threshold, np.float32),
        "left": left,
        "right": np.where(left >= 0, left + 1, -1).astype(np.int32),
        "default_left": np.array(dl, np.uint8),
        "categorical": np.array(cat, np.uint8),
        "value": np.array(value, np.float64),
    }


def _forest(trees):
    parts = {k: [] for k in trees[0]}
    roots, offset = [], 0
    for t in trees:
        roots.append(offset)
        for k, v in t.items():
            parts[k].append(
                np.where(v >= 0, v + offset, -1).astype(v.dtype) if k in ("left", "right") else v
            )
        offset += len(t["feature"])
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["roots"] = np.array(roots, np.int64)
    return out


def _reference(X, a, t0, t1, out):
    """leaf(r, t) by a NumPy walk; out[r] + (((0 + v_t0) + v_t0+1) + ...), the kernel's order.
    With ``cat_count``/``cat_codes`` in ``a``: a node with codes sends the rows whose value is one
    of them left (a categorical partition split)."""
    n = len(X)
    count = a.get("cat_count", np.zeros(len(a["feature"]), np.int32))
    begin = np.concatenate([[0], np.cumsum(count)])
    codes = a.get("cat_codes", np.zeros(0, np.float32))
    rows = np.arange(n)
    leaves = np.zeros((n, t1 - t0), np.int32)
    acc = np.zeros(n)
    for t in range(t0, t1):
        node = np.full(n, a["roots"][t])
        while True:
            inner = a["left"][node] >= 0
            if not inner.any():
                break
            nd = node[inner]
            v = X[rows[inner], a["feature"][nd]]
            thr = a["threshold"][nd]
            go_left = np.where(a["categorical"][nd] == 1, v == thr, v < thr)
            in_set = np.array(
                [x in codes[begin[i] : begin[i + 1]] for x, i in zip(v, nd)], dtype=bool
            )
            go_left = np.where(count[nd] > 0, in_set, go_left)
            go_left = np.where(np.isnan(v), a["default_left"][nd] == 1, go_left)
            node[inner] = np.where(go_left, a["left"][nd], a["left"][nd] + 1)
        leaves[:, t - t0] = node - a["roots"][t]
        acc = acc + a["value"][node]
    return out + acc, leaves


def _data(rng, n, n_features, categorical_features, nan=0.05, inf=0.01):
    X = rng.choice(VALUES, size=(n, n_features)) + rng.choice(
        [0.0, 0.25], size=(n, n_features)
    ).astype(np.float32)
    for f in categorical_features:
        X[:, f] = rng.integers(5, size=n)
    X[rng.random(X.shape) < inf] = np.inf
    X[rng.random(X.shape) < inf] = -np.inf
    X[rng.random(X.shape) < nan] = np.nan
    return X.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_rows", [1, 7, 64, 65, 300])
def test_random_forests_equal_the_reference_walk(seed, n_rows):
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 40))
    cats = set(rng.choice(n_features, size=int(rng.integers(0, 3)), replace=False).tolist())
    if seed % 2:
        cats = set()  # numeric forests take the plain / NaN steps
    trees = [
        _random_tree(
            rng,
            n_features,
            max_depth=int(rng.integers(0, 9)) if k % 5 else int(rng.integers(13, 20)),
            p_split=0.8,
            categorical_features=cats,
            chain=k % 5 == 0,  # deep, thin trees: the pointer layout
        )
        for k in range(int(rng.integers(1, 25)))
    ]
    a = _forest(trees)
    nan = 0.0 if seed % 3 == 0 else 0.05  # blocks without any NaN take the plain step
    X = _data(rng, n_rows, n_features, cats, nan=nan, inf=0.0 if seed % 3 == 0 else 0.01)
    T = len(trees)
    for t0, t1 in [(0, T), (T // 3, T), (0, (T + 1) // 2)]:
        base = rng.normal(size=n_rows)
        expected, leaves = _reference(X, a, t0, t1, base)
        for n_threads in (1, 2):
            got = kern.predict_raw(X, a, t0=t0, t1=t1, out=base.copy(), n_threads=n_threads)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(
                kern.apply(X, a, t0=t0, t1=t1, n_threads=n_threads), leaves
            )


@pytest.mark.parametrize("seed", range(4))
def test_infinite_and_nan_thresholds_in_both_nan_directions(seed):
    """A numeric tree is walked by `x < threshold` alone on columns whose NaN is replaced by -inf
    (NaN goes left) or +inf (NaN goes right); a split where that would differ (threshold NaN, or
    -inf with NaN going left) keeps its tree on the NaN-aware step. Shallow trees (every level
    as vectors, 8 and 32 rows at a time) and deeper ones, data with +-inf and NaN."""
    rng = np.random.default_rng(100 + seed)
    n_features = 6
    special = np.array([-np.inf, np.inf, np.nan], np.float32)
    trees = []
    for k in range(30):
        tree = _random_tree(rng, n_features, int(rng.integers(1, 7)), 0.9, set())
        split = np.flatnonzero(tree["left"] >= 0)
        odd = split[rng.random(len(split)) < (0.3 if k % 3 == 0 else 0.0)]
        tree["threshold"][odd] = rng.choice(special, size=len(odd))
        trees.append(tree)
    a = _forest(trees)
    X = _data(rng, 300, n_features, set(), nan=0.1, inf=0.05)
    for n_rows in (1, 8, 31, 32, 64, 300):
        expected, leaves = _reference(X[:n_rows], a, 0, len(trees), np.zeros(n_rows))
        np.testing.assert_array_equal(kern.predict_raw(X[:n_rows], a), expected)
        np.testing.assert_array_equal(kern.apply(X[:n_rows], a), leaves)


def test_big_blocks_with_and_without_nan_over_threads():
    """Many blocks (parallel over rows), some with a NaN and some without, one result."""
    rng = np.random.default_rng(7)
    n_features = 12
    trees = [_random_tree(rng, n_features, 6, 0.9, set()) for _ in range(40)]
    a = _forest(trees)
    X = _data(rng, 5000, n_features, set(), nan=0.0, inf=0.0)
    X[rng.integers(5000, size=30), rng.integers(n_features, size=30)] = np.nan
    expected, leaves = _reference(X, a, 0, 40, np.zeros(5000))
    for n_threads in (1, 2, 3):
        np.testing.assert_array_equal(kern.predict_raw(X, a, n_threads=n_threads), expected)
        np.testing.assert_array_equal(kern.apply(X, a, n_threads=n_threads), leaves)


def test_unused_features_and_a_forest_of_leaves():
    rng = np.random.default_rng(3)
    X = _data(rng, 100, 500, set())
    leaf = {
        "feature": np.array([-1], np.int32),
        "threshold": np.zeros(1, np.float32),
        "left": np.array([-1], np.int32),
        "right": np.array([-1], np.int32),
        "default_left": np.zeros(1, np.uint8),
        "categorical": np.zeros(1, np.uint8),
        "value": np.array([0.25]),
    }
    a = _forest([leaf, leaf])
    np.testing.assert_array_equal(kern.predict_raw(X, a), np.full(100, 0.5))
    np.testing.assert_array_equal(kern.apply(X, a), np.zeros((100, 2), np.int32))
    a = _forest([leaf, _random_tree(rng, 500, 5, 0.9, set()), leaf])  # a few of 500 features used
    expected, leaves = _reference(X, a, 0, 3, np.zeros(100))
    np.testing.assert_array_equal(kern.predict_raw(X, a), expected)
    np.testing.assert_array_equal(kern.apply(X, a), leaves)


KERNEL_ARRAYS = ("feature", "threshold", "left", "right", "default_left", "categorical", "value")


def _model_arrays(model):
    trees = model._forest._trees()  # with the partition splits' codes, if any
    return {k: trees[k] for k in (*KERNEL_ARRAYS, "roots", "cat_count", "cat_codes") if k in trees}


@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 6},
        # best-first: deeper trees, some in the pointer layout
        {"max_depth": None, "max_leaves": 48},
    ],
)
def test_fitted_models_equal_the_reference_walk(params):
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 6))
    X[:, 5] = rng.integers(6, size=n)
    y = X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + (X[:, 5] == 2) + 0.1 * rng.normal(size=n)
    X[rng.random(X.shape) < 0.03] = np.nan
    for cats in (None, [5]):
        model = GBDTRegressor(
            n_estimators=25, learning_rate=0.3, categorical_features=cats, n_threads=2, **params
        ).fit(X, y)
        Xf = X.astype(np.float32)
        a = _model_arrays(model)
        expected, leaves = _reference(Xf, a, 0, len(a["roots"]), np.full(n, model.base_margin_))
        np.testing.assert_array_equal(model.predict(X), expected)
        np.testing.assert_array_equal(model.apply(X), leaves)


def test_classifier_decision_function_is_the_reference_sum():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    model = GBDTClassifier(n_estimators=30, max_depth=6, n_threads=1).fit(X, y)
    a = _model_arrays(model)
    expected, _ = _reference(X, a, 0, model.best_iteration_ + 1, np.full(2000, model.base_margin_))
    for n_threads in (1, 2):
        model.n_threads = n_threads
        np.testing.assert_array_equal(model.decision_function(X), expected)
