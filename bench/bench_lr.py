"""LogisticRegression fit: recforge (L-BFGS on the Numba kernel) vs scikit-learn's lbfgs, same matrices.

Two data sets, each its own group:

* ``lr-fit-adult`` — UCI Adult encoded once by recforge's FeatureEncoder (one-hot + 20 quantile
  buckets + standardised numerics; CSR float32, 32,561 x ~450), C=0.3.
* ``lr-fit-synthetic`` — ``synthetic_ctr`` 1M rows x 50 float32 features (plus 200k held-out rows
  of the same draw), C=1.0.

Both fits use tol=1e-4 and max_iter=1000; each benchmark records the test AUC in ``extra_info`` and
asserts it is within 0.002 of scikit-learn's, so the timings compare fits of equal quality.

Run:  pytest bench/bench_lr.py --benchmark-only --benchmark-json=/tmp/lr.json
      python bench/compare.py /tmp/lr.json
"""
import numpy as np
import pytest

from recforge.metrics import roc_auc_score
from recforge.rank import LogisticRegression

from .conftest import pick

N_SYNTH = pick(1_000_000, 20_000)
N_SYNTH_TEST = pick(200_000, 5_000)
ROUNDS = pick(5, 1)


@pytest.fixture(scope="module")
def adult_matrices():
    from recforge.datasets import adult
    from recforge.features import FeatureEncoder

    data = adult()
    enc = FeatureEncoder(n_bins=20).fit(data.X_train)
    return enc.transform(data.X_train), data.y_train, enc.transform(data.X_test), data.y_test


@pytest.fixture(scope="module")
def synthetic_matrices():
    from recforge.data import synthetic_ctr

    X, y = synthetic_ctr(N_SYNTH + N_SYNTH_TEST, 50, seed=0)
    return X[:N_SYNTH], y[:N_SYNTH], X[N_SYNTH:], y[N_SYNTH:]


_AUC = {}


def _run(benchmark, make, data, key):
    Xtr, ytr, Xte, yte = data
    model = benchmark.pedantic(lambda: make().fit(Xtr, ytr), rounds=ROUNDS, warmup_rounds=1)
    auc = roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
    benchmark.extra_info["auc"] = auc
    benchmark.extra_info["n_iter"] = int(np.ravel(model.n_iter_)[0])
    _AUC.setdefault(key, []).append(auc)
    assert max(_AUC[key]) - min(_AUC[key]) <= 0.002, _AUC[key]  # equal quality across the group
    return model


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


@pytest.mark.benchmark(group="lr-fit-synthetic")
def test_sklearn_lbfgs_synthetic(benchmark, synthetic_matrices):
    _run(benchmark, _sklearn(1.0), synthetic_matrices, "synthetic")


@pytest.mark.benchmark(group="lr-fit-synthetic")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_recforge_lr_synthetic(benchmark, synthetic_matrices, n_threads):
    _run(benchmark, _recforge(1.0, n_threads), synthetic_matrices, "synthetic")
