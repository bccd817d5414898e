import numpy as np
import pytest

from recforge._reference.personal_rank import personal_rank
from recforge.exceptions import ConvergenceWarning
from recforge.recall import PersonalRank
from tests._cf_helpers import random_interactions
from tests.contract import RecallContract, contract_interactions


class TestPersonalRankContract(RecallContract):
    def make_model(self):  # "auto": the contract data is small, so this is method="direct"
        return PersonalRank(n_threads=2)


class TestPersonalRankIterateContract(RecallContract):
    def make_model(self):
        return PersonalRank(method="iterate", n_threads=2)


class TestPersonalRankSolveContract(RecallContract):
    def make_model(self):
        return PersonalRank(method="solve")


@pytest.mark.parametrize("use_weights", [False, True])
def test_iterate_matches_reference_recurrence(use_weights):
    m = random_interactions(n_users=20, n_items=15, density=0.25, seed=6)
    model = PersonalRank(
        alpha=0.7, method="iterate", tol=1e-12, use_weights=use_weights, n_threads=2
    ).fit(m)
    users = np.arange(20)
    x0 = np.zeros((20, 20))
    x0[users, users] = 1.0
    got = model._walk(x0, start_on_items=False)
    dense = m.toarray() if use_weights else (m.toarray() != 0)
    for u in users:
        np.testing.assert_allclose(
            got[:, u], personal_rank(dense, u, 0.7, tol=1e-14), rtol=1e-9, atol=1e-12
        )


def test_iterate_and_solve_agree():
    m = random_interactions(n_users=60, n_items=40, density=0.1, seed=8)
    users = np.arange(60)
    it = PersonalRank(alpha=0.8, method="iterate", tol=1e-12, n_threads=2).fit(m)
    so = PersonalRank(alpha=0.8, method="solve").fit(m)
    x0 = np.zeros((60, 60))
    x0[users, users] = 1.0
    np.testing.assert_allclose(it._walk(x0, False), so._walk(x0, False), rtol=0, atol=1e-8)
    np.testing.assert_array_equal(it.recommend(users, k=5)[0], so.recommend(users, k=5)[0])


@pytest.mark.parametrize("method", ["direct", "iterate", "cg"])
def test_blocks_and_threads_do_not_change_results(method):
    m = random_interactions(seed=9)
    one = PersonalRank(method=method, n_threads=1).fit(m)
    two = PersonalRank(method=method, n_threads=2).fit(m)
    users = np.arange(40)
    batch = two.recommend(users, k=6)
    np.testing.assert_array_equal(one.recommend(users, k=6)[1], batch[1])
    for u in (0, 7, 39):
        np.testing.assert_array_equal(two.recommend(u, k=6)[1], batch[1][u])


@pytest.mark.parametrize("method", ["iterate", "cg"])
def test_not_converged_warns(method):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        PersonalRank(method=method, max_iter=2).fit(random_interactions()).recommend(0, k=3)


@pytest.mark.parametrize(
    "param, value, error",
    [
        ("alpha", 1.0, ValueError),
        ("alpha", 0.0, ValueError),
        ("alpha", "x", TypeError),
        ("method", "power", ValueError),
        ("tol", 0.0, ValueError),
        ("max_iter", 0, ValueError),
    ],
)
def test_bad_params(param, value, error):
    with pytest.raises(error, match=param):
        PersonalRank(**{param: value}).fit(contract_interactions())


def test_quality_movielens():
    """NDCG@10 measured 0.0776 with the defaults (α = 0.8, exact "direct"); margin 0.002. Peer (exact) 0.0776."""
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small
    from recforge.evaluate import evaluate_recall

    pos = movielens_small().interactions().positives(4.0)
    train, test = temporal_split(pos)
    report = evaluate_recall(PersonalRank().fit(train), train, test, k=10)
    assert report.ndcg >= 0.0756


@pytest.mark.parametrize("start_on_items", [False, True])
def test_cg_agrees_with_solve(start_on_items):
    m = random_interactions(n_users=60, n_items=40, density=0.1, seed=14)
    cg = PersonalRank(alpha=0.8, method="cg", tol=1e-13).fit(m)
    so = PersonalRank(alpha=0.8, method="solve").fit(m)
    n = 40 if start_on_items else 60
    x0 = np.zeros((n, 7))
    x0[np.arange(0, 35, 5), np.arange(7)] = 1.0
    np.testing.assert_allclose(
        cg._walk(x0, start_on_items), so._walk(x0, start_on_items), rtol=0, atol=1e-8
    )


class TestPersonalRankCGContract(RecallContract):
    def make_model(self):
        return PersonalRank(method="cg", n_threads=2)


@pytest.mark.parametrize(
    "shape", [(60, 40), (40, 60)]
)  # the factorised side is the users, then the items
@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("start_on_items", [False, True])
def test_direct_agrees_with_solve(shape, use_weights, start_on_items):
    m = random_interactions(n_users=shape[0], n_items=shape[1], density=0.1, seed=15)
    direct = PersonalRank(alpha=0.8, method="direct", use_weights=use_weights).fit(m)
    so = PersonalRank(alpha=0.8, method="solve", use_weights=use_weights).fit(m)
    n = shape[1] if start_on_items else shape[0]
    x0 = np.zeros((n, 7))
    x0[np.arange(0, 35, 5), np.arange(7)] = 1.0
    x0[3, 2] = 0.5  # a start that is not an indicator
    expected = so._walk(x0, start_on_items)
    np.testing.assert_allclose(direct._walk(x0, start_on_items), expected, rtol=0, atol=1e-12)
    nodes = np.arange(0, 35, 5)
    np.testing.assert_allclose(
        direct._direct_rows(np.eye(n)[nodes], start_on_items, nodes),
        so._walk(np.eye(n)[:, nodes], start_on_items).T,
        rtol=0,
        atol=1e-12,
    )
    users = np.arange(shape[0])
    np.testing.assert_array_equal(direct.recommend(users, k=5)[0], so.recommend(users, k=5)[0])
    np.testing.assert_allclose(
        direct.recommend_from_history([1, 2, 3], [1.0, 2.0, 1.0], k=5)[1],
        so.recommend_from_history([1, 2, 3], [1.0, 2.0, 1.0], k=5)[1],
        rtol=1e-6,
    )


def test_auto_picks_direct_on_a_small_side_only(monkeypatch):
    import recforge.recall.personal_rank as module

    m = random_interactions(n_users=60, n_items=40, density=0.1, seed=16)
    model = PersonalRank().fit(m)
    assert model._resolved_method() == "direct"
    direct = model.recommend(np.arange(60), k=5)
    monkeypatch.setattr(module, "DIRECT_MAX_SIDE", 39)
    model = PersonalRank(tol=1e-12).fit(m)
    assert model._resolved_method() == "cg"
    np.testing.assert_array_equal(model.recommend(np.arange(60), k=5)[0], direct[0])


@pytest.mark.parametrize("method", ["iterate", "cg"])
def test_column_chunks_do_not_change_results(monkeypatch, method):
    import recforge.recall.personal_rank as module

    m = random_interactions(n_users=50, n_items=30, density=0.15, seed=17)
    model = PersonalRank(method=method).fit(m)
    x0 = np.eye(50)[:, :9]
    whole = model._walk(x0, start_on_items=False)
    monkeypatch.setattr(module, "WALK_CACHE_BYTES", 8 * 50 * 2)  # two columns at a time
    np.testing.assert_array_equal(model._walk(x0, start_on_items=False), whole)


def test_verbose_bar_over_column_blocks(monkeypatch, capsys):
    import recforge.recall.personal_rank as module

    m = random_interactions(n_users=50, n_items=30, density=0.15, seed=18)
    monkeypatch.setattr(module, "WALK_CACHE_BYTES", 8 * 50 * 2)
    PersonalRank(method="cg", verbose=True).fit(m).recommend(np.arange(6), k=3)
    assert "PersonalRank cg" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["direct", "solve"])
def test_factorisation_follows_alpha_changed_after_fit(method):
    m = random_interactions(n_users=30, n_items=20, density=0.2, seed=19)
    model = PersonalRank(alpha=0.8, method=method).fit(m)
    model.recommend(np.arange(30), k=5)  # factorises at α = 0.8
    model.set_params(alpha=0.5)
    expected = PersonalRank(alpha=0.5, method=method).fit(m).recommend(np.arange(30), k=5)
    got = model.recommend(np.arange(30), k=5)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
