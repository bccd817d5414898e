import numpy as np
import pytest
import scipy.sparse as sp

from recforge.exceptions import ModelFileError
from recforge.recall import Popularity
from tests.contract import RecallContract, contract_interactions


class TestPopularityContract(RecallContract):
    def make_model(self):
        return Popularity(n_threads=2)


def test_scores_are_user_counts():
    m = sp.csr_matrix(np.array([[1, 0, 5], [1, 0, 0], [1, 2, 0]], np.float32))
    model = Popularity().fit(m)
    np.testing.assert_array_equal(model.item_scores_, [3, 1, 1])
    ids, _scores = model.recommend(1, k=3)
    assert ids.tolist() == [1, 2, -1]  # item 0 seen; tie between 1 and 2 → lower index first
    np.testing.assert_array_equal(Popularity(weighting="weight").fit(m).item_scores_, [3, 2, 5])


def test_bad_params():
    with pytest.raises(ValueError, match="weighting"):
        Popularity(weighting="nope").fit(contract_interactions())
    with pytest.raises(TypeError, match="n_threads"):
        Popularity(n_threads="two").fit(contract_interactions())
    with pytest.raises(ValueError, match="invalid parameter"):
        Popularity().set_params(alpha=1)


def test_fit_rejects_non_interactions_and_empty():
    with pytest.raises(TypeError, match="Interactions"):
        Popularity().fit(np.ones((3, 3)))
    with pytest.raises(ValueError, match="no entries"):
        Popularity().fit(sp.csr_matrix((3, 4), dtype=np.float32))


def test_load_wrong_class(tmp_path):
    from recforge.recall.base import RecallModel

    class Other(Popularity):
        pass

    model = Popularity().fit(contract_interactions())
    model.save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="Popularity"):
        Other.load(tmp_path / "m.npz")
    assert issubclass(Popularity, RecallModel)


def test_block_size_does_not_change_results(monkeypatch):
    from recforge.recall import base

    data = contract_interactions()
    model = Popularity().fit(data)
    users, items = data.user_map.ids, data.item_map.ids
    expected = model.recommend(users, k=5), model.similar_items(items, k=5)
    monkeypatch.setattr(base, "SCORE_BLOCK_BYTES", 4 * data.n_items * 3)  # 3 rows per block
    got = model.recommend(users, k=5), model.similar_items(items, k=5)
    for (a_ids, a_val), (b_ids, b_val) in zip(expected, got):
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_val, b_val)
