"""A fitted model is shared by the threads of a server, and a worker process may fork from it.

* 8 Python threads calling ``recommend`` / ``similar_items`` / ``recommend_from_history`` (every
  recall model) or ``predict_proba`` / ``predict`` (every ranker) at once get exactly the serial
  answers.
* Two models fitted at the same time in two threads equal the same two models fitted one after the
  other (deterministic algorithms at any ``n_threads``; SGD ones at ``n_threads=1`` with a seed).
* A child forked after the C++ thread pool and Numba's threads have run answers exactly like its
  parent and does not hang (bounded by a timeout; a hung child is killed and the test fails).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recforge.rank import DNN, GBDTLR, GBDTClassifier, GBDTRegressor, LogisticRegression, WideDeep
from recforge.recall import LFM, ContentBased, Item2Vec, ItemCF, PersonalRank, Popularity, UserCF
from tests.contract import contract_interactions
from tests.test_content_based import topics_for

N_THREADS = 8
ROUNDS = 3  # each thread repeats its calls, so that calls of different threads overlap
FORK_TIMEOUT_S = 120


class _ContentBased(ContentBased):
    """ContentBased with the contract data's topics supplied by ``fit(data)``."""

    def fit(self, interactions, item_features=None):
        return super().fit(
            interactions,
            item_features=topics_for(interactions) if item_features is None else item_features,
        )


RECALL_MODELS = {
    "Popularity": lambda: Popularity(n_threads=2),
    "ItemCF": lambda: ItemCF(n_neighbors=5, n_threads=2),
    "UserCF": lambda: UserCF(n_neighbors=5, n_threads=2),
    "PersonalRank-direct": lambda: PersonalRank(method="direct", n_threads=2),
    "PersonalRank-iterate": lambda: PersonalRank(method="iterate", n_threads=2),
    "PersonalRank-cg": lambda: PersonalRank(method="cg", n_threads=2),
    "ContentBased": lambda: _ContentBased(strategy="similarity"),
    "LFM": lambda: LFM(n_factors=8, epochs=5, n_threads=1, random_state=0),
    "Item2Vec": lambda: Item2Vec(vector_size=8, window=3, epochs=3, n_threads=1, random_state=0),
}

#: SGD models fitted with the C++ thread pool (Hogwild, not bit-identical): used where only
#: concurrency of the *use* matters, to have the pool's threads running before a fork.
POOL_MODELS = {
    "LFM-2threads": lambda: LFM(n_factors=8, epochs=5, n_threads=2, random_state=0),
    "Item2Vec-2threads": lambda: Item2Vec(
        vector_size=8, window=3, epochs=3, n_threads=2, random_state=0
    ),
}

RANKERS = {
    "LR-lbfgs": lambda: LogisticRegression(C=1.0, n_threads=2),
    "LR-ftrl": lambda: LogisticRegression(
        penalty="l1", C=10.0, max_iter=5, random_state=0, n_threads=1
    ),
    "GBDTClassifier": lambda: GBDTClassifier(n_estimators=8, max_depth=3, n_threads=2),
    "GBDTRegressor": lambda: GBDTRegressor(n_estimators=8, max_depth=3, n_threads=2),
    "GBDTLR": lambda: GBDTLR(n_estimators=4, max_depth=2, n_threads=2, random_state=0),
    "DNN": lambda: DNN(hidden_units=(8,), epochs=3, batch_size=32, n_threads=1, random_state=0),
    "WideDeep": lambda: WideDeep(
        hidden_units=(8,), epochs=3, batch_size=32, n_threads=1, random_state=0
    ),
}


@pytest.fixture(scope="module")
def data():
    return contract_interactions()


@pytest.fixture(scope="module")
def tabular():
    """400 × 6 float rows with a logistic label, and 97 rows to predict."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(497, 6)).astype(np.float64)
    logit = X @ np.array([1.5, -1.0, 0.5, 0.0, 2.0, -0.5])
    y = (rng.random(497) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X[:400], y[:400], X[400:]


# ---- helpers ------------------------------------------------------------------------------------
def _recall_calls(model, data):
    """Every read-only call of the recommend contract, as (name, thunk) pairs."""
    users = data.user_map.ids[:29]
    items = data.item_map.ids
    history = items[[0, 3, 7]]
    return [
        ("recommend-batch", lambda: model.recommend(users, k=6)),
        ("recommend-scalar", lambda: model.recommend(users[4], k=6, filter_seen=False)),
        ("recommend-whitelist", lambda: model.recommend(users[:10], k=4, items=items[::2])),
        ("similar_items", lambda: model.similar_items(items[:20], k=5)),
        (
            "recommend_from_history",
            lambda: model.recommend_from_history(history, weights=[1.0, 2.0, 0.5], k=6),
        ),
        ("recommend_from_history-empty", lambda: model.recommend_from_history([], k=6)),
    ]


def _ranker_calls(model, X):
    calls = [("predict", lambda: model.predict(X))]
    if hasattr(model, "predict_proba"):
        calls.append(("predict_proba", lambda: model.predict_proba(X)))
    return calls


def _assert_same(got, want, what):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for g, w in zip(got, want):
            _assert_same(g, w, what)
        return
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=what)


def _hammer(calls):
    """Every call ``ROUNDS`` times in each of ``N_THREADS`` threads started at once: all answers."""
    barrier = threading.Barrier(N_THREADS)

    def worker(_):
        barrier.wait()
        return [[(name, call()) for name, call in calls] for _ in range(ROUNDS)]

    with ThreadPoolExecutor(N_THREADS) as pool:
        return list(pool.map(worker, range(N_THREADS)))


def _check_concurrent_equals_serial(calls):
    serial = {name: call() for name, call in calls}
    for per_thread in _hammer(calls):
        for one_round in per_thread:
            for name, answer in one_round:
                _assert_same(answer, serial[name], name)


def _saved_arrays(model) -> dict:
    """The arrays and JSON record a model writes with ``save`` (the whole fitted state)."""
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _assert_same_model(a, b, what):
    arrays_a, arrays_b = _saved_arrays(a), _saved_arrays(b)
    assert arrays_a.keys() == arrays_b.keys(), what
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=f"{what}: {name}")


# ---- 8 threads on one fitted model ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(RECALL_MODELS) + list(POOL_MODELS))
def test_recall_model_concurrent_use_equals_serial(name, data):
    make = {**RECALL_MODELS, **POOL_MODELS}[name]
    model = make().fit(data)
    _check_concurrent_equals_serial(_recall_calls(model, data))


@pytest.mark.parametrize("name", list(RANKERS))
def test_ranker_concurrent_use_equals_serial(name, tabular):
    X, y, X_new = tabular
    target = X[:, 0] * 2.0 + X[:, 1] if name == "GBDTRegressor" else y
    model = RANKERS[name]().fit(X, target)
    _check_concurrent_equals_serial(_ranker_calls(model, X_new))


# ---- two fits at once ----------------------------------------------------------------------------
def _fit_pair_concurrently(make_a, make_b, fit_a, fit_b):
    barrier = threading.Barrier(2)

    def run(make, fit):
        model = make()
        barrier.wait()
        return fit(model)

    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(run, make_a, fit_a)
        fb = pool.submit(run, make_b, fit_b)
        return fa.result(), fb.result()


RECALL_PAIRS = [
    ("ItemCF", "UserCF"),
    ("Popularity", "PersonalRank-iterate"),
    ("PersonalRank-cg", "ContentBased"),
    ("LFM", "Item2Vec"),
    ("LFM", "LFM"),
    ("Item2Vec", "ItemCF"),
    ("PersonalRank-direct", "UserCF"),
]


@pytest.mark.parametrize("pair", RECALL_PAIRS, ids=["+".join(p) for p in RECALL_PAIRS])
def test_two_recall_fits_in_two_threads_equal_sequential_fits(pair, data):
    make_a, make_b = RECALL_MODELS[pair[0]], RECALL_MODELS[pair[1]]
    together = _fit_pair_concurrently(make_a, make_b, lambda m: m.fit(data), lambda m: m.fit(data))
    one_by_one = (make_a().fit(data), make_b().fit(data))
    for name, got, want in zip(pair, together, one_by_one):
        _assert_same_model(got, want, name)
        _assert_same(
            got.recommend(data.user_map.ids[:29], k=5),
            want.recommend(data.user_map.ids[:29], k=5),
            name,
        )


RANKER_PAIRS = [
    ("LR-lbfgs", "GBDTClassifier"),
    ("DNN", "WideDeep"),
    ("GBDTLR", "LR-ftrl"),
    ("GBDTClassifier", "GBDTClassifier"),
    ("DNN", "DNN"),
]


@pytest.mark.parametrize("pair", RANKER_PAIRS, ids=["+".join(p) for p in RANKER_PAIRS])
def test_two_ranker_fits_in_two_threads_equal_sequential_fits(pair, tabular):
    X, y, X_new = tabular
    make_a, make_b = RANKERS[pair[0]], RANKERS[pair[1]]
    together = _fit_pair_concurrently(make_a, make_b, lambda m: m.fit(X, y), lambda m: m.fit(X, y))
    one_by_one = (make_a().fit(X, y), make_b().fit(X, y))
    for name, got, want in zip(pair, together, one_by_one):
        _assert_same_model(got, want, name)
        np.testing.assert_array_equal(
            got.predict_proba(X_new), want.predict_proba(X_new), err_msg=name
        )


def test_lr_passes_in_two_threads_equal_a_serial_pass(tabular):
    # two threads' passes at once: one gets the takeover helpers, the other runs alone
    X, y, _ = tabular
    want = _lr_pass(X, y)
    with ThreadPoolExecutor(2) as pool:
        for got in pool.map(lambda _: _lr_pass(X, y), range(40)):
            _assert_same(got, want, "lr-pass")


# ---- fork after the thread pools have run --------------------------------------------------------
def _lr_pass(X, y):
    """(partial, losses) of an L-BFGS pass of 4 chunks on 2 threads: the caller and a takeover
    helper (the crew of the process: the parent's, or the child's own after the fork)."""
    from recforge.kernels import logistic

    bounds = logistic.chunk_bounds(len(X), 4)
    partial, losses = np.empty((4, X.shape[1] + 1)), np.empty(4)
    w, sw = np.full(X.shape[1], 0.1), np.ones(len(X))
    logistic.loss_grad_dense_chunks(X, y.astype(np.float64), sw, w, 0.0, bounds, partial, losses, 2)
    logistic.release_pass_inputs()
    return partial, losses


def _answers(model, data, ranker, X_new, tabular_target):
    """What the child must reproduce: recall calls, a ranker's probabilities, fresh fits."""
    out = {name: call() for name, call in _recall_calls(model, data)}
    out["ranker-predict_proba"] = ranker.predict_proba(X_new)
    # a fit inside the child runs the C++ pool (LFM at 2 threads uses it for its epochs; only the
    # equality of the *deterministic* refits is asserted) and Numba's parallel kernels (ItemCF)
    out["refit-ItemCF"] = (
        ItemCF(n_neighbors=5, n_threads=2).fit(data).recommend(data.user_map.ids[:29], k=6)
    )
    lfm = LFM(n_factors=8, epochs=2, n_threads=2, random_state=0).fit(data)
    out["refit-LFM-finite"] = np.isfinite(lfm.recommend(data.user_map.ids[:29], k=6)[1][:, 0]).all()
    out["lr-pass"] = _lr_pass(*tabular_target)
    out["refit-GBDT"] = (
        GBDTClassifier(n_estimators=4, max_depth=3, n_threads=2)
        .fit(*tabular_target)
        .predict_proba(X_new)
    )
    return out


@pytest.fixture(scope="module")
def warmed(data, tabular):
    """A fitted pool-using model and ranker, used once in the parent so every pool has threads."""
    X, y, X_new = tabular
    model = POOL_MODELS["LFM-2threads"]().fit(data)
    ItemCF(n_neighbors=5, n_threads=2).fit(data).recommend(data.user_map.ids[:5], k=3)
    ranker = GBDTClassifier(n_estimators=8, max_depth=3, n_threads=2).fit(X, y)
    parent = _answers(model, data, ranker, X_new, (X, y))
    return model, ranker, parent


def _pack(answers: dict) -> bytes:
    """The answers as ``.npz`` bytes (a tuple answer as ``name|0``, ``name|1``, ...), for a pipe."""
    flat = {}
    for key, value in answers.items():
        for i, part in enumerate(value if isinstance(value, tuple) else (value,)):
            flat[f"{key}|{i}"] = np.asarray(part)
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    return buffer.getvalue()


def _unpack(payload: bytes, like: dict) -> dict:
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        flat = {name: npz[name] for name in npz.files}
    parts = {}
    for name in sorted(flat, key=lambda n: (n.split("|")[0], int(n.split("|")[1]))):
        parts.setdefault(name.split("|")[0], []).append(flat[name])
    return {k: tuple(v) if isinstance(like.get(k), tuple) else v[0] for k, v in parts.items()}


def _compare_answers(child, parent):
    assert child.keys() == parent.keys()
    for name in parent:
        _assert_same(child[name], parent[name], name)


def test_os_fork_child_answers_like_parent(warmed, data, tabular):
    model, ranker, parent = warmed
    X, y, X_new = tabular
    read_end, write_end = os.pipe()
    pid = os.fork()
    if (
        pid == 0
    ):  # the child: answer, write the result, exit without running the parent's atexit/pytest
        status = 1
        try:
            os.close(read_end)
            payload = _pack(_answers(model, data, ranker, X_new, (X, y)))
            with os.fdopen(write_end, "wb") as f:
                f.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], FORK_TIMEOUT_S)
            if not ready:
                os.kill(pid, 9)
                pytest.fail(
                    f"the forked child did not answer within {FORK_TIMEOUT_S} s (hang after fork)"
                )
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child failed or crashed"
    _compare_answers(_unpack(b"".join(chunks), parent), parent)


def _child_main(connection, model, data, ranker, X_new, tabular_target):
    connection.send_bytes(_pack(_answers(model, data, ranker, X_new, tabular_target)))
    connection.close()


def test_multiprocessing_fork_context_child_answers_like_parent(warmed, data, tabular):
    model, ranker, parent = warmed
    X, y, X_new = tabular
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(sender, model, data, ranker, X_new, (X, y)))
    child.start()
    sender.close()
    try:
        if not receiver.poll(FORK_TIMEOUT_S):
            child.kill()
            pytest.fail(
                f"the 'fork' child did not answer within {FORK_TIMEOUT_S} s (hang after fork)"
            )
        payload = receiver.recv_bytes()
    except EOFError:
        pytest.fail(
            f"the 'fork' child died without answering (exit code "
            f"{child.join(FORK_TIMEOUT_S) or child.exitcode})"
        )
    finally:
        child.join(FORK_TIMEOUT_S)
        receiver.close()
    assert child.exitcode == 0
    _compare_answers(_unpack(payload, parent), parent)
