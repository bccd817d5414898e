"""The bad inputs named in the foundation issue, in one place, through the public API.

Each gets a clear error naming the argument (or a documented rule), never a crash or silent garbage.
"""

import gzip

import numpy as np
import pandas as pd
import pytest

from recforge.data import Interactions, temporal_split
from recforge.datasets import load_adult, load_movielens
from recforge.evaluate import evaluate_recall
from recforge.recall import Popularity


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "user": [1, 1, 2, 3],
            "item": [10, 11, 10, 12],
            "rating": [4.0, 5.0, 3.0, 1.0],
            "ts": [1, 2, 3, 4],
        }
    )


def _build(df, **kwargs):
    return Interactions.from_dataframe(
        df, user_col="user", item_col="item", weight_col="rating", timestamp_col="ts", **kwargs
    )


def test_nan_rating(frame):
    frame.loc[1, "rating"] = np.nan
    with pytest.raises(ValueError, match=r"rating|weight"):
        _build(frame)


def test_duplicate_pair(frame):
    dup = pd.concat([frame, frame.iloc[[0]]])
    with pytest.raises(ValueError, match="duplicate"):
        _build(dup)
    assert _build(dup, duplicates="last").nnz == 4  # the documented alternatives


def test_unknown_user_id(frame):
    model = Popularity().fit(_build(frame))
    with pytest.raises(KeyError, match="99"):
        model.recommend(99)


@pytest.mark.parametrize("k", [0, -1])
def test_non_positive_k(frame, k):
    model = Popularity().fit(_build(frame))
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.recommend(1, k=k)
    train = _build(frame)
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate_recall(model, train, train, k=k)


def test_user_with_no_items(frame):
    # rule: a known user without training items gets the model's answer for an empty history
    # (popular items here), and evaluate_recall counts such test users as skipped.
    data = _build(frame, user_ids=[1, 2, 3, 4])
    model = Popularity().fit(data)
    ids, scores = model.recommend(4, k=2)
    assert ids.tolist() == [10, 11] and np.isfinite(scores).all()
    test = Interactions.from_dataframe(
        pd.DataFrame({"user": [4, 1], "item": [12, 12], "ts": [9, 9]}),
        user_col="user",
        item_col="item",
        timestamp_col="ts",
        user_ids=[1, 2, 3, 4],
        item_ids=data.item_map.ids,
    )
    report = evaluate_recall(model, data, test, k=2)
    assert report.n_users_skipped == 1 and report.n_users_evaluated == 1


def test_temporal_split_without_timestamps(frame):
    data = Interactions.from_dataframe(frame, user_col="user", item_col="item")
    with pytest.raises(ValueError, match="timestamp"):
        temporal_split(data)


def test_truncated_movielens_file(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4."
    )
    with pytest.raises(ValueError, match=r"ratings.csv"):
        load_movielens(tmp_path)


def test_truncated_adult_file(tmp_path):
    from importlib.resources import files

    raw = gzip.decompress(
        (files("recforge.datasets") / "_data" / "adult" / "adult.data.gz").read_bytes()
    )
    path = tmp_path / "adult.data"
    path.write_bytes(raw[: len(raw) // 2])  # cut in the middle of a row
    with pytest.raises(ValueError, match=r"adult.data"):
        load_adult(path)
