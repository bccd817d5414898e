"""Latent factor model SGD: validation here, the Hogwild epoch in C++ (``recforge._core``)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import resolve_n_threads
from .._validation import check_choice, check_csr_arrays, check_float, check_in_place, check_int
from .sgns import check_negative_weights

__all__ = ["LOSSES", "lfm_step", "lfm_train_epoch"]

#: Loss name → the kernel's code.
LOSSES = {"squared": 0, "logistic": 1, "bpr": 2}


def _factors(user_factors, item_factors, item_bias):
    for name, arr, ndim in (
        ("user_factors", user_factors, 2),
        ("item_factors", item_factors, 2),
        ("item_bias", item_bias, 1),
    ):
        check_in_place(arr, name, np.float32, ndim)
    if user_factors.shape[1] != item_factors.shape[1]:
        raise ValueError(
            f"user_factors {user_factors.shape} and item_factors {item_factors.shape} must have the "
            "same number of factors"
        )
    if item_bias.shape != (item_factors.shape[0],):
        raise ValueError(
            f"item_bias must have shape ({item_factors.shape[0]},), got {item_bias.shape}"
        )
    return user_factors.shape[0], item_factors.shape[0]


def _hyper(loss, lr, reg_user, reg_item, reg_bias):
    return (
        LOSSES[check_choice(loss, "loss", LOSSES)],
        check_float(lr, "lr", min_value=0.0),
        check_float(reg_user, "reg_user", min_value=0.0),
        check_float(reg_item, "reg_item", min_value=0.0),
        check_float(reg_bias, "reg_bias", min_value=0.0),
    )


def lfm_train_epoch(
    pos_users,
    pos_items,
    touched_indptr,
    touched_indices,
    neg_weights,
    user_factors,
    item_factors,
    item_bias,
    *,
    loss="bpr",
    lr=0.05,
    reg_user=0.01,
    reg_item=0.01,
    reg_bias=0.01,
    fit_bias=False,
    n_negatives=1,
    n_steps=None,
    seed=0,
    n_threads=1,
):
    """One Hogwild SGD epoch of the latent factor model, updating the factors in place.

    Each of ``n_steps`` steps picks a positive ``(pos_users[r], pos_items[r])`` uniformly at random;
    negatives are drawn with probability proportional to ``neg_weights`` among the items the user
    has not touched (``touched_*``, redrawn up to 16 times). See :mod:`recforge._reference.lfm` for
    the losses and the update.

    Parameters
    ----------
    pos_users, pos_items : ndarray (n_pos,), int32
        The positive (user, item) pairs.
    touched_indptr : ndarray (n_users + 1,), int64
    touched_indices : ndarray (nnz,), int32
        CSR rows (sorted) of every item each user touched: never sampled as their negatives.
    neg_weights : ndarray (n_items,), float64
        Unnormalised negative-sampling probabilities (e.g. popularity).
    user_factors : ndarray (n_users, n_factors), float32, writeable, C-contiguous
    item_factors : ndarray (n_items, n_factors), float32, writeable, C-contiguous
    item_bias : ndarray (n_items,), float32, writeable (used only if ``fit_bias``)
    loss : {"squared", "logistic", "bpr"}
    lr, reg_user, reg_item, reg_bias : float >= 0
    fit_bias : bool
    n_negatives : int >= 1
        Negatives per positive for the pointwise losses (BPR uses one per step).
    n_steps : int, default ``n_pos``
    seed : int >= 0
    n_threads : int

    Returns
    -------
    mean_loss : float
        Mean loss of the terms seen in the epoch (before each step; regularisation excluded).
    n_skipped : int
        Negatives given up on because every draw hit an item the user touched.

    Examples
    --------
    >>> uf = np.full((2, 4), 0.1, np.float32); itf = np.full((3, 4), 0.1, np.float32)
    >>> b = np.zeros(3, np.float32)
    >>> ptr, ind = np.array([0, 1, 2]), np.array([0, 1], np.int32)
    >>> loss, skipped = lfm_train_epoch(np.array([0, 1], np.int32), ind, ptr, ind, np.ones(3), uf, itf, b)
    >>> skipped
    0
    """
    n_users, n_items = _factors(user_factors, item_factors, item_bias)
    code, lr, reg_user, reg_item, reg_bias = _hyper(loss, lr, reg_user, reg_item, reg_bias)
    pos_users = np.ascontiguousarray(pos_users, dtype=np.int32)
    pos_items = np.ascontiguousarray(pos_items, dtype=np.int32)
    if pos_users.ndim != 1 or pos_users.shape != pos_items.shape:
        raise ValueError("pos_users and pos_items must be 1-D arrays of the same length")
    if pos_users.size and (pos_users.min() < 0 or pos_users.max() >= n_users):
        raise ValueError(f"pos_users must be in [0, {n_users})")
    if pos_items.size and (pos_items.min() < 0 or pos_items.max() >= n_items):
        raise ValueError(f"pos_items must be in [0, {n_items})")
    touched_indptr, touched_indices, _ = check_csr_arrays(
        touched_indptr, touched_indices, touched_indices, (n_users, n_items), "touched_indptr"
    )
    touched_indptr = np.ascontiguousarray(touched_indptr)
    touched_indices = np.ascontiguousarray(touched_indices, dtype=np.int32)
    neg_weights = check_negative_weights(neg_weights, n_items)
    n_steps = len(pos_users) if n_steps is None else check_int(n_steps, "n_steps", min_value=0)
    loss_sum, n_terms, n_skipped = _core.lfm_train_epoch(
        pos_users,
        pos_items,
        n_steps,
        touched_indptr,
        touched_indices,
        neg_weights,
        user_factors,
        item_factors,
        item_bias,
        code,
        lr,
        reg_user,
        reg_item,
        reg_bias,
        bool(fit_bias),
        check_int(n_negatives, "n_negatives", min_value=1),
        check_int(seed, "seed", min_value=0, max_value=2**64 - 1),
        resolve_n_threads(n_threads),
    )
    return (loss_sum / n_terms if n_terms else float("nan")), int(n_skipped)


def lfm_step(
    user_factors,
    item_factors,
    item_bias,
    u,
    i,
    j=-1,
    label=1.0,
    *,
    loss="bpr",
    lr=0.05,
    reg_user=0.01,
    reg_item=0.01,
    reg_bias=0.01,
    fit_bias=False,
):
    """One SGD step in place: pointwise on ``(u, i, label)`` or BPR on ``(u, i, j)``. Returns the loss before it."""
    n_users, n_items = _factors(user_factors, item_factors, item_bias)
    code, lr, reg_user, reg_item, reg_bias = _hyper(loss, lr, reg_user, reg_item, reg_bias)
    u = check_int(u, "u", min_value=0, max_value=n_users - 1)
    i = check_int(i, "i", min_value=0, max_value=n_items - 1)
    j = check_int(j, "j", min_value=-1, max_value=n_items - 1)
    if loss == "bpr" and j < 0:
        raise ValueError("loss='bpr' needs a negative item j")
    return _core.lfm_step(
        user_factors,
        item_factors,
        item_bias,
        u,
        i,
        j,
        check_float(label, "label"),
        code,
        lr,
        reg_user,
        reg_item,
        reg_bias,
        bool(fit_bias),
    )
