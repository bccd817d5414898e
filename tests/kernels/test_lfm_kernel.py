"""The C++ LFM SGD kernel against the NumPy reference (recforge._reference.lfm)."""

import numpy as np
import pytest

from recforge._reference import lfm as ref
from recforge.kernels.lfm import lfm_step, lfm_train_epoch


def _factors(seed=0, n_users=5, n_items=7, k=12):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 0.5, (n_users, k)).astype(np.float32),
        rng.normal(0, 0.5, (n_items, k)).astype(np.float32),
        rng.normal(0, 0.5, n_items).astype(np.float32),
    )


@pytest.mark.parametrize("loss", ["squared", "logistic", "bpr"])
@pytest.mark.parametrize("fit_bias", [False, True])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_step_matches_reference(loss, fit_bias, label):
    uf, itf, b = _factors()
    ruf, ritf, rb = uf.astype(np.float64), itf.astype(np.float64), b.astype(np.float64)
    hyper = {
        "loss": loss,
        "lr": 0.1,
        "reg_user": 0.02,
        "reg_item": 0.03,
        "reg_bias": 0.04,
        "fit_bias": fit_bias,
    }
    before = lfm_step(uf, itf, b, 2, 3, 5, label, **hyper)
    ref.lfm_step(ruf, ritf, rb, 2, 3, 5, label, **hyper)
    np.testing.assert_allclose(uf, ruf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(itf, ritf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, rb, rtol=1e-5, atol=1e-6)
    u0, i0, b0 = _factors()
    bias_i = b0[3] if fit_bias else 0.0
    bias_j = b0[5] if fit_bias else 0.0
    expected = ref.lfm_loss(
        u0[2].astype(np.float64),
        i0[3].astype(np.float64),
        bias_i,
        loss=loss,
        label=label,
        qj=i0[5].astype(np.float64),
        bj=bias_j,
    )
    np.testing.assert_allclose(before, expected, rtol=1e-4)


def _problem(seed=0, n_users=60, n_items=30):
    rng = np.random.default_rng(seed)
    m = rng.random((n_users, n_items)) < 0.2
    users, items = np.nonzero(m)
    indptr = np.concatenate([[0], np.cumsum(m.sum(1))]).astype(np.int64)
    return users.astype(np.int32), items.astype(np.int32), indptr, items.astype(np.int32), m


@pytest.mark.parametrize("loss", ["squared", "logistic", "bpr"])
def test_epoch_bit_identical_at_one_thread(loss):
    users, items, indptr, indices, _m = _problem()
    out = []
    for _ in range(2):
        uf, itf, b = _factors(n_users=60, n_items=30)
        mean, _skipped = lfm_train_epoch(
            users,
            items,
            indptr,
            indices,
            np.ones(30),
            uf,
            itf,
            b,
            loss=loss,
            fit_bias=True,
            seed=5,
            n_threads=1,
        )
        out.append((uf, itf, b, mean))
    for a, c in zip(out[0], out[1]):
        np.testing.assert_array_equal(a, c)
    assert np.isfinite(out[0][3])


def test_negatives_are_never_touched_items():
    """A user who touched every item but one can only get that one as a negative."""
    n_items = 6
    users = np.zeros(5, np.int32)
    items = np.arange(5, dtype=np.int32)
    indptr, indices = np.array([0, 5]), items.copy()
    uf, itf, b = _factors(n_users=1, n_items=n_items, k=4)
    itf_before = itf.copy()
    lfm_train_epoch(
        users,
        items,
        indptr,
        indices,
        np.ones(n_items),
        uf,
        itf,
        b,
        loss="bpr",
        n_steps=50,
        n_threads=1,
        reg_item=0.0,
    )
    # item 5 moved (it was the only negative); nothing crashes
    assert not np.allclose(itf[5], itf_before[5])


def test_bad_input():
    users, items, indptr, indices, _m = _problem()
    uf, itf, b = _factors(n_users=60, n_items=30)
    w = np.ones(30)
    with pytest.raises(TypeError, match="user_factors"):
        lfm_train_epoch(users, items, indptr, indices, w, uf.astype(np.float64), itf, b)
    with pytest.raises(TypeError, match="item_factors"):
        ro = itf.copy()
        ro.flags.writeable = False
        lfm_train_epoch(users, items, indptr, indices, w, uf, ro, b)
    with pytest.raises(ValueError, match="pos_items"):
        lfm_train_epoch(users, items + 30, indptr, indices, w, uf, itf, b)
    with pytest.raises(ValueError, match="touched_indptr"):
        lfm_train_epoch(users, items, indptr[:-1], indices, w, uf, itf, b)
    with pytest.raises(ValueError, match="loss"):
        lfm_train_epoch(users, items, indptr, indices, w, uf, itf, b, loss="hinge")
    with pytest.raises(ValueError, match="bpr"):
        lfm_step(uf, itf, b, 0, 1, loss="bpr")
    from recforge import _core

    with pytest.raises(TypeError):
        _core.lfm_step(uf.astype(np.float64), itf, b, 0, 1, 2, 1.0, 2, 0.1, 0.0, 0.0, 0.0, False)
