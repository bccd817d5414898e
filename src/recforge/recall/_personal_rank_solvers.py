"""PersonalRank's solvers as plain functions of the walk graph (the estimator picks one and caches).

Every solver returns the item part of the stationary vector ``r`` of
``r = α Mᵀ r + (1 − α) r0`` (see :class:`~recforge.recall.PersonalRank` for the maths).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._threads import limit_blas_threads, numba_threads
from ..exceptions import ConvergenceWarning
from ..kernels._csr import csr_kernel_arrays
from ..kernels.personal_rank import (
    accumulate_active,
    column_dots,
    half_step,
    half_step_pattern,
    rows_times_csr,
)


@dataclass(frozen=True)
class WalkGraph:
    """The two half-step transition blocks of ``Mᵀ`` on the user–item graph.

    ``to_items``: user → item probabilities stored by destination item, (n_items, n_users) float64
    CSR; ``to_users``: item → user, (n_users, n_items). ``degrees``: (user_deg (n_users,),
    item_deg (n_items,)) float64. ``steps[True]`` / ``steps[False]`` (users → items / back): the
    CSR kernel arrays and 1 / deg(source) for the unweighted kernel.
    """

    to_items: sp.csr_matrix
    to_users: sp.csr_matrix
    degrees: tuple[np.ndarray, np.ndarray]
    steps: dict
    use_weights: bool

    @classmethod
    def from_matrix(cls, matrix: sp.csr_matrix, use_weights: bool) -> WalkGraph:
        """The graph of the (n_users, n_items) interaction matrix (weights 1 unless ``use_weights``)."""
        w = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        if not use_weights:
            w.data[:] = 1.0
        user_deg = np.asarray(w.sum(axis=1)).ravel()
        item_deg = np.asarray(w.sum(axis=0)).ravel()
        inv_u = np.divide(1.0, user_deg, out=np.zeros_like(user_deg), where=user_deg > 0)
        inv_i = np.divide(1.0, item_deg, out=np.zeros_like(item_deg), where=item_deg > 0)
        to_items = sp.csr_matrix(sp.diags(inv_u) @ w).T.tocsr()
        to_users = sp.csr_matrix(w @ sp.diags(inv_i))
        for m in (to_items, to_users):
            m.sort_indices()
        steps = {
            True: (csr_kernel_arrays(to_items, np.float64), inv_u),
            False: (csr_kernel_arrays(to_users, np.float64), inv_i),
        }
        return cls(to_items, to_users, (user_deg, item_deg), steps, bool(use_weights))

    def propagate(self, to_items: bool, src: np.ndarray, dst: np.ndarray, alpha: float) -> None:
        """``dst = α T src`` for one half-step (users → items or back); ``src``, ``dst``: (n, B) float64."""
        (indptr, indices, data), inv_deg = self.steps[to_items]
        if self.use_weights:
            half_step(indptr, indices, data, src, dst, alpha)
        else:  # every weight is 1 / deg(source): scale the sources once instead of streaming the weights
            half_step_pattern(indptr, indices, src * (alpha * inv_deg)[:, None], dst)


def _not_converged(tol, max_iter, n_left):
    warnings.warn(
        f"PersonalRank did not converge to tol={tol} within max_iter={max_iter} iterations "
        f"for {n_left} start node(s); raise max_iter or tol",
        ConvergenceWarning,
        stacklevel=4,  # the caller of PersonalRank._walk
    )


def iterate(
    graph: WalkGraph,
    x0: np.ndarray,
    start_on_items: bool,
    alpha: float,
    tol: float,
    max_iter: int,
    n_threads: int,
) -> np.ndarray:
    """The plain recurrence (``method="iterate"``) for the start columns ``x0``: (n_items, B) float64."""
    n_users, n_items = graph.to_users.shape
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
    with numba_threads(n_threads):
        for step in range(max_iter + 1):
            if step > 0:  # x_t = α Mᵀ x_{t-1}: the mass changes side
                if on_items:
                    graph.propagate(False, xi, xu, alpha)
                else:
                    graph.propagate(True, xu, xi, alpha)
                on_items = not on_items
            x = xi if on_items else xu
            if on_items:
                accumulate_active(scores, xi, 1.0 - alpha, active)
            change = (1.0 - alpha) * x.sum(axis=0)  # L1 change of r (every term is >= 0)
            active &= (change >= tol).astype(np.uint8)
            if not active.any():
                return scores
    _not_converged(tol, max_iter, int(active.sum()))
    return scores


def conjugate_gradient(
    graph: WalkGraph,
    x0: np.ndarray,
    start_on_items: bool,
    alpha: float,
    tol: float,
    max_iter: int,
    n_threads: int,
) -> np.ndarray:
    """Conjugate gradients on the symmetrised two-step system of the start side (PersonalRank Notes).

    Solves ``(I − K) ỹ = D^-½ x0`` per column (``K = D^-½ G D^½``, ``D`` = the start side's degrees),
    then ``y = D^½ ỹ``; a column stops when the L1 norm of its residual ``D^½ r̃`` is below ``tol``.
    Returns the item scores (n_items, B) float64.
    """
    n_users, n_items = graph.to_users.shape
    user_deg, item_deg = graph.degrees
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
    with numba_threads(n_threads):
        for _ in range(max_iter):
            graph.propagate(not start_on_items, p * sqrt_deg, other, alpha)
            graph.propagate(start_on_items, other, g_p, alpha)
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
            _not_converged(tol, max_iter, int(active.sum()))
        y *= sqrt_deg
        if start_on_items:
            return (1.0 - alpha) * y
        scores = np.empty((n_items, n_cols), np.float64)
        graph.propagate(True, y, scores, alpha)
    return (1.0 - alpha) * scores


def direct_inverse(graph: WalkGraph, alpha: float, n_threads: int) -> tuple:
    """``(on_users, Zᵀ, T_SOᵀ, T_OSᵀ)`` for ``method="direct"`` (PersonalRank Notes).

    ``S`` is the smaller side (``on_users``: it is the users), ``Zᵀ`` (n_S, n_S) float64 with
    ``Z = (I − G_S)⁻¹``; the transitions are CSR kernel arrays stored by source node (``T_SOᵀ``:
    S → O, ``T_OSᵀ``: O → S) for :func:`rows_times_csr`.
    """
    from scipy.linalg import lapack

    n_users, n_items = graph.to_users.shape
    on_users = n_users <= n_items
    user_deg, item_deg = graph.degrees
    deg_s, deg_o = (user_deg, item_deg) if on_users else (item_deg, user_deg)
    into_s, into_o = (
        (graph.to_users, graph.to_items) if on_users else (graph.to_items, graph.to_users)
    )
    sqrt_s = np.sqrt(np.where(deg_s > 0, deg_s, 1.0))
    # into_s[s, o] = w(s, o) / deg(o); b b'ᵀ = D^-½ W D_O⁻¹ Wᵀ D^-½ = K / α², symmetric
    b = sp.csr_matrix(sp.diags(1.0 / sqrt_s) @ into_s @ sp.diags(np.sqrt(deg_o)))
    a = (b @ b.T).toarray()
    a *= -alpha * alpha
    a[np.diag_indices_from(a)] += 1.0
    # small factorisations are faster on one BLAS thread than waking a pool of them
    with limit_blas_threads(1 if len(a) < 1024 else n_threads):
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

    return on_users, inv, outgoing(into_o), outgoing(into_s)


def direct_rows(
    graph: WalkGraph,
    inverse: tuple,
    x0: np.ndarray,
    start_on_items: bool,
    alpha: float,
    n_threads: int,
    start_nodes: np.ndarray | None = None,
) -> np.ndarray:
    """Exact item scores (B, n_items) float64 for the start rows ``x0`` (B, n_users or n_items).

    ``inverse`` is :func:`direct_inverse`'s result. ``start_nodes`` (int, (B,)), when given, says
    that row ``j`` of ``x0`` is the indicator of that node.
    """
    on_users, z_t, s_to_o, o_to_s = inverse
    start_on_s = start_on_items != on_users
    n_rows = x0.shape[0]
    x0 = np.ascontiguousarray(x0, np.float64)
    with numba_threads(n_threads):
        if start_on_s and start_nodes is not None:  # rows of Yᵀ = X Zᵀ
            y = z_t[start_nodes]
        else:
            if not start_on_s:
                bx = np.empty((n_rows, z_t.shape[0]), np.float64)
                rows_times_csr(x0, *o_to_s, alpha, bx)
            with limit_blas_threads(n_threads):
                y = (x0 if start_on_s else bx) @ z_t
        if not on_users:  # the items are S
            y *= 1.0 - alpha
            return y
        scores = np.empty((n_rows, graph.to_items.shape[0]), np.float64)
        rows_times_csr(np.ascontiguousarray(y), *s_to_o, alpha, scores)
    if not start_on_s:
        scores += x0
    scores *= 1.0 - alpha
    return scores


def sparse_lu(graph: WalkGraph, alpha: float):
    """scipy SuperLU of ``I − α Mᵀ`` in node order (users, items), for :func:`solve`."""
    from scipy.sparse.linalg import splu

    n_users, n_items = graph.to_users.shape
    # Mᵀ in node order (users, items): block [[0, to_users], [to_items, 0]]
    mt = sp.bmat([[None, graph.to_users], [graph.to_items, None]], format="csc")
    return splu((sp.identity(n_users + n_items, format="csc") - alpha * mt).tocsc())


def solve(graph: WalkGraph, lu, x0: np.ndarray, start_on_items: bool, alpha: float) -> np.ndarray:
    """Exact item scores (n_items, B) float64 from :func:`sparse_lu`'s factorisation."""
    n_users = graph.to_users.shape[0]
    rhs = np.zeros((n_users + graph.to_items.shape[0], x0.shape[1]), np.float64)
    if start_on_items:
        rhs[n_users:] = x0
    else:
        rhs[:n_users] = x0
    r = lu.solve((1.0 - alpha) * rhs)
    return r[n_users:]
