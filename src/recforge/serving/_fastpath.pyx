# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
"""The per-request path's compiled helpers: id → index hash maps and top-k of one score row.

``IdIndex`` replaces ``IdMap.index`` on the request path (a C++ ``unordered_map`` built once at
load; one lookup is ~50 ns instead of ~50 us through numpy). ``topk_excluding`` selects the best
``k`` of one dense score row with ``recforge::topk_row`` (csrc/include/recforge/topk.hpp, the
function behind ``recforge.kernels.topk.topk``), the GIL released.
"""

from cython.operator cimport dereference as deref
from libc.stdint cimport int64_t, uint8_t
from libcpp.string cimport string
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

import numpy as np


cdef extern from "recforge/topk.hpp" namespace "recforge" nogil:
    cdef cppclass Candidate[Score]:
        pass
    int64_t topk_row[Score](const Score* scores, int64_t n_items, int64_t k,
                            const uint8_t* excluded, vector[Candidate[Score]]& heap,
                            int64_t* out_index, Score* out_score)


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
