"""FeatureEncoder: layout of every output, missing values, unseen categories, crosses, hashing, save/load."""

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.exceptions import ModelFileError, NotFittedError
from recforge.features import FeatureEncoder


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "age": [25, 38, None, 52, 30, 61],
            "city": ["a", "b", "a", "?", None, "c"],
            "flag": [True, False, True, True, False, False],
            "income": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
        }
    )


def dense(m):
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def test_column_kinds_are_inferred(frame):
    enc = FeatureEncoder(n_bins=2).fit(frame)
    assert enc.numeric_columns_ == ["age", "income"]
    assert enc.categorical_columns_ == ["city", "flag"]
    assert enc.categorical_mask_.tolist() == [False, True, True, False]
    assert enc.categories_["city"].tolist() == ["a", "b", "c"]  # "?" and None are missing
    assert enc.cardinalities_["city"] == 5 and enc.n_codes("city") == 5


def test_transform_layout_matches_feature_names(frame):
    enc = FeatureEncoder(n_bins=2).fit(frame)
    X = enc.transform(frame)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32 and X.has_sorted_indices
    names = list(enc.feature_names_out_)
    assert X.shape == (6, len(names)) == (6, enc.n_features_out_)
    row = dict(zip(names, dense(X[2])[0]))
    assert row["age=missing"] == 1 and row["age"] == 0  # missing numeric: own slot, scaled value 0
    assert row["city=a"] == 1 and row["flag=True"] == 1
    row3 = dict(zip(names, dense(X[3])[0]))
    assert row3["city=missing"] == 1  # "?" is missing
    ages = np.array([25, 38, 52, 30, 61], float)
    expected = (52 - ages.mean()) / ages.std()
    assert row3["age"] == pytest.approx(expected, rel=1e-6)
    # every row: one entry per scaled column, bucket block and one-hot block
    per_row = np.diff(X.indptr)
    assert per_row.max() <= 2 + 2 + 2


def test_quantile_buckets():
    x = np.arange(100, dtype=float)[:, None]
    enc = FeatureEncoder(n_bins=4, scale_numeric=False).fit(x)
    np.testing.assert_allclose(enc.bin_edges_["x0"], [24.75, 49.5, 74.25])
    codes = enc.transform_codes(x, columns=["x0"])[:, 0]
    np.testing.assert_array_equal(
        np.bincount(codes), [0, 25, 25, 25, 25]
    )  # 0 = missing slot, empty
    # test-time values outside the fit range go to the end buckets
    assert enc.transform_codes(np.array([[-5.0], [1e9], [np.nan]]), columns=["x0"])[
        :, 0
    ].tolist() == [1, 4, 0]


def test_ties_collapse_edges():
    x = np.array([0] * 90 + list(range(1, 11)), float)[:, None]
    enc = FeatureEncoder(n_bins=20).fit(x)
    edges = enc.bin_edges_["x0"]
    assert np.all(np.diff(edges) > 0) and edges.size < 19


def test_unseen_and_rare_categories_go_to_other(frame):
    enc = FeatureEncoder(min_frequency=2).fit(frame)
    assert enc.categories_["city"].tolist() == ["a"]  # b and c are seen once
    codes = enc.transform_codes(
        pd.DataFrame(
            {
                "age": [1, 2, 3],
                "city": ["a", "zzz", np.nan],
                "flag": [True, True, True],
                "income": [1, 1, 1],
            }
        )
    )
    assert codes[:, 0].tolist() == [2, 1, 0]  # known, other, missing


def test_transform_dense_for_trees(frame):
    enc = FeatureEncoder().fit(frame)
    D = enc.transform_dense(frame)
    assert D.dtype == np.float32 and D.shape == (6, 4) and D.flags.c_contiguous
    assert np.isnan(D[2, 0]) and D[3, 0] == 52
    np.testing.assert_array_equal(D[:, 1], [1, 2, 1, np.nan, np.nan, 3])  # category i -> 1 + i
    unseen = enc.transform_dense(
        pd.DataFrame({"age": [1], "city": ["new"], "flag": [False], "income": [0]})
    )
    assert unseen[0, 1] == 0  # other


def test_transform_numeric_for_dnn(frame):
    enc = FeatureEncoder().fit(frame)
    Z = enc.transform_numeric(frame)
    assert Z.shape == (6, 2) and Z.dtype == np.float32
    assert Z[2, 0] == 0  # missing -> mean
    np.testing.assert_allclose(Z[:, 1].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(Z[:, 1].std(), 1, atol=1e-6)
    raw = enc.transform_numeric(frame, standardize=False)
    assert np.isnan(raw[2, 0]) and raw[0, 0] == 25


def test_transform_codes_numeric_is_the_two_calls_in_one_pass(frame):
    enc = FeatureEncoder().fit(frame)
    for columns in (None, ["age", "city"]):
        codes, numbers = enc.transform_codes_numeric(frame, columns=columns)
        assert codes.dtype == np.int32 and numbers.dtype == np.float32
        np.testing.assert_array_equal(codes, enc.transform_codes(frame, columns=columns))
        np.testing.assert_array_equal(numbers, enc.transform_numeric(frame))
    with pytest.raises(NotFittedError):
        FeatureEncoder().transform_codes_numeric(frame)


def test_crosses(frame):
    enc = FeatureEncoder(n_bins=2, crosses=[("city", "flag")]).fit(frame)
    names = [n for n in enc.feature_names_out_ if n.startswith("city*flag")]
    assert "city*flag=a*True" in names and "city*flag=other" in names
    X = enc.transform(
        pd.DataFrame(
            {"age": [30, 30], "city": ["a", "a"], "flag": [True, False], "income": [1.0, 1.0]}
        )
    )
    col = {n: i for i, n in enumerate(enc.feature_names_out_)}
    assert X[0, col["city*flag=a*True"]] == 1
    assert X[1, col["city*flag=other"]] == 1  # (a, False) never seen in fit


def test_numeric_cross_uses_buckets(frame):
    enc = FeatureEncoder(n_bins=2, crosses=[("age", "flag")]).fit(frame)
    assert any(n.startswith("age*flag=[") for n in enc.feature_names_out_)


def test_hashing_is_stable(frame):
    enc = FeatureEncoder(hash_columns=["city"], n_hash_buckets=8).fit(frame)
    assert enc.hashed_["city"] and enc.cardinalities_["city"] == 10
    codes = enc.transform_codes(frame)[:, 0]
    import zlib

    assert codes[0] == 2 + zlib.crc32(b"a") % 8 and codes[3] == 0
    auto = FeatureEncoder(max_categories=2, n_hash_buckets=8).fit(frame)
    assert auto.hashed_["city"] and not auto.hashed_["flag"]


def test_arrays_and_object_arrays():
    X = np.array([[1, "x"], [2, "y"], ["?", "x"], [4.5, None]], dtype=object)
    enc = FeatureEncoder(n_bins=2).fit(X)
    assert enc.numeric_columns_ == ["x0"] and enc.categorical_columns_ == ["x1"]
    assert enc.transform(X).shape[0] == 4
    with pytest.raises(ValueError, match="fitted on 2"):
        enc.transform(np.ones((3, 3)))


def test_integral_floats_match_integer_categories():
    train = pd.DataFrame({"zip": pd.array([1, 2, 3], dtype="Int64")})
    enc = FeatureEncoder(categorical=["zip"]).fit(train)
    test = pd.DataFrame({"zip": [1.0, np.nan, 3.0]})
    assert enc.transform_codes(test)[:, 0].tolist() == [2, 0, 4]


def test_dataframe_column_order_does_not_matter(frame):
    enc = FeatureEncoder().fit(frame)
    a = enc.transform(frame)
    b = enc.transform(frame[frame.columns[::-1]])
    assert (a != b).nnz == 0


def test_errors(frame):
    with pytest.raises(NotFittedError):
        FeatureEncoder().transform(frame)
    with pytest.raises(ValueError, match="no column 'city'"):
        FeatureEncoder().fit(frame).transform(frame.drop(columns="city"))
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        FeatureEncoder(categorical=["nope"]).fit(frame)
    with pytest.raises(ValueError, match="both"):
        FeatureEncoder(categorical=["age"], numeric=["age"]).fit(frame)
    with pytest.raises(ValueError, match="n_bins"):
        FeatureEncoder(n_bins=-1).fit(frame)
    with pytest.raises(ValueError, match="crosses"):
        FeatureEncoder(crosses=[("age",)]).fit(frame)
    with pytest.raises(ValueError, match="no rows"):
        FeatureEncoder().fit(frame.iloc[:0])
    with pytest.raises(TypeError, match="sparse"):
        FeatureEncoder().fit(sp.csr_matrix(np.eye(3)))
    enc = FeatureEncoder(numeric=["age"]).fit(frame)
    bad = frame.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[0, "age"] = "old"
    with pytest.raises(ValueError, match=r"'age'.*non-number 'old'"):
        enc.transform(bad)
    with pytest.raises(ValueError, match="infinite"):
        FeatureEncoder().fit(np.array([[1.0], [np.inf]]))


def test_does_not_modify_input(frame):
    before = frame.copy()
    FeatureEncoder(crosses=[("city", "age")]).fit(frame).transform(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_save_load_roundtrip(frame, tmp_path):
    enc = FeatureEncoder(
        n_bins=3, crosses=[("city", "age")], hash_columns=["flag"], n_hash_buckets=4
    ).fit(frame)
    enc.save(tmp_path / "enc.npz")
    back = FeatureEncoder.load(tmp_path / "enc.npz")
    assert back.get_params()["hash_columns"] == ["flag"] and back.n_hash_buckets == 4
    assert list(back.feature_names_out_) == list(enc.feature_names_out_)
    assert (back.transform(frame) != enc.transform(frame)).nnz == 0
    np.testing.assert_array_equal(back.transform_dense(frame), enc.transform_dense(frame))
    np.testing.assert_array_equal(back.transform_codes(frame), enc.transform_codes(frame))
    with pytest.raises(ModelFileError):
        FeatureEncoder.load(io.BytesIO(b"not a zip"))


def test_state_embeds_with_prefix(frame):
    enc = FeatureEncoder(crosses=[("city", "flag")]).fit(frame)
    arrays, meta = enc.get_state(prefix="enc.")
    assert all(k.startswith("enc.") for k in arrays)
    back = FeatureEncoder.from_state(arrays, meta, prefix="enc.")
    assert (back.transform(frame) != enc.transform(frame)).nnz == 0


@pytest.mark.data
def test_adult_encoding():
    from recforge.datasets import adult

    data = adult()
    enc = FeatureEncoder(n_bins=20).fit(data.X_train)
    Xtr, Xte = enc.transform(data.X_train), enc.transform(data.X_test)
    assert Xtr.shape[1] == Xte.shape[1] == enc.n_features_out_
    assert enc.numeric_columns_ == [
        "age",
        "fnlwgt",
        "education_num",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
    ]
    # Adult's missing values ("?") sit in workclass, occupation and native_country
    col = {n: i for i, n in enumerate(enc.feature_names_out_)}
    assert Xtr[:, col["occupation=missing"]].sum() == data.X_train["occupation"].isna().sum()
    # the test file has a native_country absent from train ("Holand-Netherlands" is train-only)
    assert Xte.shape[0] == 16_281 and np.all(np.diff(Xte.indptr) == np.diff(Xte.indptr)[0])


def test_pandas_extension_dtypes():
    df = pd.DataFrame(
        {
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "f": pd.array([1.5, None, 2.5, 1.0], dtype="Float64"),
            "c": pd.Categorical(["x", "y", None, "x"]),
            "b": np.array([True, False, True, True]),
            "s": pd.array(["u", None, "v", "u"], dtype="string"),
        }
    )
    enc = FeatureEncoder(n_bins=2).fit(df)
    assert enc.numeric_columns_ == ["n", "f"] and enc.categorical_columns_ == ["c", "b", "s"]
    D = enc.transform_dense(df)
    assert np.isnan(D[1, 0]) and np.isnan(D[1, 1]) and np.isnan(D[2, 2]) and np.isnan(D[1, 4])
    assert enc.transform(df).shape == (4, enc.n_features_out_)
    assert FeatureEncoder().fit(pd.DataFrame(np.eye(3))).columns_ == ["0", "1", "2"]


def test_fused_numeric_path_equals_generic_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3))
    x[rng.random((500, 3)) < 0.1] = np.nan
    enc = FeatureEncoder(n_bins=7).fit(x)
    fused = enc.transform(x)  # float columns: the one-pass kernel
    generic = enc.transform(x.astype(object))  # object columns: parse, then bucket
    assert (fused != generic).nnz == 0
    np.testing.assert_array_equal(fused.indptr, generic.indptr)
    no_scale = FeatureEncoder(n_bins=7, scale_numeric=False).fit(x)
    assert (no_scale.transform(x) != no_scale.transform(x.astype(object))).nnz == 0
    with pytest.raises(ValueError, match="infinite"):
        enc.transform(np.array([[np.inf, 0.0, 0.0]]))


def test_bucket_count_matches_searchsorted():
    from recforge.kernels.encoder import bucketize

    rng = np.random.default_rng(1)
    for m in (0, 1, 5, 64, 65, 300):  # linear count up to 64 edges, binary search above
        edges = np.sort(rng.standard_normal(m))
        x = np.concatenate([rng.standard_normal(1000), edges, [np.nan]])
        out = np.empty(x.size, dtype=np.int64)
        bucketize(x, edges, out)
        expected = 1 + np.searchsorted(edges, x, side="right")
        expected[np.isnan(x)] = 0
        np.testing.assert_array_equal(out, expected)


def test_a_few_rows_encode_as_the_same_rows_of_a_long_frame():
    # frames of a few rows read their text columns as Python objects, longer ones from the
    # column's own storage (Arrow strings, categoricals, nullable dtypes): the same features
    rng = np.random.default_rng(3)
    n = 80
    city = rng.choice(np.array(["a", "b", "c", "?", None], dtype=object), size=n)
    frame = pd.DataFrame(
        {
            "city": pd.array(city, dtype="string"),
            "plain": city.copy(),
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], size=n)),
            "count": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 5, n)), "Int64"),
            "mixed": rng.choice(np.array([1, "1", 2.0, "two", np.nan], dtype=object), size=n),
            "flag": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "age": rng.normal(40, 10, n),
        }
    )
    enc = FeatureEncoder(n_bins=3, crosses=[("city", "kind")]).fit(frame.iloc[::2])
    sparse_rows, dense_rows = enc.transform(frame), enc.transform_dense(frame)
    for i in range(0, n, 3):
        one = frame.iloc[[i]]
        np.testing.assert_array_equal(dense(enc.transform(one)), dense(sparse_rows[i]))
        np.testing.assert_array_equal(enc.transform_dense(one), dense_rows[i : i + 1])
    few = frame.iloc[5:30]
    np.testing.assert_array_equal(dense(enc.transform(few)), dense(sparse_rows[5:30]))
