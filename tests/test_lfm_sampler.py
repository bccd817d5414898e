"""The LFM kernel's sampler (built once per fit) and its initial factors."""

import gc

import numpy as np
import pytest

from recforge import _core
from recforge.kernels.lfm import LfmSampler, lfm_initial_factors, lfm_train_epoch


def _problem(seed=0, n_users=80, n_items=300, density=0.1):
    rng = np.random.default_rng(seed)
    m = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(m)
    indptr = np.concatenate([[0], np.cumsum(m.sum(1))]).astype(np.int64)
    return users.astype(np.int32), items.astype(np.int32), indptr, items.astype(np.int32)


def _factors(n_users, n_items, k=16, seed=1):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 0.3, (n_users, k)).astype(np.float32),
        rng.normal(0, 0.3, (n_items, k)).astype(np.float32),
        rng.normal(0, 0.3, n_items).astype(np.float32),
    )


@pytest.mark.parametrize("loss", ["squared", "logistic", "bpr"])
def test_bit_matrix_and_binary_search_train_the_same_factors(loss):
    users, items, indptr, indices = _problem()
    weights = np.bincount(items, minlength=300) + 1.0
    out = {}
    for bits in (True, False):
        sampler = LfmSampler(users, items, indptr, indices, weights, 80, 300, touched_bits=bits)
        assert sampler._core.uses_touched_bits is bits
        uf, itf, b = _factors(80, 300)
        losses = [
            sampler.epoch(uf, itf, b, loss=loss, lr=0.05, fit_bias=True, n_negatives=3, seed=e)
            for e in range(3)
        ]
        out[bits] = (uf, itf, b, losses)
    for a, c in zip(out[True], out[False]):
        np.testing.assert_array_equal(a, c)


def test_small_data_takes_the_bit_matrix_and_large_sparse_data_the_search():
    users, items, indptr, indices = _problem()
    assert LfmSampler(users, items, indptr, indices, np.ones(300), 80, 300)._core.uses_touched_bits
    # 3000 users x 3M items: a 1.1 GB bit matrix for 3000 touched items
    n_users, n_items = 3000, 3_000_000
    ptr = np.arange(n_users + 1, dtype=np.int64)
    one = np.arange(n_users, dtype=np.int32) * 1000
    sampler = LfmSampler(one * 0, one, ptr, one, np.ones(n_items), n_users, n_items)
    assert not sampler._core.uses_touched_bits


def test_a_sampler_reused_over_epochs_equals_one_sampler_per_epoch():
    users, items, indptr, indices = _problem()
    weights = np.ones(300)
    sampler = LfmSampler(users, items, indptr, indices, weights, 80, 300)
    reused, fresh = _factors(80, 300), _factors(80, 300)
    for seed in range(3):
        a = sampler.epoch(*reused, lr=0.1, fit_bias=True, seed=seed)
        b = lfm_train_epoch(
            users, items, indptr, indices, weights, *fresh, lr=0.1, fit_bias=True, seed=seed
        )
        assert a == b
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)


def test_the_sampler_keeps_its_arrays_alive():
    users, items, indptr, indices = _problem()
    sampler = LfmSampler(
        users.copy(), items.copy(), indptr.copy(), indices.copy(), np.ones(300), 80, 300
    )
    gc.collect()
    uf, itf, b = _factors(80, 300)
    _loss, skipped = sampler.epoch(uf, itf, b, seed=0)
    assert skipped == 0 and np.all(np.isfinite(itf))


@pytest.mark.parametrize("margin", [0.7, -3.0, 30.0, -30.0])
def test_epoch_loss_sum_is_exact_over_many_terms(margin):
    """Every BPR term has the same margin: the epoch's mean loss is -log sigmoid(margin), even
    over 200k terms whose product of (1 + exp(-|x|)) leaves double's range many times."""
    n_items = 10
    users, items = np.zeros(1, np.int32), np.zeros(1, np.int32)  # one positive: (0, 0)
    indptr, indices = np.array([0, 1]), items.copy()
    uf = np.zeros((1, 8), np.float32)
    itf = np.zeros((n_items, 8), np.float32)
    bias = np.where(np.arange(n_items) == 0, margin, 0.0).astype(np.float32)
    sampler = LfmSampler(users, items, indptr, indices, np.ones(n_items), 1, n_items)
    mean, skipped = sampler.epoch(uf, itf, bias, lr=0.0, fit_bias=True, n_steps=200_000, seed=3)
    assert skipped == 0
    expected = np.logaddexp(0.0, -np.float64(np.float32(margin)))
    # each term is exact to a double's rounding of 1 + exp(-|x|): ~1e-16 absolute
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-15)


def test_sampler_bad_input():
    users, items, indptr, indices = _problem()
    w = np.ones(300)
    with pytest.raises(ValueError, match="pos_users"):
        LfmSampler(users + 80, items, indptr, indices, w, 80, 300)
    with pytest.raises(ValueError, match="touched_indptr"):
        LfmSampler(users, items, indptr[:-1], indices, w, 80, 300)
    with pytest.raises(ValueError, match="neg_weights"):
        LfmSampler(users, items, indptr, indices, w[:-1], 80, 300)
    with pytest.raises(TypeError, match="touched_bits"):
        LfmSampler(users, items, indptr, indices, w, 80, 300, touched_bits=1)
    sampler = LfmSampler(users, items, indptr, indices, w, 80, 300)
    uf, itf, b = _factors(81, 300)
    with pytest.raises(ValueError, match="user_factors"):
        sampler.epoch(uf, itf, b)
    uf, itf, b = _factors(80, 300)
    with pytest.raises(TypeError, match="item_factors"):
        sampler.epoch(uf, itf.astype(np.float64), b)
    with pytest.raises(ValueError, match="n_steps"):
        sampler.epoch(uf, itf, b, n_steps=-1)
    with pytest.raises(ValueError, match="touched_check"):
        _core.LfmSampler(users, items, indptr, indices, w, 80, 2)
    with pytest.raises(ValueError, match="n_users"):
        sampler._core.epoch(uf[:-1], itf, b, 10, 2, 0.1, 0.0, 0.0, 0.0, False, 1, 0, 1)


def test_initial_factors_are_uniform_and_the_same_for_any_thread_count():
    one = lfm_initial_factors(5000, 64, 0.1, seed=7, n_threads=1)
    two = lfm_initial_factors(5000, 64, 0.1, seed=7, n_threads=2)
    np.testing.assert_array_equal(one, two)
    assert one.dtype == np.float32 and one.shape == (5000, 64) and one.flags.c_contiguous
    half_width = np.sqrt(3.0) * 0.1 / 8.0
    assert np.abs(one).max() <= half_width
    # uniform on [-h, h): mean 0, standard deviation init_std / sqrt(n_factors), flat histogram
    assert abs(one.mean()) < 0.01 * half_width  # ten standard errors
    np.testing.assert_allclose(one.std(), 0.1 / 8.0, rtol=0.01)
    counts = np.histogram(one, bins=10, range=(-half_width, half_width))[0]
    np.testing.assert_allclose(counts / one.size, 0.1, rtol=0.02)
    assert not np.array_equal(one, lfm_initial_factors(5000, 64, 0.1, seed=8))
    np.testing.assert_array_equal(lfm_initial_factors(3, 5, 0.0, seed=1), 0.0)
    with pytest.raises(ValueError, match="init_std"):
        lfm_initial_factors(3, 5, -1.0, seed=1)
