# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""The per-request path's compiled helpers: id maps, top-k, embedding scores, the merge of the
sources' lists, the feature rows and the ranker's trees — for one request, the GIL released.

``IdIndex`` replaces ``IdMap.index`` on the request path (a C++ ``unordered_map`` built once at
load; one lookup is ~50 ns instead of ~50 us through numpy). ``topk_excluding`` selects the best
``k`` of one dense score row with ``recforge::topk_row`` (csrc/include/recforge/topk.hpp, the
function behind ``recforge.kernels.topk.topk``), the GIL released.

The pipeline's steps for ONE user follow the pipeline's batch kernels exactly (the equality tests
hold them to ``TwoStage.recommend``): :func:`merge_row` is ``kernels.pipeline._merge_rows`` for one
row, :class:`FeatureTables` fills the rows ``pipeline.features.build_features`` writes (same
operations in the same order and precision), and :class:`TreeScorer` calls ``predict_raw`` of
``csrc/include/recforge/tree_predict.hpp`` on a forest packed once at load.
"""

from cython.operator cimport dereference as deref
from libc.math cimport NAN, log1p, sqrt
from libc.math cimport exp as c_exp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from libcpp.algorithm cimport nth_element, partial_sort, sort, unique
from libcpp.pair cimport pair
from libcpp.string cimport string
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

import numpy as np
import scipy.sparse as sp


cdef extern from "recforge/topk.hpp" namespace "recforge" nogil:
    cdef cppclass Candidate[Score]:
        pass
    int64_t topk_row[Score](const Score* scores, int64_t n_items, int64_t k,
                            const uint8_t* excluded, vector[Candidate[Score]]& heap,
                            int64_t* out_index, Score* out_score)


cdef extern from "recforge/neighbors.hpp" namespace "recforge::neighbors" nogil:
    cdef cppclass TwoHopTopkCall:
        const int64_t* rows
        const int64_t* q_indptr
        const int32_t* q_indices
        const float* q_data
        const int64_t* n_indptr
        const uint32_t* targets
        const float* n_data
        int64_t n_items
        const int64_t* ex_indptr
        const int32_t* ex_indices
        const uint8_t* mask
        int64_t k
        int64_t* out_idx
        float* out_val
    cdef cppclass TwoHopScratch:
        vector[double] acc
        vector[uint8_t] flag
        vector[uint32_t] touched
        vector[float] top_val
        vector[int32_t] top_idx
    void two_hop_topk_chunk(const TwoHopTopkCall& call, int64_t r0, int64_t r1,
                            TwoHopScratch& s)


cdef extern from "recforge/tree_predict.hpp" namespace "recforge::gbdt" nogil:
    cdef cppclass PackedForest:
        PackedForest()
    PackedForest pack_forest(int64_t n_nodes, const int32_t* feature, const float* threshold,
                             const int32_t* left, const uint8_t* default_left,
                             const uint8_t* categorical, const double* value,
                             const int64_t* roots, int64_t n_trees)
    void predict_raw(const float* X, int64_t n_rows, int64_t n_features, const PackedForest& f,
                     const int64_t* roots, int64_t t0, int64_t t1, double* out, int n_threads)


cdef class IdIndex:
    """External id → internal index of an ``IdMap`` (int or str ids), read-only after construction.

    Parameters
    ----------
    ids : ndarray (n,) of int64 or str — ``IdMap.ids`` (unique)

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.serving._fastpath import IdIndex
    >>> index = IdIndex(np.array([10, 30, 20]))
    >>> index.get(20), index.get(99), index.get("20")
    (2, -1, -1)
    >>> IdIndex(np.array(["a", "b"])).indices(["b", "x", 7]).tolist()
    [1, -1, -1]
    """

    cdef unordered_map[int64_t, int64_t] _ints
    cdef unordered_map[string, int64_t] _strs
    cdef bint _is_str
    cdef readonly int64_t size

    def __cinit__(self, ids):
        ids = np.asarray(ids)
        cdef int64_t i, n = len(ids)
        self.size = n
        self._is_str = ids.dtype.kind not in "iu"
        if self._is_str:
            self._strs.reserve(n)
            for i, value in enumerate(ids.tolist()):
                self._strs[str(value).encode("utf-8", "surrogatepass")] = i
        else:
            self._ints.reserve(n)
            for i, value in enumerate(ids.tolist()):
                self._ints[<int64_t>value] = i

    cpdef int64_t get(self, value):
        """The index of ``value``, or -1 when it is unknown (or of the other kind: int vs str)."""
        cdef unordered_map[int64_t, int64_t].iterator it_int
        cdef unordered_map[string, int64_t].iterator it_str
        if self._is_str:
            if not isinstance(value, str):
                return -1
            it_str = self._strs.find(value.encode("utf-8", "surrogatepass"))
            return -1 if it_str == self._strs.end() else deref(it_str).second
        if isinstance(value, (bool, np.bool_)):
            return -1
        if isinstance(value, (float, np.floating)):
            if not float(value).is_integer():
                return -1
            value = int(value)
        elif not isinstance(value, (int, np.integer)):
            return -1
        if not (-(2 ** 63) <= value < 2 ** 63):
            return -1
        it_int = self._ints.find(<int64_t>value)
        return -1 if it_int == self._ints.end() else deref(it_int).second

    def indices(self, values):
        """int64 (len(values),): the index of each value, -1 where unknown."""
        values = list(values)
        out = np.empty(len(values), np.int64)
        cdef int64_t[::1] view = out
        cdef Py_ssize_t i
        for i in range(len(values)):
            view[i] = self.get(values[i])
        return out


def topk_excluding(const float[::1] scores, int64_t k, const uint8_t[::1] excluded):
    """The ``k`` best of one score row, skipping ``excluded[j] != 0``: (int64 (k,), float32 (k,)).

    Exactly ``recforge.kernels.topk.topk`` on one row (ties by lower index; -1 / -inf pad);
    NaN scores raise ``ValueError``.
    """
    cdef int64_t n = scores.shape[0]
    if excluded.shape[0] != n:
        raise ValueError(f"excluded has length {excluded.shape[0]}, scores has length {n}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out_index = np.empty(k, np.int64)
    out_score = np.empty(k, np.float32)
    cdef int64_t[::1] idx = out_index
    cdef float[::1] val = out_score
    cdef vector[Candidate[float]] heap
    cdef int64_t n_nan
    heap.reserve(min(k, n))
    with nogil:
        n_nan = topk_row[float](&scores[0] if n else NULL, n, k, &excluded[0] if n else NULL,
                                heap, &idx[0], &val[0])
    if n_nan:
        raise ValueError(f"scores contain {n_nan} NaN value(s); a model produced invalid scores")
    return out_index, out_score



def dense_scores(const float[:, ::1] targets_t, const double[::1] query, float[::1] out):
    """``out[i] = float32(sum_q targets_t[q, i] * query[q])`` — one user's embedding scores.

    ``targets_t`` float32 (dim, n_items) is the item vectors transposed (the scorer walks items
    contiguously); products and sums are float64 in ``q`` order, as ``rowwise_scores``' float64
    product rounds to the same float32 values.
    """
    cdef Py_ssize_t d = targets_t.shape[0], n = targets_t.shape[1], q, i
    if query.shape[0] != d or out.shape[0] != n:
        raise ValueError(f"shapes: targets_t {d}x{n}, query {query.shape[0]}, out {out.shape[0]}")
    cdef vector[double] acc
    cdef double w
    acc.resize(n, 0.0)
    with nogil:
        for q in range(d):
            w = query[q]
            for i in range(n):
                acc[i] += targets_t[q, i] * w
        for i in range(n):
            out[i] = <float>acc[i]


cdef struct _Ranked:
    float key  # -score (NaN: +inf, after every number, as lexsort puts NaN last)
    bint nan
    int64_t item
    int64_t row


cdef inline bint _ranked_before(const _Ranked& a, const _Ranked& b) noexcept nogil:
    if a.nan != b.nan:
        return b.nan
    if not a.nan and a.key != b.key:
        return a.key < b.key
    return a.item < b.item


def best_rows(const float[::1] scores, const int64_t[::1] items, int64_t k):
    """The rows of the ``k`` best ``scores`` (descending, ties by lower ``items``; NaN last): int64
    (min(k, n),) — ``np.lexsort((items, -scores))[:k]`` with a partial sort of ``k`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.serving._fastpath import best_rows
    >>> best_rows(np.array([0.5, 0.9, 0.5, np.nan], np.float32), np.array([7, 3, 2, 1]), 3).tolist()
    [1, 2, 0]
    """
    cdef Py_ssize_t n = scores.shape[0], j
    if items.shape[0] != n:
        raise ValueError(f"items has length {items.shape[0]}, scores has length {n}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    cdef int64_t m = min(k, <int64_t>n)
    cdef vector[_Ranked] rows
    out = np.empty(m, np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        rows.resize(n)
        for j in range(n):
            rows[j].nan = scores[j] != scores[j]
            rows[j].key = 0.0 if rows[j].nan else -scores[j]
            rows[j].item = items[j]
            rows[j].row = j
        partial_sort(rows.begin(), rows.begin() + m, rows.end(), _ranked_before)
        for j in range(m):
            o[j] = rows[j].row
    return out


cdef class _TwoHopScratch:
    """One call's dense accumulator, flags and top-k buffers (``TwoHopScratch``), reset by the
    kernel after each row: reused by the next request instead of allocated and zeroed again."""

    cdef TwoHopScratch s

    def __cinit__(self, int64_t n_items):
        self.s.acc.assign(n_items, 0.0)
        self.s.flag.assign(n_items, 0)
        self.s.touched.resize(n_items + 1)


cdef class TwoHopRow:
    """The fused two-hop top-k of ONE query row against a graph ``N`` prepared once:
    ``recforge::neighbors::two_hop_topk_chunk`` (``neighbors.hpp``, the kernel behind
    ``kernels.neighbors.two_hop_topk``) on the calling thread, the GIL released, with scratch
    buffers kept between calls (a free list; each call takes one, so threads never share one).

    Parameters
    ----------
    n_indptr : int64 (n_rows + 1,); n_indices : int32; n_data : float32 — ``N`` as a CSR whose
        columns are items in [0, n_items)
    n_items : int

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.serving._fastpath import TwoHopRow
    >>> row = TwoHopRow(np.array([0, 2]), np.array([0, 2], np.int32), np.array([0.5, 1.0], np.float32), 3)
    >>> idx, val = row.topk(np.array([0], np.int32), np.array([2.0], np.float32),
    ...                     np.zeros(0, np.int32), np.zeros(3, np.uint8), 2)
    >>> idx.tolist(), val.tolist()
    ([2, 0], [2.0, 1.0])
    """

    cdef const int64_t[::1] n_indptr
    cdef const int32_t[::1] n_indices
    cdef const float[::1] n_data
    cdef readonly int64_t n_items, n_rows
    cdef list _free

    def __init__(self, n_indptr, n_indices, n_data, int64_t n_items):
        n_indptr = np.ascontiguousarray(n_indptr, np.int64)
        n_indices = np.ascontiguousarray(n_indices, np.int32)
        n_data = np.ascontiguousarray(n_data, np.float32)
        if (
            n_indptr.ndim != 1 or len(n_indptr) < 1 or n_indptr[0] != 0
            or np.any(np.diff(n_indptr) < 0) or n_indptr[-1] != len(n_indices)
            or len(n_data) != len(n_indices)
            or (len(n_indices) and (n_indices.min() < 0 or n_indices.max() >= n_items))
        ):
            raise ValueError("n_indptr, n_indices, n_data are not a CSR with columns in [0, n_items)")
        self.n_indptr, self.n_indices, self.n_data = n_indptr, n_indices, n_data
        self.n_items = n_items
        self.n_rows = len(n_indptr) - 1
        self._free = []

    def topk(self, const int32_t[::1] q_indices, const float[::1] q_data,
             const int32_t[::1] excluded, const uint8_t[::1] mask, int64_t k):
        """Top ``k`` of ``sum_p q_data[p] * N[q_indices[p]]`` (every weight >= 0) without the
        ``excluded`` items and where ``mask`` (uint8 (n_items,)) is 0: int64 (k,), float32 (k,) —
        the kernel's order (score descending, index ascending, score-0 items in index order),
        -1 / -inf pads."""
        cdef Py_ssize_t nq = q_indices.shape[0], ne = excluded.shape[0], p
        if q_data.shape[0] != nq:
            raise ValueError(f"q_data has length {q_data.shape[0]}, q_indices has length {nq}")
        if mask.shape[0] != self.n_items:
            raise ValueError(f"mask has length {mask.shape[0]}, expected {self.n_items}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        for p in range(nq):
            if q_indices[p] < 0 or q_indices[p] >= self.n_rows:
                raise ValueError("q_indices out of range [0, n_rows)")
        for p in range(ne):
            if excluded[p] < 0 or excluded[p] >= self.n_items:
                raise ValueError("excluded out of range [0, n_items)")
        out_index = np.full(k, -1, np.int64)
        out_score = np.full(k, -np.inf, np.float32)
        cdef int64_t[::1] oi = out_index
        cdef float[::1] ov = out_score
        cdef _TwoHopScratch scratch = self._free.pop() if self._free else _TwoHopScratch(self.n_items)
        cdef int64_t row = 0
        cdef int64_t q_indptr[2]
        cdef int64_t ex_indptr[2]
        cdef int32_t none = 0
        cdef float none_f = 0
        cdef TwoHopTopkCall call
        q_indptr[0] = 0
        q_indptr[1] = nq
        ex_indptr[0] = 0
        ex_indptr[1] = ne
        call.rows = &row
        call.q_indptr = q_indptr
        call.q_indices = &q_indices[0] if nq else &none
        call.q_data = &q_data[0] if nq else &none_f
        call.n_indptr = &self.n_indptr[0]
        call.targets = <const uint32_t*>(&self.n_indices[0] if self.n_indices.shape[0] else &none)
        call.n_data = &self.n_data[0] if self.n_data.shape[0] else &none_f
        call.n_items = self.n_items
        call.ex_indptr = ex_indptr
        call.ex_indices = &excluded[0] if ne else &none
        call.mask = &mask[0] if self.n_items else NULL
        call.k = k
        call.out_idx = &oi[0]
        call.out_val = &ov[0]
        if <int64_t>scratch.s.top_val.size() < k:
            scratch.s.top_val.resize(k)
            scratch.s.top_idx.resize(k)
        with nogil:
            two_hop_topk_chunk(call, 0, 1, scratch.s)
        self._free.append(scratch)
        return out_index, out_score


def ordered_topk(const int64_t[::1] order, const uint8_t[::1] excluded, int64_t depth):
    """The first ``depth`` entries of ``order`` (items best first) not ``excluded``: int64 (depth,),
    -1 pads — the top-k of a score row that is the same for every user (popularity)."""
    out = np.full(depth, -1, np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t j, c = 0, n = order.shape[0]
    with nogil:
        for j in range(n):
            if c >= depth:
                break
            if not excluded[order[j]]:
                o[c] = order[j]
                c += 1
    return out


def history_neighbours(const int64_t[::1] item_indptr, const int32_t[::1] item_users,
                       const double[::1] penalty, const double[::1] degree,
                       const int32_t[::1] items, int64_t n_neighbors, bint normalize_max):
    """UserCF's neighbours of a fresh user's history: ``_HistoryScorer.neighbours`` compiled.

    Parameters
    ----------
    item_indptr : int64 (n_items + 1,); item_users : int32 — each item's users (CSC of the user ×
        item matrix, users ascending within an item)
    penalty : float64 (n_items,) — each item's activity penalty; degree : float64 (n_users,) —
        each user's item count (at least 1)
    items : int32 (m,) — the history's distinct items, ascending
    n_neighbors : int; normalize_max : bool

    Returns
    -------
    users int32 (<= n_neighbors,) ascending and their similarities float32: every user's overlap
    summed in float64 from 0.0 over the history's items in ascending order, divided by
    ``sqrt(m * degree)`` and rounded to float32; the positive ones, the best ``n_neighbors`` by
    similarity (ties by lower user); divided by their largest when ``normalize_max``.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.serving._fastpath import history_neighbours
    >>> indptr, users = np.array([0, 2, 3]), np.array([0, 1, 1], np.int32)  # item 0: users 0, 1
    >>> u, s = history_neighbours(indptr, users, np.ones(2), np.array([1.0, 2.0]),
    ...                           np.array([0, 1], np.int32), 5, False)
    >>> u.tolist(), [round(v, 4) for v in s.tolist()]
    ([0, 1], [0.7071, 1.0])
    """
    cdef Py_ssize_t m = items.shape[0], n_items = item_indptr.shape[0] - 1, a, e
    cdef int64_t n_users = degree.shape[0], i, q, user, prev
    cdef vector[int64_t] keys  # (user << 32) | entry: one sort groups users, entries in order
    cdef vector[double] gain  # per entry: the penalty of its item
    cdef vector[pair[float, int64_t]] best  # (-similarity, user)
    cdef double overlap = 0.0, m_items = <double>m
    cdef float sim, top
    cdef int64_t bad = 0
    with nogil:
        for a in range(m):
            i = items[a]
            if i < 0 or i >= n_items or (a and items[a - 1] >= i):
                bad = 1
                break
            for q in range(item_indptr[i], item_indptr[i + 1]):
                user = item_users[q]
                if user < 0 or user >= n_users:
                    bad = 1
                    break
                keys.push_back((user << 32) | <int64_t>gain.size())
                gain.push_back(penalty[i])
    if bad:
        raise ValueError("items must be distinct ascending item indices of the index arrays")
    with nogil:
        sort(keys.begin(), keys.end())
        prev = -1
        for e in range(keys.size() + 1):
            user = keys[e] >> 32 if e < <Py_ssize_t>keys.size() else -1
            if user != prev:
                if prev >= 0:
                    sim = <float>(overlap / sqrt(m_items * degree[prev]))
                    if sim > 0:
                        best.push_back(pair[float, int64_t](-sim, prev))
                prev = user
                overlap = 0.0
            if e < <Py_ssize_t>keys.size():
                overlap += gain[keys[e] & <int64_t>0xFFFFFFFF]
        if n_neighbors < <int64_t>best.size():
            nth_element(best.begin(), best.begin() + n_neighbors, best.end())
            best.resize(n_neighbors)
    out_users = np.empty(best.size(), np.int32)
    out_sims = np.empty(best.size(), np.float32)
    cdef int32_t[::1] ou = out_users
    cdef float[::1] osim = out_sims
    cdef vector[pair[int64_t, float]] chosen
    with nogil:
        top = 0.0
        for e in range(best.size()):
            chosen.push_back(pair[int64_t, float](best[e].second, -best[e].first))
            if -best[e].first > top:
                top = -best[e].first
        sort(chosen.begin(), chosen.end())
        for e in range(chosen.size()):
            ou[e] = <int32_t>chosen[e].first
            osim[e] = chosen[e].second / top if normalize_max else chosen[e].second
    return out_users, out_sims


ctypedef fused sorted_index:
    int32_t
    int64_t


cdef inline int64_t _lower_bound(const sorted_index* a, int64_t n, int64_t x) noexcept nogil:
    """The first position of the sorted ``a[:n]`` whose value is >= ``x`` (``n`` when none)."""
    cdef int64_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def merge_row(const int64_t[:, ::1] lists, const float[:, ::1] scores,
              const int64_t[::1] quotas, int64_t target, double rrf_k):
    """One user's merged candidates (``kernels.pipeline._merge_rows`` for one row).

    Parameters
    ----------
    lists : int64 (n_sources, depth) — each source's items, best first, -1 pads
    scores : float32 (n_sources, depth)
    quotas : int64 (n_sources,); target : int; rrf_k : float

    Returns
    -------
    items int64 (n,), source_scores float32 (n, n_sources), source_ranks float32 (n, n_sources),
    n_sources float32 (n,), rrf float32 (n,) — in fusion order (rrf descending, then item).
    """
    cdef Py_ssize_t S = lists.shape[0], depth = lists.shape[1], s, j
    if scores.shape[0] != S or scores.shape[1] != depth or quotas.shape[0] != S:
        raise ValueError("lists, scores and quotas do not agree in shape")
    cdef vector[int32_t] slot_of  # item -> its position in uniq, -1 when not listed yet
    cdef vector[int64_t] uniq  # the listed items in first-listed order
    cdef vector[int32_t] slot  # per list entry s * depth + j: its item's position in uniq
    cdef vector[double] rrf
    cdef vector[float] score, rank, nsrc
    cdef vector[uint8_t] chosen
    cdef vector[pair[double, int64_t]] rest, order
    cdef int64_t it, p, nu, taken, n_chosen = 0, c, max_item = -1, n_fill
    with nogil:
        for s in range(S):
            for j in range(depth):
                if lists[s, j] > max_item:
                    max_item = lists[s, j]
    if max_item >= (<int64_t>1) << 31:
        raise ValueError("lists hold an item index of 2**31 or more")
    with nogil:
        # the entries visited source by source, each list in order: every item's entries come in
        # (source, position) order, the order in which _merge_rows visits them
        slot_of.resize(max_item + 1, -1)
        slot.resize(S * depth, -1)
        uniq.reserve(S * depth)
        rrf.reserve(S * depth)
        nsrc.reserve(S * depth)
        score.reserve(S * depth * S)
        rank.reserve(S * depth * S)
        for s in range(S):
            for j in range(depth):
                it = lists[s, j]
                if it < 0:
                    continue
                p = slot_of[it]
                if p < 0:
                    p = uniq.size()
                    slot_of[it] = <int32_t>p
                    uniq.push_back(it)
                    rrf.push_back(0.0)
                    nsrc.push_back(0.0)
                    score.resize(score.size() + S, NAN)
                    rank.resize(rank.size() + S, NAN)
                slot[s * depth + j] = <int32_t>p
                # a source listing an item twice keeps its best rank (NaN: not yet listed)
                if rank[p * S + s] != rank[p * S + s]:
                    rank[p * S + s] = j + 1
                    score[p * S + s] = scores[s, j]
                    rrf[p] += 1.0 / (rrf_k + j + 1)
                    nsrc[p] += 1.0
        nu = uniq.size()
        chosen.resize(nu, 0)
        for s in range(S):
            taken = 0
            for j in range(depth):
                if taken >= quotas[s] or n_chosen >= target:
                    break
                if lists[s, j] < 0:
                    break
                p = slot[s * depth + j]
                if not chosen[p]:
                    chosen[p] = 1
                    taken += 1
                    n_chosen += 1
        # then the best of the rest by fusion: (-rrf, item), rrf descending, ties by item
        n_fill = min(target - n_chosen, nu - n_chosen) if target > n_chosen else 0
        if n_fill > 0:
            rest.reserve(nu - n_chosen)
            for p in range(nu):
                if not chosen[p]:
                    rest.push_back(pair[double, int64_t](-rrf[p], uniq[p]))
            if n_fill < <int64_t>rest.size():
                nth_element(rest.begin(), rest.begin() + (n_fill - 1), rest.end())
            for c in range(n_fill):
                chosen[slot_of[rest[c].second]] = 1
            n_chosen += n_fill
        order.reserve(n_chosen)
        for p in range(nu):
            if chosen[p]:
                order.push_back(pair[double, int64_t](-rrf[p], uniq[p]))
        sort(order.begin(), order.end())
    items = np.empty(n_chosen, np.int64)
    out_scores = np.empty((n_chosen, S), np.float32)
    out_ranks = np.empty((n_chosen, S), np.float32)
    out_nsrc = np.empty(n_chosen, np.float32)
    out_rrf = np.empty(n_chosen, np.float32)
    cdef int64_t[::1] oi = items
    cdef float[:, ::1] osc = out_scores
    cdef float[:, ::1] ork = out_ranks
    cdef float[::1] ons = out_nsrc
    cdef float[::1] orr = out_rrf
    with nogil:
        for c in range(n_chosen):
            p = slot_of[order[c].second]
            oi[c] = uniq[p]
            orr[c] = <float>rrf[p]
            ons[c] = nsrc[p]
            for s in range(S):
                osc[c, s] = score[p * S + s]
                ork[c, s] = rank[p * S + s]
    return items, out_scores, out_ranks, out_nsrc, out_rrf


cdef inline int64_t _count_upto(const double[::1] times, int64_t lo, int64_t hi,
                                double t) noexcept nogil:
    """End of the entries <= t of the sorted ``times[lo:hi]`` (``kernels.pipeline._count_upto``)."""
    cdef int64_t a = lo, b = hi, mid
    while a < b:
        mid = (a + b) >> 1
        if times[mid] <= t:
            a = mid + 1
        else:
            b = mid
    return a


cdef inline double _int_power(double a, int64_t e) noexcept nogil:
    """``a ** e`` as Numba computes a float to an int power (binary exponentiation)."""
    cdef double r = 1.0
    while e != 0:
        if e & 1:
            r *= a
        e >>= 1
        a *= a
    return r


cdef inline double _csr_value(const int64_t[::1] indptr, const int32_t[::1] indices,
                              const double[::1] data, int64_t row, int64_t col) noexcept nogil:
    """``matrix[row, col]`` of a CSR with sorted column indices (0.0 when not stored)."""
    cdef int64_t a = indptr[row], n = indptr[row + 1] - a, p
    if n == 0:  # an empty row (possibly the last, where &indices[a] is one past the end)
        return 0.0
    p = _lower_bound(&indices[a], n, col)
    if p < n and indices[a + p] == col:
        return data[a + p]
    return 0.0


cdef void _history_rows(const int64_t[::1] indptr, const int32_t[::1] indices,
                        const double[::1] data, const int64_t[::1] h_items, int64_t la, int64_t nl,
                        const int32_t* slot, int64_t n_slot, double* out) noexcept nogil:
    """``out[c * nl + j] = matrix[h_items[la + j], items[c]]`` for every candidate ``c`` at once
    (``slot``: item -> candidate position or -1): one walk of each history item's CSR row instead
    of a binary search per (candidate, history item); ``out`` zeroed by the caller. The row is
    walked from its end, so a column stored twice gives its first value, as ``_csr_value``."""
    cdef int64_t j, e, col, p, row
    for j in range(nl):
        row = h_items[la + j]
        for e in range(indptr[row + 1] - 1, indptr[row] - 1, -1):
            col = indices[e]
            if 0 <= col < n_slot:
                p = slot[col]
                if p >= 0:
                    out[p * nl + j] = data[e]


def _transposed(indptr, indices, data):
    """The CSR ``(indptr, indices, data)`` of a square matrix transposed: (int64 indptr, int32
    indices, float64 data) with each row's columns ascending (scipy's CSR -> CSC conversion, a
    stable counting sort by column); an indptr of length 1 (no matrix) stays one."""
    indptr = np.asarray(indptr, np.int64)
    if len(indptr) <= 1:
        return indptr, np.asarray(indices, np.int32), np.asarray(data, np.float64)
    n = len(indptr) - 1
    t = sp.csr_matrix((np.asarray(data, np.float64), indices, indptr), shape=(n, n)).tocsc()
    return t.indptr.astype(np.int64), t.indices.astype(np.int32), t.data


cdef class FeatureTables:
    """The as-of state of a fitted pipeline in the layout one request's feature rows are read
    from (built once at load, read-only after): every item's sorted event times and cumulated
    weights, the similarity CSR, the unit embeddings, the genres, the transition counts
    (``AsOfState.transitions``; None: the sequence columns are NaN).

    :meth:`user_row` computes one history's user features and genre profile
    (``kernels.pipeline._user_features_rows``); :meth:`fill` writes one user's candidate rows in
    ``build_features``' column order, except the last column (``item_log_pop_vs_user_taste``,
    a float32 NumPy expression the caller evaluates as ``build_features`` does).
    """

    cdef const int64_t[::1] i_indptr
    cdef const double[::1] i_times
    cdef const double[::1] i_cumw
    cdef const double[::1] i_cumhigh
    cdef const double[::1] windows
    cdef const int64_t[::1] s_indptr
    cdef const int32_t[::1] s_indices
    cdef const double[::1] s_data
    cdef const float[:, ::1] emb
    cdef const float[:, ::1] genres
    cdef const int64_t[::1] t_indptr
    cdef const int32_t[::1] t_indices
    cdef const double[::1] t_data
    cdef const double[::1] t_total
    # the transitions transposed (row b: the items a before b, ascending): T[it, last] of every
    # candidate by one walk of row ``last``
    cdef const int64_t[::1] tt_indptr
    cdef const int32_t[::1] tt_indices
    cdef const double[::1] tt_data
    # per item at ``item_time``: the item columns (6 + n_windows), the genre one-hots (n_genres)
    # and the genres (n_genres) — what fill reads of a candidate, in one contiguous row
    cdef const float[:, ::1] item_rows
    cdef readonly double item_time
    cdef double high
    cdef int64_t n_last
    cdef readonly int64_t n_windows, n_genres, n_sources, n_features

    def __init__(self, i_indptr, i_times, i_cumw, i_cumhigh, windows, double high, int64_t n_last,
                 s_indptr, s_indices, s_data, emb, genres, int64_t n_sources, transitions=None,
                 item_time=None):
        self.i_indptr = i_indptr
        self.i_times = i_times
        self.i_cumw = i_cumw
        self.i_cumhigh = i_cumhigh
        self.windows = windows
        self.high = high
        self.n_last = n_last
        self.s_indptr = s_indptr
        self.s_indices = s_indices
        self.s_data = s_data
        self.emb = emb
        self.genres = genres
        self.n_windows = windows.shape[0]
        self.n_genres = genres.shape[1]
        self.n_sources = n_sources
        if transitions is None:
            transitions = (np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0),
                           np.zeros(genres.shape[0]))
        t_indptr, t_indices, t_data, t_total = transitions
        self.t_indptr = t_indptr
        self.t_indices = t_indices
        self.t_data = t_data
        self.t_total = t_total
        if self.t_total.shape[0] != self.genres.shape[0] or (
            self.t_indptr.shape[0] > 1 and self.t_indptr.shape[0] != self.genres.shape[0] + 1
        ):
            raise ValueError("the transition counts do not match the items")
        self.n_features = 2 * n_sources + 2 + 7 + self.n_windows + 12 + self.n_windows
        self.n_features += self.n_genres + 3 + 4
        self.tt_indptr, self.tt_indices, self.tt_data = _transposed(
            np.asarray(t_indptr), np.asarray(t_indices), np.asarray(t_data)
        )
        self.item_time = NAN
        self.item_rows = np.zeros((0, 6 + self.n_windows + 2 * self.n_genres), np.float32)
        if item_time is not None:
            self.item_time = float(item_time)
            self.item_rows = self._item_table(self.item_time)

    def _item_table(self, double t):
        """float32 (n_items, 6 + n_windows + 2 n_genres): every item's columns at time ``t``
        (those fill writes), its genre one-hots and its genres."""
        cdef int64_t n_items = self.genres.shape[0], n_w = self.n_windows, n_g = self.n_genres
        cdef int64_t it, q, width = 6 + n_w + 2 * n_g
        table = np.empty((n_items, width), np.float32)
        cdef float[:, ::1] rows = table
        with nogil:
            for it in range(n_items):
                self._item_columns(it, t, &rows[it, 0])
                for q in range(n_g):
                    rows[it, 6 + n_w + q] = 1.0 if self.genres[it, q] > 0 else 0.0
                    rows[it, 6 + n_w + n_g + q] = self.genres[it, q]
        return table

    cdef void _item_columns(self, int64_t it, double t, float* out) noexcept nogil:
        """Item ``it``'s 6 + n_windows columns as of ``t``: events, per window, the trend of the
        first two windows, days since the first and the last event, mean weight, high share."""
        cdef int64_t n_w = self.n_windows, a, b, n, w, q, base
        cdef double c1, c2
        a = self.i_indptr[it]
        b = _count_upto(self.i_times, a, self.i_indptr[it + 1], t)
        n = b - a
        out[0] = n
        for w in range(n_w):
            out[1 + w] = b - _count_upto(self.i_times, a, b, t - self.windows[w])
        if n_w >= 2:
            c1 = out[1]
            c2 = out[2]
            out[1 + n_w] = (c1 + 1.0) / (c2 * self.windows[0] / self.windows[1] + 1.0)
        else:
            out[1 + n_w] = NAN
        if n > 0:
            out[2 + n_w] = (t - self.i_times[a]) / 86400.0
            out[3 + n_w] = (t - self.i_times[b - 1]) / 86400.0
            base = a + it
            out[4 + n_w] = (self.i_cumw[base + n] - self.i_cumw[base]) / n
            out[5 + n_w] = (self.i_cumhigh[base + n] - self.i_cumhigh[base]) / n
        else:
            for q in range(2 + n_w, 6 + n_w):
                out[q] = NAN

    def user_row(self, const int64_t[::1] h_items, const double[::1] h_times,
                 const float[::1] h_weights, double t, double decay, float[::1] out,
                 float[::1] out_profile):
        """User features (7 + n_windows,) and genre profile (n_genres,) of one time-sorted history."""
        cdef int64_t n_w = self.n_windows, n_g = self.n_genres, a = 0, n, j, w, g, it
        cdef int64_t b = _count_upto(h_times, 0, h_times.shape[0], t)
        cdef double s = 0.0, s2 = 0.0, lp = 0.0, mean, norm = 0.0, wt
        cdef int64_t nh = 0
        cdef float x
        cdef vector[double] prof
        if out.shape[0] != 7 + n_w or out_profile.shape[0] != n_g:
            raise ValueError("out / out_profile have the wrong length")
        with nogil:
            n = b - a
            out[0] = n
            for w in range(n_w):
                out[1 + w] = b - _count_upto(h_times, a, b, t - self.windows[w])
            if n == 0:
                for j in range(1 + n_w, 7 + n_w):
                    out[j] = NAN
                for g in range(n_g):
                    out_profile[g] = 0.0
            else:
                out[1 + n_w] = (t - h_times[b - 1]) / 86400.0
                out[2 + n_w] = (t - h_times[a]) / 86400.0
                for j in range(a, b):
                    x = h_weights[j]
                    s += x
                    s2 += x * x  # a float32 product, as in the kernel
                    if x >= self.high:
                        nh += 1
                    it = h_items[j]
                    lp += log1p(<double>(_count_upto(self.i_times, self.i_indptr[it],
                                                     self.i_indptr[it + 1], t)
                                         - self.i_indptr[it]))
                mean = s / n
                out[3 + n_w] = mean
                out[4 + n_w] = sqrt(max(s2 / n - mean * mean, 0.0))
                out[5 + n_w] = <double>nh / n
                out[6 + n_w] = lp / n
                if n_g > 0:
                    prof.resize(n_g, 0.0)
                    for j in range(a, b):
                        wt = c_exp(-decay * (t - h_times[j]) / 86400.0)
                        it = h_items[j]
                        for g in range(n_g):
                            prof[g] += wt * self.genres[it, g]
                    for g in range(n_g):
                        norm += prof[g] * prof[g]
                    norm = sqrt(norm)
                    for g in range(n_g):
                        out_profile[g] = prof[g] / norm if norm > 0 else 0.0

    def fill(self, const int64_t[::1] items, const float[:, ::1] source_scores,
             const float[:, ::1] source_ranks, const float[::1] n_sources, const float[::1] rrf,
             const float[::1] user_row, const float[::1] profile, const int64_t[::1] h_items,
             const double[::1] h_times, int64_t ha, int64_t h_end, double t, double hour,
             double weekday, float[:, ::1] out):
        """One user's candidate rows (n_candidates, n_features); the user's history is
        ``h_items[ha:h_end]`` sorted by time (events after ``t`` are ignored)."""
        cdef int64_t S = self.n_sources, n_w = self.n_windows, n_g = self.n_genres
        cdef int64_t n_c = items.shape[0], d = self.emb.shape[1], F = self.n_features
        cdef int64_t c, s, q, j, h, it, la, hb, nl, col, o
        cdef bint use_sim = self.s_indptr.shape[0] > 1
        cdef bint use_seq = self.t_indptr.shape[0] > 1
        cdef int64_t last = -1
        cdef double smax, ssum, smean, emax, emean, e, v, g, tv, acc
        cdef double e0, e1, e2, e3
        cdef float prod, x
        cdef const float* r0
        cdef const float* r1
        cdef const float* r2
        cdef const float* r3
        cdef const float* ri
        cdef vector[double] dots  # the candidate's embedding dot with each history item
        # (n_c, nl): each candidate's similarity / transition count from each history item
        cdef vector[double] h_sim, h_next
        cdef vector[double] h_prev  # (n_c,): T[candidate, last] (tabled)
        cdef vector[double] powers  # (nl,): 0.8 ** (nl - 1 - j), as _int_power
        cdef const float* row
        cdef const float* onehot = NULL
        cdef const float* genre = NULL
        cdef bint use_rows = self.item_rows.shape[0] == self.genres.shape[0] and t == self.item_time
        cdef vector[int32_t] slot  # item -> candidate position, -1
        cdef int64_t n_slot = self.genres.shape[0]
        cdef bint tabled = False
        if out.shape[0] != n_c or out.shape[1] != F:
            raise ValueError(f"out must be ({n_c}, {F}), got ({out.shape[0]}, {out.shape[1]})")
        if source_scores.shape[1] != S or user_row.shape[0] != 7 + n_w:
            raise ValueError("source_scores / user_row do not match the tables")
        with nogil:
            hb = _count_upto(h_times, ha, h_end, t)
            la = max(ha, hb - self.n_last)
            nl = hb - la
            if nl > 0:
                last = h_items[hb - 1]
            dots.resize(nl + 4, 0.0)
            if nl > 0 and (use_sim or use_seq):
                tabled = True
                slot.resize(n_slot, -1)
                for c in range(n_c):
                    if items[c] < 0 or items[c] >= n_slot or slot[items[c]] >= 0:
                        tabled = False  # an item listed twice: the binary searches below
                        break
                    slot[items[c]] = <int32_t>c
            if tabled and use_sim:
                h_sim.resize(n_c * nl, 0.0)
                _history_rows(self.s_indptr, self.s_indices, self.s_data, h_items, la, nl,
                              slot.data(), n_slot, h_sim.data())
            if tabled and use_seq:
                h_next.resize(n_c * nl, 0.0)
                _history_rows(self.t_indptr, self.t_indices, self.t_data, h_items, la, nl,
                              slot.data(), n_slot, h_next.data())
            if tabled and use_seq:
                # T[it, last] of every candidate: one walk of the transposed row of ``last``
                h_prev.resize(n_c, 0.0)
                _history_rows(self.tt_indptr, self.tt_indices, self.tt_data, h_items, hb - 1, 1,
                              slot.data(), n_slot, h_prev.data())
            powers.resize(nl + 1, 0.0)
            for j in range(nl):
                powers[j] = _int_power(0.8, nl - 1 - j)
            for c in range(n_c):
                it = items[c]
                for s in range(S):
                    out[c, s] = source_scores[c, s]
                    out[c, S + s] = source_ranks[c, s]
                out[c, 2 * S] = n_sources[c]
                out[c, 2 * S + 1] = rrf[c]
                col = 2 * S + 2
                for j in range(7 + n_w):
                    out[c, col + j] = user_row[j]
                col += 7 + n_w
                # item features: the table's row at its time, else computed
                if use_rows:
                    row = &self.item_rows[it, 0]
                    for q in range(6 + n_w):
                        out[c, col + q] = row[q]
                    onehot = row + 6 + n_w
                    genre = onehot + n_g
                else:
                    self._item_columns(it, t, &out[c, col])
                    genre = &self.genres[it, 0] if n_g > 0 else NULL
                    onehot = NULL
                # user-item features
                o = col + 6 + n_w
                if d > 0:
                    # the dots with the history items four at a time: independent sums, each in
                    # q order from 0.0 as the kernel's (a single running sum waits on every add)
                    ri = &self.emb[it, 0]
                    for j in range(0, nl, 4):
                        r0 = &self.emb[h_items[la + j], 0]
                        r1 = &self.emb[h_items[la + j + 1], 0] if j + 1 < nl else r0
                        r2 = &self.emb[h_items[la + j + 2], 0] if j + 2 < nl else r0
                        r3 = &self.emb[h_items[la + j + 3], 0] if j + 3 < nl else r0
                        e0 = e1 = e2 = e3 = 0.0
                        for q in range(d):
                            x = ri[q]
                            prod = r0[q] * x  # float32, as in the kernel
                            e0 += prod
                            prod = r1[q] * x
                            e1 += prod
                            prod = r2[q] * x
                            e2 += prod
                            prod = r3[q] * x
                            e3 += prod
                        dots[j] = e0
                        dots[j + 1] = e1
                        dots[j + 2] = e2
                        dots[j + 3] = e3
                smax = 0.0
                ssum = 0.0
                smean = 0.0
                emax = -1.0
                emean = 0.0
                for j in range(la, hb):
                    h = h_items[j]
                    if use_sim:
                        if tabled:
                            v = h_sim[c * nl + j - la]
                        else:
                            v = _csr_value(self.s_indptr, self.s_indices, self.s_data, h, it)
                        if v > smax:
                            smax = v
                        smean += v
                        ssum += v * powers[j - la]
                    if d > 0:
                        e = dots[j - la]
                        if e > emax:
                            emax = e
                        emean += e
                if nl == 0:
                    for q in range(o, o + 5):
                        out[c, q] = NAN
                else:
                    out[c, o] = smax if use_sim else NAN
                    out[c, o + 1] = ssum if use_sim else NAN
                    out[c, o + 2] = smean / nl if use_sim else NAN
                    out[c, o + 3] = emax if d > 0 else NAN
                    out[c, o + 4] = emean / nl if d > 0 else NAN
                if n_g > 0:
                    g = 0.0
                    for q in range(n_g):
                        prod = profile[q] * genre[q]
                        g += prod
                    out[c, o + 5] = g
                else:
                    out[c, o + 5] = NAN
                col = o + 6
                for q in range(n_g):
                    if onehot != NULL:
                        out[c, col + q] = onehot[q]
                    else:
                        out[c, col + q] = 1.0 if genre[q] > 0 else 0.0
                col += n_g
                out[c, col] = hour
                out[c, col + 1] = weekday
                col += 2
                # sequence features (the kernel's last four columns)
                if use_seq and nl > 0:
                    if tabled:
                        tv = h_next[c * nl + nl - 1]
                    else:
                        tv = _csr_value(self.t_indptr, self.t_indices, self.t_data, last, it)
                    out[c, col] = tv
                    out[c, col + 1] = tv / max(self.t_total[last], 1.0)
                    acc = 0.0
                    for j in range(la, hb):
                        h = h_items[j]
                        if tabled:
                            tv = h_next[c * nl + j - la]
                        else:
                            tv = _csr_value(self.t_indptr, self.t_indices, self.t_data, h, it)
                        acc += powers[j - la] * (tv / max(self.t_total[h], 1.0))
                    out[c, col + 2] = acc
                    if tabled:
                        out[c, col + 3] = h_prev[c]
                    else:
                        out[c, col + 3] = _csr_value(self.t_indptr, self.t_indices, self.t_data,
                                                     it, last)
                else:
                    for q in range(4):
                        out[c, col + q] = NAN
                out[c, col + 4] = NAN  # item_log_pop_vs_user_taste: the caller's NumPy column


cdef class TreeScorer:
    """A fitted GBDT's used trees packed once (``tree_predict.hpp``'s ``pack_forest``):
    :meth:`raw` is the forest's margin of float32 rows, as ``Forest.predict_raw`` computes it."""

    cdef PackedForest _forest
    cdef object _roots
    cdef int64_t _t1
    cdef readonly int64_t n_features
    cdef readonly double base_margin

    def __init__(self, feature, threshold, left, right, default_left, categorical, value, roots,
                 int64_t t1, int64_t n_features, double base_margin):
        feature = np.ascontiguousarray(feature, np.int32)
        threshold = np.ascontiguousarray(threshold, np.float32)
        left = np.ascontiguousarray(left, np.int32)
        right = np.ascontiguousarray(right, np.int32)
        default_left = np.ascontiguousarray(default_left, np.uint8)
        categorical = np.ascontiguousarray(categorical, np.uint8)
        value = np.ascontiguousarray(value, np.float64)
        roots = np.ascontiguousarray(roots, np.int64)
        n = len(feature)
        node = np.arange(n)
        split = left >= 0
        if (
            not (len(threshold) == len(left) == len(right) == len(default_left) == n)
            or len(categorical) != n or len(value) != n
            or not (0 < t1 <= len(roots)) or roots[0] != 0 or np.any(np.diff(roots) <= 0)
            or roots[len(roots) - 1] >= n
            or np.any(split & ((left <= node) | (right != left + 1) | (right >= n)))
            or np.any(split & ((feature < 0) | (feature >= n_features)))
        ):
            raise ValueError("the forest's node arrays are inconsistent")
        cdef const int32_t[::1] f = feature
        cdef const float[::1] th = threshold
        cdef const int32_t[::1] l = left
        cdef const uint8_t[::1] dl = default_left
        cdef const uint8_t[::1] cat = categorical
        cdef const double[::1] val = value
        cdef const int64_t[::1] r = roots
        self._forest = pack_forest(n, &f[0], &th[0], &l[0], &dl[0], &cat[0], &val[0], &r[0],
                                   len(roots))
        self._roots = roots
        self._t1 = t1
        self.n_features = n_features
        self.base_margin = base_margin

    def raw(self, const float[:, ::1] X):
        """float64 (n_rows,): base margin + the leaf values of the used trees, in tree order."""
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features, the forest {self.n_features}")
        out = np.full(X.shape[0], self.base_margin, np.float64)
        cdef double[::1] o = out
        cdef const int64_t[::1] r = self._roots
        if X.shape[0] == 0:
            return out
        with nogil:
            predict_raw(&X[0, 0], X.shape[0], X.shape[1], self._forest, &r[0], 0, self._t1,
                        &o[0], 1)
        return out
