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
    sgns_step(vin, vout, 0, contexts, negatives, 0.05, cbow=cbow, shared_negatives=False)
    ref.sgns_step(rin, rout, 0, contexts, negatives, 0.05, cbow=cbow)
    # the table sigmoid differs from the exact one by at most SIGMOID_ERROR_BOUND per term
    tol = 0.05 * SIGMOID_ERROR_BOUND * 6 * 3 + 1e-5
    np.testing.assert_allclose(vin, rin, atol=tol)
    np.testing.assert_allclose(vout, rout, atol=tol)
    assert not np.allclose(vin, _vectors(seed=seed)[0])


def _shared_window_reference(in_vecs, out_vecs, center, contexts, negatives, lr):
    """The shared-negatives window in float64: contexts 32 at a time, and for each, the centre and
    the negatives (those equal to the centre skipped) in groups of at most 8 distinct rows, the
    centre in the first; each (contexts × outputs) group is one step of -lr × the gradient of its
    summed loss, every term at the values before the step (np.add.at sums repeated rows)."""
    for c0 in range(0, len(contexts), 32):
        ctx = list(contexts[c0 : c0 + 32])
        negs = [n for n in negatives if n != center]
        groups, outs, labels = [], [center], [1.0]
        for n in negs:
            if n not in outs and len(set(outs)) == 8:
                groups.append((outs, labels))
                outs, labels = [], []
            outs.append(n)
            labels.append(0.0)
        groups.append((outs, labels))
        for outs, labels in groups:
            x, o = in_vecs[ctx].copy(), out_vecs[outs].copy()
            g = (np.array(labels)[None, :] - ref.sigmoid(x @ o.T)) * lr
            np.add.at(in_vecs, ctx, g @ o)
            np.add.at(out_vecs, outs, g.T @ x)


@pytest.mark.parametrize(
    "contexts, negatives",
    [
        ([1, 4, 7], [2, 3, 5, 9, 8]),
        ([1, 4, 7, 4], [2, 3, 0, 9, 3]),  # a repeated context, a repeated negative, the centre
        ([1], [0]),  # only the centre: the positive alone
        ([1, 4, 7, 15], [2, 3, 5, 9, 8, 10, 11, 12, 13, 14, 2, 16]),  # two groups of outputs
        (list(range(1, 20)) * 2 + [5, 6, 7], [8, 9, 0, 10]),  # two blocks of contexts
    ],
    ids=["distinct", "repeated", "centre-only", "two-output-groups", "two-context-blocks"],
)
@pytest.mark.parametrize("dim", [16, 13])
def test_shared_negatives_step_matches_reference(dim, contexts, negatives):
    vin, vout = _vectors(n=20, dim=dim)
    vin0 = vin.copy()
    rin, rout = vin.astype(np.float64), vout.astype(np.float64)
    sgns_step(vin, vout, 0, contexts, negatives, 0.05, shared_negatives=True)
    _shared_window_reference(rin, rout, 0, contexts, negatives, 0.05)
    # a row's update sums at most len(contexts) + len(negatives) + 1 terms g × entry, each g off by
    # at most lr × SIGMOID_ERROR_BOUND (table sigmoid), entries within ±0.4 (×2: they move)
    tol = 0.05 * SIGMOID_ERROR_BOUND * 0.4 * 2 * (len(contexts) + len(negatives) + 1) + 1e-6
    np.testing.assert_allclose(vin, rin, atol=tol)
    np.testing.assert_allclose(vout, rout, atol=tol)
    assert not np.allclose(vin, vin0)


def test_shared_negatives_step_differs_from_pairwise():
    vin, vout = _vectors(n=20, dim=16)
    a_in, a_out, b_in, b_out = vin.copy(), vout.copy(), vin.copy(), vout.copy()
    sgns_step(a_in, a_out, 0, [1, 4, 7], [2, 3, 5], 0.5)
    sgns_step(b_in, b_out, 0, [1, 4, 7], [2, 3, 5], 0.5, shared_negatives=False)
    assert not np.allclose(a_out, b_out, atol=1e-4)
    one_in, one_out = vin.copy(), vout.copy()  # one context: the block is the pair, bit for bit
    sgns_step(one_in, one_out, 0, [1], [2, 3, 5], 0.5)
    sgns_step(vin, vout, 0, [1], [2, 3, 5], 0.5, shared_negatives=False)
    np.testing.assert_array_equal(one_in, vin)
    np.testing.assert_array_equal(one_out, vout)


def _corpus(seed=0, n_items=40, n_seq=200):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 15, n_seq)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(0, n_items, offsets[-1]).astype(np.int32)
    return offsets, items, np.bincount(items, minlength=n_items)


def _epoch(corpus, seed, **kwargs):
    """One single-thread epoch from the same start vectors: (in_vecs, out_vecs, words trained)."""
    offsets, items, counts = corpus
    vin, vout = _vectors(40, 8)
    n = sgns_train_epoch(offsets, items, vin, vout, counts**0.75, seed=seed, n_threads=1, **kwargs)
    assert np.isfinite(vin).all() and np.isfinite(vout).all()
    return vin, vout, n


@pytest.mark.parametrize("cbow, shared", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("basket", [False, True])
def test_epoch_bit_identical_at_one_thread(cbow, shared, basket):
    corpus = _corpus()
    params = {"cbow": cbow, "basket": basket, "shared_negatives": shared}
    keep = keep_probabilities(corpus[2], 1e-2)
    runs = [_epoch(corpus, 3, keep_prob=keep, **params) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2] <= len(corpus[1])
    assert not np.array_equal(_epoch(corpus, 4, **params)[0], runs[0][0])


@pytest.mark.parametrize("basket", [False, True])
def test_epoch_shared_negatives_is_its_own_path(basket):
    """Skip-gram with shared negatives trains differently from the per-pair path; CBOW ignores it."""
    corpus = _corpus(n_seq=100)
    ends = {
        (cbow, shared): _epoch(corpus, 3, cbow=cbow, basket=basket, shared_negatives=shared)[0]
        for cbow in (False, True)
        for shared in (False, True)
    }
    assert not np.array_equal(ends[False, False], ends[False, True])
    np.testing.assert_array_equal(ends[True, False], ends[True, True])


@pytest.mark.parametrize("shared", [False, True])
def test_epoch_threads_run_and_stay_finite(shared):
    offsets, items, counts = _corpus(n_seq=2000)
    vin, vout = _vectors(40, 8)
    trained = sgns_train_epoch(
        offsets, items, vin, vout, counts**0.75, shared_negatives=shared, n_threads=2
    )
    assert trained == len(items)
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
            True,
        )
