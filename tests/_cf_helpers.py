"""Shared helpers of the ItemCF / UserCF tests."""

import numpy as np
import scipy.sparse as sp


def random_interactions(n_users=40, n_items=30, density=0.15, seed=0):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 6, (n_users, n_items))
    dense[3] = 0  # a user without interactions
    dense[:, 5] = 0  # an item nobody saw
    return sp.csr_matrix(dense.astype(np.float32))


def assert_paths_agree(model, users, k, **kwargs):
    """recommend through the fused kernel and through the dense block path: identical output."""
    model._fused = True
    fused = model.recommend(users, k=k, **kwargs)
    model._fused = False
    try:
        dense = model.recommend(users, k=k, **kwargs)
    finally:
        model._fused = True
    np.testing.assert_array_equal(fused[0], dense[0])
    np.testing.assert_array_equal(fused[1], dense[1])
