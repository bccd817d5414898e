"""Busy core: every trainer and scorer with 2 threads while a foreign process keeps one core busy,
against the same work with 1 thread on an idle machine (DESIGN.md: never slower; issue 13).

Each case is one group ``busy-<case>`` with two entries, run back to back:
``test_busy[<case>-one_thread_idle]`` (the reference, compare.py's "peer") and
``test_busy[<case>-recforge_two_threads_busy]`` (the ``busy_core`` fixture runs
``while True: pass`` in a separate process). compare.py prints the ratio
1-thread-idle / 2-threads-busy: it must be >= 1, and ``far`` after an entry whose rounds began or
ended with the two CPUs far apart (``host_cores``: a cache line's round trip, read before and
after each entry, the foreign process paused for the reading). Medians of ROUNDS rounds each, after one warm-up
round (Numba kernels loaded, data built) outside the timings.

Cases: ItemCF and UserCF fit + recommend (similarity, fused two-hop top-k), PersonalRank ``cg``
fit + recommend, Item2Vec skip-gram and CBOW epochs (SGNS), LFM (BPR) epochs, top-k over a score
block, the ranking metrics (``ndcg_at_k``: the row checks, the relevant matrix's structure and the
hits, each a kernel of dynamically pulled chunks), LR (L-BFGS), GBDT, DNN and Wide&Deep fits (each
mini-batch's chunks of rows pulled by the threads).
Data: synthetic interactions (full: 40k users × 15k items × 2M; smoke: 2k × 1k × 50k) and UCI
Adult for the rankers (smoke: its first 5k rows).

Run:  pytest bench/bench_busy.py --benchmark-only --benchmark-json=/tmp/busy.json
      python bench/compare.py /tmp/busy.json
"""

from __future__ import annotations

import numpy as np
import pytest

from . import host_cores
from .conftest import pick

ROUNDS = pick(7, 3)  # (medians of 3 moved by +-10 % between runs on a shared 2-core host)
K = 10
_data = {}


def interactions():
    if "interactions" not in _data:
        from recforge.data import synthetic_interactions

        _data["interactions"] = synthetic_interactions(
            *pick((40_000, 15_000, 2_000_000), (2_000, 1_000, 50_000)), seed=0
        )
    return _data["interactions"]


def adult_arrays():
    if "adult" not in _data:
        from recforge.datasets import adult

        data = adult()
        n = pick(len(data.y_train), 5_000)
        _data["adult"] = (data.X_train[:n], data.y_train[:n])
    return _data["adult"]


RECALL_USERS = pick(5_000, 500)


def _recall(model_cls, n_users=RECALL_USERS, **params):
    def run(n_threads):
        data = interactions()
        model = model_cls(n_threads=n_threads, **params).fit(data)
        return model.recommend(data.user_map.ids[:n_users], k=K)[0]

    return run


def _sgns_inputs():
    """Sequences, initial input vectors and negative-sampling weights, built once (outside the
    timings: ``setdefault`` evaluated its argument, rebuilding the sequences in every call)."""
    if "sgns" not in _data:
        offsets, items = interactions().sequences()
        n_items = int(items.max()) + 1
        rng = np.random.default_rng(0)
        initial = (rng.random((n_items, 64), dtype=np.float32) - 0.5) / 64
        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        _data["sgns"] = (offsets, items, initial, counts**0.75)
    return _data["sgns"]


def _sgns(algorithm):
    def run(n_threads):
        from recforge.kernels.sgns import aligned_vectors, sgns_train_epoch

        offsets, items, initial, weights = _sgns_inputs()
        in_vecs = aligned_vectors(*initial.shape)
        in_vecs[:] = initial
        out_vecs = aligned_vectors(*initial.shape)
        return sgns_train_epoch(
            offsets,
            items,
            in_vecs,
            out_vecs,
            weights,
            window=5,
            negative=5,
            cbow=algorithm == "cbow",
            n_threads=n_threads,
        )

    return run


def _lfm(n_threads):
    from recforge.recall import LFM

    return LFM(epochs=pick(5, 2), n_threads=n_threads, random_state=0).fit(interactions())


def _topk(n_threads):
    from recforge.kernels.topk import topk

    if "scores" not in _data:
        rng = np.random.default_rng(0)
        _data["scores"] = rng.random(pick((4_000, 15_000), (500, 1_000)), dtype=np.float32)
    return topk(_data["scores"], K, n_threads=n_threads)


def _metrics(n_threads):
    from recforge._threads import numba_threads
    from recforge.metrics import ndcg_at_k

    data = interactions()
    if "recommended" not in _data:
        rng = np.random.default_rng(0)
        n_repeat = pick(50, 5)  # the users many times over: a batch the size of a large evaluation
        start = rng.integers(0, data.n_items, (data.n_users * n_repeat, 1))
        _data["recommended"] = (start + np.arange(100)) % data.n_items  # distinct items per row
        _data["relevant"] = _tile_rows(data.matrix, n_repeat)
    with numba_threads(n_threads):
        return ndcg_at_k(_data["recommended"], _data["relevant"], 100)


def _tile_rows(matrix, n_repeat):
    import scipy.sparse as sp

    return sp.vstack([matrix] * n_repeat, format="csr")


def _ranker(name):
    def run(n_threads):
        from recforge.features import FeatureEncoder
        from recforge.rank import DNN, GBDTClassifier, LogisticRegression, WideDeep

        X, y = adult_arrays()
        model = {
            "lr": lambda: LogisticRegression(C=0.3, encoder=FeatureEncoder(), n_threads=n_threads),
            "gbdt": lambda: GBDTClassifier(n_estimators=pick(100, 10), n_threads=n_threads),
            "dnn": lambda: DNN(epochs=pick(2, 1), n_threads=n_threads, random_state=0),
            "widedeep": lambda: WideDeep(epochs=pick(2, 1), n_threads=n_threads, random_state=0),
        }[name]()
        return model.fit(X, y)

    return run


def _recall_cases():
    from recforge.recall import ItemCF, PersonalRank, UserCF

    return {
        "itemcf": _recall(ItemCF, n_neighbors=50),
        "usercf": _recall(UserCF, n_neighbors=50),
        # a CG solve over the whole 55k-node graph per user (~0.08 s each at full size): 5,000 users
        # took over 300 s per case
        "personalrank-cg": _recall(PersonalRank, n_users=pick(100, 50), method="cg"),
    }


CASES = [
    "itemcf",
    "usercf",
    "personalrank-cg",
    "item2vec-skipgram",
    "item2vec-cbow",
    "lfm-bpr",
    "topk",
    "metrics-ndcg",
    "lr",
    "gbdt",
    "dnn",
    "widedeep",
]


def case(name):
    if name in ("itemcf", "usercf", "personalrank-cg"):
        return _recall_cases()[name]
    return {
        "item2vec-skipgram": _sgns("skipgram"),
        "item2vec-cbow": _sgns("cbow"),
        "lfm-bpr": _lfm,
        "topk": _topk,
        "metrics-ndcg": _metrics,
        "lr": _ranker("lr"),
        "gbdt": _ranker("gbdt"),
        "dnn": _ranker("dnn"),
        "widedeep": _ranker("widedeep"),
    }[name]


#: the two runs of a case: its reference (1 thread, idle machine) and ours (2 threads, a core busy)
IDLE, BUSY = "one_thread_idle", "recforge_two_threads_busy"


# One test function, the mode innermost: the idle and the busy run of a case follow each other, so a
# change of load on the shared machine between them stays small.
@pytest.mark.parametrize("mode", [IDLE, BUSY])
@pytest.mark.parametrize("name", CASES)
def test_busy(benchmark, request, name, mode):
    benchmark.group = f"busy-{name}"
    run = case(name)
    n_threads = 1
    if mode == BUSY:
        busy_core = request.getfixturevalue("busy_core")
        n_threads = 2
    foreign_pid = busy_core.pid if n_threads == 2 else None
    shares = []

    def measured(n_threads):
        share = CoreShare(foreign_pid)
        out = run(n_threads)
        shares.append(share.stop())
        return out

    before = host_cores.round_trip_ns(paused_pid=foreign_pid)
    result = benchmark.pedantic(measured, args=(n_threads,), rounds=ROUNDS, warmup_rounds=1)
    readings = [before, host_cores.round_trip_ns(paused_pid=foreign_pid)]
    benchmark.extra_info["round_trip_ns"] = readings
    benchmark.extra_info["cores_far_apart"] = host_cores.any_far(readings)
    benchmark.extra_info["cores_used"] = float(np.median([s[0] for s in shares]))
    if foreign_pid is not None:
        benchmark.extra_info["foreign_cores_used"] = float(np.median([s[1] for s in shares]))
        assert busy_core.poll() is None  # the foreign process kept its core busy throughout
    assert result is not None


class CoreShare:
    """Cores this process (and the foreign busy process) used from construction to ``stop()``.

    CPU seconds over wall seconds: ~1.0 for one fully running thread. With a foreign process spinning
    on one of 2 cores, a 2-thread run that gets only ~1.0 core shares its core with the other thread
    (the scheduler left the foreign process a core of its own): no schedule of our work can then beat
    the 1-thread idle run, which had a full core to itself.
    """

    def __init__(self, foreign_pid=None):
        import time

        self._pid = foreign_pid
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._foreign = _cpu_seconds_of(foreign_pid)

    def stop(self):
        import time

        wall = time.perf_counter() - self._wall
        ours = (time.process_time() - self._cpu) / wall
        foreign = (_cpu_seconds_of(self._pid) - self._foreign) / wall if self._pid else 0.0
        return ours, foreign


def _cpu_seconds_of(pid):
    """utime + stime of process ``pid`` in seconds (Linux /proc), 0.0 without a pid."""
    if pid is None:
        return 0.0
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
