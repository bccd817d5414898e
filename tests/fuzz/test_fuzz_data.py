"""Fuzzing the data layer: Interactions constructors, splits, the MovieLens and Adult loaders."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from recforge.data import Interactions, leave_last_k_split, random_split, temporal_split
from recforge.datasets import load_adult, load_movielens
from tests.fuzz._harness import attempt, check
from tests.fuzz.strategies import floats, id_arrays, interaction_matrices, valid_interactions


def _check_interactions(data, n_entries=None):
    m = data.matrix
    check(
        m.shape == (data.n_users, data.n_items),
        f"matrix {m.shape} vs maps ({data.n_users}, {data.n_items})",
    )
    check(
        len(data.user_map) == data.n_users and len(data.item_map) == data.n_items,
        "id maps disagree with shape",
    )
    check(
        np.isfinite(m.data).all() and (m.data >= 0).all(), "non-finite or negative weights stored"
    )
    if n_entries is not None:
        check(m.nnz <= n_entries, f"{m.nnz} entries from {n_entries} inputs")


@given(interaction_matrices())
def test_interactions_from_a_matrix(matrix):
    data, _ = attempt(Interactions, matrix)
    if data is not None:
        _check_interactions(data)


@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(
            id_arrays(n),
            id_arrays(n),
            st.one_of(st.none(), st.lists(floats, min_size=n, max_size=n)),
            st.one_of(st.none(), st.lists(floats, min_size=n, max_size=n)),
        )
    ),
    st.sampled_from(["raise", "sum", "last", "max"]),
)
def test_interactions_from_arrays(arrays, duplicates):
    users, items, weights, timestamps = arrays
    data, _ = attempt(
        Interactions.from_arrays, users, items, weights, timestamps, duplicates=duplicates
    )
    if data is not None:
        _check_interactions(data, len(users))
        user_set = {u for u in np.asarray(users, dtype=object).tolist()}
        check(len(data.user_map) <= len(user_set), "more users than distinct user ids")


@given(
    st.integers(0, 10).flatmap(
        lambda n: st.tuples(id_arrays(n), id_arrays(n), st.lists(floats, min_size=n, max_size=n))
    )
)
def test_interactions_from_dataframe(columns):
    users, items, weights = columns
    df = pd.DataFrame({"user": list(users), "item": list(items), "w": weights})
    data, _ = attempt(
        Interactions.from_dataframe,
        df,
        user_col="user",
        item_col="item",
        weight_col="w",
        duplicates="sum",
    )
    if data is not None:
        _check_interactions(data, len(df))


@given(
    valid_interactions(),
    st.sampled_from(["temporal", "random", "leave_last"]),
    st.one_of(st.floats(-1, 2), st.sampled_from([0.0, 1.0, np.nan])),
    st.integers(-1, 6),
)
def test_splits(data, kind, fraction, min_interactions):
    if kind == "temporal":
        result, _ = attempt(
            temporal_split, data, test_fraction=fraction, min_interactions=min_interactions
        )
    elif kind == "random":
        result, _ = attempt(
            random_split,
            data,
            test_fraction=fraction,
            min_interactions=min_interactions,
            random_state=0,
        )
    else:
        result, _ = attempt(
            leave_last_k_split, data, k=max(min_interactions, 0), min_interactions=2
        )
    if result is not None:
        train, test = result
        check(
            train.matrix.shape == test.matrix.shape == data.matrix.shape, "split changed the shape"
        )
        check(
            train.matrix.nnz + test.matrix.nnz == data.matrix.nnz, "split lost or invented entries"
        )
        check((train.matrix.multiply(test.matrix)).nnz == 0, "an entry is in train and in test")


# ---- loaders on generated files ------------------------------------------------------------
_FIELD = st.one_of(
    st.integers(-3, 10**6).map(str),
    st.sampled_from(["", "x", "nan", "inf", "1e400", "9" * 30, "4.5", " 7 ", "\u00e9"]),
)


@st.composite
def movielens_files(draw):
    flavour = draw(st.sampled_from(["u.data", "ratings.dat", "ratings.csv"]))
    sep = {"u.data": "\t", "ratings.dat": "::", "ratings.csv": ","}[flavour]
    n_fields = draw(st.sampled_from([4, 4, 4, 3, 5]))
    rows = draw(
        st.lists(st.lists(_FIELD, min_size=n_fields, max_size=n_fields), min_size=0, max_size=6)
    )
    good = [[str(u), str(i), "4", "881250949"] for u, i in ((1, 10), (2, 10), (2, 11))]
    lines = [sep.join(r) for r in good + rows]
    if flavour == "ratings.csv" and draw(st.booleans()):
        lines.insert(0, "userId,movieId,rating,timestamp")
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending, sep + ending]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return flavour, text.encode("utf-8")


@given(movielens_files())
def test_load_movielens(tmp_path_factory, file):
    name, payload = file
    path = tmp_path_factory.mktemp("ml") / name
    path.write_bytes(payload)
    ml, _ = attempt(load_movielens, path)
    if ml is not None:
        r = ml.ratings
        check(
            list(r.columns) == ["userId", "movieId", "rating", "timestamp"],
            f"columns {list(r.columns)}",
        )
        check(np.isfinite(r["rating"].to_numpy(np.float64)).all(), "non-finite ratings loaded")


_ADULT_ROW = [
    "39",
    "State-gov",
    "77516",
    "Bachelors",
    "13",
    "Never-married",
    "Adm-clerical",
    "Not-in-family",
    "White",
    "Male",
    "2174",
    "0",
    "40",
    "United-States",
    "<=50K",
]


@st.composite
def adult_files(draw):
    rows = [list(_ADULT_ROW), list(_ADULT_ROW)]
    for _ in range(draw(st.integers(0, 4))):
        row = list(_ADULT_ROW)
        for _ in range(draw(st.integers(1, 3))):
            row[draw(st.integers(0, len(row) - 1))] = draw(
                st.one_of(_FIELD, st.sampled_from(["?", ">50K.", "x"]))
            )
        if draw(st.booleans()):
            row = row[: draw(st.integers(0, len(row)))]
        rows.append(row)
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(", ".join(r) for r in rows) + ending
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode("utf-8")


@given(adult_files())
def test_load_adult(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("adult") / "adult.data"
    path.write_bytes(payload)
    df, _ = attempt(load_adult, path)
    if df is not None:
        numeric = df.select_dtypes("number")
        check(
            np.isfinite(numeric.to_numpy(np.float64)[~numeric.isna().to_numpy()]).all(),
            "non-finite number",
        )
        check(
            not (numeric.to_numpy() == np.iinfo(np.int64).min).any(),
            "int64 minimum from an overflow",
        )


def test_csr_with_int64_indices_is_accepted():
    m = sp.csr_matrix(np.eye(3, dtype=np.float32))
    m.indices, m.indptr = m.indices.astype(np.int64), m.indptr.astype(np.int64)
    data, error = attempt(Interactions, m)
    assert error is None and data.matrix.nnz == 3
