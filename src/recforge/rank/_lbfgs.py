"""L-BFGS for smooth unconstrained problems (the l2 / unpenalised logistic regression).

The iteration of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995; Zhu et al. 1997) without bounds, which is
what scipy's ``minimize(method="L-BFGS-B")`` and scikit-learn's ``lbfgs`` solver run, written in
NumPy so that a fit does not import ``scipy.optimize`` (~0.25 s in a fresh process):

* direction ``-H g`` by the two-loop recursion over the last ``memory`` pairs
  ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k``, with ``H_0 = (s'y / y'y) I`` from the newest pair
  (the compact form L-BFGS-B uses gives the same direction when nothing is bounded); a pair with
  ``s'y <= eps * (-g'd) * step`` is skipped, as there;
* the Moré–Thuente line search (MINPACK-2 ``dcsrch``/``dcstep``) with L-BFGS-B's constants:
  sufficient decrease ``1e-3``, curvature ``0.9`` (strong Wolfe), relative interval width ``0.1``;
  first step ``1 / |g_0|`` on the first iteration, ``1`` afterwards; at most ``max_line_search``
  evaluations, after which the memory is dropped and the iteration restarts from ``-g`` (it ends
  when that fails too);
* the same stopping rules: the largest gradient component ``<= tol`` (scipy's ``gtol``), the
  relative decrease ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``, ``max_iter``
  iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: L-BFGS-B's line-search constants: sufficient decrease, curvature (strong Wolfe), interval width
SUFFICIENT_DECREASE = 1e-3
CURVATURE = 0.9
STEP_TOLERANCE = 0.1
#: upper bound of a line-search step (L-BFGS-B's ``big`` when nothing is bounded)
MAX_STEP = 1e10
EPS = float(np.finfo(np.float64).eps)
#: line-search states: evaluate the next trial step, the step is found, no acceptable step
MORE, DONE, FAILED = 0, 1, 2


@dataclass
class LbfgsResult:
    """What :func:`minimize_lbfgs` returns.

    Attributes
    ----------
    x : ndarray of shape (n,), float64
        The last iterate.
    fun : float
        The objective at ``x``.
    grad : ndarray of shape (n,), float64
        The gradient at ``x``.
    n_iter : int
        Iterations run (accepted line-search steps).
    n_evals : int
        Objective/gradient evaluations.
    converged : bool
        True when a stopping rule on the gradient or the decrease held (False: ``max_iter``, the
        callback, or a line search that found no step).
    message : str
    """

    x: np.ndarray
    fun: float
    grad: np.ndarray
    n_iter: int
    n_evals: int
    converged: bool
    message: str


def minimize_lbfgs(
    fun,
    x0,
    *,
    tol: float = 1e-5,
    ftol: float = 64 * EPS,
    max_iter: int = 100,
    memory: int = 10,
    max_line_search: int = 50,
    callback=None,
) -> LbfgsResult:
    """Minimise a smooth function of a float64 vector by L-BFGS.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``: the objective (float) and its gradient (ndarray of shape (n,)) at
        ``x`` (ndarray of shape (n,), float64; ``fun`` must not keep or modify it).
    x0 : array-like of shape (n,)
        The starting point (a warm start: any earlier solution).
    tol : float, default 1e-5
        Stop when ``max |g_i| <= tol``.
    ftol : float, default 64 * machine epsilon
        Stop when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``.
    max_iter : int, default 100
    memory : int, default 10
        Correction pairs kept.
    max_line_search : int, default 50
        Evaluations per line search.
    callback : callable, optional
        ``callback(iteration, x, f) -> bool`` after every iteration (``x`` is the new iterate, not
        to be modified); returning True stops the run (``converged`` False).

    Returns
    -------
    LbfgsResult

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.rank._lbfgs import minimize_lbfgs
    >>> target = np.array([1.0, -2.0, 3.0])
    >>> result = minimize_lbfgs(lambda x: (0.5 * ((x - target) ** 2).sum(), x - target), np.zeros(3))
    >>> bool(np.allclose(result.x, target)), result.converged
    (True, True)
    """
    x = np.array(x0, dtype=np.float64).ravel()
    n = x.shape[0]
    f, g = _evaluate(fun, x)
    n_evals = 1
    s_pairs = np.empty((memory, n))
    y_pairs = np.empty((memory, n))
    rho = np.empty(memory)
    stored = 0  # pairs in the ring buffer; the newest is at (newest % memory)
    newest = -1
    iteration = 0
    if not (np.isfinite(f) and np.all(np.isfinite(g))):
        return LbfgsResult(x, f, g, 0, n_evals, False, "non-finite objective or gradient at x0")
    if _max_abs(g) <= tol:
        return LbfgsResult(x, f, g, 0, n_evals, True, "gradient below tol at the start")
    restarted = False  # the memory was dropped after a failed line search
    while True:
        d = _direction(g, s_pairs, y_pairs, rho, stored, newest)
        gd = float(g @ d)
        if not gd < 0.0:  # rounding in a stale memory: restart from the steepest descent
            if stored == 0:
                return LbfgsResult(
                    x, f, g, iteration, n_evals, False, "no descent direction from the gradient"
                )
            stored, restarted = 0, True
            continue
        if iteration == 0 and not restarted:
            step = min(1.0 / float(np.sqrt(d @ d)), MAX_STEP)
        else:
            step = 1.0
        search = _MoreThuente(f, gd, step)
        evals = 0
        while True:
            x_new = x + step * d
            f_new, g_new = _evaluate(fun, x_new)
            n_evals += 1
            evals += 1
            trial = step
            step, status = search.next_step(trial, f_new, float(g_new @ d))
            if status != MORE or evals >= max_line_search:
                break
        if status != DONE:  # no acceptable step: drop the memory and restart, or give up
            if stored == 0:
                return LbfgsResult(
                    x, f, g, iteration, n_evals, False, "the line search found no acceptable step"
                )
            stored, restarted = 0, True
            continue
        iteration += 1
        step = trial
        s = x_new - x
        y = g_new - g
        sy = float(s @ y)
        if sy > EPS * (-gd) * step:
            newest = (newest + 1) % memory
            s_pairs[newest] = s
            y_pairs[newest] = y
            rho[newest] = 1.0 / sy
            stored = min(stored + 1, memory)
        f_old = f
        x, f, g = x_new, f_new, g_new
        if callback is not None and callback(iteration, x, f):
            return LbfgsResult(x, f, g, iteration, n_evals, False, "stopped by the callback")
        if _max_abs(g) <= tol:
            return LbfgsResult(x, f, g, iteration, n_evals, True, "gradient below tol")
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return LbfgsResult(x, f, g, iteration, n_evals, True, "relative decrease below ftol")
        if iteration >= max_iter:
            return LbfgsResult(x, f, g, iteration, n_evals, False, "max_iter reached")


def _evaluate(fun, x):
    f, g = fun(x)
    return float(f), np.asarray(g, dtype=np.float64)


def _max_abs(g) -> float:
    return float(np.max(np.abs(g))) if g.size else 0.0


def _direction(g, s_pairs, y_pairs, rho, stored, newest):
    """``-H g`` by the two-loop recursion over the ``stored`` newest pairs (``-g`` without any)."""
    q = -g
    if stored == 0:
        return q
    memory = s_pairs.shape[0]
    order = [(newest - k) % memory for k in range(stored)]  # newest first
    alpha = np.empty(stored)
    for k, slot in enumerate(order):
        alpha[k] = rho[slot] * float(s_pairs[slot] @ q)
        q -= alpha[k] * y_pairs[slot]
    y = y_pairs[newest]
    q *= 1.0 / (rho[newest] * float(y @ y))  # H_0 = s'y / y'y
    for k in range(stored - 1, -1, -1):
        slot = order[k]
        beta = rho[slot] * float(y_pairs[slot] @ q)
        q += (alpha[k] - beta) * s_pairs[slot]
    return q


class _MoreThuente:
    """The Moré–Thuente line search (MINPACK-2 ``dcsrch``) on ``phi(step) = f(x + step d)``.

    Built with ``phi(0)``, ``phi'(0) < 0`` and the first trial step; :meth:`next_step` takes
    ``phi`` and ``phi'`` at the trial step and returns the next trial step and a status: ``MORE``
    (evaluate it), ``DONE`` (the trial step is the result: both strong Wolfe conditions hold, or no
    further progress is possible and it is not uphill) or ``FAILED``.
    """

    XTRAPL = 1.1
    XTRAPU = 4.0

    def __init__(self, f0: float, g0: float, step: float):
        self.f0, self.g0 = f0, g0
        self.gtest = SUFFICIENT_DECREASE * g0
        self.bracketed = False
        self.stage = 1
        self.width = MAX_STEP
        self.width1 = 2.0 * MAX_STEP
        self.stx, self.fx, self.gx = 0.0, f0, g0  # the best step so far
        self.sty, self.fy, self.gy = 0.0, f0, g0  # the other end of the interval
        self.stmin, self.stmax = 0.0, step + self.XTRAPU * step

    def next_step(self, step: float, f: float, g: float) -> tuple[float, int]:
        ftest = self.f0 + step * self.gtest
        if not (np.isfinite(f) and np.isfinite(g)):
            # an overflowing trial step: treat it as a (very) high value and cut the step back
            f, g = np.inf, np.inf
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        if f <= ftest and abs(g) <= CURVATURE * -self.g0:
            return step, DONE
        if (
            self.bracketed
            and (
                step <= self.stmin
                or step >= self.stmax
                or self.stmax - self.stmin <= STEP_TOLERANCE * self.stmax
            )
        ) or step <= 0.0:
            # rounding errors prevent progress, or the interval is below the tolerance: dcsrch
            # returns this step (L-BFGS-B takes it whatever its value); here only if not uphill
            return step, DONE if f <= self.f0 else FAILED
        if step == MAX_STEP and f <= ftest and g <= self.gtest:
            return step, DONE
        if not np.isfinite(f):
            self.bracketed = True
            self.sty, self.fy, self.gy = step, f, g
            new = self.stx + 0.5 * (step - self.stx)
        elif self.stage == 1 and f <= self.fx and f > ftest:
            # the modified function psi(step) = phi(step) - phi(0) - ftol step phi'(0)
            stx, fxm, gxm, sty, fym, gym, new, self.bracketed = _dcstep(
                self.stx,
                self.fx - self.stx * self.gtest,
                self.gx - self.gtest,
                self.sty,
                self.fy - self.sty * self.gtest,
                self.gy - self.gtest,
                step,
                f - step * self.gtest,
                g - self.gtest,
                self.bracketed,
                self.stmin,
                self.stmax,
            )
            self.stx, self.sty = stx, sty
            self.fx, self.fy = fxm + stx * self.gtest, fym + sty * self.gtest
            self.gx, self.gy = gxm + self.gtest, gym + self.gtest
        else:
            (self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, new, self.bracketed) = _dcstep(
                self.stx,
                self.fx,
                self.gx,
                self.sty,
                self.fy,
                self.gy,
                step,
                f,
                g,
                self.bracketed,
                self.stmin,
                self.stmax,
            )
        if self.bracketed:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                new = self.stx + 0.5 * (self.sty - self.stx)  # force a sufficient shrink
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = new + self.XTRAPL * (new - self.stx)
            self.stmax = new + self.XTRAPU * (new - self.stx)
        if not np.isfinite(new):  # an infinite value in the interpolation: bisect instead
            new = self.stx + 0.5 * (self.sty - self.stx)
        new = min(max(new, 0.0), MAX_STEP)
        if self.bracketed and (
            new <= self.stmin
            or new >= self.stmax
            or self.stmax - self.stmin <= STEP_TOLERANCE * self.stmax
        ):
            new = self.stx
        return new, MORE


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2 ``dcstep`` (Moré & Thuente 1994): a safeguarded cubic/quadratic trial step and the
    updated interval ``[stx, sty]`` that contains a step with sufficient decrease and curvature.

    Returns ``(stx, fx, dx, sty, fy, dy, new_step, bracketed)``.
    """
    sgnd = np.sign(dp) * np.sign(dx)
    if fp > fx:  # higher value: the minimum is bracketed
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) <= abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:  # lower value, derivatives of opposite sign: bracketed
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):  # lower value, same sign, derivative decreases in magnitude
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * np.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = min(max(stpf, stpmin), stpmax)
    else:  # lower value, same sign, derivative does not decrease: extrapolate or use sty
        if brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = s * np.sqrt((theta / s) ** 2 - (dy / s) * (dp / s))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, float(stpf), brackt
