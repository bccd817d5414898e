"""synthetic_interactions and synthetic_ctr."""

import tracemalloc

import numpy as np
import pytest

from recforge.data import synthetic_ctr, synthetic_interactions


def _top_share(counts, fraction=0.01):
    top = max(1, int(len(counts) * fraction))
    return float(np.sort(counts)[::-1][:top].sum() / counts.sum())


def test_sizes_dtypes_and_merged_duplicates():
    x = synthetic_interactions(2_000, 1_000, 50_000, seed=0)
    assert x.shape == (2_000, 1_000)
    m = x.matrix
    assert m.dtype == np.float32 and m.indices.dtype == np.int32 and m.has_canonical_format
    assert 0.7 * 50_000 < x.nnz <= 50_000
    assert float(m.sum()) == 50_000.0  # weights count the merged draws
    assert m.data.min() >= 1.0
    np.testing.assert_array_equal(x.user_map.ids, np.arange(2_000))
    np.testing.assert_array_equal(x.item_map.ids, np.arange(1_000))
    ts = x.timestamps
    assert ts.dtype == np.float64 and ts.shape == (x.nnz,)
    assert np.all(ts == np.floor(ts))
    assert 1_577_836_800 <= ts.min() and ts.max() < 1_577_836_800 + 3 * 365 * 86_400


def test_deterministic_for_a_seed():
    a = synthetic_interactions(500, 300, 10_000, seed=5)
    b = synthetic_interactions(500, 300, 10_000, seed=5)
    c = synthetic_interactions(500, 300, 10_000, seed=6)
    assert (a.matrix != b.matrix).nnz == 0
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert (a.matrix != c.matrix).nnz > 0


def test_power_law_top_one_percent():
    x = synthetic_interactions(20_000, 20_000, 1_000_000, seed=0)
    events = np.bincount(x.matrix.indices, weights=x.matrix.data, minlength=x.n_items)
    assert 0.30 <= _top_share(events) <= 0.50
    assert 0.30 <= _top_share(x.item_popularity()) <= 0.50
    # the head is not simply the lowest item indices
    head = np.argsort(events)[::-1][:200]
    assert head.max() > 10_000


def test_popularity_exponent_controls_concentration():
    flat = synthetic_interactions(5_000, 5_000, 200_000, seed=0, popularity_exponent=0.5)
    steep = synthetic_interactions(5_000, 5_000, 200_000, seed=0, popularity_exponent=1.5)
    assert _top_share(flat.item_popularity()) < _top_share(steep.item_popularity())


def test_no_dense_matrix():
    # a dense float32 50k x 40k matrix would take 8 GB; the generator must stay tiny
    tracemalloc.start()
    try:
        x = synthetic_interactions(50_000, 40_000, 200_000, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.nnz > 190_000
    assert peak < 40 * 2**20


def test_no_timestamps_and_edge_sizes():
    x = synthetic_interactions(10, 5, 100, timestamps=False)
    assert x.timestamps is None
    empty = synthetic_interactions(3, 4, 0)
    assert empty.nnz == 0 and empty.shape == (3, 4) and empty.timestamps.shape == (0,)
    one = synthetic_interactions(1, 1, 7)
    assert one.nnz == 1 and one.matrix.data.tolist() == [7.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 0}, "n_items"),
        ({"n_interactions": -1}, "n_interactions"),
        ({"popularity_exponent": 0.0}, "popularity_exponent"),
        ({"n_users": 1.5}, "n_users"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"n_users": 10, "n_items": 10, "n_interactions": 10}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        synthetic_interactions(
            args.pop("n_users"), args.pop("n_items"), args.pop("n_interactions"), **args
        )


def test_synthetic_ctr_shapes_and_determinism():
    X, y = synthetic_ctr(5_000, 12, seed=1)
    assert X.shape == (5_000, 12) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (5_000,) and y.dtype == np.int8
    assert set(np.unique(y)) == {0, 1}
    assert 0.3 < y.mean() < 0.7
    X2, y2 = synthetic_ctr(5_000, 12, seed=1)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = synthetic_ctr(5_000, 12, seed=2)
    assert not np.array_equal(X, X3)


def test_synthetic_ctr_informative_but_not_separable():
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X_all, y_all = synthetic_ctr(20_000, 20, n_informative=8, seed=0)
    X, y, Xt, yt = X_all[:10_000], y_all[:10_000], X_all[10_000:], y_all[10_000:]
    lr = roc_auc_score(yt, LogisticRegression(max_iter=1000).fit(X, y).predict_proba(Xt)[:, 1])
    gb = roc_auc_score(
        yt, HistGradientBoostingClassifier(max_iter=100).fit(X, y).predict_proba(Xt)[:, 1]
    )
    assert 0.7 < lr < 0.97
    assert lr < gb < 0.99  # the non-linear terms reward trees; label noise caps the AUC


def test_synthetic_ctr_defaults_and_errors():
    X, _ = synthetic_ctr(100, 50)
    assert X.shape == (100, 50)
    X, _ = synthetic_ctr(10, 1)
    assert X.shape == (10, 1)
    with pytest.raises(ValueError, match="n_informative"):
        synthetic_ctr(10, 5, n_informative=6)
    with pytest.raises(ValueError, match="n_rows"):
        synthetic_ctr(0, 5)
