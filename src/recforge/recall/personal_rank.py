"""PersonalRank: random walk with restart from the user on the user–item bipartite graph."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from .._progress import progress_bar
from .._threads import limit_blas_threads, numba_threads
from .._validation import check_choice, check_float, check_int
from ..data import Interactions
from ..kernels._csr import csr_kernel_arrays
from ..kernels.personal_rank import (
    accumulate_active,
    column_dots,
    half_step,
    half_step_pattern,
    rows_times_csr,
)
from .base import RecallModel

#: ``"iterate"`` / ``"cg"`` advance as many start columns at once as fit this many bytes per side vector
#: (a multiple of 4): the random row gathers then hit the CPU cache. On the 160k × 60k × 20M set, 12 columns
#: cost ~3.2 ms per column and half-step against ~10 ms with 64 columns at once.
WALK_CACHE_BYTES = 16 * 2**20

#: ``method="auto"`` takes ``"direct"`` when the smaller side of the graph has at most this many nodes
#: (its dense inverse: 8·n² bytes, 134 MB at 4096), else ``"cg"``.
DIRECT_MAX_SIDE = 4096


class PersonalRank(RecallModel):
    """Personalised PageRank on the bipartite user–item graph.

    Nodes are the users and the items; an interaction ``(u, i)`` with weight ``w`` (1 when
    ``use_weights=False``) links them both ways. ``M`` is the row-stochastic transition matrix
    (``M[a, b] = w(a, b) / Σ_c w(a, c)``). The stationary vector of the walk that goes on with
    probability ``alpha`` and jumps back to the start ``r0`` otherwise solves::

        r = α Mᵀ r + (1 − α) r0        ⇔        (I − α Mᵀ) r = (1 − α) r0

    and a user's score of item ``i`` is ``r[i]`` with ``r0`` = the user's indicator.

    Parameters
    ----------
    alpha : float in (0, 1), default 0.8
        Probability of walking on.
    method : {"auto", "direct", "cg", "iterate", "solve"}, default "auto"
        ``"direct"``: exact, from the two-step system of the smaller side ``S`` of the graph (users or items,
        ``n_S`` nodes; see Notes), whose dense ``n_S × n_S`` inverse is computed once (LAPACK Cholesky;
        ``O(n_S³)`` time, ``8·n_S²`` bytes) and reused by every query: a query then costs one sparse product.
        ``"auto"``: ``"direct"`` when ``n_S <= DIRECT_MAX_SIDE`` (4096), else ``"cg"``.
        ``"iterate"``: the recurrence above from ``r = (1 − α) r0``, for a block of users at once
        (Numba: sparse transitions × dense block, parallel over rows), each user until the L1 change
        of its ``r`` is below ``tol``. The graph is bipartite, so each step only moves the newest term
        ``(αMᵀ)^t r0`` from one side to the other. ``"solve"``: factorise ``I − α Mᵀ`` once (scipy
        SuperLU) and solve for many users; exact, but the factorisation does not scale to large graphs.
        ``"cg"``: the same fixed point by conjugate gradients on the symmetrised two-step system of the
        start side (see Notes), same kernels and blocks; 2.5–5× fewer steps than ``"iterate"`` at α = 0.8.
        ``"iterate"`` and ``"cg"`` walk a few start columns at a time (``WALK_CACHE_BYTES``).
    tol : float > 0, default 1e-8
        L1 convergence threshold: of the change of ``r`` (``"iterate"``), of the residual of the
        two-step system (``"cg"``). Not used by the exact methods.
    max_iter : int >= 1, default 500
        Iterations of ``"iterate"`` (steps of the recurrence) and ``"cg"``; a ``RuntimeWarning`` says when
        a start did not converge.
    use_weights : bool, default False
        Edge weights from the interaction weights (e.g. ratings) instead of 1.
    n_threads : int or None, default None
        Threads of the Numba kernels and of BLAS/LAPACK in ``"direct"`` (``None`` = all available cores).
        Results do not depend on it.
    verbose : bool, default False
        A progress bar over the column blocks of ``"iterate"`` / ``"cg"`` walks (large graphs, where
        each block takes seconds).

    Notes
    -----
    ``recommend_from_history`` starts the walk at a new user linked to the history items (weights
    ``weights``); the graph is not changed, so the walk never returns to that user.
    ``similar_items`` starts the walk at the query item.

    The graph is bipartite: two steps from a user side vector ``x`` give ``G x`` with
    ``G = α² T_IU T_UI`` (``T`` = the transition blocks of ``Mᵀ``), and the item scores of a user
    start are ``(1 − α) α T_UI y`` with ``(I − G) y = r0``. ``G`` is similar to a symmetric PSD matrix
    with eigenvalues in ``[0, α²]``: ``G = D^½ K D^-½`` with ``K`` symmetric (``D`` = the degrees of the
    start side), so ``I − K`` is symmetric positive definite with condition number at most ``1/(1 − α²)``.
    Conjugate gradients on it converge at least by ``(√κ − 1)/(√κ + 1)`` per two steps (0.25 at α = 0.8
    against α² = 0.64 for the plain recurrence), and faster in practice: the top eigenvalue ``α²`` of
    ``G`` (the degree vector) is isolated, and CG adapts to the rest of the spectrum.

    ``"direct"`` solves the same two-step system exactly on the smaller side ``S`` (the other side is
    ``O``): with ``Z = (I − G_S)⁻¹`` and ``A = α T_SO``, ``B = α T_OS`` (so ``G_S = BA``), the item scores are
    ``(1 − α)·{Z x0, Z B x0, A Z x0, x0 + A Z B x0}`` for a start on ``S`` or ``O`` and items on ``S`` or ``O``
    (the last from ``(I − AB)⁻¹ = I + A (I − BA)⁻¹ B``), and ``Z = D^½ (I − K)⁻¹ D^-½`` comes from one
    Cholesky factorisation.
    On MovieLens ml-latest-small ``S`` is the 610 users.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from recforge.recall import PersonalRank
    >>> m = sp.csr_matrix([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype="float32")
    >>> PersonalRank().fit(m).recommend(0, k=2)[0].tolist()
    [2, 3]
    """

    def __init__(
        self,
        *,
        alpha: float = 0.8,
        method: str = "auto",
        tol: float = 1e-8,
        max_iter: int = 500,
        use_weights: bool = False,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.alpha = alpha
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.use_weights = use_weights
        self.n_threads = n_threads
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        a = check_float(self.alpha, "alpha", min_value=0.0, max_value=1.0)
        if not 0.0 < a < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {a}")
        check_choice(self.method, "method", {"auto", "direct", "cg", "iterate", "solve"})
        if check_float(self.tol, "tol", min_value=0.0) <= 0:
            raise ValueError(f"tol must be > 0, got {self.tol}")
        check_int(self.max_iter, "max_iter", min_value=1)

    def _fit(self, data: Interactions) -> None:
        self._build(data.matrix)

    def _set_state(self, arrays: dict) -> None:
        self._build(self.user_items_)

    def _build(self, matrix: sp.csr_matrix) -> None:
        """Transition matrices of the two half-steps, and the scipy LU for ``method="solve"``."""
        w = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        if not self.use_weights:
            w.data[:] = 1.0
        user_deg = np.asarray(w.sum(axis=1)).ravel()
        item_deg = np.asarray(w.sum(axis=0)).ravel()
        inv_u = np.divide(1.0, user_deg, out=np.zeros_like(user_deg), where=user_deg > 0)
        inv_i = np.divide(1.0, item_deg, out=np.zeros_like(item_deg), where=item_deg > 0)
        # user → item probabilities, stored by destination item: (n_items × n_users)
        self._to_items = sp.csr_matrix(sp.diags(inv_u) @ w).T.tocsr()
        # item → user probabilities, stored by destination user: (n_users × n_items)
        self._to_users = sp.csr_matrix(w @ sp.diags(inv_i))
        for m in (self._to_items, self._to_users):
            m.sort_indices()
        self._degrees = (user_deg, item_deg)
        # per direction (True: users → items): CSR kernel arrays and 1 / deg(source) for the unweighted kernel
        self._steps = {
            True: (csr_kernel_arrays(self._to_items, np.float64), inv_u),
            False: (csr_kernel_arrays(self._to_users, np.float64), inv_i),
        }
        self._lu = None
        self._direct = None

    def _propagate(self, to_items: bool, src: np.ndarray, dst: np.ndarray) -> None:
        """``dst = α T src`` for one half-step (users → items or back); ``src``, ``dst``: (n, B) float64."""
        (indptr, indices, data), inv_deg = self._steps[to_items]
        alpha = float(self.alpha)
        if self.use_weights:
            half_step(indptr, indices, data, src, dst, alpha)
        else:  # every weight is 1 / deg(source): scale the sources once instead of streaming the weights
            half_step_pattern(indptr, indices, src * (alpha * inv_deg)[:, None], dst)

    # ---- the walk -------------------------------------------------------------------------------
    def _resolved_method(self) -> str:
        if self.method != "auto":
            return self.method
        return "direct" if min(self._to_users.shape) <= DIRECT_MAX_SIDE else "cg"

    def _walk(self, x0: np.ndarray, start_on_items: bool) -> np.ndarray:
        """Item part of ``r`` for the start vectors ``x0`` (n_users or n_items × B): (n_items, B) float64."""
        method = self._resolved_method()
        if method == "direct":
            return np.ascontiguousarray(self._direct_rows(x0.T, start_on_items).T)
        if method == "solve":
            return self._solve(x0, start_on_items)
        walk = self._conjugate_gradient if method == "cg" else self._iterate
        n_cols = x0.shape[1]
        chunk = WALK_CACHE_BYTES // (8 * max(self._to_users.shape))
        chunk = max(1, chunk - chunk % 4 if chunk >= 4 else chunk)  # whole SIMD vectors per row
        if n_cols <= chunk:
            return walk(x0, start_on_items)
        # columns are independent walks: a few at a time keeps the gathered block in the CPU cache
        starts = range(0, n_cols, chunk)
        if self.verbose:
            starts = progress_bar(
                True, starts, desc=f"PersonalRank {method}", unit="block", leave=False
            )
        return np.hstack(
            [walk(np.ascontiguousarray(x0[:, c : c + chunk]), start_on_items) for c in starts]
        )

    def _iterate(self, x0: np.ndarray, start_on_items: bool) -> np.ndarray:
        """The plain recurrence (``method="iterate"``) for the start columns ``x0``: (n_items, B) float64."""
        alpha, tol = float(self.alpha), float(self.tol)
        n_users, n_items = self._to_users.shape
        n_cols = x0.shape[1]
        scores = np.zeros((n_items, n_cols), np.float64)
        active = np.ones(n_cols, np.uint8)
        xu = np.zeros((n_users, n_cols), np.float64)
        xi = np.zeros((n_items, n_cols), np.float64)
        on_items = start_on_items
        if on_items:
            xi[:] = x0
        else:
            xu[:] = x0
        with numba_threads(self._n_threads()):
            for step in range(int(self.max_iter) + 1):
                if step > 0:  # x_t = α Mᵀ x_{t-1}: the mass changes side
                    if on_items:
                        self._propagate(False, xi, xu)
                    else:
                        self._propagate(True, xu, xi)
                    on_items = not on_items
                x = xi if on_items else xu
                if on_items:
                    accumulate_active(scores, xi, 1.0 - alpha, active)
                change = (1.0 - alpha) * x.sum(axis=0)  # L1 change of r (every term is >= 0)
                active &= (change >= tol).astype(np.uint8)
                if not active.any():
                    return scores
        warnings.warn(
            f"PersonalRank did not converge to tol={tol} within max_iter={self.max_iter} iterations "
            f"for {int(active.sum())} start node(s); raise max_iter or tol",
            RuntimeWarning,
            stacklevel=3,
        )
        return scores

    def _conjugate_gradient(self, x0: np.ndarray, start_on_items: bool) -> np.ndarray:
        """Conjugate gradients on the symmetrised two-step system of the start side (class Notes).

        Solves ``(I − K) ỹ = D^-½ x0`` per column (``K = D^-½ G D^½``, ``D`` = the start side's degrees),
        then ``y = D^½ ỹ``; a column stops when the L1 norm of its residual ``D^½ r̃`` is below ``tol``.
        Returns the item scores (n_items, B) float64.
        """
        alpha, tol = float(self.alpha), float(self.tol)
        n_users, n_items = self._to_users.shape
        user_deg, item_deg = self._degrees
        deg = item_deg if start_on_items else user_deg
        sqrt_deg = np.sqrt(np.where(deg > 0, deg, 1.0))[:, None]
        n_side, n_other = (n_items, n_users) if start_on_items else (n_users, n_items)
        n_cols = x0.shape[1]
        other = np.empty((n_other, n_cols), np.float64)
        g_p = np.empty((n_side, n_cols), np.float64)
        y = np.zeros((n_side, n_cols), np.float64)
        r = np.ascontiguousarray(x0, dtype=np.float64) / sqrt_deg
        p = r.copy()
        rr = column_dots(r, r)
        active = np.ones(n_cols, bool)
        with numba_threads(self._n_threads()):
            for _ in range(int(self.max_iter)):
                self._propagate(not start_on_items, p * sqrt_deg, other)
                self._propagate(start_on_items, other, g_p)
                q = p - g_p / sqrt_deg  # (I − K) p
                pq = column_dots(p, q)
                step = np.divide(rr, pq, out=np.zeros(n_cols), where=active & (pq > 0))
                y += step * p
                r -= step * q
                active &= np.abs(r * sqrt_deg).sum(axis=0) >= tol
                if not active.any():
                    break
                rr_next = column_dots(r, r)
                p *= np.divide(rr_next, rr, out=np.zeros(n_cols), where=rr > 0)
                p += r
                rr = rr_next
            else:
                warnings.warn(
                    f"PersonalRank did not converge to tol={tol} within max_iter={self.max_iter} "
                    f"iterations for {int(active.sum())} start node(s); raise max_iter or tol",
                    RuntimeWarning,
                    stacklevel=3,
                )
            y *= sqrt_deg
            if start_on_items:
                return (1.0 - alpha) * y
            scores = np.empty((n_items, n_cols), np.float64)
            self._propagate(True, y, scores)
        return (1.0 - alpha) * scores

    def _direct_inverse(self):
        """The side ``S``, ``Zᵀ`` (n_S, n_S) float64 (``Z = (I − G_S)⁻¹``) and the outgoing transitions.

        Computed once. The transitions are CSR kernel arrays stored by source node (``T_SOᵀ``: S → O,
        ``T_OSᵀ``: O → S) for :func:`rows_times_csr`.
        """
        if self._direct is None or self._direct[0] != float(self.alpha):
            from scipy.linalg import lapack

            alpha = float(self.alpha)
            n_users, n_items = self._to_users.shape
            on_users = n_users <= n_items
            user_deg, item_deg = self._degrees
            deg_s, deg_o = (user_deg, item_deg) if on_users else (item_deg, user_deg)
            into_s, into_o = (
                (self._to_users, self._to_items) if on_users else (self._to_items, self._to_users)
            )
            sqrt_s = np.sqrt(np.where(deg_s > 0, deg_s, 1.0))
            # into_s[s, o] = w(s, o) / deg(o); b b'ᵀ = D^-½ W D_O⁻¹ Wᵀ D^-½ = K / α², symmetric
            b = sp.csr_matrix(sp.diags(1.0 / sqrt_s) @ into_s @ sp.diags(np.sqrt(deg_o)))
            a = (b @ b.T).toarray()
            a *= -alpha * alpha
            a[np.diag_indices_from(a)] += 1.0
            # small factorisations are faster on one BLAS thread than waking a pool of them
            with limit_blas_threads(1 if len(a) < 1024 else self._n_threads()):
                chol, info = lapack.dpotrf(a, lower=1, overwrite_a=1)
                if info == 0:
                    inv, info = lapack.dpotri(chol, lower=1, overwrite_c=1)
            if info != 0:
                raise np.linalg.LinAlgError(
                    f"PersonalRank: Cholesky inverse of I - K failed (LAPACK info={info})"
                )
            inv = np.tril(inv)
            inv += np.tril(inv, -1).T  # dpotri fills the lower triangle only
            inv /= sqrt_s[:, None]  # Zᵀ = D^-½ (I − K)⁻¹ D^½
            inv *= sqrt_s[None, :]

            def outgoing(into):
                m = into.T.tocsr()
                m.sort_indices()
                return csr_kernel_arrays(m, np.float64)

            self._direct = (alpha, on_users, inv, outgoing(into_o), outgoing(into_s))
        return self._direct[1:]

    def _direct_rows(
        self, x0: np.ndarray, start_on_items: bool, start_nodes: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact item scores (B, n_items) float64 for the start rows ``x0`` (B, n_users or n_items) (class Notes).

        ``start_nodes`` (int, (B,)), when given, says that row ``j`` of ``x0`` is the indicator of that node.
        """
        alpha = float(self.alpha)
        on_users, z_t, s_to_o, o_to_s = self._direct_inverse()
        start_on_s = start_on_items != on_users
        n_rows = x0.shape[0]
        x0 = np.ascontiguousarray(x0, np.float64)
        with numba_threads(self._n_threads()):
            if start_on_s and start_nodes is not None:  # rows of Yᵀ = X Zᵀ
                y = z_t[start_nodes]
            else:
                if not start_on_s:
                    bx = np.empty((n_rows, z_t.shape[0]), np.float64)
                    rows_times_csr(x0, *o_to_s, alpha, bx)
                with limit_blas_threads(self._n_threads()):
                    y = (x0 if start_on_s else bx) @ z_t
            if not on_users:  # the items are S
                y *= 1.0 - alpha
                return y
            scores = np.empty((n_rows, self._to_items.shape[0]), np.float64)
            rows_times_csr(np.ascontiguousarray(y), *s_to_o, alpha, scores)
        if not start_on_s:
            scores += x0
        scores *= 1.0 - alpha
        return scores

    def _solve(self, x0: np.ndarray, start_on_items: bool) -> np.ndarray:
        n_users, n_items = self._to_users.shape
        if self._lu is None or self._lu[0] != float(self.alpha):
            from scipy.sparse.linalg import splu

            # Mᵀ in node order (users, items): block [[0, to_users], [to_items, 0]]
            mt = sp.bmat([[None, self._to_users], [self._to_items, None]], format="csc")
            a = (sp.identity(n_users + n_items, format="csc") - float(self.alpha) * mt).tocsc()
            self._lu = (float(self.alpha), splu(a))
        rhs = np.zeros((n_users + n_items, x0.shape[1]), np.float64)
        if start_on_items:
            rhs[n_users:] = x0
        else:
            rhs[:n_users] = x0
        r = self._lu[1].solve((1.0 - float(self.alpha)) * rhs)
        return r[n_users:]

    # ---- contract hooks -------------------------------------------------------------------------
    def _score_rows(
        self, x0: np.ndarray, start_on_items: bool, start_nodes: np.ndarray | None = None
    ) -> np.ndarray:
        """Item scores (B, n_items) float32 for the start rows ``x0`` (B, n_users or n_items) float64."""
        if self._resolved_method() == "direct":
            return self._direct_rows(x0, start_on_items, start_nodes).astype(np.float32)
        return np.ascontiguousarray(
            self._walk(np.ascontiguousarray(x0.T), start_on_items).T, dtype=np.float32
        )

    def _score_users(self, user_idx):
        x0 = np.zeros((len(user_idx), self.n_users_), np.float64)
        x0[np.arange(len(user_idx)), user_idx] = 1.0
        return self._score_rows(x0, False, user_idx)

    def _score_history(self, item_idx, weights):
        total = float(weights.sum()) if len(item_idx) else 0.0
        if total <= 0:
            return np.zeros(self.n_items_, np.float32)
        # the new user's first step: α · w_i / Σw onto the history items
        x0 = np.zeros((1, self.n_items_), np.float64)
        np.add.at(x0[0], item_idx, float(self.alpha) * weights.astype(np.float64) / total)
        return self._score_rows(x0, True)[0]

    def _score_similar(self, item_idx):
        x0 = np.zeros((len(item_idx), self.n_items_), np.float64)
        x0[np.arange(len(item_idx)), item_idx] = 1.0
        return self._score_rows(x0, True, item_idx)
