"""Logistic regression: L-BFGS on a C++ loss+gradient kernel (l2 / no penalty), FTRL-proximal for
l1 / elastic-net with ``partial_fit`` on streams."""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._progress import progress_bar
from .._threads import limit_blas_threads, resolve_n_threads
from .._validation import check_choice, check_float, check_int, check_random_state
from ..exceptions import ConvergenceWarning
from ..io import ModelArrays
from ..kernels import logistic as K
from ._base import (
    Ranker,
    available_if,
    check_binary_target,
    check_sample_weight,
    check_training_controls,
    class_weight_factors,
)
from ._lbfgs import minimize_lbfgs


class LogisticRegression(Ranker):
    r"""Binary logistic regression for CTR prediction, on CSR or dense features.

    Minimises the weighted mean log-loss plus the penalty, scaled as in scikit-learn (so the same
    ``C`` gives the same model):

    .. math::

        \frac{1}{S}\sum_i s_i\,\ell(y_i, x_i^\top w + b) + \frac{1}{C S}\,\Omega(w),\qquad
        S = \sum_i s_i,\quad
        \Omega = \tfrac12\lVert w\rVert_2^2 \;(\text{l2}),\; \lVert w\rVert_1 \;(\text{l1}),\;
        \rho\lVert w\rVert_1 + \tfrac{1-\rho}{2}\lVert w\rVert_2^2 \;(\text{elasticnet},\ \rho=\text{l1\_ratio})

    where :math:`s_i` is the sample weight times the class weight. The intercept is not penalised.

    Solvers:

    * ``"lbfgs"`` (penalty ``"l2"`` or None): L-BFGS (:mod:`recforge.rank._lbfgs`: the iteration,
      Moré–Thuente line search and stopping rules of scipy's L-BFGS-B, which scikit-learn's
      ``lbfgs`` runs) on a fused C++ kernel that computes loss and gradient in one parallel pass
      over the rows (deterministic for any ``n_threads``; see :mod:`recforge.kernels.linear`).
    * ``"ftrl"`` (any penalty; the default for ``"l1"``/``"elasticnet"``): FTRL-proximal
      (McMahan et al. 2013, "Ad Click Prediction: a View from the Trenches"), per-coordinate
      adaptive learning rates ``alpha / (beta + sqrt(sum g^2))``, exact zeros from the L1 term.
      Each epoch is one sequential pass in a random order from ``random_state``; with
      :math:`\lambda_1 = \rho / C`, :math:`\lambda_2 = (1-\rho)/C` applied to the cumulative loss of
      all rows seen, scaled by the epoch number in ``fit`` so that several epochs approach the batch
      objective above (in ``partial_fit`` every row counts once, as in a stream).

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", None}, default "l2"
    C : float > 0, default 1.0
        Inverse regularisation strength.
    l1_ratio : float in [0, 1], default 0.5
        Share of L1 in the elastic-net penalty (``penalty="elasticnet"`` only).
    fit_intercept : bool, default True
    solver : {"auto", "lbfgs", "ftrl"}, default "auto"
        ``"auto"``: L-BFGS for l2/None, FTRL for l1/elasticnet.
    tol : float > 0, default 1e-4
        L-BFGS: stop when the largest gradient component is below ``tol`` (scipy's ``gtol``).
        FTRL: stop when an epoch lowers the mean training log-loss by less than ``tol`` (relative).
    max_iter : int >= 1, default 100
        L-BFGS iterations, or FTRL epochs.
    class_weight : None, "balanced" or dict, default None
    alpha, beta : float > 0, default 0.1, 1.0
        FTRL learning-rate parameters.
    early_stopping_rounds : int >= 1, optional
        Stop when the log-loss on the first ``eval_set`` has not improved for this many iterations
        (epochs for FTRL) and keep the best weights (``best_iteration_``).
    callback : callable, optional
        ``callback(info)`` after every iteration/epoch with a dict ``iteration, train_loss, eval_loss``;
        returning True stops the fit.
    encoder : FeatureEncoder, optional
        Encode raw columns (e.g. a DataFrame) inside the model: ``fit`` fits a copy of it
        (``encoder_``), every predict method applies it, ``save``/``load`` store it. When None, a
        DataFrame with non-numeric (string, category) columns gets a default ``FeatureEncoder()``
        the same way; numeric input is used as it is.
    random_state : int, Generator or None, default None
        Row order of the FTRL epochs.
    n_threads : int, optional
        Threads of the loss/gradient kernel (None = all cores); at most one per million stored
        entries of X, since smaller problems run faster on one. Results do not depend on it.
    verbose : bool, default False
        Progress bar over iterations.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features), float64
    intercept_ : ndarray of shape (1,), float64
    classes_ : ndarray of shape (2,)
    n_iter_ : ndarray of shape (1,), int32
        Iterations (L-BFGS) or epochs (FTRL) run.
    evals_result_ : list of float
        Log-loss on the first ``eval_set`` after each iteration (empty without ``eval_set``).
    best_iteration_ : int or None
    n_features_in_ : int
    timings_ : dict
        Seconds spent in ``solver`` (and ``encode`` when the model embeds an encoder).

    Examples
    --------
    >>> from recforge.datasets import adult
    >>> from recforge.features import FeatureEncoder
    >>> from recforge.metrics import roc_auc_score
    >>> from recforge.rank import LogisticRegression
    >>> data = adult()
    >>> model = LogisticRegression(C=0.3, encoder=FeatureEncoder(n_bins=20)).fit(data.X_train, data.y_train)
    >>> auc = roc_auc_score(data.y_test, model.predict_proba(data.X_test)[:, 1])
    >>> bool(auc > 0.905)
    True
    """

    _auto_encoder = True

    def __init__(
        self,
        *,
        penalty="l2",
        C=1.0,
        l1_ratio=0.5,
        fit_intercept=True,
        solver="auto",
        tol=1e-4,
        max_iter=100,
        class_weight=None,
        alpha=0.1,
        beta=1.0,
        early_stopping_rounds=None,
        callback=None,
        encoder=None,
        random_state=None,
        n_threads=None,
        verbose=False,
    ):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.alpha = alpha
        self.beta = beta
        self.early_stopping_rounds = early_stopping_rounds
        self.callback = callback
        self.encoder = encoder
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------
    def _validate_params(self):
        if self.penalty not in ("l2", "l1", "elasticnet", None):
            raise ValueError(
                f"penalty must be 'l2', 'l1', 'elasticnet' or None, got {self.penalty!r}"
            )
        check_float(self.C, "C", min_value=0.0, min_inclusive=False)
        check_float(self.l1_ratio, "l1_ratio", min_value=0.0, max_value=1.0)
        check_choice(self.solver, "solver", {"auto", "lbfgs", "ftrl"})
        check_float(self.tol, "tol", min_value=0.0, min_inclusive=False)
        check_int(self.max_iter, "max_iter", min_value=1)
        check_float(self.alpha, "alpha", min_value=0.0, min_inclusive=False)
        check_float(self.beta, "beta", min_value=0.0)
        check_training_controls(self, "fit_intercept")
        if self._solver() == "lbfgs" and self.penalty in ("l1", "elasticnet"):
            raise ValueError(
                f"solver='lbfgs' supports penalty 'l2' or None, got penalty={self.penalty!r}; "
                "use solver='ftrl' (or 'auto')"
            )

    def _solver(self) -> str:
        if self.solver != "auto":
            return self.solver
        return "ftrl" if self.penalty in ("l1", "elasticnet") else "lbfgs"

    def _penalties(self) -> tuple[float, float]:
        """(l1, l2) strengths relative to the summed loss: the objective times S."""
        C = float(self.C)
        if self.penalty is None:
            return 0.0, 0.0
        if self.penalty == "l2":
            return 0.0, 1.0 / C
        if self.penalty == "l1":
            return 1.0 / C, 0.0
        rho = float(self.l1_ratio)
        return rho / C, (1.0 - rho) / C

    # ------------------------------------------------------------------------------------------
    def _fit(self, X, y, sw, evals):
        self.timings_ = {}
        self.evals_result_ = []
        self.best_iteration_ = None
        n_threads = _threads_that_pay(resolve_n_threads(self.n_threads), X)
        start = time.perf_counter()
        # BLAS in the L-BFGS updates works on vectors of n_features: its threads only spin and steal
        # the cores our kernel threads need (2-4x slower fits on a busy machine), so cap them at 1.
        with limit_blas_threads(1):
            if self._solver() == "lbfgs":
                self._fit_lbfgs(X, y, sw, evals, n_threads)
            else:
                self._fit_ftrl(X, y, sw, evals, n_threads, epochs=int(self.max_iter), reset=True)
        self.timings_["solver"] = time.perf_counter() - start
        self._check_finite_weights()

    def _check_finite_weights(self):
        if not (np.all(np.isfinite(self.coef_)) and np.all(np.isfinite(self.intercept_))):
            raise FloatingPointError(
                "LogisticRegression diverged (non-finite weights); rescale "
                "the features or sample_weight, or lower alpha (FTRL)"
            )

    def _fit_lbfgs(self, X, y, sw, evals, n_threads):
        n, d = X.shape
        S = float(sw.sum())
        _, l2 = self._penalties()
        lam = l2 / S  # objective = mean loss + lam/2 |w|^2
        n_chunks = K.n_chunks_for(n, d)
        bounds = K.chunk_bounds(n, n_chunks)
        partial = np.empty((n_chunks, d + 1))
        fit_b = bool(self.fit_intercept)
        csr = sp.issparse(X)
        pattern = csr and K.all_ones(X.data)  # one-hot: the kernel skips the value stream
        indices = K.narrow_indices(X.indices, d) if csr else None
        losses = np.empty(n_chunks)
        _core.reset_team_health()  # (a busy spell of an earlier fit sends no eval margins solo)

        def fun(theta):
            w = np.ascontiguousarray(theta[:d])
            b = float(theta[d]) if fit_b else 0.0
            if pattern:
                K.loss_grad_pattern_chunks(
                    X.indptr, indices, y, sw, w, b, bounds, partial, losses, n_threads
                )
            elif csr:
                K.loss_grad_csr_chunks(
                    X.indptr, indices, X.data, y, sw, w, b, bounds, partial, losses, n_threads
                )
            else:
                K.loss_grad_dense_chunks(X, y, sw, w, b, bounds, partial, losses, n_threads)
            grad = partial.sum(axis=0)  # rows added in chunk order: independent of the threads
            loss = float(np.sum(losses)) / S + 0.5 * lam * float(w @ w)
            g = grad / S
            g[:d] += lam * w
            if not fit_b:
                g[d] = 0.0
            return loss, g

        state = {"best": np.inf, "best_theta": None, "since": 0, "stopped": False}
        bar = progress_bar(self.verbose, total=int(self.max_iter), desc="LR L-BFGS", leave=False)

        def on_iteration(iteration, theta, train_loss):
            info = {"iteration": iteration, "train_loss": train_loss, "eval_loss": None}
            if evals:
                info["eval_loss"] = self._eval_loss(
                    evals[0], theta[:d], theta[d] if fit_b else 0.0, n_threads
                )
                self.evals_result_.append(info["eval_loss"])
                if info["eval_loss"] < state["best"] - 1e-12:
                    state.update(best=info["eval_loss"], best_theta=theta.copy(), since=0)
                    self.best_iteration_ = iteration
                else:
                    state["since"] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.5f}")
            stop = self.callback is not None and bool(self.callback(info))
            if (
                self.early_stopping_rounds is not None
                and evals
                and state["since"] >= self.early_stopping_rounds
            ):
                stop = True
            state["stopped"] = stop
            return stop

        try:
            res = minimize_lbfgs(
                fun,
                np.zeros(d + 1),
                tol=float(self.tol),
                max_iter=int(self.max_iter),
                callback=on_iteration,
            )
        finally:
            K.release_pass_inputs()  # (no helper thread of a pass reads the arrays after the fit)
            if bar is not None:
                bar.close()
        theta = res.x
        if self.early_stopping_rounds is not None and state["best_theta"] is not None:
            theta = state["best_theta"]
        if not res.converged and not state["stopped"] and res.n_iter >= int(self.max_iter):
            warnings.warn(
                f"L-BFGS did not converge in max_iter={self.max_iter} iterations (tol={self.tol}); "
                "increase max_iter or scale the features",
                ConvergenceWarning,
                stacklevel=4,
            )
        self.coef_ = theta[:d].reshape(1, d).copy()
        self.intercept_ = np.array([theta[d] if fit_b else 0.0])
        self.n_iter_ = np.array([res.n_iter], dtype=np.int32)

    # ------------------------------------------------------------------------------------------
    def _fit_ftrl(
        self, X, y, sw, evals, n_threads, *, epochs: int, reset: bool, scale_by_epoch: bool = True
    ):
        from ..kernels import linear as ftrl  # Numba: loaded by the FTRL path only

        n, d = X.shape
        if reset or not hasattr(self, "_ftrl_z"):
            self._ftrl_z = np.zeros(d + 1)
            self._ftrl_n = np.zeros(d + 1)
            self._ftrl_epochs = 0
        elif self._ftrl_z.shape[0] != d + 1:
            raise ValueError(
                f"X has {d} features, but the model was trained on {self._ftrl_z.shape[0] - 1}"
            )
        rng = check_random_state(self.random_state)
        l1, l2 = self._penalties()
        alpha, beta = float(self.alpha), float(self.beta)
        fit_b = bool(self.fit_intercept)
        csr = sp.issparse(X)
        S = float(sw.sum())
        best, best_state, since, prev = np.inf, None, 0, np.inf
        bar = progress_bar(self.verbose and epochs > 1, total=epochs, desc="LR FTRL", leave=False)
        it = 0
        try:
            for it in range(1, epochs + 1):
                self._ftrl_epochs += 1
                scale = self._ftrl_epochs if scale_by_epoch else 1.0
                order = (
                    rng.permutation(n).astype(np.int64)
                    if epochs > 1
                    else np.arange(n, dtype=np.int64)
                )
                epoch = ftrl.ftrl_epoch_csr if csr else ftrl.ftrl_epoch_dense
                total = epoch(
                    *((X.indptr, X.indices, X.data) if csr else (X,)),
                    y,
                    sw,
                    order,
                    self._ftrl_z,
                    self._ftrl_n,
                    alpha,
                    beta,
                    l1 * scale,
                    l2 * scale,
                    fit_b,
                )
                self._ftrl_l_scale = scale
                self._set_ftrl_weights(l1 * scale, l2 * scale)
                train_loss = total / S
                info = {"iteration": it, "train_loss": train_loss, "eval_loss": None}
                if evals:
                    info["eval_loss"] = self._eval_loss(
                        evals[0], self.coef_[0], self.intercept_[0], n_threads
                    )
                    self.evals_result_.append(info["eval_loss"])
                    if info["eval_loss"] < best - 1e-12:
                        best, since, self.best_iteration_ = info["eval_loss"], 0, it
                        best_state = (self.coef_.copy(), self.intercept_.copy())
                    else:
                        since += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{train_loss:.5f}")
                if self.callback is not None and bool(self.callback(info)):
                    break
                if (
                    self.early_stopping_rounds is not None
                    and evals
                    and since >= self.early_stopping_rounds
                ):
                    break
                if (
                    epochs > 1
                    and np.isfinite(prev)
                    and prev - train_loss < float(self.tol) * abs(prev)
                ):
                    break
                prev = train_loss
        finally:
            if bar is not None:
                bar.close()
        if self.early_stopping_rounds is not None and best_state is not None:
            self.coef_, self.intercept_ = best_state
        self.n_iter_ = np.array([it], dtype=np.int32)

    def _set_ftrl_weights(self, l1, l2):
        from ..kernels import linear as ftrl  # Numba: loaded by the FTRL path only

        d = self._ftrl_z.shape[0] - 1
        out = np.empty(d + 1)
        ftrl.ftrl_weights(
            self._ftrl_z, self._ftrl_n, float(self.alpha), float(self.beta), l1, l2, out
        )
        self.coef_ = out[:d].reshape(1, d)
        self.intercept_ = np.array([out[d] if self.fit_intercept else 0.0])

    @available_if(lambda self: self._solver() == "ftrl")
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One FTRL-proximal pass over a batch of a stream (rows in the given order); returns ``self``.

        The first call needs ``classes`` (the two labels) unless the model is already fitted. Each
        call continues from the current state: ``z`` and the squared-gradient sums of every
        coordinate (McMahan et al. 2013). Exists only for the FTRL solver (``solver="ftrl"``, or
        ``"auto"`` with an l1/elasticnet penalty); otherwise ``hasattr(model, "partial_fit")`` is False.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_rows, n_features)
            With ``encoder`` set, the encoder is fitted on the first batch only.
        y : array-like of shape (n_rows,)
        classes : array-like of shape (2,), optional
        sample_weight : array-like of shape (n_rows,), optional
        """
        first = not hasattr(self, "classes_")
        if first:
            self._validate_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            classes = np.unique(np.asarray(classes))
            if classes.size != 2:
                raise ValueError(f"classes must hold exactly 2 labels, got {classes.tolist()}")
            Xm = self._prepare_X(X, reset=True)
            self.classes_ = classes
            self.evals_result_, self.best_iteration_, self.timings_ = [], None, {}
        else:
            if classes is not None and not np.array_equal(
                np.unique(np.asarray(classes)), self.classes_
            ):
                raise ValueError(
                    f"classes {list(classes)} differ from the first call's {self.classes_.tolist()}"
                )
            Xm = self._prepare_X(X, reset=False)
        _, y01 = check_binary_target(y, Xm.shape[0], classes=self.classes_)
        sw = check_sample_weight(sample_weight, Xm.shape[0])
        if self.class_weight is not None:
            sw = sw * class_weight_factors(self.class_weight, self.classes_, y01, sw)
        self._fit_ftrl(Xm, y01, sw, [], 1, epochs=1, reset=first, scale_by_epoch=False)
        self._check_finite_weights()
        return self

    # ------------------------------------------------------------------------------------------
    def _eval_loss(self, ev, w, b, n_threads=1) -> float:
        Xe, ye, swe = ev
        z = _margins(Xe, w, b, n_threads)
        loss = np.logaddexp(0.0, z) - ye * z
        return float((swe * loss).sum() / swe.sum())

    def _decision(self, X) -> np.ndarray:
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model has {self.coef_.shape[1]}"
            )
        n_threads = _threads_that_pay(resolve_n_threads(self.n_threads), X)
        return _margins(X, self.coef_[0], float(self.intercept_[0]), n_threads)

    def _get_state(self):
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "n_iter": self.n_iter_}
        if hasattr(self, "_ftrl_z"):
            arrays.update(ftrl_z=self._ftrl_z, ftrl_n=self._ftrl_n)
        meta = {"ftrl_epochs": int(getattr(self, "_ftrl_epochs", 0))}
        return arrays, meta

    def _set_state(self, arrays, meta):
        arrays = ModelArrays.of(arrays)
        # the width of the inputs: the encoder's output, else n_features_in_ (a composite model
        # that sets n_features_in_ afterwards checks the width itself)
        encoder = getattr(self, "encoder_", None)
        width = (
            encoder.n_features_out_
            if encoder is not None
            else getattr(self, "n_features_in_", None)
        )
        self.coef_ = arrays.take("coef", ndim=2, shape=(1, width), dtype=np.float64)
        d = self.coef_.shape[1]
        self.intercept_ = arrays.take("intercept", shape=(1,), dtype=np.float64)
        self.n_iter_ = arrays.take("n_iter", kinds="iu", shape=(1,), dtype=np.int32, min_value=0)
        if "ftrl_z" in arrays or "ftrl_n" in arrays:
            self._ftrl_z = arrays.take("ftrl_z", shape=(d + 1,), dtype=np.float64)
            self._ftrl_n = arrays.take("ftrl_n", shape=(d + 1,), dtype=np.float64, min_value=0.0)
            self._ftrl_epochs = check_int(
                meta.get("ftrl_epochs", 0), "the record's ftrl_epochs", min_value=0
            )
        self.evals_result_, self.best_iteration_ = [], None


def _margins(X, w, b, n_threads=1) -> np.ndarray:
    """float64 ``X @ w + b`` through the C++ kernels (no float64 copy of a float32 X), on up to
    ``n_threads`` threads."""
    w = np.ascontiguousarray(w, dtype=np.float64)
    b = float(b)
    n = X.shape[0]
    out = np.empty(n)
    if sp.issparse(X):
        K.margins_csr(X.indptr, X.indices, X.data, w, b, 0, n, out, n_threads)
    else:
        K.margins_dense(X, w, b, 0, n, out, n_threads)
    return out


#: stored entries per thread below which extra threads cost more than they save (the loss/gradient
#: passes run their row chunks on takeover helpers, the margins on the C++ thread team: a hand-off
#: of microseconds):
#: Adult's 650k entries run on 2 threads, a one-row request on 1
MIN_ENTRIES_PER_THREAD = 100_000


def _threads_that_pay(n_threads: int, X) -> int:
    entries = X.nnz if sp.issparse(X) else X.shape[0] * X.shape[1]
    return max(1, min(n_threads, entries // MIN_ENTRIES_PER_THREAD))
