"""LFM epoch time: recforge's C++ Hogwild SGD vs implicit's BPR, one epoch, 64 factors, 2 threads.

Both are timed as a full ``fit`` with one epoch/iteration of a fresh model (each library's own
setup included: implicit's ``fit`` on a fitted model would skip its initialisation), on
MovieLens ml-latest-small positives (ratings >= 4) and on the synthetic 160k × 60k × 20M set.
The group ``lfm-one-core-busy-*`` fits with 1 and 2 threads while a foreign process keeps one core
busy (DESIGN.md: 2 threads must not be slower than 1 there).

Run:  pytest bench/bench_lfm.py --benchmark-only --benchmark-json=/tmp/lfm.json
      python bench/compare.py /tmp/lfm.json
"""

import pytest

from recforge.recall import LFM

from .conftest import pick

THREADS = 2
FACTORS = 64
SYNTH = pick((160_000, 60_000, 20_000_000), (2_000, 1_000, 100_000))


def _movielens():
    from recforge.datasets import movielens_small

    return movielens_small().interactions().positives(4.0)


def _synthetic():
    from recforge.data import synthetic_interactions

    return synthetic_interactions(*SYNTH, timestamps=False)


DATA = {"movielens": _movielens, "synthetic20M": _synthetic}
ROUNDS = {"movielens": pick(30, 2), "synthetic20M": pick(3, 2)}  # an epoch is ~10 ms on movielens
WARMUP = {"movielens": 1, "synthetic20M": 0}  # one warm-up: neither side's first-call costs
_cache = {}


def data(name):
    if name not in _cache:
        _cache.clear()
        _cache[name] = DATA[name]()
    return _cache[name]


@pytest.mark.parametrize("name", list(DATA))
@pytest.mark.parametrize("loss", ["bpr", "squared"])
def test_recforge_lfm_epoch(benchmark, name, loss):
    interactions = data(name)
    benchmark.group = f"lfm-epoch-{name}"
    model = LFM(n_factors=FACTORS, loss=loss, epochs=1, n_threads=THREADS, random_state=0)
    benchmark.pedantic(
        model.fit, args=(interactions,), rounds=ROUNDS[name], warmup_rounds=WARMUP[name]
    )
    benchmark.extra_info["steps"] = int(interactions.nnz)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("name", list(DATA))
def test_recforge_lfm_epoch_busy_core(benchmark, busy_core, name, n_threads):
    interactions = data(name)
    benchmark.group = f"lfm-one-core-busy-{name}"
    model = LFM(n_factors=FACTORS, loss="bpr", epochs=1, n_threads=n_threads, random_state=0)
    benchmark.pedantic(
        model.fit, args=(interactions,), rounds=ROUNDS[name], warmup_rounds=WARMUP[name]
    )


@pytest.mark.parametrize("name", list(DATA))
def test_implicit_bpr_epoch(benchmark, name):
    bpr = pytest.importorskip("implicit.cpu.bpr")
    interactions = data(name)
    matrix = (
        interactions.matrix.copy()
    )  # implicit needs writeable buffers; copied outside the timing
    benchmark.group = f"lfm-epoch-{name}"

    def fresh_model():  # implicit's fit continues from the factors of an earlier fit
        model = bpr.BayesianPersonalizedRanking(
            factors=FACTORS, iterations=1, num_threads=THREADS, random_state=0
        )
        return (model,), {}

    benchmark.pedantic(
        lambda model: model.fit(matrix, show_progress=False),
        setup=fresh_model,
        rounds=ROUNDS[name],
        warmup_rounds=WARMUP[name],
    )
