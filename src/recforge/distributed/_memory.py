"""Let a Dask worker reuse the memory of its dense score blocks while it scores.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting that variable
turns off glibc's dynamic mmap threshold, so every allocation above 128 KiB — each dense score
block of a ``recommend`` call — is a fresh ``mmap`` whose pages the kernel faults in and zeroes,
then unmaps. Scoring 40k users × 10k items that way spent ~1 s of system CPU per worker (a quarter
of the task) zeroing 6 GB of pages, and the zeroing competes for memory bandwidth with the other
worker. The GBDT's training task had the same cost per tree level (each level's histograms,
partition scratch buffers and received all-reduce total: 2× its worker CPU at 200k rows).
:func:`reuse_freed_memory` raises both thresholds while a task scores or trains (blocks of at
most :data:`MMAP_THRESHOLD_BYTES` then come from the heap and are reused from call to call) and
puts the variables' values back, returning the freed memory to the system, when the last such
task of the process ends. A process without the variable (glibc's defaults, dynamic) is left
alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

#: glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks up to this
#: size are served from the heap while scoring
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: M_TRIM_THRESHOLD while scoring: the heap keeps a few freed blocks instead of trimming them
TRIM_THRESHOLD_BYTES = 256 * 2**20
_GLIBC_MMAP_THRESHOLD_DEFAULT = 128 * 2**10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_lock = threading.Lock()
_active = 0


def _glibc():
    """glibc's ``libc`` when this process runs with a fixed ``MALLOC_TRIM_THRESHOLD_``, else None."""
    if not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (musl has no mallopt)
        libc.malloc_trim  # noqa: B018
        int(os.environ["MALLOC_TRIM_THRESHOLD_"])
        int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MMAP_THRESHOLD_DEFAULT))
    except (OSError, AttributeError, ValueError):
        return None
    return libc


def _restore(libc) -> None:
    """The thresholds the environment set, then the freed heap back to the system."""
    mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MMAP_THRESHOLD_DEFAULT))
    libc.mallopt(_M_MMAP_THRESHOLD, mmap)
    libc.mallopt(_M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))
    libc.malloc_trim(0)


@contextlib.contextmanager
def reuse_freed_memory():
    """While inside: freed blocks up to :data:`MMAP_THRESHOLD_BYTES` are reused, not unmapped.

    Re-entrant across threads (the thresholds come back when the last user leaves); a no-op
    outside glibc or without ``MALLOC_TRIM_THRESHOLD_``.

    >>> with reuse_freed_memory():
    ...     pass
    """
    global _active
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        if _active == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _restore(libc)
