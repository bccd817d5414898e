"""Latent factor model SGD: validation here, the Hogwild epoch in C++ (``recforge._core``).

A fit checks its data and builds the sampler once (:class:`LfmSampler`), then runs one
:meth:`LfmSampler.epoch` per epoch."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import resolve_n_threads
from .._validation import check_choice, check_csr_arrays, check_float, check_in_place, check_int
from .sgns import aligned_vectors, check_negative_weights

__all__ = ["LOSSES", "LfmSampler", "lfm_initial_factors", "lfm_step", "lfm_train_epoch"]

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


def _touched_check(touched_bits) -> int:
    """The kernel's code of LfmSampler's ``touched_bits``: -1 automatic, 0 search, 1 bit matrix."""
    if touched_bits is None:
        return -1
    if not isinstance(touched_bits, (bool, np.bool_)):
        raise TypeError(f"touched_bits must be None or a bool, got {type(touched_bits).__name__}")
    return int(touched_bits)


class LfmSampler:
    """What the epochs of one fit sample from, checked once: positives, touched rows, negatives.

    Every epoch of a fit draws from the same positives and negative weights; checking them and
    building the negative sampler (and the touched-item bit matrix, when it is small) once per fit
    instead of once per epoch is a large share of a short epoch. The arrays are held, not copied:
    they must not change while the sampler lives.

    Parameters
    ----------
    pos_users, pos_items : ndarray (n_pos,), int32
        The positive (user, item) pairs.
    touched_indptr : ndarray (n_users + 1,), int64
    touched_indices : ndarray (nnz,), int32
        CSR rows (sorted) of every item each user touched: never sampled as their negatives.
    neg_weights : ndarray (n_items,), float64
        Unnormalised negative-sampling probabilities (e.g. popularity).
    n_users, n_items : int
    touched_bits : bool or None, default None
        How a negative is checked against the user's touched items: a bit matrix (``True``) or a
        binary search of the row (``False``); ``None`` takes the bit matrix while it is no larger
        than the touched lists (or 1 MiB). The answers, hence the factors, are the same.

    Examples
    --------
    >>> uf = np.full((2, 4), 0.1, np.float32); itf = np.full((3, 4), 0.1, np.float32)
    >>> b = np.zeros(3, np.float32)
    >>> ptr, ind = np.array([0, 1, 2]), np.array([0, 1], np.int32)
    >>> sampler = LfmSampler(np.array([0, 1], np.int32), ind, ptr, ind, np.ones(3), 2, 3)
    >>> loss, skipped = sampler.epoch(uf, itf, b, lr=0.1, seed=0)
    >>> skipped
    0
    """

    def __init__(
        self,
        pos_users,
        pos_items,
        touched_indptr,
        touched_indices,
        neg_weights,
        n_users,
        n_items,
        *,
        touched_bits=None,
    ):
        self.n_users = check_int(n_users, "n_users", min_value=0)
        self.n_items = check_int(n_items, "n_items", min_value=1)
        pos_users = np.ascontiguousarray(pos_users, dtype=np.int32)
        pos_items = np.ascontiguousarray(pos_items, dtype=np.int32)
        if pos_users.ndim != 1 or pos_users.shape != pos_items.shape:
            raise ValueError("pos_users and pos_items must be 1-D arrays of the same length")
        if pos_users.size and (pos_users.min() < 0 or pos_users.max() >= self.n_users):
            raise ValueError(f"pos_users must be in [0, {self.n_users})")
        if pos_items.size and (pos_items.min() < 0 or pos_items.max() >= self.n_items):
            raise ValueError(f"pos_items must be in [0, {self.n_items})")
        touched_indptr, touched_indices, _ = check_csr_arrays(
            touched_indptr,
            touched_indices,
            touched_indices,
            (self.n_users, self.n_items),
            "touched_indptr",
        )
        self.n_pos = len(pos_users)
        self._core = _core.LfmSampler(
            pos_users,
            pos_items,
            np.ascontiguousarray(touched_indptr),
            np.ascontiguousarray(touched_indices, dtype=np.int32),
            check_negative_weights(neg_weights, self.n_items),
            self.n_users,
            _touched_check(touched_bits),
        )

    def epoch(
        self,
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
        """One Hogwild SGD epoch, updating the factors in place.

        Each of ``n_steps`` steps picks a positive uniformly at random; negatives are drawn with
        probability proportional to ``neg_weights`` among the items the user has not touched
        (redrawn up to 16 times). See :mod:`recforge._reference.lfm` for the losses and the update.

        Parameters
        ----------
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
        """
        n_users, n_items = _factors(user_factors, item_factors, item_bias)
        if (n_users, n_items) != (self.n_users, self.n_items):
            raise ValueError(
                f"user_factors and item_factors have {n_users} and {n_items} rows; the sampler's "
                f"data has {self.n_users} users and {self.n_items} items"
            )
        code, lr, reg_user, reg_item, reg_bias = _hyper(loss, lr, reg_user, reg_item, reg_bias)
        n_steps = self.n_pos if n_steps is None else check_int(n_steps, "n_steps", min_value=0)
        loss_sum, n_terms, n_skipped = self._core.epoch(
            user_factors,
            item_factors,
            item_bias,
            n_steps,
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


def lfm_train_epoch(
    pos_users,
    pos_items,
    touched_indptr,
    touched_indices,
    neg_weights,
    user_factors,
    item_factors,
    item_bias,
    **epoch_params,
):
    """One epoch on a sampler of its own: ``LfmSampler(pos_users, ..., neg_weights, n_users,
    n_items).epoch(user_factors, item_factors, item_bias, **epoch_params)``, the numbers of users
    and items taken from the factors (see :class:`LfmSampler`; a fit of many epochs builds the
    sampler once).

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
    sampler = LfmSampler(
        pos_users, pos_items, touched_indptr, touched_indices, neg_weights, n_users, n_items
    )
    return sampler.epoch(user_factors, item_factors, item_bias, **epoch_params)


def lfm_initial_factors(n_rows, n_factors, init_std, seed, n_threads=1):
    """(n_rows, n_factors) float32 uniform on ±√3·init_std/√n_factors (standard deviation
    init_std/√n_factors), drawn in C++ from ``seed`` (the same values for any ``n_threads``).

    The array starts on a cache line (:func:`~recforge.kernels.sgns.aligned_vectors`): with 64
    factors a row is four lines, not five, and no two rows share one (less traffic per step, no
    false sharing between Hogwild threads).

    Examples
    --------
    >>> f = lfm_initial_factors(1000, 4, 0.1, seed=0)
    >>> f.shape, f.dtype, bool(np.abs(f).max() <= np.sqrt(3) * 0.1 / 2), f.ctypes.data % 64
    ((1000, 4), dtype('float32'), True, 0)
    """
    n_rows = check_int(n_rows, "n_rows", min_value=0)
    n_factors = check_int(n_factors, "n_factors", min_value=1)
    init_std = check_float(init_std, "init_std", min_value=0.0)
    out = aligned_vectors(n_rows, n_factors)
    half_width = np.sqrt(3.0) * init_std / np.sqrt(n_factors)
    _core.lfm_initial_factors(
        out,
        half_width,
        check_int(seed, "seed", min_value=0, max_value=2**64 - 1),
        resolve_n_threads(n_threads),
    )
    return out


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
