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
