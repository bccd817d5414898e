"""The C++ word2vec trainer against the NumPy reference (recforge._reference.sgns)."""

import numpy as np
import pytest

from recforge._reference import sgns as ref
from recforge.kernels.sgns import (
    SIGMOID_ERROR_BOUND,
    aligned_vectors,
    keep_probabilities,
    sgns_sigmoid,
    sgns_step,
    sgns_train_epoch,
)


def _vectors(n=12, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.random((n, dim)) - 0.5) * 0.8).astype(np.float32), (
        (rng.random((n, dim)) - 0.5) * 0.8
    ).astype(np.float32)


def test_sigmoid_table_error_bound():
    x = np.linspace(-8, 8, 20001, dtype=np.float32)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    table = sgns_sigmoid(x)
    inside = np.abs(x) < 6
    assert np.max(np.abs(table[inside] - exact[inside])) <= SIGMOID_ERROR_BOUND + 1e-7
    assert np.all(table[x >= 6] == 1) and np.all(table[x <= -6] == 0)


# The trainer takes every dot product first when an update's rows are distinct, and goes row by row
# when a negative repeats: both paths must match the reference.
@pytest.mark.parametrize(
    "negatives",
    [[2, 3, 0, 9, 3], [2, 3, 5, 9, 8], [2, 0, 5, 11]],
    ids=["repeated-and-center", "distinct", "center"],
)
@pytest.mark.parametrize("cbow", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_matches_reference(cbow, seed, negatives):
    vin, vout = _vectors(seed=seed)
    rin, rout = vin.astype(np.float64), vout.astype(np.float64)
    contexts = [1, 4, 7]  # a negative equal to the center (0) is skipped
    sgns_step(vin, vout, 0, contexts, negatives, 0.05, cbow=cbow)
    ref.sgns_step(rin, rout, 0, contexts, negatives, 0.05, cbow=cbow)
    # the table sigmoid differs from the exact one by at most SIGMOID_ERROR_BOUND per term
    tol = 0.05 * SIGMOID_ERROR_BOUND * 6 * 3 + 1e-5
    np.testing.assert_allclose(vin, rin, atol=tol)
    np.testing.assert_allclose(vout, rout, atol=tol)
    assert not np.allclose(vin, _vectors(seed=seed)[0])


def _corpus(seed=0, n_items=40, n_seq=200):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 15, n_seq)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(0, n_items, offsets[-1]).astype(np.int32)
    return offsets, items, np.bincount(items, minlength=n_items)


@pytest.mark.parametrize("cbow", [False, True])
@pytest.mark.parametrize("basket", [False, True])
def test_epoch_bit_identical_at_one_thread(cbow, basket):
    offsets, items, counts = _corpus()
    runs = []
    for _ in range(2):
        vin, vout = _vectors(40, 8)
        n = sgns_train_epoch(
            offsets,
            items,
            vin,
            vout,
            counts**0.75,
            keep_prob=keep_probabilities(counts, 1e-2),
            cbow=cbow,
            basket=basket,
            seed=3,
            n_threads=1,
        )
        runs.append((vin, vout, n))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2] <= len(items)
    vin, vout = _vectors(40, 8)
    sgns_train_epoch(
        offsets, items, vin, vout, counts**0.75, cbow=cbow, basket=basket, seed=4, n_threads=1
    )
    assert not np.array_equal(vin, runs[0][0])


def test_epoch_threads_run_and_stay_finite():
    offsets, items, counts = _corpus(n_seq=2000)
    vin, vout = _vectors(40, 8)
    assert sgns_train_epoch(offsets, items, vin, vout, counts**0.75, n_threads=2) == len(items)
    assert np.isfinite(vin).all() and np.isfinite(vout).all()


def _offset_copy(v, aligned):
    """A copy of v whose data starts on a 64-byte boundary, or 16 bytes past one."""
    buf = aligned_vectors(1, v.size + 16).reshape(-1)
    start = 0 if aligned else 4
    out = buf[start : start + v.size].reshape(v.shape)
    out[:] = v
    return out


def test_aligned_vectors_and_alignment_does_not_change_results():
    v = aligned_vectors(7, 5)
    assert (
        v.shape == (7, 5)
        and v.dtype == np.float32
        and v.flags.c_contiguous
        and v.ctypes.data % 64 == 0
    )
    assert not v.any()
    offsets, items, counts = _corpus(n_items=40)
    runs = []
    for aligned in (True, False):
        vin, vout = (_offset_copy(v, aligned) for v in _vectors(40, 16))
        assert (vin.ctypes.data % 64 == 0) == aligned
        sgns_train_epoch(offsets, items, vin, vout, counts**0.75, seed=5, n_threads=1)
        runs.append((vin.copy(), vout.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_keep_probabilities():
    keep = keep_probabilities(np.array([10_000, 10, 0]), 1e-3)
    assert keep.dtype == np.float32 and keep[0] < 1 and keep[1] == 1 and keep[2] == 1
    assert keep_probabilities(np.array([5, 5]), 0) is None


def test_bad_input():
    offsets, items, counts = _corpus()
    vin, vout = _vectors(40, 8)
    w = counts**0.75
    with pytest.raises(TypeError, match="in_vecs"):
        sgns_train_epoch(offsets, items, vin.astype(np.float64), vout, w)
    with pytest.raises(TypeError, match="out_vecs"):
        sgns_train_epoch(offsets, items, vin, np.asfortranarray(vout), w)
    with pytest.raises(ValueError, match="items"):
        sgns_train_epoch(offsets, items + 100, vin, vout, w)
    with pytest.raises(ValueError, match="offsets"):
        sgns_train_epoch(offsets[::-1].copy(), items, vin, vout, w)
    with pytest.raises(ValueError, match="neg_weights"):
        sgns_train_epoch(offsets, items, vin, vout, np.zeros(40))
    with pytest.raises(ValueError, match="window"):
        sgns_train_epoch(offsets, items, vin, vout, w, window=0)
    with pytest.raises(ValueError, match="negatives"):
        sgns_step(vin, vout, 0, [1], [99], 0.1)
    # the C++ binding refuses a silent float64 copy too
    from recforge import _core

    with pytest.raises(TypeError):
        _core.sgns_step(
            vin.astype(np.float64),
            vout,
            0,
            np.array([1], np.int32),
            np.array([2], np.int32),
            0.1,
            False,
        )
