"""Scale-out on Dask: recommend-all and the ItemCF co-occurrence with 1 and 2 workers (issue 12).

For each worker count, a fresh ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``:

* ``load``      — ``from_parquet`` (id maps, user partitions) from Parquet files of the set;
* ``itemcf``    — ``fit_itemcf`` (per-partition co-occurrence, tree reduce, top-K, gather);
* ``recommend`` — ``batch_recommend`` of every user (k = 10) with that ItemCF and with an LFM
  (64 factors: dense scores over every item, real work per user), the rows counted on the workers;
* the peak RSS of each worker process (``getrusage`` inside the worker, after the run).

The same steps on one machine (``ItemCF(n_threads=1).fit`` + ``recommend`` of every user) give the
baseline; its LFM pass runs with one BLAS thread, as a worker does (``n_threads=1`` caps only
recforge's own threads, not OpenBLAS's GEMM). Every run checks that the distributed neighbour
lists equal the single-machine ones.

Then, unless ``--no-gbdt``: ``fit_gbdt`` against ``xgboost.dask`` on a 2-worker LocalCluster (a
fresh one per library, so each peak RSS is its own), the same persisted Dask arrays of
``synthetic_ctr`` (50 float32 features, 4 partitions) and trees (depth 6, eta 0.1, 256 bins): wall
time, CPU seconds of the workers, scheduler and client, test AUC, peak RSS per worker.

Data: ``synthetic_interactions`` (power-law items).

* ``20m``: 1M users × 100k items × 20M interactions (20 per user: the recommend-for-everyone
  regime); the LFM recommend-all scores the first 100k users only (64 × 100k flops per user);
  GBDT on 4M rows, 50 trees. Sized for ≤ 15 min on an idle 2-core machine: with ``--no-gbdt``
  14 min at load average 10 → 2 (2026-12-06; the first attempt, at load 13–20 and with the
  single-machine baseline run twice, was stopped after 21 min — see docs/scale-out.md).
* ``5m``: 250k users × 25k items × 5M interactions (20 per user), LFM recommend-all for 50k users,
  GBDT on 2M rows, 50 trees: the step between ``medium`` and ``20m`` for a busy machine.
* ``full``: the 160k × 60k × 20M set of bench_cf.py (125 interactions per user); its penalised
  item co-occurrence has ~1e9 non-zeros, which the distributed fit materialises (in row blocks)
  before the top-K: hours here. Use ``20m`` for a 20M-interaction run.
* ``medium`` (default): 40k × 10k × 1M, GBDT on 1M rows / 100 trees (the pytest group's set);
  ``smoke``: 2k × 1k × 50k, GBDT on 20k rows / 10 trees; seconds.

Run:  python bench/bench_dask.py [--size smoke|medium|5m|20m|full] [--workers 1 2] [--partitions 8]
      [--no-gbdt]
The machine is shared: timings are noisy, read the ratios and the CPU seconds.

GBDT alone (pytest-benchmark group ``dask-gbdt-fit``, at the end of this file): the same
comparison on one 2-worker LocalCluster.  Run:  pytest bench/bench_dask.py --benchmark-only
(RECFORGE_BENCH_SIZE=smoke: seconds)
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
    "5m": (250_000, 25_000, 5_000_000),
    "20m": (1_000_000, 100_000, 20_000_000),
    "full": (160_000, 60_000, 20_000_000),
}
#: users the LFM recommend-all scores (None: every user)
LFM_USERS = {"5m": 50_000, "20m": 100_000, "full": 100_000}
#: GBDT comparison of the script: (train rows, test rows, trees)
GBDT_SIZES = {
    "smoke": (20_000, 5_000, 10),
    "medium": (1_000_000, 200_000, 100),
    "5m": (2_000_000, 200_000, 50),
    "20m": (4_000_000, 200_000, 50),
    "full": (4_000_000, 200_000, 50),
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


def single_machine(data, lfm, lfm_users):
    from recforge._threads import limit_blas_threads
    from recforge.recall import ItemCF

    t0 = time.perf_counter()
    model = ItemCF(n_neighbors=N_NEIGHBORS, n_threads=1).fit(data)
    t1 = time.perf_counter()
    model.recommend(data.user_map.ids, k=K)
    t2 = time.perf_counter()
    with limit_blas_threads(1):  # as on a worker (OMP_NUM_THREADS=1): like with like
        lfm.recommend(data.user_map.ids[:lfm_users], k=K)
    t3 = time.perf_counter()
    return model, {"itemcf": t1 - t0, "recommend": t2 - t1, "recommend_lfm": t3 - t2}


def on_cluster(path, n_workers, n_partitions, reference, lfm, lfm_users):
    from distributed import Client, LocalCluster, get_task_stream

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
        cpu_itemcf, cpu_lfm = {}, {}
        rows = _timed_cpu(
            client,
            lambda: int(
                batch_recommend(model, client, data, k=K).map_partitions(len).compute().sum()
            ),
            cpu_itemcf,
        )
        t3 = time.perf_counter()
        users = data if lfm_users is None else lfm.user_map_.ids[:lfm_users]
        with get_task_stream(client) as stream:
            rows_lfm = _timed_cpu(
                client,
                lambda: int(
                    batch_recommend(lfm, client, users, k=K, n_partitions=n_partitions)
                    .map_partitions(len)
                    .compute()
                    .sum()
                ),
                cpu_lfm,
            )
        t4 = time.perf_counter()
        timeline = _timeline(stream.data, t3)
        peaks = client.run(_peak_rss_mib)
    sim, ref = model.similarity_, reference.similarity_
    assert np.array_equal(sim.indptr, ref.indptr) and np.array_equal(sim.indices, ref.indices)
    assert rows == K * data.n_users
    assert rows_lfm == K * (data.n_users if lfm_users is None else min(lfm_users, data.n_users))
    return {
        "load": t1 - t0,
        "itemcf": t2 - t1,
        "recommend": t3 - t2,
        "recommend_lfm": t4 - t3,
        "cpu_recommend": cpu_itemcf,
        "cpu_recommend_lfm": cpu_lfm,
        "timeline_lfm": timeline,
        "identical_values": bool(np.array_equal(sim.data, ref.data)),
        "peak_rss_mib": sorted(round(v) for v in peaks.values()),
    }


def _timeline(events, t_start):
    """Per worker, from a task stream: its scoring tasks, their compute seconds, and when its first
    started and its last ended (seconds after ``t_start``, this process's ``perf_counter`` at the
    call: the stream's wall-clock times are shifted by the same offset)."""
    offset = time.time() - time.perf_counter()
    per = {}
    for event in events:
        if "recommend_" not in str(event["key"]):
            continue
        for span in event["startstops"]:
            if span["action"] == "compute":
                per.setdefault(event["worker"], []).append(
                    (span["start"] - offset - t_start, span["stop"] - offset - t_start)
                )
    return {
        worker: {
            "tasks": len(spans),
            "busy_s": round(sum(b - a for a, b in spans), 3),
            "first_start_s": round(min(a for a, _ in spans), 3),
            "last_end_s": round(max(b for _, b in spans), 3),
        }
        for worker, spans in sorted(per.items())
    }


def _warm_imports():
    """Import xgboost's Dask module in a worker, as :func:`_warm_kernels` loads recforge's
    modules and compiles its kernels before a timed fit: like with like."""
    import xgboost.dask  # noqa: F401


def _warm_kernels():
    from recforge.data import synthetic_interactions
    from recforge.distributed.neighbors import _itemcf_input, _pieces, _topk_block
    from recforge.recall import LFM, ItemCF

    x = synthetic_interactions(50, 20, 300, seed=0)
    ItemCF(n_neighbors=3, n_threads=1).fit(x).recommend(x.user_map.ids[:3], k=2)
    LFM(n_factors=4, epochs=1, n_threads=1).fit(x).recommend(x.user_map.ids[:3], k=2)
    piece = _pieces(_itemcf_input(x), np.array([0, 20]))[0]
    _topk_block(piece, 0, np.ones(20), 3, True)


def _shipping_cost(model) -> str:
    """What ``batch_recommend`` sends for ``model``: the item side broadcast to each worker and the
    user slices (each partition's to one worker), or the whole model file broadcast."""
    from recforge.distributed._slices import ModelSplit, splittable
    from recforge.io import to_bytes

    t0 = time.perf_counter()
    if not splittable(model):
        size = len(to_bytes(model.save, compress=False))  # as ship_model does
        return (
            f"model.save to bytes {time.perf_counter() - t0:.2f} s, "
            f"{size / 2**20:.1f} MiB broadcast to each worker"
        )
    split = ModelSplit(model)
    users = split.user_slice(slice(0, len(model.user_map_)))  # every partition's slice at once
    seconds = time.perf_counter() - t0
    item_mib = sum(a.nbytes for a in split.item_side.values()) / 2**20
    user_mib = sum(a.nbytes for a in users.values()) / 2**20
    return (
        f"split by user {seconds:.2f} s: item side {item_mib:.1f} MiB broadcast to each worker, "
        f"user slices {user_mib:.1f} MiB for all users, each partition's to one worker"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="medium")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--no-gbdt", action="store_true", help="skip the GBDT comparison")
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
    lfm_users = LFM_USERS.get(args.size)
    _warm_kernels()  # compile here, not inside the timed single-machine pass
    reference, base = single_machine(data, lfm, lfm_users)
    print(
        f"single machine, 1 thread: itemcf {base['itemcf']:.2f} s, "
        f"recommend-all itemcf {base['recommend']:.2f} s, "
        f"lfm {base['recommend_lfm']:.2f} s, client peak RSS {_peak_rss_mib():.0f} MiB"
    )
    for name, model in (("itemcf", reference), ("lfm", lfm)):
        print(f"shipping cost inside recommend-all ({name}): {_shipping_cost(model)}")
    n_lfm = n_users if lfm_users is None else min(lfm_users, n_users)
    results = {}
    for n_workers in args.workers:
        r = on_cluster(path, n_workers, args.partitions, reference, lfm, lfm_users)
        results[n_workers] = r
        print(
            f"{n_workers} worker(s): load {r['load']:.2f} s, itemcf {r['itemcf']:.2f} s, "
            f"recommend-all itemcf {r['recommend']:.2f} s "
            f"({n_users / r['recommend']:.0f} users/s), "
            f"lfm {r['recommend_lfm']:.2f} s ({n_lfm / r['recommend_lfm']:.0f} users/s), "
            f"worker peak RSS {r['peak_rss_mib']} MiB, "
            f"similarity bit-identical: {r['identical_values']}"
        )
        for step in ("recommend", "recommend_lfm"):  # the scheduler runs in the client process
            cpu = r[f"cpu_{step}"]
            print(
                f"  CPU s of {step}: workers {cpu['worker_cpu_s']:.2f}, "
                f"client + scheduler {cpu['client_cpu_s']:.2f}"
            )
        for worker, line in r["timeline_lfm"].items():  # where a 2-worker run loses its time
            print(
                f"  lfm tasks on {worker}: {line['tasks']}, compute {line['busy_s']:.2f} s, "
                f"from {line['first_start_s']:.2f} to {line['last_end_s']:.2f} s"
            )
    if 1 in results and 2 in results:
        one, two = results[1], results[2]
        print(
            f"speed-up 2 vs 1 worker: itemcf {one['itemcf'] / two['itemcf']:.2f}x, "
            f"recommend-all itemcf {one['recommend'] / two['recommend']:.2f}x, "
            f"lfm {one['recommend_lfm'] / two['recommend_lfm']:.2f}x (noisy: shared machine)"
        )
    if not args.no_gbdt:
        n_rows, n_test, n_trees = GBDT_SIZES[args.size]
        print(f"GBDT: {n_rows} rows x 50 features, {n_trees} trees, 2 workers")
        for library in ("xgboost.dask", "recforge"):
            r = gbdt_on_cluster(library, n_rows, n_test, n_trees)
            print(
                f"  {library}: fit {r['fit_s']:.2f} s, AUC {r['auc']:.5f}, CPU s: workers "
                f"{r['worker_cpu_s']:.2f}, scheduler {r['scheduler_cpu_s']:.2f}, client "
                f"{r['client_cpu_s']:.2f}; worker peak RSS {r['peak_rss_mib']} MiB"
            )


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


def _gbdt_data(n_rows, n_test, client):
    import dask.array as da

    from recforge.data import synthetic_ctr

    X, y = synthetic_ctr(n_rows + n_test, 50, seed=0)  # as bench/conftest.synthetic_ctr_split
    X, X_test = np.asarray(X[:n_rows], np.float32), X[n_rows:]
    y, y_test = np.asarray(y[:n_rows], np.float32), y[n_rows:]
    chunk = -(-n_rows // GBDT_PARTITIONS)
    with warnings.catch_warnings():  # "large graph": the data go to the workers once, untimed
        warnings.simplefilter("ignore", UserWarning)
        dX = da.from_array(X, chunks=(chunk, -1)).persist()
        dy = da.from_array(y, chunks=chunk).persist()
    return dX, dy, X_test, y_test


def _fit_xgboost_dask(client, dX, dy, n_trees):
    import xgboost.dask as xgb_dask

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
    dtrain = xgb_dask.DaskDMatrix(client, dX, dy)
    booster = xgb_dask.train(client, params, dtrain, num_boost_round=n_trees)["booster"]
    return booster.inplace_predict


def _fit_recforge(client, dX, dy, n_trees):
    from recforge.distributed import fit_gbdt

    model = fit_gbdt(dX, dy, client, n_estimators=n_trees, **GBDT_PARAMS)
    return lambda X: model.predict_proba(X)[:, 1]


def gbdt_on_cluster(library, n_rows, n_test, n_trees):
    """One GBDT fit of ``library`` ("xgboost.dask" or "recforge") on a fresh 2-worker cluster:
    wall and CPU seconds, test AUC, peak RSS per worker."""
    from distributed import Client, LocalCluster

    from recforge.metrics import roc_auc_score

    fit = {"xgboost.dask": _fit_xgboost_dask, "recforge": _fit_recforge}[library]
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm_imports if library == "xgboost.dask" else _warm_kernels)
        dX, dy, X_test, y_test = _gbdt_data(n_rows, n_test, client)
        result = {}
        t0 = time.perf_counter()
        predict = _timed_cpu(client, lambda: fit(client, dX, dy, n_trees), result)
        result["fit_s"] = time.perf_counter() - t0
        result["peak_rss_mib"] = sorted(round(v) for v in client.run(_peak_rss_mib).values())
    result["auc"] = roc_auc_score(y_test, predict(X_test))
    return result


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
    pytest.importorskip("xgboost.dask")
    from recforge.metrics import roc_auc_score

    client, dX, dy, X_test, y_test, n_trees = gbdt_cluster
    benchmark.group = "dask-gbdt-fit"
    client.run(_warm_imports)  # as recforge's kernels are warmed: imports are not the fit
    cpu = {}
    predict = benchmark.pedantic(
        lambda: _timed_cpu(client, lambda: _fit_xgboost_dask(client, dX, dy, n_trees), cpu),
        rounds=1,
        warmup_rounds=0,
    )
    _record_gbdt(benchmark, roc_auc_score(y_test, predict(X_test)), cpu)


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


if __name__ == "__main__":
    main()
