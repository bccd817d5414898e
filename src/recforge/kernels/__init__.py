"""Compiled kernels: Numba functions on arrays, and thin dispatch to the C++ module ``recforge._core``."""
