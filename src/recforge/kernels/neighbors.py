"""Neighbourhood collaborative filtering kernels (ItemCF / UserCF): thin wrappers over C++.

The loops live in ``csrc/include/recforge/neighbors.hpp`` (``recforge._core``, GIL released, the
C++ thread pool pulling chunks of rows of about equal work): a fit or a recommend of ItemCF /
UserCF starts no Numba. Functions on CSR arrays (``indptr`` int64, ``indices`` int32, ``data``
float32 unless said):

* :func:`cooccurrence_topk` / :func:`cooccurrence_topk_symmetric` — penalised co-occurrence cosine
  similarity of the rows of a sparse matrix and the top-``K`` neighbours of every row (never a dense
  row × row matrix). Same result; the first computes every row on its own (each pair twice, top
  lists stay in cache: faster on small data), the second each pair once (half the accumulation
  work, scattered heap updates: faster on large data).
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
the fused path give bit-identical scores. Validation of the matrices lives in the Python callers;
these wrappers cast dtypes and the bindings check the lengths they index by.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import resolve_n_threads


def _i64(a):
    return np.ascontiguousarray(a, dtype=np.int64)


def _i32(a):
    return np.ascontiguousarray(a, dtype=np.int32)


def _f64(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _similarity_inputs(a_indptr, a_indices, b_indptr, b_indices, penalty, norm):
    return (
        _i64(a_indptr),
        _i32(a_indices),
        _i64(b_indptr),
        _i32(b_indices),
        _f64(penalty),
        _f64(norm),
    )


def _two_hop_inputs(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data):
    return (
        _i64(rows),
        _i64(q_indptr),
        _i32(q_indices),
        _f32(q_data),
        _i64(n_indptr),
        _i32(n_indices),
        _f32(n_data),
    )


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
        Threads, each with its own accumulator, pulling contiguous chunks of rows of about equal
        work. The result does not depend on it.
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


def _top_lists(n_rows, k):
    """Empty top lists, flat: nbr_idx int32 (n_rows * k,) of -1, nbr_val float32 of 0, counts int64."""
    return (
        np.full(n_rows * k, -1, dtype=np.int32),
        np.zeros(n_rows * k, dtype=np.float32),
        np.zeros(n_rows, dtype=np.int64),
    )


def _similarity_kernel(name, by_pairs):
    """The public similarity function ``name``: every row on its own, or (``by_pairs``) each pair
    once into one bounded heap per row, written out best first at the end."""

    def kernel(
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
        inputs = _similarity_inputs(a_indptr, a_indices, b_indptr, b_indices, penalty, norm)
        n_rows = inputs[0].shape[0] - 1
        k = int(n_neighbors)
        n_threads = max(1, int(n_workers))
        out = _top_lists(n_rows, k)
        if by_pairs:
            # the heap of row a at a * k, shared by the threads; its count and k-th best (once
            # full, 0 before) at a
            heaps = (
                np.empty(n_rows * k, dtype=np.float32),
                np.empty(n_rows * k, dtype=np.int32),
                np.zeros(n_rows, dtype=np.int64),
                np.zeros(n_rows, dtype=np.float32),
            )
            step, into = _core.neighbors_cooccurrence_pairs, heaps
        else:
            step, into = _core.neighbors_cooccurrence_rows, out
        edges = np.linspace(0, n_rows, max(1, int(n_slices)) + 1).astype(np.int64)
        for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist()):
            if stop > start:
                step(*inputs, k, start, stop, n_threads, *into)
                if progress is not None:
                    progress(stop - start)
        if by_pairs:
            _core.neighbors_merge_heaps(*heaps[:3], n_rows, k, n_threads, *out)
        return out[0].reshape(n_rows, k), out[1].reshape(n_rows, k), out[2]

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


cooccurrence_topk = _similarity_kernel("cooccurrence_topk", by_pairs=False)
cooccurrence_topk.__doc__ = (
    """Top-``n_neighbors`` penalised cosine neighbours of every row of ``A``, row by row.

    Every row is computed on its own (each pair twice); its candidates are reduced with an O(m)
    selection. Faster than :func:`cooccurrence_topk_symmetric` on small data.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.neighbors import cooccurrence_topk
    >>> a_indptr, a_indices = np.array([0, 2, 3, 4]), np.array([0, 1, 1, 0])  # 3 rows × 2
    >>> b_indptr, b_indices = np.array([0, 2, 4]), np.array([0, 2, 0, 1])  # Aᵀ
    >>> norm = np.sqrt([2.0, 1.0, 1.0])
    >>> idx, val, counts = cooccurrence_topk(a_indptr, a_indices, b_indptr, b_indices,
    ...                                      np.ones(2), norm, 1, 1)
    >>> idx.tolist(), counts.tolist()
    ([[1], [0], [0]], [1, 1, 1])
"""
    + _COOC_DOC
)


cooccurrence_topk_symmetric = _similarity_kernel("cooccurrence_topk_symmetric", by_pairs=True)
cooccurrence_topk_symmetric.__doc__ = (
    """Top-``n_neighbors`` penalised cosine neighbours of every row of ``A``, each pair once.

    Each pair is computed from its larger row (``b < a``; both sides sum over the shared
    intermediates in increasing order, so the value is the same either way) and offered to both
    rows' bounded heaps: one heap per row (memory ``n_rows · n_neighbors · 8`` bytes) shared by the
    threads, each behind its own lock. Half the accumulation work of :func:`cooccurrence_topk`,
    scattered heap updates: faster on large data.
"""
    + _COOC_DOC
)


def neighbors_to_csr(nbr_idx, nbr_val, counts, normalize_max):
    """The top lists of :func:`cooccurrence_topk` as CSR arrays.

    Parameters
    ----------
    nbr_idx : int32 (n_rows, k); nbr_val : float32 (n_rows, k); counts : int64 (n_rows,)
    normalize_max : bool
        Divide each row by its first (largest) value (in float32).

    Returns
    -------
    indptr : int64 (n_rows + 1,); indices : int32 (nnz,); data : float32 (nnz,)

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.neighbors import neighbors_to_csr
    >>> idx = np.array([[1, 2], [0, -1]], np.int32)
    >>> val = np.array([[0.5, 0.25], [0.5, 0.0]], np.float32)
    >>> indptr, indices, data = neighbors_to_csr(idx, val, np.array([2, 1]), True)
    >>> indptr.tolist(), indices.tolist(), data.tolist()
    ([0, 2, 3], [1, 2, 0], [1.0, 0.5, 1.0])
    """
    counts = np.asarray(counts, dtype=np.int64)
    nbr_val = np.asarray(nbr_val, dtype=np.float32)
    k = nbr_val.shape[1] if nbr_val.ndim == 2 else 0
    indptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    kept = np.arange(k)[None, :] < counts[:, None]  # each row's first counts[a] entries, row-major
    indices = np.ascontiguousarray(np.asarray(nbr_idx)[kept], dtype=np.int32)
    data = np.ascontiguousarray(nbr_val[kept])
    if normalize_max and data.size:
        data = data / np.repeat(nbr_val[:, 0], counts)
    return indptr, indices, data


def two_hop_scores(
    rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data, n_items, n_threads=None
):
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
    n_threads : int or None
        Threads (``None`` = every available core); the result does not depend on it.

    Returns
    -------
    scores : float32 (n_rows, n_items)
        Accumulated in float64 in the order (Q's entries, then N's entries), then cast.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.neighbors import two_hop_scores
    >>> q = (np.array([0, 1]), np.array([0]), np.array([2.0]))  # Q = [[2]]
    >>> n = (np.array([0, 2]), np.array([0, 2]), np.array([0.5, 1.0]))  # N = [[0.5, 0, 1]]
    >>> two_hop_scores(np.array([0]), *q, *n, 3).tolist()
    [[1.0, 0.0, 2.0]]
    """
    return _core.neighbors_two_hop_scores(
        *_two_hop_inputs(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data),
        int(n_items),
        resolve_n_threads(n_threads),
    )


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
        Threads, each with its own dense accumulator, pulling chunks of rows of about equal work;
        the result does not depend on it.

    Returns
    -------
    indices : int64 (n_rows, k); values : float32 (n_rows, k)

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.kernels.neighbors import two_hop_topk
    >>> q = (np.array([0, 1]), np.array([0]), np.array([2.0]))  # Q = [[2]]
    >>> n = (np.array([0, 2]), np.array([0, 2]), np.array([0.5, 1.0]))  # N = [[0.5, 0, 1]]
    >>> no_exclusions = (np.array([0, 0]), np.array([], np.int32))
    >>> idx, val = two_hop_topk(np.array([0]), *q, *n, 3, *no_exclusions, np.zeros(3, np.uint8), 2, 1)
    >>> idx.tolist(), val.tolist()
    ([[2, 0]], [[2.0, 1.0]])
    """
    return _core.neighbors_two_hop_topk(
        *_two_hop_inputs(rows, q_indptr, q_indices, q_data, n_indptr, n_indices, n_data),
        int(n_items),
        _i64(ex_indptr),
        _i32(ex_indices),
        np.ascontiguousarray(mask, dtype=np.uint8),
        int(k),
        max(1, int(n_workers)),
    )


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
        Threads pulling chunks of rows of about equal work; the result does not depend on it.

    Returns
    -------
    indptr : int64 (row_stop - row_start + 1,); indices : int32 (nnz,), sorted within rows;
    data : float64 (nnz,)
    """
    a_indptr, a_indices, b_indptr, b_indices = (
        _i64(a_indptr),
        _i32(a_indices),
        _i64(b_indptr),
        _i32(b_indices),
    )
    row_start, row_stop, n_threads = int(row_start), int(row_stop), max(1, int(n_workers))
    counts = np.zeros(max(0, row_stop - row_start), dtype=np.int64)
    csr = (a_indptr, a_indices, b_indptr, b_indices)
    _core.neighbors_cooccurrence_counts(*csr, row_start, row_stop, n_threads, counts)
    indptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float64)
    _core.neighbors_cooccurrence_fill(
        *csr, _f64(penalty), row_start, row_stop, n_threads, indptr, indices, data
    )
    return indptr, indices, data


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
    indptr = _i64(indptr)
    n_rows = indptr.shape[0] - 1
    k = int(n_neighbors)
    out_idx, out_val, counts = _top_lists(n_rows, k)
    _core.neighbors_topk_csr_rows(
        indptr,
        _i32(indices),
        _f64(data),
        int(row_start),
        _f64(norm),
        k,
        max(1, int(n_workers)),
        out_idx,
        out_val,
        counts,
    )
    return out_idx.reshape(n_rows, k), out_val.reshape(n_rows, k), counts
