"""Numba kernels of neighbourhood collaborative filtering (ItemCF / UserCF).

Kernels that are pure functions on CSR arrays (``indptr`` int64, ``indices`` int32, ``data`` float32):

* :func:`cooccurrence_topk` / :func:`cooccurrence_topk_symmetric` — penalised co-occurrence cosine
  similarity of the rows of a sparse matrix and the top-``K`` neighbours of every row (never a dense
  row × row matrix). Same result; the first computes every row on its own (each pair twice, top
  lists stay in cache: faster on small data), the second each pair once (half the accumulation work,
  scattered heap updates: faster on large data).
* :func:`neighbors_to_csr` — those top lists as CSR arrays.
* :func:`cooccurrence_sums` / :func:`topk_csr_rows` — the same similarity in two steps for a cluster
  (``recforge.distributed``): the un-normalised co-occurrence of a range of rows as a sparse matrix
  (summed over partitions of the intermediates), then each row's top-``K``.
* :func:`two_hop_scores` / :func:`two_hop_topk` — scores of ``Q @ N`` for a few rows of ``Q``
  (``Q`` = query → intermediate weights, ``N`` = intermediate → item weights), written to a
  dense block or reduced straight to each row's top-``k`` (the *fused* path: per thread one dense
  accumulator, only touched entries are reset).

Both reductions follow the same accumulation order (entries of ``Q``'s row in stored order, then
entries of ``N``'s row in stored order, float64 accumulators cast to float32), so the dense and
the fused path give bit-identical scores. Validation lives in the Python callers.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._chunks import (
    CHUNKS_PER_WORKER,
    balanced_bounds,
    even_bounds,
    lower_two_hop_cumulative,
    pulled_chunks,
    two_hop_cumulative,
)
from ._jit import jit


@jit
def _insert(top_val, top_idx, base, count, k, value, index):
    """Insert (value, index) into the sorted list ``top_*[base:base + count]`` (value desc, index asc).

    The list holds at most ``k`` entries; returns the new count.
    """
    if count == k:
        last_v = top_val[base + k - 1]
        if value < last_v or (value == last_v and index > top_idx[base + k - 1]):
            return count
        pos = k - 1
    else:
        pos = count
        count += 1
    while pos > 0:
        pv = top_val[base + pos - 1]
        if pv > value or (pv == value and top_idx[base + pos - 1] < index):
            break
        top_val[base + pos] = pv
        top_idx[base + pos] = top_idx[base + pos - 1]
        pos -= 1
    top_val[base + pos] = value
    top_idx[base + pos] = index
    return count


@jit
def _worse(v1, i1, v2, i2):
    """(v1, i1) ranks below (v2, i2): smaller value, or equal value and larger index."""
    return v1 < v2 or (v1 == v2 and i1 > i2)


@jit
def _heap_offer(hv, hi, base, count, k, value, index):
    """Offer (value, index) to the bounded heap ``h*[base:base + k]`` whose root is its worst entry.

    Returns the new count (at most ``k``). The kept set is the top-``k`` by (value desc, index asc)
    whatever the order of the offers.
    """
    if count < k:
        pos = count
        count += 1
        while pos > 0:
            parent = (pos - 1) >> 1
            if not _worse(value, index, hv[base + parent], hi[base + parent]):
                break
            hv[base + pos] = hv[base + parent]
            hi[base + pos] = hi[base + parent]
            pos = parent
        hv[base + pos] = value
        hi[base + pos] = index
        return count
    if not _worse(hv[base], hi[base], value, index):
        return count
    _sift_down(hv, hi, base, k, value, index)
    return count


@jit
def _sift_down(hv, hi, base, n, value, index):
    """Put (value, index) at the root of the n-entry heap at ``base`` (worst on top) and sift it down."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _worse(
            hv[base + child + 1], hi[base + child + 1], hv[base + child], hi[base + child]
        ):
            child += 1
        if not _worse(hv[base + child], hi[base + child], value, index):
            break
        hv[base + pos] = hv[base + child]
        hi[base + pos] = hi[base + child]
        pos = child
    hv[base + pos] = value
    hi[base + pos] = index


@jit
def _heap_sorted(hv, hi, base, count, out_v, out_i, out_base):
    """Write the heap's entries to ``out_*[out_base:out_base + count]`` best first (destroys the heap)."""
    n = count
    while n > 0:
        out_v[out_base + n - 1] = hv[base]
        out_i[out_base + n - 1] = hi[base]
        n -= 1
        _sift_down(hv, hi, base, n, hv[base + n], hi[base + n])


_LOW32 = np.uint64(0xFFFFFFFF)

#: at most this many keys are ordered by rank counting (O(n²)), more by a sort
_RANK_SORT_MAX = 128


@jit
def _rank_key(value, index):
    """(float32 value > 0, index) as one uint64 ordered like (value desc, index asc): larger = better.

    Positive float32s order like their bit patterns, so the value's bits go high and ``~index`` low.
    """
    return (np.uint64(np.float32(value).view(np.uint32)) << np.uint64(32)) | (
        _LOW32 - np.uint64(index)
    )


@jit
def _key_value(key):
    return np.uint32(key >> np.uint64(32)).view(np.float32)


@jit
def _key_index(key):
    return np.int32(_LOW32 - (key & _LOW32))


@jit
def _select_largest(keys, n, k):
    """Reorder the distinct ``keys[:n]``: the ``k`` largest to ``keys[:k]``, the smallest of them at ``k - 1``.

    Quickselect with a median-of-three pivot, in place; ``1 <= k <= n``.
    """
    target = k - 1
    lo = 0
    hi = n - 1
    while hi > lo + 1:
        mid = (lo + hi) >> 1
        _swap(keys, mid, lo + 1)
        if keys[lo] < keys[hi]:
            _swap(keys, lo, hi)
        if keys[lo + 1] < keys[hi]:
            _swap(keys, lo + 1, hi)
        if keys[lo] < keys[lo + 1]:
            _swap(keys, lo, lo + 1)
        pivot = keys[lo + 1]  # keys[lo] >= pivot >= keys[hi] stop both scans
        i = lo + 1
        j = hi
        while True:
            i += 1
            while keys[i] > pivot:
                i += 1
            j -= 1
            while keys[j] < pivot:
                j -= 1
            if j < i:
                break
            _swap(keys, i, j)
        keys[lo + 1] = keys[j]
        keys[j] = pivot
        if j >= target:
            hi = j - 1
        if j <= target:
            lo = i
    if hi == lo + 1 and keys[hi] > keys[lo]:
        _swap(keys, lo, hi)


@jit
def _swap(a, i, j):
    t = a[i]
    a[i] = a[j]
    a[j] = t


@jit
def _accumulate(acc, touched, n_touched, targets, start, stop, w):
    """``acc[targets[start:stop]] += w``; targets whose ``acc`` was 0 are appended to ``touched``.

    Returns the new length of ``touched``, which needs a spare slot: every target is written there,
    only new ones are kept (no branch). ``targets`` (uint32: no negative-index handling) are distinct
    within the range, so two are loaded before either is stored.
    """
    q = start
    while q + 1 < stop:
        b0 = targets[q]
        b1 = targets[q + 1]
        x0 = acc[b0]
        x1 = acc[b1]
        touched[n_touched] = b0
        n_touched += x0 == 0.0
        touched[n_touched] = b1
        n_touched += x1 == 0.0
        acc[b0] = x0 + w
        acc[b1] = x1 + w
        q += 2
    if q < stop:
        b = targets[q]
        x = acc[b]
        touched[n_touched] = b
        n_touched += x == 0.0
        acc[b] = x + w
    return n_touched


@jit
def _write_sorted(keys, n, out_idx, out_val, base):
    """Write the distinct ``keys[:n]`` best first as (index, value) to ``out_*[base:base + n]``.

    Up to :data:`_RANK_SORT_MAX` keys each goes straight to its rank (how many keys are larger):
    O(n²) compares, but branch-free and vectorised, faster than a sort at these sizes.
    """
    if n > _RANK_SORT_MAX:
        keys[:n].sort()
        for s in range(n):
            key = keys[n - 1 - s]
            out_val[base + s] = _key_value(key)
            out_idx[base + s] = _key_index(key)
        return
    for s in range(n):
        key = keys[s]
        rank = 0
        for t in range(n):
            rank += keys[t] > key
        out_val[base + rank] = _key_value(key)
        out_idx[base + rank] = _key_index(key)


@jit
def _accumulate_row(acc, touched, a_indptr, mids, b_indptr, targets, penalty, a):
    """Row ``a`` of ``A · diag(penalty) · B`` into ``acc`` (:func:`_accumulate`); returns ``n_touched``.

    ``mids`` and ``targets`` are ``A``'s and ``B``'s indices viewed as uint32; the intermediates are
    visited in increasing order, so every caller sums in the same order (bit-identical numerators).
    """
    n_touched = 0
    for p in range(a_indptr[a], a_indptr[a + 1]):
        mid = mids[p]
        n_touched = _accumulate(
            acc, touched, n_touched, targets, b_indptr[mid], b_indptr[mid + 1], penalty[mid]
        )
    return n_touched


@jit
def _write_top_k(keys, n, k, out_idx, out_val, base):
    """Write the best ``k`` of ``keys[:n]``, best first, to ``out_*[base:]``; returns how many."""
    if n > k:
        _select_largest(keys, n, k)
        n = k
    _write_sorted(keys, n, out_idx, out_val, base)
    return n


_COOC_DOC = """
    ``A`` (n_rows × n_mid) holds which intermediates each row touches (for ItemCF: item → users),
    ``B`` = ``Aᵀ`` (n_mid × n_rows, for ItemCF: user → items). The similarity of rows ``a != b`` is

        sim(a, b) = Σ_{m ∈ A[a] ∩ A[b]} penalty[m] / (norm[a] · norm[b])

    accumulated in float64 over the shared intermediates in increasing order, then cast to float32.

    Parameters
    ----------
    a_indptr : int64 (n_rows + 1,); a_indices : int32 (nnz,), sorted within rows
    b_indptr : int64 (n_mid + 1,); b_indices : int32 (nnz,), sorted within rows
    penalty : float64 (n_mid,), > 0
    norm : float64 (n_rows,), > 0
    n_neighbors : int >= 1
    n_workers : int >= 1
        Parallel workers, each with its own accumulator, pulling contiguous chunks of rows of about
        equal work (``kernels._chunks``). The result does not depend on it.
    n_slices : int >= 1
        The rows are processed in this many consecutive slices, ``progress(n_rows_done)`` called after
        each (a progress bar). The result does not depend on it.

    Returns
    -------
    nbr_idx : int32 (n_rows, n_neighbors), ``-1`` pads
        Neighbours by (similarity desc, index asc).
    nbr_val : float32 (n_rows, n_neighbors), 0 pads
    counts : int64 (n_rows,)
"""


def _over_slices(kernel, inputs, outputs, cum, n_slices, progress):
    """``kernel(*inputs, bounds, start, stop, *outputs)`` over ``n_slices`` consecutive slices of the
    rows, ``progress(stop - start)`` after each; ``bounds`` cuts the slice into chunks of about equal
    work by the cumulative work ``cum`` (int64 (n_rows + 1,)). ``inputs`` ends with ``n_workers``."""
    n_rows, n_workers = cum.shape[0] - 1, inputs[-1]
    edges = np.linspace(0, n_rows, max(1, int(n_slices)) + 1).astype(np.int64)
    for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if stop > start:
            bounds = balanced_bounds(cum[start : stop + 1], n_workers * CHUNKS_PER_WORKER, 1.0)
            kernel(*inputs, bounds, start, stop, *outputs)
            if progress is not None:
                progress(stop - start)


def cooccurrence_topk(
    a_indptr,
    a_indices,
    b_indptr,
    b_indices,
    penalty,
    norm,
    n_neighbors,
    n_workers,
    n_slices=1,
    progress=None,
):
    n_rows = a_indptr.shape[0] - 1
    k = int(n_neighbors)
    all_rows = np.arange(n_rows, dtype=np.int64)
    cum = two_hop_cumulative(all_rows, a_indptr, a_indices, b_indptr)
    out_idx = np.full(n_rows * k, -1, dtype=np.int32)
    out_val = np.zeros(n_rows * k, dtype=np.float32)
    counts = np.zeros(n_rows, dtype=np.int64)
    _over_slices(
        _cooccurrence_rows,
        (a_indptr, a_indices, b_indptr, b_indices, penalty, norm, k, n_workers),
        (out_idx, out_val, counts),
        cum,
        n_slices,
        progress,
    )
    return out_idx.reshape(n_rows, k), out_val.reshape(n_rows, k), counts


cooccurrence_topk.__doc__ = (
    """Top-``n_neighbors`` penalised cosine neighbours of every row of ``A``, row by row.

    Every row is computed on its own (each pair twice); its candidates are reduced with an O(m)
    selection. Faster than :func:`cooccurrence_topk_symmetric` on small data.
"""
    + _COOC_DOC
)


def cooccurrence_topk_symmetric(
    a_indptr,
    a_indices,
    b_indptr,
    b_indices,
    penalty,
    norm,
    n_neighbors,
    n_workers,
    n_slices=1,
    progress=None,
):
    n_rows = a_indptr.shape[0] - 1
    k = int(n_neighbors)
    n_mid = b_indptr.shape[0] - 1
    cum = lower_two_hop_cumulative(a_indptr, a_indices, n_mid, 0, n_rows)
    # worker w's heap of row a at (w * n_rows + a) * k
    heap_val = np.empty(n_workers * n_rows * k, dtype=np.float32)
    heap_idx = np.empty(n_workers * n_rows * k, dtype=np.int32)
    heap_cnt = np.zeros(n_workers * n_rows, dtype=np.int64)
    heap_min = np.zeros(n_workers * n_rows, dtype=np.float32)  # k-th best once full (0 before)
    _over_slices(
        _cooccurrence_pairs,
        (a_indptr, a_indices, b_indptr, b_indices, penalty, norm, k, n_workers),
        (heap_val, heap_idx, heap_cnt, heap_min),
        cum,
        n_slices,
        progress,
    )
    out_idx = np.full(n_rows * k, -1, dtype=np.int32)
    out_val = np.zeros(n_rows * k, dtype=np.float32)
    counts = np.zeros(n_rows, dtype=np.int64)
    _merge_heaps(heap_val, heap_idx, heap_cnt, n_workers, n_rows, k, out_idx, out_val, counts)
    return out_idx.reshape(n_rows, k), out_val.reshape(n_rows, k), counts


cooccurrence_topk_symmetric.__doc__ = (
    """Top-``n_neighbors`` penalised cosine neighbours of every row of ``A``, each pair once.

    Each pair is computed from its larger row (``b < a``; both sides sum over the shared
    intermediates in increasing order, so the value is the same either way) and offered to both
    rows' bounded heaps. Every worker keeps its own heaps of all rows (memory
    ``n_workers · n_rows · n_neighbors · 8`` bytes); a final pass merges them. Half the accumulation
    work of :func:`cooccurrence_topk`, scattered heap updates: faster on large data.
"""
    + _COOC_DOC
)


@jit(parallel=True)
def _cooccurrence_rows(
    a_indptr,
    a_indices,
    b_indptr,
    b_indices,
    penalty,
    norm,
    k,
    n_workers,
    bounds,
    row_start,
    row_stop,
    out_idx,
    out_val,
    counts,
):
    """Rows ``row_start <= a < row_stop`` of :func:`cooccurrence_topk` into the flat outputs.

    ``bounds`` (int64) cuts the rows into chunks (relative to ``row_start``) that ``n_workers``
    pull dynamically.

    A row's candidates are ranked by :func:`_rank_key` and pass through a buffer of ``cap`` keys that
    is cut back to its best ``k`` whenever full; only keys above the ``k``-th best so far enter.
    """
    n_rows = a_indptr.shape[0] - 1
    cap = max(4 * k, 64)
    inv_norm = 1.0 / norm
    mids = a_indices.view(np.uint32)
    targets = b_indices.view(np.uint32)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        acc = np.zeros(n_rows, dtype=np.float64)
        touched = np.empty(n_rows + 1, dtype=np.uint32)
        keys = np.empty(cap, dtype=np.uint64)
        for r0, r1 in pulled_chunks(counter, bounds):
            for a in range(row_start + r0, row_start + r1):
                n_touched = _accumulate_row(
                    acc, touched, a_indptr, mids, b_indptr, targets, penalty, a
                )
                acc[a] = 0.0
                norm_a = norm[a]
                n = 0
                worst = np.uint64(0)  # the k-th best key once the buffer was cut, else 0
                bound = 0.0
                for t in range(n_touched):
                    b = touched[t]
                    x = acc[b]
                    acc[b] = 0.0
                    # no division for most: x / (norm_a · norm[b]) under the midpoint between the k-th best
                    # float32 and the next smaller one rounds below the k-th best (the 1e-12 margin covers
                    # the rounding of x · inv_norm[b] and of the bound)
                    if x * inv_norm[b] < bound:
                        continue
                    value = np.float32(x / (norm_a * norm[b]))
                    if value > 0:
                        key = _rank_key(value, b)
                        if key > worst:
                            keys[n] = key
                            n += 1
                            if n == cap:
                                _select_largest(keys, n, k)
                                n = k
                                worst = keys[k - 1]
                                kth = _key_value(worst)
                                below = np.nextafter(kth, np.float32(0.0))
                                bound = (
                                    (np.float64(below) + np.float64(kth))
                                    * 0.5
                                    * norm_a
                                    * (1.0 - 1e-12)
                                )
                counts[a] = _write_top_k(keys, n, k, out_idx, out_val, a * k)


@jit(parallel=True)
def _cooccurrence_pairs(
    a_indptr,
    a_indices,
    b_indptr,
    b_indices,
    penalty,
    norm,
    k,
    n_workers,
    bounds,
    row_start,
    row_stop,
    heap_val,
    heap_idx,
    heap_cnt,
    heap_min,
):
    """Pairs (a, b < a) for rows ``row_start <= a < row_stop``, offered to the worker's heaps of a and b.

    ``bounds`` (int64) cuts the rows into chunks (relative to ``row_start``) that ``n_workers``
    pull dynamically.
    """
    n_rows = a_indptr.shape[0] - 1
    mids = a_indices.view(np.uint32)
    targets = b_indices.view(np.uint32)
    counter = np.zeros(1, np.int64)
    for w in prange(n_workers):
        acc = np.zeros(n_rows, dtype=np.float64)
        touched = np.empty(n_rows + 1, dtype=np.uint32)
        for r0, r1 in pulled_chunks(counter, bounds):
            for a in range(row_start + r0, row_start + r1):
                n_touched = 0
                for p in range(a_indptr[a], a_indptr[a + 1]):
                    mid = mids[p]
                    start = b_indptr[mid]
                    stop = start + np.searchsorted(
                        targets[start : b_indptr[mid + 1]], np.uint32(a)
                    )  # b < a
                    n_touched = _accumulate(
                        acc, touched, n_touched, targets, start, stop, penalty[mid]
                    )
                for t in range(n_touched):
                    b = touched[t]
                    value = np.float32(acc[b] / (norm[a] * norm[b]))
                    acc[b] = 0.0
                    if value > 0:
                        ha = w * n_rows + a
                        if value >= heap_min[ha]:
                            heap_cnt[ha] = _heap_offer(
                                heap_val, heap_idx, ha * k, heap_cnt[ha], k, value, b
                            )
                            if heap_cnt[ha] == k:
                                heap_min[ha] = heap_val[ha * k]
                        hb = w * n_rows + b
                        if value >= heap_min[hb]:
                            heap_cnt[hb] = _heap_offer(
                                heap_val, heap_idx, hb * k, heap_cnt[hb], k, value, a
                            )
                            if heap_cnt[hb] == k:
                                heap_min[hb] = heap_val[hb * k]


@jit(parallel=True)
def _merge_heaps(heap_val, heap_idx, heap_cnt, n_workers, n_rows, k, out_idx, out_val, counts):
    """Merge every row's per-worker heaps into worker 0's and write it sorted (best first)."""
    bounds = even_bounds(n_rows, n_workers * CHUNKS_PER_WORKER)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            for a in range(r0, r1):
                count = heap_cnt[a]
                for w in range(1, n_workers):
                    h = w * n_rows + a
                    for t in range(heap_cnt[h]):
                        count = _heap_offer(
                            heap_val,
                            heap_idx,
                            a * k,
                            count,
                            k,
                            heap_val[h * k + t],
                            heap_idx[h * k + t],
                        )
                _heap_sorted(heap_val, heap_idx, a * k, count, out_val, out_idx, a * k)
                counts[a] = count


@jit
def neighbors_to_csr(nbr_idx, nbr_val, counts, normalize_max):
    """The top lists of :func:`cooccurrence_topk` as CSR arrays.

    Parameters
    ----------
    nbr_idx : int32 (n_rows, k); nbr_val : float32 (n_rows, k); counts : int64 (n_rows,)
    normalize_max : bool
        Divide each row by its first (largest) value.

    Returns
    -------
    indptr : int64 (n_rows + 1,); indices : int32 (nnz,); data : float32 (nnz,)
    """
    n_rows = counts.shape[0]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    for a in range(n_rows):
        indptr[a + 1] = indptr[a] + counts[a]
    indices = np.empty(indptr[n_rows], dtype=np.int32)
    data = np.empty(indptr[n_rows], dtype=np.float32)
    for a in range(n_rows):
        base = indptr[a]
        top = nbr_val[a, 0]
        for s in range(counts[a]):
            indices[base + s] = nbr_idx[a, s]
            data[base + s] = nbr_val[a, s] / top if normalize_max else nbr_val[a, s]
    return indptr, indices, data


def two_hop_scores(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data, n_items):
    """Dense scores ``(Q @ N)[rows]`` as float32 (len(rows), n_items).

    Parameters
    ----------
    rows : int64 (n_rows,)
        Rows of ``Q`` to score.
    q_indptr : int64, q_indices : int32, q_data : float32
        ``Q`` (n_queries_total × n_mid) in CSR.
    n_indptr : int64, n_indices : int32, n_data : float32
        ``N`` (n_mid × n_items) in CSR.
    n_items : int

    Returns
    -------
    scores : float32 (n_rows, n_items)
        Accumulated in float64 in the order (Q's entries, then N's entries), then cast.
    """
    q = (q_indptr, q_indices, q_data)
    n = (n_indptr, n_indices, n_data)
    return _two_hop_scores(rows, *q, *n, n_items, numba.get_num_threads())


@jit(parallel=True)
def _two_hop_scores(
    rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data, n_items, n_workers
):
    """:func:`two_hop_scores` on ``n_workers`` workers pulling chunks of rows (``kernels._chunks``)."""
    n_rows = rows.shape[0]
    out = np.zeros((n_rows, n_items), dtype=np.float32)
    n_workers = max(1, min(n_workers, n_rows))
    cum = two_hop_cumulative(rows, q_indptr, q_indices, n_indptr)
    bounds = balanced_bounds(cum, n_workers * CHUNKS_PER_WORKER, np.float64(n_items))
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        acc = np.zeros(n_items, dtype=np.float64)
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                row = rows[r]
                for p in range(q_indptr[row], q_indptr[row + 1]):
                    m = q_indices[p]
                    w = np.float64(q_data[p])
                    for q in range(n_indptr[m], n_indptr[m + 1]):
                        acc[n_indices[q]] += w * n_data[q]
                for i in range(n_items):
                    out[r, i] = np.float32(acc[i])
                    acc[i] = 0.0
    return out


@jit(parallel=True)
def two_hop_topk(
    rows,
    q_indptr,
    q_indices,
    q_data,
    n_indptr,
    n_indices,
    n_data,
    n_items,
    ex_indptr,
    ex_indices,
    mask,
    k,
    n_workers,
):
    """Top-``k`` of ``(Q @ N)[rows]`` without a dense score block (the fused path).

    Same scores as :func:`two_hop_scores` followed by :func:`recforge.kernels.topk.topk` with
    ``exclude`` and ``global_mask``, **provided every score is >= 0** (the callers guarantee it: all
    weights are non-negative). Rule: candidates are ordered by (float32 score desc, index asc);
    items no entry reached have score 0, so once the positive scores are used up the row is filled
    with the remaining score-0 items in increasing index order; only a row with fewer than ``k``
    allowed items is padded (``-1`` / ``-inf``).

    Parameters
    ----------
    rows, q_*, n_*, n_items : as in :func:`two_hop_scores`
    ex_indptr : int64 (len(rows) + 1,), ex_indices : int32
        Items excluded per query row (row ``r`` of the exclusion CSR belongs to ``rows[r]``).
    mask : uint8 (n_items,)
        1 = never recommend.
    k : int >= 1
    n_workers : int >= 1
        Parallel workers, each with its own dense accumulator, pulling chunks of rows of about equal
        work (``kernels._chunks``); the result does not depend on it.

    Returns
    -------
    indices : int64 (n_rows, k); values : float32 (n_rows, k)
    """
    n_rows = rows.shape[0]
    out_idx = np.full((n_rows, k), -1, dtype=np.int64)
    out_val = np.full((n_rows, k), -np.inf, dtype=np.float32)
    mids = q_indices.view(np.uint32)  # unsigned: no negative-index handling in the loops
    targets = n_indices.view(np.uint32)
    cum = two_hop_cumulative(rows, q_indptr, q_indices, n_indptr)
    bounds = balanced_bounds(cum, n_workers * CHUNKS_PER_WORKER, np.float64(k))
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        acc = np.zeros(n_items, dtype=np.float64)
        flag = np.zeros(n_items, dtype=np.uint8)  # 1 touched, 2 excluded (per row), reset after
        touched = np.empty(n_items + 1, dtype=np.uint32)
        top_val = np.empty(k, dtype=np.float32)
        top_idx = np.empty(k, dtype=np.int32)
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                row = rows[r]
                n_touched = 0
                for p in range(q_indptr[row], q_indptr[row + 1]):
                    m = mids[p]
                    w = np.float64(q_data[p])
                    for q in range(n_indptr[m], n_indptr[m + 1]):
                        i = targets[q]
                        touched[n_touched] = i  # kept only when i is new: branch-free
                        n_touched += flag[i] == 0
                        flag[i] = 1
                        acc[i] += w * n_data[q]
                for p in range(ex_indptr[r], ex_indptr[r + 1]):
                    flag[ex_indices[p]] = 2
                count = 0
                for t in range(n_touched):
                    i = touched[t]
                    if flag[i] == 1 and mask[i] == 0:
                        value = np.float32(acc[i])
                        if value > 0:
                            count = _insert(top_val, top_idx, 0, count, k, value, i)
                n_pos = count
                for t in range(count):
                    out_idx[r, t] = top_idx[t]
                    out_val[r, t] = top_val[t]
                if count < k:
                    # score-0 fill in index order: skip excluded, masked and already chosen (positive) items
                    for t in range(n_pos):
                        flag[top_idx[t]] = 3
                    i = 0
                    while count < k and i < n_items:
                        if flag[i] != 2 and flag[i] != 3 and mask[i] == 0:
                            out_idx[r, count] = i
                            out_val[r, count] = 0.0
                            count += 1
                        i += 1
                    for t in range(n_pos):
                        flag[top_idx[t]] = 1
                for t in range(n_touched):
                    i = touched[t]
                    acc[i] = 0.0
                    flag[i] = 0
                for p in range(ex_indptr[r], ex_indptr[r + 1]):
                    flag[ex_indices[p]] = 0
    return out_idx, out_val


@jit(parallel=True)
def _cooccurrence_counts(
    a_indptr, a_indices, b_indptr, b_indices, row_start, row_stop, n_workers, bounds, counts
):
    """``counts[a - row_start]`` = distinct rows ``b != a`` sharing an intermediate with row ``a``.

    ``bounds``: chunks of the rows (relative to ``row_start``) that ``n_workers`` pull dynamically.
    """
    n_rows = a_indptr.shape[0] - 1
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        flag = np.zeros(n_rows, dtype=np.uint8)
        touched = np.empty(n_rows + 1, dtype=np.uint32)
        for r0, r1 in pulled_chunks(counter, bounds):
            for a in range(row_start + r0, row_start + r1):
                n_touched = 0
                for p in range(a_indptr[a], a_indptr[a + 1]):
                    mid = a_indices[p]
                    for q in range(b_indptr[mid], b_indptr[mid + 1]):
                        b = b_indices[q]
                        touched[n_touched] = b
                        n_touched += flag[b] == 0
                        flag[b] = 1
                count = n_touched
                for t in range(n_touched):
                    count -= touched[t] == a
                    flag[touched[t]] = 0
                counts[a - row_start] = count


@jit(parallel=True)
def _cooccurrence_fill(
    a_indptr,
    a_indices,
    b_indptr,
    b_indices,
    penalty,
    row_start,
    row_stop,
    n_workers,
    bounds,
    indptr,
    out_indices,
    out_data,
):
    """Rows ``row_start <= a < row_stop`` of :func:`cooccurrence_sums` into preallocated CSR arrays.

    ``bounds``: chunks of the rows (relative to ``row_start``) that ``n_workers`` pull dynamically.
    """
    n_rows = a_indptr.shape[0] - 1
    mids = a_indices.view(np.uint32)
    targets = b_indices.view(np.uint32)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        acc = np.zeros(n_rows, dtype=np.float64)
        touched = np.empty(n_rows + 1, dtype=np.uint32)
        for r0, r1 in pulled_chunks(counter, bounds):
            for a in range(row_start + r0, row_start + r1):
                n_touched = _accumulate_row(
                    acc, touched, a_indptr, mids, b_indptr, targets, penalty, a
                )
                pos = indptr[a - row_start]
                if n_touched * 16 > n_rows:  # a dense row: one ordered scan beats a sort
                    for b in range(n_rows):
                        if acc[b] != 0.0:
                            if b != a:
                                out_indices[pos] = b
                                out_data[pos] = acc[b]
                                pos += 1
                            acc[b] = 0.0
                    continue
                row = touched[:n_touched]
                row.sort()
                for t in range(n_touched):
                    b = row[t]
                    if b != a:
                        out_indices[pos] = b
                        out_data[pos] = acc[b]
                        pos += 1
                    acc[b] = 0.0


def cooccurrence_sums(
    a_indptr, a_indices, b_indptr, b_indices, penalty, row_start, row_stop, n_workers
):
    """Rows ``row_start <= a < row_stop`` of the penalised co-occurrence ``A · diag(penalty) · B``, off-diagonal.

    The un-normalised numerators of :func:`cooccurrence_topk` as a sparse matrix: entry ``(a, b)``,
    ``b != a``, is ``Σ_{m ∈ A[a] ∩ A[b]} penalty[m]``, accumulated in float64 over the shared
    intermediates in increasing order, exactly as :func:`cooccurrence_topk` does before dividing by
    the norms. Summing this over a partition of the intermediates gives the whole numerator, so
    a cluster computes it per partition and adds the pieces (``recforge.distributed``).

    Parameters
    ----------
    a_indptr : int64 (n_rows + 1,); a_indices : int32 (nnz,), sorted within rows
    b_indptr : int64 (n_mid + 1,); b_indices : int32 (nnz,), ``Aᵀ``, sorted within rows
    penalty : float64 (n_mid,)
    row_start, row_stop : int, ``0 <= row_start <= row_stop <= n_rows``
    n_workers : int >= 1
        Parallel workers pulling chunks of rows of about equal work; the result does not depend on it.

    Returns
    -------
    indptr : int64 (row_stop - row_start + 1,); indices : int32 (nnz,), sorted within rows;
    data : float64 (nnz,)
    """
    n_out = int(row_stop) - int(row_start)
    n_workers = int(n_workers)
    rows = np.arange(int(row_start), int(row_stop), dtype=np.int64)
    cum = two_hop_cumulative(rows, a_indptr, a_indices, b_indptr)
    bounds = balanced_bounds(cum, n_workers * CHUNKS_PER_WORKER, 1.0)
    counts = np.zeros(n_out, dtype=np.int64)
    _cooccurrence_counts(
        a_indptr,
        a_indices,
        b_indptr,
        b_indices,
        int(row_start),
        int(row_stop),
        n_workers,
        bounds,
        counts,
    )
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float64)
    _cooccurrence_fill(
        a_indptr,
        a_indices,
        b_indptr,
        b_indices,
        penalty,
        int(row_start),
        int(row_stop),
        n_workers,
        bounds,
        indptr,
        indices,
        data,
    )
    return indptr, indices, data


@jit(parallel=True)
def topk_csr_rows(indptr, indices, data, row_start, norm, n_neighbors, n_workers):
    """Top-``n_neighbors`` of each row of summed co-occurrence numerators (the last step of the similarity).

    Row ``r`` is row ``a = row_start + r`` of the whole matrix; its entry ``(a, b)`` with numerator
    ``x`` has similarity ``float32(x / (norm[a] · norm[b]))``, exactly as in :func:`cooccurrence_topk`,
    and the kept neighbours are the same: positive similarities by (value desc, index asc).

    Parameters
    ----------
    indptr : int64 (n_rows + 1,); indices : int32 (nnz,); data : float64 (nnz,)
    row_start : int
    norm : float64 (n_total_rows,), > 0
    n_neighbors, n_workers : int >= 1

    Returns
    -------
    nbr_idx : int32 (n_rows, n_neighbors), ``-1`` pads; nbr_val : float32 (n_rows, n_neighbors), 0 pads;
    counts : int64 (n_rows,)
    """
    n_rows = indptr.shape[0] - 1
    k = n_neighbors
    out_idx = np.full(n_rows * k, -1, dtype=np.int32)
    out_val = np.zeros(n_rows * k, dtype=np.float32)
    counts = np.zeros(n_rows, dtype=np.int64)
    bounds = balanced_bounds(indptr, n_workers * CHUNKS_PER_WORKER, 1.0)
    counter = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        cap = 64
        keys = np.empty(cap, dtype=np.uint64)
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                length = indptr[r + 1] - indptr[r]
                if length > cap:
                    cap = length
                    keys = np.empty(cap, dtype=np.uint64)
                norm_a = norm[row_start + r]
                n = 0
                for p in range(indptr[r], indptr[r + 1]):
                    b = indices[p]
                    value = np.float32(data[p] / (norm_a * norm[b]))
                    if value > 0:
                        keys[n] = _rank_key(value, b)
                        n += 1
                counts[r] = _write_top_k(keys, n, k, out_idx, out_val, r * k)
    return out_idx.reshape(n_rows, k), out_val.reshape(n_rows, k), counts


def _warmup():
    """Every kernel with the argument types ItemCF and UserCF pass (``recall/_neighbors.py``).

    The interactions' own CSR arrays are read-only, so the index array of one side of the
    similarity is read-only: the item side's in UserCF, the user side's in ItemCF.
    """
    from ._jit import read_only

    a_indptr, a_indices = np.array([0, 2, 3], np.int64), np.array([0, 1, 1], np.int32)  # 2 × 2
    b_indptr, b_indices = np.array([0, 1, 3], np.int64), np.array([0, 0, 1], np.int32)  # Aᵀ
    weights = np.ones(2, np.float64)
    for a_idx, b_idx in ((read_only(a_indices), b_indices), (a_indices, read_only(b_indices))):
        for kernel in (cooccurrence_topk, cooccurrence_topk_symmetric):
            idx, val, counts = kernel(a_indptr, a_idx, b_indptr, b_idx, weights, weights, 1, 1)
    neighbors_to_csr(idx, val, counts, True)
    rows = np.arange(2, dtype=np.int64)
    data = np.ones(3, np.float32)
    two_hop_scores(rows, a_indptr, a_indices, data, b_indptr, b_indices, data, 2)
    two_hop_topk(
        rows,
        a_indptr,
        a_indices,
        data,
        b_indptr,
        b_indices,
        data,
        2,
        a_indptr,
        a_indices,
        np.zeros(2, np.uint8),
        1,
        1,
    )
    # the per-partition pieces of the distributed similarity (recforge.distributed.neighbors)
    sums = cooccurrence_sums(a_indptr, a_indices, b_indptr, b_indices, weights, 0, 2, 1)
    topk_csr_rows(*sums, 0, weights, 1, 1)
