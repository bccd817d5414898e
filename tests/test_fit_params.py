"""Fit-time arguments (callbacks, sequences, item features, LR's thread pool) belong to one ``fit``
call: they reach ``_fit`` as arguments, are never stored on the model, and two models of one class
fitted in two threads at once with different arguments give what serial fits give."""

import threading

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.rank import LogisticRegression
from recforge.recall import LFM, ContentBased, Item2Vec, ItemCF

FIT_TIME_NAMES = {"_fit_callback", "_fit_sequences", "_features", "_pool"}


def _clusters(n_clusters=3, per=6, users=36, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(users):
        for i in rng.choice(per, size=4, replace=False):
            rows.append(u)
            cols.append((u % n_clusters) * per + i)
    return sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(users, n_clusters * per)
    )


def _topics(n_items, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame((rng.random((n_items, 4)) < 0.5).astype(float), index=np.arange(n_items))


def _binary_problem(seed, n=400, d=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n) > 0).astype(int)
    return X, y


def _non_param_state(model) -> set:
    """Attributes beyond the hyper-parameters that do not end in ``_`` (are not fitted state)."""
    params = model.get_params()
    return {name for name in vars(model) if name not in params and not name.endswith("_")}


def _run_in_threads(*jobs):
    """Run the callables at once (a barrier releases them together); return their results."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def run(k):
        try:
            barrier.wait()
            results[k] = jobs[k]()
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# ---- nothing is set around the call --------------------------------------------------------------
def test_lfm_callback_sees_no_fit_time_attribute():
    seen = []
    model = LFM(n_factors=4, epochs=3, n_threads=1, random_state=0)
    model.fit(_clusters(), callback=lambda m, epoch, loss: seen.append(_non_param_state(m)))
    assert seen == [set()] * 3
    assert FIT_TIME_NAMES.isdisjoint(vars(model))


def test_item2vec_callback_sees_no_fit_time_attribute():
    m = _clusters()
    seen = []
    model = Item2Vec(vector_size=4, epochs=2, n_threads=1, random_state=0)
    model.fit(
        m,
        [[0, 1, 2], [6, 7]],
        callback=lambda mdl, epoch, words: seen.append(_non_param_state(mdl)),
    )
    assert seen == [set()] * 2
    assert FIT_TIME_NAMES.isdisjoint(vars(model))


@pytest.mark.parametrize("solver", ["lbfgs", "ftrl"])
def test_lr_has_no_pool_attribute_during_or_after_fit(solver):
    X, y = _binary_problem(0)
    seen = []
    model = LogisticRegression(
        solver=solver,
        max_iter=100,
        n_threads=2,
        callback=lambda info: seen.append(FIT_TIME_NAMES & set(vars(model))),
    )
    model.fit(X, y, eval_set=[(X[:50], y[:50])])
    assert seen and all(names == set() for names in seen)
    assert FIT_TIME_NAMES.isdisjoint(vars(model))


# ---- a failing fit leaves nothing behind ---------------------------------------------------------
def _boom(*args):
    raise RuntimeError("callback failed")


@pytest.mark.parametrize(
    "make_fit",
    [
        lambda m: (LFM(n_factors=4, epochs=3, n_threads=1), dict(callback=_boom), RuntimeError),
        lambda m: (
            Item2Vec(vector_size=4, epochs=2, n_threads=1),
            dict(callback=_boom),
            RuntimeError,
        ),
        lambda m: (
            Item2Vec(vector_size=4, epochs=2, n_threads=1),
            dict(sequences=[[0, 999]]),
            KeyError,
        ),
        lambda m: (
            ContentBased(strategy="nonsense"),
            dict(item_features=_topics(m.shape[1], 0)),
            ValueError,
        ),
    ],
    ids=["lfm-callback", "item2vec-callback", "item2vec-sequences", "content-params"],
)
def test_failing_recall_fit_leaves_no_fit_time_attribute(make_fit):
    m = _clusters()
    model, fit_params, error = make_fit(m)
    with pytest.raises(error):
        model.fit(m, **fit_params)
    assert FIT_TIME_NAMES.isdisjoint(vars(model))
    assert _non_param_state(model) == set()
    assert not hasattr(model, "item_map_")  # not half-fitted either


@pytest.mark.parametrize("solver", ["lbfgs", "ftrl"])
def test_failing_lr_fit_leaves_no_pool(solver):
    X, y = _binary_problem(0)
    model = LogisticRegression(solver=solver, max_iter=5, n_threads=2, callback=_boom)
    with pytest.raises(RuntimeError, match="callback failed"):
        model.fit(X, y)
    assert FIT_TIME_NAMES.isdisjoint(vars(model))


def test_unknown_fit_time_argument_is_named_before_any_state():
    X, y = _binary_problem(0)
    model = LogisticRegression()
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*'pool'"):
        model.fit(X, y, pool=None)
    assert not hasattr(model, "classes_") and not hasattr(model, "n_features_in_")
    recall = ItemCF()
    with pytest.raises(TypeError, match="callback"):
        recall.fit(_clusters(), callback=_boom)
    assert not hasattr(recall, "item_map_")


# ---- two fits of one class in two threads do not mix their arguments -----------------------------
def test_concurrent_lfm_fits_keep_their_callbacks():
    m = _clusters()

    def job(stop_at):
        model = LFM(n_factors=4, epochs=20, n_threads=1, random_state=stop_at)
        calls = []

        def callback(mdl, epoch, loss):
            calls.append(mdl)
            return epoch == stop_at

        model.fit(m, callback=callback)
        return model, calls

    (a, calls_a), (b, calls_b) = _run_in_threads(lambda: job(3), lambda: job(11))
    assert len(calls_a) == len(a.loss_history_) == 4 and all(c is a for c in calls_a)
    assert len(calls_b) == len(b.loss_history_) == 12 and all(c is b for c in calls_b)
    serial_a, _ = job(3)
    np.testing.assert_array_equal(a.item_factors_, serial_a.item_factors_)


def test_concurrent_item2vec_fits_keep_their_sequences():
    m = _clusters()
    first = [[0, 1, 2, 3], [4, 5, 0]] * 10
    second = [[6, 7, 8], [12, 13, 14, 15]] * 10

    def job(sequences):
        model = Item2Vec(vector_size=4, window=2, epochs=3, sample=0, n_threads=1, random_state=0)
        epochs = []
        model.fit(m, sequences, callback=lambda mdl, epoch, words: epochs.append((mdl, words)))
        return model, epochs

    (a, epochs_a), (b, epochs_b) = _run_in_threads(lambda: job(first), lambda: job(second))
    for model, epochs, sequences in ((a, epochs_a, first), (b, epochs_b, second)):
        serial, serial_epochs = job(sequences)
        np.testing.assert_array_equal(model.item_vectors_, serial.item_vectors_)
        assert [w for _, w in epochs] == [w for _, w in serial_epochs]
        assert all(mdl is model for mdl, _ in epochs)
        trained = np.unique(np.concatenate(sequences))
        untouched = np.setdiff1d(np.arange(m.shape[1]), trained)
        assert np.all(model.item_vectors_[untouched] == 0)
        assert np.any(model.item_vectors_[trained] != 0)


def test_concurrent_content_based_fits_keep_their_features():
    m = _clusters()
    topics = [_topics(m.shape[1], seed) for seed in (1, 2)]

    def job(features):
        return ContentBased(strategy="similarity").fit(m, item_features=features)

    fitted = _run_in_threads(*[lambda f=f: job(f) for f in topics for _ in range(2)])
    for model, features in zip(fitted, [t for t in topics for _ in range(2)]):
        np.testing.assert_array_equal(model.item_profiles_, job(features).item_profiles_)


def test_concurrent_lr_fits_match_serial_fits():
    problems = [_binary_problem(seed) for seed in (1, 2)]

    def job(X, y):
        return LogisticRegression(n_threads=2).fit(X, y)

    fitted = _run_in_threads(*[lambda p=p: job(*p) for p in problems])
    for model, problem in zip(fitted, problems):
        serial = job(*problem)
        np.testing.assert_array_equal(model.coef_, serial.coef_)
        assert FIT_TIME_NAMES.isdisjoint(vars(model))
