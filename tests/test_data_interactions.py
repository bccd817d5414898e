"""Interactions: construction, validation, duplicates, derived views, immutability."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.data import IdMap, Interactions, _segsort


def _frame(user_dtype):
    users = np.array([30, 10, 30, 20, 10], dtype=user_dtype)
    items = np.array([7, 5, 5, 9, 9], dtype=user_dtype)
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "w": [1.0, 2.0, 3.0, 4.0, 5.0],
            "t": [100, 200, 300, 400, 500],
        }
    )


EXPECTED = np.array(
    [
        [2.0, 0.0, 5.0],  # user 10: items 5, 7, 9
        [0.0, 0.0, 4.0],  # user 20
        [3.0, 1.0, 0.0],
    ],  # user 30
    dtype=np.float32,
)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_from_dataframe_int_ids(dtype):
    x = Interactions.from_dataframe(_frame(dtype), weight_col="w", timestamp_col="t")
    assert x.shape == (3, 3) and x.nnz == 5
    np.testing.assert_array_equal(x.matrix.toarray(), EXPECTED)
    np.testing.assert_array_equal(x.user_map.ids, [10, 20, 30])
    np.testing.assert_array_equal(x.item_map.ids, [5, 7, 9])
    # timestamps follow their entries: row-major, item-sorted order
    np.testing.assert_array_equal(x.timestamps, [200, 500, 400, 300, 100])
    assert x.timestamps.dtype == np.float64


@pytest.mark.parametrize("as_str", ["object", "str"])
def test_from_dataframe_string_ids(as_str):
    df = _frame(np.int64)
    df["user_id"] = ("u" + df["user_id"].astype(str)).astype(as_str)
    df["item_id"] = ("i" + df["item_id"].astype(str)).astype(as_str)
    x = Interactions.from_dataframe(df, weight_col="w")
    np.testing.assert_array_equal(x.matrix.toarray(), EXPECTED)
    assert list(x.user_map.ids) == ["u10", "u20", "u30"]
    assert x.timestamps is None


def test_from_arrays_default_weights_and_repr():
    x = Interactions.from_arrays(np.array([1, 2, 2]), np.array(["a", "a", "b"]))
    np.testing.assert_array_equal(x.matrix.data, [1, 1, 1])
    assert repr(x) == "Interactions(n_users=2, n_items=2, nnz=3, timestamps=False)"


def test_matrix_is_canonical_float32_int32_read_only():
    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w")
    m = x.matrix
    assert isinstance(m, sp.csr_matrix)
    assert m.dtype == np.float32 and m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert m.has_canonical_format
    for arr in (m.data, m.indices, m.indptr):
        with pytest.raises(ValueError):
            arr[0] = 0
    with pytest.raises(AttributeError):
        x.matrix = m


def test_given_universe_keeps_order_and_empty_rows():
    x = Interactions.from_arrays(["b", "a"], [2, 1], user_ids=["c", "b", "a"], item_ids=[2, 1, 0])
    assert x.shape == (3, 3)
    np.testing.assert_array_equal(x.user_activity(), [0, 1, 1])
    np.testing.assert_array_equal(x.matrix.toarray(), [[0, 0, 0], [1, 0, 0], [0, 1, 0]])


def test_ids_outside_universe_raise_keyerror():
    with pytest.raises(KeyError, match="unknown user 'z'"):
        Interactions.from_arrays(["a", "z", "y"], [1, 1, 1], user_ids=["a", "b"])
    with pytest.raises(KeyError, match="unknown item 5"):
        Interactions.from_arrays([1], [5], item_ids=IdMap([1, 2]))


# ---------------------------------------------------------------------- duplicates
def _dups(with_ts=True):
    users = ["u1", "u2", "u1", "u1"]
    items = ["i1", "i1", "i1", "i1"]
    weights = [1.0, 7.0, 5.0, 2.0]
    ts = [10, 1, 30, 30] if with_ts else None
    return users, items, weights, ts


def test_duplicates_raise_names_pair_count_and_options():
    users, items, weights, ts = _dups()
    with pytest.raises(
        ValueError, match=r"2 duplicated .*\(user 'u1', item 'i1'\) at position 2.*'sum', 'last'"
    ):
        Interactions.from_arrays(users, items, weights, ts)


@pytest.mark.parametrize(
    "policy, weight, stamp",
    [
        ("sum", 8.0, 30.0),  # weights added, latest timestamp
        ("last", 2.0, 30.0),  # latest by time; the tie at t=30 goes to input order
        ("first", 1.0, 10.0),  # earliest by time
        ("max", 5.0, 30.0),  # largest weight
    ],
)
def test_duplicate_policies(policy, weight, stamp):
    users, items, weights, ts = _dups()
    x = Interactions.from_arrays(users, items, weights, ts, duplicates=policy)
    assert x.nnz == 2
    u1 = x.user_map.index("u1")
    assert x.matrix[u1, 0] == weight
    assert x.timestamps[x.matrix.indptr[u1]] == stamp
    assert x.matrix[x.user_map.index("u2"), 0] == 7.0


@pytest.mark.parametrize(
    "policy, weight", [("sum", 8.0), ("last", 2.0), ("first", 1.0), ("max", 5.0)]
)
def test_duplicate_policies_without_timestamps(policy, weight):
    users, items, weights, _ = _dups(with_ts=False)
    x = Interactions.from_arrays(users, items, weights, duplicates=policy)
    assert x.matrix[x.user_map.index("u1"), 0] == weight
    assert x.timestamps is None


def test_duplicate_policy_last_breaks_time_ties_by_input_order():
    x = Interactions.from_arrays(
        [1, 1, 1], [1, 1, 1], [3.0, 9.0, 4.0], [5, 5, 1], duplicates="last"
    )
    assert x.matrix.data.tolist() == [9.0]


def test_invalid_duplicates_policy():
    with pytest.raises(ValueError, match="duplicates"):
        Interactions.from_arrays([1], [1], duplicates="mean")


def test_sparse_input_with_duplicates_raises():
    coo = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(2, 2))
    with pytest.raises(ValueError, match=r"matrix.*duplicated"):
        Interactions(coo)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(bad):
    with pytest.raises(ValueError, match="weights"):
        Interactions.from_arrays([1, 2], [1, 2], [1.0, bad])
    with pytest.raises(ValueError, match="weights"):
        Interactions(np.array([[1.0, bad]]))


def test_negative_weights():
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Interactions.from_arrays([1, 2], [1, 2], [1.0, -0.5])
    with pytest.raises(ValueError, match="weights"):
        Interactions(sp.csr_matrix(np.array([[0.0, -1.0]])))
    with pytest.raises(ValueError, match="weights"):
        Interactions.from_dataframe(
            pd.DataFrame({"user_id": [1], "item_id": [1], "r": [-1]}), weight_col="r"
        )


def test_weights_overflowing_float32():
    with pytest.raises(ValueError, match="float32"):
        Interactions.from_arrays([1], [1], [1e300])


@pytest.mark.parametrize(
    "users, items, what",
    [
        ([1, None, 3], [1, 2, 3], "users"),
        ([1.0, np.nan], [1, 2], "users"),
        (["a", "b"], ["x", None], "items"),
        (pd.array([1, pd.NA], dtype="Int64"), [1, 2], "users"),
    ],
)
def test_missing_ids(users, items, what):
    with pytest.raises(ValueError, match=f"{what} contain missing"):
        Interactions.from_arrays(users, items)


def test_missing_ids_from_dataframe():
    df = pd.DataFrame({"user_id": ["a", None], "item_id": [1, 2]})
    with pytest.raises(ValueError, match="missing"):
        Interactions.from_dataframe(df)


def test_missing_weights_and_timestamps_in_dataframe():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "w": [1.0, None], "t": [1.0, None]})
    with pytest.raises(ValueError, match="weights"):
        Interactions.from_dataframe(df, weight_col="w")
    with pytest.raises(ValueError, match="timestamps"):
        Interactions.from_dataframe(df, timestamp_col="t")


def test_shape_mismatches():
    with pytest.raises(ValueError, match="same length"):
        Interactions.from_arrays([1, 2], [1])
    with pytest.raises(ValueError, match="weights has 1 entries"):
        Interactions.from_arrays([1, 2], [1, 2], [1.0])
    with pytest.raises(ValueError, match="timestamps has 3 entries"):
        Interactions.from_arrays([1, 2], [1, 2], timestamps=[1, 2, 3])
    with pytest.raises(ValueError, match="user_map"):
        Interactions(sp.eye(3, format="csr"), user_map=[1, 2])
    with pytest.raises(ValueError, match="item_map"):
        Interactions(sp.eye(3, format="csr"), item_map=["a"])
    with pytest.raises(ValueError, match="timestamps"):
        Interactions(sp.eye(3, format="csr"), timestamps=[1.0])
    with pytest.raises(ValueError, match="matrix must be"):
        Interactions(np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        Interactions.from_arrays(np.ones((2, 2)), np.ones((2, 2)))


def test_bad_columns_and_types():
    df = pd.DataFrame({"u": [1], "i": [2]})
    with pytest.raises(ValueError, match="user_col='user_id'"):
        Interactions.from_dataframe(df)
    with pytest.raises(ValueError, match="weight_col='w'"):
        Interactions.from_dataframe(df, user_col="u", item_col="i", weight_col="w")
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        Interactions.from_dataframe({"u": [1]})
    with pytest.raises(TypeError, match="numeric"):
        Interactions(np.array([["a", "b"]], dtype=object))


# ---------------------------------------------------------------------- constructor inputs
def test_constructor_dense_sparse_formats_agree():
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    ref = Interactions(dense).matrix.toarray()
    np.testing.assert_array_equal(ref, dense)
    for fmt in ("csr", "csc", "coo", "lil", "dok"):
        np.testing.assert_array_equal(
            Interactions(sp.csr_matrix(dense).asformat(fmt)).matrix.toarray(), dense
        )
    np.testing.assert_array_equal(Interactions(sp.csr_array(dense)).matrix.toarray(), dense)
    np.testing.assert_array_equal(
        Interactions(sp.csr_matrix(dense.astype(np.int32))).matrix.toarray(), dense
    )


def test_constructor_timestamps_follow_input_order():
    csc = sp.csc_matrix(np.array([[0.0, 2.0], [1.0, 3.0]]))  # data order: (1,0)=1, (0,1)=2, (1,1)=3
    x = Interactions(csc, timestamps=[10.0, 20.0, 30.0])
    # canonical CSR order: (0,1), (1,0), (1,1)
    np.testing.assert_array_equal(x.matrix.data, [2.0, 1.0, 3.0])
    np.testing.assert_array_equal(x.timestamps, [20.0, 10.0, 30.0])


def test_unsorted_csr_input_is_sorted_on_a_copy():
    m = sp.csr_matrix(
        (np.array([5.0, 1.0]), np.array([2, 0], dtype=np.int32), np.array([0, 2], dtype=np.int32)),
        shape=(1, 3),
    )
    before = m.indices.copy()
    x = Interactions(m, timestamps=[50.0, 10.0])
    np.testing.assert_array_equal(x.matrix.indices, [0, 2])
    np.testing.assert_array_equal(x.timestamps, [10.0, 50.0])
    np.testing.assert_array_equal(m.indices, before)


def test_explicit_zeros_kept_dense_zeros_absent():
    x = Interactions.from_arrays([1, 1], [1, 2], [0.0, 1.0])
    assert x.nnz == 2
    m = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert Interactions(m).nnz == 2
    assert Interactions(np.array([[0.0, 1.0]])).nnz == 1
    # an explicit zero survives positives(0) but not positives(> 0)
    assert x.positives(0.0).nnz == 2 and x.positives(0.5).nnz == 1


def test_constructor_default_and_given_maps():
    x = Interactions(sp.eye(2, format="csr"))
    np.testing.assert_array_equal(x.user_map.ids, [0, 1])
    y = Interactions(sp.eye(2, format="csr"), user_map=IdMap(["a", "b"]), item_map=[7, 8])
    assert y.item_map == IdMap([7, 8])
    z = Interactions(y)
    np.testing.assert_array_equal(z.matrix.toarray(), np.eye(2))


# ---------------------------------------------------------------------- no mutation
def test_caller_data_not_mutated_or_shared():
    df = _frame(np.int32)
    snapshot = df.copy(deep=True)
    users, items = df["user_id"].to_numpy(), df["item_id"].to_numpy()
    weights, ts = df["w"].to_numpy(), df["t"].to_numpy()
    x = Interactions.from_dataframe(df, weight_col="w", timestamp_col="t", duplicates="sum")
    pd.testing.assert_frame_equal(df, snapshot)
    y = Interactions.from_arrays(users, items, weights, ts)
    for arr in (users, items, weights, ts):
        for mine in (y.matrix.data, y.matrix.indices, y.timestamps, y.user_map.ids):
            assert not np.shares_memory(arr, mine)
    m = sp.csr_matrix(EXPECTED)
    before = (m.data.copy(), m.indices.copy(), m.indptr.copy())
    z = Interactions(m)
    assert not np.shares_memory(z.matrix.data, m.data)
    assert not np.shares_memory(z.matrix.indices, m.indices)
    for a, b in zip(before, (m.data, m.indices, m.indptr)):
        np.testing.assert_array_equal(a, b)
    assert x.nnz == 5


def test_read_only_inputs_accepted():
    users = np.array([1, 2])
    items = np.array([3, 4])
    w = np.array([1.0, 2.0])
    for a in (users, items, w):
        a.flags.writeable = False
    assert Interactions.from_arrays(users, items, w).nnz == 2


# ---------------------------------------------------------------------- views
def test_positives_keeps_maps_shape_weights_timestamps():
    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w", timestamp_col="t")
    p = x.positives(3.0)
    assert p.user_map is x.user_map and p.item_map is x.item_map and p.shape == x.shape
    df = p.to_dataframe().sort_values("weight")
    assert df["weight"].tolist() == [3.0, 4.0, 5.0]
    assert df["timestamp"].tolist() == [300.0, 400.0, 500.0]
    with pytest.raises(TypeError, match="threshold"):
        x.positives("4")


def test_sequences_order_by_time_then_item_index():
    # item ids listed so that internal index order differs from external-id order
    item_ids = np.array([90, 10, 50, 30, 70])
    x = Interactions.from_arrays(
        ["u"] * 5 + ["v"] * 2,
        [90, 10, 50, 30, 70, 10, 90],
        timestamps=[5, 1, 1, 1, 0, 2, 2],
        item_ids=item_ids,
    )
    offsets, items = x.sequences()
    assert offsets.dtype == np.int64 and items.dtype == np.int32
    np.testing.assert_array_equal(offsets, [0, 5, 7])
    # u: t=0 -> 70 (idx 4); t=1 ties -> idx 1 (10), 2 (50), 3 (30); t=5 -> idx 0 (90)
    np.testing.assert_array_equal(items[:5], [4, 1, 2, 3, 0])
    np.testing.assert_array_equal(items[5:], [0, 1])  # tie at t=2 -> index order


def test_sequences_without_timestamps_by_item_index():
    x = Interactions(np.array([[0, 1, 1], [1, 0, 0]]))
    offsets, items = x.sequences()
    np.testing.assert_array_equal(offsets, [0, 2, 3])
    np.testing.assert_array_equal(items, [1, 2, 0])


def test_large_path_of_row_sort_matches_lexsort(monkeypatch):
    rng = np.random.default_rng(3)
    n_users, n_items = 300, 40
    dense = (rng.random((n_users, n_items)) < 0.3) * 1.0
    m = sp.csr_matrix(dense)
    ts = rng.integers(0, 5, m.nnz).astype(float)  # many ties
    x = Interactions(m, timestamps=ts)
    expected = x.sequences()[1]
    monkeypatch.setattr(_segsort, "SMALL", 0)  # force the compiled per-row sort
    np.testing.assert_array_equal(x.sequences()[1], expected)
    rows = np.repeat(np.arange(n_users), np.diff(x.matrix.indptr))
    np.testing.assert_array_equal(
        _segsort.order_within_rows(x.matrix.indptr, x.timestamps), np.lexsort((x.timestamps, rows))
    )


def test_popularity_and_activity():
    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w")
    pop, act = x.item_popularity(), x.user_activity()
    assert pop.dtype == np.int64 and act.dtype == np.int64
    np.testing.assert_array_equal(pop, [2, 1, 2])
    np.testing.assert_array_equal(act, [2, 1, 2])


def test_user_items():
    x = Interactions(EXPECTED)
    np.testing.assert_array_equal(x.user_items([2, 0]).toarray(), EXPECTED[[2, 0]])
    assert x.user_items(np.int32(1)).shape == (1, 3)
    with pytest.raises(ValueError, match="user_idx"):
        x.user_items([3])
    with pytest.raises(ValueError, match="user_idx"):
        x.user_items([-1])


def test_to_dataframe_round_trip():
    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w", timestamp_col="t")
    df = x.to_dataframe()
    assert list(df.columns) == ["user_id", "item_id", "weight", "timestamp"]
    y = Interactions.from_dataframe(df, weight_col="weight", timestamp_col="timestamp")
    assert y.user_map == x.user_map and y.item_map == x.item_map
    assert (y.matrix != x.matrix).nnz == 0
    np.testing.assert_array_equal(y.timestamps, x.timestamps)


def test_replace_keeps_maps():
    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w", timestamp_col="t")
    m = x.matrix.copy()
    m.data[:] = 1.0
    y = x._replace(matrix=m, timestamps=x.timestamps)
    assert y.user_map is x.user_map and y.item_map is x.item_map
    np.testing.assert_array_equal(y.matrix.data, 1.0)
    with pytest.raises(ValueError, match="timestamps"):
        x._replace(matrix=m)
    assert x._replace(timestamps=None).timestamps is None
    with pytest.raises(ValueError, match="shape"):
        x._replace(matrix=sp.eye(2, format="csr"), timestamps=None)


def test_datetime_timestamps():
    t = pd.to_datetime(["2020-01-01", "2020-01-02"])
    x = Interactions.from_arrays([1, 2], [1, 1], timestamps=t.to_numpy())
    np.testing.assert_array_equal(x.timestamps, [1577836800.0, 1577923200.0])


def test_pickle_round_trip_stays_read_only():
    import pickle

    x = Interactions.from_dataframe(_frame(np.int64), weight_col="w", timestamp_col="t")
    y = pickle.loads(pickle.dumps(x))
    assert (y.matrix != x.matrix).nnz == 0 and y.user_map == x.user_map and y.item_map == x.item_map
    np.testing.assert_array_equal(y.timestamps, x.timestamps)
    assert not y.matrix.data.flags.writeable and not y.timestamps.flags.writeable


def test_dense_list_of_lists_is_a_matrix():
    """A nested list is a dense matrix like the ndarray it converts to (it raised AttributeError)."""
    x = Interactions([[1, 0, 2], [0, 3, 0]])
    expected = Interactions(np.array([[1, 0, 2], [0, 3, 0]]))
    assert x.shape == (2, 3)
    np.testing.assert_array_equal(x.matrix.toarray(), expected.matrix.toarray())


def test_matrix_is_built_once_read_only():
    data = Interactions.from_arrays([0, 0, 1], [2, 0, 1], [1.0, 2.0, 3.0])
    first = data.matrix
    assert data.matrix is first
    assert first.has_canonical_format and first.has_sorted_indices
    for array in (first.data, first.indices, first.indptr):
        assert not array.flags.writeable
    with pytest.raises(ValueError):
        first.data[0] = 5.0
    np.testing.assert_array_equal(first.toarray(), [[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
