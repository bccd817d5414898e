"""ItemCF / UserCF: fit + recommend(all users, k=10), recforge vs implicit's CosineRecommender (same K, same threads).

Data: MovieLens ml-latest-small (the temporal-split train positives) and the synthetic
160k users × 60k items × 20M interactions set (``RECFORGE_BENCH_SIZE=smoke``: 2k × 1k × 50k).

Run:  pytest bench/bench_cf.py --benchmark-only --benchmark-json=/tmp/cf.json
      python bench/compare.py /tmp/cf.json
"""

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.recall import ItemCF, UserCF

from .conftest import pick

N_THREADS = 2
K_RESULTS = 10


@pytest.fixture(scope="module")
def movielens_train():
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small

    train, _ = temporal_split(movielens_small().interactions().positives(4.0))
    return train


@pytest.fixture(scope="module")
def synthetic():
    from recforge.data import synthetic_interactions

    return synthetic_interactions(*pick((160_000, 60_000, 20_000_000), (2_000, 1_000, 50_000)))


def ours_itemcf(data, n_neighbors):
    model = ItemCF(n_neighbors=n_neighbors, n_threads=N_THREADS).fit(data)
    return model.recommend(data.user_map.ids, k=K_RESULTS)[0]


def implicit_cosine(data, n_neighbors):
    import warnings

    from implicit.nearest_neighbours import CosineRecommender

    matrix = sp.csr_matrix(data.matrix)
    model = CosineRecommender(K=n_neighbors, num_threads=N_THREADS)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # implicit warns about its own internal COO → CSR conversion
        model.fit(matrix, show_progress=False)
        return model.recommend(np.arange(matrix.shape[0]), matrix, N=K_RESULTS)[0]


def _warm():
    """The first calls once (the C++ thread pool started, the first allocations), outside the timings."""
    from recforge.data import synthetic_interactions

    ours_itemcf(synthetic_interactions(50, 40, 500), 5)
    UserCF(n_neighbors=5, n_threads=N_THREADS).fit(synthetic_interactions(50, 40, 500)).recommend(
        np.arange(50)
    )


@pytest.mark.parametrize("n_neighbors", [20, 100])
@pytest.mark.parametrize("who", ["implicit", "recforge"])
def test_itemcf_movielens(benchmark, movielens_train, who, n_neighbors):
    pytest.importorskip("implicit")
    _warm()
    benchmark.group = f"itemcf fit+recommend ml-latest-small K={n_neighbors}"
    fn = ours_itemcf if who == "recforge" else implicit_cosine
    result = benchmark.pedantic(fn, args=(movielens_train, n_neighbors), rounds=5, warmup_rounds=1)
    assert result.shape == (movielens_train.n_users, K_RESULTS)


@pytest.mark.parametrize("who", ["implicit", "recforge"])
def test_itemcf_synthetic(benchmark, synthetic, who):
    pytest.importorskip("implicit")
    _warm()
    benchmark.group = "itemcf fit+recommend synthetic K=20"
    fn = ours_itemcf if who == "recforge" else implicit_cosine
    result = benchmark.pedantic(fn, args=(synthetic, 20), rounds=pick(3, 2), warmup_rounds=0)
    assert result.shape == (synthetic.n_users, K_RESULTS)


def scipy_usercf(data, n_neighbors):
    """A plain UserCF in scipy: cosine user–user similarity, top-K per user, sparse scores, seen removed."""
    x = sp.csr_matrix(data.matrix, copy=True)
    x.data[:] = 1.0
    norm = np.sqrt(np.maximum(x.getnnz(axis=1), 1))
    xn = sp.diags(1.0 / norm) @ x
    sim = (xn @ xn.T).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    rows, cols, vals = [], [], []
    for u in range(sim.shape[0]):
        s, e = sim.indptr[u], sim.indptr[u + 1]
        keep = np.argsort(-sim.data[s:e], kind="stable")[:n_neighbors]
        rows.append(np.full(len(keep), u))
        cols.append(sim.indices[s:e][keep])
        vals.append(sim.data[s:e][keep])
    knn = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=sim.shape
    )
    scores = (knn @ x).toarray()
    scores[x.nonzero()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :K_RESULTS]


def ours_usercf(data, n_neighbors):
    model = UserCF(n_neighbors=n_neighbors, n_threads=N_THREADS).fit(data)
    return model.recommend(data.user_map.ids, k=K_RESULTS)[0]


@pytest.mark.parametrize("who", ["scipy", "recforge"])
def test_usercf_movielens(benchmark, movielens_train, who):
    _warm()
    benchmark.group = "usercf fit+recommend ml-latest-small K=20"
    fn = ours_usercf if who == "recforge" else scipy_usercf
    result = benchmark.pedantic(fn, args=(movielens_train, 20), rounds=5, warmup_rounds=1)
    assert result.shape[0] == movielens_train.n_users
