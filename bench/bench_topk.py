"""Top-k selection: recforge's C++ kernel vs np.argpartition + sort (10k users × 50k items).

Run:  pytest bench/bench_topk.py --benchmark-only --benchmark-json=/tmp/topk.json
      python bench/compare.py /tmp/topk.json
"""

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.kernels.topk import topk

from .conftest import pick

N_USERS = pick(10_000, 300)
N_ITEMS = pick(50_000, 2_000)
K = 10


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    return rng.random((N_USERS, N_ITEMS), dtype=np.float32)


@pytest.fixture(scope="module")
def seen():
    """~50 seen items per user, power-law popular (like interaction data)."""
    rng = np.random.default_rng(1)
    n_seen = 50
    items = np.minimum((rng.pareto(1.2, size=N_USERS * n_seen) * 50).astype(np.int64), N_ITEMS - 1)
    rows = np.repeat(np.arange(N_USERS), n_seen)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, items)), shape=(N_USERS, N_ITEMS))
    m.sum_duplicates()
    return m


def numpy_topk(scores, k):
    """The NumPy way: argpartition, then sort the k winners (no exclusions)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def numpy_topk_excluding(scores, k, seen):
    """The NumPy way with seen items removed: copy, set seen to -inf, then argpartition + sort."""
    masked = scores.copy()
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    masked[rows, seen.indices] = -np.inf
    return numpy_topk(masked, k)


@pytest.mark.benchmark(group="topk")
def test_numpy_argpartition(benchmark, scores):
    result = benchmark.pedantic(numpy_topk, args=(scores, K), rounds=5, warmup_rounds=1)
    assert result.shape == (N_USERS, K)


@pytest.mark.benchmark(group="topk")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_topk(benchmark, scores, n_threads):
    idx, _ = benchmark.pedantic(
        topk, args=(scores, K), kwargs={"n_threads": n_threads}, rounds=5, warmup_rounds=1
    )
    np.testing.assert_array_equal(idx[:50], numpy_topk(scores[:50], K))


@pytest.mark.benchmark(group="topk-exclude-seen")
def test_numpy_argpartition_excluding(benchmark, scores, seen):
    result = benchmark.pedantic(
        numpy_topk_excluding, args=(scores, K, seen), rounds=5, warmup_rounds=1
    )
    assert result.shape == (N_USERS, K)


@pytest.mark.benchmark(group="topk-exclude-seen")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_topk_excluding(benchmark, scores, seen, n_threads):
    idx, _ = benchmark.pedantic(
        topk,
        args=(scores, K),
        kwargs={"exclude": seen, "n_threads": n_threads},
        rounds=5,
        warmup_rounds=1,
    )
    np.testing.assert_array_equal(idx[:50], numpy_topk_excluding(scores[:50], K, seen[:50]))


@pytest.mark.benchmark(group="topk-one-core-busy")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_topk_contended(benchmark, scores, seen, busy_core, n_threads):
    """With a foreign busy loop on one core, 2 threads must not be slower than 1 (threads block, never spin)."""
    idx, _ = benchmark.pedantic(
        topk,
        args=(scores, K),
        kwargs={"exclude": seen, "n_threads": n_threads},
        rounds=5,
        warmup_rounds=1,
    )
    assert idx.shape == (N_USERS, K)
