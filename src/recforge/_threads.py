"""Thread-count resolution, BLAS limits and the pool of Python threads that runs nogil kernels in chunks.

``n_threads=None`` (or 0) means every core this process may run on: the CPU affinity mask and a
cgroup CPU quota are respected, unlike ``os.cpu_count()`` which reports the host's cores.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import sys

from ._validation import check_int


def available_cores() -> int:
    """Cores this process may use: affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


@functools.cache
def _cgroup_cpu_quota() -> float | None:
    # read once per process: resolve_n_threads is on the request path of the server
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period_us = int(f.read())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


#: Upper bound of a resolved thread count: larger requests are capped (the C++ kernels take an int32
#: and never use more threads than tasks, so more than this only costs thread start-up).
MAX_THREADS = 1024


def resolve_n_threads(n_threads) -> int:
    """``None``/0 → all available cores; a negative value counts back from them (-1 = all).

    Positive values are capped at :data:`MAX_THREADS`.
    """
    if n_threads is None:
        return available_cores()
    n = check_int(n_threads, "n_threads")
    if n > 0:
        return min(n, MAX_THREADS)
    cores = available_cores()
    return cores if n == 0 else max(1, cores + 1 + n)


#: threadpoolctl's controllers of the BLAS libraries loaded in this process ("libraries") and the
#: number of imported modules when they were found ("n_modules")
_BLAS_LIBRARIES: dict = {}


def load_scipy_blas() -> None:
    """Load scipy's BLAS library, the one the neural kernels call (``_core.nn_*``, through
    ``scipy.linalg.cython_blas``), so that :func:`limit_blas_threads` finds and caps it. ~0.04 s
    on the first call of a process (importing ``scipy.linalg``): only DNN / Wide&Deep pay it."""
    import scipy.linalg.cython_blas  # noqa: F401


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (a ctypes handle each), found
    again only after new modules were imported: finding them costs ~20 ms, more than some whole
    predictions (a library imported later, e.g. faiss with its own OpenBLAS, is then found too)."""
    if _BLAS_LIBRARIES.get("n_modules") != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        _BLAS_LIBRARIES["libraries"] = libraries
        _BLAS_LIBRARIES["n_modules"] = len(sys.modules)
    return _BLAS_LIBRARIES["libraries"]


@contextlib.contextmanager
def limit_blas_threads(n: int = 1):
    """``n`` threads for every loaded BLAS pool (numpy's, scipy's, the one Numba's ``np.dot``
    calls) during a ``with`` block; each pool's own count is restored on exit, even on error.

    Used while our own kernels run in parallel (no oversubscription), to run small factorisations
    on one BLAS thread, and per request on the serving path (a threaded one-row product waits for
    busy helper threads: 30 ms instead of 0.1 ms on a loaded machine). Cheap enough for that: the
    libraries are found once (:func:`_blas_libraries`), and only a pool whose count differs from
    ``n`` is set and restored, a ctypes call each (~1 us; threadpoolctl's ``limit`` reads every
    library's description on entry and exit, ~20 us). Only the libraries already loaded are
    limited: a caller whose kernels call scipy's BLAS first calls :func:`load_scipy_blas`
    (otherwise the first fit of a process would run them with every BLAS thread). The counts are
    the process's: threads that overlap such blocks share them.

    Examples
    --------
    >>> import numpy as np
    >>> from recforge._threads import limit_blas_threads
    >>> with limit_blas_threads(1):
    ...     product = np.ones((64, 64)) @ np.ones(64)
    >>> float(product[0])
    64.0
    """
    n = check_int(n, "n", min_value=1)
    changed = []
    try:
        for library in _blas_libraries():
            current = library.get_num_threads()
            if current is not None and current != n:
                library.set_num_threads(n)
                changed.append((library, current))
        yield n
    finally:
        for library, current in reversed(changed):
            library.set_num_threads(current)


@contextlib.contextmanager
def numba_threads(n: int):
    """Set Numba's thread count for the block and restore it afterwards, even on error."""
    import numba

    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def run_chunks(fn, n_chunks: int, pool=None) -> list:
    """``[fn(c) for c in range(n_chunks)]``, shared between the calling thread and ``pool``'s helpers.

    ``pool`` is a :class:`ChunkPool` (or None: run inline). The caller works too, and every
    thread takes the next chunk from a shared counter, so a helper that the OS preempts delays
    at most the one chunk it holds. ``fn`` must call nogil kernels only on its own chunk's rows
    and output slots; results come back in chunk order whatever thread ran them.
    """
    if pool is None or pool.n_helpers == 0 or n_chunks == 1:
        return [fn(c) for c in range(n_chunks)]
    results = [None] * n_chunks
    counter = itertools.count()  # next() is atomic under the GIL

    def work():
        while True:
            c = next(counter)
            if c >= n_chunks:
                return
            results[c] = fn(c)

    futures = [pool.executor.submit(work) for _ in range(min(pool.n_helpers, n_chunks - 1))]
    try:
        work()
    finally:
        for f in futures:
            f.result()
    return results


class ChunkPool:
    """``n_threads - 1`` blocking helper threads (the caller is the n-th); use as a context manager."""

    def __init__(self, n_threads: int):
        from concurrent.futures import ThreadPoolExecutor

        self.n_helpers = max(0, int(n_threads) - 1)
        self.executor = (
            ThreadPoolExecutor(max_workers=self.n_helpers, thread_name_prefix="recforge")
            if self.n_helpers
            else None
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        return False
