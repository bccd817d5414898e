"""Approximate nearest-neighbour backends for embedding recall: hnswlib vs usearch vs faiss-cpu.

Run:  python bench/bench_ann.py [--model-file LFM.npz] [--queries 2000] [--k 10]

The item vectors of an LFM (64 factors, 3 epochs) on the 20M synthetic set (160k users x 60k
items x 20M interactions, ``synthetic_interactions``), or of ``--model-file`` (any saved LFM or
Item2Vec). Every backend indexes the same vectors through the same reduction of "query . item +
bias" to a Euclidean nearest-neighbour search (:func:`recforge.serving.ann.mips_vectors`), built on
one thread with the same graph settings (M = 16, ef_construction = 200), and is asked for the top
``k`` of ``--queries`` training users' query vectors; reported: build time, query p50 / p99 (one
query at a time, wall clock and thread CPU time) and recall@k against the exact top ``k`` of the
model's own scores (nothing excluded), at ef_search = 64 and 128. Then the in-process request
path on the same model: ``Recommender(model, index="exact")`` against ``index="ann"``,
``recommend_one(user_id=..., k=10)`` for the same users (target: p99 <= 10 ms both), and the
load of the model file saved with its ANN index (the graph restored instead of built).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from recforge.kernels.topk import topk
from recforge.serving.ann import BACKENDS, mips_queries, mips_vectors


def _vectors(model_file):
    from recforge.recall import LFM

    if model_file:
        from recforge.serving import load_model

        return load_model(model_file)
    from recforge.data import synthetic_interactions

    data = synthetic_interactions(160_000, 60_000, 20_000_000)
    t0 = time.perf_counter()
    model = LFM(n_factors=64, epochs=3, n_threads=2, random_state=0).fit(data)
    print(f"LFM fitted on the 20M synthetic set in {time.perf_counter() - t0:.0f} s")
    return model


def _pcts(values_ms) -> str:
    p50, p99 = np.percentile(values_ms, [50, 99])
    return f"p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-file")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)

    model = _vectors(args.model_file)
    targets = np.asarray(model._target_vectors(), np.float32)
    bias = model._target_bias()
    n_items = len(targets)
    rng = np.random.default_rng(0)
    users = rng.choice(model.n_users_, size=min(args.queries, model.n_users_), replace=False)
    queries = np.asarray(model._user_queries(users), np.float32)
    exact_scores = queries.astype(np.float64) @ targets.astype(np.float64).T
    if bias is not None:
        exact_scores += bias
    exact, _ = topk(exact_scores.astype(np.float32), args.k)
    print(f"{n_items} items, dim {targets.shape[1]}, {len(users)} queries, k = {args.k}")
    data, queries_in = mips_vectors(targets, bias), mips_queries(queries, bias is not None)
    for name in args.backends.split(","):
        try:
            backend = BACKENDS[name]
            t0 = time.perf_counter()
            index = backend.build(data)
            build_s = time.perf_counter() - t0
        except ImportError as exc:
            print(f"{name}: not installed ({exc})")
            continue
        for ef in (64, 128):
            wall, cpu, hits = [], [], 0
            for q, want in zip(queries_in, exact):
                t, c = time.perf_counter(), time.thread_time()
                got = backend.search(index, q, args.k, ef)
                wall.append((time.perf_counter() - t) * 1e3)
                cpu.append((time.thread_time() - c) * 1e3)
                hits += len(set(got.tolist()) & set(want.tolist()))
            print(
                f"{name:8s} build {build_s:6.1f} s  ef {ef:3d}  recall@{args.k} "
                f"{hits / exact.size:.4f}  wall {_pcts(wall)}  cpu {_pcts(cpu)}"
            )
    serve_latency(model, model.user_map_.ids[users].tolist(), args.k)
    return 0


def serve_latency(model, users, k) -> None:
    from recforge.serving import Recommender

    answers = {}
    for index in ("exact", "ann"):
        t0 = time.perf_counter()
        rec = Recommender(model, index=index)
        print(f"Recommender(index={index!r}) ready in {time.perf_counter() - t0:.1f} s")
        wall, cpu, answers[index] = [], [], []
        for user in users:
            t, c = time.perf_counter(), time.thread_time()
            answers[index].append(rec.recommend_one(user_id=user, k=k).items)
            wall.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
        print(f"  recommend_one k={k}: wall {_pcts(wall)}  cpu {_pcts(cpu)}  (target p99 <= 10 ms)")
    hits = sum(len(set(a) & set(b)) for a, b in zip(answers["ann"], answers["exact"]))
    total = sum(len(b) for b in answers["exact"])
    print(f"  recall@{k} of the served ANN answers (seen items excluded): {hits / total:.4f}")
    saved_index_load(rec, users, answers["ann"], k)


def saved_index_load(rec, users, answers, k) -> None:
    """The ANN index saved with the model (``Recommender.save``) and read back instead of built:
    file size, load time (CPU of this thread) and the same answers."""
    import tempfile
    from pathlib import Path

    from recforge.serving import Recommender

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model-ann.npz"
        rec.save(path)
        c = time.thread_time()
        loaded = Recommender.load(path, index="ann", warm=False)
        cpu = time.thread_time() - c
        same = all(loaded.recommend_one(user_id=u, k=k).items == a for u, a in zip(users, answers))
        print(
            f"  saved with its index: {path.stat().st_size / 2**20:.1f} MiB; "
            f"Recommender.load(index='ann') {cpu:.2f} s CPU (graph restored, not built); "
            f"same answers: {same}"
        )


if __name__ == "__main__":
    sys.exit(main())


# ---- pytest-benchmark groups (RECFORGE_BENCH_SIZE=smoke pytest bench/bench_ann.py --benchmark-only)
# recommend_one for 100 known users of an LFM: exact against the ANN index (full: the 20M set's
# 60k items, smoke: 3k items).

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def lfm_served():
    from bench.conftest import pick
    from recforge.data import synthetic_interactions
    from recforge.recall import LFM

    shape = pick((160_000, 60_000, 20_000_000), (5_000, 3_000, 100_000))
    return LFM(n_factors=64, epochs=pick(3, 2), n_threads=2, random_state=0).fit(
        synthetic_interactions(*shape)
    )


@pytest.mark.benchmark(group="serving-embedding-recall")
@pytest.mark.parametrize("index", ["exact", "ann"])
def test_recommend_one_lfm(benchmark, lfm_served, index):
    from recforge.serving import Recommender

    rec = Recommender(lfm_served, index=index)
    users = lfm_served.user_map_.ids[:100].tolist()
    benchmark.pedantic(
        lambda: [rec.recommend_one(user_id=u, k=10) for u in users], rounds=5, warmup_rounds=1
    )
