"""LogisticRegression: kernels vs the NumPy reference, solver behaviour, weights, early stopping,
FTRL/partial_fit, save/load, bad input and quality on Adult."""

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge import _core
from recforge._reference import linear as ref
from recforge.exceptions import ModelFileError, NotFittedError
from recforge.features import FeatureEncoder
from recforge.kernels import linear as K
from recforge.rank import LogisticRegression
from recforge.rank.linear import ConvergenceWarning


def make_data(n=300, d=12, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    w = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w) - 0.3))).astype(np.float64)
    sw = rng.uniform(0.2, 2.0, n)
    return X, y, sw


def kernel_objective(X, y, sw, w, b, lam, n_chunks, index_dtype=None):
    n, d = X.shape
    bounds = K.chunk_bounds(n, n_chunks)
    partial = np.empty((n_chunks, d + 1))
    losses = []
    for c in range(n_chunks):
        if sp.issparse(X):
            indices = X.indices if index_dtype is None else X.indices.astype(index_dtype)
            losses.append(
                K.loss_grad_csr(
                    X.indptr, indices, X.data, y, sw, w, b, bounds[c], bounds[c + 1], partial[c]
                )
            )
        else:
            losses.append(K.loss_grad_dense(X, y, sw, w, b, bounds[c], bounds[c + 1], partial[c]))
    g = partial.sum(axis=0)
    S = sw.sum()
    return sum(losses) / S + 0.5 * lam * w @ w, g[:d] / S + lam * w, g[d] / S


@pytest.mark.parametrize("fmt", ["dense64", "dense32", "csr32", "csr64", "csr16"])
@pytest.mark.parametrize("n_chunks", [1, 3])
def test_loss_grad_kernel_matches_reference(fmt, n_chunks):
    X, y, sw = make_data()
    rng = np.random.default_rng(1)
    w, b, lam = rng.standard_normal(X.shape[1]) * 0.5, 0.2, 0.01
    if fmt == "dense32":
        X = X.astype(np.float32)
    elif fmt.startswith("csr"):
        X = sp.csr_matrix(X.astype(np.float32))
        if fmt == "csr64":
            X.indices = X.indices.astype(np.int64)
            X.indptr = X.indptr.astype(np.int64)
    index_dtype = np.uint16 if fmt == "csr16" else None  # what narrow_indices gives the fit
    f, gw, gb = kernel_objective(X, y, sw, w, b, lam, n_chunks, index_dtype)
    rf, rgw, rgb = ref.objective(X, y, sw, w, b, lam)
    np.testing.assert_allclose(f, rf, rtol=1e-10)
    np.testing.assert_allclose(gw, rgw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, rgb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64, np.uint16])
@pytest.mark.parametrize("n_chunks", [1, 3])
def test_pattern_kernel_matches_reference_on_one_hot_rows(index_dtype, n_chunks):
    # 700 rows: several BLOCK_ROWS blocks per chunk, a partial last one; rows of 0 to 9 ones
    X, y, sw = make_data(n=700, d=40, density=0.12, seed=3)
    X = sp.csr_matrix((X != 0).astype(np.float32))
    assert K.all_ones(X.data) and not K.all_ones(X.data * 2) and not K.all_ones(X.data[:0])
    indices = X.indices.astype(index_dtype)
    w, b, lam = np.random.default_rng(4).standard_normal(40) * 0.5, -0.3, 0.02
    bounds = K.chunk_bounds(X.shape[0], n_chunks)
    partial = np.empty((n_chunks, 41))
    loss = sum(
        K.loss_grad_pattern(X.indptr, indices, y, sw, w, b, bounds[c], bounds[c + 1], partial[c])
        for c in range(n_chunks)
    )
    S = sw.sum()
    g = partial.sum(axis=0) / S
    rf, rgw, rgb = ref.objective(X, y, sw, w, b, lam)
    np.testing.assert_allclose(loss / S + 0.5 * lam * w @ w, rf, rtol=1e-10)
    np.testing.assert_allclose(g[:40] + lam * w, rgw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g[40], rgb, rtol=1e-9, atol=1e-12)


def test_narrow_indices_only_when_every_column_fits():
    indices = np.array([0, 5, 65535], np.int32)
    assert K.narrow_indices(indices, 65536).dtype == np.uint16
    np.testing.assert_array_equal(K.narrow_indices(indices, 65536), indices)
    assert K.narrow_indices(indices, 65537) is indices


def test_one_hot_fit_equals_the_dense_fit_of_the_same_matrix():
    # the pattern path (every stored value 1) against the dense kernel on the same rows
    X, y, _ = make_data(n=2000, d=30, density=0.2, seed=5)
    Xs = sp.csr_matrix((X != 0).astype(np.float32))
    sparse = LogisticRegression(C=0.5, tol=1e-8, n_threads=2).fit(Xs, y)
    dense = LogisticRegression(C=0.5, tol=1e-8, n_threads=1).fit(Xs.toarray(), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-5, atol=1e-6)


def test_loss_is_stable_for_large_margins():
    X = np.array([[1.0], [1.0]])
    y = np.array([1.0, 0.0])
    f, gw, gb = kernel_objective(X, y, np.ones(2), np.array([800.0]), 0.0, 0.0, 1)
    assert (
        np.isfinite(f) and f == pytest.approx(400.0) and np.isfinite(gw).all() and np.isfinite(gb)
    )


def test_branch_free_exp_and_log1p_match_libm():
    # the residual loop's own exp(-a) and log1p(e) (vectorisable) against NumPy's on their domains
    a = np.concatenate(
        [np.linspace(0.0, 2.0, 2001), np.geomspace(1e-300, _core.LINEAR_MAX_ABS_MARGIN, 3001)]
    )
    np.testing.assert_allclose(_core._linear_exp_neg(a), np.exp(-a), rtol=5e-16, atol=0)
    e = np.concatenate([[0.0, 1e-300, 1e-17], np.geomspace(1e-12, 1.0, 3001)])
    np.testing.assert_allclose(_core._linear_log1p_unit(e), np.log1p(e), rtol=1e-15, atol=0)


def test_gradient_matches_finite_differences():
    X, y, sw = make_data(n=80, d=5)
    w, b, lam = np.linspace(-0.5, 0.5, 5), 0.1, 0.05
    _, gw, gb = kernel_objective(X, y, sw, w, b, lam, 2)
    eps = 1e-6
    for j in range(5):
        e = np.zeros(5)
        e[j] = eps
        num = (
            kernel_objective(X, y, sw, w + e, b, lam, 2)[0]
            - kernel_objective(X, y, sw, w - e, b, lam, 2)[0]
        )
        assert num / (2 * eps) == pytest.approx(gw[j], rel=1e-5, abs=1e-8)
    num_b = (
        kernel_objective(X, y, sw, w, b + eps, lam, 2)[0]
        - kernel_objective(X, y, sw, w, b - eps, lam, 2)[0]
    )
    assert num_b / (2 * eps) == pytest.approx(gb, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_ftrl_kernel_matches_reference(fmt):
    X, y, sw = make_data(n=120, d=8)
    order = np.random.default_rng(3).permutation(120).astype(np.int64)
    z0, n0 = np.zeros(9), np.zeros(9)
    rz, rn, rtotal = ref.ftrl_epoch(X, y, sw, order, z0, n0, 0.1, 1.0, 0.5, 0.2)
    z, nn = z0.copy(), n0.copy()
    if fmt == "dense":
        total = K.ftrl_epoch_dense(X, y, sw, order, z, nn, 0.1, 1.0, 0.5, 0.2, True)
    else:
        Xs = sp.csr_matrix(X)
        total = K.ftrl_epoch_csr(
            Xs.indptr, Xs.indices, Xs.data, y, sw, order, z, nn, 0.1, 1.0, 0.5, 0.2, True
        )
    np.testing.assert_allclose(z, rz, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nn, rn, rtol=1e-10, atol=1e-12)
    assert total == pytest.approx(rtotal, rel=1e-10)


def test_lbfgs_reaches_the_reference_minimum():
    from scipy.optimize import minimize

    X, y, sw = make_data(n=400, d=10)
    model = LogisticRegression(C=0.5, tol=1e-9, max_iter=1000).fit(X, y, sample_weight=sw)
    lam = 1 / (0.5 * sw.sum())

    def f(theta):
        v, gw, gb = ref.objective(X, y, sw, theta[:-1], theta[-1], lam)
        return v, np.append(gw, gb)

    res = minimize(
        f,
        np.zeros(11),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 2000},
    )
    np.testing.assert_allclose(model.coef_[0], res.x[:-1], atol=1e-5)
    assert model.intercept_[0] == pytest.approx(res.x[-1], abs=1e-5)


def test_matches_scikit_learn():
    sklearn_lm = pytest.importorskip("sklearn.linear_model")
    X, y, sw = make_data(n=500, d=15, density=0.5)
    ours = LogisticRegression(C=0.7, tol=1e-8, max_iter=500).fit(X, y, sample_weight=sw)
    peer = sklearn_lm.LogisticRegression(C=0.7, tol=1e-8, max_iter=500).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(ours.coef_, peer.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, peer.intercept_, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), peer.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("fmt", ["csr", "dense"])
@pytest.mark.parametrize("helpers", ["on time", "late"])
def test_results_do_not_depend_on_threads(fmt, helpers, monkeypatch, request):
    from recforge.rank import linear

    # small data, but really use 2 threads, whatever the load
    monkeypatch.setattr(linear, "MIN_ENTRIES_PER_THREAD", 1000)
    previous = _core._team_load_check(False)
    request.addfinalizer(lambda: _core._team_load_check(previous))
    if helpers == "late":  # the passes' helpers sleep in each chunk: the caller takes them over
        delay = _core._takeover_helper_delay(2_000_000)
        request.addfinalizer(lambda: _core._takeover_helper_delay(delay))
    rng = np.random.default_rng(5)
    X = sp.random(40_000, 30, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    if fmt == "dense":
        X = X.toarray()
    y = (rng.random(40_000) < 0.3).astype(int)
    a = LogisticRegression(n_threads=1).fit(X, y)
    b = LogisticRegression(n_threads=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))


def test_sparse_and_dense_agree():
    X, y, _ = make_data()
    a = LogisticRegression(tol=1e-8).fit(X, y)
    b = LogisticRegression(tol=1e-8).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-7)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(sp.csr_matrix(X)), atol=1e-8)


def test_integer_sample_weight_equals_repetition():
    X, y, _ = make_data(n=200)
    reps = np.random.default_rng(2).integers(0, 3, 200)
    a = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=reps)
    b = LogisticRegression(tol=1e-10, max_iter=1000).fit(
        np.repeat(X, reps, axis=0), np.repeat(y, reps)
    )
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)


def test_class_weight():
    X, y, _ = make_data(n=400)
    bal = LogisticRegression(class_weight="balanced", tol=1e-10, max_iter=500).fit(X, y)
    pos, neg = y.sum(), (1 - y).sum()
    sw = np.where(y == 1, 400 / (2 * pos), 400 / (2 * neg))
    manual = LogisticRegression(tol=1e-10, max_iter=500).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(bal.coef_, manual.coef_, atol=1e-6)
    d = LogisticRegression(class_weight={1.0: 3.0}, tol=1e-10, max_iter=500).fit(X, y)
    m = LogisticRegression(tol=1e-10, max_iter=500).fit(
        X, y, sample_weight=np.where(y == 1, 3.0, 1.0)
    )
    np.testing.assert_allclose(d.coef_, m.coef_, atol=1e-6)


def test_labels_and_predict():
    X, y, _ = make_data()
    labels = np.where(y == 1, "click", "skip")
    model = LogisticRegression().fit(X, labels)
    assert model.classes_.tolist() == [
        "click",
        "skip",
    ]  # classes_[1] = "skip" is the positive class
    p = model.predict_proba(X)
    assert p.shape == (300, 2) and np.allclose(p.sum(axis=1), 1)
    assert set(model.predict(X)) <= {"click", "skip"}
    np.testing.assert_array_equal(model.predict(X), model.classes_[(p[:, 1] > 0.5).astype(int)])


def test_no_penalty_and_no_intercept():
    X, y, _ = make_data()
    m = LogisticRegression(penalty=None, fit_intercept=False, tol=1e-8, max_iter=500).fit(X, y)
    assert m.intercept_[0] == 0
    _, gw, _ = ref.objective(X, y, np.ones(300), m.coef_[0], 0.0, 0.0)
    assert np.abs(gw).max() < 1e-6


def test_convergence_warning():
    X, y, _ = make_data()
    with pytest.warns(ConvergenceWarning):
        LogisticRegression(max_iter=2, tol=1e-12).fit(X, y)


def test_early_stopping_and_callback():
    import warnings

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 60))  # more features than the training rows support: over-fits
    y = (X[:, 0] + rng.standard_normal(200) > 0).astype(int)
    seen = []
    m = LogisticRegression(
        penalty=None,
        tol=1e-12,
        max_iter=200,
        early_stopping_rounds=3,
        callback=lambda info: seen.append(info),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(X[:100], y[:100], eval_set=[(X[100:], y[100:])])
    assert len(seen) == len(m.evals_result_) and seen[-1]["eval_loss"] == m.evals_result_[-1]
    assert m.best_iteration_ == int(np.argmin(m.evals_result_)) + 1
    assert len(m.evals_result_) == m.best_iteration_ + 3  # stopped 3 iterations after the best
    best = m.evals_result_[m.best_iteration_ - 1]
    assert m._eval_loss(
        (X[100:], y[100:].astype(float), np.ones(100)), m.coef_[0], m.intercept_[0]
    ) == pytest.approx(best)  # the best weights were kept
    stop = LogisticRegression(callback=lambda info: info["iteration"] >= 2).fit(X, y)
    assert stop.n_iter_[0] <= 3


def test_ftrl_l1_gives_sparse_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 40))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.standard_normal(3000) > 0).astype(
        int
    )  # 2 informative columns
    strong = LogisticRegression(penalty="l1", C=0.002, max_iter=20, random_state=0).fit(X, y)
    weak = LogisticRegression(penalty="l1", C=10.0, max_iter=20, random_state=0).fit(X, y)
    assert np.count_nonzero(strong.coef_) < np.count_nonzero(weak.coef_)
    assert strong.coef_[0, 0] > 0 and strong.coef_[0, 1] < 0
    assert np.count_nonzero(strong.coef_) <= 10
    en = LogisticRegression(
        penalty="elasticnet", l1_ratio=0.5, C=0.01, max_iter=10, random_state=0
    ).fit(X, y)
    assert (en.predict(X) == y).mean() > 0.8


def test_ftrl_is_deterministic_for_a_seed():
    X, y, _ = make_data(n=500)
    a = LogisticRegression(penalty="l1", random_state=7, max_iter=5).fit(X, y)
    b = LogisticRegression(penalty="l1", random_state=7, max_iter=5, n_threads=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_partial_fit_stream_equals_one_pass():
    X, y, sw = make_data(n=400)
    stream = LogisticRegression(penalty="l1", C=1.0)
    for lo in range(0, 400, 100):
        stream.partial_fit(
            X[lo : lo + 100], y[lo : lo + 100], classes=[0.0, 1.0], sample_weight=sw[lo : lo + 100]
        )
    z, n, _ = ref.ftrl_epoch(
        X, y, sw, np.arange(400), np.zeros(13), np.zeros(13), 0.1, 1.0, 1.0, 0.0
    )
    np.testing.assert_allclose(stream._ftrl_z, z, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stream._ftrl_n, n, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="classes"):
        LogisticRegression(penalty="l1").partial_fit(X, y)
    assert not hasattr(LogisticRegression(), "partial_fit")
    assert hasattr(LogisticRegression(solver="ftrl"), "partial_fit")
    with pytest.raises(ValueError, match="not in classes"):
        stream.partial_fit(X, y + 5)


def test_save_load_with_encoder(tmp_path):
    df = pd.DataFrame({"age": [20, 30, 40, 50, None, 60] * 10, "city": list("abcab?") * 10})
    y = np.array([0, 1, 1, 0, 1, 0] * 10)
    model = LogisticRegression(encoder=FeatureEncoder(n_bins=3), C=2.0).fit(df, y)
    model.save(tmp_path / "lr.npz")
    back = LogisticRegression.load(tmp_path / "lr.npz")
    np.testing.assert_array_equal(back.predict_proba(df), model.predict_proba(df))
    assert back.C == 2.0 and back.encoder.n_bins == 3 and back.n_features_in_ == 2
    with pytest.raises(ModelFileError):
        LogisticRegression.load(io.BytesIO(b"junk"))


def test_save_with_callback_and_generator(tmp_path):
    X, y, _ = make_data()
    m = LogisticRegression(callback=lambda info: False, random_state=np.random.default_rng(0)).fit(
        X, y
    )
    m.save(tmp_path / "m.npz")
    back = LogisticRegression.load(tmp_path / "m.npz")
    assert back.callback is None and back.random_state is None  # not storable without pickle
    np.testing.assert_array_equal(back.coef_, m.coef_)


def test_save_load_ftrl_continues(tmp_path):
    X, y, _ = make_data()
    m = LogisticRegression(penalty="l1").partial_fit(X, y, classes=[0, 1])
    m.save(tmp_path / "m.npz")
    back = LogisticRegression.load(tmp_path / "m.npz")
    m.partial_fit(X, y)
    back.partial_fit(X, y)
    np.testing.assert_array_equal(m.coef_, back.coef_)


def test_bad_input():
    X, y, _ = make_data()
    with pytest.raises(NotFittedError):
        LogisticRegression().predict(X)
    with pytest.raises(ValueError, match="penalty"):
        LogisticRegression(penalty="l3").fit(X, y)
    with pytest.raises(ValueError, match="C"):
        LogisticRegression(C=0).fit(X, y)
    with pytest.raises(ValueError, match="lbfgs"):
        LogisticRegression(penalty="l1", solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(np.where(X == 0, np.nan, X), y)
    with pytest.raises(ValueError, match="rows"):
        LogisticRegression().fit(X, y[:-1])
    with pytest.raises(ValueError, match="1 class"):
        LogisticRegression().fit(X, np.zeros(300))
    with pytest.raises(ValueError, match=r"Only binary.*3 classes"):
        LogisticRegression().fit(X, np.arange(300) % 3)
    with pytest.raises(ValueError, match="Unknown label type"):
        LogisticRegression().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="sample_weight"):
        LogisticRegression().fit(X, y, sample_weight=-np.ones(300))
    # string columns get an automatic FeatureEncoder (issue 14); other non-numeric X is refused
    strings = pd.DataFrame({"a": ["x", "y"] * 2})
    assert LogisticRegression().fit(strings, [0, 1, 0, 1]).encoder_ is not None
    with pytest.raises(TypeError, match="numeric"):
        LogisticRegression().fit(np.array([["x"], ["y"]], dtype=object).astype("U1"), [0, 1])
    m = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="12 features"):
        m.predict(X[:, :5])
    with pytest.raises(ValueError, match="eval_set"):
        LogisticRegression().fit(X, y, eval_set=[X])


@pytest.mark.data
def test_adult_quality():
    """Adult test AUC with the documented config (one-hot + 20 quantile buckets + scaled numerics, C=0.3)."""
    from recforge.datasets import adult
    from recforge.demo import RANKERS
    from recforge.metrics import log_loss, roc_auc_score

    data = adult()
    model = dict(RANKERS)["LR"](1)  # the demo's row: C=0.3, encoder=FeatureEncoder(n_bins=20)
    assert model.C == 0.3 and model.encoder.get_params() == FeatureEncoder(n_bins=20).get_params()
    model.fit(data.X_train, data.y_train)
    p = model.predict_proba(data.X_test)[:, 1]
    # measured 0.9103 AUC / 0.3100 log-loss (scikit-learn's lbfgs on the same matrix: 0.9103);
    # issue bar 0.908
    assert roc_auc_score(data.y_test, p) >= 0.909
    assert log_loss(data.y_test, p) <= 0.312


@pytest.mark.data
def test_adult_quality_ftrl_l1():
    from recforge.datasets import adult
    from recforge.metrics import roc_auc_score

    data = adult()
    enc = FeatureEncoder(n_bins=20).fit(data.X_train)
    Xtr, Xte = enc.transform(data.X_train), enc.transform(data.X_test)
    model = LogisticRegression(penalty="l1", C=1.0, max_iter=10, random_state=0).fit(
        Xtr, data.y_train
    )
    auc = roc_auc_score(data.y_test, model.predict_proba(Xte)[:, 1])
    assert auc >= 0.908, (
        auc
    )  # measured 0.9101 (10 epochs; tol stops it there), 149 of 192 weights non-zero
    assert np.count_nonzero(model.coef_) < model.coef_.size


def test_verbose_progress_bar(capsys):
    X, y, _ = make_data()
    LogisticRegression(verbose=True).fit(X, y)
    LogisticRegression(penalty="l1", verbose=True, max_iter=3).fit(X, y)
    assert "LR" in capsys.readouterr().err


def test_int64_csr_and_input_not_modified():
    X, y, sw = make_data()
    S = sp.csr_matrix(X)
    S64 = S.copy()
    S64.indices = S64.indices.astype(np.int64)
    S64.indptr = S64.indptr.astype(np.int64)
    before = (S64.data.copy(), S64.indices.copy(), S64.indptr.copy(), sw.copy())
    a = LogisticRegression(tol=1e-8).fit(S, y, sample_weight=sw)
    b = LogisticRegression(tol=1e-8).fit(S64, y, sample_weight=sw)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    for old, new in zip(before, (S64.data, S64.indices, S64.indptr, sw)):
        np.testing.assert_array_equal(old, new)
