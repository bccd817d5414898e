"""Scale-out on Dask: recommend-all and the ItemCF co-occurrence with 1 and 2 workers (issue 12).

For each worker count, a fresh ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``:

* ``load``      — ``from_parquet`` (id maps, user partitions) from Parquet files of the set;
* ``itemcf``    — ``fit_itemcf`` (per-partition co-occurrence, tree reduce, top-K, gather);
* ``recommend`` — ``batch_recommend`` of every user (k = 10) with that ItemCF and with an LFM
  (64 factors: dense scores over every item, real work per user), the rows counted on the workers;
* the peak RSS of each worker process (``getrusage`` inside the worker, after the run).

The same steps on one machine (``ItemCF(n_threads=1).fit`` + ``recommend`` of every user) give the
baseline. Every run checks that the distributed neighbour lists equal the single-machine ones.

Data: ``synthetic_interactions`` (power-law items). ``--size full`` is the 160k × 60k × 20M set;
its penalised item co-occurrence has ~1e9 non-zeros, which the distributed fit materialises (in
row blocks) before the top-K, so it does not fit this session's time: ``medium`` (default,
40k × 10k × 1M) is what docs/scale-out.md reports. ``smoke``: 2k × 1k × 50k, seconds.

Run:  python bench/bench_dask.py [--size smoke|medium|full] [--workers 1 2] [--partitions 8]
The machine is shared: timings are noisy, read the ratios.

GBDT (pytest-benchmark group ``dask-gbdt-fit``, at the end of this file): ``fit_gbdt`` against
``xgboost.dask`` on one 2-worker LocalCluster, the same persisted Dask arrays and trees; time and
test AUC of each.  Run:  pytest bench/bench_dask.py --benchmark-only  (RECFORGE_BENCH_SIZE=smoke)
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pytest

SIZES = {
    "smoke": (2_000, 1_000, 50_000),
    "medium": (40_000, 10_000, 1_000_000),
    "full": (160_000, 60_000, 20_000_000),
}
N_NEIGHBORS = 20
K = 10
LFM_FACTORS = 64
COLUMNS = {
    "user_col": "user_id",
    "item_col": "item_id",
    "weight_col": "weight",
    "timestamp_col": "timestamp",
}


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM; getrusage's ru_maxrss survives exec, so a spawned
    worker would report its parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fit_lfm(data):
    """A model whose recommend costs real work per user (dense scores over every item)."""
    from recforge.recall import LFM

    return LFM(n_factors=LFM_FACTORS, epochs=1, n_threads=1, random_state=0).fit(data)


def single_machine(data, lfm):
    from recforge.recall import ItemCF

    t0 = time.perf_counter()
    model = ItemCF(n_neighbors=N_NEIGHBORS, n_threads=1).fit(data)
    t1 = time.perf_counter()
    model.recommend(data.user_map.ids, k=K)
    t2 = time.perf_counter()
    lfm.recommend(data.user_map.ids, k=K)
    t3 = time.perf_counter()
    return model, {"itemcf": t1 - t0, "recommend": t2 - t1, "recommend_lfm": t3 - t2}


def on_cluster(path, n_workers, n_partitions, reference, lfm):
    from distributed import Client, LocalCluster

    from recforge.distributed import batch_recommend, fit_itemcf, from_parquet

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(
            _warm_kernels
        )  # Numba compile (cached on disk) is not part of the measured steps
        t0 = time.perf_counter()
        data = from_parquet(path, client, n_partitions=n_partitions, **COLUMNS)
        t1 = time.perf_counter()
        model = fit_itemcf(data, client, n_neighbors=N_NEIGHBORS)
        t2 = time.perf_counter()
        rows = int(batch_recommend(model, client, data, k=K).map_partitions(len).compute().sum())
        t3 = time.perf_counter()
        rows_lfm = int(batch_recommend(lfm, client, data, k=K).map_partitions(len).compute().sum())
        t4 = time.perf_counter()
        peaks = client.run(_peak_rss_mib)
    sim, ref = model.similarity_, reference.similarity_
    assert np.array_equal(sim.indptr, ref.indptr) and np.array_equal(sim.indices, ref.indices)
    assert rows == rows_lfm == K * data.n_users
    return {
        "load": t1 - t0,
        "itemcf": t2 - t1,
        "recommend": t3 - t2,
        "recommend_lfm": t4 - t3,
        "identical_values": bool(np.array_equal(sim.data, ref.data)),
        "peak_rss_mib": sorted(round(v) for v in peaks.values()),
    }


def _warm_kernels():
    from recforge.data import synthetic_interactions
    from recforge.distributed.neighbors import _itemcf_input, _pieces, _topk_block
    from recforge.recall import LFM, ItemCF

    x = synthetic_interactions(50, 20, 300, seed=0)
    ItemCF(n_neighbors=3, n_threads=1).fit(x).recommend(x.user_map.ids[:3], k=2)
    LFM(n_factors=4, epochs=1, n_threads=1).fit(x).recommend(x.user_map.ids[:3], k=2)
    piece = _pieces(_itemcf_input(x), np.array([0, 20]))[0]
    _topk_block(piece, 0, np.ones(20), 3, True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()

    import tempfile

    import dask.dataframe as dd

    from recforge.data import Interactions, synthetic_interactions

    n_users, n_items, n_events = SIZES[args.size]
    frame = synthetic_interactions(n_users, n_items, n_events, seed=0).to_dataframe()
    data = Interactions.from_dataframe(frame, **COLUMNS)  # users/items without interactions dropped
    n_users, n_items = data.shape
    tmp = tempfile.TemporaryDirectory()
    path = f"{tmp.name}/interactions"
    dd.from_pandas(frame, npartitions=args.partitions).to_parquet(path)
    print(
        f"set: {n_users} users x {n_items} items, {data.nnz} interactions; "
        f"{args.partitions} partitions; "
        f"ItemCF K={N_NEIGHBORS}, recommend k={K}"
    )
    lfm = fit_lfm(data)
    reference, base = single_machine(data, lfm)  # the first call also compiles; time it again
    reference, base = single_machine(data, lfm)
    print(
        f"single machine, 1 thread: itemcf {base['itemcf']:.2f} s, "
        f"recommend-all itemcf {base['recommend']:.2f} s, "
        f"lfm {base['recommend_lfm']:.2f} s, client peak RSS {_peak_rss_mib():.0f} MiB"
    )
    from recforge.io import to_bytes

    for name, model in (("itemcf", reference), ("lfm", lfm)):
        t0 = time.perf_counter()
        size = len(to_bytes(model.save))
        print(
            f"shipping cost inside recommend-all ({name}): "
            f"model.save to bytes {time.perf_counter() - t0:.2f} s, "
            f"{size / 2**20:.1f} MiB broadcast to each worker"
        )
    results = {}
    for n_workers in args.workers:
        r = on_cluster(path, n_workers, args.partitions, reference, lfm)
        results[n_workers] = r
        print(
            f"{n_workers} worker(s): load {r['load']:.2f} s, itemcf {r['itemcf']:.2f} s, "
            f"recommend-all itemcf {r['recommend']:.2f} s "
            f"({n_users / r['recommend']:.0f} users/s), "
            f"lfm {r['recommend_lfm']:.2f} s ({n_users / r['recommend_lfm']:.0f} users/s), "
            f"worker peak RSS {r['peak_rss_mib']} MiB, "
            f"similarity bit-identical: {r['identical_values']}"
        )
    if 1 in results and 2 in results:
        one, two = results[1], results[2]
        print(
            f"speed-up 2 vs 1 worker: itemcf {one['itemcf'] / two['itemcf']:.2f}x, "
            f"recommend-all itemcf {one['recommend'] / two['recommend']:.2f}x, "
            f"lfm {one['recommend_lfm'] / two['recommend_lfm']:.2f}x (noisy: shared machine)"
        )


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------
# GBDT on the cluster vs xgboost.dask (pytest-benchmark group "dask-gbdt-fit")
# ---------------------------------------------------------------------------------------------
# Run:  pytest bench/bench_dask.py --benchmark-only   (RECFORGE_BENCH_SIZE=smoke: seconds)
# The same LocalCluster (2 worker processes, 1 thread each) and the same persisted Dask arrays
# (synthetic_ctr, 50 float32 features, GBDT_PARTITIONS partitions) for both; the same trees:
# depth 6, eta 0.1, lambda 1, min_child_weight 1, 256 bins. Each fit is timed whole (bins
# included); the AUC on held-out rows of the same draw and the CPU seconds of the workers, the
# scheduler and the client go into extra_info; the AUCs must agree.
GBDT_ROWS = (1_000_000, 20_000)  # (full, smoke)
GBDT_TEST_ROWS = (200_000, 5_000)
GBDT_TREES = (100, 10)
GBDT_PARTITIONS = 4
GBDT_PARAMS = {"max_depth": 6, "learning_rate": 0.1, "reg_lambda": 1.0, "min_child_weight": 1.0}
_GBDT_AUC = {}


@pytest.fixture(scope="module")
def gbdt_cluster():
    pytest.importorskip("distributed")
    import dask.array as da
    from distributed import Client, LocalCluster

    from .conftest import pick, synthetic_ctr_split  # (pytest only: the script has no package)

    X, y, X_test, y_test = synthetic_ctr_split(pick(*GBDT_ROWS), pick(*GBDT_TEST_ROWS))
    chunk = -(-len(X) // GBDT_PARTITIONS)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        with warnings.catch_warnings():  # "large graph": the data go to the workers once, untimed
            warnings.simplefilter("ignore", UserWarning)
            dX = da.from_array(np.asarray(X, np.float32), chunks=(chunk, -1)).persist()
            dy = da.from_array(np.asarray(y, np.float32), chunks=chunk).persist()
        yield client, dX, dy, X_test, y_test, pick(*GBDT_TREES)


def _timed_cpu(client, fit, cpu):
    """``fit()``, with the CPU seconds it took in the workers, the scheduler and this process added
    to ``cpu`` (a dict): less sensitive to a busy machine than the wall time."""
    before = (client.run(time.process_time), client.run_on_scheduler(time.process_time))
    t0 = time.process_time()
    result = fit()
    cpu["client_cpu_s"] = time.process_time() - t0
    after = (client.run(time.process_time), client.run_on_scheduler(time.process_time))
    cpu["worker_cpu_s"] = sum(after[0][w] - before[0][w] for w in before[0])
    cpu["scheduler_cpu_s"] = after[1] - before[1]
    return result


def _record_gbdt(benchmark, auc, cpu, seconds=None):
    benchmark.extra_info["auc"] = auc
    benchmark.extra_info.update(cpu)
    if seconds is not None:
        benchmark.extra_info["binning_s"], benchmark.extra_info["training_s"] = seconds
    _GBDT_AUC[benchmark.name] = auc
    aucs = list(_GBDT_AUC.values())
    assert max(aucs) - min(aucs) <= 0.002, _GBDT_AUC  # equal quality


def test_xgboost_dask_fit(benchmark, gbdt_cluster):
    xgb_dask = pytest.importorskip("xgboost.dask")
    from recforge.metrics import roc_auc_score

    client, dX, dy, X_test, y_test, n_trees = gbdt_cluster
    benchmark.group = "dask-gbdt-fit"
    params = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "max_bin": 256,
        "max_depth": GBDT_PARAMS["max_depth"],
        "eta": GBDT_PARAMS["learning_rate"],
        "lambda": GBDT_PARAMS["reg_lambda"],
        "min_child_weight": GBDT_PARAMS["min_child_weight"],
        "nthread": 1,
    }

    def fit():
        dtrain = xgb_dask.DaskDMatrix(client, dX, dy)
        return xgb_dask.train(client, params, dtrain, num_boost_round=n_trees)["booster"]

    cpu = {}
    booster = benchmark.pedantic(lambda: _timed_cpu(client, fit, cpu), rounds=1, warmup_rounds=0)
    _record_gbdt(benchmark, roc_auc_score(y_test, booster.inplace_predict(X_test)), cpu)


def test_recforge_dask_fit(benchmark, gbdt_cluster):
    from recforge.distributed import fit_gbdt
    from recforge.metrics import roc_auc_score

    client, dX, dy, X_test, y_test, n_trees = gbdt_cluster
    benchmark.group = "dask-gbdt-fit"
    client.run(_warm_kernels)  # Numba compile (cached on disk) is not part of the fit
    cpu = {}
    model = benchmark.pedantic(
        lambda: _timed_cpu(
            client, lambda: fit_gbdt(dX, dy, client, n_estimators=n_trees, **GBDT_PARAMS), cpu
        ),
        rounds=1,
        warmup_rounds=0,
    )
    seconds = (model.binning_seconds_, model.training_seconds_)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    _record_gbdt(benchmark, auc, cpu, seconds)
