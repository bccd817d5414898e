"""recforge.distributed.fit_gbdt on the local 2-process cluster: the single machine's trees."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

from recforge.distributed import fit_gbdt  # noqa: E402
from recforge.rank import GBDTClassifier, GBDTRegressor  # noqa: E402

CAT = 5  # the categorical column of _data
STRUCTURE = ("tree", "node", "feature", "threshold_bin", "threshold", "default_left",
             "categorical", "left", "right", "depth")  # fmt: skip
VALUES = ("value", "gain", "cover")


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def _data(n=3000, seed=0):
    """4 continuous features, a 6-value one with 10% missing, a categorical code (0..6) with 5%
    missing; a binary label from a noisy logistic model."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 6), np.float64)
    X[:, :4] = rng.normal(size=(n, 4))
    X[:, 4] = rng.integers(0, 6, n)
    X[rng.random(n) < 0.1, 4] = np.nan
    X[:, CAT] = rng.integers(0, 7, n)
    X[rng.random(n) < 0.05, CAT] = np.nan
    effect = np.array([0.0, 1.5, -1.0, 0.5, 0.0, 2.0, -2.0])
    cat_effect = np.where(np.isnan(X[:, CAT]), 1.0, effect[np.nan_to_num(X[:, CAT]).astype(int)])
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + 0.3 * np.nan_to_num(X[:, 4]) - 1
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit + cat_effect)))).astype(np.int64)
    return X, y


@pytest.fixture(scope="module")
def xy():
    return _data()


def assert_same_trees(got, want):
    """Same bins, split structure and thresholds, and bit-identical gains, covers and leaf values:
    a histogram bin is a float64 sum of float32 gradients, exact here whatever the order (the
    cluster adds per shard, then across shards)."""
    a, b = got.trees_to_dataframe(), want.trees_to_dataframe()
    assert got.n_trees_ == want.n_trees_ and len(a) == len(b)
    for name in STRUCTURE + VALUES:
        assert np.array_equal(a[name].to_numpy(), b[name].to_numpy(), equal_nan=True), name
    assert np.array_equal(got._mapper.get_state()[0], want._mapper.get_state()[0])
    assert np.array_equal(got._mapper.get_state()[1], want._mapper.get_state()[1])
    assert got.base_margin_ == want.base_margin_


PARAMS = [
    {"n_estimators": 12, "max_depth": 4},
    {
        "n_estimators": 8,
        "max_depth": 3,
        "learning_rate": 0.2,
        "reg_lambda": 2.0,
        "gamma": 0.05,
        "min_child_weight": 2.0,
        "colsample_bytree": 0.6,
        "max_bin": 16,
        "random_state": 1,
    },
    # partition splits with the group limits (they change the trees: checked below)
    {
        "n_estimators": 8,
        "max_depth": 3,
        "categorical_split": "partition",
        "max_cat_to_onehot": 2,
        "min_group_weight": 150.0,
        "min_category_weight": 30.0,
    },
]


@pytest.mark.parametrize("params", PARAMS)
def test_classifier_equals_single_machine(client, xy, params):
    X, y = xy
    chunks = (700, 700, 700, 900)  # unequal partitions
    model = fit_gbdt(
        da.from_array(X, chunks=(chunks, -1)),
        da.from_array(y, chunks=(chunks,)),
        client,
        categorical_features=[CAT],
        n_threads=1,
        **params,
    )
    assert isinstance(model, GBDTClassifier)
    local = GBDTClassifier(categorical_features=[CAT], n_threads=1, **params).fit(X, y)
    assert_same_trees(model, local)
    assert model.is_categorical_[CAT] and (model.leaves_per_tree_ > 1).all()
    assert np.array_equal(model.decision_function(X), local.decision_function(X))
    assert np.array_equal(model.classes_, local.classes_)
    if params.get("min_group_weight"):
        unlimited = {**params, "min_group_weight": 0.0, "min_category_weight": 0.0}
        other = GBDTClassifier(categorical_features=[CAT], n_threads=1, **unlimited).fit(X, y)
        assert not np.array_equal(other.decision_function(X), local.decision_function(X))
    # the model is an ordinary one: save / load gives the same predictions
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    assert np.array_equal(GBDTClassifier.load(buf).predict_proba(X), model.predict_proba(X))


def test_dataframe_input_with_string_labels(client, xy):
    X, y = xy
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    labels = pd.Series(np.where(y == 1, "click", "skip"), name="label")
    ddf = dd.from_pandas(frame.assign(label=labels), npartitions=3)
    params = {"n_estimators": 6, "max_depth": 3, "categorical_features": ["f5"], "n_threads": 1}
    model = fit_gbdt(ddf[list(frame.columns)], ddf["label"], client, **params)
    local = GBDTClassifier(**params).fit(frame, labels)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert list(model.classes_) == ["click", "skip"]
    assert_same_trees(model, local)
    assert np.array_equal(model.predict(frame), local.predict(frame))


def test_regressor_equals_single_machine(client, xy):
    X, _ = xy
    rng = np.random.default_rng(1)
    y = np.round(2 * X[:, 0] - X[:, 2] + rng.normal(size=len(X)))  # integers: an exact mean
    params = {"n_estimators": 8, "max_depth": 4, "categorical_features": [CAT], "n_threads": 1}
    model = fit_gbdt(
        da.from_array(X, chunks=(1000, -1)),
        da.from_array(y, chunks=1000),
        client,
        regression=True,
        **params,
    )
    assert isinstance(model, GBDTRegressor)
    local = GBDTRegressor(**params).fit(X, y)
    assert_same_trees(model, local)
    assert np.array_equal(model.predict(X), local.predict(X))


def test_bin_sample_smaller_than_the_data(client, xy):
    X, y = xy
    model = fit_gbdt(
        da.from_array(X, chunks=(1000, -1)),
        da.from_array(y, chunks=1000),
        client,
        categorical_features=[CAT],
        bin_sample=500,
        n_estimators=10,
        max_depth=3,
        random_state=0,
    )
    offsets = model._mapper.get_state()[1]
    assert np.diff(offsets)[CAT] == 7  # every category, not only the sampled ones
    local = GBDTClassifier(categorical_features=[CAT], n_estimators=10, max_depth=3).fit(X, y)
    accuracy = [(m.predict(X) == y).mean() for m in (model, local)]
    assert abs(accuracy[0] - accuracy[1]) < 0.03, accuracy


def _xy(X, y, chunks=1000):
    return da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=chunks)


def test_bad_input(client, xy):
    X, y = xy
    dX, dy = _xy(X, y)
    with pytest.raises(TypeError, match="X must be a dask"):
        fit_gbdt(X, dy, client)
    with pytest.raises(TypeError, match="y must be a dask"):
        fit_gbdt(dX, y, client)
    with pytest.raises(TypeError, match="client"):
        fit_gbdt(dX, dy, "localhost:8786")
    with pytest.raises(ValueError, match="y has 2999 rows"):
        fit_gbdt(dX, da.from_array(y[:-1], chunks=1000), client)
    with pytest.raises(ValueError, match="partitions"):
        fit_gbdt(dd.from_array(X, chunksize=1000), dd.from_array(y, chunksize=500), client)
    with pytest.raises(ValueError, match="max_leaves"):
        fit_gbdt(dX, dy, client, max_leaves=8)
    with pytest.raises(ValueError, match="subsample"):
        fit_gbdt(dX, dy, client, subsample=0.5)
    with pytest.raises(ValueError, match="max_depth"):
        fit_gbdt(dX, dy, client, max_depth=-1)
    with pytest.raises(ValueError, match="bin_sample"):
        fit_gbdt(dX, dy, client, bin_sample=0)
    with pytest.raises(ValueError, match="3 classes"):
        fit_gbdt(dX, da.from_array(np.arange(len(y)) % 3, chunks=1000), client)
    with pytest.raises(ValueError, match="continuous"):
        fit_gbdt(dX, da.from_array(y + 0.5, chunks=1000), client)
    bad = X.copy()
    bad[2500, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fit_gbdt(*_xy(bad, y), client)
    with pytest.raises(ValueError, match="non-negative integer codes"):
        fit_gbdt(*_xy(X, y), client, categorical_features=[0])
    frame = dd.from_pandas(pd.DataFrame({"a": X[:, 0], "city": np.where(y, "x", "y")}), 2)
    with pytest.raises(ValueError, match="hold labels"):
        fit_gbdt(frame, dd.from_pandas(pd.Series(y), 2), client)


def test_a_lost_worker_raises_instead_of_hanging(client, monkeypatch):
    from recforge.distributed import gbdt

    monkeypatch.setattr(gbdt, "LOST_WORKER_CHECK_SECONDS", 0.2)
    gone = "tcp://127.0.0.1:9"  # a shard's worker that is no longer in the cluster
    stuck = client.submit(int, 1, workers=[gone], allow_other_workers=False, pure=False)
    cluster = gbdt._Cluster.__new__(gbdt._Cluster)
    cluster.client, cluster.groups = client, {gone: [0]}
    try:
        with pytest.raises(RuntimeError, match="left the cluster during fit_gbdt"):
            cluster._wait([stuck])
    finally:
        stuck.cancel()


def _ranks(placement, work):
    """Run ``work(rank, collective)`` for every rank of one all-reduce (``placement[rank]``: the
    partitions it holds) in threads; the results (or errors)."""
    import threading
    import uuid

    from recforge.distributed import _collective

    token = uuid.uuid4().hex
    n_ranks = len(placement)
    addresses = [_collective.open_listener(token, rank) for rank in range(n_ranks)]
    out = [None] * n_ranks

    def run(rank):
        try:
            with _collective.Collective(token, rank, addresses, placement) as coll:
                out[rank] = work(rank, coll)
        except Exception as exc:  # the test inspects it
            out[rank] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in range(n_ranks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    _collective.close_listener(token)
    assert not any(key[0] == token for key in _collective._listeners)
    return out


@pytest.mark.parametrize(
    "placement",
    [
        [[1], [2, 4], [0, 3]],  # out of order on 3 ranks: the chain visits 5 runs
        [[0, 1], [2, 3, 4]],  # contiguous: one hop and the total back
        [[0, 1, 2, 3, 4]],  # one rank: no socket
        [[0], [1], [2], [3], [4]],
    ],
)
def test_allreduce_adds_in_partition_order_on_every_rank(placement):
    # float sums that depend on the order: only the partition order gives 2.0
    values = {0: 1e16, 1: 1.0, 2: -1e16, 3: 1.0, 4: 1.0}

    def work(rank, coll):
        blocks = [(q, np.full((2, 3), values[q])) for q in placement[rank]]
        first = coll.sum_in_order(blocks)
        blocks = [(q, np.full((2, 3), -values[q])) for q in placement[rank]]
        return first, coll.sum_in_order(blocks)  # a second call on the same connections

    results = _ranks(placement, work)
    want = np.zeros((2, 3))
    for q in sorted(values):
        want += values[q]
    assert want[0, 0] == 2.0
    for got in results:
        assert isinstance(got, tuple), got
        assert np.array_equal(got[0], want) and np.array_equal(got[1], -want)


def test_chain_segments_and_links():
    from recforge.distributed._collective import _links, chain_segments

    segments = chain_segments([[0, 1], [2, 3], [4, 5]])
    assert segments == [(0, [0, 1]), (1, [2, 3]), (2, [4, 5])]
    assert _links(segments, 3) == {frozenset((0, 1)), frozenset((1, 2)), frozenset((0, 2))}
    with pytest.raises(ValueError, match="two ranks"):
        chain_segments([[0, 1], [1]])
    with pytest.raises(ValueError, match="no index"):
        chain_segments([[0], []])


def test_allreduce_raises_when_a_peer_leaves_or_disagrees():
    from recforge.distributed._collective import CollectiveError

    def leaves(rank, coll):
        if rank == 1:
            return "left"  # closes its sockets without taking part
        return coll.sum_in_order([(rank, np.ones(4))])

    results = _ranks([[0], [1]], leaves)
    assert isinstance(results[0], CollectiveError) and "closed" in str(results[0])

    def disagrees(rank, coll):
        return coll.sum_in_order([(rank, np.ones(4 + rank))])

    results = _ranks([[0], [1]], disagrees)
    assert all(isinstance(r, CollectiveError) for r in results)  # nobody hangs
    assert any("shape" in str(r) for r in results)

    def wrong_blocks(rank, coll):
        return coll.sum_in_order([(rank + 1, np.ones(4))])

    results = _ranks([[0], [1]], wrong_blocks)
    assert all(isinstance(r, ValueError) and "blocks" in str(r) for r in results)


def test_a_failing_worker_raises_its_own_error_and_releases_the_others(client, xy):
    """One worker's shard was never binned: its training task fails; the other worker, waiting
    in the all-reduce, is released (CollectiveError) and the client raises the first cause."""
    from recforge.distributed import gbdt
    from recforge.rank.gbdt._input import InputSchema

    X, y = xy
    workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    schema = InputSchema().fit(X[:0], None)
    shards = [
        client.submit(
            gbdt._make_shard,
            X[q::2],
            y[q::2],
            schema,
            False,
            q,
            workers=[workers[q]],
            allow_other_workers=False,
            pure=False,
        )
        for q in range(2)
    ]
    model = GBDTClassifier(n_estimators=3, max_depth=2)
    model.classes_ = np.array([0, 1])
    summary = [gbdt._make_shard(X, y, schema, False, 0).summary(schema.is_categorical, False, 1, 0)]
    mapper = gbdt._bin_mapper(summary, schema.is_categorical, 255)
    edges, offsets = mapper.get_state()
    binned = client.submit(
        gbdt._call_each,
        "bin",
        (edges, offsets, schema.is_categorical, model.classes_, 0.0),
        shards[0],
        workers=[workers[0]],
        allow_other_workers=False,
        pure=False,
    )
    binned.result()
    gbdt._wait_raising(shards)  # (as fit_gbdt does: the cluster reads where each shard is held)
    cluster = gbdt._Cluster(client, shards)
    with pytest.raises(AttributeError):  # the unbinned shard's own error, not a CollectiveError
        gbdt._train_on_workers(model, cluster, mapper, np.random.default_rng(0))


@pytest.fixture(scope="module")
def client3():
    """Three in-process workers (threads of this process: three ranks' listeners side by side)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(3, timeout=120)
        yield client


def _placed(client, X, y, owners):
    """Dask arrays whose partition ``q`` lives on worker ``owners[q]`` (futures scattered there)."""
    parts = np.array_split(np.arange(len(X)), len(owners))
    xs, ys = [], []
    for rows, worker in zip(parts, owners):
        fx = client.scatter(X[rows], workers=[worker])
        fy = client.scatter(y[rows], workers=[worker])
        xs.append(da.from_delayed(fx, (len(rows), X.shape[1]), X.dtype))
        ys.append(da.from_delayed(fy, (len(rows),), y.dtype))
    return da.concatenate(xs), da.concatenate(ys)


@pytest.mark.parametrize("interleaved", [False, True])
def test_three_workers_grow_the_single_machines_trees(client3, xy, monkeypatch, interleaved):
    """The chained all-reduce over 3 ranks: partitions in ranges per worker (3 runs) or dealt
    round-robin (6 runs, the running sum visits every worker twice); the same trees as one
    machine either way."""
    from recforge.distributed import gbdt

    X, y = xy
    workers = sorted(client3.scheduler_info()["workers"])
    owners = [workers[q * 3 // 6] for q in range(6)] if not interleaved else workers * 2
    groups = []
    init = gbdt._Cluster.__init__

    def spy(self, client, shards):
        init(self, client, shards)
        groups.append(dict(self.groups))

    monkeypatch.setattr(gbdt._Cluster, "__init__", spy)
    params = {"n_estimators": 6, "max_depth": 4, "categorical_features": [CAT], "n_threads": 1}
    model = fit_gbdt(*_placed(client3, X, y, owners), client3, **params)
    want = {w: [q for q in range(6) if owners[q] == w] for w in workers}
    assert groups == [want]
    local = GBDTClassifier(**params).fit(X, y)
    assert_same_trees(model, local)
    assert np.array_equal(model.decision_function(X), local.decision_function(X))
