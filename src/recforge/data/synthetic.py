"""Synthetic data generators: power-law user x item interactions, and a CTR-like classification set.

Both are vectorised NumPy (no Python loop over rows or events, no dense users x items matrix) and
deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from .idmap import IdMap
from .interactions import Interactions

_CHUNK = 1 << 22  # events drawn per block, bounds the temporary float64 arrays
_OFFSET = 4e-4  # Zipf-Mandelbrot offset, as a fraction of n_items (flattens the very head)
_USER_SIGMA = 0.5  # log-normal spread of user activity
_T0 = 1_577_836_800.0  # 2020-01-01T00:00:00Z
_SPAN = 3 * 365 * 86_400.0  # timestamps cover three years


def _item_ranks(u: np.ndarray, n_items: int, exponent: float) -> np.ndarray:
    """Inverse CDF of the density (x + q)^-exponent on [0, n_items): uniforms -> popularity ranks."""
    q = max(_OFFSET * n_items, 1.0)
    if abs(exponent - 1.0) < 1e-12:
        x = q * np.exp(u * np.log1p(n_items / q)) - q
    else:
        b = 1.0 - exponent
        lo, hi = q**b, (n_items + q) ** b
        x = (lo + u * (hi - lo)) ** (1.0 / b) - q
    r = x.astype(np.int64)
    np.clip(r, 0, n_items - 1, out=r)
    return r


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    seed=0,
    popularity_exponent: float = 1.0,
    timestamps: bool = True,
) -> Interactions:
    """Random implicit-feedback interactions with power-law item popularity.

    ``n_interactions`` events are drawn independently: the user with probability proportional
    to a log-normal activity level, the item from a Zipf–Mandelbrot law
    ``p(rank r) ~ (r + q) ** -popularity_exponent`` with ``q = max(4e-4 * n_items, 1)`` (popular
    items are scattered over the index range by a random permutation). With the default
    exponent 1.0 and tens of thousands of items, the top 1 % of items receive about 40 % of the
    events. Repeated (user, item) draws are merged: the weight is the number of draws, so
    ``nnz`` is a few percent below ``n_interactions`` while ``matrix.sum() == n_interactions``.
    Users (or items) may end up with no interactions when ``n_interactions`` is small.

    Cost: one sort of ``n_interactions`` int64 keys plus linear passes (160k x 60k x 20M: ~5 s,
    ~0.7 GB peak); never a dense matrix.

    Parameters
    ----------
    n_users, n_items : int >= 1
    n_interactions : int >= 0
        Number of events drawn (before merging duplicates).
    seed : int or None, default 0
        Same seed, same result.
    popularity_exponent : float > 0, default 1.0
        Larger = more concentrated on the head.
    timestamps : bool, default True
        Attach integer-valued float64 timestamps (seconds, 2020-2022): each user is active in
        a random window of that period.

    Returns
    -------
    Interactions
        Shape (n_users, n_items), ids ``arange``, float32 weights (draw counts), float64
        timestamps or None.

    Examples
    --------
    >>> from recforge.data import synthetic_interactions
    >>> x = synthetic_interactions(1_000, 500, 20_000, seed=0)
    >>> x.shape, x.nnz <= 20_000, float(x.matrix.sum())
    ((1000, 500), True, 20000.0)
    """
    n_users = check_int(n_users, "n_users", min_value=1)
    n_items = check_int(n_items, "n_items", min_value=1, max_value=2**31 - 1)
    n = check_int(n_interactions, "n_interactions", min_value=0)
    exponent = check_float(
        popularity_exponent, "popularity_exponent", min_value=0.0, min_inclusive=False
    )
    if n_users * n_items >= 2**62:
        raise ValueError(f"n_users * n_items = {n_users * n_items} is too large (must be < 2**62)")
    rng = np.random.default_rng(seed)

    activity = rng.lognormal(0.0, _USER_SIGMA, n_users)
    per_user = (
        rng.multinomial(n, activity / activity.sum()) if n else np.zeros(n_users, dtype=np.int64)
    )
    item_of_rank = rng.permutation(n_items).astype(np.int64)

    keys = np.repeat(np.arange(n_users, dtype=np.int64) * n_items, per_user)  # sorted by user
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        keys[start:stop] += item_of_rank[_item_ranks(rng.random(stop - start), n_items, exponent)]
    keys.sort()

    if n:
        is_new = np.empty(n, dtype=bool)
        is_new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=is_new[1:])
        keys = keys[is_new]
        starts = np.flatnonzero(is_new)
        del is_new
        data = np.diff(np.append(starts, n)).astype(np.float32)
        del starts
    else:
        data = np.zeros(0, dtype=np.float32)
    nnz = keys.size
    idx_dtype = np.int32 if nnz < 2**31 - 1 else np.int64
    indptr = np.searchsorted(keys, np.arange(n_users + 1, dtype=np.int64) * n_items).astype(
        idx_dtype
    )
    indices = (keys % n_items).astype(np.int32)
    del keys

    ts = None
    if timestamps:
        begin = rng.random(n_users) * _SPAN
        length = (_SPAN - begin) * rng.uniform(0.05, 1.0, n_users)
        rows = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr))
        ts = rng.random(nnz)  # in place from here on: one (nnz,) float64 temporary at a time
        ts *= length[rows]
        ts += begin[rows]
        ts += _T0
        np.floor(ts, out=ts)
        del rows
    ids_u = IdMap(np.arange(n_users, dtype=np.int64))
    ids_i = IdMap(np.arange(n_items, dtype=np.int64))
    return Interactions._trusted(indptr, indices, data, (n_users, n_items), ts, ids_u, ids_i)


def synthetic_ctr(n_rows: int, n_features: int, *, n_informative=None, seed=0):
    """A make_classification-like binary task for rankers (click / no click).

    Features are standard normal. The label is drawn from a logistic model on the
    ``n_informative`` informative features: a linear part plus pairwise interactions and squared
    terms (so trees can beat a linear model), then Bernoulli noise (so the classes overlap; a
    perfect model's AUC is about 0.9). Informative columns are at random positions; the others
    are pure noise. Positive rate about 0.5.

    Parameters
    ----------
    n_rows : int >= 1
    n_features : int >= 1
    n_informative : int in [1, n_features], optional
        Default ``max(1, round(0.4 * n_features))`` (20 of 50).
    seed : int or None, default 0

    Returns
    -------
    X : ndarray of shape (n_rows, n_features), float32
    y : ndarray of shape (n_rows,), int8
        0 / 1 labels.

    Examples
    --------
    >>> from recforge.data import synthetic_ctr
    >>> X, y = synthetic_ctr(1_000, 10, seed=0)
    >>> X.shape, X.dtype, y.dtype, bool(0.3 < y.mean() < 0.7)
    ((1000, 10), dtype('float32'), dtype('int8'), True)
    """
    n_rows = check_int(n_rows, "n_rows", min_value=1)
    n_features = check_int(n_features, "n_features", min_value=1)
    if n_informative is None:
        n_informative = max(1, round(0.4 * n_features))
    n_informative = check_int(n_informative, "n_informative", min_value=1, max_value=n_features)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    cols = rng.permutation(n_features)[:n_informative]
    w = rng.standard_normal(n_informative)
    w *= 2.0 / np.linalg.norm(w)  # linear part has standard deviation 2
    logit = np.zeros(n_rows, dtype=np.float64)
    for j, c in enumerate(cols):
        logit += w[j] * X[:, c]
    n_pairs = max(1, n_informative // 2)
    pair_w = rng.choice([-1.0, 1.0], n_pairs) * 0.8
    for p in range(n_pairs):
        a, b = cols[p % n_informative], cols[(p + 1) % n_informative]
        logit += pair_w[p] * X[:, a] * X[:, b] / np.sqrt(n_pairs)
    sq = cols[-1]
    logit += 0.5 * (X[:, sq].astype(np.float64) ** 2 - 1.0)
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return X, y
