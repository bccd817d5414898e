"""Item2Vec: word2vec (skip-gram or CBOW, negative sampling) over users' behaviour sequences."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

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
from ..io import ModelArrays, load_word2vec_format, save_word2vec_format
from ..kernels.sgns import aligned_vectors, keep_probabilities, sgns_train_epoch
from ._embedding import EmbeddingRecall

if TYPE_CHECKING:
    import scipy.sparse as sp
    from numpy.typing import ArrayLike

__all__ = ["Item2Vec", "load_word2vec_format", "save_word2vec_format"]


class Item2Vec(EmbeddingRecall):
    """Item embeddings learned by word2vec with negative sampling over item sequences (Barkan & Koenigstein 2016).

    Each user's items ordered by time form a "sentence" (or pass your own sessions to :meth:`fit`).
    The trainer is a Hogwild C++ word2vec: unigram^``ns_exponent`` negative table, frequent-item
    subsampling, random window shrink, linear learning-rate decay over all epochs.

    Parameters
    ----------
    vector_size : int, default 64
    window : int or "basket", default 10
        Maximum context distance (each position draws its window from 1..window), or ``"basket"``:
        every other item of the sequence is a context (a sequence is a set).
    negative : int, default 5
        Negatives per positive pair.
    algorithm : {"skipgram", "cbow"}, default "skipgram"
    shared_negatives : bool, default True
        Skip-gram: one set of negatives per window, its pairs updated as one block (pWord2Vec;
        faster, same quality as gensim in the tests); ``False`` trains pair by pair with negatives
        of their own, as word2vec and gensim do. CBOW ignores it.
    ns_exponent : float, default 0.0
        Negatives are drawn with probability ∝ count ** ns_exponent (word2vec/gensim use 0.75; 0, uniform
        negatives, keeps popularity in the output scores and measures better for recommendation).
    sample : float, default 1e-3
        Subsampling threshold of frequent items (0 disables it).
    epochs : int, default 30
    learning_rate, min_learning_rate : float, default 0.025, 0.0001
        Linear decay from the first to the second over all epochs.
    scoring : {"output", "cosine"}, default "output"
        How a history scores candidates. ``"output"``: the weighted mean of the history's item
        vectors dotted with each candidate's output vector (the model's own prediction of the next
        item, as in CBOW); ``"cosine"``: the weighted sum of the history's unit item vectors, cosine
        to each candidate (gensim's ``most_similar``, the usual item2vec recipe). ``similar_items``
        is always the cosine of item vectors.
    n_recent : int, default 10
        ``recommend`` scores by the user's last ``n_recent`` training items.
    recency_decay : float in (0, 1], default 0.8
        Weight of the item ``a`` steps before the last one: ``recency_decay ** a``.
    n_threads : int or None, default None
        Training and top-k threads (``None`` = all cores). Results are bit-identical for a seed at 1 thread.
    random_state : int or None
    verbose : bool, default False
        tqdm progress bar over epochs.

    Attributes
    ----------
    item_vectors_ : ndarray (n_items, vector_size), float32
        The learned item (input) vectors; items never seen in a sequence get zeros.
    output_vectors_ : ndarray (n_items, vector_size), float32
        The negative-sampling output vectors.
    words_trained_ : int
        Words trained on over all epochs (after subsampling).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.recall import Item2Vec
    >>> m = sp.csr_matrix(np.kron(np.eye(2), np.ones((20, 5))), dtype=np.float32)  # 2 clusters of 5 items
    >>> model = Item2Vec(vector_size=8, window="basket", epochs=30, sample=0, n_threads=1, random_state=0).fit(m)
    >>> sorted(model.similar_items(0, k=4)[0].tolist())
    [1, 2, 3, 4]
    """

    def __init__(
        self,
        *,
        vector_size: int = 64,
        window: int | str = 10,
        negative: int = 5,
        algorithm: str = "skipgram",
        shared_negatives: bool = True,
        ns_exponent: float = 0.0,
        sample: float = 1e-3,
        epochs: int = 30,
        learning_rate: float = 0.025,
        min_learning_rate: float = 0.0001,
        scoring: str = "output",
        n_recent: int = 10,
        recency_decay: float = 0.8,
        n_threads: int | None = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
    ) -> None:
        self.vector_size = vector_size
        self.window = window
        self.negative = negative
        self.algorithm = algorithm
        self.shared_negatives = shared_negatives
        self.ns_exponent = ns_exponent
        self.sample = sample
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.scoring = scoring
        self.n_recent = n_recent
        self.recency_decay = recency_decay
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int(self.vector_size, "vector_size", min_value=1)
        if not (isinstance(self.window, str) and self.window == "basket"):
            if isinstance(self.window, str):
                raise ValueError(
                    f"window must be a positive integer or 'basket', got {self.window!r}"
                )
            check_int(self.window, "window", min_value=1)
        check_int(self.negative, "negative", min_value=1)
        check_choice(self.algorithm, "algorithm", {"cbow", "skipgram"})
        if not isinstance(self.shared_negatives, (bool, np.bool_)):
            raise TypeError(f"shared_negatives must be a bool, got {self.shared_negatives!r}")
        check_float(self.ns_exponent, "ns_exponent")
        check_float(self.sample, "sample", min_value=0.0)
        check_int(self.epochs, "epochs", min_value=1)
        check_float(self.learning_rate, "learning_rate", min_value=0.0, min_inclusive=False)
        check_float(self.min_learning_rate, "min_learning_rate", min_value=0.0)
        check_choice(self.scoring, "scoring", {"output", "cosine"})
        check_int(self.n_recent, "n_recent", min_value=1)
        check_float(
            self.recency_decay, "recency_decay", min_value=0.0, max_value=1.0, min_inclusive=False
        )
        check_random_state(self.random_state)

    # ---- fitting ---------------------------------------------------------------------------------
    def fit(
        self,
        interactions: Interactions | sp.spmatrix | ArrayLike,
        sequences: Iterable[Sequence[Hashable]] | None = None,
        *,
        callback: Callable[[Item2Vec, int, int], bool | None] | None = None,
    ) -> Item2Vec:
        """Learn item vectors.

        Parameters
        ----------
        interactions : Interactions or sparse (n_users, n_items)
            The users' items; their time-ordered rows (:meth:`Interactions.sequences`) are the
            training sequences unless ``sequences`` is given. ``recommend`` uses their last items.
        sequences : list of array-like of external item ids, optional
            Train on these sequences (sessions, baskets) instead; the ids must be items of ``interactions``.
        callback : callable(model, epoch, words) -> bool or None, optional
            Called after each epoch; returning ``True`` stops training.

        Returns
        -------
        self
        """
        return super().fit(interactions, sequences=sequences, callback=callback)

    @staticmethod
    def _sequences(data: Interactions, sequences):
        if sequences is None:
            return data.sequences()
        lengths, parts = [], []
        for _s, seq in enumerate(sequences):
            ids = np.atleast_1d(np.asarray(seq))
            idx = (
                np.asarray(data.item_map.index(ids, name="item_id"), dtype=np.int32).reshape(-1)
                if ids.size
                else np.empty(0, np.int32)
            )
            lengths.append(len(idx))
            parts.append(idx)
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.concatenate(parts).astype(np.int32) if parts else np.empty(0, np.int32)
        return offsets, items

    def _fit(self, data: Interactions, *, sequences=None, callback=None) -> None:
        offsets, items = self._sequences(data, sequences)
        n_items, dim = data.n_items, int(self.vector_size)
        rng = check_random_state(self.random_state)
        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        if counts.sum() == 0:
            raise ValueError("sequences hold no items to train on")
        in_vecs, out_vecs = (
            aligned_vectors(n_items, dim),
            aligned_vectors(n_items, dim),
        )  # cache-line rows
        in_vecs[:] = (rng.random((n_items, dim), dtype=np.float32) - 0.5) / dim
        seen = counts > 0
        neg_weights = np.zeros(n_items)
        neg_weights[seen] = sampling_weights(counts[seen], self.ns_exponent, "ns_exponent")
        keep = keep_probabilities(counts, self.sample)
        basket = isinstance(self.window, str)
        epochs, lr0, lr1 = (
            int(self.epochs),
            float(self.learning_rate),
            float(self.min_learning_rate),
        )
        epoch_iter = range(epochs)
        bar = progress_bar(self.verbose, epoch_iter, desc="Item2Vec", unit="epoch")
        self.words_trained_ = 0
        for epoch in epoch_iter if bar is None else bar:
            trained = sgns_train_epoch(
                offsets,
                items,
                in_vecs,
                out_vecs,
                neg_weights,
                keep_prob=keep,
                window=1 if basket else int(self.window),
                negative=int(self.negative),
                cbow=self.algorithm == "cbow",
                basket=basket,
                shared_negatives=bool(self.shared_negatives),
                alpha_start=lr0 + (lr1 - lr0) * epoch / epochs,
                alpha_end=lr0 + (lr1 - lr0) * (epoch + 1) / epochs,
                seed=int(rng.integers(2**63)),
                n_threads=self._n_threads(),
            )
            self.words_trained_ += trained
            if not np.isfinite(in_vecs[:1]).all():
                raise FloatingPointError(
                    "Item2Vec diverged (non-finite vectors); lower learning_rate"
                )
            if callback is not None and callback(self, epoch, trained) is True:
                break
        in_vecs[counts == 0] = 0.0
        self.item_vectors_ = in_vecs
        self.output_vectors_ = out_vecs
        self._set_derived(data, None if sequences is not None else (offsets, items))

    def _set_derived(self, data: Interactions | None = None, sequences=None) -> None:
        self._cache_unit_rows()
        if data is not None:
            offsets, items = data.sequences() if sequences is None else sequences
            n = int(self.n_recent)
            starts = np.maximum(offsets[:-1], offsets[1:] - n)
            lengths = offsets[1:] - starts
            self.recent_offsets_ = np.zeros(len(lengths) + 1, np.int64)
            np.cumsum(lengths, out=self.recent_offsets_[1:])
            take = np.repeat(starts - self.recent_offsets_[:-1], lengths) + np.arange(lengths.sum())
            self.recent_items_ = items[take].astype(np.int32)

    # ---- scoring ---------------------------------------------------------------------------------
    def _profile(self, item_idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The query vector of a history (oldest first): recency- and user-weighted."""
        n = len(item_idx)
        dim = self.item_vectors_.shape[1]
        if n == 0:
            return np.zeros(dim, np.float32)
        decay = float(self.recency_decay) ** np.arange(n - 1, -1, -1, dtype=np.float64)
        w = weights * decay
        if self.scoring == "cosine":  # sum of unit vectors, then cosine (gensim's most_similar)
            return (w.astype(np.float32) @ self._unit_item_vectors()[item_idx]).astype(np.float32)
        total = w.sum()  # weighted mean input vector, as CBOW predicts the next item
        return (
            (w / total).astype(np.float32) @ self.item_vectors_[item_idx]
            if total > 0
            else np.zeros(dim, np.float32)
        )

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def _target_vectors(self) -> np.ndarray:
        return self._unit_item_vectors() if self.scoring == "cosine" else self.output_vectors_

    def _user_queries(self, user_idx):
        profiles = np.zeros((len(user_idx), self.item_vectors_.shape[1]), np.float32)
        for row, u in enumerate(user_idx):
            recent = self.recent_items_[self.recent_offsets_[u] : self.recent_offsets_[u + 1]]
            profiles[row] = self._profile(recent, np.ones(len(recent)))
        return profiles

    def _history_query(self, item_idx, weights):
        n = int(self.n_recent)
        return self._profile(item_idx[-n:], weights[-n:].astype(np.float64))

    # ---- state -----------------------------------------------------------------------------------
    def _get_state(self) -> dict:
        return {
            "item_vectors": self.item_vectors_,
            "output_vectors": self.output_vectors_,
            "recent_offsets": self.recent_offsets_,
            "recent_items": self.recent_items_,
        }

    def _set_state(self, arrays: ModelArrays) -> None:
        n_items, n_users, dim = self.n_items_, self.n_users_, int(self.vector_size)
        for name in ("item_vectors", "output_vectors"):
            vectors = arrays.take(name, ndim=2, shape=(n_items, dim), dtype=np.float32)
            setattr(self, f"{name}_", vectors)
        arrays.check_products("item_vectors", "output_vectors")
        recent = arrays.take(
            "recent_items", kinds="iu", dtype=np.int32, min_value=0, max_value=n_items - 1
        )
        offsets = arrays.take("recent_offsets", kinds="iu", shape=(n_users + 1,), dtype=np.int64)
        if offsets[0] != 0 or offsets[-1] != len(recent) or np.any(np.diff(offsets) < 0):
            raise arrays.error(
                "'recent_offsets' is inconsistent with 'recent_items' (it must rise "
                "from 0 to len(recent_items))"
            )
        if np.any(np.diff(offsets) > int(self.n_recent)):
            raise arrays.error(
                f"'recent_offsets' gives a user more than n_recent = {self.n_recent} items"
            )
        self.recent_offsets_, self.recent_items_ = offsets, recent
        self._set_derived()

    # ---- word2vec text format --------------------------------------------------------------------
    def save_word2vec_format(self, file) -> None:
        """Write the item vectors in word2vec's text format (readable by gensim's
        ``KeyedVectors.load_word2vec_format(path, binary=False)``); keys are the external item ids."""
        self._check_fitted()
        save_word2vec_format(file, self.item_map_.ids, self.item_vectors_)
