"""Numba kernels of the two-stage pipeline: candidate merge, as-of features, per-user top-k.

Every kernel works on one block of query rows (users) at a time, so memory stays bounded by the
block. Rows are independent: each kernel is a serial ``nogil`` loop over a row range
``[r0, r1)``, and its public wrapper splits the rows into many small chunks that the calling
thread and a pool of helpers pull from a shared counter (:func:`._chunks.run_row_chunks`), so
a core taken by another process delays one chunk, not half of the rows (a static ``prange``
would wait for it). Each row writes only its own output slots: the results are identical for
any ``n_threads``. Validation happens in :mod:`recforge.pipeline`.
"""

from __future__ import annotations

import inspect

import numpy as np

from ._chunks import run_row_chunks
from ._jit import jit
from ._search import lower_bound, upper_bound
from .segsort import segment_argsort


def _row_chunked(name, rows_kernel, n_rows):
    """The public form of the row kernel ``rows_kernel(r0, r1, *arrays)``: a function of
    ``(*arrays, n_threads=1)`` (the row kernel's docstring documents it) that runs the kernel
    over all ``n_rows(**arrays by name)`` rows in chunks the calling thread and
    ``n_threads - 1`` helpers pull (:func:`._chunks.run_row_chunks`)."""
    names = list(inspect.signature(rows_kernel.py_func).parameters)[2:]
    signature = inspect.Signature(
        [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in names]
        + [inspect.Parameter("n_threads", inspect.Parameter.KEYWORD_ONLY, default=1)]
    )

    def kernel(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arrays = [bound.arguments[arg] for arg in names]
        count = n_rows(**dict(zip(names, arrays)))
        run_row_chunks(rows_kernel, count, bound.arguments["n_threads"], *arrays)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = rows_kernel.py_func.__doc__
    kernel.__signature__ = signature
    return kernel


@jit
def _merge_rows(
    r0,
    r1,
    lists,
    quotas,
    target,
    rrf_k,
    out_items,
    out_scores,
    out_ranks,
    out_rrf,
    out_n_sources,
    counts,
    list_scores,
):
    """Merge each row's per-source lists into one deduplicated candidate list.

    Parameters
    ----------
    lists : int64 (n_sources, n_rows, depth)
        Each source's ranked item indices, best first, ``-1`` pads.
    list_scores : float32 (n_sources, n_rows, depth)
        Their scores.
    quotas : int64 (n_sources,)
        How many new (not yet taken) items each source contributes first, in source order.
    target : int
        Candidates per row: after the quotas, the remaining slots are filled by reciprocal-rank
        fusion order over all fetched items.
    rrf_k : float
        The constant of the fusion score ``sum_s 1 / (rrf_k + rank_s)`` (ranks from 1).
    out_items : int64 (n_rows, target), filled with -1 where a row has fewer candidates
    out_scores, out_ranks : float32 (n_rows, target, n_sources), NaN where a source missed the item
    out_rrf, out_n_sources : float32 (n_rows, target)
    counts : int64 (n_rows,) — candidates written per row.
    n_threads : int — threads pulling chunks of rows

    Each row's candidates are written in fusion order (higher ``rrf`` first, then lower item index).
    """
    n_sources, _n_rows, depth = lists.shape
    for r in range(r0, r1):
        m = n_sources * depth
        flat = np.empty(m, np.int64)
        n = 0
        for s in range(n_sources):
            for j in range(depth):
                it = lists[s, r, j]
                if it >= 0:
                    flat[n] = it
                    n += 1
        uniq = np.unique(flat[:n])
        nu = uniq.size
        rrf = np.zeros(nu, np.float64)
        score = np.full((nu, n_sources), np.nan, np.float32)
        rank = np.full((nu, n_sources), np.nan, np.float32)
        nsrc = np.zeros(nu, np.float32)
        chosen = np.zeros(nu, np.bool_)
        for s in range(n_sources):
            for j in range(depth):
                it = lists[s, r, j]
                if it < 0:
                    continue
                p = np.searchsorted(uniq, it)
                if np.isnan(rank[p, s]):  # a source listing an item twice keeps its best rank
                    rank[p, s] = j + 1
                    score[p, s] = list_scores[s, r, j]
                    rrf[p] += 1.0 / (rrf_k + j + 1)
                    nsrc[p] += 1.0
        n_chosen = 0
        for s in range(n_sources):
            taken = 0
            for j in range(depth):
                if taken >= quotas[s] or n_chosen >= target:
                    break
                it = lists[s, r, j]
                if it < 0:
                    break
                p = np.searchsorted(uniq, it)
                if not chosen[p]:
                    chosen[p] = True
                    taken += 1
                    n_chosen += 1
        # fusion order: -rrf, then item index (uniq is sorted, a stable sort keeps it)
        order = np.argsort(-rrf, kind="mergesort")
        if n_chosen < target:
            for q in range(nu):
                if n_chosen >= target:
                    break
                p = order[q]
                if not chosen[p]:
                    chosen[p] = True
                    n_chosen += 1
        c = 0
        for q in range(nu):
            p = order[q]
            if chosen[p]:
                out_items[r, c] = uniq[p]
                out_rrf[r, c] = rrf[p]
                out_n_sources[r, c] = nsrc[p]
                for s in range(n_sources):
                    out_scores[r, c, s] = score[p, s]
                    out_ranks[r, c, s] = rank[p, s]
                c += 1
        counts[r] = c


merge_candidates = _row_chunked("merge_candidates", _merge_rows, lambda lists, **_: lists.shape[1])


@jit
def _user_features_rows(
    r0,
    r1,
    h_indptr,
    h_items,
    h_times,
    h_weights,
    as_of,
    windows,
    high,
    i_indptr,
    i_times,
    genres,
    decay,
    out,
    out_profile,
):
    """Per-row user features from each row's own history (time-sorted), as of ``as_of[r]``.

    Parameters
    ----------
    h_indptr : int64 (n_rows + 1,); h_items : int64; h_times : float64; h_weights : float32
        Each row's history sorted by time (only events <= as_of are read).
    as_of : float64 (n_rows,)
    windows : float64 (n_windows,) — window lengths in seconds
    high : float — a weight >= high counts as a "high" (strongly positive) event
    i_indptr : int64 (n_items + 1,); i_times : float64 — every item's event times, sorted per item
    genres : float32 (n_items, n_genres), L2-normalised rows (n_genres may be 0)
    decay : float — per-day decay of the genre profile
    out : float32 (n_rows, 7 + n_windows) — n_events, events per window, days since last,
        days since first, weight mean, weight std, high share, mean log1p item popularity (NaN
        from "days since last" on when the row has no history)
    out_profile : float32 (n_rows, n_genres) — decayed genre profile, L2-normalised
    n_threads : int — threads pulling chunks of rows
    """
    n_w = windows.size
    n_g = genres.shape[1]
    for r in range(r0, r1):
        t = as_of[r]
        a = h_indptr[r]
        b = upper_bound(h_times, a, h_indptr[r + 1], t)
        n = b - a
        out[r, 0] = n
        for w in range(n_w):
            out[r, 1 + w] = b - upper_bound(h_times, a, b, t - windows[w])
        if n == 0:
            for c in range(1 + n_w, out.shape[1]):
                out[r, c] = np.nan
            for g in range(n_g):
                out_profile[r, g] = 0.0
            continue
        out[r, 1 + n_w] = (t - h_times[b - 1]) / 86400.0
        out[r, 2 + n_w] = (t - h_times[a]) / 86400.0
        s = 0.0
        s2 = 0.0
        nh = 0
        lp = 0.0
        for j in range(a, b):
            x = h_weights[j]
            s += x
            s2 += x * x
            if x >= high:
                nh += 1
            it = h_items[j]
            lp += np.log1p(upper_bound(i_times, i_indptr[it], i_indptr[it + 1], t) - i_indptr[it])
        mean = s / n
        out[r, 3 + n_w] = mean
        out[r, 4 + n_w] = np.sqrt(max(s2 / n - mean * mean, 0.0))
        out[r, 5 + n_w] = nh / n
        out[r, 6 + n_w] = lp / n
        if n_g > 0:
            norm = 0.0
            prof = np.zeros(n_g, np.float64)
            for j in range(a, b):
                wt = np.exp(-decay * (t - h_times[j]) / 86400.0)
                it = h_items[j]
                for g in range(n_g):
                    prof[g] += wt * genres[it, g]
            for g in range(n_g):
                norm += prof[g] * prof[g]
            norm = np.sqrt(norm)
            for g in range(n_g):
                out_profile[r, g] = prof[g] / norm if norm > 0 else 0.0


user_features = _row_chunked("user_features", _user_features_rows, lambda as_of, **_: as_of.size)


@jit
def _csr_value(indptr, indices, data, row, col):
    """``M[row, col]`` of a CSR matrix with sorted indices (0 when absent)."""
    a = lower_bound(indices, indptr[row], indptr[row + 1], col)
    if a < indptr[row + 1] and indices[a] == col:
        return data[a]
    return 0.0


@jit
def _candidate_features_rows(
    r0,
    r1,
    c_offsets,
    c_items,
    h_indptr,
    h_items,
    h_times,
    as_of,
    windows,
    high,
    i_indptr,
    i_times,
    i_cumw,
    i_cumhigh,
    n_last,
    s_indptr,
    s_indices,
    s_data,
    emb,
    genres,
    profile,
    t_indptr,
    t_indices,
    t_data,
    t_total,
    out,
):
    """Per-candidate item, user–item and statistics features as of each row's ``as_of``.

    Parameters
    ----------
    c_offsets : int64 (n_rows + 1,); c_items : int64 (n_cand,) — each row's candidate items
    h_indptr, h_items, h_times : each row's time-sorted history (as in :func:`user_features`)
    i_indptr, i_times : every item's event times, sorted per item
    i_cumw, i_cumhigh : float64 (nnz + n_items,) — per item, the cumulated weights / high events
        along its sorted events, with a leading 0 (item ``j`` uses ``[i_indptr[j] + j, i_indptr[j+1] + j]``)
    n_last : int — the user's last items the similarities look at
    s_indptr, s_indices, s_data : item–item similarity CSR with sorted rows (0 rows: no feature)
    emb : float32 (n_items, d) L2-normalised embeddings (d = 0: no feature)
    genres : float32 (n_items, n_genres) L2-normalised; profile : float32 (n_rows, n_genres)
    t_indptr : int64, t_indices : int32, t_data : float64 — the transition counts a -> b as a CSR
        with sorted rows (1 entry in ``t_indptr``: no feature); t_total : float64 (n_items,) —
        each row's sum
    out : float32 (n_cand, 16 + n_windows)
        item: events as of, events per window, trend (first window vs second, scaled), days since
        first, days since last, weight mean, high share; user–item: ItemCF similarity max / decayed
        sum / mean to the last items, embedding cosine max / mean to the last items, genre match;
        sequence: transitions last item -> candidate, their share of the last item's transitions,
        the shares from the last ``n_last`` items summed with decay 0.8 per step back,
        transitions candidate -> last item.
    n_threads : int — threads pulling chunks of rows
    """
    n_w = windows.size
    use_sim = s_indptr.size > 1
    use_seq = t_indptr.size > 1
    d = emb.shape[1]
    n_g = genres.shape[1]
    # the decayed transition shares of one row's last items, scattered over all items (zeroed
    # again after the row) when their transition rows are shorter than the row's binary
    # searches would be: the same terms summed in the same j order as a per-candidate sum
    shares = np.zeros(t_total.size if use_seq else 0, np.float64)
    for r in range(r0, r1):
        t = as_of[r]
        ha = h_indptr[r]
        hb = upper_bound(h_times, ha, h_indptr[r + 1], t)
        la = max(ha, hb - n_last)
        scatter = False
        if use_seq:
            scanned = 0
            for j in range(la, hb):
                scanned += t_indptr[h_items[j] + 1] - t_indptr[h_items[j]]
            scatter = scanned <= 16 * (hb - la) * (c_offsets[r + 1] - c_offsets[r])
        if scatter:
            for j in range(la, hb):
                h = h_items[j]
                wj = 0.8 ** (hb - 1 - j)
                denom = max(t_total[h], 1.0)
                for p in range(t_indptr[h], t_indptr[h + 1]):
                    shares[t_indices[p]] += wj * (t_data[p] / denom)
        for c in range(c_offsets[r], c_offsets[r + 1]):
            it = c_items[c]
            a = i_indptr[it]
            b = upper_bound(i_times, a, i_indptr[it + 1], t)
            n = b - a
            out[c, 0] = n
            for w in range(n_w):
                out[c, 1 + w] = b - upper_bound(i_times, a, b, t - windows[w])
            if n_w >= 2:
                out[c, 1 + n_w] = (out[c, 1] + 1.0) / (out[c, 2] * windows[0] / windows[1] + 1.0)
            else:
                out[c, 1 + n_w] = np.nan
            if n > 0:
                out[c, 2 + n_w] = (t - i_times[a]) / 86400.0
                out[c, 3 + n_w] = (t - i_times[b - 1]) / 86400.0
                base = a + it
                out[c, 4 + n_w] = (i_cumw[base + n] - i_cumw[base]) / n
                out[c, 5 + n_w] = (i_cumhigh[base + n] - i_cumhigh[base]) / n
            else:
                for q in range(2 + n_w, 6 + n_w):
                    out[c, q] = np.nan
            o = 6 + n_w
            smax = 0.0
            ssum = 0.0
            smean = 0.0
            emax = -1.0
            emean = 0.0
            nl = hb - la
            for j in range(la, hb):
                h = h_items[j]
                if use_sim:
                    v = _csr_value(s_indptr, s_indices, s_data, h, it)
                    smax = max(smax, v)
                    smean += v
                    ssum += v * 0.8 ** (hb - 1 - j)
                if d > 0:
                    e = 0.0
                    for q in range(d):
                        e += emb[h, q] * emb[it, q]
                    emax = max(emax, e)
                    emean += e
            if nl == 0:
                for q in range(o, o + 6):
                    out[c, q] = np.nan
            else:
                out[c, o] = smax if use_sim else np.nan
                out[c, o + 1] = ssum if use_sim else np.nan
                out[c, o + 2] = smean / nl if use_sim else np.nan
                out[c, o + 3] = emax if d > 0 else np.nan
                out[c, o + 4] = emean / nl if d > 0 else np.nan
            if n_g > 0:
                g = 0.0
                for q in range(n_g):
                    g += profile[r, q] * genres[it, q]
                out[c, o + 5] = g
            else:
                out[c, o + 5] = np.nan
            q0 = o + 6
            if use_seq and nl > 0:
                last = h_items[hb - 1]
                tv = _csr_value(t_indptr, t_indices, t_data, last, it)
                out[c, q0] = tv
                out[c, q0 + 1] = tv / max(t_total[last], 1.0)
                if scatter:
                    out[c, q0 + 2] = shares[it]
                else:
                    acc = 0.0
                    for j in range(la, hb):
                        h = h_items[j]
                        tv = _csr_value(t_indptr, t_indices, t_data, h, it)
                        acc += 0.8 ** (hb - 1 - j) * (tv / max(t_total[h], 1.0))
                    out[c, q0 + 2] = acc
                out[c, q0 + 3] = _csr_value(t_indptr, t_indices, t_data, it, last)
            else:
                for q in range(q0, q0 + 4):
                    out[c, q] = np.nan
        if scatter:
            for j in range(la, hb):
                h = h_items[j]
                for p in range(t_indptr[h], t_indptr[h + 1]):
                    shares[t_indices[p]] = 0.0


candidate_features = _row_chunked(
    "candidate_features", _candidate_features_rows, lambda as_of, **_: as_of.size
)


@jit
def _segment_topk_rows(
    r0,
    r1,
    offsets,
    items,
    scores,
    k,
    out_items,
    out_scores,
):
    """Each row's ``k`` best candidates: score descending, ties by lower item index; -1 / -inf pad.

    offsets : int64 (n_rows + 1,); items : int64; scores : float32 (finite)
    out_items : int64 (n_rows, k); out_scores : float32 (n_rows, k)
    n_threads : int — threads pulling chunks of rows
    """
    for r in range(r0, r1):
        a, b = offsets[r], offsets[r + 1]
        n = b - a
        for j in range(k):
            out_items[r, j] = -1
            out_scores[r, j] = -np.inf
        if n == 0:
            continue
        seg_items = items[a:b]
        order = np.argsort(
            seg_items, kind="mergesort"
        )  # item order first, then a stable score sort
        seg_scores = np.empty(n, np.float32)
        for j in range(n):
            seg_scores[j] = -scores[a + order[j]]
        order2 = np.argsort(seg_scores, kind="mergesort")
        for j in range(min(k, n)):
            p = order[order2[j]]
            out_items[r, j] = seg_items[p]
            out_scores[r, j] = scores[a + p]


segment_topk = _row_chunked(
    "segment_topk", _segment_topk_rows, lambda offsets, **_: offsets.size - 1
)


def _warmup():
    lists = np.array([[[0, 1]], [[1, -1]]], np.int64)
    n_s, n_r, _depth = lists.shape
    target = 2
    items = np.full((n_r, target), -1, np.int64)
    sc = np.full((n_r, target, n_s), np.nan, np.float32)
    rk = sc.copy()
    rrf = np.zeros((n_r, target), np.float32)
    ns = rrf.copy()
    counts = np.zeros(n_r, np.int64)
    merge_candidates(
        lists,
        np.array([1, 1], np.int64),
        target,
        60.0,
        items,
        sc,
        rk,
        rrf,
        ns,
        counts,
        np.ones(lists.shape, np.float32),
    )
    h_indptr = np.array([0, 2], np.int64)
    h_items = np.array([0, 1], np.int64)
    h_times = np.array([0.0, 1.0])
    i_indptr = np.array([0, 1, 2], np.int64)
    i_times = np.array([0.0, 1.0])
    genres = np.ones((2, 1), np.float32)
    windows = np.array([1.0, 2.0])
    uf = np.zeros((1, 7 + windows.size), np.float32)
    prof = np.zeros((1, 1), np.float32)
    as_of = np.array([1.0])
    user_features(
        h_indptr,
        h_items,
        h_times,
        np.ones(2, np.float32),
        as_of,
        windows,
        1.0,
        i_indptr,
        i_times,
        genres,
        0.0,
        uf,
        prof,
    )
    cum = np.zeros(4)
    cf = np.zeros((2, 16 + windows.size), np.float32)
    c_offsets = np.array([0, 2], np.int64)
    candidate_features(
        c_offsets,
        h_items,
        h_indptr,
        h_items,
        h_times,
        as_of,
        windows,
        1.0,
        i_indptr,
        i_times,
        cum,
        cum,
        5,
        np.array([0, 1, 1], np.int64),
        np.array([1], np.int32),
        np.ones(1, np.float32),
        np.ones((2, 1), np.float32),
        genres,
        prof,
        np.array([0, 1, 1], np.int64),
        np.array([1], np.int32),
        np.ones(1),
        np.ones(2),
        cf,
    )
    out_i = np.empty((1, 1), np.int64)
    out_s = np.empty((1, 1), np.float32)
    segment_topk(c_offsets, h_items, np.ones(2, np.float32), 1, out_i, out_s)
    # the pipeline's as-of state sorts each history by the interactions' read-only timestamps
    read_only = np.array([1.0, 0.0])
    read_only.flags.writeable = False
    segment_argsort(h_indptr, read_only)
