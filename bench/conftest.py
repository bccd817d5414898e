"""Shared fixtures for the benchmarks.

Sizes come from ``RECFORGE_BENCH_SIZE``: ``full`` (default; the sizes the issues name) or ``smoke``
(tiny, seconds; what CI may run to check the benchmarks still work).
"""

import os

import pytest

SIZE = os.environ.get("RECFORGE_BENCH_SIZE", "full")
if SIZE not in ("full", "smoke"):
    raise pytest.UsageError(f"RECFORGE_BENCH_SIZE must be 'full' or 'smoke', got {SIZE!r}")


def pick(full, smoke):
    """The full-size value, or the smoke-size value under RECFORGE_BENCH_SIZE=smoke."""
    return full if SIZE == "full" else smoke


def synthetic_ctr_split(n_train, n_test, n_features=50):
    """``(X_train, y_train, X_test, y_test)`` from one ``synthetic_ctr`` draw (seed 0): the rank benchmarks' set."""
    from recforge.data import synthetic_ctr

    X, y = synthetic_ctr(n_train + n_test, n_features, seed=0)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.fixture
def busy_core():
    """Keep one core busy with a foreign process for the duration of a benchmark.

    DESIGN.md: with one core busy, a 2-thread recforge run must not be slower than its 1-thread run
    (spin-waiting OpenMP peers collapse here). The busy loop is a separate process, as on a shared machine.
    """
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.2)  # let it get scheduled
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
