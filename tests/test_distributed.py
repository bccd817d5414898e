"""recforge.distributed on a local 2-process Dask cluster: each path equal to the single machine."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

import dask  # noqa: E402

import recforge.distributed as rd  # noqa: E402
from recforge.data import (  # noqa: E402
    Interactions,
    leave_last_k_split,
    synthetic_interactions,
    temporal_split,
)
from recforge.distributed._compat import balanced_bounds, require_dask  # noqa: E402
from recforge.evaluate import evaluate_recall  # noqa: E402
from recforge.exceptions import NotFittedError  # noqa: E402
from recforge.kernels._csr import csr_kernel_arrays as csr_arrays  # noqa: E402
from recforge.kernels.neighbors import cooccurrence_sums, topk_csr_rows  # noqa: E402
from recforge.recall import LFM, ItemCF, Popularity, UserCF  # noqa: E402
from recforge.recall._neighbors import log_penalty  # noqa: E402

COLS = {"user_col": "user", "item_col": "item", "weight_col": "rating", "timestamp_col": "ts"}


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def _frame(n_users=400, n_items=150, nnz=8000, seed=3) -> pd.DataFrame:
    """Shuffled rows with string user ids, int item ids, float ratings and timestamp ties."""
    x = synthetic_interactions(n_users, n_items, nnz, seed=seed)
    df = x.to_dataframe().sample(frac=1.0, random_state=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": "u" + df["user_id"].astype(str),
            "item": (df["item_id"] * 7 + 1000).astype(np.int64),
            "rating": rng.integers(1, 6, len(df)).astype(np.float64),
            "ts": np.floor(df["timestamp"] / 1e5),  # coarse: many timestamp ties inside a user
        }
    )


@pytest.fixture(scope="module")
def frame():
    return _frame()


@pytest.fixture(scope="module")
def data(client, frame):
    return rd.from_dask_dataframe(
        dd.from_pandas(frame, npartitions=4), client, n_partitions=3, **COLS
    )


@pytest.fixture(scope="module")
def reference(frame):
    return Interactions.from_dataframe(frame, **COLS)


@pytest.fixture(scope="module")
def split(data):
    return data.temporal_split(0.2, 5)


@pytest.fixture(scope="module")
def local_split(reference):
    return temporal_split(reference, 0.2, 5)


def assert_same_interactions(got: Interactions, want: Interactions):
    assert got.user_map == want.user_map and got.item_map == want.item_map
    assert got.shape == want.shape
    for name in ("indptr", "indices", "data"):
        a, b = getattr(got.matrix, name), getattr(want.matrix, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    if want.timestamps is None:
        assert got.timestamps is None
    else:
        assert np.array_equal(got.timestamps, want.timestamps)


# ----------------------------------------------------------------------------------- input
def test_from_dask_dataframe_equals_from_dataframe(data, reference):
    assert data.n_partitions == 3 and data.nnz == reference.nnz and data.has_timestamps
    assert_same_interactions(data.to_local(), reference)


def test_partitions_hold_whole_users_in_index_ranges(client, data, reference):
    assert data.bounds[0] == 0 and data.bounds[-1] == reference.n_users
    assert np.all(np.diff(data.bounds) > 0)
    for q, part in enumerate(client.gather(data.partitions)):
        lo, hi = data.bounds[q], data.bounds[q + 1]
        assert np.array_equal(part.user_map.ids, reference.user_map.ids[lo:hi])
        assert part.item_map == reference.item_map
        assert (part.matrix != reference.matrix[lo:hi]).nnz == 0
    counts = np.diff(reference.matrix.indptr)
    per_part = [counts[lo:hi].sum() for lo, hi in zip(data.bounds[:-1], data.bounds[1:])]
    assert max(per_part) < 2 * min(per_part)  # cut for balanced interaction counts


@pytest.mark.parametrize("policy", ["sum", "last", "first", "max"])
def test_duplicates_across_input_partitions(client, frame, policy):
    doubled = pd.concat([frame, frame.assign(rating=frame["rating"] + 1, ts=frame["ts"] + 1)])
    doubled = doubled.sample(frac=1.0, random_state=1).reset_index(drop=True)
    got = rd.from_dask_dataframe(
        dd.from_pandas(doubled, npartitions=5), client, duplicates=policy, **COLS
    )
    assert_same_interactions(
        got.to_local(), Interactions.from_dataframe(doubled, duplicates=policy, **COLS)
    )


# dask's read_parquet passes inplace=True to pandas, which pandas 3.1 deprecates (not ours)
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame")
def test_from_parquet(client, frame, tmp_path):
    dd.from_pandas(frame, npartitions=3).to_parquet(tmp_path / "interactions")
    got = rd.from_parquet(tmp_path / "interactions", client, n_partitions=2, **COLS)
    assert_same_interactions(got.to_local(), Interactions.from_dataframe(frame, **COLS))


def test_optional_columns_and_int_ids(client):
    df = pd.DataFrame({"u": [5, 3, 5, 9, 3], "i": [2, 2, 7, 2, 1]})
    got = rd.from_dask_dataframe(
        dd.from_pandas(df, npartitions=2), client, user_col="u", item_col="i"
    )
    assert not got.has_timestamps
    assert_same_interactions(
        got.to_local(), Interactions.from_dataframe(df, user_col="u", item_col="i")
    )


def test_splits_per_partition_equal_single_machine(data, reference, split, local_split):
    for got, want in zip(split, local_split):
        assert_same_interactions(got.to_local(), want)
    for got, want in zip(data.leave_last_k_split(2, 3), leave_last_k_split(reference, 2, 3)):
        assert_same_interactions(got.to_local(), want)
    assert_same_interactions(data.positives(4.0).to_local(), reference.positives(4.0))


def test_input_errors(client, frame):
    ddf = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(TypeError, match=r"ddf must be a dask.dataframe.DataFrame"):
        rd.from_dask_dataframe(frame, client, **COLS)
    with pytest.raises(TypeError, match=r"client must be a distributed.Client"):
        rd.from_dask_dataframe(ddf, "tcp://x", **COLS)
    with pytest.raises(ValueError, match="weight_col='nope' is not a column"):
        rd.from_dask_dataframe(ddf, client, user_col="user", item_col="item", weight_col="nope")
    twice = dd.from_pandas(frame[["user", "item", "user"]], npartitions=2)
    with pytest.raises(ValueError, match="user_col='user' names 2 columns of ddf"):
        rd.from_dask_dataframe(twice, client, user_col="user", item_col="item")
    with pytest.raises(ValueError, match="duplicates"):
        rd.from_dask_dataframe(
            dd.from_pandas(pd.concat([frame, frame.head(3)]), npartitions=2), client, **COLS
        )
    with pytest.raises(ValueError, match="weights must be >= 0"):
        rd.from_dask_dataframe(
            dd.from_pandas(frame.assign(rating=-1.0), npartitions=2), client, **COLS
        )
    ints = pd.DataFrame({"user": [1, 2], "item": [1, 2]})
    strings = pd.DataFrame({"user": ["a", "b"], "item": [3, 4]})
    mixed = dd.from_delayed(
        [dask.delayed(ints), dask.delayed(strings)], meta=ints.head(0), verify_meta=False
    )
    with pytest.raises(TypeError, match="users must all be integers or all be strings"):
        rd.from_dask_dataframe(mixed, client, user_col="user", item_col="item")
    with pytest.raises(ValueError, match="n_partitions must be >= 1"):
        rd.from_dask_dataframe(ddf, client, n_partitions=0, **COLS)


def test_missing_extra_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "recforge\[dask\]"'):
        require_dask()


def test_balanced_bounds():
    assert balanced_bounds(np.ones(10), 3).tolist() == [0, 4, 7, 10]
    assert balanced_bounds(np.ones(2), 5).tolist() == [0, 1, 2]
    assert balanced_bounds(np.array([100, 1, 1, 1]), 2).tolist() == [0, 1, 4]


# ----------------------------------------------------------------------------------- recommend
def _flat(model, users, k, **kwargs):
    ids, scores = model.recommend(users, k=k, **kwargs)
    return ids.reshape(-1), scores.reshape(-1)


def _assert_rows(recs: pd.DataFrame, model, users, k, **kwargs):
    ids, scores = _flat(model, users, k, **kwargs)
    assert list(recs.columns) == ["user", "rank", "item", "score"]
    assert len(recs) == len(users) * k
    assert np.array_equal(
        recs["user"].to_numpy(dtype=object), np.repeat(np.asarray(users), k).astype(object)
    )
    assert np.array_equal(recs["rank"].to_numpy(), np.tile(np.arange(1, k + 1), len(users)))
    assert np.array_equal(recs["item"].to_numpy(dtype=object, na_value=None), ids.astype(object))
    assert recs["score"].dtype == np.float32 and np.array_equal(recs["score"].to_numpy(), scores)


@pytest.fixture(scope="module")
def itemcf(local_split):
    return ItemCF(n_neighbors=10).fit(local_split[0])


def test_batch_recommend_all_users(client, itemcf):
    recs = rd.batch_recommend(itemcf, client, k=7, n_partitions=5)
    assert recs.npartitions == 5
    _assert_rows(recs.compute(), itemcf, itemcf.user_map_.ids, 7)


def test_batch_recommend_dask_users_and_filters(client, itemcf):
    users = itemcf.user_map_.ids[::3]
    series = dd.from_pandas(pd.Series(users, name="user"), npartitions=3, sort=False)
    blocked, allowed = itemcf.item_map_.ids[:20], itemcf.item_map_.ids[10:60]
    recs = rd.batch_recommend(
        itemcf, client, series, k=5, filter_items=blocked, items=allowed, batch_size=17
    ).compute()
    _assert_rows(recs, itemcf, users, 5, filter_items=blocked, items=allowed)


def test_batch_recommend_other_models_and_padding(client, split, local_split):
    train = local_split[0]
    lfm = LFM(n_factors=8, epochs=3, random_state=0, n_threads=1).fit(train)
    pop = Popularity().fit(train)
    for model, users in ((lfm, split[0]), (pop, train.user_map.ids[:50])):
        recs = rd.batch_recommend(model, client, users, k=4).compute()
        ids = users if not isinstance(users, rd.DaskInteractions) else users.user_map.ids
        _assert_rows(recs, model, ids, 4)
    # a whitelist of 3 items: k=5 rows per user padded with -1 / -inf as recommend pads them
    recs = rd.batch_recommend(
        pop, client, train.user_map.ids[:10], k=5, items=train.item_map.ids[:3]
    ).compute()
    _assert_rows(recs, pop, train.user_map.ids[:10], 5, items=train.item_map.ids[:3])
    assert np.isneginf(recs["score"]).sum() > 0


def test_models_split_by_user_score_ids_in_any_order_with_repeats(client, local_split):
    from recforge.distributed._slices import splittable

    train = local_split[0]
    rng = np.random.default_rng(7)
    users = rng.choice(train.user_map.ids, size=150)  # repeats, any order
    for model in (
        LFM(n_factors=8, epochs=2, random_state=0, n_threads=1).fit(train),
        ItemCF(n_neighbors=6, time_decay=0.1).fit(train),
    ):
        assert splittable(model)
        blocked = model.item_map_.ids[:5]
        recs = rd.batch_recommend(
            model, client, users, k=6, n_partitions=4, filter_items=blocked
        ).compute()
        _assert_rows(recs, model, users, 6, filter_items=blocked)


def test_users_of_the_models_map_are_read_from_the_model_in_small_ranges(client, split):
    from recforge.distributed.recommend import ModelUsers, _user_sources

    data = split[0]
    model = Popularity().fit(data.to_local())
    assert np.array_equal(model.user_map_.ids, data.user_map.ids)
    sources = _user_sources(data, model, client, None, max_users=50)
    assert all(isinstance(s, ModelUsers) for s in sources)  # no dependency on a partition
    assert sources[0].start == 0 and sources[-1].stop == data.n_users
    assert all(a.stop == b.start for a, b in itertools.pairwise(sources))
    assert max(s.stop - s.start for s in sources) <= 50
    # another model's users: the partitions' own ids, read where they are
    other = Popularity().fit(Interactions.from_dataframe(_frame(200, 60, 2000, seed=5), **COLS))
    assert not any(isinstance(s, ModelUsers) for s in _user_sources(data, other, client, None))


def test_batch_recommend_string_item_ids_and_one_load_per_worker(client):
    df = _frame(200, 60, 2000, seed=5)
    df["item"] = "i" + df["item"].astype(str)
    x = Interactions.from_dataframe(df, **COLS)
    model = Popularity().fit(x)
    users = x.user_map.ids
    # k above the unseen items of every user: each row is padded with None / -inf
    recs = rd.batch_recommend(model, client, users, k=62, n_partitions=6).compute()
    _assert_rows(recs, model, users, 62)
    pads = recs["item"].isna().to_numpy()
    assert pads.sum() >= len(users) and np.array_equal(pads, np.isneginf(recs["score"].to_numpy()))

    def cached_digests():
        from recforge.distributed import _shipping

        return list(_shipping._cache)

    loaded = client.run(cached_digests)
    assert len(loaded) == 2 and all(1 <= len(d) <= rd._shipping.CACHE_SIZE for d in loaded.values())


def test_batch_recommend_errors(client, itemcf):
    with pytest.raises(KeyError, match="nobody"):
        rd.batch_recommend(itemcf, client, np.array(["u1", "nobody"]), k=3).compute()
    with pytest.raises(NotFittedError):
        rd.batch_recommend(ItemCF(), client)
    with pytest.raises(TypeError, match="model must be a fitted recforge model"):
        rd.batch_recommend(object(), client)
    with pytest.raises(TypeError, match="users must be None"):
        rd.batch_recommend(itemcf, client, {"u1"})
    with pytest.raises(ValueError, match="k must be >= 1"):
        rd.batch_recommend(itemcf, client, k=0)


def test_evaluate_recall_equals_single_machine(client, frame, itemcf, split, local_split):
    pop = Popularity().fit(local_split[0])
    for model, k in ((itemcf, 10), (pop, 3)):
        want = evaluate_recall(model, *local_split, k=k)
        got = rd.evaluate_recall(model, *split, client, k=k, batch_size=29)
        assert got == want
    with pytest.raises(ValueError, match="other id maps or user partitions"):
        other = rd.from_dask_dataframe(
            dd.from_pandas(frame, npartitions=2), client, n_partitions=2, **COLS
        )
        rd.evaluate_recall(itemcf, split[0], other.temporal_split(0.2, 5)[1], client)
    with pytest.raises(TypeError, match="train must be a DaskInteractions"):
        rd.evaluate_recall(itemcf, local_split[0], split[1], client)


# ----------------------------------------------------------------------------------- similarity
@pytest.mark.parametrize(
    "shape, density", [((60, 25), 0.2), ((3000, 400), 0.003)]
)  # dense / sparse rows
def test_cooccurrence_sums_is_the_numerator(shape, density):
    m = sp.random(*shape, density=density, format="csr", random_state=0, dtype=np.float32)
    n_items = shape[1]
    items = m.T.tocsr()
    items.sort_indices()
    penalty = log_penalty(np.diff(m.indptr))
    binary = (m != 0).astype(np.float64)
    want = (binary.T @ sp.diags(penalty) @ binary).toarray()
    np.fill_diagonal(want, 0.0)
    for lo, hi, chunks in ((0, n_items, 1), (3, n_items - 6, 3), (7, 7, 2)):
        indptr, indices, data = cooccurrence_sums(
            *csr_arrays(items)[:2], *csr_arrays(m)[:2], penalty, lo, hi, chunks
        )
        got = sp.csr_matrix((data, indices, indptr), shape=(hi - lo, n_items))
        assert got.has_sorted_indices and data.dtype == np.float64
        np.testing.assert_allclose(got.toarray(), want[lo:hi], rtol=1e-12)


def test_topk_csr_rows_ranks_like_the_single_machine_kernel():
    rng = np.random.default_rng(0)
    dense = np.where(
        rng.random((30, 40)) < 0.5, rng.integers(1, 4, (30, 40)).astype(np.float64), 0.0
    )
    dense[:, 5] = dense[:, 6]  # ties: the lower index first
    m = sp.csr_matrix(dense)
    norm = rng.uniform(1.0, 3.0, 40)
    idx, val, counts = topk_csr_rows(
        m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, 4, norm, 6, 3
    )
    for r in range(30):
        sims = np.float32(dense[r] / (norm[4 + r] * norm))
        order = np.lexsort((np.arange(40), -sims))[:6]
        order = order[sims[order] > 0]
        assert counts[r] == order.size
        assert np.array_equal(idx[r, : counts[r]], order) and np.array_equal(
            val[r, : counts[r]], sims[order]
        )


def _assert_same_neighbors(got, want):
    s, t = got.similarity_, want.similarity_
    assert np.array_equal(s.indptr, t.indptr) and np.array_equal(s.indices, t.indices)
    assert s.data.dtype == np.float32
    np.testing.assert_allclose(s.data, t.data, rtol=1e-6, atol=0)
    assert got.user_map_ == want.user_map_ and got.item_map_ == want.item_map_


@pytest.mark.parametrize(
    "params",
    [
        {"n_neighbors": 12},
        {"n_neighbors": 5, "normalize_max": False, "time_decay": 0.01},
        {"n_neighbors": 30, "use_weights": False, "n_blocks": 4},
    ],
)
def test_fit_itemcf_equals_single_machine(client, split, local_split, params):
    got = rd.fit_itemcf(split[0], client, **params)
    want = ItemCF(**{k: v for k, v in params.items() if k != "n_blocks"}).fit(local_split[0])
    assert isinstance(got, ItemCF) and got.get_params() == want.get_params()
    _assert_same_neighbors(got, want)
    assert (got.user_weights_ != want.user_weights_).nnz == 0
    users = want.user_map_.ids[::7]
    for a, b in zip(got.recommend(users, k=10), want.recommend(users, k=10)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "params", [{"n_neighbors": 8}, {"n_neighbors": 3, "normalize_max": True, "n_blocks": 5}]
)
def test_fit_usercf_equals_single_machine(client, split, local_split, params):
    got = rd.fit_usercf(split[0], client, **params)
    want = UserCF(**{k: v for k, v in params.items() if k != "n_blocks"}).fit(local_split[0])
    assert isinstance(got, UserCF)
    _assert_same_neighbors(got, want)
    assert (got.item_weights_ != want.item_weights_).nnz == 0
    users = want.user_map_.ids[::7]
    for a, b in zip(got.recommend(users, k=10), want.recommend(users, k=10)):
        assert np.array_equal(a, b)


def test_fit_similarity_errors(client, split, local_split):
    with pytest.raises(TypeError, match=r"data must be a recforge.distributed.DaskInteractions"):
        rd.fit_itemcf(local_split[0], client)
    with pytest.raises(ValueError, match="n_neighbors must be >= 1"):
        rd.fit_itemcf(split[0], client, n_neighbors=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        rd.fit_usercf(split[0], client, n_neighbours=5)


def test_ship_model_loads_the_model_on_every_worker_before_any_task(client):
    import time

    from recforge.distributed._shipping import ship_model

    model = Popularity().fit(Interactions.from_dataframe(_frame(120, 40, 900, seed=11), **COLS))
    shipped = ship_model(client, model)

    def cached(digest):
        from recforge.distributed import _shipping

        return digest in _shipping._cache

    deadline = time.monotonic() + 60
    while not all(client.run(cached, shipped.digest).values()):
        assert time.monotonic() < deadline, "the preload did not reach every worker"
        time.sleep(0.05)


def test_load_shipped_loads_once_when_threads_ask_together(monkeypatch):
    import threading
    import time

    from recforge.distributed import _shipping

    calls = []

    def slow_load(class_path, digest, data):
        calls.append(digest)
        time.sleep(0.2)
        model = object()
        with _shipping._lock:
            _shipping._cache[digest] = model
        return model

    monkeypatch.setattr(_shipping, "_load", slow_load)
    digest = "test-digest-loaded-once"
    got = [None] * 4

    def ask(i):
        got[i] = _shipping.load_shipped("x:y", digest, b"")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert calls == [digest]
        assert all(g is got[0] for g in got) and got[0] is not None
        assert digest not in _shipping._loading
    finally:
        _shipping._cache.pop(digest, None)
