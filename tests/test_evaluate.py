"""recforge.evaluate.evaluate_recall: the ANCHORS.md protocol through the recommend contract."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

import recforge._reference.metrics as ref
from recforge.data import Interactions
from recforge.evaluate import RecallReport, evaluate_recall


# ---------------------------------------------------------------------------------------------
# helpers: splits built from (user, item) pairs, and a model over a dense score table
# ---------------------------------------------------------------------------------------------
def interactions(pairs, shape, user_ids=None, item_ids=None):
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    cols = np.array([p[1] for p in pairs], dtype=np.int64)
    matrix = sp.coo_matrix((np.ones(len(pairs), np.float32), (rows, cols)), shape=shape)
    return Interactions(matrix, user_map=user_ids, item_map=item_ids)


def split(train_pairs, test_pairs, shape, user_ids=None, item_ids=None):
    return (
        interactions(train_pairs, shape, user_ids, item_ids),
        interactions(test_pairs, shape, user_ids, item_ids),
    )


def rows_of(x):
    m = x.matrix
    return [set(m.indices[m.indptr[u] : m.indptr[u + 1]].tolist()) for u in range(m.shape[0])]


def dense_of(x, fill=-np.inf):
    out = np.full(x.shape, fill)
    for u, items in enumerate(rows_of(x)):
        out[u, list(items)] = 1.0
    return out


class ScoreModel:
    """Implements the recommend contract over a dense (n_users, n_items) score table.

    ``-inf`` scores are never recommended. ``honour_filter_seen`` / ``honour_items`` False make a
    misbehaving model (ignores the argument) to test the evaluator's leak guard.
    """

    def __init__(self, train, scores, *, honour_filter_seen=True, honour_items=True):
        self.user_map, self.item_map = train.user_map, train.item_map
        self.seen = rows_of(train)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.honour_filter_seen = honour_filter_seen
        self.honour_items = honour_items
        self.calls = []

    def recommend(self, user_ids, k=10, *, filter_seen=True, filter_items=None, items=None):
        self.calls.append(
            {
                "user_ids": np.array(user_ids),
                "k": k,
                "filter_seen": filter_seen,
                "items": None if items is None else np.array(items),
            }
        )
        uidx = np.atleast_1d(self.user_map.index(user_ids, name="user_id"))
        n_items = self.scores.shape[1]
        allowed = np.ones(n_items, dtype=bool)
        if items is not None and self.honour_items:
            allowed[:] = False
            allowed[self.item_map.index(items, name="item_id")] = True
        integer = self.item_map.ids.dtype.kind in "iu"
        out = np.full(
            (len(uidx), k), -1 if integer else None, dtype=np.int64 if integer else object
        )
        out_scores = np.full((len(uidx), k), -np.inf, dtype=np.float32)
        for r, u in enumerate(uidx):
            ok = allowed & np.isfinite(self.scores[u])
            if filter_seen and self.honour_filter_seen:
                ok[list(self.seen[u])] = False
            cand = np.flatnonzero(ok)
            order = cand[np.lexsort((cand, -self.scores[u, cand]))][:k]
            out[r, : len(order)] = self.item_map.ids[order]
            out_scores[r, : len(order)] = self.scores[u, order]
        return out, out_scores


def brute_force(model, train, test, k, users=None):
    """The protocol written out user by user, with the reference metrics."""
    train_rows, test_rows = rows_of(train), rows_of(test)
    universe = sorted(set().union(*train_rows))
    universe_ext = train.item_map.ids[universe]
    candidates = range(train.shape[0]) if users is None else train.user_map.index(users)
    recs, rels, skipped = [], [], 0
    for u in candidates:
        if not test_rows[u]:
            continue
        if not train_rows[u]:
            skipped += 1
            continue
        ids, scores = model.recommend(
            [train.user_map.ids[u]], k=k, filter_seen=True, items=universe_ext
        )
        row = []
        for item, score in zip(ids[0], scores[0]):
            if score == -np.inf:
                row.append(-1)
                continue
            i = train.item_map.index(item)
            row.append(-1 if (i in train_rows[u] or i not in universe) else i)
        recs.append(row)
        rels.append(test_rows[u])
    return {
        "precision": ref.precision_at_k(recs, rels, k),
        "recall": ref.recall_at_k(recs, rels, k),
        "ndcg": ref.ndcg_at_k(recs, rels, k),
        "hit_rate": ref.hit_rate_at_k(recs, rels, k),
        "coverage": ref.coverage_at_k(
            [[universe.index(i) if i >= 0 else -1 for i in row] for row in recs], len(universe), k
        ),
        "n_users_evaluated": len(recs),
        "n_users_skipped": skipped,
        "n_items_universe": len(universe),
    }


def assert_report(report, expected):
    assert isinstance(report, RecallReport)
    for name, value in expected.items():
        assert getattr(report, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name


def random_split(seed, n_users=40, n_items=30, string_ids=False):
    rng = np.random.default_rng(seed)
    train_pairs, test_pairs = [], []
    for u in range(n_users):
        items = rng.permutation(n_items)[: rng.integers(0, 12)]
        cut = rng.integers(0, len(items) + 1)
        train_pairs += [(u, i) for i in items[:cut]]
        test_pairs += [(u, i) for i in items[cut:]]
    user_ids = np.arange(n_users) * 3 + 7
    item_ids = np.arange(n_items) * 5 + 1000
    if string_ids:
        user_ids = np.array([f"u{x}" for x in user_ids])
        item_ids = np.array([f"i{x}" for x in item_ids])
    return split(train_pairs, test_pairs, (n_users, n_items), user_ids, item_ids)


# ---------------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_oracle_model(k):
    # 5 users x 10 items; every test item has a train interaction from some user (in the universe)
    train_pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 0)] + [(4, i) for i in range(4, 10)]
    test_pairs = [
        (0, 1),
        (0, 2),
        (0, 5),
        (0, 6),
        (1, 7),
        (2, 4),
        (2, 5),
        (2, 6),
        (2, 7),
        (2, 8),
        (2, 9),
        (3, 0),
    ]
    train, test = split(train_pairs, test_pairs, (5, 10))
    model = ScoreModel(train, dense_of(test))
    report = evaluate_recall(model, train, test, k=k)
    sizes = [4, 1, 6, 1]  # test users 0..3; user 4 has no test item
    assert report.precision == pytest.approx(np.mean([min(k, t) / k for t in sizes]))
    assert report.recall == pytest.approx(np.mean([min(k, t) / t for t in sizes]))
    assert report.ndcg == pytest.approx(1.0)
    assert report.hit_rate == 1.0
    assert report.k == k and report.n_users_evaluated == 4 and report.n_users_skipped == 0
    assert report.n_items_universe == 10
    assert_report(report, brute_force(model, train, test, k))


def test_test_items_outside_universe_count_in_denominators():
    # item 3 has no train interaction: outside the universe, yet it counts in |test|
    train, test = split([(0, 0), (1, 1), (1, 2)], [(0, 1), (0, 3), (1, 0)], (2, 4))
    oracle = ScoreModel(train, dense_of(test))
    report = evaluate_recall(oracle, train, test, k=2)
    assert report.n_items_universe == 3
    assert report.recall == pytest.approx((1 / 2 + 1) / 2)
    assert report.precision == pytest.approx((1 / 2 + 1 / 2) / 2)
    universe_passed = oracle.calls[0]["items"]
    np.testing.assert_array_equal(universe_passed, [0, 1, 2])
    # a model that ignores `items=` and recommends item 3 gets no credit for it
    cheat = ScoreModel(train, dense_of(test), honour_items=False)
    cheated = evaluate_recall(cheat, train, test, k=2)
    assert cheated == report


def test_train_items_are_never_counted():
    # train and test overlap for user 0 (item 1 in both): a model that ignores filter_seen and
    # puts the user's train items first must not be credited for them
    train, test = split([(0, 0), (0, 1), (1, 2)], [(0, 1), (0, 2), (1, 0)], (2, 3))
    scores = np.array([[3.0, 2.0, 1.0], [2.0, 1.0, 3.0]])
    leaky = ScoreModel(train, scores, honour_filter_seen=False)
    report = evaluate_recall(leaky, train, test, k=3)
    # user 0 gets [0, 1, 2] -> [-1, -1, 2]: one hit at rank 3; user 1 gets [2, 0, 1] -> [-1, 0, 1]
    assert report.precision == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert report.recall == pytest.approx((1 / 2 + 1) / 2)
    ndcg0 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1
    assert report.ndcg == pytest.approx((ndcg0 + ndcg1) / 2)
    assert report.coverage == 1.0  # user 0 covers item 2, user 1 items 0 and 1
    assert_report(report, brute_force(leaky, train, test, 3))
    assert all(call["filter_seen"] is True for call in leaky.calls)


def test_model_recommending_only_train_items_scores_zero():
    train, test = split([(0, 0), (0, 1), (1, 2), (1, 0)], [(0, 2), (1, 1)], (2, 3))
    seen_only = ScoreModel(train, dense_of(train), honour_filter_seen=False)
    report = evaluate_recall(seen_only, train, test, k=2)
    assert (report.precision, report.recall, report.ndcg, report.hit_rate, report.coverage) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert report.n_users_evaluated == 2


def test_cold_test_users_are_skipped_and_counted():
    # user 2 has test items but no train interaction; user 3 has neither
    train, test = split([(0, 0), (1, 1)], [(0, 1), (1, 0), (2, 0), (2, 1)], (4, 2))
    model = ScoreModel(train, dense_of(test))
    report = evaluate_recall(model, train, test, k=1)
    assert report.n_users_evaluated == 2 and report.n_users_skipped == 1
    assert report.precision == 1.0
    asked = np.concatenate([c["user_ids"] for c in model.calls])
    np.testing.assert_array_equal(np.sort(asked), [0, 1])


def test_universe_and_arguments_passed_to_the_model():
    train, test = random_split(3)
    model = ScoreModel(train, np.random.default_rng(0).random(train.shape))
    report = evaluate_recall(model, train, test, k=4, batch_size=7)
    universe = np.flatnonzero(np.bincount(train.matrix.indices, minlength=train.n_items))
    assert report.n_items_universe == universe.size
    for call in model.calls:
        assert call["k"] == 4 and call["filter_seen"] is True
        np.testing.assert_array_equal(call["items"], train.item_map.ids[universe])
        assert len(call["user_ids"]) <= 7
    assert_report(report, brute_force(model, train, test, 4))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("string_ids", [False, True])
def test_random_split_matches_brute_force(seed, string_ids):
    train, test = random_split(seed, string_ids=string_ids)
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(train.shape), 1)  # ties, broken by item index
    scores[rng.random(train.shape) < 0.3] = -np.inf  # fewer candidates than k: padding
    for honour in (True, False):
        model = ScoreModel(train, scores, honour_filter_seen=honour, honour_items=honour)
        for k in (1, 5, 10):
            report = evaluate_recall(model, train, test, k=k, batch_size=6)
            assert_report(report, brute_force(model, train, test, k))
            for name in ("precision", "recall", "ndcg", "hit_rate", "coverage"):
                assert 0.0 <= getattr(report, name) <= 1.0


def test_batch_size_does_not_change_the_result():
    train, test = random_split(5, n_users=60)
    model = ScoreModel(train, np.random.default_rng(1).random(train.shape))
    reports = []
    n_eval = None
    for batch_size in (1, 2, 7, 1024):
        model.calls.clear()
        reports.append(evaluate_recall(model, train, test, k=5, batch_size=batch_size))
        n_eval = reports[-1].n_users_evaluated
        assert len(model.calls) == math.ceil(n_eval / batch_size)
    assert all(r == reports[0] for r in reports)


def test_users_subset():
    train, test = random_split(6)
    model = ScoreModel(train, np.random.default_rng(2).random(train.shape))
    users = train.user_map.ids[::3]
    report = evaluate_recall(model, train, test, k=3, users=users)
    assert_report(report, brute_force(model, train, test, 3, users=users))
    full = evaluate_recall(model, train, test, k=3)
    assert (
        report.n_users_evaluated + report.n_users_skipped
        < full.n_users_evaluated + full.n_users_skipped
    )
    assert evaluate_recall(model, train, test, k=3, users=train.user_map.ids) == full
    with pytest.raises(KeyError, match="unknown user 12345"):
        evaluate_recall(model, train, test, k=3, users=[train.user_map.ids[0], 12345])
    with pytest.raises(ValueError, match="users has duplicated user id"):
        evaluate_recall(model, train, test, k=3, users=[users[1], users[1]])


def test_report_as_dict_and_immutability():
    train, test = random_split(7)
    report = evaluate_recall(ScoreModel(train, dense_of(test)), train, test, k=2)
    d = report.as_dict()
    assert list(d) == [
        "precision",
        "recall",
        "ndcg",
        "hit_rate",
        "coverage",
        "k",
        "n_users_evaluated",
        "n_users_skipped",
        "n_items_universe",
    ]
    assert all(type(d[n]) is float for n in ("precision", "recall", "ndcg", "hit_rate", "coverage"))
    assert all(
        type(d[n]) is int for n in ("k", "n_users_evaluated", "n_users_skipped", "n_items_universe")
    )
    with pytest.raises(AttributeError):
        report.precision = 1.0


def test_show_progress(capsys):
    train, test = random_split(8)
    model = ScoreModel(train, dense_of(test))
    quiet = evaluate_recall(model, train, test, k=2, batch_size=5)
    assert "evaluate_recall" not in capsys.readouterr().err
    loud = evaluate_recall(model, train, test, k=2, batch_size=5, show_progress=True)
    assert "evaluate_recall" in capsys.readouterr().err
    assert quiet == loud


def test_inputs_not_modified():
    train, test = random_split(9)
    before = [x.matrix.copy() for x in (train, test)]
    evaluate_recall(ScoreModel(train, dense_of(test)), train, test, k=3)
    for x, b in zip((train, test), before):
        assert (x.matrix != b).nnz == 0


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_mismatched_id_maps_raise():
    train, test = split([(0, 0)], [(0, 1)], (2, 2), user_ids=[10, 20], item_ids=[1, 2])
    model = ScoreModel(train, dense_of(test))
    _, other_items = split([(0, 0)], [(0, 1)], (2, 2), user_ids=[10, 20], item_ids=[2, 1])
    with pytest.raises(ValueError, match="different item id maps"):
        evaluate_recall(model, train, other_items)
    _, other_users = split([(0, 0)], [(0, 1)], (2, 2), user_ids=[20, 10], item_ids=[1, 2])
    with pytest.raises(ValueError, match="different user id maps"):
        evaluate_recall(model, train, other_users)
    _, bigger = split([(0, 0)], [(0, 1)], (3, 2))
    with pytest.raises(ValueError, match="different user id maps"):
        evaluate_recall(model, interactions([(0, 0)], (2, 2)), bigger)


def test_argument_errors():
    train, test = random_split(10)
    model = ScoreModel(train, dense_of(test))
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate_recall(model, train, test, k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        evaluate_recall(model, train, test, k=2.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate_recall(model, train, test, batch_size=0)
    with pytest.raises(TypeError, match="model must have a recommend"):
        evaluate_recall(object(), train, test)
    with pytest.raises(TypeError, match=r"train must be a recforge.data.Interactions"):
        evaluate_recall(model, train.matrix, test)
    with pytest.raises(TypeError, match=r"test must be a recforge.data.Interactions"):
        evaluate_recall(model, train, "test")


def test_nothing_to_evaluate():
    train, test = split([(0, 0)], [(1, 0)], (2, 2))
    with pytest.raises(ValueError, match=r"no user with both .* \(1 cold test user\(s\) skipped\)"):
        evaluate_recall(ScoreModel(train, dense_of(test)), train, test)
    empty_train, test = split([], [(1, 0)], (2, 2))
    with pytest.raises(ValueError, match="item universe is empty"):
        evaluate_recall(ScoreModel(empty_train, dense_of(test)), empty_train, test)


class BadModel:
    def __init__(self, train, result):
        self.train, self.result = train, result

    def recommend(self, user_ids, k=10, *, filter_seen=True, filter_items=None, items=None):
        return self.result(np.asarray(user_ids), k)


def test_contract_violations_raise():
    train, test = split([(0, 0), (1, 1), (0, 2)], [(0, 1), (1, 0)], (2, 3))

    def run(result):
        return evaluate_recall(BadModel(train, result), train, test, k=2)

    with pytest.raises(ValueError, match=r"expected \(2, 2\) \(exactly k columns"):
        run(lambda u, k: (np.zeros((len(u), k + 1), np.int64), np.zeros((len(u), k + 1))))
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        run(lambda u, k: (np.zeros(k, np.int64), np.zeros(k)))
    with pytest.raises(ValueError, match=r"model.recommend item ids .* duplicated item 1"):
        run(lambda u, k: (np.ones((len(u), k), np.int64), np.zeros((len(u), k))))
    with pytest.raises(KeyError, match="unknown item 99"):
        run(lambda u, k: (np.full((len(u), k), 99), np.zeros((len(u), k))))
    with pytest.raises(TypeError, match="must return a tuple"):
        run(lambda u, k: np.zeros((len(u), k), np.int64))
    with pytest.raises(TypeError, match="scores of dtype"):
        run(lambda u, k: (np.zeros((len(u), k), np.int64), np.full((len(u), k), "x")))
    # padding by -1 ids or -inf scores is accepted
    report = run(
        lambda u, k: (np.array([[1, -1]] * len(u)), np.array([[1.0, -np.inf]] * len(u), np.float32))
    )
    assert report.precision == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# with recforge's own models and data
# ---------------------------------------------------------------------------------------------
def test_popularity_model_matches_brute_force():
    from recforge.recall import Popularity

    train, test = random_split(11, n_users=50, n_items=25)
    model = Popularity().fit(train)
    report = evaluate_recall(model, train, test, k=5, batch_size=8)
    assert_report(report, brute_force(model, train, test, 5))
    assert report.n_users_evaluated > 20


@pytest.mark.data
def test_movielens_small_popularity_anchor():
    """ANCHORS.md: the split sizes are exact; popularity numbers as measured on the peers."""
    from recforge.data import temporal_split
    from recforge.recall import Popularity

    datasets = pytest.importorskip("recforge.datasets", exc_type=ImportError)
    if not hasattr(datasets, "movielens_small"):
        pytest.skip("recforge.datasets.movielens_small not available")
    try:
        positives = datasets.movielens_small().interactions(min_rating=4.0)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"MovieLens data not available: {exc}")
    train, test = temporal_split(positives, test_fraction=0.2, min_interactions=5)
    report = evaluate_recall(Popularity().fit(train), train, test, k=10)
    # count popularity, ties by item index: P 0.0507, R 0.0508, NDCG 0.0669 (peer tie order differs)
    assert report.n_users_evaluated == 603 and report.n_users_skipped == 0
    assert report.n_items_universe == 5289
    assert report.ndcg == pytest.approx(0.0673, abs=1e-3)
    assert report.precision == pytest.approx(0.0511, abs=1e-3)
    assert report.recall == pytest.approx(0.0514, abs=1e-3)
    assert report.coverage == pytest.approx(0.010, abs=1e-3)
