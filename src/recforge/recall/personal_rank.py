"""PersonalRank: random walk with restart from the user on the user–item bipartite graph."""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from .._progress import progress_bar
from .._validation import check_choice, check_float, check_int
from ..data import Interactions
from . import _personal_rank_solvers as solvers
from ._personal_rank_solvers import WalkGraph
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
        Iterations of ``"iterate"`` (steps of the recurrence) and ``"cg"``; a ``ConvergenceWarning`` says when
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
        """The walk graph; the solvers' factorisations are computed on first use."""
        self._graph = WalkGraph.from_matrix(matrix, self.use_weights)
        self._lu = None
        self._direct = None

    # ---- the walk -------------------------------------------------------------------------------
    def _resolved_method(self) -> str:
        if self.method != "auto":
            return self.method
        return "direct" if min(self._graph.to_users.shape) <= DIRECT_MAX_SIDE else "cg"

    def _walk(self, x0: np.ndarray, start_on_items: bool) -> np.ndarray:
        """Item part of ``r`` for the start vectors ``x0`` (n_users or n_items × B): (n_items, B) float64."""
        method = self._resolved_method()
        if method == "direct":
            return np.ascontiguousarray(self._direct_rows(x0.T, start_on_items).T)
        alpha = float(self.alpha)
        if method == "solve":
            if self._lu is None or self._lu[0] != alpha:
                self._lu = (alpha, solvers.sparse_lu(self._graph, alpha))
            return solvers.solve(self._graph, self._lu[1], x0, start_on_items, alpha)
        walk = functools.partial(
            solvers.conjugate_gradient if method == "cg" else solvers.iterate,
            self._graph,
            alpha=alpha,
            tol=float(self.tol),
            max_iter=int(self.max_iter),
            n_threads=self._n_threads(),
        )
        n_cols = x0.shape[1]
        chunk = WALK_CACHE_BYTES // (8 * max(self._graph.to_users.shape))
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

    def _direct_rows(
        self, x0: np.ndarray, start_on_items: bool, start_nodes: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact item scores (B, n_items) float64 for the start rows ``x0`` (B, n_users or n_items) (class Notes).

        ``start_nodes`` (int, (B,)), when given, says that row ``j`` of ``x0`` is the indicator of that node.
        """
        alpha = float(self.alpha)
        if self._direct is None or self._direct[0] != alpha:  # computed once per alpha
            self._direct = (alpha, solvers.direct_inverse(self._graph, alpha, self._n_threads()))
        return solvers.direct_rows(
            self._graph, self._direct[1], x0, start_on_items, alpha, self._n_threads(), start_nodes
        )

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
