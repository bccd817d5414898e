"""Misaligned arrays through the public GBDT kernels (``recforge.kernels.gbdt``).

A view into received bytes (a Dask worker's rows) can sit at an address that is not a multiple of
its item size. The binding copies such an input itself (``csrc/bindings/arrays.hpp``: an aligned,
read-only copy), so the Python wrappers make no copy of their own: every kernel must give the same
result on a misaligned view as on an aligned array, and refuse a misaligned array it writes into
(the writes would go to the binding's copy) with a ValueError instead of losing the writes.
"""

import numpy as np
import pytest

from recforge.kernels import gbdt as kern
from recforge.rank import GBDTClassifier


def misaligned(a):
    """A copy of ``a`` (C order) in a view one byte past an aligned address (uint8: ``a`` itself,
    every address is aligned for it)."""
    if a.itemsize == 1:
        return a
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned and view.flags.c_contiguous
    return view


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n, F = 500, 4
    X = rng.standard_normal((n, F)).astype(np.float32)
    X[rng.random((n, F)) < 0.05] = np.nan
    y = (X[:, 0] + rng.standard_normal(n) > 0).astype(np.float64)
    edges = np.sort(rng.standard_normal(F * 6).astype(np.float32).reshape(F, 6), axis=1).ravel()
    offsets = np.arange(0, F * 6 + 1, 6, dtype=np.int64)
    is_cat = np.zeros(F, np.uint8)
    Xb = kern.bin_features(X, edges, offsets, is_cat)
    raw = rng.normal(size=n)
    gh = kern.gradients("binary:logistic", raw, y)
    rows = rng.permutation(n).astype(np.int32)
    starts, ends = np.array([0, 200], np.int64), np.array([200, n], np.int64)
    return {
        "X": X,
        "y": y,
        "edges": edges,
        "offsets": offsets,
        "is_cat": is_cat,
        "Xb": Xb,
        "raw": raw,
        "gh": gh,
        "rows": rows,
        "starts": starts,
        "ends": ends,
    }


def test_binning_histograms_and_splits_read_misaligned_inputs(problem):
    p = problem
    np.testing.assert_array_equal(
        kern.bin_features(misaligned(p["X"]), p["edges"], misaligned(p["offsets"]), p["is_cat"]),
        p["Xb"],
    )
    args = (p["Xb"], p["gh"], p["rows"], p["starts"], p["ends"])
    expected = kern.build_histograms(*args, n_threads=2)
    got = kern.build_histograms(*(misaligned(a) for a in args), n_threads=2)
    np.testing.assert_array_equal(got, expected)
    sums = expected[:, 0].sum(axis=1)  # (n_nodes, 2): every feature's bins add up to the totals
    n_bins = np.full(p["Xb"].shape[1], 7, np.int32)
    split_args = (expected, sums[:, 0].copy(), sums[:, 1].copy(), n_bins, p["is_cat"])
    want = kern.find_splits(*split_args)
    have = kern.find_splits(*(misaligned(a) for a in split_args))
    assert (want.feature >= 0).any()
    for field in want._fields:
        np.testing.assert_array_equal(getattr(have, field), getattr(want, field))


def test_gradients_and_predict_read_misaligned_inputs(problem):
    p = problem
    y32 = p["y"].astype(np.float32)
    np.testing.assert_array_equal(
        kern.gradients("binary:logistic", misaligned(p["raw"]), misaligned(y32)), p["gh"]
    )
    group_ptr = np.array([0, 100, 250, 500], np.int64)
    np.testing.assert_array_equal(
        kern.rank_gradients("rank:pairwise", misaligned(p["raw"]), misaligned(y32), group_ptr),
        kern.rank_gradients("rank:pairwise", p["raw"], y32, group_ptr),
    )
    model = GBDTClassifier(n_estimators=5, max_depth=3).fit(p["X"], p["y"])
    trees = model._forest.arrays
    X = np.ascontiguousarray(p["X"])
    np.testing.assert_array_equal(
        kern.predict_raw(misaligned(X), trees), kern.predict_raw(X, trees)
    )
    np.testing.assert_array_equal(kern.apply(misaligned(X), trees), kern.apply(X, trees))


def test_misaligned_output_arrays_are_refused_not_written_to_a_copy(problem):
    p = problem
    out = misaligned(np.zeros((len(p["raw"]), 2), np.float32))
    with pytest.raises(ValueError, match="writeable"):
        kern.gradients("binary:logistic", p["raw"], p["y"], out=out)
    assert np.all(out == 0.0)
    raw = misaligned(np.zeros(len(p["raw"])))
    with pytest.raises(ValueError, match="writeable"):
        kern.add_leaf_values(p["rows"], p["starts"], p["ends"], np.array([1.0, 2.0]), raw)
    assert np.all(raw == 0.0)
    ghn = misaligned(p["gh"])
    before = ghn.copy()
    with pytest.raises(ValueError, match="writeable"):
        kern.partition_ordered(
            p["Xb"].copy(),
            ghn,
            p["rows"].copy(),
            p["starts"],
            p["ends"],
            np.array([0, 1], np.int32),
            np.array([2, 3], np.int32),
            np.zeros(2, np.uint8),
            p["is_cat"],
        )
    np.testing.assert_array_equal(ghn, before)
