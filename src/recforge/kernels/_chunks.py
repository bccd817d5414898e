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

Kernels that need more than a counter (a worker taking over a chunk another holds, a per-batch
barrier that waiting workers sleep through) use :func:`fetch_add`, :func:`compare_exchange`,
:func:`atomic_load`, :func:`atomic_store` on int64 arrays, :func:`wait_a_little` and
:func:`monotonic_ns` (how long a chunk has run, ``nn.py``).

Serial ``nogil`` kernels over a row range ``[r0, r1)`` get the same scheduling from Python threads
instead (:func:`run_row_chunks`, the pipeline's kernels).

Importing this module (every module of parallel kernels does) makes Numba's GNU OpenMP threads
block between parallel regions (:func:`~recforge.kernels._jit.load_openmp_passive`).
"""

from __future__ import annotations

import platform
import time

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
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


def _int64_array(arg):
    return isinstance(arg, types.Array) and arg.dtype == types.int64 and arg.layout == "C"


def _element_pointer(context, builder, signature, args):
    """Pointer to ``args[0][args[1]]`` (an intrinsic's array and index arguments)."""
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    array = context.make_array(signature.args[0])(context, builder, args[0])
    return builder.gep(array.data, [index])


@intrinsic
def fetch_add(typingctx, array, index, value):
    """Atomically ``array[index] += value`` (int64, C-contiguous, sequentially consistent);
    returns the value before."""
    if not (_int64_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        ptr = _element_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(array, index, value), codegen


@intrinsic
def compare_exchange(typingctx, array, index, expected, desired):
    """Atomically: if ``array[index] == expected``, set it to ``desired`` and return True
    (sequentially consistent); else leave it and return False. ``array`` int64, C-contiguous."""
    if not (_int64_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        ptr = _element_pointer(context, builder, signature, args)
        pair = builder.cmpxchg(ptr, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(array, index, expected, desired), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]`` read atomically (int64, C-contiguous, sequentially consistent): a value
    another thread stores, never a copy the compiler kept from an earlier read."""
    if not (_int64_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.load_atomic(ptr, "seq_cst", 8)

    return types.int64(array, index), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``array[index] = value`` stored atomically (int64, C-contiguous, sequentially consistent)."""
    if not (_int64_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        ptr = _element_pointer(context, builder, signature, args)
        builder.store_atomic(val, ptr, "seq_cst", 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@jit
def next_chunk(counter):
    """The next chunk index from the shared ``counter`` (int64 (1,), starts at 0), atomically."""
    return fetch_add(counter, 0, 1)


@intrinsic
def _sleep_microseconds(typingctx, microseconds):
    """The calling thread sleeps (libc ``usleep``; the OS runs other threads meanwhile)."""
    if not isinstance(microseconds, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "usleep")
        builder.call(fn, [builder.trunc(args[0], ir.IntType(32))])
        return context.get_dummy_value()

    return types.void(microseconds), codegen


#: the CPU's spin-wait hint as an LLVM intrinsic (x86 ``pause``; none elsewhere)
_RELAX_INTRINSIC = (
    "llvm.x86.sse2.pause" if platform.machine().lower() in ("x86_64", "amd64") else None
)


@intrinsic
def _cpu_relax(typingctx):
    """A spin-wait hint to the CPU (x86 ``pause``: less power, the sibling hardware thread runs)."""

    def codegen(context, builder, signature, args):
        if _RELAX_INTRINSIC is not None:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, _RELAX_INTRINSIC), [])
        return context.get_dummy_value()

    return types.void(), codegen


#: the clock of :func:`monotonic_ns` (``CLOCK_MONOTONIC``'s number differs between systems)
_MONOTONIC_CLOCK = getattr(time, "CLOCK_MONOTONIC", 1)


@intrinsic
def monotonic_ns(typingctx):
    """Nanoseconds of the system's monotonic clock (libc ``clock_gettime``, no GIL): int64, for
    the elapsed time between two calls on any threads of the process."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])  # tv_sec, tv_nsec (64-bit systems)
        ts = cgutils.alloca_once(builder, timespec)
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), timespec.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        builder.call(fn, [ir.Constant(ir.IntType(32), _MONOTONIC_CLOCK), ts])
        seconds = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nanoseconds = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(seconds, ir.Constant(i64, 1_000_000_000)), nanoseconds)

    return types.int64(), codegen


#: spins (each a short CPU-relaxing loop) of :func:`wait_a_little` before it sleeps instead
SPINS_BEFORE_SLEEP = 64
#: what one sleep of :func:`wait_a_little` asks the OS for (microseconds)
SLEEP_MICROSECONDS = 50


@jit
def wait_a_little(n_waits):
    """One step of a wait loop: the first :data:`SPINS_BEFORE_SLEEP` calls (``n_waits`` counts
    them) spin briefly, later ones sleep :data:`SLEEP_MICROSECONDS` so that a waiting thread leaves
    its core to others. Returns ``n_waits + 1``."""
    if n_waits < SPINS_BEFORE_SLEEP:
        for _ in range(32):
            _cpu_relax()
    else:
        _sleep_microseconds(SLEEP_MICROSECONDS)
    return n_waits + 1


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
    wait_a_little(0)
