"""The float64 target vectors that embedding models score with (every partition of a recommend-all
calls ``recommend`` many times): converted once per fitted model, never served stale."""

import io

import numpy as np
import pytest

from recforge.recall import LFM, Item2Vec
from recforge.recall._embedding import rowwise_scores

from .contract import contract_interactions


def _expected(model, user_idx):
    """The scores from the model's current arrays, with no cache involved."""
    queries = model._user_queries(user_idx)
    scores = rowwise_scores(queries, np.array(model._target_vectors(), np.float64, copy=True))
    bias = model._target_bias()
    return scores if bias is None else scores + bias


def test_float64_targets_are_converted_once_and_reused():
    model = LFM(n_factors=4, epochs=2, n_threads=1, random_state=0).fit(contract_interactions())
    users = np.arange(model.n_users_)
    first = model._score_users(users)
    cached = model._targets64_[1]
    assert cached.dtype == np.float64 and cached.shape == model.item_factors_.shape
    np.testing.assert_array_equal(cached, model.item_factors_.astype(np.float64))
    np.testing.assert_array_equal(model._score_users(users), first)
    assert model._targets64_[1] is cached
    np.testing.assert_array_equal(first, _expected(model, users))


def test_refitting_changes_the_scores():
    data = contract_interactions()
    model = LFM(n_factors=4, epochs=2, n_threads=1, random_state=0).fit(data)
    users = model.user_map_.ids
    before = model.recommend(users, k=5, filter_seen=False)
    model.set_params(random_state=1).fit(data)
    after = model.recommend(users, k=5, filter_seen=False)
    fresh = LFM(n_factors=4, epochs=2, n_threads=1, random_state=1).fit(data)
    expected = fresh.recommend(users, k=5, filter_seen=False)
    np.testing.assert_array_equal(after[0], expected[0])
    np.testing.assert_array_equal(after[1], expected[1])
    assert not np.array_equal(before[1], after[1])


def test_training_callback_scores_the_live_vectors():
    """During a refit an LFM callback sees the arrays SGD updates in place: every epoch's scores
    come from that epoch's values, not from a copy of an earlier epoch."""
    data = contract_interactions()
    model = LFM(n_factors=4, epochs=4, n_threads=1, random_state=0).fit(data)
    model._score_users(np.arange(model.n_users_))  # a cached copy of the first fit exists
    users = np.arange(model.n_users_)
    seen = []

    def callback(m, epoch, loss):
        got = m._score_users(users)
        np.testing.assert_array_equal(got, _expected(m, users))
        seen.append(got)

    model.set_params(random_state=1).fit(data, callback=callback)
    assert len(seen) == 4
    assert not np.array_equal(seen[0], seen[-1])


def test_replaced_vectors_are_not_served_from_the_old_copy():
    model = LFM(n_factors=4, epochs=2, n_threads=1, random_state=0).fit(contract_interactions())
    users = np.arange(model.n_users_)
    model._score_users(users)
    model.item_factors_ = model.item_factors_ * 2.0
    np.testing.assert_array_equal(model._score_users(users), _expected(model, users))


def test_load_scores_like_the_saved_model():
    model = LFM(n_factors=4, epochs=2, n_threads=1, random_state=0).fit(contract_interactions())
    users = model.user_map_.ids
    expected = model.recommend(users, k=5)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = LFM.load(buffer)
    assert loaded._targets64_ is None
    got = loaded.recommend(users, k=5)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("scoring", ["cosine", "output"])
def test_item2vec_scores_with_the_cached_targets(scoring):
    data = contract_interactions()
    model = Item2Vec(vector_size=8, epochs=2, scoring=scoring, n_threads=1, random_state=0)
    model.fit(data)
    users = np.arange(model.n_users_)
    first = model._score_users(users)
    np.testing.assert_array_equal(first, _expected(model, users))
    np.testing.assert_array_equal(model._score_users(users), first)
    assert model._targets64_[0] is model._target_vectors()
