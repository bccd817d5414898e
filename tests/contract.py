"""The recommend contract every recall model must pass (see recforge/recall/base.py).

Use it by subclassing ``RecallContract`` in a test module and defining ``make_model()``.
"""

import io

import numpy as np
import pandas as pd
import pytest

from recforge.data import Interactions
from recforge.exceptions import ModelFileError, NotFittedError


def contract_interactions(string_ids: bool = False) -> Interactions:
    """30 users x 25 items, ids that are not 0..n-1, one user with no interactions, timestamps."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(29):  # user 29 gets no interactions
        items = rng.choice(24, size=rng.integers(2, 9), replace=False)  # item 24 is never seen
        for t, i in enumerate(items):
            rows.append((u, i, float(rng.integers(1, 6)), 1_000 + 10 * u + t))
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"])
    user_ids = np.arange(30) * 3 + 100
    item_ids = np.arange(25) * 7 + 5000
    df["user"] = user_ids[df["user"]]
    df["item"] = item_ids[df["item"]]
    if string_ids:
        df["user"] = "u" + df["user"].astype(str)
        df["item"] = "i" + df["item"].astype(str)
        user_ids = np.array([f"u{u}" for u in user_ids])
        item_ids = np.array([f"i{i}" for i in item_ids])
    return Interactions.from_dataframe(
        df,
        user_col="user",
        item_col="item",
        weight_col="rating",
        timestamp_col="ts",
        user_ids=user_ids,
        item_ids=item_ids,
    )


def _valid(ids):
    return np.array(
        [
            x
            for x in np.ravel(ids)
            if x is not None and not (isinstance(x, (int, np.integer)) and x == -1)
        ]
    )


class RecallContract:
    """Mixin: define ``make_model(self)`` returning an unfitted model."""

    def make_model(self):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):
        return contract_interactions()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data):
        return cls().make_model().fit(data)

    def _users(self, data):
        return data.user_map.ids[:29]

    def test_fit_returns_self_and_keeps_params(self, data):
        model = self.make_model()
        params = model.get_params()
        assert model.fit(data) is model
        assert model.get_params().keys() == params.keys()
        clone = type(model)(**model.get_params())
        assert clone.get_params().keys() == params.keys()

    def test_fit_does_not_mutate_input(self, data):
        before = data.matrix.copy()
        self.make_model().fit(data)
        assert (data.matrix != before).nnz == 0

    def test_not_fitted(self):
        with pytest.raises(NotFittedError):
            self.make_model().recommend(100, k=3)

    def test_scalar_and_batch_shapes(self, fitted, data):
        ids, scores = fitted.recommend(data.user_map.ids[0], k=4)
        assert ids.shape == (4,) and scores.shape == (4,) and scores.dtype == np.float32
        users = self._users(data)
        ids, scores = fitted.recommend(users, k=4)
        assert ids.shape == (len(users), 4) and scores.shape == (len(users), 4)

    def test_batch_equals_scalar(self, fitted, data):
        users = self._users(data)
        ids, scores = fitted.recommend(users, k=6)
        for row, user in enumerate(users):
            one_ids, one_scores = fitted.recommend(user, k=6)
            np.testing.assert_array_equal(ids[row], one_ids)
            np.testing.assert_allclose(scores[row], one_scores, rtol=1e-6)

    def test_sorted_unique_and_known(self, fitted, data):
        ids, scores = fitted.recommend(self._users(data), k=8)
        assert np.all(np.diff(scores, axis=1) <= 0)
        assert not np.isnan(scores).any()
        for row in ids:
            valid = _valid(row)
            assert len(set(valid.tolist())) == len(valid)
            assert np.isin(valid, data.item_map.ids).all()

    def test_exactly_k_with_padding(self, fitted, data):
        k = data.n_items + 5
        ids, scores = fitted.recommend(self._users(data)[:3], k=k)
        assert ids.shape == (3, k)
        assert (ids[:, -5:] == -1).all() and np.isneginf(scores[:, -5:]).all()
        padded = ids == -1
        assert np.isneginf(scores[padded]).all() and np.isfinite(scores[~padded]).all()

    def test_filter_seen(self, fitted, data):
        for user in self._users(data):
            seen = data.item_map.ids[data.matrix[data.user_map.index(user)].indices]
            ids, _ = fitted.recommend(user, k=data.n_items)
            assert not np.isin(_valid(ids), seen).any()
        user = self._users(data)[0]
        ids, _ = fitted.recommend(user, k=data.n_items, filter_seen=False)
        assert len(_valid(ids)) >= len(data.matrix[0].indices)

    def test_filter_items_and_whitelist(self, fitted, data):
        user = self._users(data)[1]
        banned = data.item_map.ids[:10]
        ids, _ = fitted.recommend(user, k=data.n_items, filter_items=banned)
        assert not np.isin(_valid(ids), banned).any()
        allowed = data.item_map.ids[5:12]
        ids, _ = fitted.recommend(user, k=data.n_items, items=allowed)
        assert np.isin(_valid(ids), allowed).all()
        ids, _ = fitted.recommend(user, k=3, items=allowed, filter_items=allowed)
        assert (ids == -1).all()
        # unknown ids inside filters are ignored: they cannot be recommended anyway
        fitted.recommend(user, k=3, filter_items=[-12345], items=np.append(allowed, -999))

    def test_unknown_user_raises_keyerror_naming_it(self, fitted):
        with pytest.raises(KeyError, match="424242"):
            fitted.recommend(424242, k=3)
        with pytest.raises(KeyError, match="424242"):
            fitted.recommend([100, 424242], k=3)

    def test_user_without_interactions(self, fitted, data):
        ids, scores = fitted.recommend(data.user_map.ids[29], k=5)
        assert ids.shape == (5,) and not np.isnan(scores).any()

    @pytest.mark.parametrize(
        "k, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError), ("3", TypeError)]
    )
    def test_bad_k(self, fitted, data, k, error):
        with pytest.raises(error, match="k"):
            fitted.recommend(data.user_map.ids[0], k=k)

    def test_similar_items(self, fitted, data):
        items = data.item_map.ids[:6]
        ids, _scores = fitted.similar_items(items, k=5)
        assert ids.shape == (6, 5)
        for row, item in enumerate(items):
            assert item not in _valid(ids[row])
            one_ids, _ = fitted.similar_items(item, k=5)
            np.testing.assert_array_equal(ids[row], one_ids)
        with pytest.raises(KeyError, match="777777"):
            fitted.similar_items(777777)

    def test_recommend_from_history(self, fitted, data):
        history = data.item_map.ids[[0, 3, 4]]
        ids, _scores = fitted.recommend_from_history(history, k=5)
        assert ids.shape == (5,) and not np.isin(_valid(ids), history).any()
        ids_w, _ = fitted.recommend_from_history(history, weights=[1.0, 2.0, 0.5], k=5)
        assert ids_w.shape == (5,)
        empty_ids, empty_scores = fitted.recommend_from_history([], k=5)
        assert empty_ids.shape == (5,) and not np.isnan(empty_scores).any()
        with pytest.raises(KeyError, match="31337"):
            fitted.recommend_from_history([31337], k=5)
        with pytest.raises(ValueError, match="weights"):
            fitted.recommend_from_history(history, weights=[1.0], k=5)
        with pytest.raises(ValueError, match="weights"):
            fitted.recommend_from_history(history, weights=[1.0, np.nan, 1.0], k=5)

    def test_history_of_a_known_user_matches_profile_shape(self, fitted, data):
        user = self._users(data)[2]
        row = data.matrix[data.user_map.index(user)]
        ids, _ = fitted.recommend_from_history(
            data.item_map.ids[row.indices], weights=row.data, k=4
        )
        assert ids.shape == (4,)

    def test_save_load_round_trip(self, fitted, data, tmp_path):
        path = tmp_path / "model.npz"
        fitted.save(path)
        loaded = type(fitted).load(path)
        users = self._users(data)
        a, b = fitted.recommend(users, k=7), loaded.recommend(users, k=7)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
        assert loaded.get_params() == fitted.get_params()
        buffer = io.BytesIO()
        fitted.save(buffer)
        buffer.seek(0)
        np.testing.assert_array_equal(type(fitted).load(buffer).recommend(users, k=7)[0], a[0])

    def test_corrupt_or_foreign_file(self, fitted, tmp_path):
        path = tmp_path / "model.npz"
        fitted.save(path)
        raw = path.read_bytes()
        truncated = tmp_path / "truncated.npz"
        truncated.write_bytes(raw[: len(raw) // 2])
        with pytest.raises(ModelFileError):
            type(fitted).load(truncated)
        garbage = tmp_path / "garbage.npz"
        garbage.write_bytes(b"not a model at all" * 10)
        with pytest.raises(ModelFileError):
            type(fitted).load(garbage)
        foreign = tmp_path / "foreign.npz"
        np.savez(foreign, x=np.arange(3))
        with pytest.raises(ModelFileError, match="metadata"):
            type(fitted).load(foreign)
        with pytest.raises(FileNotFoundError):
            type(fitted).load(tmp_path / "missing.npz")

    def test_string_ids(self):
        data = contract_interactions(string_ids=True)
        model = self.make_model().fit(data)
        ids, scores = model.recommend(data.user_map.ids[:3], k=data.n_items + 2)
        assert ids.dtype == object and ids[0, -1] is None and np.isneginf(scores[0, -1])
        assert all(isinstance(x, str) for x in _valid(ids))
        with pytest.raises(KeyError, match="nobody"):
            model.recommend("nobody")
