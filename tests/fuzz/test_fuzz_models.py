"""Fuzzing the models: every recall model's fit / recommend / similar_items /
recommend_from_history,
every ranker's fit / predict, FeatureEncoder, on hostile data and arguments."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recforge.features import FeatureEncoder
from recforge.rank import DNN, GBDTLR, GBDTClassifier, GBDTRegressor, LogisticRegression, WideDeep
from recforge.recall import LFM, ContentBased, Item2Vec, ItemCF, PersonalRank, Popularity, UserCF
from tests.fuzz._harness import assert_handled, attempt, check, check_recommendation
from tests.fuzz.strategies import (
    HUGE_INTS,
    float_arrays,
    floats,
    ids,
    interaction_matrices,
    valid_interactions,
)

RECALL = {
    "Popularity": lambda: Popularity(),
    "ItemCF": lambda: ItemCF(n_neighbors=3, n_threads=2),
    "UserCF": lambda: UserCF(n_neighbors=3, n_threads=2),
    "PersonalRank": lambda: PersonalRank(max_iter=50),
    "PersonalRank-cg": lambda: PersonalRank(method="cg", max_iter=50, n_threads=2),
    "LFM": lambda: LFM(n_factors=4, epochs=2, n_threads=1, random_state=0),
    "Item2Vec": lambda: Item2Vec(vector_size=4, epochs=2, n_threads=1, random_state=0),
    "ContentBased": lambda: ContentBased(strategy="similarity"),
}

RANKERS = {
    "LogisticRegression": lambda: LogisticRegression(max_iter=20),
    "LogisticRegression-ftrl": lambda: LogisticRegression(penalty="l1", max_iter=2, random_state=0),
    "GBDTClassifier": lambda: GBDTClassifier(n_estimators=3, max_depth=2, n_threads=1),
    "GBDTRegressor": lambda: GBDTRegressor(n_estimators=3, max_depth=2, n_threads=1),
    "GBDTLR": lambda: GBDTLR(n_estimators=2, max_depth=2, n_threads=1),
    "DNN": lambda: DNN(hidden_units=(4,), epochs=1, batch_size=8, n_threads=1, random_state=0),
    "WideDeep": lambda: WideDeep(
        hidden_units=(4,), epochs=1, batch_size=8, n_threads=1, random_state=0
    ),
}


def _fit(name, data):
    model = RECALL[name]()
    if name == "ContentBased":
        topics = pd.DataFrame(np.eye(data.n_items, 3), index=data.item_map.ids)
        return attempt(model.fit, data, item_features=topics)
    return attempt(model.fit, data)


query_ids = st.one_of(
    ids, st.lists(ids, max_size=4), st.sampled_from([*HUGE_INTS, 2**70, -(2**70)])
)
# huge k (2**31, 2**62) allocate without bound: they run in the worker (test_recall_model_huge_k)
k_values = st.one_of(st.integers(-2, 30), st.sampled_from([0, 2.5, "3", None, True]))


@pytest.mark.parametrize("name", list(RECALL))
@given(
    data=valid_interactions(),
    known=st.lists(st.integers(0, 50), min_size=1, max_size=3),
    unknown=query_ids,
    k=k_values,
    filter_items=st.one_of(st.none(), st.lists(ids, max_size=3)),
)
def test_recall_model(name, data, known, unknown, k, filter_items):
    model, _error = _fit(name, data)
    if model is None:
        return
    users = data.user_map.ids[[i % data.n_users for i in known]]
    items = data.item_map.ids[[i % data.n_items for i in known]]
    catalogue = data.item_map.ids
    for user_ids in (users[0], users, unknown):
        result, _ = attempt(model.recommend, user_ids, k=k, filter_items=filter_items)
        if result is not None:
            check_recommendation(
                *result, k, None if np.ndim(user_ids) == 0 else len(user_ids), catalogue
            )
    for item_ids in (items, items[0], unknown):
        result, _ = attempt(model.similar_items, item_ids, k=k)
        if result is not None:
            check_recommendation(
                *result, k, None if np.ndim(item_ids) == 0 else len(item_ids), catalogue
            )
    for history, weights in (
        (items, None),
        (items, np.linspace(0, 2, len(items))),
        ([], None),
        (unknown, None),
        (items, [np.nan] * len(items)),
    ):
        result, _ = attempt(model.recommend_from_history, history, weights, k=k)
        if result is not None:
            check_recommendation(*result, k, None, catalogue)


@pytest.mark.parametrize("name", list(RECALL))
@given(matrix=interaction_matrices())
def test_recall_model_fit_on_raw_matrices(name, matrix):
    model = RECALL[name]()
    if name == "ContentBased":
        n_items = np.shape(matrix)[1] if np.ndim(matrix) == 2 or hasattr(matrix, "shape") else 0
        result, _ = attempt(
            model.fit, matrix, item_features=(np.arange(n_items), np.eye(n_items, 2))
        )
    else:
        result, _ = attempt(model.fit, matrix)
    if result is not None:
        ids_, scores = attempt(result.recommend, result.user_map_.ids[:1], k=2)[0] or (None, None)
        if ids_ is not None and len(result.user_map_.ids):
            check_recommendation(ids_, scores, 2, 1, result.item_map_.ids)


@st.composite
def tabular(draw):
    """X (dense float of odd dtype, maybe NaN/inf/huge, or a DataFrame with strings) and y."""
    n, d = draw(st.integers(0, 30)), draw(st.integers(0, 4))
    form = draw(st.sampled_from(["clean", "special", "frame", "int"]))
    if form == "int":
        X = draw(float_arrays((n, d), special=False)).astype(np.int64)
    else:
        X = draw(float_arrays((n, d), special=form == "special"))
    if form == "frame":
        X = pd.DataFrame(X, columns=[f"c{j}" for j in range(d)])
        if d:
            X["c0"] = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    y_kind = draw(st.sampled_from(["binary", "binary", "one class", "float", "labels", "nan"]))
    y = {
        "binary": np.arange(n) % 2,
        "one class": np.ones(n, np.int64),
        "float": np.linspace(0, 1, n),
        "labels": np.array(["no", "yes"] * n)[:n],
        "nan": np.where(np.arange(n) % 2, np.nan, 0.0),
    }[y_kind]
    weights = draw(st.one_of(st.none(), st.lists(floats, min_size=n, max_size=n), floats))
    return X, y, weights


@pytest.mark.parametrize("name", list(RANKERS))
@given(train=tabular(), predict_rows=st.integers(0, 3), junk=st.one_of(st.none(), floats))
def test_ranker(name, train, predict_rows, junk):
    X, y, sample_weight = train
    model = RANKERS[name]()
    if name == "GBDTRegressor" and getattr(y, "dtype", None) is not None and y.dtype.kind in "US":
        y = np.arange(len(y), dtype=np.float64)
    fitted, _ = attempt(model.fit, X, y, sample_weight=sample_weight)
    if fitted is None:
        return
    X_new = X.iloc[:predict_rows] if isinstance(X, pd.DataFrame) else X[:predict_rows]
    if junk is not None and not isinstance(X_new, pd.DataFrame) and X_new.size:
        X_new = X_new.astype(np.float64)
        X_new.flat[0] = junk
    predict = fitted.predict_proba if hasattr(fitted, "predict_proba") else fitted.predict
    out, _ = attempt(predict, X_new)
    if out is not None:
        out = np.asarray(out)
        check(out.shape[0] == len(X_new), f"{out.shape[0]} predictions for {len(X_new)} rows")
        check(np.isfinite(out).all(), f"non-finite predictions {out.ravel()[:4]}")


@given(
    train=tabular(),
    n_bins=st.one_of(st.integers(-1, 40), st.sampled_from([2.0, 1000])),
    n_hash_buckets=st.one_of(st.none(), st.integers(-1, 64)),
)
def test_feature_encoder(train, n_bins, n_hash_buckets):
    X, _y, _ = train
    params = {"n_bins": n_bins}
    if n_hash_buckets is not None:
        params.update(
            hash_columns=list(X.columns[:1]) if isinstance(X, pd.DataFrame) else [],
            n_hash_buckets=n_hash_buckets,
        )
    encoder, _ = attempt(lambda: FeatureEncoder(**params).fit(X))
    if encoder is None:
        return
    for transform in (encoder.transform, encoder.transform_dense):
        out, _ = attempt(transform, X)
        if out is not None:
            check(out.shape[0] == len(X), f"{out.shape[0]} rows out of {len(X)}")
            values = (
                out.data
                if hasattr(out, "data") and not isinstance(out, np.ndarray)
                else np.asarray(out)
            )
            finite = (
                np.isfinite(values) | np.isnan(values)
                if transform is encoder.transform_dense
                else np.isfinite(values)
            )
            check(finite.all(), "infinite encoded values")


#: a tiny model asked for a huge answer must answer (or refuse) at once; more is a hang
HUGE_TIMEOUT_S = 30


@pytest.mark.parametrize(
    "name", ["Popularity", "ItemCF", "UserCF", "PersonalRank", "LFM", "Item2Vec", "ContentBased"]
)
@pytest.mark.parametrize("k", [2**31])
def test_recall_model_huge_k(name, k, worker, tmp_path):
    """``k`` far beyond the catalogue: a capped answer or a clear error, no unbounded allocation."""
    path = tmp_path / "X.npz"
    np.savez(path, X=np.eye(4, 5, dtype=np.float32) + np.eye(4, 5, k=1, dtype=np.float32))
    answer = worker.run(
        {"task": "recall_k", "class": name, "X": str(path), "k": k}, timeout=HUGE_TIMEOUT_S
    )
    assert_handled(answer, f"{name} k={k}")


@pytest.mark.parametrize(
    "params",
    [{"n_bins": 2**31}, {"hash_columns": [0], "n_hash_buckets": 2**30}],
    ids=["n_bins", "n_hash_buckets"],
)
def test_feature_encoder_huge_sizes(params, worker, tmp_path):
    path = tmp_path / "X.npz"
    np.savez(path, X=np.arange(12, dtype=np.float64).reshape(6, 2))
    answer = worker.run(
        {"task": "encoder", "params": params, "X": str(path)}, timeout=HUGE_TIMEOUT_S
    )
    assert_handled(answer, f"FeatureEncoder({params})")
