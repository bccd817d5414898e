"""recforge.pipeline: candidate merge, labels, leakage, the recommend contract, save/load, bad input."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recforge.data import Interactions
from recforge.pipeline import TwoStage, cut_history, merge_lists
from recforge.pipeline.labels import label_from_impressions, sample_negatives, sampling_keys
from recforge.pipeline.selection import SourceOrder
from recforge.rank import GBDTClassifier
from recforge.recall import ItemCF, Popularity, UserCF

from .contract import RecallContract, contract_interactions

DAY = 86400.0


def small_pipeline(**kwargs):
    params = dict(
        quotas=8,
        ranker=GBDTClassifier(n_estimators=10, max_depth=3, n_threads=1, random_state=0),
        n_threads=1,
        random_state=0,
    )
    params.update(kwargs)
    return TwoStage(
        {"popularity": Popularity(n_threads=1), "itemcf": ItemCF(n_threads=1)}, **params
    )


def synthetic_log(n_users=60, n_items=40, seed=0):
    """Users drifting through item blocks over 100 days: sequential signal, ratings 1..5, times in seconds."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        n = rng.integers(6, 16)
        times = np.sort(rng.uniform(0, 100 * DAY, n))
        for j, t in enumerate(times):
            item = (start + j + rng.integers(0, 3)) % n_items
            rows.append((u, item, float(rng.integers(1, 6)), t))
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "ts"]).drop_duplicates(
        ["user", "item"]
    )
    # the catalogue has FRESH items no one interacted with: replacements that collide with nothing
    return Interactions.from_dataframe(
        df,
        user_col="user",
        item_col="item",
        weight_col="rating",
        timestamp_col="ts",
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items + N_FRESH),
    )


N_FRESH = 16


def with_entries(data, keep=None, replace=None, extra=None):
    """A copy of ``data`` keeping entries where ``keep``, the items of entries where ``replace`` moved to
    fresh items (distinct per user), plus ``extra`` rows."""
    df = data.to_dataframe()
    if keep is not None:
        df = df[keep]
    if replace is not None:
        df = df.copy()
        moved = df[replace]
        df.loc[replace, "item_id"] = 40 + moved.groupby("user_id").cumcount().to_numpy() % N_FRESH
    if extra is not None:
        df = pd.concat([df, extra], ignore_index=True).drop_duplicates(["user_id", "item_id"])
    return Interactions.from_dataframe(
        df,
        user_col="user_id",
        item_col="item_id",
        weight_col="weight",
        timestamp_col="timestamp",
        user_ids=data.user_map.ids,
        item_ids=data.item_map.ids,
    )


def frame(td):
    """Training rows keyed by (user, item), sorted: comparable across data sets."""
    order = np.lexsort((td.items, td.users))
    return td.users[order], td.items[order], td.X[order], td.y[order]


# ---- candidates -----------------------------------------------------------------------------------
class TestMerge:
    def lists(self):
        # 3 sources, 1 user, depth 4
        lists = np.array([[[10, 11, 12, 13]], [[11, 20, 21, -1]], [[30, -1, -1, -1]]])
        scores = np.array(
            [[[4, 3, 2, 1]], [[9, 8, 7, -np.inf]], [[5, -np.inf, -np.inf, -np.inf]]], np.float32
        )
        return lists, scores

    def test_quotas_dedup_and_fusion_order(self):
        lists, scores = self.lists()
        c = merge_lists(lists, scores, quotas=np.array([2, 1, 1]), target=4)
        # source 0 takes 10, 11; source 1's first NEW item is 20 (11 is taken); source 2 takes 30
        assert sorted(c.items.tolist()) == [10, 11, 20, 30]
        rrf = {int(i): float(r) for i, r in zip(c.items, c.rrf)}
        assert rrf[11] == pytest.approx(1 / 62 + 1 / 61)
        assert rrf[10] == pytest.approx(1 / 61) and rrf[30] == pytest.approx(1 / 61)
        assert c.items[0] == 11  # the highest fusion score first; ties by lower item index
        assert c.items.tolist() == [11, 10, 30, 20]
        assert c.offsets.tolist() == [0, 4]

    def test_ranks_scores_and_nan_where_missing(self):
        lists, scores = self.lists()
        c = merge_lists(lists, scores, quotas=np.array([4, 4, 4]), target=20)
        row = {int(i): j for j, i in enumerate(c.items)}
        assert len(row) == len(c.items) == 7  # the union, deduplicated
        j = row[11]
        np.testing.assert_array_equal(c.source_ranks[j, :2], [2, 1])
        np.testing.assert_array_equal(c.source_scores[j, :2], [3, 9])
        assert np.isnan(c.source_ranks[j, 2]) and np.isnan(c.source_scores[j, 2])
        assert c.n_sources[j] == 2 and c.n_sources[row[30]] == 1

    def test_fill_up_when_a_source_runs_short(self):
        lists, scores = self.lists()
        # source 2 has one item but a quota of 3: the two free slots go to the best remaining by fusion
        c = merge_lists(lists, scores, quotas=np.array([1, 1, 3]), target=5)
        assert len(c.items) == 5
        assert {10, 11, 30} <= set(c.items.tolist())
        # remaining by rrf: 20 (rank 2 -> 1/62) and 12 (rank 3 -> 1/63) before 21, 13
        assert set(c.items.tolist()) == {10, 11, 30, 20, 12}

    def test_fewer_candidates_than_target(self):
        lists, scores = self.lists()
        c = merge_lists(lists, scores, quotas=np.array([10, 10, 10]), target=30)
        assert len(c.items) == 7

    def test_rows_are_independent(self):
        lists, scores = self.lists()
        two = merge_lists(
            np.concatenate([lists, lists[:, :, ::-1]], axis=1),
            np.concatenate([scores, scores], axis=1),
            np.array([2, 1, 1]),
            4,
        )
        one = merge_lists(lists, scores, np.array([2, 1, 1]), 4)
        np.testing.assert_array_equal(two.items[:4], one.items)
        assert two.offsets.tolist() == [0, 4, 8]

    def test_pipeline_candidates_are_the_union(self):
        data = contract_interactions()
        model = small_pipeline(quotas={"popularity": 3, "itemcf": 3}).fit(data)
        user = data.user_map.ids[0]
        c = model.candidates([user])
        pop, _ = model.sources_["popularity"].recommend(user, k=6)
        cf, _ = model.sources_["itemcf"].recommend(user, k=6)
        ids = set(model.item_map_.ids[c.items].tolist())
        assert set(pop[:3].tolist()) <= ids and len(ids) == 6
        assert ids <= set(pop.tolist()) | set(cf[cf != -1].tolist())


# ---- labels ---------------------------------------------------------------------------------------
class TestLabels:
    def test_last_cut_is_the_per_user_temporal_split(self):
        data = synthetic_log()
        c = cut_history(data, cut="last", fraction=0.25)
        assert c.history.nnz + c.future.nnz == data.nnz
        h, f = c.history.matrix, c.future.matrix
        for u in range(data.n_users):
            hist_t = c.history.timestamps[h.indptr[u] : h.indptr[u + 1]]
            fut_t = c.future.timestamps[f.indptr[u] : f.indptr[u + 1]]
            if len(fut_t):
                assert hist_t.max() <= fut_t.min()
            assert c.as_of[u] == hist_t.max()

    def test_window_cut(self):
        data = synthetic_log()
        c = cut_history(data, cut="window", window=10, cut_time=80 * DAY)
        assert (c.history.timestamps < 80 * DAY).all()
        assert ((c.future.timestamps >= 80 * DAY) & (c.future.timestamps < 90 * DAY)).all()
        assert c.future.nnz == int(
            ((data.timestamps >= 80 * DAY) & (data.timestamps < 90 * DAY)).sum()
        )
        assert (c.as_of == 80 * DAY).all()

    def test_negative_sampling_keeps_positives_and_caps_negatives(self):
        rows = np.repeat(np.arange(4), 10)
        labels = np.zeros(40, np.int8)
        labels[[0, 5, 11, 39]] = 1
        keep = sample_negatives(rows, labels, 3, random_state=0)
        assert keep[labels == 1].all()
        per_row_neg = np.bincount(rows[keep & (labels == 0)], minlength=4)
        assert per_row_neg.tolist() == [3, 3, 3, 3]
        assert not np.array_equal(keep, sample_negatives(rows, labels, 3, random_state=1))
        assert sample_negatives(rows, labels, None).all()

    def test_sampling_keys_depend_on_the_seed_and_the_pair_only(self):
        users = np.repeat(np.arange(50), 40)
        items = np.tile(np.arange(40), 50)
        keys = sampling_keys(7, users, items)
        assert keys.dtype == np.float64 and ((keys >= 0) & (keys < 1)).all()
        assert len(np.unique(keys)) == len(keys)
        assert 0.45 < keys.mean() < 0.55
        order = np.random.default_rng(0).permutation(len(keys))  # any grouping of the pairs
        np.testing.assert_array_equal(sampling_keys(7, users[order], items[order]), keys[order])
        assert not np.array_equal(sampling_keys(8, users, items), keys)
        # the keys choose the negatives: the smallest per_user keys of each row's negatives
        labels = np.zeros(len(users), np.int8)
        keep = sample_negatives(users, labels, 5, keys=keys)
        for u in (0, 17, 49):
            mine = np.flatnonzero(users == u)
            want = mine[np.argsort(keys[mine])[:5]]
            np.testing.assert_array_equal(np.flatnonzero(keep & (users == u)), np.sort(want))
        with pytest.raises(ValueError, match="keys"):
            sample_negatives(users, labels, 5, keys=keys[:-1])

    def test_sampled_training_rows_do_not_depend_on_the_blocks(self):
        data = synthetic_log()
        params = dict(negatives_per_user=3, validation_fraction=0.25)
        whole = small_pipeline(**params).training_data(data)
        blocks = small_pipeline(block_size=7, **params).training_data(data)
        assert not whole.in_sample.all()
        for name in ("X", "y", "users", "items", "validation", "complete", "in_sample"):
            np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name), name)

    def test_impressions_supply_the_labels(self):
        data = synthetic_log()
        c = cut_history(data, cut="window", window=10, cut_time=80 * DAY)
        imp = pd.DataFrame(
            {
                "user": [0, 0, 1, 1, 2],
                "item": [5, 6, 5, 7, 9],
                "clicked": [1, 0, 0, 0, 1],
                "time": [81 * DAY, 82 * DAY, 81 * DAY, 70 * DAY, 95 * DAY],
            }
        )
        users = np.array([0, 0, 0, 1, 1, 2])
        items = np.array([5, 6, 7, 5, 7, 9])
        labels, labelled = label_from_impressions(
            users, items, imp, c.as_of, data.user_map, data.item_map
        )
        assert labelled.tolist() == [
            True,
            True,
            False,
            True,
            False,
            True,
        ]  # (1, 7) was shown before the cut
        assert labels[labelled].tolist() == [1, 0, 0, 1]
        with pytest.raises(ValueError, match="clicked"):
            label_from_impressions(
                users, items, imp.drop(columns="clicked"), c.as_of, data.user_map, data.item_map
            )

    def test_fit_with_impressions(self):
        data = synthetic_log()
        rng = np.random.default_rng(0)
        df = data.to_dataframe()
        late = df[df["timestamp"] >= 70 * DAY]
        imp = pd.DataFrame(
            {
                "user": late["user_id"].to_numpy(),
                "item": rng.integers(0, 40, len(late)),
                "clicked": rng.integers(0, 2, len(late)),
                "time": late["timestamp"].to_numpy(),
            }
        )
        model = small_pipeline(cut="window", label_window=30).fit(data, impressions=imp)
        assert model.training_summary_["rows"] > 0
        ids, _ = model.recommend(data.user_map.ids[:3], k=5)
        assert ids.shape == (3, 5)


# ---- leakage: nothing after the cut reaches the features ------------------------------------------
class TestLeakage:
    def test_window_cut_features_ignore_everything_after_the_cut(self):
        data = synthetic_log()
        model = small_pipeline(cut="window", label_window=15, cut_time=75 * DAY)
        base = frame(model.training_data(data))
        ts = data.to_dataframe()["timestamp"].to_numpy()
        after = ts >= 75 * DAY
        # the data after the cut changed completely: other items
        replaced = with_entries(data, replace=after)
        changed = frame(model.training_data(replaced))
        np.testing.assert_array_equal(base[0], changed[0])  # same users and candidates ...
        np.testing.assert_array_equal(base[1], changed[1])
        np.testing.assert_array_equal(base[2], changed[2])  # ... with identical features
        assert not np.array_equal(base[3], changed[3])  # only the labels moved

    def test_labels_ignore_everything_after_the_label_window(self):
        data = synthetic_log()
        model = small_pipeline(cut="window", label_window=15, cut_time=75 * DAY)
        base = frame(model.training_data(data))
        ts = data.to_dataframe()["timestamp"].to_numpy()
        truncated = with_entries(data, keep=ts < 90 * DAY)
        extra = pd.DataFrame(
            {
                "user_id": np.arange(30),
                "item_id": np.arange(30) % 40,
                "weight": 5.0,
                "timestamp": 120 * DAY,
            }
        )
        for other in (truncated, with_entries(data, extra=extra)):
            changed = frame(model.training_data(other))
            for a, b in zip(base, changed):
                np.testing.assert_array_equal(a, b)

    def test_last_cut_features_ignore_each_users_future(self):
        data = synthetic_log()
        model = small_pipeline(cut="last", label_fraction=0.3)
        base = frame(model.training_data(data))
        c = cut_history(data, cut="last", fraction=0.3)
        # every event after its user's cut moves to another item (same time): the history is untouched
        df = data.to_dataframe()
        hist = c.history.to_dataframe()
        key = set(zip(hist["user_id"], hist["item_id"]))
        future = np.array([(u, i) not in key for u, i in zip(df["user_id"], df["item_id"])])
        changed = frame(model.training_data(with_entries(data, replace=future)))
        np.testing.assert_array_equal(base[0], changed[0])
        np.testing.assert_array_equal(base[1], changed[1])
        np.testing.assert_array_equal(base[2], changed[2])
        assert not np.array_equal(base[3], changed[3])

    def test_features_are_as_of_each_row(self):
        """Item statistics count only events at or before the row's time (other users' later events too)."""
        data = synthetic_log()
        td = small_pipeline(cut="last", label_fraction=0.3).training_data(data)
        names = td.feature_names
        c = cut_history(data, cut="last", fraction=0.3)
        hist = c.history.to_dataframe()
        col = names.index("item_events")
        for r in range(0, len(td.y), 97):
            u, i = td.users[r], td.items[r]
            expected = int(((hist["item_id"] == i) & (hist["timestamp"] <= c.as_of[u])).sum())
            assert td.X[r, col] == expected


# ---- the recommend contract, save / load ----------------------------------------------------------
class TestContract(RecallContract):
    def make_model(self):
        return small_pipeline()

    def test_save_load_round_trip(self, fitted, data, tmp_path):
        path = tmp_path / "model.npz"
        fitted.save(path)
        loaded = TwoStage.load(path)
        users = self._users(data)
        a, b = fitted.recommend(users, k=7), loaded.recommend(users, k=7)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
        assert repr(loaded) == repr(fitted)
        assert loaded.feature_names_out_ == fitted.feature_names_out_
        history = data.item_map.ids[[0, 3, 4]]
        np.testing.assert_array_equal(
            fitted.recommend_from_history(history, k=5)[0],
            loaded.recommend_from_history(history, k=5)[0],
        )

    def test_one_file_without_pickle(self, fitted, tmp_path):
        path = tmp_path / "model.npz"
        fitted.save(path)
        with np.load(path, allow_pickle=False) as archive:
            assert all(archive[name].dtype != object for name in archive.files)
        assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]

    def test_rank_fusion_baseline(self, data):
        model = small_pipeline(ranker=None).fit(data)
        user = data.user_map.ids[0]
        ids, scores = model.recommend(user, k=5)
        c = model.candidates([user])
        order = np.lexsort((c.items, -c.rrf))[:5]
        np.testing.assert_array_equal(ids, model.item_map_.ids[c.items[order]])
        np.testing.assert_allclose(scores, c.rrf[order])


class TestFeatures:
    def test_names_groups_and_shape(self):
        data = synthetic_log()
        genres = pd.DataFrame(
            np.eye(56, 3, dtype=int), index=np.arange(56), columns=["a", "b", "c"]
        )
        model = small_pipeline(similarity_source="itemcf", windows=(7, 30)).fit(
            data, item_features=genres
        )
        names = model.feature_names_out_
        assert len(names) == len(set(names)) == len(model.feature_groups_)
        assert set(model.feature_groups_) == {"user", "item", "context", "user_item", "stats"}
        for name in (
            "popularity_rank",
            "itemcf_score",
            "rrf",
            "n_sources",
            "user_events_7d",
            "item_events_30d",
            "item_genre_a",
            "genre_match",
            "itemcf_sim_max",
            "context_hour",
            "item_high_share",
        ):
            assert name in names
        td = model.training_data(data, item_features=genres)
        assert td.X.shape == (len(td.y), len(names))
        X = td.X
        assert np.isnan(X[:, names.index("embedding_cos_max")]).all()  # no embedding source
        assert np.isfinite(X[:, names.index("itemcf_sim_max")]).any()
        ranks = X[:, names.index("popularity_rank")]
        assert np.nanmin(ranks) == 1 and np.isnan(ranks).any() in (True, False)


# ---- bad input ------------------------------------------------------------------------------------
class TestBadInput:
    def test_fit_input(self):
        data = contract_interactions()
        with pytest.raises(TypeError, match="interactions"):
            small_pipeline().fit(data.matrix)
        no_time = Interactions(data.matrix)
        with pytest.raises(ValueError, match="timestamps"):
            small_pipeline().fit(no_time)

    @pytest.mark.parametrize(
        "params, error, match",
        [
            (dict(quotas={"popularity": 3}), ValueError, "quotas"),
            (dict(quotas={"popularity": 3, "itemcf": 3, "nope": 1}), KeyError, "nope"),
            (dict(quotas=-1), ValueError, "quotas"),
            (dict(quotas=0), ValueError, "quotas"),
            (dict(quotas=2.5), TypeError, "quotas"),
            (dict(cut="yesterday"), ValueError, "cut"),
            (dict(label_fraction=1.5), ValueError, "fraction"),
            (dict(cut="window"), ValueError, "window"),
            (dict(windows=(7, -1)), ValueError, "windows"),
            (dict(negatives_per_user=0), ValueError, "negatives_per_user"),
            (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
            (dict(validation_k=0), ValueError, "validation_k"),
            (dict(min_gain=-0.1), ValueError, "min_gain"),
            (dict(ranker=[]), ValueError, "ranker"),
            (dict(ranker=["default", object()]), TypeError, "ranker"),
            (dict(ranker="xgboost"), ValueError, "ranker"),
            (dict(ranker=object()), TypeError, "ranker"),
            (dict(n_last=0), ValueError, "n_last"),
            (dict(block_size=0), ValueError, "block_size"),
        ],
    )
    def test_bad_params(self, params, error, match):
        with pytest.raises(error, match=match):
            small_pipeline(**params).fit(contract_interactions())

    def test_bad_sources(self):
        data = contract_interactions()
        with pytest.raises(TypeError, match="sources"):
            TwoStage(sources=[Popularity()]).fit(data)
        with pytest.raises(TypeError, match="sources"):
            TwoStage(sources={"x": "popularity"}).fit(data)
        with pytest.raises(TypeError, match="sources"):
            TwoStage(sources={}).fit(data)

    def test_bad_item_features(self):
        with pytest.raises(TypeError, match="item_features"):
            small_pipeline().fit(contract_interactions(), item_features=[1, 2, 3])

    def test_group_ranker_receives_groups(self):
        seen = {}

        class GroupRanker(GBDTClassifier):
            def fit(self, X, y, group=None):
                seen["group"] = group
                return super().fit(X, y)

        data = synthetic_log()
        model = small_pipeline(ranker=GroupRanker(n_estimators=5, n_threads=1)).fit(data)
        assert seen["group"].sum() == model.training_summary_["rows"]
        assert (seen["group"] > 0).all() and len(seen["group"]) == model.training_summary_["users"]


def test_ranker_with_predict_only():
    """A ranker without predict_proba (a learning-to-rank model, here a regressor) scores with predict."""
    from recforge.rank import GBDTRegressor

    data = synthetic_log()
    ranker = GBDTRegressor(n_estimators=5, max_depth=3, n_threads=1)
    model = small_pipeline(ranker=ranker).fit(data)
    users = data.user_map.ids[:5]
    ids, scores = model.recommend(users, k=4)
    c = model.candidates(users[:1])
    X = model.training_data(data).X[:3]
    assert ids.shape == (5, 4) and np.all(np.diff(scores, axis=1) <= 0)
    assert np.isin(ids[0], model.item_map_.ids[c.items]).all()
    assert model.ranker_.predict(X).shape == (3,)


def test_usercf_source_and_string_ids_end_to_end():
    data = contract_interactions(string_ids=True)
    model = TwoStage(
        {"usercf": UserCF(n_threads=1), "popularity": Popularity()},
        quotas=5,
        n_threads=1,
        ranker=GBDTClassifier(n_estimators=5, n_threads=1),
        random_state=0,
    ).fit(data)
    ids, scores = model.recommend(data.user_map.ids[:4], k=3)
    assert ids.dtype == object and np.all(np.diff(scores, axis=1) <= 0)


def test_kernels_equal_at_any_n_threads():
    """The pipeline kernels pull chunks of rows dynamically: every row writes only its own slots, so the
    candidates, the features and the top-k are bit-identical for 1, 2 and 3 threads (more rows than
    one chunk, so the pool really splits them)."""
    data = synthetic_log(n_users=400, n_items=40)
    outs = []
    for n_threads in (1, 2, 3):
        model = small_pipeline(n_threads=n_threads).fit(data)
        cands = model.candidates(data.user_map.ids)
        td = model.training_data(data)
        outs.append((cands, td, model.recommend(data.user_map.ids, k=5)))
    base_c, base_td, base_rec = outs[0]
    for cands, td, rec in outs[1:]:
        np.testing.assert_array_equal(cands.offsets, base_c.offsets)
        np.testing.assert_array_equal(cands.items, base_c.items)
        np.testing.assert_array_equal(cands.rrf, base_c.rrf)
        np.testing.assert_array_equal(td.X, base_td.X)  # NaN == NaN for assert_array_equal
        np.testing.assert_array_equal(td.y, base_td.y)
        np.testing.assert_array_equal(rec[0], base_rec[0])
        np.testing.assert_array_equal(rec[1], base_rec[1])


def test_deterministic_fits_the_sgd_sources_on_one_thread():
    """deterministic=True (the default): LFM and Item2Vec (Hogwild at several threads) are fitted on
    one thread, so two fits of a seed give the same embeddings and lists; they serve on their own
    n_threads again. The template sources are left as given."""
    from recforge.recall import LFM, Item2Vec

    data = synthetic_log(n_users=200, n_items=40)
    sources = {
        "lfm": LFM(n_factors=8, epochs=5, n_threads=2, random_state=0),
        "item2vec": Item2Vec(vector_size=8, epochs=3, n_threads=2, random_state=0),
    }
    fits = []
    for _ in range(2):
        model = small_pipeline(n_threads=2)
        model.set_params(sources=sources)
        fits.append(model.fit(data))
    for name in sources:
        assert fits[0].sources_[name].n_threads == 2
        assert sources[name].n_threads == 2
    np.testing.assert_array_equal(
        fits[0].sources_["item2vec"].item_vectors_, fits[1].sources_["item2vec"].item_vectors_
    )
    np.testing.assert_array_equal(
        fits[0].sources_["lfm"].item_factors_, fits[1].sources_["lfm"].item_factors_
    )
    a, b = (m.recommend(data.user_map.ids, k=5) for m in fits)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(TypeError, match="deterministic"):
        small_pipeline(deterministic="yes").fit(data)


def test_pipeline_beats_its_best_source_on_synthetic_data():
    """Another data set than MovieLens: users drifting through item blocks (sequential signal), the
    demo's split. Measured (seeds 0, 1): pipeline NDCG@10 0.707 / 0.738 against ItemCF 0.470 / 0.468
    and Popularity 0.179 / 0.170; the ranker learns from the similarity to the last items."""
    from recforge.data import temporal_split
    from recforge.evaluate import evaluate_recall

    data = synthetic_log(n_users=400, n_items=40, seed=0)
    train, test = temporal_split(data, 0.2, 5)
    ranker = GBDTClassifier(
        n_estimators=60, max_depth=3, learning_rate=0.1, n_threads=1, random_state=0
    )
    model = small_pipeline(ranker=ranker).fit(train)
    final = evaluate_recall(model, train, test, k=10).ndcg
    best = max(evaluate_recall(s, train, test, k=10).ndcg for s in model.sources_.values())
    assert final >= 1.3 * best


# ---- choosing what ranks, on validation users inside the training data ---------------------------
class NoiseRanker:
    """A ranker that learns nothing: its probabilities are random."""

    def __init__(self, random_state=0):
        self.random_state = random_state

    def get_params(self, deep=True):
        return {"random_state": self.random_state}

    def fit(self, X, y):
        self.rng_ = np.random.default_rng(self.random_state)
        return self

    def predict_proba(self, X):
        p = self.rng_.random(len(X))
        return np.column_stack([1 - p, p])


class TestSelection:
    def test_a_ranker_worse_on_validation_falls_back_to_the_best_source(self):
        """The noise ranker loses on the held-out training users: the pipeline answers like the
        source that is best on the training users (ItemCF on the drifting log), item for item."""
        data = synthetic_log(n_users=200, seed=1)
        model = small_pipeline(ranker=NoiseRanker()).fit(data)
        sel = model.selection_
        simple = sel["simple_ndcg"]
        assert set(simple) == {"rrf", *model.sources_}
        assert sel["kind"] == "source" and sel["selected"] == max(simple, key=simple.get)
        assert sel["ndcg"][sel["selected"]] > sel["ndcg"]["ranker"]
        assert sel["validation_users"] == round(0.2 * model.training_summary_["users"])
        # fusion and the sources are scored on every training user with a positive candidate
        train = model.training_data(data)
        assert sel["simple_users"] == len(np.unique(train.rows[train.y == 1]))
        assert sel["simple_users"] > 0.9 * model.training_summary_["users"]
        users = data.user_map.ids
        ours, _ = model.recommend(users, k=5)
        theirs, _ = model.sources_[sel["selected"]].recommend(users, k=5)
        listed = theirs != -1
        assert listed.mean() > 0.9
        np.testing.assert_array_equal(ours[listed], theirs[listed])

    def test_the_simple_orders_are_chosen_on_every_user_before_the_sampling(self):
        """With 2 negatives per user only the held-out users keep all their candidates; fusion
        and the sources are still scored on every training user's full list (the NDCG each had
        before the sampling), so the choice among them rests on ~5x more users."""
        from recforge.pipeline.selection import simple_order_names, user_ndcg

        data = synthetic_log(n_users=200, seed=1)
        model = small_pipeline(ranker=NoiseRanker(), negatives_per_user=2).fit(data)
        sel = model.selection_
        assert sel["simple_users"] > 3 * sel["validation_users"]
        full = small_pipeline(negatives_per_user=None).training_data(data)
        sampled = model.training_data(data)
        assert len(sampled.y) < len(full.y)
        names = simple_order_names(full.feature_names)
        first = np.unique(sampled.rows, return_index=True)[1]
        for j, name in enumerate(names):
            scores = (
                full.X[:, full.feature_names.index("rrf")]
                if name == "rrf"
                else SourceOrder(name, full.feature_names).predict(full.X)
            )
            _, want = user_ndcg(full.rows, full.items, full.y, scores, 10)
            got = sampled.simple_ndcg[first, j]
            np.testing.assert_allclose(got[np.isfinite(got)], want, rtol=1e-6)
            assert sel["simple_ndcg"][name] == pytest.approx(want.mean(), rel=1e-6)
        assert sel["selected"] == max(sel["simple_ndcg"], key=sel["simple_ndcg"].get)

    def test_the_fallback_survives_save_and_load(self, tmp_path):
        """A GBDT that cannot split (constant scores) loses too; the file remembers the choice and
        the ranker setting."""
        data = synthetic_log(n_users=200, seed=1)
        stump = GBDTClassifier(n_estimators=2, min_child_weight=1e9, n_threads=1, random_state=0)
        model = small_pipeline(ranker=stump).fit(data)
        assert model.selection_["kind"] == "source"
        model.save(tmp_path / "m.npz")
        loaded = TwoStage.load(tmp_path / "m.npz")
        assert loaded.selection_ == model.selection_
        users = data.user_map.ids[:20]
        np.testing.assert_array_equal(
            model.recommend(users, k=5)[0], loaded.recommend(users, k=5)[0]
        )

    def test_the_better_of_several_rankers_is_refitted_on_all_users(self):
        data = synthetic_log(n_users=200, seed=1)
        good = GBDTClassifier(n_estimators=30, max_depth=3, n_threads=1, random_state=0)
        model = small_pipeline(ranker=[NoiseRanker(), good]).fit(data)
        sel = model.selection_
        assert sel["selected"] == "ranker[1]" and sel["kind"] == "ranker"
        assert sel["ndcg"]["ranker[1]"] > max(sel["ndcg"][n] for n in model.sources_)
        assert isinstance(model.ranker_, GBDTClassifier)
        assert model.ranker_.n_features_in_ == len(model.feature_names_out_)

    def test_validation_users_keep_all_their_negatives(self):
        data = synthetic_log(n_users=200, seed=1)
        full = small_pipeline().training_data(data)
        sampled = small_pipeline(negatives_per_user=1).training_data(data)
        np.testing.assert_array_equal(
            full.validation[full.validation].size, sampled.validation.sum()
        )
        per_user = np.bincount(sampled.users[~sampled.validation & (sampled.y == 0)])
        assert per_user.max() == 1

    def test_the_simple_choices_are_scored_on_the_users_the_sampling_left_whole(self):
        data = synthetic_log(n_users=200, seed=1)
        good = GBDTClassifier(n_estimators=10, max_depth=3, n_threads=1, random_state=0)
        full = small_pipeline(negatives_per_user=None).training_data(data)
        train = small_pipeline(ranker=good, negatives_per_user=13).training_data(data)
        negatives = np.bincount(full.users[full.y == 0], minlength=data.n_users)
        whole = train.validation | (negatives[train.users] <= 13)
        np.testing.assert_array_equal(train.complete, whole)
        assert train.validation.any() and (train.complete & ~train.validation).any()
        model = small_pipeline(ranker=good, negatives_per_user=13).fit(data)
        # scored before the sampling: every user with a positive candidate, whole or not
        assert model.selection_["simple_users"] == len(np.unique(train.users[train.y == 1]))
        # a training set without those scores (built elsewhere): the users left whole
        without = dataclasses.replace(train, simple_ndcg=None)
        model = small_pipeline(ranker=good, negatives_per_user=13).fit(data, training_data=without)
        assert model.selection_["simple_users"] == len(np.unique(train.users[train.complete]))

    def test_the_final_ranker_learns_from_the_sampled_rows_only(self):
        """The held-out users keep all their negatives for the validation; the ranker refitted on
        every user learns from the sampled rows (``in_sample``), the same sampling for all."""
        sizes = []

        class Recording(GBDTClassifier):
            def fit(self, X, y, **kwargs):
                sizes.append(len(X))
                return super().fit(X, y, **kwargs)

        data = synthetic_log(n_users=200, seed=1)
        ranker = Recording(n_estimators=30, max_depth=3, n_threads=1, random_state=0)
        model = small_pipeline(ranker=ranker, negatives_per_user=3, min_gain=0.0)
        train = model.training_data(data)
        model.fit(data)
        assert model.selection_["kind"] == "ranker"
        per_user = np.bincount(train.users[train.in_sample & (train.y == 0)])
        assert per_user.max() == 3
        assert not train.in_sample[train.validation].all()  # held-out negatives beyond the sample
        assert sizes == [int((~train.validation).sum()), int(train.in_sample.sum())]

    def test_a_ranker_must_win_by_min_gain(self):
        data = synthetic_log(n_users=200, seed=1)
        good = GBDTClassifier(n_estimators=30, max_depth=3, n_threads=1, random_state=0)
        model = small_pipeline(ranker=good, min_gain=10.0).fit(data)
        sel = model.selection_
        simple = sel["simple_ndcg"]
        assert sel["ndcg"]["ranker"] > sel["ndcg"][sel["selected"]]  # it wins, but not by 1000 %
        assert sel["selected"] == max(simple, key=simple.get) and sel["kind"] != "ranker"

    def test_without_validation_the_ranker_always_ranks(self):
        data = synthetic_log(n_users=200, seed=1)
        model = small_pipeline(ranker=NoiseRanker(), validation_fraction=0.0).fit(data)
        assert model.selection_ is None and isinstance(model.ranker_, NoiseRanker)


def test_mean_ndcg_is_the_ndcg_of_each_users_ordering():
    from recforge.pipeline.selection import mean_ndcg

    rows = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([5, 6, 7, 1, 2, 3])
    labels = np.array([0, 1, 1, 1, 0, 0])  # user 2 has no positive: left out
    scores = np.array([3.0, 2.0, 1.0, 1.0, 1.0, 9.0])  # user 1: a tie, the lower item first
    user0 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert mean_ndcg(rows, items, labels, scores, k=10) == pytest.approx((user0 + 1.0) / 2)
    assert mean_ndcg(rows, items, labels, scores, k=1) == pytest.approx(0.5)


# ---- the serving hook ------------------------------------------------------------------------------
class TestServingSpec:
    def test_a_ranked_pipeline(self):
        data = synthetic_log(n_users=200, seed=1)
        good = GBDTClassifier(n_estimators=30, max_depth=3, n_threads=1, random_state=0)
        model = small_pipeline(ranker=good).fit(data)
        spec = model.serving_spec()
        assert spec.ranked_by == "ranker" and spec.ranker is model.ranker_
        assert spec.source is None and spec.rank_column is None
        assert list(spec.sources) == list(model.sources_)
        assert all(spec.sources[n] is model.sources_[n] for n in model.sources_)
        quotas, n_candidates, depth, windows = model._settings
        np.testing.assert_array_equal(spec.quotas, quotas)
        assert (spec.n_candidates, spec.depth) == (n_candidates, depth)
        np.testing.assert_array_equal(spec.windows, windows)
        assert spec.similarity is model._serving_inputs[0]
        np.testing.assert_array_equal(spec.embeddings, model._serving_inputs[1])
        assert spec.feature_names == tuple(model.feature_names_out_)
        assert spec.state is model.state_ and spec.rrf_k == model.rrf_k
        assert spec.now == model.state_.h_times.max()
        np.testing.assert_array_equal(spec.as_of, model.as_of_)
        np.testing.assert_array_equal(spec.item_ids, model.item_map_.ids)

    def test_read_only(self):
        model = small_pipeline(ranker=None).fit(synthetic_log(n_users=100, seed=1))
        spec = model.serving_spec()
        assert spec.ranked_by == "rrf" and spec.ranker is None
        with pytest.raises(ValueError, match="read-only"):
            spec.as_of[0] = 0.0
        with pytest.raises(TypeError):
            spec.sources["x"] = None
        with pytest.raises(AttributeError):
            spec.ranked_by = "ranker"
        assert model.as_of_.flags.writeable  # the model's own arrays are untouched

    def test_a_source_chosen_on_validation(self):
        data = synthetic_log(n_users=200, seed=1)
        model = small_pipeline(ranker=NoiseRanker()).fit(data)
        spec = model.serving_spec()
        assert spec.ranked_by == "source" and spec.ranker is None
        assert spec.source == model.selection_["selected"]
        names = list(spec.feature_names)
        assert names[spec.rank_column] == f"{spec.source}_rank"
        assert names[spec.rrf_column] == "rrf"

    def test_not_fitted(self):
        from recforge.exceptions import NotFittedError

        with pytest.raises(NotFittedError):
            small_pipeline().serving_spec()
