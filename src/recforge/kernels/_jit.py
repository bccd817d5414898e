"""The one place Numba's ``njit`` is configured for recforge kernels.

* ``cache=True`` unless ``RECFORGE_NUMBA_CACHE=0``: compiled code is reused across processes.
  Numba stores the cache beside the module, or in a per-user directory when the install is
  read-only; ``NUMBA_CACHE_DIR`` overrides both.
* ``nogil=True``: kernels only touch arrays and scalars.
* Decorating compiles nothing: compilation happens on first call, so ``import recforge`` stays fast.
"""
from __future__ import annotations

import os

import numba
import numpy as np

CACHE = os.environ.get("RECFORGE_NUMBA_CACHE", "1") != "0"


def jit(fn=None, *, parallel: bool = False, fastmath: bool = False):
    """``numba.njit`` with recforge's defaults (cache, nogil, no fastmath unless tested)."""
    def wrap(f):
        return numba.njit(cache=CACHE, nogil=True, parallel=parallel, fastmath=fastmath)(f)

    return wrap if fn is None else wrap(fn)


def read_only(array):
    """A read-only view of ``array``, for a ``_warmup`` that compiles the signature Numba gives a
    read-only argument (e.g. the arrays of an :class:`~recforge.data.Interactions`), a separate
    type from the writeable one."""
    view = array.view()
    view.flags.writeable = False
    return view


def array_type(dtype, ndim: int = 1, *, read_only: bool = False):
    """Numba's type of a C-contiguous ``ndim``-D array of ``dtype`` (a NumPy dtype), for a
    ``_warmup`` that compiles a kernel from its signature: ``kernel.compile((array_type(...), ...))``.
    """
    from numba import from_dtype, types

    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C", readonly=read_only)
