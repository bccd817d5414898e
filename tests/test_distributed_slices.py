"""A model split by user (recforge.distributed._slices): the model rebuilt on a worker from the
shared item side and one partition's user slice scores exactly like the whole model, and the
item side carries no per-user array."""

import numpy as np
import pytest

pytest.importorskip("distributed")

from recforge.data import synthetic_interactions
from recforge.distributed._slices import (
    USER_ARRAYS,
    ModelSplit,
    model_of_slice,
    splittable,
)
from recforge.exceptions import ModelFileError
from recforge.recall import LFM, ItemCF, Popularity


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(300, 120, 5000, seed=4)


def _models(data):
    return (
        ItemCF(n_neighbors=8, time_decay=0.05, n_threads=1).fit(data),
        ItemCF(n_neighbors=8, use_weights=False, normalize_max=False, n_threads=1).fit(data),
        LFM(n_factors=6, epochs=2, random_state=0, n_threads=1).fit(data),
    )


def _rebuilt(split, user_slice):
    arrays = {**split.item_side, **user_slice}
    return model_of_slice(split.class_path, split.params_json, list(arrays), list(arrays.values()))


def _nbytes(arrays: dict) -> int:
    return sum(arr.nbytes for arr in arrays.values())


@pytest.mark.parametrize("which", range(3))
@pytest.mark.parametrize(
    "rows, positions",
    [
        (slice(0, 300), None),
        (slice(40, 41), None),
        (slice(100, 230), None),
        (np.array([5, 17, 250, 299]), np.array([3, 0, 0, 2, 1, 3])),  # repeats, any order
    ],
)
def test_a_user_slice_scores_like_the_whole_model(data, which, rows, positions):
    model = _models(data)[which]
    split = ModelSplit(model)
    sub, users = _rebuilt(split, split.user_slice(rows, positions))
    want = model.user_map_.ids[rows] if positions is None else model.user_map_.ids[rows][positions]
    assert np.array_equal(users, want)
    assert type(sub) is type(model) and len(sub.user_map_) == len(model.user_map_.ids[rows])
    for kwargs in ({}, {"filter_seen": False}, {"items": model.item_map_.ids[::3]}):
        got, expected = sub.recommend(users, k=9, **kwargs), model.recommend(users, k=9, **kwargs)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert split.n_interactions(rows) == model.user_items_[rows].nnz


def test_the_item_side_holds_no_per_user_array(data):
    for model in _models(data):
        split = ModelSplit(model)
        names = set(split.item_side)
        rows, entries = USER_ARRAYS[type(model).__name__]
        assert not names & {"user_ids", *rows, *entries}
        assert not any(name.startswith("user_items") for name in names)
        assert "item_ids" in names
        # the slice of a tenth of the users is about a tenth of the per-user bytes
        small, whole = split.user_slice(slice(0, 30)), split.user_slice(slice(0, 300))
        assert _nbytes(small) < 0.25 * _nbytes(whole)
        # a range of users travels as views of the model's arrays (no copy on the client)
        assert np.shares_memory(small["user_ids"], model.user_map_.ids)


def test_only_the_listed_classes_are_split(data):
    assert splittable(ItemCF(n_neighbors=3).fit(data)) and splittable(LFM(epochs=1).fit(data))
    assert not splittable(Popularity().fit(data))

    class MyLFM(LFM):  # a subclass may keep more per-user state: shipped whole
        pass

    assert not splittable(MyLFM(epochs=1).fit(data))


def test_a_tampered_slice_is_refused_like_a_tampered_file(data):
    model = _models(data)[2]
    split = ModelSplit(model)
    arrays = split.user_slice(slice(0, 10))
    arrays["user_factors"] = arrays["user_factors"][:, :3]  # wrong number of factors
    with pytest.raises(ModelFileError, match="user_factors"):
        _rebuilt(split, arrays)
