"""temporal_split, leave_last_k_split, random_split."""

import numpy as np
import pytest

from recforge.data import (
    Interactions,
    leave_last_k_split,
    random_split,
    synthetic_interactions,
    temporal_split,
)
from recforge.datasets import movielens_small


def _pairs(x):
    df = x.to_dataframe()
    return set(zip(df["user_id"], df["item_id"]))


def _check_partition(x, train, test):
    assert train.user_map is x.user_map and test.user_map is x.user_map
    assert train.item_map is x.item_map and test.item_map is x.item_map
    assert train.shape == x.shape == test.shape
    assert train.nnz + test.nnz == x.nnz
    assert not (_pairs(train) & _pairs(test))
    assert _pairs(train) | _pairs(test) == _pairs(x)
    assert (train.timestamps is None) == (x.timestamps is None) == (test.timestamps is None)


@pytest.fixture(scope="module")
def toy():
    # user a: 10 entries, times 0..9 on items 0..9 but items 3 and 7 tie at t=20 (the max)
    users, items, ts = [], [], []
    for i in range(10):
        users.append("a")
        items.append(i)
        ts.append(20 if i in (3, 7) else i)
    for i in range(4):  # user b: 4 entries -> train only with min_interactions=5
        users.append("b")
        items.append(i)
        ts.append(i)
    for i in range(15):  # user c: 15 entries -> ceil(15 * 0.2) = 3 exactly
        users.append("c")
        items.append(i)
        ts.append(100 - i)
    return Interactions.from_arrays(users, items, np.arange(len(users), dtype=float) + 1, ts)


def test_temporal_split_toy(toy):
    train, test = temporal_split(toy, test_fraction=0.2, min_interactions=5)
    _check_partition(toy, train, test)
    act = dict(zip(toy.user_map.ids, test.user_activity()))
    assert act == {"a": 2, "b": 0, "c": 3}
    t = test.to_dataframe()
    # a: items 3 and 7 share the latest time -> they are the last two
    assert sorted(t.loc[t.user_id == "a", "item_id"]) == [3, 7]
    # c: timestamps decrease with the item, so the latest are items 0, 1, 2
    assert sorted(t.loc[t.user_id == "c", "item_id"]) == [0, 1, 2]
    # weights and timestamps travel with their entries
    full = toy.to_dataframe().set_index(["user_id", "item_id"])
    got = t.set_index(["user_id", "item_id"])
    np.testing.assert_array_equal(full.loc[got.index, "weight"], got["weight"])
    np.testing.assert_array_equal(full.loc[got.index, "timestamp"], got["timestamp"])


def test_timestamp_ties_broken_by_item_index():
    # three items at the same time: the one with the LARGEST internal index is "latest"
    x = Interactions.from_arrays(
        ["u"] * 5, [50, 10, 40, 20, 30], timestamps=[1, 1, 1, 0, 0], item_ids=[50, 40, 30, 20, 10]
    )
    _, test = leave_last_k_split(x, k=1, min_interactions=2)
    assert test.to_dataframe()["item_id"].tolist() == [
        10
    ]  # index 4 among the t=1 items (indices 0, 1, 4)
    _, test = leave_last_k_split(x, k=3, min_interactions=2)
    assert sorted(test.to_dataframe()["item_id"]) == [10, 40, 50]


def test_ml_latest_small_anchor_numbers():
    positives = movielens_small().interactions(min_rating=4.0)
    train, test = temporal_split(positives, test_fraction=0.2, min_interactions=5)
    _check_partition(positives, train, test)
    assert int((test.user_activity() > 0).sum()) == 603
    assert int((train.item_popularity() > 0).sum()) == 5289
    assert train.nnz == 38_620
    assert test.nnz == 9_960


def test_temporal_split_deterministic(toy):
    a = temporal_split(toy)
    b = temporal_split(toy)
    for x, y in zip(a, b):
        assert (x.matrix != y.matrix).nnz == 0
        np.testing.assert_array_equal(x.timestamps, y.timestamps)


def test_splits_need_timestamps():
    x = Interactions(np.ones((3, 4)))
    with pytest.raises(ValueError, match="timestamps"):
        temporal_split(x)
    with pytest.raises(ValueError, match="timestamps"):
        leave_last_k_split(x)
    train, test = random_split(x, test_fraction=0.5, min_interactions=1, random_state=0)
    assert test.nnz == 6 and train.timestamps is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"min_interactions": 0}, "min_interactions"),
        ({"min_interactions": 2.5}, "min_interactions"),
    ],
)
def test_invalid_arguments(toy, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        temporal_split(toy, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        random_split(toy, **kwargs)


def test_not_interactions():
    with pytest.raises(TypeError, match="Interactions"):
        temporal_split(np.eye(3))


def test_leave_last_k(toy):
    train, test = leave_last_k_split(toy, k=2, min_interactions=5)
    _check_partition(toy, train, test)
    assert dict(zip(toy.user_map.ids, test.user_activity())) == {"a": 2, "b": 0, "c": 2}
    train, test = leave_last_k_split(toy)  # k=1, min 2
    assert dict(zip(toy.user_map.ids, test.user_activity())) == {"a": 1, "b": 1, "c": 1}
    # k >= n with min_interactions <= k: everything to test
    train, test = leave_last_k_split(toy, k=20, min_interactions=1)
    assert test.nnz == toy.nnz and train.nnz == 0
    with pytest.raises(ValueError, match="k must be"):
        leave_last_k_split(toy, k=0)


def test_random_split_seeds_and_counts(toy):
    a_train, a_test = random_split(toy, test_fraction=0.2, min_interactions=5, random_state=42)
    _, b_test = random_split(toy, test_fraction=0.2, min_interactions=5, random_state=42)
    _check_partition(toy, a_train, a_test)
    assert _pairs(a_test) == _pairs(b_test)
    assert dict(zip(toy.user_map.ids, a_test.user_activity())) == {"a": 2, "b": 0, "c": 3}
    seen = {frozenset(_pairs(random_split(toy, random_state=s)[1])) for s in range(8)}
    assert len(seen) > 1
    gen = random_split(toy, random_state=np.random.default_rng(42))[1]
    assert _pairs(gen) == _pairs(a_test)


def test_splits_on_synthetic_large_path():
    # > 1M entries: exercises the compiled per-user sort
    x = synthetic_interactions(20_000, 5_000, 1_200_000, seed=1)
    train, test = temporal_split(x, test_fraction=0.25, min_interactions=4)
    n = x.user_activity()
    expected = np.where(n >= 4, np.ceil(np.round(n * 0.25, 9)), 0)
    np.testing.assert_array_equal(test.user_activity(), expected)
    # every test timestamp of a user is >= all of that user's train timestamps
    tr_max = np.full(x.n_users, -np.inf)
    rows = np.repeat(np.arange(x.n_users), train.user_activity())
    np.maximum.at(tr_max, rows, train.timestamps)
    te_rows = np.repeat(np.arange(x.n_users), test.user_activity())
    assert np.all(test.timestamps >= tr_max[te_rows])
    r_train, r_test = random_split(x, test_fraction=0.25, min_interactions=4, random_state=0)
    np.testing.assert_array_equal(r_test.user_activity(), expected)
    assert r_train.nnz + r_test.nnz == x.nnz
