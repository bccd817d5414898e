"""The staged request path (RequestPlan, the Cython id index and top-k) returns exactly what the
public-method path returns, for every request kind."""

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from recforge.serving._fastpath import IdIndex, merge_row, topk_excluding

from recforge.data import Interactions
from recforge.kernels.topk import topk
from recforge.pipeline import TwoStage
from recforge.pipeline.selection import SourceOrder
from recforge.rank import GBDTClassifier, GBDTRanker
from recforge.recall import LFM, Item2Vec, ItemCF, Popularity, UserCF
from recforge.serving import Recommender
from recforge.serving.plan import FreshHistory
from recforge.serving.precomputed import (
    AUTO_BUDGET_BYTES,
    candidate_bytes,
    wants_precomputed,
    wants_precomputed_candidates,
)

from .test_pipeline import synthetic_log


def _sources():
    return {
        "popularity": Popularity(n_threads=1),
        "itemcf": ItemCF(n_threads=1),
        "usercf": UserCF(n_threads=1),
        "lfm": LFM(n_threads=1, random_state=0),
        "item2vec": Item2Vec(n_threads=1, random_state=0),
    }


def _string_ids(data):
    return Interactions(
        data.matrix,
        timestamps=data.timestamps,
        user_map=np.array([f"u{u}" for u in data.user_map.ids]),
        item_map=np.array([f"i{i}" for i in data.item_map.ids]),
    )


@pytest.fixture(scope="module", params=["int", "str", "genres"])
def pipeline(request):
    data = synthetic_log(n_users=60, n_items=40, seed=1)
    if request.param == "str":
        data = _string_ids(data)
    fit_params = {}
    if request.param == "genres":  # genre columns, the genre profile (decayed) and genre match
        rng = np.random.default_rng(5)
        fit_params["item_features"] = pd.DataFrame(
            (rng.random((data.n_items, 4)) < 0.4) * rng.random((data.n_items, 4)),
            index=data.item_map.ids,
            columns=["a", "b", "c", "d"],
        )
    model = TwoStage(
        _sources(),
        quotas=6,
        ranker=GBDTClassifier(n_estimators=10, max_depth=3, n_threads=1, random_state=0),
        genre_decay=0.01 if request.param == "genres" else 0.0,
        n_threads=1,
        random_state=0,
    )
    return model.fit(data, **fit_params)


def _requests(model, seed=0):
    rng = np.random.default_rng(seed)
    users, items = model.user_map_.ids.tolist(), model.item_map_.ids.tolist()
    unknown_item = "nope" if isinstance(items[0], str) else -12345
    out = []
    for _ in range(12):
        user = users[rng.integers(len(users))]
        recent = [items[j] for j in rng.choice(len(items), 4, replace=False)]
        out += [
            {"user_id": user, "k": 10},
            {"user_id": user, "k": 5, "exclude": [*recent[:2], unknown_item]},
            {"user_id": user, "k": 200},  # more than the candidates: the backfill fills up
            {"recent_items": [*recent, unknown_item], "k": 10},
            {"user_id": "fresh-user", "recent_items": recent[:1], "k": 7, "exclude": recent[1:]},
            {"recent_items": [unknown_item], "k": 3},  # nothing known: popularity
            {"k": 4},
        ]
    return out


def test_the_staged_path_answers_exactly_like_the_public_methods(pipeline):
    fast = Recommender(pipeline, warm=False)
    slow = Recommender(pipeline, warm=False, fastpath=False)
    paths = set()
    for body in _requests(pipeline):
        a = fast.recommend_one(**body, explain=True)
        b = slow.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body
        paths.add(a.path)
    assert paths == {"user", "history", "popularity"}


def test_sources_fitted_for_several_threads_are_served_on_one_with_the_same_answers(pipeline):
    import copy

    threaded = copy.copy(pipeline)
    threaded.sources_ = {}
    for name, source in pipeline.sources_.items():
        threaded.sources_[name] = copy.copy(source)
        threaded.sources_[name].n_threads = 2
    fast = Recommender(threaded, warm=False)
    assert all(s.model.n_threads == 1 for s in fast._plan.sources)
    assert all(s.n_threads == 2 for s in threaded.sources_.values())  # the model is not changed
    slow = Recommender(threaded, warm=False, fastpath=False)
    for body in _requests(pipeline, seed=4)[:21]:
        a, b = fast.recommend_one(**body), slow.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body


@pytest.mark.parametrize("ranker", ["fusion", "ranker", "no-similarity-sources"])
def test_other_pipeline_shapes_take_the_same_path(ranker):
    """No ranker (fusion order), a learning-to-rank GBDT (its own predict), and a classifier
    without the similarity and embedding sources (those features NaN): same answers."""
    sources = {"popularity": Popularity(n_threads=1), "itemcf": ItemCF(n_threads=1)}
    if ranker == "no-similarity-sources":
        sources = {"popularity": Popularity(n_threads=1), "lfm": LFM(n_threads=1, random_state=0)}
    model = TwoStage(
        sources,
        quotas=6,
        ranker={
            "fusion": None,
            "ranker": GBDTRanker(n_estimators=5, max_depth=3, n_threads=1, random_state=0),
        }.get(ranker, GBDTClassifier(n_estimators=5, max_depth=3, n_threads=1, random_state=0)),
        n_threads=1,
        random_state=0,
    ).fit(synthetic_log(n_users=60, n_items=40, seed=2))
    fast = Recommender(model, warm=False)
    assert (fast._plan._scorer is None) == (ranker != "no-similarity-sources")
    slow = Recommender(model, warm=False, fastpath=False)
    for body in _requests(model, seed=5)[:28]:
        a, b = fast.recommend_one(**body), slow.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body


def test_the_compiled_feature_rows_are_the_pipelines_feature_rows(pipeline):
    plan = Recommender(pipeline, warm=False)._plan
    for user in pipeline.user_map_.ids[:15].tolist():
        cands, X = pipeline.features([user])
        u = pipeline.user_map_.index(user)
        got = plan._features(cands, u, None)
        np.testing.assert_array_equal(got, X, err_msg=str(user))
        raw = pipeline.ranker_.predict_proba(X)[:, 1].astype(np.float32)
        if plan._scorer is not None:
            from recforge.rank._base import _expit

            np.testing.assert_array_equal(_expit(plan._scorer.raw(got)).astype(np.float32), raw)


def test_feature_rows_read_the_history_rows_alike_with_repeated_candidates(pipeline):
    """``fill`` reads the history items' similarity and transition rows once per request (an
    item -> candidate table); a candidate listed twice makes it fall back to a binary search per
    (candidate, history item): every row is the same either way."""
    plan = Recommender(pipeline, warm=False)._plan
    for user in pipeline.user_map_.ids[:10].tolist():
        cands, X = pipeline.features([user])
        u = pipeline.user_map_.index(user)
        twice = np.concatenate([np.arange(len(cands.items)), [0]])
        repeated = dataclasses.replace(
            cands,
            items=cands.items[twice],
            source_scores=cands.source_scores[twice],
            source_ranks=cands.source_ranks[twice],
            n_sources=cands.n_sources[twice],
            rrf=cands.rrf[twice],
            offsets=np.array([0, len(twice)], np.int64),
        )
        np.testing.assert_array_equal(plan._features(repeated, u, None), X[twice], str(user))


def test_fresh_feature_rows_from_the_item_table_are_the_computed_rows(pipeline):
    """A fresh user's rows read each candidate's item columns, genre one-hots and genres from the
    per-item table built at load for the fresh users' time, and the transition count from the
    candidate to the last item from the transposed rows: the same rows bit for bit as computed
    per candidate (tables without the item table; a repeated candidate: binary searches)."""
    from recforge.serving.plan import _feature_tables

    plan = Recommender(pipeline, warm=False)._plan
    assert plan._tables.item_time == plan._now
    untabled = _feature_tables(pipeline, None)[0]
    assert untabled.item_time != untabled.item_time  # NaN: no item table
    rng = np.random.default_rng(3)
    n_items = len(pipeline.item_map_)
    for n in (1, 3, 7, 12):
        idx = rng.choice(n_items, n, replace=False).astype(np.int64)
        h = FreshHistory(idx, None, n_items, None, [])
        cands = plan._recall(lambda source, depth, h=h: source.history(h, depth), 10, {})
        history = (h.idx, np.full(n, plan._now), h.weights)
        got = plan._features(cands, -1, history)
        plan._tables, tables = untabled, plan._tables
        try:
            want = plan._features(cands, -1, history)
        finally:
            plan._tables = tables
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(10))
def test_best_rows_is_lexsort_by_score_then_item(seed):
    """Ties (few distinct scores), NaN scores, signed zeros, k beyond the rows."""
    from recforge.serving._fastpath import best_rows

    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    scores = rng.choice(np.array([0.25, 0.5, -0.0, 0.0, np.nan, 1.0], np.float32), n)
    items = rng.permutation(1000)[:n].astype(np.int64)
    for k in (1, 5, n, n + 3):
        want = np.lexsort((items, -scores))[:k]
        np.testing.assert_array_equal(best_rows(scores, items, k), want)
    with pytest.raises(ValueError, match="items"):
        best_rows(scores, items[:-1] if n else np.zeros(1, np.int64), 2)


def test_two_hop_row_is_the_fused_two_hop_kernel_with_reused_scratch():
    """Random graphs and query rows, excluded items, a mask, k below and beyond the reachable
    items, calls in a row on one TwoHopRow (its scratch reused, grown for a larger k)."""
    from recforge.serving._fastpath import TwoHopRow

    from recforge.kernels.neighbors import two_hop_topk

    rng = np.random.default_rng(7)
    n_rows, n_items = 25, 40
    graph = sp.random(n_rows, n_items, density=0.15, format="csr", random_state=8, dtype=np.float32)
    graph.data[:] = rng.integers(1, 4, graph.nnz)  # ties among the two-hop sums
    arrays = (graph.indptr.astype(np.int64), graph.indices.astype(np.int32), graph.data)
    row = TwoHopRow(*arrays, n_items)
    for trial in range(30):
        nq = int(rng.integers(0, 6))
        q = np.sort(rng.choice(n_rows, nq, replace=False)).astype(np.int32)
        w = rng.integers(1, 3, nq).astype(np.float32)
        excluded = rng.choice(n_items, int(rng.integers(0, 5)), replace=False).astype(np.int32)
        mask = (rng.random(n_items) < 0.1).astype(np.uint8)
        k = int(rng.choice([1, 5, 20, 45]))
        idx, val = row.topk(q, w, excluded, mask, k)
        want_idx, want_val = two_hop_topk(
            np.zeros(1, np.int64),
            np.array([0, nq], np.int64),
            q,
            w,
            *arrays,
            n_items,
            np.array([0, len(excluded)], np.int64),
            excluded,
            mask,
            k,
            1,
        )
        np.testing.assert_array_equal(idx, want_idx[0], str(trial))
        np.testing.assert_array_equal(val, want_val[0], str(trial))
    empty = np.zeros(0, np.int32)
    with pytest.raises(ValueError, match="q_indices"):
        row.topk(np.array([n_rows], np.int32), np.ones(1, np.float32), empty, mask, 3)
    with pytest.raises(ValueError, match="excluded"):
        row.topk(empty, np.zeros(0, np.float32), np.array([n_items], np.int32), mask, 3)
    with pytest.raises(ValueError, match="mask"):
        row.topk(empty, np.zeros(0, np.float32), empty, mask[:-1], 3)
    with pytest.raises(ValueError, match="CSR"):
        TwoHopRow(arrays[0], arrays[1], arrays[2], 5)


def test_transposed_csr_is_the_scipy_transpose():
    from recforge.serving._fastpath import _transposed

    m = sp.random(30, 30, density=0.2, format="csr", random_state=4)
    m.data[:] = np.arange(1, m.nnz + 1)
    indptr, indices, data = _transposed(m.indptr, m.indices.astype(np.int32), m.data)
    want = m.T.tocsr()
    want.sort_indices()
    np.testing.assert_array_equal(indptr, want.indptr)
    np.testing.assert_array_equal(indices, want.indices)
    np.testing.assert_array_equal(data, want.data)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32 and data.dtype == np.float64
    empty = _transposed(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0))
    assert [len(a) for a in empty] == [1, 0, 0]


def test_concurrent_recommend_one_calls_answer_like_serial_ones(pipeline):
    rec = Recommender(pipeline, warm=False)
    bodies = _requests(pipeline, seed=3)
    serial = [rec.recommend_one(**body) for body in bodies]
    barrier = threading.Barrier(8)

    def worker(_):
        barrier.wait()
        return [[rec.recommend_one(**body) for body in bodies] for _ in range(2)]

    with ThreadPoolExecutor(8) as pool:
        for rounds in pool.map(worker, range(8)):
            for answers in rounds:
                for got, want in zip(answers, serial):
                    assert (got.items, got.scores, got.path) == (want.items, want.scores, want.path)


def test_the_staged_path_times_every_stage_and_names_the_sources(pipeline):
    rec = Recommender(pipeline, warm=False, precompute_recall=False)
    user = pipeline.user_map_.ids[0].item()
    result = rec.recommend_one(user_id=user, k=5, explain=True)
    precomputed = Recommender(pipeline, warm=False, precompute_recall=True)
    timed = precomputed.recommend_one(user_id=user, k=5, explain=True).timings_ms
    assert "recall:precomputed" in timed and not any(
        f"recall:{n}" in timed for n in pipeline.sources_
    )
    stages = [f"recall:{name}" for name in pipeline.sources_] + [
        "merge",
        "features",
        "rank",
        "topk",
    ]
    assert set(stages) <= set(result.timings_ms)
    assert all(result.timings_ms[s] >= 0 for s in stages)
    cands = pipeline.candidates([user])
    names = list(pipeline.sources_)
    for item, found_by in zip(result.items, result.sources):
        row = int(np.flatnonzero(pipeline.item_map_.ids[cands.items] == item)[0])
        listed = [n for n, r in zip(names, cands.source_ranks[row]) if np.isfinite(r)]
        assert found_by == "+".join(listed)


def test_id_index_maps_ints_and_strings_and_rejects_the_other_kind():
    ints = IdIndex(np.array([10, 30, 20], np.int64))
    assert [ints.get(v) for v in (10, 20, np.int32(30), 20.0, 99, "10", True, 2**70, 1.5)] == [
        0, 2, 1, 2, -1, -1, -1, -1, -1,
    ]  # fmt: skip
    strs = IdIndex(np.array(["a", "bé", "c"]))
    assert strs.indices(["bé", "c", "x", 0, None]).tolist() == [1, 2, -1, -1, -1]
    assert IdIndex(np.array([], np.int64)).get(0) == -1


def test_topk_excluding_is_the_topk_kernel_on_one_row():
    rng = np.random.default_rng(0)
    for n, k in [(50, 5), (7, 10), (1, 1), (9_724, 300), (9_724, 600)]:
        scores = rng.integers(0, 5, n).astype(np.float32)  # many ties
        if n > 1_000:  # the sampled-threshold selection of topk.hpp (k >= 128, k <= n / 16)
            scores = rng.standard_normal(n).astype(np.float32)
            scores[rng.random(n) < 0.3] = 0.0
        scores[rng.random(n) < 0.2] = -np.inf
        excluded = (rng.random(n) < 0.3).astype(np.uint8)
        idx, val = topk_excluding(scores, k, excluded)
        want_idx, want_val = topk(scores[None, :], k, global_mask=excluded.astype(bool))
        np.testing.assert_array_equal(idx, want_idx[0])
        np.testing.assert_array_equal(val, want_val[0])
    with pytest.raises(ValueError, match="NaN"):
        topk_excluding(np.array([np.nan], np.float32), 1, np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="excluded has length"):
        topk_excluding(np.zeros(3, np.float32), 1, np.zeros(2, np.uint8))


@pytest.fixture(scope="module")
def chooser():
    """A small pipeline that chose its ranker on validation users (selection_ recorded)."""
    model = TwoStage(
        _sources(),
        quotas=6,
        ranker=GBDTClassifier(n_estimators=10, max_depth=3, n_threads=1, random_state=0),
        n_threads=1,
        random_state=0,
    ).fit(synthetic_log(n_users=80, n_items=40, seed=3))
    assert model.selection_ is not None
    return model


def _choose(model, choice):
    """A copy of ``model`` ranked as if the validation had chosen ``choice`` (what
    ``TwoStage._select_ranker`` installs: the ranker, None for fusion or a SourceOrder)."""
    import copy

    chosen = copy.copy(model)
    if choice == "ranker":
        kind, name = "ranker", "ranker"
    elif choice == "rrf":
        kind, name, chosen.ranker_ = "rrf", "rrf", None
    else:
        kind, name = "source", choice
        chosen.ranker_ = SourceOrder(choice, model.feature_names_out_)
    chosen.selection_ = {**model.selection_, "selected": name, "kind": kind}
    return chosen


@pytest.mark.parametrize("choice", ["ranker", "rrf", "itemcf", "lfm", "popularity"])
@pytest.mark.parametrize("precompute", [False, True])
def test_the_staged_path_follows_what_the_pipeline_chose(chooser, choice, precompute):
    model = _choose(chooser, choice)
    expected = {"ranker": "GBDTClassifier", "rrf": "fusion only"}.get(choice, f"{choice} alone")
    assert model.ranked_by() == f"{expected} (chosen on validation)"
    fast = Recommender(model, warm=False, precompute_recall=precompute)
    assert (fast._plan._tables is None) == (choice != "ranker")  # no feature rows unless ranked
    slow = Recommender(model, warm=False, fastpath=False)
    for body in _requests(model, seed=6)[:35]:
        a, b = fast.recommend_one(**body, explain=True), slow.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body
    if choice not in ("ranker", "rrf"):  # the chosen source's own list comes first
        user = model.user_map_.ids[0].item()
        own = model.sources_[choice].recommend(user, k=3)[0].tolist()
        assert fast.recommend_one(user_id=user, k=3).items == own


def test_a_pipeline_that_keeps_no_ranker_is_served_by_its_choice():
    """min_gain too high for any ranker: the validation keeps fusion or the best source."""
    model = TwoStage(
        _sources(),
        quotas=6,
        ranker=GBDTClassifier(n_estimators=5, max_depth=3, n_threads=1, random_state=0),
        min_gain=1e9,
        n_threads=1,
        random_state=0,
    ).fit(synthetic_log(n_users=80, n_items=40, seed=3))
    assert model.selection_["kind"] in ("rrf", "source")
    fast = Recommender(model, warm=False)
    slow = Recommender(model, warm=False, fastpath=False)
    for body in _requests(model, seed=7)[:21]:
        a, b = fast.recommend_one(**body), slow.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body


@pytest.mark.parametrize("name", ["usercf", "itemcf", "lfm", "item2vec", "popularity"])
def test_a_fresh_users_source_list_is_its_public_fold_in(pipeline, name):
    """Each source's fold-in on the request path (UserCF: history_scorer's neighbours, ItemCF: the
    history's items and counts as its query row, both through the fused two-hop top-k; the
    embeddings' scores and the top-k of their row) against recommend_from_history, with and
    without excluded items, with repeated items in the history, deeper than the items it
    reaches."""
    rec = Recommender(pipeline, warm=False)
    source = next(s for s in rec._plan.sources if s.name == name)
    assert source.history_compiled
    if name in ("usercf", "itemcf"):
        assert source._history_query is not None
    model, items = pipeline.sources_[name], pipeline.item_map_.ids
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 5, 8):
        for depth in (5, 30, 60):
            item_idx = rng.choice(len(items), n, replace=n > 3).astype(np.int64)
            excluded = rng.choice(len(items), 3, replace=False)
            mask = np.zeros(len(items), bool)
            mask[excluded] = True
            for m, ids in ((None, []), (mask, items[excluded].tolist())):
                history = FreshHistory(item_idx, items[item_idx], len(items), m, ids)
                idx, val = source.history(history, depth)
                want_ids, want_val = model.recommend_from_history(
                    items[item_idx], k=depth, filter_items=ids or None
                )
                np.testing.assert_array_equal(val, want_val)
                valid = idx >= 0
                np.testing.assert_array_equal(items[idx[valid]], want_ids[valid])
                assert np.all(~valid == ~np.isfinite(want_val))


@pytest.mark.parametrize("normalize_max", [False, True])
@pytest.mark.parametrize("n_neighbors", [1, 3, 50])
def test_history_neighbours_are_usercfs_history_neighbours(normalize_max, n_neighbors):
    """The compiled neighbours of a history against UserCF's own (ties in similarity: a binary
    matrix with repeated rows; histories of 0 to 6 items)."""
    from recforge.serving._fastpath import history_neighbours

    rng = np.random.default_rng(n_neighbors)
    rows = (rng.random((12, 15)) < 0.3).astype(np.float32)
    matrix = sp.csr_matrix(np.vstack([rows, rows[:5]]))  # repeated users: equal similarities
    model = UserCF(n_neighbors=n_neighbors, normalize_max=normalize_max, n_threads=1).fit(matrix)
    scorer = model.history_scorer()
    arrays = (
        np.asarray(scorer._item_indptr, np.int64),
        np.asarray(scorer._item_users, np.int32),
        scorer._penalty,
        scorer._degree,
    )
    for n in (1, 2, 3, 6) * 5:
        items = np.unique(rng.choice(15, n)).astype(np.int32)
        want_users, want_sims = scorer.neighbours(items.astype(np.int64))
        users, sims = history_neighbours(*arrays, items, n_neighbors, normalize_max)
        if want_users is None or len(want_users) == 0:
            assert len(users) == 0
            continue
        np.testing.assert_array_equal(users, want_users)
        np.testing.assert_array_equal(sims, want_sims)
    with pytest.raises(ValueError, match="ascending"):
        history_neighbours(*arrays, np.array([3, 1], np.int32), n_neighbors, normalize_max)
    with pytest.raises(ValueError, match="ascending"):
        history_neighbours(*arrays, np.array([15], np.int32), n_neighbors, normalize_max)


def test_a_fresh_users_request_runs_without_numba_thread_settings(pipeline):
    """The demo-shaped pipeline (compiled fold-ins, GBDT ranker through TreeScorer) sets no Numba
    thread count per fresh user's request, only the BLAS limit its embedding fold-ins need."""
    import numba

    rec = Recommender(pipeline, warm=False)
    assert rec._plan._history_plain and rec._plan._history_blas
    items = pipeline.item_map_.ids.tolist()
    calls = []
    original = numba.set_num_threads
    numba.set_num_threads = lambda n: (calls.append(n), original(n))
    try:
        rec.recommend_one(recent_items=items[:3], k=5)
    finally:
        numba.set_num_threads = original
    assert calls == []


@pytest.mark.parametrize("seed", range(20))
def test_merge_row_is_the_pipeline_merge_kernel_on_one_row(seed):
    """Sources listing an item twice, pads, lists shorter than the quotas, fusion ties."""
    from recforge.kernels.pipeline import merge_candidates

    rng = np.random.default_rng(seed)
    n_sources, depth, n_items = int(rng.integers(1, 6)), int(rng.integers(1, 40)), 50
    lists = rng.integers(0, n_items, (n_sources, 1, depth)).astype(np.int64)
    for s in range(n_sources):  # a source with fewer items pads with -1
        lists[s, 0, int(rng.integers(0, depth + 1)) :] = -1
    scores = np.where(lists >= 0, rng.random(lists.shape), -np.inf).astype(np.float32)
    quotas = rng.integers(0, depth + 2, n_sources).astype(np.int64)
    for target in (1, 7, 3 * depth):
        out = (
            np.full((1, target), -1, np.int64),
            np.full((1, target, n_sources), np.nan, np.float32),
            np.full((1, target, n_sources), np.nan, np.float32),
            np.zeros((1, target), np.float32),
            np.zeros((1, target), np.float32),
            np.zeros(1, np.int64),
        )
        merge_candidates(lists, quotas, target, 60.0, *out, scores)
        n = int(out[5][0])
        got = merge_row(lists[:, 0], scores[:, 0], quotas, target, 60.0)
        want = (out[0][0, :n], out[1][0, :n], out[2][0, :n], out[4][0, :n], out[3][0, :n])
        for a, b, name in zip(got, want, ("items", "scores", "ranks", "n_sources", "rrf")):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, target {target}")
    with pytest.raises(ValueError, match="shape"):
        merge_row(lists[:, 0], scores[:, 0, :-1].copy(), quotas, 5, 60.0)
    empty = merge_row(np.full_like(lists[:, 0], -1), scores[:, 0], quotas, 5, 60.0)
    assert [len(a) for a in empty] == [0] * 5
    with pytest.raises(ValueError, match="2\\*\\*31"):
        merge_row(np.full_like(lists[:, 0], 2**31), scores[:, 0], quotas, 5, 60.0)


def test_precomputed_recall_lists_are_the_computed_ones(pipeline):
    on = Recommender(pipeline, warm=False, precompute_recall=True)
    off = Recommender(pipeline, warm=False, precompute_recall=False)
    plan = on._plan
    assert plan.precomputed is not None and off._plan.precomputed is None
    depth = plan.precomputed.depth
    assert depth == max(plan.depth, plan.n_candidates)
    n = len(plan.sources)
    for u in range(len(pipeline.user_map_.ids)):
        lists = np.full((n, depth), -1, np.int64)
        scores = np.full((n, depth), -np.inf, np.float32)
        plan.precomputed.fill(u, lists, scores)
        for s, source in enumerate(off._plan.sources):
            idx, val = source.user(u, depth, None)
            np.testing.assert_array_equal(lists[s], idx)
            np.testing.assert_array_equal(scores[s], val)
    for user in pipeline.user_map_.ids.tolist():
        for k in (1, 10, plan.n_candidates, plan.n_candidates + 5):
            a = on.recommend_one(user_id=user, k=k, explain=True)
            b = off.recommend_one(user_id=user, k=k, explain=True)
            assert (a.items, a.scores, a.sources) == (b.items, b.scores, b.sources), (user, k)
    for body in _requests(pipeline, seed=8):
        a, b = on.recommend_one(**body), off.recommend_one(**body)
        assert (a.items, a.scores, a.path) == (b.items, b.scores, b.path), body


def test_precomputed_candidates_are_the_computed_merge_and_feature_rows(pipeline):
    on = Recommender(pipeline, warm=False, precompute_recall=True)._plan
    off = Recommender(pipeline, warm=False, precompute_recall=False)._plan
    assert on.candidates is not None and off.candidates is None
    assert on.candidates.rows is not None and on.candidates.rows.flags.c_contiguous
    assert not on.candidates.rows.flags.writeable and not on.candidates.items.flags.writeable
    assert on.candidates.nbytes >= on.candidates.rows.nbytes > 0
    for u in range(len(pipeline.user_map_.ids)):
        cands, X = on.candidates.take(u)
        want = off._recall(lambda source, depth, u=u: source.user(u, depth, None), 1, {})
        for name in ("items", "source_scores", "source_ranks", "n_sources", "rrf"):
            np.testing.assert_array_equal(getattr(cands, name), getattr(want, name), name)
        np.testing.assert_array_equal(X, off._features(want, u, None), str(u))
        assert X.flags.c_contiguous
    timed = {}
    on.user(0, 5, None, timed)
    assert timed["recall:precomputed"] >= 0 and "merge" not in timed
    timed = {}
    on.user(0, on.n_candidates + 1, None, timed)  # more than the candidates: merged per request
    assert "merge" in timed


def test_precompute_recall_auto_follows_the_memory_budget(pipeline):
    per_user = 200 * 5 * 8
    assert wants_precomputed("auto", AUTO_BUDGET_BYTES // per_user, 200, 5)
    assert not wants_precomputed("auto", AUTO_BUDGET_BYTES // per_user + 1, 200, 5)
    assert wants_precomputed(True, 10**9, 200, 5) and not wants_precomputed(False, 1, 1, 1)
    assert Recommender(pipeline, warm=False)._plan.precomputed is not None  # small: on
    assert Recommender(pipeline, warm=False)._plan.candidates is not None
    lists = 600 * 200 * 5 * 8
    blocks = 600 * 300 * candidate_bytes(5, 60)
    assert candidate_bytes(5, 60) == 8 + 4 * 12 + 240
    budget_users = AUTO_BUDGET_BYTES // ((lists + blocks) // 600)
    assert wants_precomputed_candidates("auto", budget_users, 200, 300, 5, 60)
    assert not wants_precomputed_candidates("auto", budget_users + 1, 200, 300, 5, 60)
    assert wants_precomputed_candidates(True, 10**9, 200, 300, 5, 60)
    assert not wants_precomputed_candidates(False, 1, 200, 300, 5, 60)
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="precompute_recall"):
            Recommender(pipeline, warm=False, precompute_recall=bad)
    with pytest.raises(ValueError, match="precompute_recall"):  # any model, not only a pipeline
        Recommender(pipeline.sources_["itemcf"], warm=False, precompute_recall="yes")
