"""PersonalRank per user: recforge (all users at once) vs networkx, igraph (1 thread) and scipy.

ml-latest-small (temporal-split train positives, α = 0.8): our ``recommend`` for every user vs the
peers' personalised PageRank for a sample of users; the top-10 lists (train items removed, ties by
lower index) are compared. Synthetic 160k × 60k × 20M: our ``recommend`` for a block of users vs
scipy GMRES on ``(I − αMᵀ) r = (1 − α) r0`` per user (``RECFORGE_BENCH_SIZE=smoke``: 2k × 1k × 50k).
Timings are per user: compare ``bench/compare.py`` ratios after dividing by the users of each entry
(the entries' ``extra_info["users"]``), or read the ``ms/user`` lines this module prints.

Run:  pytest bench/bench_personal_rank.py --benchmark-only --benchmark-json=/tmp/pr.json -s
"""

import os

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.kernels.topk import topk
from recforge.recall import PersonalRank

from .conftest import pick

ALPHA = 0.8
K = 10
N_THREADS = 2


@pytest.fixture(scope="module")
def movielens_train():
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small

    train, _ = temporal_split(movielens_small().interactions().positives(4.0))
    return train


def _edges(data):
    coo = data.matrix.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64) + data.n_users


def _top10(data, users, item_scores):
    """(len(users), 10) internal item indices from (len(users), n_items) scores, train items removed."""
    idx, _ = topk(np.asarray(item_scores, np.float64), K, exclude=data.matrix[users])
    return idx


def networkx_graph(data):
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(data.n_users + data.n_items))
    g.add_edges_from(zip(*_edges(data)))
    return g


def networkx_scores(g, data, users):
    import networkx as nx

    out = np.zeros((len(users), data.n_items))
    for row, u in enumerate(users):
        pr = nx.pagerank(g, alpha=ALPHA, personalization={int(u): 1.0}, tol=1e-12, max_iter=1000)
        out[row] = [pr[data.n_users + i] for i in range(data.n_items)]
    return out


def igraph_graph(data):
    import igraph as ig

    return ig.Graph(n=data.n_users + data.n_items, edges=list(zip(*_edges(data))))


def igraph_scores(g, data, users):
    items = list(range(data.n_users, data.n_users + data.n_items))
    out = np.zeros((len(users), data.n_items))
    for row, u in enumerate(users):
        out[row] = g.personalized_pagerank(
            vertices=items, damping=ALPHA, reset_vertices=[int(u)], implementation="prpack"
        )
    return out


def ours_recommend(data, users, **params):
    model = PersonalRank(alpha=ALPHA, n_threads=N_THREADS, **params).fit(data)
    return model.recommend(data.user_map.ids[users], k=K)[0]


def _report(benchmark, name, n_users):
    per_user = benchmark.stats.stats.median / n_users
    benchmark.extra_info["users"] = n_users
    benchmark.extra_info["ms_per_user"] = per_user * 1e3
    print(f"\n{name}: {per_user * 1e3:.3f} ms/user")


@pytest.mark.benchmark(group="personal_rank ml-latest-small per user")
@pytest.mark.parametrize("method", ["auto", "iterate", "cg", "solve"])  # auto = "direct" here
def test_recforge(benchmark, movielens_train, method):
    users = np.arange(movielens_train.n_users)
    ids = benchmark.pedantic(
        ours_recommend,
        args=(movielens_train, users),
        kwargs={"method": method},
        rounds=3,
        warmup_rounds=1,
    )
    assert ids.shape == (len(users), K)
    _report(benchmark, f"recforge {method}", len(users))


@pytest.mark.benchmark(group="personal_rank ml-latest-small per user")
@pytest.mark.parametrize("peer, n_users", [("igraph", pick(100, 10)), ("networkx", pick(20, 3))])
def test_peer(benchmark, movielens_train, peer, n_users):
    pytest.importorskip(peer)
    from threadpoolctl import threadpool_limits

    users = np.arange(n_users)
    fn, graph = (
        (igraph_scores, igraph_graph) if peer == "igraph" else (networkx_scores, networkx_graph)
    )
    g = graph(movielens_train)  # graph construction is not timed
    os.environ["OMP_NUM_THREADS"] = "1"
    with threadpool_limits(1):
        scores = benchmark.pedantic(fn, args=(g, movielens_train, users), rounds=1, warmup_rounds=0)
    _report(benchmark, peer, n_users)
    theirs = _top10(movielens_train, users, scores)
    model = PersonalRank(alpha=ALPHA).fit(movielens_train)
    ours_ids = model.recommend(movielens_train.user_map.ids[users], k=K)[0]
    ours = np.asarray(movielens_train.item_map.index(ours_ids.ravel())).reshape(theirs.shape)
    same = int((ours == theirs).all(axis=1).sum())
    benchmark.extra_info["identical_top10"] = f"{same}/{n_users}"
    print(f"{peer}: identical top-10 lists {same}/{n_users}")
    assert same >= n_users - max(1, n_users // 50)  # near-ties may swap in float rounding


@pytest.fixture(scope="module")
def synthetic():
    from recforge.data import synthetic_interactions

    return synthetic_interactions(*pick((160_000, 60_000, 20_000_000), (2_000, 1_000, 50_000)))


def gmres_system(data):
    w = sp.csr_matrix(data.matrix, dtype=np.float64, copy=True)
    w.data[:] = 1.0
    adj = sp.bmat([[None, w], [w.T, None]], format="csr")
    deg = np.asarray(adj.sum(axis=1)).ravel()
    trans = sp.diags(np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)) @ adj
    return (sp.identity(adj.shape[0], format="csr") - ALPHA * trans.T).tocsr()


def gmres_scores(a, data, users):
    from scipy.sparse.linalg import gmres

    out = np.zeros((len(users), data.n_items))
    for row, u in enumerate(users):
        b = np.zeros(a.shape[0])
        b[u] = 1 - ALPHA
        x, info = gmres(a, b, rtol=1e-6, atol=0.0)
        assert info == 0
        out[row] = x[data.n_users :]
    return out


@pytest.mark.benchmark(group="personal_rank synthetic per user")
@pytest.mark.parametrize("method", ["auto", "iterate"])  # auto = "cg" at this size
def test_recforge_synthetic(benchmark, synthetic, method):
    n_users = pick(64, 20)  # 64 users: several column blocks, and a short run
    model = PersonalRank(alpha=ALPHA, tol=1e-6, method=method, n_threads=N_THREADS).fit(synthetic)
    users = synthetic.user_map.ids[
        :n_users
    ]  # the fit (transition matrices) is not timed, like GMRES's system
    model.recommend(users[:1], k=K)  # load the compiled kernels outside the timing
    ids = benchmark.pedantic(lambda: model.recommend(users, k=K)[0], rounds=1, warmup_rounds=0)
    assert ids.shape == (n_users, K)
    _report(benchmark, f"recforge {method} tol=1e-6", n_users)


@pytest.mark.benchmark(group="personal_rank synthetic per user")
def test_scipy_gmres_synthetic(benchmark, synthetic):
    n_users = pick(3, 3)
    a = gmres_system(synthetic)  # building the system is not timed
    scores = benchmark.pedantic(
        gmres_scores, args=(a, synthetic, np.arange(n_users)), rounds=1, warmup_rounds=0
    )
    _report(benchmark, "scipy gmres rtol=1e-6", n_users)
    assert scores.shape == (n_users, synthetic.n_items)
