"""The encoder reads a non-numeric column as its distinct values (``Table.read`` / ``Column``):
the result must not depend on how the column is stored (Arrow strings, Python objects, pandas
categories, a NumPy object array), and Wide&Deep's one-pass inputs must equal the separate calls."""

import numpy as np
import pandas as pd
import pytest

from recforge.features import FeatureEncoder


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["a", "b", "c", "?", "", None, "d"], n),
            "level": rng.choice(["1", "2", "3.5", None, "?"], n),  # numbers written as text
            "flag": rng.random(n) > 0.5,
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        }
    )


def _outputs(enc, X):
    T = enc.transform(X)
    codes, numeric = enc.transform_codes_numeric(X, columns=enc.columns_)
    return {
        "data": T.data,
        "indices": T.indices,
        "indptr": T.indptr,
        "dense": enc.transform_dense(X),
        "codes": codes,
        "numeric": numeric,
        "names": enc.feature_names_out_,
    }


def _stored_as(df, how):
    out = df.copy()
    for c in ("city", "level"):
        if how == "arrow":
            out[c] = out[c].astype("str")
        elif how == "object":
            out[c] = out[c].astype(object)
        elif how == "category":
            out[c] = out[c].astype("category")
    return out if how != "array" else out.to_numpy(dtype=object)


@pytest.mark.parametrize("how", ["object", "category", "array"])
def test_outputs_do_not_depend_on_the_storage(how):
    df = _frame()
    kw = {"crosses": [(1, 3)], "n_bins": 4}  # city x flag, by position (arrays have no names)
    ref = FeatureEncoder(**kw).fit(_stored_as(df, "arrow").to_numpy(dtype=object))
    enc = FeatureEncoder(**kw).fit(_stored_as(df, how))
    assert ref.numeric_columns_ == [ref.columns_[j] for j in (0, 2, 4)]  # "level" parses
    assert [enc.columns_.index(c) for c in enc.numeric_columns_] == [0, 2, 4]
    a = _outputs(ref, _stored_as(df, "arrow").to_numpy(dtype=object))
    b = _outputs(enc, _stored_as(df, how))
    for key in ("data", "indices", "indptr", "codes", "numeric"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    np.testing.assert_array_equal(a["dense"], b["dense"])


def test_missing_strings_are_missing_in_every_storage():
    df = _frame()
    for how in ("arrow", "object", "category"):
        X = _stored_as(df, how)
        enc = FeatureEncoder().fit(X)
        codes = enc.transform_codes(X, columns=["city"])[:, 0]
        missing = df["city"].isna().to_numpy() | df["city"].isin(["?", ""]).to_numpy()
        np.testing.assert_array_equal(codes == 0, missing, err_msg=how)
        assert set(enc.categories_["city"]) == {"a", "b", "c", "d"}


def test_a_non_number_in_a_numeric_column_is_named():
    df = _frame()
    df["level"] = df["level"].astype("str")
    df.loc[5, "level"] = "high"
    with pytest.raises(ValueError, match="'level' is numeric but holds a non-number 'high'"):
        FeatureEncoder(numeric=["level"]).fit(df)


def test_codes_numeric_with_sparse_equals_the_separate_calls():
    X = _stored_as(_frame(), "arrow")
    enc = FeatureEncoder(crosses=[("city", "age")]).fit(X)
    codes, numeric, T = enc.transform_codes_numeric(X, columns=["city", "age"], sparse=True)
    np.testing.assert_array_equal(codes, enc.transform_codes(X, columns=["city", "age"]))
    np.testing.assert_array_equal(numeric, enc.transform_numeric(X))
    ref = enc.transform(X)
    assert T.shape == ref.shape and T.dtype == ref.dtype
    assert (T != ref).nnz == 0
