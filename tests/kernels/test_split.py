"""GBDT best-split kernel vs exhaustive search (recforge._reference.gbdt.best_split)."""

import numpy as np
import pytest

from recforge._reference import gbdt as ref
from recforge.kernels import gbdt as kern


def _random_hist(rng, n_features, n_bins, missing=True, n_rows=400):
    """A consistent histogram (every feature sums to the same totals): built from random rows."""
    Xb = np.stack([rng.integers(0, nb, size=n_rows) for nb in n_bins], axis=1).astype(np.uint8)
    if missing:
        Xb[rng.random(Xb.shape) < 0.1] = 255
    gh = np.column_stack(
        [rng.normal(size=n_rows) + rng.normal(), rng.uniform(0.05, 1.0, size=n_rows)]
    )
    hist = np.zeros((n_features, 256, 2))
    for f in range(n_features):
        np.add.at(hist[f], Xb[:, f], gh)
    return hist


@pytest.mark.parametrize("seed", range(12))
def test_best_split_matches_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    n_features = int(rng.integers(1, 6))
    n_bins = rng.integers(2, 40, size=n_features).astype(np.int32)
    is_cat = (rng.random(n_features) < 0.3).astype(np.uint8)
    hist = _random_hist(rng, n_features, n_bins)
    params = {
        "reg_lambda": float(rng.choice([0.0, 1.0, 5.0])),
        "gamma": float(rng.choice([0.0, 1.0, 50.0])),
        "min_child_weight": float(rng.choice([0.0, 1.0, 10.0])),
    }
    mask = (rng.random(n_features) < 0.8) if seed % 3 == 0 else None
    sum_g, sum_h = hist[0].sum(axis=0)
    feature, threshold, dleft, chg, lg, lh, _ = kern.find_splits(
        hist[None], [sum_g], [sum_h], n_bins, is_cat, feature_mask=mask, n_threads=2, **params
    )
    exp = ref.best_split(hist, sum_g, sum_h, n_bins, is_cat, feature_mask=mask, **params)
    assert feature[0] == exp[0]
    if exp[0] >= 0:
        assert (threshold[0], bool(dleft[0])) == (exp[1], exp[2])
        assert chg[0] == pytest.approx(exp[3], rel=1e-9)
        f, t = exp[0], exp[1]
        left = hist[f, [t]].sum(axis=0) if is_cat[f] else hist[f, : t + 1].sum(axis=0)
        if exp[2]:
            left = left + hist[f, 255]
        assert (lg[0], lh[0]) == pytest.approx(tuple(left), rel=1e-9, abs=1e-9)


def test_gain_formula_by_hand():
    # one feature, two bins: G_L = -4, H_L = 2, G_R = 6, H_R = 3, λ = 1
    hist = np.zeros((1, 1, 256, 2))
    hist[0, 0, 0] = [-4.0, 2.0]
    hist[0, 0, 1] = [6.0, 3.0]
    out = kern.find_splits(
        hist, [2.0], [5.0], np.array([2], np.int32), np.array([0], np.uint8), reg_lambda=1.0
    )
    expected = 16 / 3 + 36 / 4 - 4 / 6
    assert out[0][0] == 0 and out[1][0] == 0 and out[3][0] == pytest.approx(expected)
    # gamma above the loss reduction: no split
    out = kern.find_splits(
        hist, [2.0], [5.0], np.array([2], np.int32), np.array([0], np.uint8), gamma=expected + 1
    )
    assert out[0][0] == -1
    # min_child_weight above a child's hessian: no split
    out = kern.find_splits(
        hist, [2.0], [5.0], np.array([2], np.int32), np.array([0], np.uint8), min_child_weight=2.5
    )
    assert out[0][0] == -1
    assert ref.leaf_value(2.0, 5.0, reg_lambda=1.0, learning_rate=0.5) == pytest.approx(
        -2.0 / 6 * 0.5
    )


def test_find_splits_identical_for_any_n_threads():
    rng = np.random.default_rng(3)
    n_bins = np.full(30, 100, np.int32)
    hists = np.stack([_random_hist(rng, 30, n_bins) for _ in range(5)])
    sums = hists[:, 0].sum(axis=1)
    args = (hists, sums[:, 0], sums[:, 1], n_bins, np.zeros(30, np.uint8))
    one = kern.find_splits(*args, n_threads=1)
    for n_threads in (2, 4):
        for a, b in zip(one, kern.find_splits(*args, n_threads=n_threads)):
            np.testing.assert_array_equal(a, b)
