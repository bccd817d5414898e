"""Regression tests for the input defects the fuzzing of issue 16 found (items 3-10, 12, 13, 18-25).

Each reproducer is the fuzzer's input, through the public API. The ones that used to kill the
interpreter run in a subprocess, so a regression fails the test instead of the whole run.
"""

import gzip
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import recforge
from recforge.data import Interactions
from recforge.rank import DNN, LogisticRegression, WideDeep
from recforge.recall import LFM, ContentBased, Item2Vec, ItemCF, Popularity

_BOM = b"\xef\xbb\xbf"


def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh interpreter; fail (never crash the run) if it dies or errs.

    Returns its stdout."""
    env = dict(os.environ)
    under_test = os.path.dirname(os.path.dirname(recforge.__file__))  # src/ or site-packages
    env["PYTHONPATH"] = under_test + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


@pytest.fixture
def dense_xy():
    rng = np.random.default_rng(0)
    return rng.random((50, 4)), np.arange(50) % 2


# -------------------------------------------------------------------------------- item 3
@pytest.mark.parametrize(
    "tamper",
    [
        "X.indptr[1] = 10**6",
        "X.indptr[1:3] = X.indptr[1:3][::-1].copy()",
        "X.indptr[-1] = -74",
        "X.indices[0] = 10**6",
    ],
)
def test_invalid_csr_is_rejected_before_any_kernel_reads_it(tamper):
    out = run_isolated(f"""
        import numpy as np, scipy.sparse as sp
        from recforge.data import Interactions
        from recforge.rank import LogisticRegression
        from recforge.recall import Popularity
        dense = np.random.default_rng(0).random((50, 4))
        y = np.arange(50) % 2
        for fit in (lambda X: LogisticRegression().fit(X, y),
                    lambda X: LogisticRegression(penalty="l1").fit(X, y),
                    lambda X: Interactions(X), lambda X: Popularity().fit(X)):
            X = sp.csr_matrix(dense)
            {tamper}
            try:
                fit(X)
            except ValueError as exc:
                print("ValueError", exc)
            else:
                print("accepted")
    """)
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("ValueError") for line in lines), out
    assert all("indptr" in line or "indices" in line for line in lines)


def test_invalid_csc_and_coo_are_rejected(dense_xy):
    dense, y = dense_xy
    X = sp.csc_matrix(dense)
    X.indptr[2] = 10**6
    with pytest.raises(ValueError, match="X: indptr"):
        LogisticRegression().fit(X, y)
    X = sp.coo_matrix(dense)
    X.row[0] = 10**6
    with pytest.raises(ValueError, match="row"):
        LogisticRegression().fit(X, y)
    X = sp.csr_matrix(dense)
    X.indices[0] = 10**6
    with pytest.raises(ValueError, match="item_features matrix"):
        ContentBased().fit(Interactions(np.eye(50)), item_features=(np.arange(50), X))


def test_valid_sparse_inputs_still_fit(dense_xy):
    dense, y = dense_xy
    ref = LogisticRegression().fit(dense, y).coef_
    for X in (sp.csr_matrix(dense), sp.csc_matrix(dense), sp.coo_matrix(dense)):
        np.testing.assert_allclose(LogisticRegression().fit(X, y).coef_, ref, rtol=1e-6)


# -------------------------------------------------------------------------------- item 4
def test_uint64_item_ids_come_back_unwrapped_with_none_padding():
    ids = np.array([2**64 - 1, 2**63 + 5, 7], dtype=np.uint64)
    model = Popularity().fit(Interactions.from_arrays(np.array([1, 1, 2]), ids))
    got, scores = model.recommend(1, k=5, filter_seen=False)
    assert got.dtype == object
    assert got.tolist() == [7, 2**63 + 5, 2**64 - 1, None, None]
    assert all(v is None or isinstance(v, int) for v in got.tolist())
    assert np.isneginf(scores[3:]).all() and np.isfinite(scores[:3]).all()
    batch, _ = model.recommend([1, 2], k=5)
    assert batch[1].tolist() == [2**63 + 5, 2**64 - 1, None, None, None]
    # int64 ids keep their dtype and the -1 padding
    out = Popularity().fit(Interactions.from_arrays([1, 2], [3, 4])).recommend(1, k=3)[0]
    assert out.dtype == np.int64 and out.tolist() == [4, -1, -1]


# -------------------------------------------------------------------------------- item 5
@pytest.fixture
def popularity():
    data = Interactions.from_arrays(
        np.array([1, 1, 2, 3, 4, 4, 4]), np.array([10, 20, 30, 10, 10, 20, 30])
    )
    return Popularity().fit(data)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: set(v),
        lambda v: dict.fromkeys(v).keys(),
        lambda v: (x for x in v),
        lambda v: list(v),
        lambda v: np.array(v),
        lambda v: pd.Series(v),
        lambda v: tuple(v),
    ],
)
def test_filter_items_and_items_accept_any_iterable(popularity, make):
    ids, _ = popularity.recommend(3, k=3, items=make([20, 30]))
    assert ids.tolist() == [20, 30, -1]
    ids, _ = popularity.recommend(3, k=3, filter_items=make([20]))
    assert ids.tolist() == [30, -1, -1]
    ids, _ = popularity.recommend_from_history(make([10]), k=3, filter_items=make([30]))
    assert ids.tolist() == [20, -1, -1]


def test_filter_items_scalars_stay_one_id(popularity):
    for one in (20, np.int64(20), np.array(20), [20]):
        assert popularity.recommend(3, k=3, filter_items=one)[0].tolist() == [30, -1, -1]
    strings = Popularity().fit(Interactions.from_arrays([1, 2], ["ab", "cd"]))
    assert strings.recommend(1, k=2, filter_items="cd")[0].tolist() == [None, None]
    assert strings.recommend(1, k=2, items="cd")[0].tolist() == ["cd", None]


@pytest.mark.parametrize(
    "bad",
    [
        np.array([True, False, True]),
        [True, False, True],
        [[10, 20]],
        [{10}, 20],
        [None, 10],
        [object()],
    ],
)
def test_filter_items_reject_masks_and_non_ids(popularity, bad):
    for kwargs in ({"items": bad}, {"filter_items": bad}):
        name = next(iter(kwargs))
        with pytest.raises(TypeError, match=name):
            popularity.recommend(3, k=3, **kwargs)


# -------------------------------------------------------------------------------- item 6
def test_timezone_aware_timestamps_are_utc_seconds():
    naive = pd.to_datetime([0, 10**9], unit="s")
    aware = pd.Series(naive).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    expected = np.array([0.0, 1e9])
    for ts in (aware, list(aware), aware.to_numpy(), pd.DatetimeIndex(aware)):
        np.testing.assert_array_equal(
            Interactions.from_arrays([1, 2], [1, 2], timestamps=ts).timestamps, expected
        )
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "ts": aware})
    np.testing.assert_array_equal(
        Interactions.from_dataframe(df, timestamp_col="ts").timestamps, expected
    )
    np.testing.assert_array_equal(
        Interactions.from_arrays([1, 2], [1, 2], timestamps=naive).timestamps, expected
    )


# -------------------------------------------------------------------------------- item 7
@pytest.mark.parametrize(
    "weight, match",
    [
        (np.nan, "NaN"),
        (np.inf, "NaN or infinity"),
        (-1, "non-negative"),
        (0, "sums to zero"),
        (1e300, "float32"),
    ],
)
@pytest.mark.parametrize(
    "ranker", [LogisticRegression, lambda: LogisticRegression(penalty="l1"), lambda: DNN(epochs=1)]
)
def test_scalar_sample_weight_is_checked_like_an_array(dense_xy, ranker, weight, match):
    dense, y = dense_xy
    with pytest.raises(
        ValueError, match=f"sample_weight.*{match}|{match}.*sample_weight|sample_weight"
    ):
        ranker().fit(dense, y, sample_weight=weight)


def test_scalar_sample_weight_broadcasts(dense_xy):
    dense, y = dense_xy
    np.testing.assert_allclose(
        LogisticRegression().fit(dense, y, sample_weight=3.0).coef_,
        LogisticRegression().fit(dense, y, sample_weight=np.full(50, 3.0)).coef_,
    )


def test_gbdt_sample_weight_goes_through_the_shared_check(dense_xy):
    from recforge.rank import GBDTClassifier

    dense, y = dense_xy
    for weight in (np.nan, -1.0, 1e300):
        with pytest.raises(ValueError, match="sample_weight"):
            GBDTClassifier(n_estimators=2).fit(dense, y, sample_weight=weight)


# -------------------------------------------------------------------------------- item 10
@pytest.mark.parametrize(
    "ranker",
    [
        LogisticRegression,
        lambda: LogisticRegression(penalty="l1"),
        lambda: DNN(epochs=1),
        lambda: WideDeep(epochs=1),
    ],
)
def test_values_beyond_float32_are_refused(dense_xy, ranker):
    dense, y = dense_xy
    with pytest.raises(ValueError, match="X holds values beyond float32"):
        ranker().fit(dense * 1e39, y)
    with pytest.raises(ValueError, match="sample_weight holds values beyond float32"):
        ranker().fit(dense, y, sample_weight=np.full(50, 1e300))
    model = ranker().fit(dense, y)
    with pytest.raises(ValueError, match="X holds values beyond float32"):
        model.predict_proba(dense * 1e39)


def test_diverging_networks_raise_instead_of_returning_nan(dense_xy):
    dense, y = dense_xy
    for cls in (DNN, WideDeep):
        with pytest.raises(FloatingPointError, match="diverged"):
            cls(epochs=3, optimizer="sgd", learning_rate=1.0).fit(
                dense, y, sample_weight=np.full(50, 1e30)
            )


# -------------------------------------------------------------------------------- item 12
def test_content_based_refuses_features_indexed_by_the_wrong_id_type():
    data = Interactions(np.eye(3))
    features = pd.DataFrame(np.eye(3), index=["0", "1", "2"])
    with pytest.raises(
        ValueError, match=r"item_features matches only 0 of the 3 .*\['0', '1', '2'\]"
    ):
        ContentBased().fit(data, item_features=features)
    with pytest.raises(ValueError, match="item_features matches only 1 of the 3"):
        ContentBased().fit(data, item_features=(np.array([0, 7, 8]), np.eye(3)))
    model = ContentBased().fit(
        data, item_features=(np.array([0, 1, 7]), np.eye(3))
    )  # 2 of 3: enough
    assert model.item_profiles_[2].sum() == 0


# -------------------------------------------------------------------------------- item 13
def test_item_id_minus_one_is_refused_by_recall_fit():
    data = Interactions.from_arrays([1, 2], [-1, 5])
    for model in (Popularity(), ItemCF()):
        with pytest.raises(ValueError, match="item id -1 is the padding"):
            model.fit(data)
    Popularity().fit(
        Interactions.from_arrays([-1, 2], [-2, 5])
    )  # other negative ids, and user -1, are fine


def test_string_ids_ending_with_nul_are_refused():
    with pytest.raises(ValueError, match="NUL"):
        Interactions.from_arrays([1, 2], ["a", "a\0"])
    with pytest.raises(ValueError, match="NUL"):
        Interactions.from_arrays(pd.Series(["u\0", "v"]), [1, 2])
    model = Popularity().fit(Interactions.from_arrays([1, 2], ["a", "b"]))
    assert model.recommend(1, k=2, filter_items=["b\0"])[0].tolist() == [
        "b",
        None,
    ]  # unknown id: ignored
    with pytest.raises(KeyError):
        model.similar_items("a\0")


def test_weights_as_series_are_validated():
    with pytest.raises(TypeError, match="weights must be numeric"):
        Interactions.from_arrays([1, 2], [1, 2], pd.Series([1 + 2j, 3]))
    with pytest.raises(ValueError, match="weights"):
        Interactions.from_arrays([1, 2], [1, 2], pd.Series([1.0, None], dtype="Float64"))
    data = Interactions.from_arrays([1, 2], [1, 2], pd.Series([1, 3], dtype="Int64"))
    assert data.matrix.data.tolist() == [1.0, 3.0]


# -------------------------------------------------------------------------------- item 18
def test_lfm_without_possible_negatives_says_so():
    with pytest.raises(ValueError, match="touched all 5 items"):
        LFM(epochs=2, n_threads=1).fit(Interactions(np.ones((6, 5))))


# -------------------------------------------------------------------------------- item 19
@pytest.mark.parametrize(
    "ranker", [LogisticRegression, lambda: DNN(epochs=1), lambda: WideDeep(epochs=1)]
)
def test_float16_X_is_upcast(dense_xy, ranker):
    dense, y = dense_xy
    half = dense.astype(np.float16)
    model = ranker().fit(half, y)
    np.testing.assert_allclose(
        model.predict_proba(half), model.predict_proba(half.astype(np.float32))
    )
    assert np.isfinite(model.predict_proba(half)).all()


# -------------------------------------------------------------------------------- item 20
def test_huge_n_threads_is_capped(dense_xy):
    from recforge._threads import MAX_THREADS, resolve_n_threads

    dense, y = dense_xy
    assert resolve_n_threads(2**31) == MAX_THREADS == resolve_n_threads(2**70)
    LogisticRegression(n_threads=2**31).fit(dense, y)
    data = Interactions(np.eye(4) + np.eye(4, k=1))
    assert ItemCF(n_threads=2**31).fit(data).recommend(0, k=2)[0].shape == (2,)


# -------------------------------------------------------------------------------- item 21
def test_duplicated_dataframe_columns_are_named(dense_xy):
    dense, y = dense_xy
    df = pd.DataFrame(dense, columns=["a", "a", "b", "c"])
    for ranker in (LogisticRegression(), DNN(epochs=1)):
        with pytest.raises(ValueError, match=r"duplicated column names \['a'\]"):
            ranker.fit(df, y)


def test_interactions_from_a_dataframe_with_duplicated_columns():
    df = pd.DataFrame([[1, 10, 2.0], [2, 20, 3.0]], columns=["user_id", "item_id", "user_id"])
    with pytest.raises(ValueError, match="user_col='user_id' names 2 columns of df"):
        Interactions.from_dataframe(df)
    df.columns = ["user_id", "item_id", "w"]
    assert Interactions.from_dataframe(df, weight_col="w").nnz == 2


# -------------------------------------------------------------------------------- item 22
def test_python_ints_beyond_64_bits(popularity):
    with pytest.raises(KeyError, match=str(2**70)):
        popularity.recommend(2**70)
    with pytest.raises(KeyError, match=str(2**70)):
        popularity.similar_items([10, 2**70])
    assert popularity.recommend(3, k=2, filter_items=[2**70, 20])[0].tolist() == [30, -1]
    with pytest.raises(ValueError, match="users must fit in 64 bits"):
        Interactions.from_arrays([2**70], [1])
    with pytest.raises(ValueError, match="items must fit in 64 bits"):
        Interactions.from_arrays([1], [-(2**70)])
    with pytest.raises(ValueError, match="threshold"):
        Interactions(np.eye(2)).positives(10**400)
    with pytest.raises(ValueError, match="k must be <="):
        popularity.recommend(1, k=2**70)


# -------------------------------------------------------------------------------- item 24
def test_huge_k_is_refused_and_padding_beyond_the_catalogue_is_cheap(popularity):
    with pytest.raises(ValueError, match="k must be <= 65536"):
        popularity.recommend(1, k=2**31)
    with pytest.raises(ValueError, match="k must be <= 65536"):
        popularity.recommend_from_history([10], k=2**31)
    with pytest.raises(ValueError, match="k must be <= 65536"):
        popularity.similar_items(10, k=2**31)
    ids, scores = popularity.recommend([1, 3], k=65536)
    assert ids.shape == (2, 65536) and (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_dnn_batch_size_beyond_the_rows_is_one_batch(dense_xy):
    dense, y = dense_xy
    a = DNN(batch_size=10**9, epochs=2, random_state=0).fit(dense, y).predict_proba(dense)
    b = DNN(batch_size=50, epochs=2, random_state=0).fit(dense, y).predict_proba(dense)
    np.testing.assert_array_equal(a, b)


def test_lfm_fold_in_memory_does_not_grow_with_n_factors_squared():
    data = Interactions(np.eye(6) + np.eye(6, k=1))
    model = LFM(epochs=1, n_factors=10**5, n_threads=1, random_state=0).fit(data)
    ids, scores = model.recommend_from_history([0, 1], k=3)
    assert ids.shape == (3,) and np.isfinite(scores).all()


def test_lfm_fold_in_dual_form_equals_the_normal_equations():
    rng = np.random.default_rng(1)
    data = Interactions(sp.random(30, 40, density=0.2, random_state=1, format="csr") > 0)
    model = LFM(epochs=2, n_factors=16, n_threads=1, random_state=0).fit(data)
    items, weights = np.array([1, 5, 7]), rng.random(3).astype(np.float32)
    q = model.item_factors_[items].astype(np.float64)
    w = weights.astype(np.float64)
    lam = max(model.reg_user, 1e-3) * max(w.sum(), 1.0)
    primal = np.linalg.solve(
        (q * w[:, None]).T @ q + lam * np.eye(16), q.T @ (w * (1.0 - model.item_bias_[items]))
    )
    np.testing.assert_allclose(model._fold_in(items, weights), primal, rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------------------- item 25
def test_date_strings_as_timestamps_say_what_is_expected():
    for ts in (
        ["2020-01-01", "2020-01-02"],
        np.array(["2020-01-01", "2020-01-02"], dtype=object),
        pd.Series(["2020-01-01", "2020-01-02"]),
    ):
        with pytest.raises(
            TypeError, match=r"timestamps must be numbers or datetimes.*pandas.to_datetime"
        ):
            Interactions.from_arrays([1, 2], [1, 2], timestamps=ts)
    # numeric strings keep working
    assert Interactions.from_arrays(
        [1, 2], [1, 2], timestamps=np.array(["5", "6"], dtype=object)
    ).timestamps.tolist() == [5.0, 6.0]


@pytest.mark.parametrize("exponent", [1e6, 1e3, -1e6])
def test_extreme_negative_sampling_exponent_names_the_parameter(exponent):
    data = Interactions(np.eye(6) + np.eye(6, k=1) + np.eye(6, k=2))
    with pytest.raises(ValueError, match=r"neg_exponent=.* is too extreme"):
        LFM(epochs=1, n_threads=1, neg_exponent=exponent).fit(data)
    with pytest.raises(ValueError, match=r"ns_exponent=.* is too extreme"):
        Item2Vec(epochs=1, n_threads=1, ns_exponent=exponent).fit(data)


def test_content_based_duplicated_feature_index():
    with pytest.raises(ValueError, match=r"item_features has duplicated item ids, e.g. \[0\]"):
        ContentBased().fit(
            Interactions(np.eye(3)), item_features=pd.DataFrame(np.eye(3), index=[0, 0, 2])
        )


def test_object_X_with_a_string_names_X(dense_xy):
    dense, y = dense_xy
    X = dense.astype(object)
    X[0, 0] = "hello"
    with pytest.raises(ValueError, match=r"X must hold numbers only.*'hello'"):
        LogisticRegression().fit(X, y)
    X[0, 0] = {"foo": "bar"}  # scikit-learn's check_dtype_object expects numpy's TypeError text
    with pytest.raises(
        TypeError, match=r"X must hold numbers only.*argument must be a string.* number"
    ):
        LogisticRegression().fit(X, y)


# -------------------------------------------------------------------------------- loaders
_ADULT_ROWS = (
    b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, "
    b"Male, "
    b"2174, 0, 40, United-States, <=50K\n"
    b"50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, "
    b"White, "
    b"Male, 0, 0, 13, United-States, >50K\n"
)


def _ratings_dir(tmp_path, name, content: bytes, gz: bool = False):
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(content) if gz else content)
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
def test_bom_on_a_headerless_file_keeps_the_first_row(tmp_path, gz):  # item 8
    from recforge.datasets import load_adult, load_movielens

    ml = load_movielens(
        _ratings_dir(
            tmp_path, "ratings.csv", _BOM + b"1,10,4.0,964982703\n2,10,3.0,964982704\n", gz
        )
    )
    assert ml.ratings["userId"].tolist() == [1, 2]
    f = tmp_path / "adult.data"
    f.write_bytes(_BOM + _ADULT_ROWS)
    assert load_adult(f)["age"].tolist() == [39, 50]


@pytest.mark.parametrize(
    "field, what",
    [
        (b"inf", "not a finite number"),
        (b"-inf", "not a finite number"),
        (b"123456789012345678901234567890", "out of range"),
    ],
)
def test_adult_numeric_field_out_of_range_names_file_line_and_column(
    tmp_path, field, what
):  # item 9
    from recforge.datasets import load_adult

    f = tmp_path / "adult.data"
    f.write_bytes(_ADULT_ROWS.replace(b"83311", field))
    with pytest.raises(ValueError, match=f"adult.data, line 2: column 'fnlwgt': .*{what}"):
        load_adult(f)


@pytest.mark.parametrize(
    "content, line",
    [
        (b"1::10::4::964982703\n2::10::3::964982704::5\n", 2),
        (b"1::10::4::964982703::5\n2::10::3::964982704\n", 1),
    ],
)
def test_ratings_dat_with_an_extra_field_is_refused(tmp_path, content, line):  # item 13
    from recforge.datasets import load_movielens

    with pytest.raises(ValueError, match=f"ratings.dat, line {line}: expected 4 fields"):
        load_movielens(_ratings_dir(tmp_path, "ratings.dat", content))


@pytest.mark.parametrize(
    "name, content",
    [
        ("ratings.csv", b"1,10,4.0,964982703\n2,99999999999999999999999,3.0,964982704\n"),
        ("ratings.dat", b"1::10::4::964982703\n2::99999999999999999999999::3::964982704\n"),
        ("u.data", b"1\t10\t4\t964982703\n2\t-99999999999999999999999\t3\t964982704\n"),
    ],
)
def test_ids_beyond_int64_name_file_and_line(tmp_path, name, content):  # item 23
    from recforge.datasets import load_movielens

    with pytest.raises(
        ValueError, match=f"{name}, line 2: column 'movieId'.*beyond the int64 range"
    ):
        load_movielens(_ratings_dir(tmp_path, name, content))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:10] + b"garbage" * 20,
        lambda b: b"not gzip at all\n",
    ],
)
def test_corrupt_gzip_names_the_file(tmp_path, corrupt):  # item 23
    from recforge.datasets import load_adult, load_movielens

    data = gzip.compress(b"1,10,4.0,964982703\n" * 2000)
    (tmp_path / "ratings.csv.gz").write_bytes(corrupt(data))
    with pytest.raises(ValueError, match=r"ratings.csv.gz: corrupt or truncated gzip file"):
        load_movielens(tmp_path)
    f = tmp_path / "adult.data.gz"
    f.write_bytes(corrupt(gzip.compress(_ADULT_ROWS * 500)))
    with pytest.raises(ValueError, match=r"adult.data.gz: corrupt or truncated gzip file"):
        load_adult(f)


@pytest.mark.parametrize(
    "name, lines",
    [
        (
            "ratings.csv",
            [b"userId,movieId,rating,timestamp", b"1,10,4.0,964982703", b"2,10,3.0,964982704"],
        ),
        ("ratings.csv", [b"1,10,4.0,964982703", b"2,10,3.0,964982704"]),
        ("ratings.dat", [b"1::10::4::964982703", b"2::10::3::964982704"]),
        ("u.data", [b"1\t10\t4\t964982703", b"2\t10\t3\t964982704"]),
    ],
)
@pytest.mark.parametrize("bom", [b"", _BOM])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
@pytest.mark.parametrize("trailing", [False, True])
def test_real_world_ratings_files(tmp_path, name, lines, bom, eol, trailing):  # issue 14
    from recforge.datasets import load_movielens

    sep = {"ratings.csv": b",", "ratings.dat": b"::", "u.data": b"\t"}[name]
    body = bom + b"".join(line + (sep if trailing else b"") + eol for line in lines)
    ratings = load_movielens(_ratings_dir(tmp_path, name, body)).ratings
    assert ratings["userId"].tolist() == [1, 2] and ratings["timestamp"].tolist() == [
        964982703,
        964982704,
    ]
    # truncated and malformed lines are still refused with the file and the line
    bad = body + b"3" + sep + b"10" + eol
    with pytest.raises(ValueError, match=rf"{name}, line {len(lines) + 1}: expected 4 fields"):
        load_movielens(_ratings_dir(tmp_path, name, bad))
    bad = body + b"3" + sep + b"x" + sep + b"4" + sep + b"5" + eol
    with pytest.raises(ValueError, match=rf"{name}, line {len(lines) + 1}: column 'movieId'"):
        load_movielens(_ratings_dir(tmp_path, name, bad))


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_real_world_adult_file(tmp_path, eol):  # issue 14
    from recforge.datasets import load_adult

    f = tmp_path / "adult.data"
    f.write_bytes(_BOM + _ADULT_ROWS.replace(b"\n", b"," + eol))
    df = load_adult(f)
    assert df["age"].tolist() == [39, 50] and df["income"].tolist() == [0, 1]
    f.write_bytes(_ADULT_ROWS + b"25, Private, 226802\n")
    with pytest.raises(ValueError, match=r"adult.data, line 3: expected 15 fields"):
        load_adult(f)


# -------------------------------------------------------------------------------- issue 14
@pytest.mark.data
@pytest.mark.parametrize(
    "make, threshold",
    [
        (lambda **kw: LogisticRegression(C=0.3, **kw), 0.89),
        (lambda **kw: DNN(epochs=4, batch_size=128, random_state=0, n_threads=1, **kw), 0.84),
        (lambda **kw: WideDeep(epochs=4, batch_size=128, random_state=0, n_threads=1, **kw), 0.84),
    ],
)
def test_raw_adult_dataframe_gets_an_automatic_encoder(adult_small, tmp_path, make, threshold):
    from recforge.features import FeatureEncoder
    from recforge.metrics import roc_auc_score

    X_train, y_train, X_test, y_test = adult_small
    auto = make().fit(X_train, y_train)
    assert isinstance(auto.encoder_, FeatureEncoder) and auto.encoder is None
    assert auto.n_features_in_ == X_train.shape[1]
    proba = auto.predict_proba(X_test)[:, 1]
    assert roc_auc_score(y_test, proba) > threshold
    explicit = make(encoder=FeatureEncoder()).fit(
        X_train, y_train
    )  # the explicit path is unchanged
    np.testing.assert_allclose(explicit.predict_proba(X_test)[:, 1], proba, rtol=1e-6, atol=1e-9)
    auto.save(tmp_path / "model.npz")
    loaded = type(auto).load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X_test)[:, 1], proba)
    numeric = X_train[["age", "education_num"]]  # all-numeric input is used as it is, no encoder
    assert not hasattr(make().fit(numeric, y_train), "encoder_")


def test_metrics_check_a_relevant_csr_before_the_kernel_reads_it():  # item 3, "anything else"
    from recforge.metrics import precision_at_k

    relevant = sp.csr_matrix(np.eye(3))
    relevant.indptr[1] = 10**6
    with pytest.raises(ValueError, match="relevant: indptr"):
        precision_at_k(np.array([[0, 1], [1, 2], [2, 0]]), relevant, k=2)
