"""recforge's L-BFGS (rank/_lbfgs.py) against scipy's L-BFGS-B: the same iterates, stopping rules
and line-search conditions."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from recforge.rank._lbfgs import (
    CURVATURE,
    DONE,
    MORE,
    SUFFICIENT_DECREASE,
    _MoreThuente,
    minimize_lbfgs,
)

FTOL = 64 * np.finfo(float).eps


def scipy_lbfgsb(fun, x0, tol, max_iter):
    options = {"gtol": tol, "ftol": FTOL, "maxiter": max_iter, "maxls": 50}
    return minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)


def logistic_problem(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ rng.standard_normal(d)))).astype(float)
    lam = 1.0 / n

    def fun(theta):
        z = X @ theta[:d] + theta[d]
        p = 1 / (1 + np.exp(-z))
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * theta[:d] @ theta[:d]
        return loss, np.append(X.T @ (p - y) / n + lam * theta[:d], np.mean(p - y))

    return fun


@pytest.mark.parametrize(("n", "d", "seed"), [(500, 15, 0), (3000, 80, 1), (400, 300, 2)])
def test_logistic_iterates_equal_scipy(n, d, seed):
    fun = logistic_problem(n, d, seed)
    ours = minimize_lbfgs(fun, np.zeros(d + 1), tol=1e-6, max_iter=1000)
    peer = scipy_lbfgsb(fun, np.zeros(d + 1), 1e-6, 1000)
    assert ours.converged and peer.success
    assert abs(ours.n_iter - peer.nit) <= 1
    np.testing.assert_allclose(ours.x, peer.x, atol=1e-8)
    assert ours.fun == pytest.approx(peer.fun, rel=1e-12)
    assert np.abs(ours.grad).max() <= 1e-6
    np.testing.assert_allclose(ours.grad, fun(ours.x)[1], rtol=0, atol=0)


@pytest.mark.parametrize("n", [2, 10, 50])
def test_rosenbrock_as_scipy(n):
    x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)

    def fun(x):
        return rosen(x), rosen_der(x)

    ours = minimize_lbfgs(fun, x0, tol=1e-7, max_iter=5000)
    peer = scipy_lbfgsb(fun, x0, 1e-7, 5000)
    assert ours.converged
    np.testing.assert_allclose(ours.x, np.ones(n), atol=1e-5)
    # a non-convex valley: rounding moves the iterates apart, not the work
    assert ours.n_iter <= 1.1 * peer.nit + 2
    assert ours.n_evals <= 1.1 * peer.nfev + 2


def test_quadratic_start_at_the_minimum_and_warm_start():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 30))
    A = A @ A.T + np.eye(30)
    b = rng.standard_normal(30)

    def fun(x):
        return 0.5 * x @ A @ x - b @ x, A @ x - b

    cold = minimize_lbfgs(fun, np.zeros(30), tol=1e-7, ftol=0.0, max_iter=1000)
    assert cold.message == "gradient below tol"
    np.testing.assert_allclose(cold.x, np.linalg.solve(A, b), atol=1e-6)
    assert cold.n_iter > 5
    warm = minimize_lbfgs(fun, cold.x, tol=1e-7, ftol=0.0, max_iter=1000)
    assert warm.converged and warm.n_iter == 0 and warm.n_evals == 1
    np.testing.assert_array_equal(warm.x, cold.x)
    loose = minimize_lbfgs(fun, np.zeros(30), tol=1e-2, max_iter=1000)
    assert loose.n_iter < cold.n_iter  # tol is the stopping rule
    assert np.abs(loose.grad).max() <= 1e-2
    started = minimize_lbfgs(fun, loose.x, tol=1e-7, ftol=0.0, max_iter=1000)  # warm start
    assert started.converged and started.n_iter < cold.n_iter


def test_max_iter_and_callback_stop():
    fun = logistic_problem(500, 15, 0)
    capped = minimize_lbfgs(fun, np.zeros(16), tol=1e-12, max_iter=3)
    assert not capped.converged and capped.n_iter == 3 and capped.message == "max_iter reached"
    seen = []

    def callback(iteration, x, f):
        seen.append((iteration, f, x.copy()))
        return iteration == 2

    stopped = minimize_lbfgs(fun, np.zeros(16), tol=1e-12, callback=callback)
    assert not stopped.converged and stopped.n_iter == 2
    assert [s[0] for s in seen] == [1, 2]
    assert seen[-1][1] == stopped.fun and np.array_equal(seen[-1][2], stopped.x)
    assert seen[0][1] > seen[1][1]  # descent


def test_relative_decrease_stops_a_flat_function():
    # a large value over a flat quartic valley: its decrease falls below the value's resolution
    # long before the gradient reaches tol
    def fun(x):
        return 1e8 + 0.25 * float((x**4).sum()), x**3

    result = minimize_lbfgs(fun, np.ones(3), tol=1e-30, max_iter=100)
    assert result.converged and result.n_iter < 100
    assert result.message == "relative decrease below ftol"


def test_non_finite_values_shrink_the_step():
    # nearly flat far from the minimum at 1, so the second step overshoots to where f is +inf
    # (an overflowing loss): the line search must back off, not stop
    seen_inf = []

    def fun(x):
        if x[0] >= 2.0:
            seen_inf.append(x[0])
            return np.inf, np.full(1, np.nan)
        r = np.sqrt(1.0 + (x[0] - 1.0) ** 2)
        return r, np.array([(x[0] - 1.0) / r])

    result = minimize_lbfgs(fun, np.array([-1000.0]), tol=1e-9, max_iter=200)
    assert seen_inf
    assert result.converged
    assert result.x[0] == pytest.approx(1.0, abs=1e-8)


def test_non_finite_start_returns_at_once():
    result = minimize_lbfgs(lambda x: (np.nan, np.zeros_like(x)), np.zeros(2), max_iter=10)
    assert not result.converged and result.n_iter == 0 and result.n_evals == 1
    assert result.message == "non-finite objective or gradient at x0"


def phi1(a):
    """Moré & Thuente (1994) test function 1 (beta = 2)."""
    return -a / (a * a + 2.0), (a * a - 2.0) / (a * a + 2.0) ** 2


def phi2(a):
    """Moré & Thuente (1994) test function 2 (beta = 0.004)."""
    return (a + 0.004) ** 5 - 2.0 * (a + 0.004) ** 4, 5 * (a + 0.004) ** 4 - 8 * (a + 0.004) ** 3


def phi3(a):
    """Moré & Thuente (1994) test function 3 (beta = 0.01, l = 39)."""
    beta, ell = 0.01, 39
    if a <= 1 - beta:
        psi, dpsi = 1 - a, -1.0
    elif a >= 1 + beta:
        psi, dpsi = a - 1, 1.0
    else:
        psi, dpsi = (a - 1) ** 2 / (2 * beta) + beta / 2, (a - 1) / beta
    c = 2 * (1 - beta) / (ell * np.pi)
    wave = ell * np.pi / 2
    return psi + c * np.sin(wave * a), dpsi + c * wave * np.cos(wave * a)


@pytest.mark.parametrize("phi", [phi1, phi2, phi3])
@pytest.mark.parametrize("first_step", [1e-3, 1e-1, 1e1, 1e3])
def test_line_search_ends_on_an_acceptable_step(phi, first_step):
    f0, g0 = phi(0.0)
    search = _MoreThuente(f0, g0, first_step)
    step, status, evals = first_step, MORE, 0
    while status == MORE and evals < 50:
        trial = step
        f, g = phi(trial)
        evals += 1
        step, status = search.next_step(trial, f, g)
    assert status == DONE and step == trial
    f, g = phi(trial)
    assert f <= f0 + SUFFICIENT_DECREASE * trial * g0
    if phi is phi1:  # smooth and unimodal: both strong Wolfe conditions
        assert abs(g) <= CURVATURE * abs(g0)
    # phi2, phi3: L-BFGS-B's interval tolerance (10%) ends the search first, as in dcsrch


def test_logistic_regression_fit_does_not_import_scipy_optimize():
    code = (
        "import sys, numpy as np\n"
        "from recforge.rank import LogisticRegression\n"
        "X = np.random.default_rng(0).standard_normal((300, 4))\n"
        "y = (X[:, 0] > 0).astype(int)\n"
        "LogisticRegression().fit(X, y).predict_proba(X)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.optimize')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
