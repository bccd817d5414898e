"""The pipeline's sequence features: transition counts of the history, read after the user's last
items; leak-free, equal to a brute-force count, served alike by the compiled feature rows."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from recforge.data import Interactions
from recforge.exceptions import ModelFileError
from recforge.pipeline import TwoStage, cut_history
from recforge.pipeline.features import SEQUENCE_WINDOW, AsOfState, transition_counts

from .test_pipeline import frame, small_pipeline, synthetic_log, with_entries

SEQ = ["seq_next_last", "seq_next_last_share", "seq_next_decayed_share", "seq_prev_last"]


def brute_transitions(indptr, items, window):
    counts = Counter()
    for u in range(len(indptr) - 1):
        seq = items[indptr[u] : indptr[u + 1]]
        for a in range(len(seq)):
            for b in range(a + 1, min(a + window, len(seq) - 1) + 1):
                counts[int(seq[a]), int(seq[b])] += 1
    return counts


@pytest.mark.parametrize("window", [1, 2, 5])
def test_transition_counts_are_the_pairs_within_the_window(window):
    rng = np.random.default_rng(window)
    lengths = rng.integers(0, 9, 30)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(0, 12, indptr[-1])
    t_indptr, t_indices, t_data, total = transition_counts(indptr, items, 12, window)
    want = brute_transitions(indptr, items, window)
    got = {}
    for a in range(12):
        cols = t_indices[t_indptr[a] : t_indptr[a + 1]]
        assert (np.diff(cols) > 0).all()  # sorted, no duplicates
        for b, v in zip(cols, t_data[t_indptr[a] : t_indptr[a + 1]]):
            got[a, int(b)] = v
        assert total[a] == sum(v for (x, _), v in want.items() if x == a)
    assert got == dict(want)
    assert t_indices.dtype == np.int32 and t_data.dtype == np.float64


def test_no_window_no_transitions():
    t_indptr, t_indices, t_data, total = transition_counts(np.array([0, 3]), np.arange(3), 3, 0)
    assert len(t_indptr) == 1 and len(t_indices) == len(t_data) == 0 and (total == 0).all()


def test_sequence_features_are_the_counts_of_the_history_before_the_cut():
    data = synthetic_log()
    model = small_pipeline(cut="last", label_fraction=0.3, n_last=4)
    td = model.training_data(data)
    cut = cut_history(data, cut="last", fraction=0.3)
    state = AsOfState(cut.history)
    counts = brute_transitions(state.h_indptr, state.h_items, SEQUENCE_WINDOW)
    total = Counter()
    for (a, _), v in counts.items():
        total[a] += v
    cols = [td.feature_names.index(name) for name in SEQ]
    checked = 0
    for r in range(0, len(td.y), 7):
        u, item = td.users[r], td.items[r]
        a, b = state.h_indptr[u], state.h_indptr[u + 1]
        hist = state.h_items[a:b][state.h_times[a:b] <= cut.as_of[u]]
        last = hist[-1]
        share = [counts[h, item] / max(total[h], 1.0) for h in hist[-4:]]
        decayed = sum(0.8 ** (len(share) - 1 - j) * s for j, s in enumerate(share))
        want = [counts[last, item], counts[last, item] / max(total[last], 1.0), decayed]
        want.append(counts[item, last])
        np.testing.assert_allclose(td.X[r, cols], np.float32(want), rtol=1e-6)
        checked += counts[last, item] > 0
    assert checked > 0  # the synthetic users drift through item blocks: transitions are found


def test_sequence_features_ignore_each_users_future():
    data = synthetic_log()
    model = small_pipeline(cut="last", label_fraction=0.3)
    base = frame(model.training_data(data))
    c = cut_history(data, cut="last", fraction=0.3)
    df, hist = data.to_dataframe(), c.history.to_dataframe()
    key = set(zip(hist["user_id"], hist["item_id"]))
    future = np.array([(u, i) not in key for u, i in zip(df["user_id"], df["item_id"])])
    changed = frame(model.training_data(with_entries(data, replace=future)))
    cols = [model.training_data(data).feature_names.index(name) for name in SEQ]
    np.testing.assert_array_equal(base[2][:, cols], changed[2][:, cols])
    assert (base[2][:, cols[0]] > 0).any()  # the columns compared are not empty
    assert not np.array_equal(base[3], changed[3])


def test_sequence_window_zero_leaves_the_columns_missing():
    data = synthetic_log()
    with_seq = small_pipeline().training_data(data)
    without = small_pipeline(sequence_window=0).training_data(data)
    assert with_seq.feature_names == without.feature_names
    cols = [with_seq.feature_names.index(name) for name in SEQ]
    assert np.isnan(without.X[:, cols]).all()
    others = np.setdiff1d(np.arange(len(with_seq.feature_names)), cols)
    np.testing.assert_array_equal(with_seq.X[:, others], without.X[:, others])


@pytest.mark.parametrize("window", [0, 3])
def test_served_feature_rows_hold_the_sequence_columns(window):
    from recforge.serving import Recommender

    model = small_pipeline(sequence_window=window).fit(synthetic_log(seed=4))
    plan = Recommender(model, warm=False)._plan
    cols = [model.feature_names_out_.index(name) for name in SEQ]
    for u in range(0, len(model.user_map_.ids), 5):
        cands, X = model.features([model.user_map_.ids[u]])
        got = plan._features(cands, u, None)
        np.testing.assert_array_equal(got, X)
        assert np.isnan(got[:, cols]).all() == (window == 0)
    history = np.array([0, 1, 2], np.int64)
    ids = model.item_map_.ids[history]
    a = plan.history(history, list(ids), 5, [], {})
    b = model.recommend_from_history(ids, k=5)
    np.testing.assert_array_equal(model.item_map_.ids[a[0]], b[0][: len(a[0])])


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), ("5", TypeError)])
def test_bad_sequence_window(value, error):
    with pytest.raises(error, match="sequence_window"):
        small_pipeline(sequence_window=value).fit(synthetic_log())


def test_load_refuses_other_feature_columns(tmp_path):
    model = small_pipeline().fit(synthetic_log())
    model.feature_names_out_ = [*model.feature_names_out_[:-1], "something_else"]
    model.save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match="feature columns"):
        TwoStage.load(tmp_path / "m.npz")


def test_the_cli_config_sets_the_sequence_window(tmp_path):
    from recforge._cli.pipeline import build_pipeline

    path = tmp_path / "pipeline.toml"
    path.write_text("[features]\nsequence_window = 2\n")
    assert build_pipeline(str(path))[0].sequence_window == 2


def test_decayed_shares_scattered_or_searched_are_the_same_sums():
    """A row with few candidates and long transition rows searches each (candidate, last item);
    a row with many candidates scatters the last items' rows: both are the per-candidate sum."""
    from recforge.pipeline.candidates import Candidates
    from recforge.pipeline.features import build_features, feature_names

    rng = np.random.default_rng(0)  # random orders: each item is followed by most others
    df = pd.DataFrame(
        {
            "user": np.repeat(np.arange(40), 25),
            "item": np.concatenate([rng.permutation(50)[:25] for _ in range(40)]),
            "ts": np.tile(np.arange(25) * 3600.0, 40),
        }
    )
    data = Interactions.from_dataframe(df, user_col="user", item_col="item", timestamp_col="ts")
    state = AsOfState(data, sequence_window=20)
    t_indptr = state.transitions[0]

    def scanned(u):  # the transition entries of user u's last 10 items, per item
        last = state.h_items[state.h_indptr[u] : state.h_indptr[u + 1]][-10:]
        return sum(t_indptr[h + 1] - t_indptr[h] for h in last) / len(last)

    first = max(range(state.n_users), key=scanned)
    assert scanned(first) > 16  # with 1 candidate: more than the binary searches, row 0 searches
    users = np.array([first, (first + 1) % state.n_users], np.int64)
    as_of = np.array([state.h_times.max()] * 2)
    items = np.concatenate([[5], np.arange(state.n_items)])
    n = len(items)
    cands = Candidates(
        offsets=np.array([0, 1, n], np.int64),
        items=items.astype(np.int64),
        source_scores=np.zeros((n, 0), np.float32),
        source_ranks=np.zeros((n, 0), np.float32),
        n_sources=np.zeros(n, np.float32),
        rrf=np.zeros(n, np.float32),
    )
    X = build_features(state, users, as_of, cands, windows=[7.0, 30.0], n_last=10)
    col = feature_names([], [7.0, 30.0], [])[0].index("seq_next_decayed_share")
    counts = brute_transitions(state.h_indptr, state.h_items, 20)
    total = Counter()
    for (a, _), v in counts.items():
        total[a] += v
    for r, u in enumerate(users):
        last = state.h_items[state.h_indptr[u] : state.h_indptr[u + 1]][-10:]
        for c in range(cands.offsets[r], cands.offsets[r + 1]):
            acc = 0.0
            for j, h in enumerate(last):
                acc += 0.8 ** (len(last) - 1 - j) * (counts[h, items[c]] / max(total[h], 1.0))
            np.testing.assert_allclose(X[c, col], np.float32(acc), rtol=1e-6)
