import numpy as np
import pytest
import scipy.sparse as sp

from recforge._reference.cf import itemcf_scores
from recforge.data import Interactions
from recforge.recall import ItemCF
from tests._cf_helpers import assert_paths_agree, random_interactions
from tests.contract import RecallContract, contract_interactions


class TestItemCFContract(RecallContract):
    def make_model(self):
        return ItemCF(n_neighbors=5, n_threads=2)


class TestItemCFDenseContract(RecallContract):
    """The same contract through the dense block path of the base class."""

    def make_model(self):
        model = ItemCF(n_neighbors=5, n_threads=2)
        model._fused = False
        return model


@pytest.mark.parametrize("normalize_max", [False, True])
@pytest.mark.parametrize("use_weights", [False, True])
def test_scores_match_reference(normalize_max, use_weights):
    m = random_interactions()
    model = ItemCF(
        n_neighbors=4, normalize_max=normalize_max, use_weights=use_weights, n_threads=2
    ).fit(m)
    dense = m.toarray()
    expected = itemcf_scores(
        dense, 4, weights=dense if use_weights else None, normalize_max=normalize_max
    )
    got = model._score_users(np.arange(m.shape[0]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_fused_equals_dense(k):
    m = random_interactions(seed=3)
    model = ItemCF(n_neighbors=3, n_threads=2).fit(m)
    users = np.arange(m.shape[0])
    assert_paths_agree(model, users, k)
    assert_paths_agree(model, users, k, filter_seen=False)
    assert_paths_agree(model, users, k, filter_items=[0, 1, 2, 7])
    assert_paths_agree(model, users, k, items=[4, 5, 6, 8, 9, 20])


def test_result_does_not_depend_on_threads():
    m = random_interactions(seed=5)
    one = ItemCF(n_neighbors=4, n_threads=1).fit(m)
    two = ItemCF(n_neighbors=4, n_threads=2).fit(m)
    assert (one.similarity_ != two.similarity_).nnz == 0
    for a, b in zip(one.recommend(np.arange(40), k=7), two.recommend(np.arange(40), k=7)):
        np.testing.assert_array_equal(a, b)


def test_top_k_neighbours_are_sparse_and_sorted():
    model = ItemCF(n_neighbors=3, normalize_max=True).fit(random_interactions())
    sim = model.similarity_
    assert sp.isspmatrix_csr(sim) and np.diff(sim.indptr).max() <= 3
    assert np.all(sim.diagonal() == 0)
    for j in range(sim.shape[0]):
        row = sim.data[sim.indptr[j] : sim.indptr[j + 1]]
        assert np.all(np.diff(row) <= 0)
        if len(row):
            assert row[0] == 1.0


def test_explain_shares():
    m = random_interactions()
    model = ItemCF(n_neighbors=6).fit(m)
    ids, scores = model.recommend(0, k=1)
    items, shares = model.explain(0, ids[0], n=100)
    assert np.isclose(shares.sum(), 1.0) and np.all(np.diff(shares) <= 0)
    assert np.isin(items, m[0].indices).all()
    weights = m[0].toarray().ravel()
    contrib = weights[items] * model.similarity_[items][:, ids[0]].toarray().ravel()
    np.testing.assert_allclose(contrib.sum(), scores[0], rtol=1e-5)
    with pytest.raises(KeyError, match="999"):
        model.explain(999, ids[0])


def test_time_decay_weights_recent_items_more():
    data = contract_interactions()
    model = ItemCF(n_neighbors=5, time_decay=0.5).fit(data)
    w = model.user_weights_
    row = w[0]
    assert row.data.max() <= row.data.max() and np.all(row.data > 0) and np.all(row.data <= 5.0)
    plain = ItemCF(n_neighbors=5, time_decay=0.0, use_weights=False).fit(data)
    np.testing.assert_array_equal(plain.user_weights_.data, 1.0)
    with pytest.raises(ValueError, match="timestamps"):
        ItemCF(time_decay=0.1).fit(Interactions(data.matrix))


def test_time_decay_formula():
    m = sp.csr_matrix(np.array([[1, 1, 0]], np.float32))
    data = Interactions(m, timestamps=[0.0, 86_400.0 * 2])
    model = ItemCF(time_decay=0.5, use_weights=False).fit(data)
    np.testing.assert_allclose(model.user_weights_.data, [np.exp(-1.0), 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    "param, value, error",
    [
        ("n_neighbors", 0, ValueError),
        ("n_neighbors", 2.5, TypeError),
        ("time_decay", -1.0, ValueError),
        ("time_decay", float("nan"), ValueError),
        ("n_threads", "x", TypeError),
    ],
)
def test_bad_params(param, value, error):
    with pytest.raises(error, match=param):
        ItemCF(**{param: value}).fit(contract_interactions())


def test_quality_movielens():
    """NDCG@10 0.0920 / P@10 0.0746 measured with the defaults; margin 0.002 (peer: implicit Cosine K=20, 0.0844)."""
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small
    from recforge.evaluate import evaluate_recall

    pos = movielens_small().interactions().positives(4.0)
    train, test = temporal_split(pos)
    report = evaluate_recall(ItemCF().fit(train), train, test, k=10)
    assert report.ndcg >= 0.0900
    assert report.precision >= 0.0725


def test_verbose_same_result(capsys):
    m = random_interactions(seed=13)
    quiet = ItemCF(n_neighbors=4).fit(m)
    loud = ItemCF(n_neighbors=4, verbose=True).fit(m)
    assert (quiet.similarity_ != loud.similarity_).nnz == 0
    assert "similarity" in capsys.readouterr().err
