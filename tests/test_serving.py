"""``recforge serve`` over real HTTP: a server subprocess on a free loopback port per fixture."""

from __future__ import annotations

import concurrent.futures
import signal
import sqlite3
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from recforge.recall import ItemCF, Popularity, UserCF  # noqa: E402

from ._serving_helpers import running_server, small_interactions  # noqa: E402

K = 10
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def data():
    return small_interactions()


@pytest.fixture(scope="module")
def itemcf(data):
    return ItemCF(n_threads=1).fit(data)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, itemcf, data):
    root = tmp_path_factory.mktemp("serving")
    itemcf.save(root / "itemcf.npz")
    UserCF(n_threads=1).fit(data).save(root / "usercf.npz")
    (root / "corrupt.npz").write_bytes((root / "itemcf.npz").read_bytes()[:500])
    return root


@pytest.fixture(scope="module")
def server(model_dir):
    with (
        running_server(model_dir / "itemcf.npz", model_dir, token=TOKEN, name="main") as (_, url),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def _real(items, scores):
    keep = np.isfinite(scores)
    return items[keep].tolist(), scores[keep]


def _same(answer, expected):
    items, scores = _real(*expected)
    assert answer["items"] == items
    np.testing.assert_allclose(answer["scores"], scores, rtol=1e-6)


# ---------------------------------------------------------------------- recommend
def test_known_user_gets_the_models_answer(server, itemcf):
    for user in itemcf.user_map_.ids[:5].tolist():
        r = server.post("/recommend", json={"user_id": user, "k": K})
        assert r.status_code == 200, r.text
        assert r.json()["path"] == "user"
        _same(r.json(), itemcf.recommend(user, K))


def test_fresh_user_is_folded_in_from_recent_items(server, itemcf):
    recent = itemcf.item_map_.ids[[3, 7, 20]].tolist()
    for user_id in (None, 999_999, "someone-new"):
        body = {"recent_items": recent, "k": K, "explain": True}
        if user_id is not None:
            body["user_id"] = user_id
        r = server.post("/recommend", json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["path"] == "history"
        _same(answer, itemcf.recommend_from_history(recent, k=K))
        assert set(answer["sources"]) <= {"ItemCF", "popularity"}
        assert {"lookup", "recall", "total"} <= set(answer["timings_ms"])


def test_unknown_user_gets_popularity(server, data):
    expected = Popularity(n_threads=1).fit(data).recommend_from_history([], k=K)
    for body in (
        {"user_id": 424242, "k": K},
        {"k": K},
        {"user_id": 1, "recent_items": [77], "k": K},
    ):
        r = server.post("/recommend", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["path"] == "popularity"
        _same(r.json(), expected)


def test_unknown_item_in_exclude_is_ignored(server, itemcf):
    user = int(itemcf.user_map_.ids[0])
    first = itemcf.recommend(user, K)[0][:2].tolist()
    r = server.post(
        "/recommend", json={"user_id": user, "k": K, "exclude": [*first, 123456789, "x"]}
    )
    assert r.status_code == 200, r.text
    _same(r.json(), itemcf.recommend(user, K, filter_items=first))
    assert not set(first) & set(r.json()["items"])


def test_k_beyond_the_catalogue_returns_what_exists(server, itemcf):
    r = server.post("/recommend", json={"k": 1000})
    assert r.status_code == 200
    assert len(r.json()["items"]) == itemcf.n_items_ == len(set(r.json()["items"]))


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'{"k": 10',
        b"null",
    ],
)
def test_bad_json_is_a_4xx(server, body):
    r = server.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


@pytest.mark.parametrize(
    "body",
    [
        b'{"k": 1e999}',
        b'{"k": NaN}',
        b'{"k": 10, "context": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    ],
)
def test_unencodable_and_deeply_nested_values_are_4xx(server, body):
    r = server.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert "detail" in r.json()


@pytest.mark.parametrize(
    "body",
    [
        {"k": "10"},
        {"k": 2.5},
        {"k": True},
        {"user_id": [1]},
        {"user_id": 1.5},
        {"user_id": True},
        {"recent_items": "abc"},
        {"recent_items": [[1]]},
        {"recent_items": [None]},
        {"exclude": {"a": 1}},
        {"explain": "yes"},
        {"k": 0},
        {"k": -3},
        {"k": 1001},
        {"k": 10**30},
        {"user_id": 2**64},
        {"unknown_field": 1},
        {"recent_items": list(range(1001))},
        {"user_id": "x" * 300},
    ],
)
def test_wrong_types_and_out_of_range_values_are_422(server, body):
    r = server.post("/recommend", json=body)
    assert r.status_code == 422, (body, r.text)


def test_oversized_body_is_413(server):
    body = b'{"k": 10, "exclude": [' + b"1, " * 40_000 + b"1]}"
    r = server.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413


# ---------------------------------------------------------------------- other endpoints
def test_similar_items(server, itemcf):
    item = int(itemcf.item_map_.ids[4])
    r = server.get(f"/similar-items/{item}", params={"k": 5})
    assert r.status_code == 200, r.text
    _same(r.json(), itemcf.similar_items(item, 5))
    assert server.get("/similar-items/31337").status_code == 404
    assert server.get("/similar-items/not-an-int").status_code == 404
    assert server.get(f"/similar-items/{item}", params={"k": 0}).status_code == 422
    assert server.get(f"/similar-items/{item}", params={"k": "many"}).status_code == 422


def test_the_hot_endpoints_keep_their_openapi_page_and_error_shape(server):
    """POST /recommend and GET /similar-items are answered in front of FastAPI: the OpenAPI page
    still documents them and a validation error names where, as FastAPI's 422 answers do."""
    spec = server.get("/openapi.json").json()
    assert "post" in spec["paths"]["/recommend"]
    assert "get" in spec["paths"]["/similar-items/{item_id}"]
    assert server.get("/docs").status_code == 200
    detail = server.post("/recommend", json={"k": 0}).json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "k"]]
    detail = server.get("/similar-items/1", params={"k": "many"}).json()["detail"]
    assert [d["loc"] for d in detail] == [["query", "k"]]
    # the other methods of those paths stay FastAPI's
    assert server.get("/recommend").status_code == 405
    assert server.get("/similar-items/").status_code == 404


def test_health(server, itemcf):
    r = server.get("/health")
    assert r.status_code == 200
    assert r.json()["n_items"] == itemcf.n_items_ and r.json()["status"] == "ok"


def test_feedback_and_metrics(server):
    before = server.get("/metrics").text
    assert server.post("/recommend", json={"k": 3}).status_code == 200
    events = [("impression", 0), ("impression", 1), ("impression", 2), ("click", 1)]
    for event, position in events:
        r = server.post(
            "/feedback",
            json={
                "user_id": 1,
                "item_id": 5001,
                "event": event,
                "position": position,
                "timestamp": 1.0,
            },
        )
        assert r.status_code == 200, r.text
    for bad in (
        {"user_id": 1, "item_id": 2, "event": "like", "position": 0},
        {"user_id": 1, "item_id": 2, "event": "click", "position": -1},
        {"user_id": 1, "event": "click", "position": 0},
        {"user_id": 1, "item_id": 2, "event": "click", "position": 0, "timestamp": "now"},
    ):
        assert server.post("/feedback", json=bad).status_code == 422
    text = server.get("/metrics").text
    assert 'recforge_feedback_events_total{event="click"}' in text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert 'recforge_requests_total{endpoint="/recommend",status="200"}' in values
    assert 'recforge_stage_latency_seconds_count{stage="recall"}' in values
    assert float(values["recforge_ctr"]) == pytest.approx(
        float(values['recforge_feedback_events_total{event="click"}'])
        / float(values['recforge_feedback_events_total{event="impression"}'])
    )
    assert before != text


# ---------------------------------------------------------------------- concurrency
def test_concurrent_clients_get_the_serial_answers(server, itemcf):
    users = itemcf.user_map_.ids[:24].tolist()
    bodies = [{"user_id": u, "k": K} for u in users]
    bodies += [
        {"recent_items": itemcf.item_map_.ids[[i, i + 1]].tolist(), "k": K} for i in range(8)
    ]
    bodies += [{"k": K, "exclude": itemcf.item_map_.ids[:i].tolist()} for i in range(8)]
    serial = [server.post("/recommend", json=b).json() for b in bodies]

    def work(offset):
        with httpx.Client(base_url=str(server.base_url), timeout=30) as client:
            order = bodies[offset:] + bodies[:offset]
            return offset, [client.post("/recommend", json=b).json() for b in order]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(0, 8 * 5, 5)))
    for offset, answers in results:
        assert answers == serial[offset:] + serial[:offset]


# ---------------------------------------------------------------------- reload
def test_reload_needs_the_token(server):
    assert server.post("/admin/reload").status_code == 401
    assert (
        server.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 403
    )


def test_reload_swaps_good_files_and_keeps_the_old_model_on_bad_ones(model_dir, data, itemcf):
    usercf = UserCF.load(model_dir / "usercf.npz")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    user = int(itemcf.user_map_.ids[2])
    with (
        running_server(model_dir / "itemcf.npz", model_dir, token=TOKEN, name="reload") as (_, url),
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        stop = threading.Event()
        statuses = []

        def traffic():  # in-flight requests across the swaps: every one must succeed
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline and len(statuses) < 2000:
                statuses.append(
                    client.post("/recommend", json={"user_id": user, "k": K}).status_code
                )

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            for bad in ("corrupt.npz", "missing.npz", "."):
                r = client.post("/admin/reload", json={"path": str(model_dir / bad)}, headers=auth)
                assert r.status_code == 422, r.text
                assert client.get("/health").json()["model"] == "ItemCF"
            _same(
                client.post("/recommend", json={"user_id": user, "k": K}).json(),
                itemcf.recommend(user, K),
            )
            r = client.post(
                "/admin/reload", json={"path": str(model_dir / "usercf.npz")}, headers=auth
            )
            assert r.status_code == 200, r.text
            assert client.get("/health").json()["model"] == "UserCF"
            _same(
                client.post("/recommend", json={"user_id": user, "k": K}).json(),
                usercf.recommend(user, K),
            )
            r = client.post("/admin/reload", headers=auth)  # the current file again
            assert r.status_code == 200 and r.json()["model"] == "UserCF"
        finally:
            stop.set()
            thread.join(timeout=70)
        assert statuses and set(statuses) == {200}


# ---------------------------------------------------------------------- durability
def test_acknowledged_feedback_survives_sigkill(model_dir, tmp_path):
    """Events acknowledged (200 with an id) before a SIGKILL under write load are all in the log
    after a restart. Each acknowledgement waits for an fsync, which on a loaded shared disk can
    stall for seconds: the writer's timeouts are generous (a slow acknowledgement is waited
    for, never taken for the server's death), and an error before the kill fails the test."""
    db = tmp_path / "feedback.sqlite3"
    acked = {}
    errors = []  # the writer's errors before the kill
    patience = 120.0  # seconds; the normal run needs ~1 s for 100 acknowledgements
    with running_server(model_dir / "itemcf.npz", tmp_path, feedback_db=db, name="victim") as (
        proc,
        url,
    ):
        stop, killed = threading.Event(), threading.Event()

        def writer():
            with httpx.Client(base_url=url, timeout=patience) as client:
                deadline = time.monotonic() + patience
                for i in range(5000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    event = {
                        "user_id": i,
                        "item_id": f"item-{i}",
                        "event": ("click", "impression")[i % 2],
                        "position": i % 7,
                        "timestamp": float(i),
                    }
                    try:
                        r = client.post("/feedback", json=event)
                    except httpx.HTTPError as error:
                        if not killed.is_set():
                            errors.append(repr(error))
                        return  # the server is gone
                    if r.status_code == 200:
                        acked[r.json()["id"]] = event

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            deadline = time.monotonic() + patience
            while len(acked) < 100 and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.01)
            killed.set()
            proc.send_signal(signal.SIGKILL)  # mid-write: the writer is still posting
            proc.wait(timeout=30)
        finally:
            stop.set()
            thread.join(timeout=patience + 10)
    assert not errors, errors
    assert len(acked) >= 100
    with running_server(model_dir / "itemcf.npz", tmp_path, feedback_db=db, name="restarted") as (
        _,
        url,
    ):
        text = httpx.get(url + "/metrics", timeout=patience).text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    stored_total = sum(
        float(values[f'recforge_feedback_events_total{{event="{e}"}}'])
        for e in ("click", "impression")
    )
    assert stored_total >= len(acked)
    with sqlite3.connect(db) as conn:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, user_id, item_id, event, position, timestamp FROM feedback"
            )
        }
    for event_id, event in acked.items():
        assert rows[event_id] == (
            event["user_id"],
            event["item_id"],
            event["event"],
            event["position"],
            event["timestamp"],
        )
