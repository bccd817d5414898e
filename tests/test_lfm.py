"""LFM through the public API: contract, planted low-rank data, determinism, quality on MovieLens."""

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.recall import LFM

from .contract import RecallContract, contract_interactions


class TestLFMContract(RecallContract):
    def make_model(self):
        return LFM(n_factors=8, epochs=5, n_threads=1, random_state=0)


class TestLFMSquaredContract(RecallContract):
    def make_model(self):
        return LFM(
            n_factors=8, loss="squared", epochs=5, threshold=3.0, n_threads=1, random_state=0
        )


def _planted(n_users=200, n_items=60, rank=3, seed=0):
    """Users and items in `rank` groups; a user likes ~half of their group's items."""
    rng = np.random.default_rng(seed)
    ug, ig = rng.integers(0, rank, n_users), np.arange(n_items) % rank
    liked = (ug[:, None] == ig[None, :]) & (rng.random((n_users, n_items)) < 0.5)
    return sp.csr_matrix(liked.astype(np.float32)), ug, ig


def _objective(model, m, neg, loss):
    """The loss (regularisation excluded) over every positive paired with a fixed negative."""
    users, items = m.nonzero()
    p, b = model.user_factors_[users], model.item_bias_
    s_pos = np.einsum("ij,ij->i", p, model.item_factors_[items]) + b[items]
    s_neg = np.einsum("ij,ij->i", p, model.item_factors_[neg]) + b[neg]
    if loss == "bpr":
        return np.mean(np.logaddexp(0, -(s_pos - s_neg)))
    if loss == "logistic":
        return np.mean(np.logaddexp(0, -s_pos)) + np.mean(np.logaddexp(0, s_neg))
    return np.mean(0.5 * (1 - s_pos) ** 2) + np.mean(0.5 * s_neg**2)


@pytest.mark.parametrize("loss", ["squared", "logistic", "bpr"])
def test_loss_falls_monotonically_on_planted_low_rank(loss):
    m, ug, ig = _planted()
    rng = np.random.default_rng(1)
    users = m.nonzero()[0]
    # a fixed negative per positive: an item of another group
    neg = (ug[users] + 1 + rng.integers(0, 2, len(users))) % 3 + 3 * rng.integers(0, 20, len(users))
    objective = []
    model = LFM(
        n_factors=8,
        loss=loss,
        epochs=25,
        learning_rate=0.1,
        learning_rate_decay=0.75,
        init_std=1.0,
        n_threads=1,
        random_state=0,
    )
    model.fit(m, callback=lambda mdl, epoch, mean: objective.append(_objective(mdl, m, neg, loss)))
    objective = np.array(objective)
    assert np.all(np.diff(objective) < 1e-3 * objective[0]), (
        objective
    )  # float32 sums: allow 0.1 % wobble
    assert objective[-1] < 0.5 * objective[0]
    # the planted groups come back: a user's top items are in their group
    ids, _ = model.recommend(np.arange(50), k=5)
    assert np.mean(ig[ids] == ug[:50, None]) >= 0.95


def test_bit_identical_at_one_thread_and_seed_matters():
    data = contract_interactions()
    fits = [LFM(n_factors=4, epochs=3, n_threads=1, random_state=s).fit(data) for s in (1, 1, 2)]
    np.testing.assert_array_equal(fits[0].item_factors_, fits[1].item_factors_)
    np.testing.assert_array_equal(fits[0].user_factors_, fits[1].user_factors_)
    assert not np.array_equal(fits[0].item_factors_, fits[2].item_factors_)


def test_early_stopping_and_callback():
    m, _, _ = _planted()
    model = LFM(
        n_factors=8,
        epochs=200,
        validation_fraction=0.2,
        n_iter_no_change=3,
        learning_rate=0.1,
        init_std=1.0,
        n_threads=1,
        random_state=0,
    ).fit(m)
    assert len(model.validation_auc_) < 200 and max(model.validation_auc_) > 0.75
    seen = []
    LFM(n_factors=4, epochs=10, n_threads=1).fit(
        m, callback=lambda mdl, epoch, loss: seen.append(loss) or epoch == 2
    )
    assert len(seen) == 3


def test_fold_in_recovers_a_known_user():
    m, ug, ig = _planted()
    model = LFM(
        n_factors=8, epochs=30, learning_rate=0.1, init_std=1.0, n_threads=1, random_state=0
    ).fit(m)
    ids, _ = model.recommend_from_history(m[0].indices, k=5)
    assert np.mean(ig[ids] == ug[0]) >= 0.8


@pytest.mark.parametrize(
    "params, error",
    [
        ({"loss": "hinge"}, ValueError),
        ({"n_factors": 0}, ValueError),
        ({"learning_rate": 0.0}, ValueError),
        ({"learning_rate_decay": 1.5}, ValueError),
        ({"item_bias": "yes"}, TypeError),
        ({"threshold": "4"}, TypeError),
        ({"validation_fraction": 1.0}, ValueError),
        ({"epochs": 2.0}, TypeError),
        ({"threshold": 99.0}, ValueError),
    ],
)
def test_bad_params(params, error):
    with pytest.raises(
        error,
        match=next(iter(params))
        if error is TypeError or "threshold" not in params
        else "threshold",
    ):
        LFM(**params).fit(contract_interactions())


@pytest.fixture(scope="module")
def movielens_split():
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small

    pos = movielens_small().interactions().positives(4.0)
    return temporal_split(pos)


@pytest.mark.data
@pytest.mark.parametrize(
    "loss, minimum",
    [
        ("bpr", 0.087),  # measured 0.0925 (1 thread, seed 0); implicit BPR reaches 0.0870
        ("logistic", 0.085),  # measured 0.0915
        ("squared", 0.068),  # the course's loss: measured 0.0742
    ],
)
def test_quality_on_movielens(movielens_split, loss, minimum):
    from recforge.evaluate import evaluate_recall

    train, test = movielens_split
    model = LFM(loss=loss, n_threads=1, random_state=0).fit(train)
    assert evaluate_recall(model, train, test, k=10).ndcg >= minimum


def test_unit_rows_are_computed_on_first_use_and_kept():
    """A fit leaves the cosine rows of similar_items for their first use; then they are kept."""
    from recforge.recall._embedding import unit_rows

    model = LFM(n_factors=4, epochs=2, n_threads=1, random_state=0).fit(contract_interactions())
    assert model._unit_rows_[1] is None
    first = model.similar_items(model.item_map_.ids[0], k=3)
    cached = model._unit_rows_[1]
    np.testing.assert_array_equal(cached, unit_rows(model.item_factors_))
    second = model.similar_items(model.item_map_.ids[0], k=3)
    assert model._unit_rows_[1] is cached
    np.testing.assert_array_equal(first[1], second[1])
