"""LFM epoch time: recforge's C++ Hogwild SGD vs implicit's BPR, one epoch, 64 factors, 2 threads.

Equal work: both make one SGD step per interaction per epoch (ml-latest-small positives: 48,580),
64 float32 factors (implicit: 64 + its bias column; recforge: 64 + a separate item bias), one
negative per step checked against the user's items (implicit skips a touched negative, recforge
redraws it).

``lfm-epoch-*``: a full ``fit`` with one epoch/iteration of a fresh model (each library's own
setup included: implicit's ``fit`` on a fitted model would skip its initialisation), on
MovieLens ml-latest-small positives (ratings >= 4) and on the synthetic 160k × 60k × 20M set.
``lfm-bpr-epoch-only-movielens``: the epoch alone on prepared data and factors (recforge's
``LfmSampler.epoch``, implicit's ``bpr_update``), without either library's per-fit setup.
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
ROUNDS = {"movielens": pick(30, 2), "synthetic20M": pick(3, 2)}  # an epoch is ~5 ms on movielens
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


EPOCH_ONLY_ROUNDS = pick(100, 3)


def _epoch_only_data():
    """ml-latest-small positives as (interactions, users of each interaction, float32 CSR)."""
    import numpy as np

    interactions = data("movielens")
    matrix = interactions.matrix.astype(np.float32)
    matrix.sort_indices()
    users = np.repeat(np.arange(matrix.shape[0], dtype=np.int32), np.diff(matrix.indptr))
    return interactions, users, matrix


def test_recforge_bpr_epoch_only(benchmark):
    import numpy as np

    from recforge.kernels.lfm import LfmSampler, lfm_initial_factors

    interactions, users, matrix = _epoch_only_data()
    n_users, n_items = matrix.shape
    items = matrix.indices.astype(np.int32)
    weights = np.sqrt(np.bincount(items, minlength=n_items) + 1.0)  # LFM's default neg_exponent
    sampler = LfmSampler(
        users, items, matrix.indptr.astype(np.int64), items, weights, n_users, n_items
    )
    uf = lfm_initial_factors(n_users, FACTORS, 0.1, seed=1)
    itf = lfm_initial_factors(n_items, FACTORS, 0.1, seed=2)
    bias = np.zeros(n_items, np.float32)
    seeds = iter(range(10**9))
    benchmark.group = "lfm-bpr-epoch-only-movielens"
    benchmark.pedantic(
        lambda: sampler.epoch(
            uf, itf, bias, lr=0.01, fit_bias=True, seed=next(seeds), n_threads=THREADS
        ),
        rounds=EPOCH_ONLY_ROUNDS,
        warmup_rounds=1,
    )
    benchmark.extra_info["steps"] = int(interactions.nnz)


def test_implicit_bpr_epoch_only(benchmark):
    import numpy as np

    bpr = pytest.importorskip("implicit.cpu.bpr")
    interactions, users, matrix = _epoch_only_data()
    n_users, n_items = matrix.shape
    rng = np.random.default_rng(0)
    uf = ((rng.random((n_users, FACTORS + 1), dtype=np.float32) - 0.5) / FACTORS).astype(np.float32)
    uf[:, FACTORS] = 1.0
    itf = ((rng.random((n_items, FACTORS + 1), dtype=np.float32) - 0.5) / FACTORS).astype(
        np.float32
    )
    seeds = rng.integers(0, 2**31, size=THREADS, dtype="long")
    sampler = bpr.RNGVector(THREADS, len(matrix.data) - 1, seeds)
    benchmark.group = "lfm-bpr-epoch-only-movielens"
    benchmark.pedantic(
        lambda: bpr.bpr_update(
            sampler, users, matrix.indices, matrix.indptr, uf, itf, 0.01, 0.01, THREADS, True
        ),
        rounds=EPOCH_ONLY_ROUNDS,
        warmup_rounds=1,
    )
    benchmark.extra_info["steps"] = int(interactions.nnz)
