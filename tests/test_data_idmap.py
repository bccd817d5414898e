"""IdMap: round trips, unknown ids, validation, serialisation."""

import json

import numpy as np
import pandas as pd
import pytest

from recforge.data import IdMap


@pytest.mark.parametrize(
    "ids",
    [
        np.array([30, 10, 20], dtype=np.int32),
        np.array([30, 10, 20], dtype=np.int64),
        np.array([2**63 + 5, 7], dtype=np.uint64),
        np.array(["b", "a", "c"]),
        ["x", "yy", "zzz"],
        pd.Series(["u3", "u1", "u2"], dtype="str"),
        np.arange(5),
    ],
)
def test_round_trip(ids):
    m = IdMap(ids)
    ext = np.asarray(ids if not isinstance(ids, pd.Series) else ids.to_numpy())
    idx = m.index(ext)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.arange(len(ext)))
    np.testing.assert_array_equal(m.to_external(idx), m.ids)
    assert len(m) == len(ext)
    assert list(m.to_external(np.arange(len(m)))) == list(ext)


def test_random_permutation_large():
    rng = np.random.default_rng(0)
    ids = rng.permutation(200_000) * 3 + 11
    m = IdMap(ids)
    q = rng.choice(ids, 1000)
    np.testing.assert_array_equal(ids[m.index(q)], q)


def test_scalar_in_scalar_out():
    m = IdMap([5, 3, 9])
    assert m.index(9) == 2 and type(m.index(9)) is int
    assert m.index(np.int32(3)) == 1
    assert m.to_external(0) == 5 and type(m.to_external(0)) is int
    s = IdMap(["a", "b"])
    assert s.to_external(1) == "b" and type(s.to_external(1)) is str
    assert s.contains("a") is True and s.contains("q") is False


def test_unknown_ids_raise_keyerror_naming_first_and_count():
    m = IdMap([1, 2, 3])
    with pytest.raises(KeyError, match=r"unknown user 99 \(2 of 3 values unknown\)"):
        m.index([99, 1, 100], name="user")
    with pytest.raises(KeyError, match="unknown id 7"):
        m.index(7)
    s = IdMap(["a", "b"])
    with pytest.raises(KeyError, match="unknown item 'z'"):
        s.index(["a", "z"], name="item")


def test_unknown_type_mismatch():
    assert not IdMap([1, 2]).contains("1")
    assert not IdMap(["1", "2"]).contains(1)
    with pytest.raises(KeyError):
        IdMap([1, 2]).index(["1"])
    with pytest.raises(KeyError, match=r"unknown id 1.5"):
        IdMap([1, 2]).index([1.5])
    with pytest.raises(KeyError):
        IdMap(np.arange(4)).index([-1])


def test_float_lookup_of_int_ids():
    m = IdMap(np.array([10, 20], dtype=np.int32))
    np.testing.assert_array_equal(m.index(np.array([20.0, 10.0])), [1, 0])


def test_contains():
    m = IdMap(["a", "b", "c"])
    np.testing.assert_array_equal(m.contains(["c", "x", "a"]), [True, False, True])
    assert m.contains(np.array([], dtype=str)).shape == (0,)


def test_invalid_ids():
    with pytest.raises(ValueError, match="unique"):
        IdMap([1, 2, 1])
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "a"])
    with pytest.raises(ValueError, match="missing"):
        IdMap([1.0, np.nan])
    with pytest.raises(ValueError, match="missing"):
        IdMap(["a", None])
    with pytest.raises(TypeError, match="must all be integers or all be strings"):
        IdMap([1, "a"])
    with pytest.raises(TypeError):
        IdMap([1.5, 2.0])
    with pytest.raises(TypeError):
        IdMap(np.array([True, False]))
    with pytest.raises(ValueError, match="1-D"):
        IdMap(np.zeros((2, 2), dtype=int))


def test_integral_floats_become_int64():
    m = IdMap([3.0, 1.0])
    assert m.ids.dtype == np.int64 and m.kind == "i"


def test_ids_read_only_and_not_shared():
    ids = np.array([4, 2, 8])
    m = IdMap(ids)
    assert not np.shares_memory(ids, m.ids)
    with pytest.raises(ValueError):
        m.ids[0] = 1
    ids[0] = 100
    assert m.ids[0] == 4


def test_to_external_out_of_range():
    m = IdMap([1, 2])
    with pytest.raises(ValueError, match="idx"):
        m.to_external([2])
    with pytest.raises(ValueError, match="idx"):
        m.to_external([-1])


def test_equality():
    assert IdMap([1, 2, 3]) == IdMap(np.array([1, 2, 3], dtype=np.int32))
    assert IdMap([1, 2, 3]) != IdMap([3, 2, 1])
    assert IdMap([1, 2]) != IdMap(["1", "2"])
    assert IdMap([1, 2]) != IdMap([1, 2, 3])
    assert IdMap([1]).__eq__("x") is NotImplemented


@pytest.mark.parametrize(
    "ids",
    [
        [3, 1, 2],
        ["10", "2", "x"],
        np.array([2**63 + 1, 4], dtype=np.uint64),
        [-5, 7],
    ],
)
def test_json_round_trip_keeps_kind(ids):
    m = IdMap(ids)
    back = IdMap.from_list(json.loads(json.dumps(m.to_list())))
    assert back == m
    assert back.kind == m.kind
    np.testing.assert_array_equal(back.ids, m.ids)


def test_empty_map_round_trip_with_kind():
    m = IdMap(np.array([], dtype=str))
    assert len(m) == 0 and m.kind == "U"
    assert IdMap.from_list(m.to_list(), kind=m.kind).kind == "U"
    assert IdMap.from_list([]).kind == "i"
    with pytest.raises(ValueError, match="kind"):
        IdMap.from_list([1], kind="f")
    with pytest.raises(KeyError):
        IdMap.from_list([]).index([0])


def test_repr_and_pickle():
    import pickle

    m = IdMap(["a", "b", "c", "d", "e"])
    assert "n=5" in repr(m)
    assert pickle.loads(pickle.dumps(m)) == m


def test_mixed_ids_with_an_int_beyond_the_dtype_are_unknown():
    """A mixed list holding an int outside int64 (found by the fuzz harness: OverflowError)."""
    m = IdMap(np.array([10, 14, 20]))
    assert m.contains(np.array(["b", 14, 2**63], dtype=object)).tolist() == [False, True, False]


@pytest.mark.parametrize(
    "ids",
    [[0, 1, 2, 3], [5, -1, 9, 2**62, -(2**63)], [], [7], list(range(0, 40, 3))],
    ids=["range", "sorted-extremes", "empty", "one", "strided"],
)
def test_contains_of_one_int_matches_the_vector_lookup(ids):
    """contains(scalar int) takes a bisection path of its own; it answers as the array lookup."""
    idmap = IdMap(np.array(ids, dtype=np.int64))
    probes = [-1, 0, 1, 3, 4, 5, 7, 9, 39, 2**62, 2**63, -(2**63), -(2**63) - 1]
    probes += [np.int32(9), np.int64(-1), np.uint64(2**63 + 5), np.uint8(3), True, False]
    for value in probes:
        expected = bool(idmap.contains(np.array([value], dtype=object))[0])
        assert idmap.contains(value) is expected, value
