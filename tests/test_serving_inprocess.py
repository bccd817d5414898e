"""The serving parts in-process: Recommender, model loader, feedback store, telemetry, CLI."""

from __future__ import annotations

import doctest
import importlib
import io
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.cli import main
from recforge.exceptions import ModelFileError
from recforge.rank import LogisticRegression
from recforge.recall import LFM, ItemCF, Popularity
from recforge.serving import FeedbackStore, Recommender, load_model
from recforge.serving.loader import SERVABLE_CLASSES, model_class_name
from recforge.serving.telemetry import Telemetry

from ._serving_helpers import small_interactions


@pytest.fixture(scope="module")
def data():
    return small_interactions(seed=1)


@pytest.fixture(scope="module")
def rec(data):
    return Recommender(ItemCF(n_threads=1).fit(data))


def _real(items, scores):
    keep = np.isfinite(scores)
    return items[keep].tolist(), scores[keep].tolist()


# ---------------------------------------------------------------------- Recommender
def test_the_three_paths_match_the_model(rec, data):
    model = rec.model
    user = model.user_map_.ids[3].item()
    r = rec.recommend_one(user_id=user, k=10)
    assert r.path == "user" and (r.items, r.scores) == _real(*model.recommend(user, 10))
    recent = model.item_map_.ids[[1, 2]].tolist()
    r = rec.recommend_one(recent_items=[*recent, 987654], k=10)  # an unknown recent item is ignored
    assert r.path == "history" and (r.items, r.scores) == _real(
        *model.recommend_from_history(recent, k=10)
    )
    r = rec.recommend_one(user_id=user, recent_items=[987654], k=10)  # known user: stored history
    assert r.path == "user"
    popular = Popularity().fit(data).recommend_from_history([], k=10)
    for kwargs in ({}, {"user_id": "nobody"}, {"recent_items": [987654]}, {"recent_items": []}):
        r = rec.recommend_one(k=10, **kwargs)
        assert r.path == "popularity" and (r.items, r.scores) == _real(*popular)


def test_explain_names_sources_and_stages_and_backfills_from_popularity(rec):
    model = rec.model
    user = model.user_map_.ids[0].item()
    k = model.n_items_
    r = rec.recommend_one(user_id=user, k=k, explain=True)
    own = _real(*model.recommend(user, k))[0]
    assert r.items[: len(own)] == own
    assert r.sources == ["ItemCF"] * len(own) + ["popularity"] * (len(r.items) - len(own))
    seen = set(model.item_map_.ids[model.user_items_[model.user_map_.index(user)].indices].tolist())
    assert len(r.items) == len(set(r.items)) == k - len(seen) and not seen & set(r.items)
    assert set(r.timings_ms) == {"lookup", "recall", "backfill", "total"}
    assert all(v >= 0 for v in r.timings_ms.values())
    plain = rec.recommend_one(user_id=user, k=k)
    assert plain.sources is None and plain.timings_ms is None and plain.items == r.items


def test_exclude_drops_items_and_ignores_unknown_ones(rec):
    first = rec.recommend_one(k=3).items
    r = rec.recommend_one(k=3, exclude=[*first, 424242, "nope"])
    assert not set(first) & set(r.items) and len(r.items) == 3


def test_bad_arguments_name_themselves(rec):
    with pytest.raises(TypeError, match="user_id"):
        rec.recommend_one(user_id=1.5)
    with pytest.raises(TypeError, match="user_id"):
        rec.recommend_one(user_id=True)
    with pytest.raises(ValueError, match="k"):
        rec.recommend_one(k=0)
    with pytest.raises(TypeError, match="recent_items"):
        rec.recommend_one(recent_items=[[1, 2]])
    with pytest.raises(TypeError, match="exclude"):
        rec.recommend_one(exclude=[None])
    with pytest.raises(KeyError, match="31337"):
        rec.similar_items(31337, 5)
    with pytest.raises(TypeError, match="item_id"):
        rec.similar_items([1, 2], 5)
    with pytest.raises(TypeError, match="fitted recforge recall model"):
        Recommender(object())


def test_similar_items_matches_the_model(rec):
    item = rec.model.item_map_.ids[5].item()
    assert rec.similar_items(item, 7) == _real(*rec.model.similar_items(item, 7))


def test_recommender_is_immutable(rec):
    with pytest.raises(AttributeError, match="immutable"):
        rec._model = None
    with pytest.raises(AttributeError):
        rec.model = None


def test_string_ids():
    m = sp.csr_matrix([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1]], dtype=np.float32)
    from recforge.data import IdMap, Interactions

    inter = Interactions(
        m, user_map=IdMap(["u1", "u2", "u3"]), item_map=IdMap(["a", "b", "c", "d"])
    )
    rec = Recommender(ItemCF().fit(inter))
    assert rec.recommend_one(user_id="u1", k=2).items == _real(*rec.model.recommend("u1", 2))[0]
    assert rec.recommend_one(user_id=1, recent_items=["b"], k=3).path == "history"


# ---------------------------------------------------------------------- loader
def test_load_model_reads_any_recall_class(tmp_path, data):
    for model in (Popularity(), ItemCF(), LFM(n_factors=4, epochs=1, n_threads=1, random_state=0)):
        path = tmp_path / f"{type(model).__name__}.npz"
        model.fit(data).save(path)
        assert model_class_name(path) == type(model).__name__
        loaded = load_model(path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.recommend(1000, 5)[0], model.recommend(1000, 5)[0])
        rec = Recommender.load(path)
        assert rec.file == path
    assert set(SERVABLE_CLASSES) >= {"Popularity", "ItemCF", "UserCF", "LFM", "Item2Vec"}


def test_load_model_refuses_bad_files(tmp_path, data):
    with pytest.raises(FileNotFoundError, match=r"missing.npz"):
        load_model(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match=r"junk.npz"):
        load_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", x=np.arange(3))
    with pytest.raises(ModelFileError, match=r"plain.npz"):
        load_model(tmp_path / "plain.npz")
    good = io.BytesIO()
    Popularity().fit(data).save(good)
    (tmp_path / "cut.npz").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(ModelFileError, match=r"cut.npz"):
        Recommender.load(tmp_path / "cut.npz")
    X = np.random.default_rng(0).normal(size=(40, 3))
    LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)).save(tmp_path / "ranker.npz")
    with pytest.raises(ModelFileError, match="cannot serve"):
        load_model(tmp_path / "ranker.npz")


# ---------------------------------------------------------------------- feedback store
def test_store_keeps_events_types_and_aggregates(tmp_path):
    path = tmp_path / "fb.sqlite3"
    store = FeedbackStore(path)
    stats = store.stats()
    assert (stats.impressions, stats.clicks) == (0, 0)
    assert math.isnan(stats.ctr) and math.isnan(stats.mean_click_position)
    store.add(user_id="123", item_id=7, event="impression", position=0, timestamp=1.0)
    store.add(user_id="123", item_id=8, event="impression", position=1, timestamp=1.0)
    store.add(user_id=5, item_id="8", event="click", position=3, timestamp=2.0)
    store.close()
    store = FeedbackStore(path)  # reopened: everything is there, ids keep their types
    events = store.events()
    assert [(e["user_id"], e["item_id"]) for e in events] == [("123", 7), ("123", 8), (5, "8")]
    stats = store.stats()
    assert (stats.impressions, stats.clicks, stats.ctr, stats.mean_click_position) == (
        2,
        1,
        0.5,
        3.0,
    )
    assert store.count() == 3
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"event": "like"}, ValueError, "event"),
        ({"position": -1}, ValueError, "position"),
        ({"position": True}, ValueError, "position"),
        ({"timestamp": float("nan")}, ValueError, "timestamp"),
        ({"user_id": 1.5}, TypeError, "user_id"),
        ({"item_id": None}, TypeError, "item_id"),
        ({"item_id": 2**70}, ValueError, "item_id"),
    ],
)
def test_store_refuses_bad_events(kwargs, error, name):
    store = FeedbackStore(":memory:")
    event = {"user_id": 1, "item_id": 2, "event": "click", "position": 0, "timestamp": 0.0} | kwargs
    with pytest.raises(error, match=name):
        store.add(**event)
    assert store.count() == 0
    store.close()
    with pytest.raises(TypeError, match="path"):
        FeedbackStore(3)


# ---------------------------------------------------------------------- telemetry
def test_telemetry_histograms_are_cumulative():
    t = Telemetry()
    for seconds in (0.0002, 0.003, 0.003, 7.0):
        t.count_request("/recommend", 200, seconds)
    t.count_request("/recommend", 422, 0.001)
    t.observe_stages({"recall": 2.0, "total": 3.0})
    text = t.render()
    assert 'recforge_request_latency_seconds_bucket{endpoint="/recommend",le="0.00025"} 1' in text
    assert 'recforge_request_latency_seconds_bucket{endpoint="/recommend",le="0.005"} 4' in text
    assert 'recforge_request_latency_seconds_bucket{endpoint="/recommend",le="+Inf"} 5' in text
    assert 'recforge_errors_total{endpoint="/recommend"} 1' in text
    assert 'recforge_stage_latency_seconds_count{stage="recall"} 1' in text


# ---------------------------------------------------------------------- CLI and docs
def test_serve_command_reports_a_bad_model_file(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    assert main(["serve", str(tmp_path / "bad.npz"), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--feedback-db" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name",
    [
        "recforge.serving.recommender",
        "recforge.serving.store",
        "recforge.serving.loader",
        "recforge.serving.telemetry",
        "recforge.serving.app",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


class _PipelineLike:
    """The recommend contract plus ``sources_`` and no ``user_items_``, like a fitted pipeline."""

    def __init__(self, inner, sources):
        self._inner, self.sources_ = inner, sources
        self.user_map_, self.item_map_ = inner.user_map_, inner.item_map_
        self.recommend = inner.recommend
        self.recommend_from_history = inner.recommend_from_history
        self.similar_items = inner.similar_items


def test_a_pipeline_like_model_falls_back_to_its_popularity_source(data):
    inner = ItemCF(n_threads=1).fit(data)
    popularity = Popularity(weighting="weight").fit(data)
    rec = Recommender(_PipelineLike(inner, {"itemcf": inner, "popularity": popularity}))
    r = rec.recommend_one(k=5)
    assert r.path == "popularity" and (r.items, r.scores) == _real(
        *popularity.recommend_from_history([], k=5)
    )
    with pytest.raises(TypeError, match="Popularity source"):
        Recommender(_PipelineLike(inner, {"itemcf": inner}))
