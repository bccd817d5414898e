"""recforge.distributed.pipeline on a local 2-process cluster: equal to the single-machine pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

from recforge.data import Interactions  # noqa: E402
from recforge.distributed.interactions import from_dask_dataframe  # noqa: E402
from recforge.distributed.pipeline import (  # noqa: E402
    build_training_frame,
    candidate_frame,
    fit_two_stage,
)
from recforge.distributed.recommend import batch_recommend  # noqa: E402
from recforge.rank import GBDTClassifier  # noqa: E402
from tests.test_pipeline import small_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


DAY = 86400.0
COLS = {"user_col": "user", "item_col": "item", "weight_col": "rating", "timestamp_col": "ts"}


def _log(n_users=120, n_items=50, seed=0) -> pd.DataFrame:
    """Users drifting through item blocks over 100 days (sequential signal), shuffled rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        times = np.sort(rng.uniform(0, 100 * DAY, rng.integers(6, 18)))
        for j, t in enumerate(times):
            item = int((start + j + rng.integers(0, 3)) % n_items) * 3 + 7
            rows.append((f"u{u}", item, float(rng.integers(1, 6)), t))
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"])
    return df.drop_duplicates(["user", "item"]).sample(frac=1.0, random_state=seed)


@pytest.fixture(scope="module")
def frame():
    return _log()


@pytest.fixture(scope="module")
def local(frame):
    return Interactions.from_dataframe(frame, **COLS)


@pytest.fixture(scope="module")
def data(client, frame):
    return from_dask_dataframe(dd.from_pandas(frame, npartitions=3), client, n_partitions=3, **COLS)


def test_training_frame_equals_single_machine(data, local):
    frame, info = build_training_frame(small_pipeline(), data)
    got = frame.compute()
    want = small_pipeline().training_data(local)
    _assert_frame_equals(got, want, local)
    assert len(info["users"]) == want.summary["users"]
    assert info["label_events"] == want.summary["label_events"]


def _assert_frame_equals(got, want, local):
    assert len(got) == len(want.y) > 0
    np.testing.assert_array_equal(got["user"].to_numpy(), local.user_map.ids[want.users])
    np.testing.assert_array_equal(got["item"].to_numpy(), local.item_map.ids[want.items])
    np.testing.assert_array_equal(got["label"].to_numpy(), want.y)
    for flag in ("validation", "complete", "in_sample"):
        np.testing.assert_array_equal(got[flag].to_numpy(), getattr(want, flag), err_msg=flag)
    np.testing.assert_array_equal(got[want.feature_names].to_numpy(np.float32), want.X)


def test_training_frame_samples_users_and_negatives_as_one_machine(data, local):
    model = small_pipeline(max_train_users=30, negatives_per_user=3)
    got = build_training_frame(model, data)[0].compute()
    want = small_pipeline(max_train_users=30, negatives_per_user=3).training_data(local)
    # the same users, the same negatives, the same held-out users with all their candidates
    _assert_frame_equals(got, want, local)
    assert len(np.unique(want.users)) == 30
    assert want.validation.any() and (~want.validation).any()
    assert not want.in_sample.all()  # the sampling dropped negatives
    kept_neg = got[~got["validation"] & (got["label"] == 0)].groupby("user").size()
    assert kept_neg.max() == 3
    # the held-out users keep every candidate: their rows are complete, and some of them are
    # negatives the sampling did not draw (they serve the validation only)
    held = got[got["validation"]]
    assert held["complete"].all() and not held["in_sample"].all()
    assert not got.loc[~got["validation"], "complete"].all()


def test_fit_and_recommend_equal_single_machine(client, data, local):
    distributed = fit_two_stage(small_pipeline(), data)
    single = small_pipeline().fit(local)
    assert distributed.training_summary_ == pytest.approx(single.training_summary_)
    users = local.user_map.ids
    want_items, want_scores = single.recommend(users, k=5)
    got_items, got_scores = distributed.recommend(users, k=5)
    np.testing.assert_array_equal(got_items, want_items)
    np.testing.assert_array_equal(got_scores, want_scores)
    # batch recommend of the fitted TwoStage over partitions: the rows of single-machine recommend
    rows = batch_recommend(distributed, client, users, k=5, n_partitions=3).compute()
    np.testing.assert_array_equal(rows["user"].to_numpy(), np.repeat(users, 5))
    np.testing.assert_array_equal(rows["item"].to_numpy(), want_items.reshape(-1))
    np.testing.assert_array_equal(rows["score"].to_numpy(), want_scores.reshape(-1))
    # the serving-time candidates and features per partition equal model.features
    cands, X = single.features(users)
    got = candidate_frame(single, client, users, n_partitions=3).compute()
    np.testing.assert_array_equal(got["item"].to_numpy(), local.item_map.ids[cands.items])
    np.testing.assert_array_equal(got[single.feature_names_out_].to_numpy(np.float32), X)


@pytest.mark.parametrize(
    "params",
    [
        {"negatives_per_user": 3},
        {"negatives_per_user": 2, "max_train_users": 40, "validation_fraction": 0.3},
    ],
)
def test_fit_with_sampled_negatives_equals_single_machine(data, local, params):
    # the validation choice (held-out users, complete users) and the final ranker's rows
    # (in_sample) are the single machine's: the same selection and the same recommendations
    rankers = [
        GBDTClassifier(n_estimators=10, max_depth=3, n_threads=1, random_state=0),
        GBDTClassifier(n_estimators=5, max_depth=2, n_threads=1, random_state=0),
    ]
    distributed = fit_two_stage(small_pipeline(ranker=rankers, min_gain=0.0, **params), data)
    single = small_pipeline(ranker=rankers, min_gain=0.0, **params).fit(local)
    assert distributed.training_summary_ == pytest.approx(single.training_summary_)
    assert distributed.selection_ == single.selection_
    # fusion and the sources are scored on every training user with a positive among its
    # candidates (before the sampling), not only on the held-out ones
    assert distributed.selection_["simple_users"] > distributed.selection_["validation_users"]
    users = local.user_map.ids
    want_items, want_scores = single.recommend(users, k=5)
    got_items, got_scores = distributed.recommend(users, k=5)
    np.testing.assert_array_equal(got_items, want_items)
    np.testing.assert_array_equal(got_scores, want_scores)


def test_bad_input(data, local):
    with pytest.raises(TypeError, match="model"):
        build_training_frame(object(), data)
    with pytest.raises(TypeError, match="data"):
        build_training_frame(small_pipeline(), local)
    with pytest.raises(ValueError, match="cut"):
        build_training_frame(small_pipeline(cut="window", label_window=10.0), data)
