"""Binary search in a sorted slice, for the Numba kernels (the one copy of the loop).

Both functions take the sorted slice ``a[lo:hi]`` and return a position in ``[lo, hi]``, as
``lo + np.searchsorted(a[lo:hi], v, side)`` would, without making a view.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def lower_bound(a, lo, hi, v):
    """The first position ``p`` in ``[lo, hi]`` with ``a[p] >= v`` (``hi`` when there is none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def upper_bound(a, lo, hi, v):
    """The first position ``p`` in ``[lo, hi]`` with ``a[p] > v`` (``hi`` when there is none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _warmup():
    """Both searches with the argument types of their callers' own warm-ups (compiled again as
    callees there when the types differ)."""
    a = np.array([1.0, 2.0])
    lower_bound(a, 0, 2, 1.5)
    upper_bound(a, 0, 2, 1.5)
