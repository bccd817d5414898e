"""The dynamic chunk scheduling of the parallel Numba kernels (``recforge.kernels._chunks``)."""

import time

import numpy as np
import pytest
from numba import prange

from recforge._threads import numba_threads
from recforge.kernels._chunks import (
    CHUNKS_PER_WORKER,
    SPINS_BEFORE_SLEEP,
    atomic_load,
    atomic_store,
    balanced_bounds,
    compare_exchange,
    even_bounds,
    fetch_add,
    monotonic_ns,
    next_chunk,
    pulled_chunks,
    wait_a_little,
)
from recforge.kernels._jit import jit


@jit(parallel=True)
def _claims(n_chunks, n_workers):
    """How often each chunk was claimed, and by which worker, with every worker pulling."""
    claimed = np.zeros(n_chunks, np.int64)
    owner = np.full(n_chunks, -1, np.int64)
    counter = np.zeros(1, np.int64)
    for w in prange(n_workers):
        c = next_chunk(counter)
        while c < n_chunks:
            claimed[c] += 1
            owner[c] = w
            c = next_chunk(counter)
    return claimed, owner


@pytest.mark.parametrize("n_workers", [1, 2, 5])
def test_every_chunk_is_claimed_exactly_once(n_workers):
    with numba_threads(2):
        for _ in range(20):
            claimed, owner = _claims(2000, n_workers)
            np.testing.assert_array_equal(claimed, 1)
            assert owner.min() >= 0 and owner.max() < n_workers


@jit(parallel=True)
def _visits(bounds, n_workers):
    """How often each row was visited, by which worker, and how many chunks each worker took."""
    n_rows = bounds[-1]
    visited = np.zeros(n_rows, np.int64)
    owner = np.full(n_rows, -1, np.int64)
    taken = np.zeros(n_workers, np.int64)
    counter = np.zeros(1, np.int64)
    for w in prange(n_workers):
        for r0, r1 in pulled_chunks(counter, bounds):
            taken[w] += 1
            for r in range(r0, r1):
                visited[r] += 1
                owner[r] = w
    return visited, owner, taken


@pytest.mark.parametrize("n_workers", [1, 2, 5])
@pytest.mark.parametrize("n_rows", [0, 1, 7, 1000])
def test_pulled_chunks_visit_every_row_once(n_workers, n_rows):
    bounds = even_bounds(n_rows, n_workers * CHUNKS_PER_WORKER)
    with numba_threads(2):
        for _ in range(10):
            visited, owner, taken = _visits(bounds, n_workers)
            np.testing.assert_array_equal(visited, 1)
            assert n_rows == 0 or (owner.min() >= 0 and owner.max() < n_workers)
            assert taken.sum() == bounds.shape[0] - 1  # every chunk, once


@pytest.mark.parametrize("n_rows", [0, 1, 5, 1000])
@pytest.mark.parametrize("n_chunks", [1, 3, 16])
def test_even_bounds_cover_the_rows(n_rows, n_chunks):
    bounds = even_bounds(n_rows, n_chunks)
    assert bounds.dtype == np.int64
    assert bounds[0] == 0 and bounds[-1] == n_rows
    assert len(bounds) - 1 == max(1, min(n_chunks, n_rows))
    lengths = np.diff(bounds)
    assert lengths.min() >= 0 and lengths.max() - lengths.min() <= 1


def test_balanced_bounds_split_the_work_evenly():
    rng = np.random.default_rng(0)
    work = rng.pareto(1.5, 5000).astype(np.int64) * 10  # heavy-tailed rows, many empty ones
    cum = np.concatenate([[0], np.cumsum(work)]).astype(np.int64)
    n_chunks = 2 * CHUNKS_PER_WORKER
    bounds = balanced_bounds(cum, n_chunks, 1.0)
    assert bounds[0] == 0 and bounds[-1] == len(work) and np.all(np.diff(bounds) >= 0)
    chunk_work = np.diff(cum[bounds]) + np.diff(bounds)
    target = (cum[-1] + len(work)) / n_chunks
    # each chunk ends at the first row boundary past its share: off by at most one row
    assert np.all(
        np.abs(np.cumsum(chunk_work)[:-1] - target * np.arange(1, n_chunks)) <= work.max() + 1
    )


def test_balanced_bounds_edge_cases():
    assert balanced_bounds(np.zeros(1, np.int64), 8, 1.0).tolist() == [0, 0]
    assert balanced_bounds(np.array([0, 0, 0, 0], np.int64), 8, 0.0).tolist()[-1] == 3
    # all work in the last row: the earlier chunks stay (nearly) empty, the last holds it
    bounds = balanced_bounds(np.array([0, 0, 0, 0, 100], np.int64), 4, 0.0)
    assert bounds[0] == 0 and bounds[-1] == 4 and np.all(np.diff(bounds) >= 0)


@jit(parallel=True)
def _contended_atomics(n_slots, n_workers, rounds):
    """Every worker adds 1 to a shared counter ``rounds`` times and tries to own every slot."""
    counter = np.full(1, 0, np.int64)
    owner = np.full(n_slots, -1, np.int64)
    wins = np.full(n_workers, 0, np.int64)
    for w in prange(n_workers):
        for _ in range(rounds):
            fetch_add(counter, 0, 1)
        for s in range(n_slots):
            if compare_exchange(owner, s, -1, w):
                wins[w] += 1
    return atomic_load(counter, 0), owner, wins


@pytest.mark.parametrize("n_workers", [1, 2, 5])
def test_atomics_count_every_add_and_give_each_slot_one_owner(n_workers):
    with numba_threads(2):
        total, owner, wins = _contended_atomics(1000, n_workers, 10_000)
    assert total == n_workers * 10_000
    assert owner.min() >= 0 and owner.max() < n_workers
    np.testing.assert_array_equal(np.bincount(owner, minlength=n_workers), wins)


@jit
def _store_load_and_wait(value, n_waits):
    cell = np.zeros(2, np.int64)
    atomic_store(cell, 1, value)
    n = 0
    for _ in range(n_waits):
        n = wait_a_little(n)
    return cell[0], atomic_load(cell, 1), n


def test_atomic_store_load_and_the_wait_step():
    assert _store_load_and_wait(-7, SPINS_BEFORE_SLEEP + 3) == (0, -7, SPINS_BEFORE_SLEEP + 3)


@jit
def _clock_around_waits(n_waits):
    before = monotonic_ns()
    n = 0
    for _ in range(n_waits):
        n = wait_a_little(n)
    return before, monotonic_ns()


def test_monotonic_ns_is_the_system_monotonic_clock():
    """Readings inside a kernel fall between Python's ``time.monotonic_ns`` before and after the
    call, and the sleeps of the wait steps show in the elapsed time."""
    n_sleeps = 20
    py_before = time.monotonic_ns()
    before, after = _clock_around_waits(SPINS_BEFORE_SLEEP + n_sleeps)
    py_after = time.monotonic_ns()
    assert py_before <= before <= after <= py_after
    assert after - before >= n_sleeps * 50_000  # SLEEP_MICROSECONDS each, at least
