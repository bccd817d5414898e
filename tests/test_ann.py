"""The ANN index of embedding recall (extra [ann]): recall against the exact top-k, exact scores of
what it finds, a deterministic rebuild at load, bad input."""

import io
import sys

import numpy as np
import pytest

from recforge.data import synthetic_interactions
from recforge.exceptions import ModelFileError
from recforge.recall import LFM, Item2Vec, ItemCF
from recforge.serving import Recommender, load_model
from recforge.serving import ann as ann_module
from recforge.serving.ann import ARRAY_PREFIX, AnnIndex, mips_queries, mips_vectors

#: recall@10 of the index against the exact top 10. The faiss HNSW graph (M = 16, ef >= 64) over 1,500 items
#: finds >= 99.9 % of the true neighbours here (1.0 measured for LFM and Item2Vec); 0.97 leaves
#: room for a different CPU's float rounding and still catches a broken reduction or rescoring
#: (a wrong bias column or query layout drops it below 0.5).
MIN_RECALL = 0.97


@pytest.fixture(scope="module")
def data():
    return synthetic_interactions(2000, 1500, 40000)


@pytest.fixture(
    scope="module",
    params=[
        lambda: LFM(n_factors=16, epochs=5, random_state=0, n_threads=1),
        lambda: Item2Vec(random_state=0, n_threads=1),
    ],
    ids=["lfm", "item2vec"],
)
def model(request, data):
    return request.param().fit(data)


def _users(model, n=300):
    return model.user_map_.ids[:n].tolist()


def test_recall_at_10_against_the_exact_path(model):
    ann = Recommender(model, index="ann", warm=False)
    exact = Recommender(model, warm=False)
    hits = total = 0
    for user in _users(model):
        a, b = ann.recommend_one(user_id=user, k=10), exact.recommend_one(user_id=user, k=10)
        hits += len(set(a.items) & set(b.items))
        total += len(b.items)
        # what the index finds carries the model's exact score, best first
        exact_scores = dict(zip(*model.recommend(user, k=model.n_items_)))
        np.testing.assert_allclose(a.scores, [exact_scores[i] for i in a.items], rtol=1e-6)
        assert a.scores == sorted(a.scores, reverse=True)
    assert hits / total >= MIN_RECALL


def test_exclusions_hold_on_the_ann_path(model):
    ann = Recommender(model, index="ann", warm=False)
    user = _users(model, 1)[0]
    first = ann.recommend_one(user_id=user, k=10).items
    again = ann.recommend_one(user_id=user, k=10, exclude=first[:5]).items
    assert not set(first[:5]) & set(again)
    seen = set(model.item_map_.ids[model.user_items_[0].indices].tolist())
    assert not seen & set(again)
    assert len(again) == 10


def test_the_index_is_rebuilt_identically_after_save_and_load(model):
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    loaded = load_model(buf)
    a = Recommender(model, index="ann", warm=False)
    b = Recommender(loaded, index="ann", warm=False)
    for user in _users(model, 100):
        ra, rb = a.recommend_one(user_id=user, k=20), b.recommend_one(user_id=user, k=20)
        assert (ra.items, ra.scores) == (rb.items, rb.scores)


def _saved_with_index(model) -> bytes:
    buf = io.BytesIO()
    Recommender(model, index="ann", warm=False).save(buf)
    return buf.getvalue()


def test_a_saved_index_is_read_back_and_answers_like_the_saved_one(model, monkeypatch):
    served = Recommender(model, index="ann", warm=False)
    buf = io.BytesIO()
    served.save(buf)
    buf.seek(0)
    # loading must not build a graph: the saved one is restored
    monkeypatch.setattr(ann_module._Faiss, "build", staticmethod(_no_build))
    loaded = Recommender.load(buf, index="ann", warm=False)
    for user in _users(model, 100):
        a, b = served.recommend_one(user_id=user, k=20), loaded.recommend_one(user_id=user, k=20)
        assert (a.items, a.scores) == (b.items, b.scores)
    # the graph itself is the saved one, byte for byte
    name = next(iter(loaded._ann))
    np.testing.assert_array_equal(
        loaded._ann[name].to_arrays()["graph"], served._ann[name].to_arrays()["graph"]
    )
    # and the file is still a model file of the model's class
    buf.seek(0)
    again = load_model(buf)
    assert type(again) is type(model)
    np.testing.assert_array_equal(
        again.recommend(_users(model, 1)[0], k=5)[0], model.recommend(_users(model, 1)[0], k=5)[0]
    )


def _no_build(data):
    raise AssertionError("the ANN graph was rebuilt instead of read from the file")


def _rewrite(raw: bytes, change) -> io.BytesIO:
    """The model file ``raw`` with ``change(arrays)`` applied to its arrays (a dict)."""
    arrays = dict(np.load(io.BytesIO(raw), allow_pickle=False))
    change(arrays)
    out = io.BytesIO()
    np.savez(out, **arrays)
    out.seek(0)
    return out


def _graph_key(arrays) -> str:
    return next(k for k in arrays if k.startswith(ARRAY_PREFIX) and k.endswith(".graph"))


def _flip_a_byte(arrays):
    graph = arrays[_graph_key(arrays)].copy()
    graph[len(graph) // 2] ^= 0xFF
    arrays[_graph_key(arrays)] = graph


def _truncate(arrays):
    arrays[_graph_key(arrays)] = arrays[_graph_key(arrays)][:100]


def _drop_graph(arrays):
    del arrays[_graph_key(arrays)]


def _drop_check(arrays):
    del arrays[_graph_key(arrays).replace(".graph", ".check")]


def _graph_as_floats(arrays):
    arrays[_graph_key(arrays)] = arrays[_graph_key(arrays)].astype(np.float32)


@pytest.mark.parametrize(
    "change, message",
    [
        (_flip_a_byte, "corrupt"),
        (_truncate, "corrupt"),
        (_drop_graph, r"\.graph' is missing"),
        (_drop_check, r"\.check' is missing"),
        (_graph_as_floats, "dtype float32"),
    ],
    ids=["flipped-byte", "truncated", "no-graph", "no-check", "wrong-dtype"],
)
def test_a_corrupt_or_missing_saved_index_is_a_model_file_error(model, change, message):
    bad = _rewrite(_saved_with_index(model), change)
    with pytest.raises(ModelFileError, match=message):
        Recommender.load(bad, index="ann", warm=False)


def test_a_saved_index_of_other_vectors_is_a_model_file_error(model, data):
    other = type(model)(**{**model.get_params(), "random_state": 1}).fit(data)
    other_arrays = dict(np.load(io.BytesIO(_saved_with_index(other)), allow_pickle=False))

    def swap(arrays):
        for key in [k for k in arrays if k.startswith(ARRAY_PREFIX)]:
            arrays[key] = other_arrays[key]

    with pytest.raises(ModelFileError, match="other item vectors"):
        Recommender.load(_rewrite(_saved_with_index(model), swap), index="ann", warm=False)


def test_a_file_without_a_saved_index_builds_one(model):
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    rec = Recommender.load(buf, index="ann", warm=False)
    user = _users(model, 1)[0]
    assert rec.recommend_one(user_id=user, k=5).items == (
        Recommender(model, index="ann", warm=False).recommend_one(user_id=user, k=5).items
    )


def test_threads_sharing_one_index_answer_like_serial_calls(model):
    """Requests of different depths (so different ef) at once: each gets its serial answer."""
    from concurrent.futures import ThreadPoolExecutor

    ann = Recommender(model, index="ann", warm=False)
    requests = [(user, k) for user in _users(model, 40) for k in (3, 50)]
    serial = [ann.recommend_one(user_id=u, k=k).items for u, k in requests]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            got = list(pool.map(lambda r: ann.recommend_one(user_id=r[0], k=r[1]).items, requests))
            assert got == serial


def test_the_reduction_keeps_the_inner_product_order():
    rng = np.random.default_rng(0)
    targets, bias, query = rng.normal(size=(50, 4)), rng.normal(size=50), rng.normal(size=4)
    rows, q = mips_vectors(targets, bias), mips_queries(query, True)[0]
    distance = ((rows.astype(np.float64) - q) ** 2).sum(axis=1)
    np.testing.assert_array_equal(
        np.argsort(distance)[:10], np.argsort(-(targets @ query + bias))[:10]
    )


def test_a_depth_beyond_what_the_graph_holds_pads():
    data = synthetic_interactions(50, 12, 200)
    lfm = LFM(n_factors=4, epochs=2, random_state=0, n_threads=1).fit(data)
    idx, val = AnnIndex(lfm).user(0, 20, seen=lfm.user_items_[0].indices)
    n_free = 12 - lfm.user_items_[0].nnz
    assert (idx >= 0).sum() == n_free and np.all(idx[n_free:] == -1)
    assert np.all(np.isneginf(val[n_free:]))


def test_bad_index_arguments(data):
    itemcf = ItemCF(n_threads=1).fit(data)
    with pytest.raises(ValueError, match="index='ann' needs an embedding source"):
        Recommender(itemcf, index="ann", warm=False)
    with pytest.raises(ValueError, match="index"):
        Recommender(itemcf, index="hnsw", warm=False)


def test_a_missing_backend_names_the_install(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r'pip install "recforge\[ann\]"'):
        Recommender(model, index="ann", warm=False)
