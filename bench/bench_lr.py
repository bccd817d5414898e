"""LogisticRegression fit: recforge (L-BFGS on the C++ kernel) vs scikit-learn's lbfgs, same matrices.

Two data sets, each its own group:

* ``lr-fit-adult`` — UCI Adult encoded once by recforge's FeatureEncoder (one-hot + 20 quantile
  buckets + standardised numerics; CSR float32, 32,561 x ~450), C=0.3.
* ``lr-fit-synthetic`` — ``synthetic_ctr`` 1M rows x 50 float32 features (plus 200k held-out rows
  of the same draw), C=1.0.

* ``lr-fit-onehot-ctr`` — a sparse one-hot CTR matrix: 300k rows of 24 categorical columns
  (4-22 Zipf-distributed values each) and 6 numeric columns (20 quantile buckets, with missing
  values), encoded by recforge's FeatureEncoder without standardised numerics, so every row holds
  30 entries of value 1 (CSR float32, ~490 columns); 250k rows to fit, 50k held out, C=1.0.

* ``lr-fit-synthetic-busy`` — the synthetic fit again while a separate process keeps one core
  busy (a spinning loop): threads that spin-wait collapse here, ours block.
  ``lr-fit-onehot-ctr-busy`` — the same for the one-hot fit (ours at 1 and 2 threads).

Every fit uses tol=1e-4 and max_iter=1000; each benchmark records the test AUC, the iterations and
the training objective (mean log-loss + l2 term, as minimised) in ``extra_info`` and asserts the AUC
is within 0.002 of scikit-learn's, so the timings compare fits of equal quality. The first three
groups also run ours at 1 thread with scipy's L-BFGS-B driving our kernel (``scipy-driver``, what
LogisticRegression used before ``rank/_lbfgs.py``): same kernel, the solvers' iterations and cost.

Run:  pytest bench/bench_lr.py --benchmark-only --benchmark-json=/tmp/lr.json
      python bench/compare.py /tmp/lr.json
"""

import numpy as np
import pytest

from recforge.metrics import roc_auc_score
from recforge.rank import LogisticRegression

from .conftest import pick, synthetic_ctr_split

N_SYNTH = pick(1_000_000, 20_000)
N_SYNTH_TEST = pick(200_000, 5_000)
N_CTR, N_CTR_TEST = pick(250_000, 20_000), pick(50_000, 5_000)
ROUNDS = pick(5, 1)
ROUNDS_ADULT = pick(15, 1)


@pytest.fixture(scope="module")
def adult_matrices():
    from recforge.datasets import adult
    from recforge.features import FeatureEncoder

    data = adult()
    enc = FeatureEncoder(n_bins=20).fit(data.X_train)
    return enc.transform(data.X_train), data.y_train, enc.transform(data.X_test), data.y_test


@pytest.fixture(scope="module")
def synthetic_matrices():
    return synthetic_ctr_split(N_SYNTH, N_SYNTH_TEST)


def onehot_ctr_frame(n_rows, seed=0):
    """``(DataFrame, y)``: raw mixed columns of a click log and int8 clicks from a logistic model.

    24 categorical columns (4-22 values, Zipf-like frequencies, each value its own effect) and 6
    log-normal numeric columns (2% missing, a non-monotone effect that buckets capture).
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns, logit = {}, np.zeros(n_rows)
    for c, card in enumerate(np.linspace(4, 22, 24).astype(int)):
        freq = 1.0 / np.arange(1, card + 1) ** 0.8
        codes = rng.choice(card, size=n_rows, p=freq / freq.sum())
        logit += rng.normal(0.0, 0.4, card)[codes]
        columns[f"cat{c}"] = pd.Categorical.from_codes(codes, [f"v{v}" for v in range(card)])
    for c in range(6):
        x = rng.lognormal(0.0, 1.0, n_rows)
        logit += 0.3 * np.sin(np.log(x) * (c + 1))
        x[rng.random(n_rows) < 0.02] = np.nan
        columns[f"num{c}"] = x
    logit += -1.0 - logit.mean()  # about 30% clicks
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame(columns), y


@pytest.fixture(scope="module")
def onehot_ctr_matrices():
    from recforge.features import FeatureEncoder

    frame, y = onehot_ctr_frame(N_CTR + N_CTR_TEST)
    train, test = frame.iloc[:N_CTR], frame.iloc[N_CTR:]
    enc = FeatureEncoder(n_bins=20, scale_numeric=False).fit(train)
    return enc.transform(train), y[:N_CTR], enc.transform(test), y[N_CTR:]


_AUC = {}


def _run(benchmark, make, data, key):
    Xtr, ytr, Xte, yte = data
    rounds = ROUNDS if key == "synthetic" else ROUNDS_ADULT
    model = benchmark.pedantic(lambda: make().fit(Xtr, ytr), rounds=rounds, warmup_rounds=1)
    auc = roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
    benchmark.extra_info["auc"] = auc
    benchmark.extra_info["n_iter"] = int(np.ravel(model.n_iter_)[0])
    benchmark.extra_info["objective"] = _objective(model, Xtr, ytr)
    _AUC.setdefault(key, []).append(auc)
    assert max(_AUC[key]) - min(_AUC[key]) <= 0.002, _AUC[key]  # equal quality across the group
    return model


def _objective(model, X, y):
    """The minimised objective at the fitted weights: mean log-loss + |w|^2 / (2 C n)."""
    w = np.ravel(model.coef_)
    z = np.asarray(X @ w).ravel() + float(np.ravel(model.intercept_)[0])
    loss = np.logaddexp(0.0, z) - np.asarray(y, dtype=np.float64) * z
    return float(loss.mean() + 0.5 * float(w @ w) / (model.C * X.shape[0]))


def _scipy_lbfgs(fun, x0, *, tol, max_iter, callback=None):
    """``rank._lbfgs.minimize_lbfgs`` through scipy's L-BFGS-B (the options LR passed it before)."""
    from scipy.optimize import minimize

    from recforge.rank._lbfgs import LbfgsResult

    iteration = [0]

    def on_iteration(intermediate_result):
        iteration[0] += 1
        x, f = intermediate_result.x, float(intermediate_result.fun)
        if callback is not None and callback(iteration[0], x, f):
            raise StopIteration

    options = {"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxls": 50}
    res = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=on_iteration, options=options)
    return LbfgsResult(res.x, res.fun, res.jac, res.nit, res.nfev, res.success, str(res.message))


@pytest.fixture
def scipy_driver(monkeypatch):
    """LogisticRegression fits with scipy's L-BFGS-B driving our kernel for this benchmark."""
    from recforge.rank import linear

    monkeypatch.setattr(linear, "minimize_lbfgs", _scipy_lbfgs)


def _sklearn(C):
    sklearn_lm = pytest.importorskip("sklearn.linear_model")
    return lambda: sklearn_lm.LogisticRegression(C=C, solver="lbfgs", tol=1e-4, max_iter=1000)


def _recforge(C, n_threads):
    return lambda: LogisticRegression(C=C, tol=1e-4, max_iter=1000, n_threads=n_threads)


@pytest.mark.benchmark(group="lr-fit-adult")
def test_sklearn_lbfgs_adult(benchmark, adult_matrices):
    _run(benchmark, _sklearn(0.3), adult_matrices, "adult")


@pytest.mark.benchmark(group="lr-fit-adult")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_adult(benchmark, adult_matrices, n_threads):
    _run(benchmark, _recforge(0.3, n_threads), adult_matrices, "adult")


@pytest.mark.benchmark(group="lr-fit-adult")
def test_recforge_lr_adult_scipy_driver(benchmark, adult_matrices, scipy_driver):
    _run(benchmark, _recforge(0.3, 1), adult_matrices, "adult")


@pytest.mark.benchmark(group="lr-fit-synthetic")
def test_sklearn_lbfgs_synthetic(benchmark, synthetic_matrices):
    _run(benchmark, _sklearn(1.0), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-synthetic")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_synthetic(benchmark, synthetic_matrices, n_threads):
    _run(benchmark, _recforge(1.0, n_threads), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-synthetic")
def test_recforge_lr_synthetic_scipy_driver(benchmark, synthetic_matrices, scipy_driver):
    _run(benchmark, _recforge(1.0, 1), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-onehot-ctr")
def test_sklearn_lbfgs_onehot_ctr(benchmark, onehot_ctr_matrices):
    _run(benchmark, _sklearn(1.0), onehot_ctr_matrices, "onehot-ctr")


@pytest.mark.benchmark(group="lr-fit-onehot-ctr")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_onehot_ctr(benchmark, onehot_ctr_matrices, n_threads):
    _run(benchmark, _recforge(1.0, n_threads), onehot_ctr_matrices, "onehot-ctr")


@pytest.mark.benchmark(group="lr-fit-onehot-ctr")
def test_recforge_lr_onehot_ctr_scipy_driver(benchmark, onehot_ctr_matrices, scipy_driver):
    _run(benchmark, _recforge(1.0, 1), onehot_ctr_matrices, "onehot-ctr")


@pytest.fixture
def busy_core():
    """A child process spinning on one core for the duration of the benchmark (ended by its handle)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_spin, daemon=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.terminate()
        proc.join(timeout=10)


def _spin():  # pragma: no cover - runs in the child
    while True:
        pass


@pytest.mark.benchmark(group="lr-fit-synthetic-busy")
def test_sklearn_lbfgs_synthetic_busy(benchmark, synthetic_matrices, busy_core):
    _run(benchmark, _sklearn(1.0), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-synthetic-busy")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_synthetic_busy(benchmark, synthetic_matrices, busy_core, n_threads):
    _run(benchmark, _recforge(1.0, n_threads), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-onehot-ctr-busy")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_onehot_ctr_busy(benchmark, onehot_ctr_matrices, busy_core, n_threads):
    _run(benchmark, _recforge(1.0, n_threads), onehot_ctr_matrices, "onehot-ctr")
