"""Dynamic chunk scheduling inside ``parallel=True`` Numba kernels (they survive a busy core).

Numba's ``prange`` deals its iterations statically, one block per thread: when the OS gives one of
the threads less CPU (a foreign process on its core), the whole call waits for it. The kernels
instead cut their rows into many contiguous chunks of about equal work (:func:`balanced_bounds`,
:func:`even_bounds`; :data:`CHUNKS_PER_WORKER` per worker) and run one ``prange`` iteration per
worker, each pulling the next chunk from a shared atomic counter (:func:`pulled_chunks`, over
:func:`next_chunk`) until none is left, so a slowed thread delays at most the one chunk it holds::

    bounds = balanced_bounds(indptr, n_workers * CHUNKS_PER_WORKER, 1.0)
    counter = np.zeros(1, np.int64)
    for w in prange(n_workers):
        scratch = ...  # one per worker
        for r0, r1 in pulled_chunks(counter, bounds):
            for r in range(r0, r1):
                ...  # row r writes only its own outputs

Every row is computed the same way whichever worker takes it, so results do not depend on the
number of workers. Run serially (a forked child, see ``_jit``), worker 0 takes every chunk.

Serial ``nogil`` kernels over a row range ``[r0, r1)`` get the same scheduling from Python threads
instead (:func:`run_row_chunks`, the pipeline's kernels).

Importing this module (every module of parallel kernels does) makes Numba's GNU OpenMP threads
block between parallel regions (:func:`~recforge.kernels._jit.load_openmp_passive`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .._threads import ChunkPool, run_chunks
from ._jit import jit, load_openmp_passive

load_openmp_passive()

#: chunks per worker: enough that a thread slowed to a fraction of a core costs little at the end
CHUNKS_PER_WORKER = 8
#: the smallest chunk of :func:`run_row_chunks` (rows): below it a hand-off costs more than the rows
MIN_CHUNK_ROWS = 16


def run_row_chunks(kernel, n_rows: int, n_threads: int, *args) -> None:
    """``kernel(r0, r1, *args)`` over ``range(n_rows)`` in chunks of rows that the calling thread and
    ``n_threads - 1`` Python helper threads pull dynamically (:func:`recforge._threads.run_chunks`).

    ``kernel`` is a serial ``nogil`` Numba function whose rows write only their own outputs.
    """
    n_threads = max(1, int(n_threads))
    chunk = max(MIN_CHUNK_ROWS, -(-n_rows // (CHUNKS_PER_WORKER * n_threads)))
    n_chunks = max(1, -(-n_rows // chunk))
    if n_threads == 1 or n_chunks == 1:
        kernel(0, n_rows, *args)
        return
    with ChunkPool(min(n_threads, n_chunks)) as pool:
        run_chunks(lambda c: kernel(c * chunk, min(n_rows, (c + 1) * chunk), *args), n_chunks, pool)


@intrinsic
def _fetch_add_one(typingctx, counter):
    """Atomically ``counter[0] += 1``; returns the value before (LLVM ``atomicrmw add``)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", array.data, one, "monotonic")

    return types.int64(counter), codegen


@jit
def next_chunk(counter):
    """The next chunk index from the shared ``counter`` (int64 (1,), starts at 0), atomically."""
    return _fetch_add_one(counter)


# not cached: a generator loaded from Numba's disk cache leaves its implementation unregistered, and
# a kernel compiled afterwards that iterates over it fails to lower (numba 0.6x, KeyError in
# get_generator_impl); a kernel loaded from the cache needs no compilation of it
@numba.njit(nogil=True)
def pulled_chunks(counter, bounds):
    """Yield the row ranges ``(bounds[c], bounds[c + 1])`` of the chunks ``c`` this worker pulls from
    the shared ``counter`` (int64 (1,), starts at 0), until every chunk of ``bounds`` is taken.

    ``bounds``: int64 (n_chunks + 1,), as :func:`even_bounds` or :func:`balanced_bounds` return.
    """
    c = next_chunk(counter)
    while c < bounds.shape[0] - 1:
        yield bounds[c], bounds[c + 1]
        c = next_chunk(counter)


@jit
def even_bounds(n_rows, n_chunks):
    """Boundaries of the rows ``[0, n_rows)`` cut into ``n = min(n_chunks, n_rows)`` (at least 1)
    contiguous chunks of equal length (±1): int64 (n + 1,)."""
    n = max(1, min(n_chunks, n_rows))
    bounds = np.empty(n + 1, np.int64)
    for c in range(n + 1):
        bounds[c] = (n_rows * c) // n
    return bounds


@jit
def balanced_bounds(cum, n_chunks, row_cost):
    """Boundaries of the rows ``[0, n_rows)`` cut into at most ``n_chunks`` contiguous chunks of about
    equal work, row ``r`` costing ``cum[r + 1] - cum[r] + row_cost``.

    Parameters
    ----------
    cum : int64 (n_rows + 1,), non-decreasing, e.g. a CSR ``indptr`` (work = stored entries)
    n_chunks : int >= 1
    row_cost : float >= 0, the fixed cost of a row (> 0 spreads runs of empty rows too)

    Returns
    -------
    bounds : int64 (n + 1,), ``n = min(n_chunks, n_rows)`` (at least 1), ``bounds[0] = 0``,
    ``bounds[n] = n_rows``, non-decreasing (a chunk may be empty)
    """
    n_rows = cum.shape[0] - 1
    n = max(1, min(n_chunks, n_rows))
    bounds = np.empty(n + 1, np.int64)
    bounds[0] = 0
    bounds[n] = n_rows
    base = np.float64(cum[0])
    total = np.float64(cum[n_rows]) - base + row_cost * n_rows
    lo = 0
    for c in range(1, n):
        target = base + total * c / n
        hi = n_rows
        while lo < hi:  # the first row boundary r with work(0, r) >= target
            mid = (lo + hi) >> 1
            if np.float64(cum[mid]) + row_cost * mid < target:
                lo = mid + 1
            else:
                hi = mid
        bounds[c] = lo
    return bounds


def _warmup():
    """The helpers with the argument types the kernels' Python callers pass."""
    next_chunk(np.zeros(1, np.int64))
    even_bounds(2, 2)
    balanced_bounds(np.array([0, 1, 2], np.int64), 2, 1.0)
