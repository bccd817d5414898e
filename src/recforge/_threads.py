"""Thread-count resolution and BLAS limits.

``n_threads=None`` (or 0) means every core this process may run on: the CPU affinity mask and a
cgroup CPU quota are respected, unlike ``os.cpu_count()`` which reports the host's cores.
"""
from __future__ import annotations

import contextlib
import math
import os

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


def _cgroup_cpu_quota() -> float | None:
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
    cores = available_cores()
    if n == 0:
        return cores
    if n < 0:
        return max(1, cores + 1 + n)
    return min(n, MAX_THREADS)


@contextlib.contextmanager
def limit_blas_threads(n: int = 1):
    """Cap BLAS/OpenMP pools while our own kernels run in parallel (avoids oversubscription)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


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
