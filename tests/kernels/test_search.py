"""The binary searches of the Numba kernels (``recforge.kernels._search``) against NumPy's."""

import numpy as np
import pytest

from recforge.kernels._search import lower_bound, upper_bound


@pytest.mark.parametrize("seed", range(5))
def test_searches_equal_searchsorted_on_slices(seed):
    rng = np.random.default_rng(seed)
    a = np.sort(rng.integers(0, 20, 60)).astype(np.int64)  # with runs of equal values
    for _ in range(200):
        lo, hi = np.sort(rng.integers(0, len(a) + 1, 2))
        v = int(rng.integers(-2, 23))
        assert lower_bound(a, lo, hi, v) == lo + np.searchsorted(a[lo:hi], v, "left")
        assert upper_bound(a, lo, hi, v) == lo + np.searchsorted(a[lo:hi], v, "right")


def test_float_keys_and_empty_slice():
    a = np.array([0.5, 1.0, 1.0, 2.0])
    assert (lower_bound(a, 0, 4, 1.0), upper_bound(a, 0, 4, 1.0)) == (1, 3)
    assert (lower_bound(a, 2, 2, 9.0), upper_bound(a, 2, 2, -9.0)) == (2, 2)
