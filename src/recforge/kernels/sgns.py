"""Word2vec negative sampling (skip-gram / CBOW): validation here, the trainer in C++ (``recforge._core``)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import resolve_n_threads
from .._validation import check_float, check_in_place, check_int

__all__ = [
    "SIGMOID_ERROR_BOUND",
    "aligned_vectors",
    "keep_probabilities",
    "sgns_sigmoid",
    "sgns_step",
    "sgns_train_epoch",
]

#: Largest |table sigmoid - exact sigmoid| inside (-6, 6): 0.25 (the slope bound) × half a bin of 12/4096.
SIGMOID_ERROR_BOUND = 0.25 * 6.0 / 4096


def check_negative_weights(neg_weights, n_items: int) -> np.ndarray:
    """``neg_weights`` as the C-contiguous float64 (n_items,) a negative sampler draws from.

    Raises ValueError unless they are ``n_items`` finite values >= 0, not all 0. The LFM kernel's
    sampler takes the same weights.
    """
    neg_weights = np.ascontiguousarray(neg_weights, dtype=np.float64)
    if (
        neg_weights.shape != (n_items,)
        or not np.all(np.isfinite(neg_weights))
        or np.any(neg_weights < 0)
        or neg_weights.sum() <= 0
    ):
        raise ValueError(f"neg_weights must be {n_items} finite values >= 0, not all 0")
    return neg_weights


def _vectors(in_vecs, out_vecs):
    for name, arr in (("in_vecs", in_vecs), ("out_vecs", out_vecs)):
        check_in_place(arr, name, np.float32, 2)
    if in_vecs.shape != out_vecs.shape:
        raise ValueError(
            f"in_vecs {in_vecs.shape} and out_vecs {out_vecs.shape} must have the same shape"
        )
    return in_vecs.shape[0]


def aligned_vectors(n_items, dim):
    """A zeroed float32 ``(n_items, dim)`` C-contiguous array whose data starts on a 64-byte boundary.

    The trainer reads and writes whole random rows; NumPy's large arrays usually start 16 bytes past
    a cache line, so a 64-float row then spans five lines instead of four (more memory traffic and
    more false sharing between threads). The array is a view of a slightly larger buffer.

    Examples
    --------
    >>> v = aligned_vectors(3, 16)
    >>> v.shape, v.dtype, v.ctypes.data % 64, float(v.sum())
    ((3, 16), dtype('float32'), 0, 0.0)
    """
    n_items = check_int(n_items, "n_items", min_value=0)
    dim = check_int(dim, "dim", min_value=1)
    nbytes = n_items * dim * 4
    buf = np.zeros(nbytes + 64, np.uint8)
    start = -buf.ctypes.data % 64
    return buf[start : start + nbytes].view(np.float32).reshape(n_items, dim)


def keep_probabilities(counts, sample):
    """Word2vec's frequent-word subsampling: probability of keeping each occurrence of an item.

    ``keep = (sqrt(f / t) + 1) * t / f`` with ``f`` the item's count and ``t = sample * total``
    (capped at 1; gensim's formula). ``sample=0`` keeps everything (returns ``None``).

    Parameters
    ----------
    counts : ndarray (n_items,) of int
    sample : float >= 0

    Returns
    -------
    ndarray (n_items,) float32, or None

    Examples
    --------
    >>> [round(float(p), 3) for p in keep_probabilities(np.array([1000, 1]), 1e-3)]
    [0.033, 1.0]
    """
    sample = check_float(sample, "sample", min_value=0.0)
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return None
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
    keep[~np.isfinite(keep)] = 1.0
    return np.minimum(keep, 1.0).astype(np.float32)


def sgns_train_epoch(
    offsets,
    items,
    in_vecs,
    out_vecs,
    neg_weights,
    *,
    keep_prob=None,
    window=5,
    negative=5,
    cbow=False,
    basket=False,
    shared_negatives=True,
    alpha_start=0.025,
    alpha_end=0.025,
    seed=0,
    n_threads=1,
):
    """Train one word2vec negative-sampling epoch over sequences, updating the vectors in place.

    Parameters
    ----------
    offsets : ndarray (n_seq + 1,), int64
        Sequence ``s`` is ``items[offsets[s]:offsets[s + 1]]``.
    items : ndarray (n_words,), int32
        Item indices in ``[0, n_items)``.
    in_vecs, out_vecs : ndarray (n_items, dim), float32, C-contiguous, writeable
        Input (item) vectors and output (negative-sampling) vectors, updated in place (Hogwild).
    neg_weights : ndarray (n_items,), float64
        Unnormalised probabilities of drawing each item as a negative (e.g. count ** 0.75).
    keep_prob : ndarray (n_items,), float32, optional
        Subsampling keep probabilities (:func:`keep_probabilities`).
    window : int >= 1
        Maximum distance of a context; each position uses a window drawn uniformly from 1..window.
    negative : int >= 1
        Negatives per positive pair.
    cbow : bool
        CBOW (mean of the contexts predicts the centre) instead of skip-gram.
    basket : bool
        The context is the whole sequence (``window`` ignored), for sets such as baskets.
    shared_negatives : bool, default True
        Skip-gram: draw one set of ``negative`` negatives per window, shared by all its contexts,
        and update the window's rows as one block from the values before it (pWord2Vec, Ji et al.
        2016): a (contexts × (1 + negative)) block of dot products and rank-1 updates instead of
        one update per (context, centre) pair, each with its own negatives. About twice as fast;
        ``False`` trains pair by pair as word2vec and gensim do (other results, same quality in
        the tests). CBOW draws one set per window either way.
    alpha_start, alpha_end : float
        Learning rate at the first and after the last word of the epoch (linear in between).
    seed : int >= 0
        Random stream seed (bit-identical results at ``n_threads=1``).
    n_threads : int

    Returns
    -------
    int
        Words trained on (after subsampling).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> vin = ((rng.random((4, 8)) - 0.5) / 8).astype(np.float32); vout = np.zeros((4, 8), np.float32)
    >>> sgns_train_epoch(np.array([0, 4]), np.array([0, 1, 2, 3], np.int32), vin, vout, np.ones(4))
    4
    """
    n_items = _vectors(in_vecs, out_vecs)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    items = np.ascontiguousarray(items, dtype=np.int32)
    if offsets.ndim != 1 or len(offsets) < 1:
        raise ValueError("offsets must be 1-D with length n_sequences + 1")
    if offsets[0] < 0 or offsets[-1] > len(items) or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must be non-decreasing and within [0, len(items)]")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"items must be in [0, {n_items})")
    neg_weights = check_negative_weights(neg_weights, n_items)
    if keep_prob is not None:
        keep_prob = np.ascontiguousarray(keep_prob, dtype=np.float32)
        if keep_prob.shape != (n_items,):
            raise ValueError(f"keep_prob must have shape ({n_items},)")
    window = check_int(window, "window", min_value=1)
    negative = check_int(negative, "negative", min_value=1)
    alpha_start = check_float(alpha_start, "alpha_start", min_value=0.0)
    alpha_end = check_float(alpha_end, "alpha_end", min_value=0.0)
    seed = check_int(seed, "seed", min_value=0, max_value=2**64 - 1)
    return int(
        _core.sgns_train_epoch(
            offsets,
            items,
            keep_prob,
            neg_weights,
            in_vecs,
            out_vecs,
            window,
            negative,
            bool(cbow),
            bool(basket),
            bool(shared_negatives),
            alpha_start,
            alpha_end,
            seed,
            resolve_n_threads(n_threads),
        )
    )


def sgns_step(
    in_vecs, out_vecs, center, contexts, negatives, lr, *, cbow=False, shared_negatives=True
):
    """One negative-sampling update on fixed negatives, in place (the trainer's inner step).

    Skip-gram: each context's input vector predicts ``center`` in turn; with ``shared_negatives``
    the contexts form one block instead (every row moves by ``-lr`` × its gradient of the summed
    loss at the values before the step; see :func:`sgns_train_epoch`). CBOW: the mean of the
    contexts' input vectors predicts ``center`` and each context receives the full input gradient.

    Parameters
    ----------
    in_vecs, out_vecs : ndarray (n_items, dim), float32
    center : int
    contexts, negatives : array-like of int
    lr : float
    cbow : bool
    shared_negatives : bool, default True
    """
    n_items = _vectors(in_vecs, out_vecs)
    contexts = np.ascontiguousarray(contexts, dtype=np.int32).reshape(-1)
    negatives = np.ascontiguousarray(negatives, dtype=np.int32).reshape(-1)
    center = check_int(center, "center", min_value=0, max_value=n_items - 1)
    for name, arr in (("contexts", contexts), ("negatives", negatives)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_items):
            raise ValueError(f"{name} must be in [0, {n_items})")
    _core.sgns_step(
        in_vecs,
        out_vecs,
        center,
        contexts,
        negatives,
        check_float(lr, "lr"),
        bool(cbow),
        bool(shared_negatives),
    )


def sgns_sigmoid(x):
    """The trainer's table sigmoid at ``x`` (float32), for tests of its error bound."""
    return _core.sgns_sigmoid(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
