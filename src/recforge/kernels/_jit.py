"""The one place Numba's ``njit`` is configured for recforge kernels.

* ``cache=True`` unless ``RECFORGE_NUMBA_CACHE=0``: compiled code is reused across processes.
  Numba stores the cache beside the module, or in a per-user directory when the install is
  read-only; ``NUMBA_CACHE_DIR`` overrides both.
* ``nogil=True``: kernels only touch arrays and scalars.
* Decorating compiles nothing: compilation happens on first call, so ``import recforge`` stays fast.
* ``parallel=True`` kernels survive ``fork()``: with GNU OpenMP (Numba's ``omp`` layer on Linux when
  TBB is not installed) a child process that launches a parallel region after its parent did is
  killed by Numba ("fork() called from a process already using GNU OpenMP"). In such a child the
  kernel runs a serial compilation of the same function instead (``prange`` becomes ``range``), so
  a pre-fork server's workers answer exactly like the parent, on one Numba thread each.
"""

from __future__ import annotations

import os

import numba
import numpy as np

CACHE = os.environ.get("RECFORGE_NUMBA_CACHE", "1") != "0"


def load_openmp_passive() -> None:
    """Load the GNU OpenMP library of Numba's ``omp`` threading layer with its threads blocking
    between parallel regions (``OMP_WAIT_POLICY=PASSIVE``), then restore the environment.

    By default GNU OpenMP threads spin after each region: on a machine with a busy core that takes
    the CPU from the thread holding the remaining work (a DNN epoch runs a region per mini-batch:
    with the spin it used 3x the CPU of one thread and ran 5x slower with 2 threads on a loaded
    2-core machine). Loading the library starts no thread, so ``fork()`` stays safe. The variable
    is set only while the library loads (it reads it once, then): libraries loading their own copy
    later (xgboost's, scikit-learn's) keep their default; one sharing the system ``libgomp.so.1``
    (LightGBM) shares its policy with Numba's, whichever loads it first. A user's own
    ``OMP_WAIT_POLICY`` is left as it is.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except (ImportError, OSError):
        pass
    finally:
        del os.environ["OMP_WAIT_POLICY"]


#: set in a child forked from a process that had started Numba's GNU OpenMP threading layer
_FORKED_FROM_GNU_OPENMP = [False]


def jit(fn=None, *, parallel: bool = False, fastmath: bool = False):
    """``numba.njit`` with recforge's defaults (cache, nogil, no fastmath unless tested)."""

    def wrap(f):
        kernel = numba.njit(cache=CACHE, nogil=True, parallel=parallel, fastmath=fastmath)(f)
        return _ForkSafeKernel(kernel, fastmath) if parallel else kernel

    return wrap if fn is None else wrap(fn)


def _gnu_openmp_started() -> bool:
    """This process has started Numba's threading layer and it is GNU OpenMP (starts nothing)."""
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", False):
        return False
    try:
        layer = numba.threading_layer()
    except ValueError:
        return False
    if layer != "omp":
        return False
    from numba.np.ufunc import omppool

    return getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _after_fork_in_child() -> None:
    if not _FORKED_FROM_GNU_OPENMP[0]:
        _FORKED_FROM_GNU_OPENMP[0] = _gnu_openmp_started()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _forked_from_gnu_openmp() -> bool:
    """True in a child process whose parent had started Numba's GNU OpenMP threading layer.

    Decided at the fork (not by comparing pids at the first kernel call: the layer is also
    started by ``numba.get_num_threads`` / ``set_num_threads``, and a process that started it
    that way must still run its parallel kernels in parallel, from the disk cache).
    """
    return _FORKED_FROM_GNU_OPENMP[0]


class _ForkSafeKernel:
    """A ``parallel=True`` Numba kernel, run serially in a child forked from a GNU OpenMP parent."""

    def __init__(self, kernel, fastmath: bool):
        self.kernel = kernel
        self._fastmath = fastmath
        self._serial = None
        self.__doc__ = kernel.__doc__
        self.__name__ = kernel.__name__
        self.__wrapped__ = kernel.py_func

    def __call__(self, *args):
        if _forked_from_gnu_openmp():
            if self._serial is None:  # no disk cache: it would share the parallel variant's index
                self._serial = numba.njit(nogil=True, fastmath=self._fastmath)(self.kernel.py_func)
            return self._serial(*args)
        return self.kernel(*args)


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


def dispatcher_of(value):
    """The Numba dispatcher behind a kernel object (a plain one, or the fork-safe wrapper of a
    ``parallel=True`` kernel), else ``None`` — how warm-up coverage finds every kernel."""
    from numba.core.registry import CPUDispatcher

    if isinstance(value, _ForkSafeKernel):
        value = value.kernel
    return value if isinstance(value, CPUDispatcher) else None
