import numpy as np
import pytest

from recforge._reference.cf import usercf_scores
from recforge.recall import UserCF
from tests._cf_helpers import assert_paths_agree, random_interactions
from tests.contract import RecallContract, contract_interactions


class TestUserCFContract(RecallContract):
    def make_model(self):
        return UserCF(n_neighbors=5, n_threads=2)


class TestUserCFDenseContract(RecallContract):
    """The same contract through the dense block path of the base class."""

    def make_model(self):
        model = UserCF(n_neighbors=5, n_threads=2)
        model._fused = False
        return model


@pytest.mark.parametrize("use_weights", [False, True])
def test_scores_match_reference(use_weights):
    m = random_interactions(seed=1)
    model = UserCF(n_neighbors=4, use_weights=use_weights, n_threads=2).fit(m)
    dense = m.toarray()
    expected = usercf_scores(dense, 4, weights=dense if use_weights else None)
    np.testing.assert_allclose(
        model._score_users(np.arange(m.shape[0])), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("k", [1, 4, 35])
def test_fused_equals_dense(k):
    m = random_interactions(seed=2)
    model = UserCF(n_neighbors=3, n_threads=2).fit(m)
    users = np.arange(m.shape[0])
    assert_paths_agree(model, users, k)
    assert_paths_agree(model, users, k, filter_seen=False)
    assert_paths_agree(model, users, k, filter_items=[0, 1, 2, 7], items=np.arange(15))


@pytest.mark.parametrize("normalize_max", [False, True])
def test_history_scorer_is_score_history(normalize_max):
    """The prepared fold-in (history_scorer) returns bit-identical scores, for histories with
    repeated items, items nobody saw, no item, and neighbour ties cut by n_neighbors."""
    m = random_interactions(n_users=60, n_items=30, density=0.2, seed=6)
    model = UserCF(n_neighbors=3, normalize_max=normalize_max, time_decay=0.0, n_threads=1).fit(m)
    score = model.history_scorer()
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 30, size=n) for n in (1, 2, 3, 5, 8, 12) for _ in range(6)]
    histories += [np.array([5]), np.array([5, 5, 1]), np.array([], np.int64), np.arange(30)]
    for history in histories:
        history = history.astype(np.int64)
        weights = rng.random(len(history)).astype(np.float32)
        want = model._score_history(history, weights)
        got = score(history, weights)
        assert got.dtype == np.float32 and got.shape == (30,)
        np.testing.assert_array_equal(got, want, err_msg=str(history))
    assert np.any(score(np.array([0, 1]), np.ones(2, np.float32)) > 0)
    with pytest.raises(Exception, match="fitted"):
        UserCF().history_scorer()


def test_history_of_known_user_uses_same_similarity():
    """Fold-in of a user's own history: the neighbours are the user's (plus itself, removed here)."""
    m = random_interactions(seed=4)
    model = UserCF(n_neighbors=40, use_weights=False).fit(m)
    u = 7
    hist = m[u].indices
    scores = model._score_history(hist.astype(np.int64), np.ones(len(hist), np.float32))
    own = model._score_users(np.array([u]))[0]
    # the fold-in user also finds user u itself: remove that neighbour's contribution
    penalty = 1.0 / np.log1p(np.maximum(np.bincount(m.indices, minlength=m.shape[1]), 1))
    self_sim = penalty[hist].sum() / len(hist)
    np.testing.assert_allclose(
        scores - self_sim * (m[u].toarray().ravel() != 0), own, rtol=1e-5, atol=1e-6
    )


def test_result_does_not_depend_on_threads():
    m = random_interactions(seed=5)
    one, two = UserCF(n_threads=1).fit(m), UserCF(n_threads=2).fit(m)
    assert (one.similarity_ != two.similarity_).nnz == 0


@pytest.mark.parametrize(
    "param, value, error",
    [
        ("n_neighbors", -1, ValueError),
        ("time_decay", -0.5, ValueError),
        ("n_threads", 1.5, TypeError),
    ],
)
def test_bad_params(param, value, error):
    with pytest.raises(error, match=param):
        UserCF(**{param: value}).fit(contract_interactions())


def test_quality_movielens():
    """NDCG@10 0.0910 / P@10 0.0731 measured with the defaults; margin 0.002 (peer: plain UserCF K=20, 0.0904)."""
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small
    from recforge.evaluate import evaluate_recall

    pos = movielens_small().interactions().positives(4.0)
    train, test = temporal_split(pos)
    report = evaluate_recall(UserCF().fit(train), train, test, k=10)
    assert report.ndcg >= 0.0890
    assert report.precision >= 0.0710
