"""LFM: a latent factor model for implicit feedback trained by Hogwild SGD (squared, logistic or BPR loss)."""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from .._validation import (
    check_choice,
    check_float,
    check_int,
    check_random_state,
    sampling_weights,
)
from ..data import Interactions
from ..io import ModelArrays
from ..kernels._csr import csr_kernel_arrays
from ..kernels.lfm import LOSSES, LfmSampler, lfm_initial_factors
from ._embedding import EmbeddingRecall

__all__ = ["LFM"]

#: the least ridge term per unit of history weight in the fold-in of a new user
FOLD_IN_MIN_REG = 1e-3


class LFM(EmbeddingRecall):
    """Latent factor model: score(u, i) = p_u · q_i (+ b_i), learned by SGD on implicit feedback.

    The course formulation is ``loss="squared"``: the user's interactions with weight ≥ ``threshold``
    are positives (label 1), each paired with ``n_negatives`` items the user never touched, drawn
    with probability ∝ popularity ** ``neg_exponent`` (label 0); the loss
    ``Σ ½(label − p_u·q_i)² + ½α1‖p_u‖² + ½α2‖q_i‖²`` is minimised by SGD with a learning rate
    decaying by ``learning_rate_decay`` per epoch. ``loss="logistic"`` uses the log-loss on the same
    samples, ``loss="bpr"`` the pairwise ``−log σ(s_ui − s_uj)`` (Rendle et al. 2009). Each epoch
    makes one step per positive, picked uniformly at random (Hogwild over ``n_threads``).

    Parameters
    ----------
    n_factors : int, default 64
    loss : {"bpr", "logistic", "squared"}, default "bpr"
    epochs : int, default 60
    learning_rate : float, default 0.05
    learning_rate_decay : float in (0, 1], default 0.97
        Epoch ``e`` uses ``learning_rate * learning_rate_decay ** e``.
    reg_user, reg_item : float, default 0.01
        α1 and α2 (L2 on the factors a step touches).
    reg_bias : float, default 0.01
    item_bias : bool, default True
        Learn a bias per item (ignored, i.e. off, for ``loss="squared"``: the course formula has none).
    n_negatives : int, default 1
        Negatives per positive for the pointwise losses.
    neg_exponent : float, default 0.5
        Negatives are drawn ∝ (popularity + 1) ** neg_exponent (0 = uniform; the course's choice is 1,
        0.5 measures better on MovieLens).
    threshold : float or None, default None
        Interactions with weight ≥ threshold are positives (``None``: all of them). Every interaction,
        positive or not, is excluded from the user's negatives.
    init_std : float, default 0.1
        Factors start uniform on a symmetric interval with standard deviation
        init_std / √n_factors (uniform draws cost a fifth of normal ones, a large share of a short fit).
    validation_fraction : float in [0, 1), default 0.0
        Hold out this fraction of the positives to measure a sampled AUC after each epoch.
    n_iter_no_change : int, default 5
        With a validation split: stop when the AUC has not improved for this many epochs and keep
        the best epoch's factors.
    n_threads : int or None, default None
    random_state : int or None
    verbose : bool, default False
        tqdm progress bar over epochs (with the loss).

    Attributes
    ----------
    user_factors_ : ndarray (n_users, n_factors), float32
    item_factors_ : ndarray (n_items, n_factors), float32
    item_bias_ : ndarray (n_items,), float32 (zeros when not learned)
    loss_history_ : list of float
        Mean training loss of each epoch (before each step; regularisation excluded).
    validation_auc_ : list of float
        Sampled validation AUC per epoch (empty without a validation split).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.recall import LFM
    >>> m = sp.csr_matrix(np.kron(np.eye(2), np.ones((20, 5))), dtype=np.float32)  # 2 blocks
    >>> model = LFM(n_factors=4, epochs=30, n_threads=1, random_state=0).fit(m)
    >>> bool(set(model.recommend(0, k=3, filter_seen=False)[0]) <= {0, 1, 2, 3, 4})
    True
    """

    def __init__(
        self,
        *,
        n_factors=64,
        loss="bpr",
        epochs=60,
        learning_rate=0.05,
        learning_rate_decay=0.97,
        reg_user=0.01,
        reg_item=0.01,
        reg_bias=0.01,
        item_bias=True,
        n_negatives=1,
        neg_exponent=0.5,
        threshold=None,
        init_std=0.1,
        validation_fraction=0.0,
        n_iter_no_change=5,
        n_threads=None,
        random_state=None,
        verbose=False,
    ):
        self.n_factors = n_factors
        self.loss = loss
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.reg_bias = reg_bias
        self.item_bias = item_bias
        self.n_negatives = n_negatives
        self.neg_exponent = neg_exponent
        self.threshold = threshold
        self.init_std = init_std
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int(self.n_factors, "n_factors", min_value=1)
        check_choice(self.loss, "loss", set(LOSSES))
        check_int(self.epochs, "epochs", min_value=1)
        check_float(self.learning_rate, "learning_rate", min_value=0.0, min_inclusive=False)
        check_float(
            self.learning_rate_decay,
            "learning_rate_decay",
            min_value=0.0,
            max_value=1.0,
            min_inclusive=False,
        )
        for name in ("reg_user", "reg_item", "reg_bias", "init_std"):
            check_float(getattr(self, name), name, min_value=0.0)
        if not isinstance(self.item_bias, (bool, np.bool_)):
            raise TypeError(f"item_bias must be a bool, got {type(self.item_bias).__name__}")
        check_int(self.n_negatives, "n_negatives", min_value=1)
        check_float(self.neg_exponent, "neg_exponent")
        if self.threshold is not None:
            check_float(self.threshold, "threshold")
        check_float(
            self.validation_fraction,
            "validation_fraction",
            min_value=0.0,
            max_value=1.0,
            max_inclusive=False,
        )
        check_int(self.n_iter_no_change, "n_iter_no_change", min_value=1)
        check_random_state(self.random_state)

    def fit(self, interactions, *, callback=None):
        """Learn the factors. ``callback(model, epoch, mean_loss)`` runs after each epoch (the model's
        ``user_factors_``/``item_factors_``/``item_bias_`` are then the factors being trained); returning
        ``True`` stops. Returns ``self``."""
        return super().fit(interactions, callback=callback)

    def _fit(self, data: Interactions, *, callback=None) -> None:
        matrix = data.matrix
        rng = check_random_state(self.random_state)
        n_users, n_items, k = data.n_users, data.n_items, int(self.n_factors)
        users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(matrix.indptr))
        items = matrix.indices.astype(np.int32, copy=False)
        if self.threshold is not None:
            keep = matrix.data >= float(self.threshold)
            users, items = users[keep], items[keep]
        if len(users) == 0:
            raise ValueError(f"no interaction has weight >= threshold={self.threshold}")
        val_users = val_items = None
        if self.validation_fraction > 0:
            held = rng.random(len(users)) < float(self.validation_fraction)
            val_users, val_items = users[held], items[held]
            users, items = users[~held], items[~held]
            if len(users) == 0 or len(val_users) == 0:
                raise ValueError(
                    "validation_fraction leaves no training or no validation positives"
                )
        touched = np.diff(matrix.indptr)
        full = np.flatnonzero(touched >= n_items)
        full = full[np.isin(full, users)] if full.size else full
        if full.size:
            example = data.user_map.ids[full[0]].item()
            raise ValueError(
                f"LFM draws negatives among the items a user has not touched, but "
                f"{full.size} user(s) touched all {n_items} items (e.g. user "
                f"{example!r}); remove them or add items"
            )
        popularity = np.bincount(items, minlength=n_items).astype(np.float64)
        # +1: every item can be a negative
        neg_weights = sampling_weights(popularity + 1.0, self.neg_exponent, "neg_exponent")
        indptr, indices, _ = csr_kernel_arrays(matrix)
        sampler = LfmSampler(users, items, indptr, indices, neg_weights, n_users, n_items)
        n_threads = self._n_threads()
        uf, itf = (
            lfm_initial_factors(n, k, self.init_std, int(rng.integers(2**63)), n_threads)
            for n in (n_users, n_items)
        )
        bias = np.zeros(n_items, np.float32)
        fit_bias = bool(self.item_bias) and self.loss != "squared"
        self.loss_history_, self.validation_auc_ = [], []
        best = (-np.inf, None)
        since_best = 0
        epoch_iter = range(int(self.epochs))
        bar = progress_bar(self.verbose, epoch_iter, desc=f"LFM ({self.loss})", unit="epoch")
        for epoch in epoch_iter if bar is None else bar:
            lr = float(self.learning_rate) * float(self.learning_rate_decay) ** epoch
            mean_loss, _ = sampler.epoch(
                uf,
                itf,
                bias,
                loss=self.loss,
                lr=lr,
                reg_user=self.reg_user,
                reg_item=self.reg_item,
                reg_bias=self.reg_bias,
                fit_bias=fit_bias,
                n_negatives=self.n_negatives,
                seed=int(rng.integers(2**63)),
                n_threads=n_threads,
            )
            if not np.isfinite(mean_loss):
                raise FloatingPointError("LFM diverged (non-finite loss); lower learning_rate")
            self.loss_history_.append(float(mean_loss))
            if bar is not None:
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            if val_users is not None:
                auc = self._sampled_auc(uf, itf, bias, val_users, val_items, neg_weights, rng)
                self.validation_auc_.append(auc)
                if auc > best[0]:
                    best, since_best = (auc, (uf.copy(), itf.copy(), bias.copy())), 0
                else:
                    since_best += 1
                    if since_best >= int(self.n_iter_no_change):
                        uf, itf, bias = best[1]
                        break
            if callback is not None:
                self.user_factors_, self.item_factors_, self.item_bias_ = (
                    uf,
                    itf,
                    bias,
                )  # the live arrays
                if callback(self, epoch, float(mean_loss)) is True:
                    break
        self.user_factors_, self.item_factors_, self.item_bias_ = uf, itf, bias
        self._cache_unit_rows()

    @staticmethod
    def _sampled_auc(uf, itf, bias, users, items, neg_weights, rng) -> float:
        """P(score of a held-out positive > score of a popularity-sampled item), one negative per positive."""
        neg = rng.choice(len(neg_weights), size=len(users), p=neg_weights / neg_weights.sum())
        pos_s = np.einsum("ij,ij->i", uf[users], itf[items]) + bias[items]
        neg_s = np.einsum("ij,ij->i", uf[users], itf[neg]) + bias[neg]
        return float(np.mean(pos_s > neg_s) + 0.5 * np.mean(pos_s == neg_s))

    # ---- scoring ---------------------------------------------------------------------------------
    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _target_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _target_bias(self) -> np.ndarray:
        return self.item_bias_

    def _user_queries(self, user_idx):
        return self.user_factors_[user_idx]

    def _fold_in(self, item_idx, weights) -> np.ndarray:
        """p minimising Σ w_i (1 − b_i − p·q_i)² + reg_user·Σw ‖p‖² (item factors fixed).

        Solved on the smaller side: the (k, k) normal equations, or, for a history shorter than
        ``n_factors``, the (h, h) system of ``p = Qᵀ W (Q Qᵀ W + λI)⁻¹ t`` (the same p), so memory
        stays O(min(h, k)²) whatever ``n_factors``.
        """
        k = self.item_factors_.shape[1]
        if len(item_idx) == 0:
            return np.zeros(k, np.float32)
        q = self.item_factors_[item_idx].astype(np.float64)
        w = weights.astype(np.float64)
        target = 1.0 - self.item_bias_[item_idx].astype(np.float64)
        lam = max(float(self.reg_user), FOLD_IN_MIN_REG) * max(w.sum(), 1.0)
        if len(item_idx) >= k:
            a = (q * w[:, None]).T @ q + lam * np.eye(k)
            return np.linalg.solve(a, q.T @ (w * target)).astype(np.float32)
        a = (q @ q.T) * w[None, :] + lam * np.eye(len(item_idx))
        return (q.T @ (w * np.linalg.solve(a, target))).astype(np.float32)

    def _history_query(self, item_idx, weights):
        return self._fold_in(item_idx, weights)

    # ---- state -----------------------------------------------------------------------------------
    def _get_state(self) -> dict:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
        }

    def _set_state(self, arrays: ModelArrays) -> None:
        k = int(self.n_factors)
        for name, n in (("user_factors", self.n_users_), ("item_factors", self.n_items_)):
            setattr(self, f"{name}_", arrays.take(name, ndim=2, shape=(n, k), dtype=np.float32))
        self.item_bias_ = arrays.take("item_bias", shape=(self.n_items_,), dtype=np.float32)
        self._cache_unit_rows()
        bias = float(np.abs(self.item_bias_).max(initial=0.0))
        arrays.check_products("user_factors", "item_factors", offset=bias)
        # a fold-in vector (recommend_from_history) has norm <= max|q| (1 + bias) / FOLD_IN_MIN_REG
        arrays.check_products(
            "item_factors", "item_factors", offset=bias, scale=(1.0 + bias) / FOLD_IN_MIN_REG
        )
