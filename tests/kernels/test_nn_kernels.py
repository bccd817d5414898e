"""Neural-ranker kernels agree with the NumPy reference (recforge._reference.nn) on small random inputs."""

import itertools
import time

import numpy as np
import pytest
import scipy.sparse as sp

from recforge import _core
from recforge._reference import nn as R
from recforge._threads import limit_blas_threads, load_scipy_blas
from recforge.kernels import nn as K
from recforge.rank._nn import flatten_params


def _problem(seed=0, n=37, cards=(5, 3, 7), dims=(4, 2, 3), n_num=3, hidden=(6, 5), n_wide=9):
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, c, n) for c in cards], axis=1).astype(np.int32)
    dense = rng.normal(size=(n, n_num)).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.float64)
    sw = rng.uniform(0.5, 2.0, n)
    tables = [rng.normal(0, 0.3, size=(c, d)).astype(np.float32) for c, d in zip(cards, dims)]
    sizes = [sum(dims) + n_num, *hidden, 1]
    kernels = [
        rng.normal(0, 0.5, size=(k, m)).astype(np.float32) for k, m in itertools.pairwise(sizes)
    ]
    biases = [rng.normal(0, 0.1, size=m).astype(np.float32) for m in sizes[1:]]
    wide = sp.random(n, n_wide, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    wide_w = rng.normal(0, 0.3, n_wide).astype(np.float32)
    lay = {
        "col_dim": np.array(dims, np.int64),
        "col_flat_off": np.concatenate([[0], np.cumsum(np.multiply(cards, dims))[:-1]]).astype(
            np.int64
        ),
        "col_row_off": np.concatenate([[0], np.cumsum(cards)]).astype(np.int64),
        "col_in_off": np.concatenate([[0], np.cumsum(dims)[:-1]]).astype(np.int64),
        "sizes": np.array(sizes, np.int64),
    }
    return dict(
        codes=codes,
        dense=dense,
        y=y,
        sw=sw,
        tables=tables,
        kernels=kernels,
        biases=biases,
        wide=wide,
        wide_w=wide_w,
        emb=np.concatenate([t.ravel() for t in tables]),
        params=flatten_params(kernels, biases),
        **lay,
    )


def _kernel_grads(P, rows, has_wide, l2):
    grads = np.empty_like(P["params"])
    emb_grad = np.empty_like(P["emb"])
    wide_grad = np.empty_like(P["wide_w"])
    w = P["wide"]
    loss = K.loss_grad(
        P["codes"],
        P["dense"],
        P["y"],
        P["sw"],
        rows,
        P["col_flat_off"],
        P["col_row_off"],
        P["col_dim"],
        P["col_in_off"],
        P["emb"],
        P["sizes"],
        P["params"],
        has_wide,
        w.indptr.astype(np.int64),
        w.indices.astype(np.int32),
        w.data,
        P["wide_w"],
        l2,
        grads,
        emb_grad,
        wide_grad,
    )
    return loss, grads, emb_grad, wide_grad


@pytest.mark.parametrize("has_wide", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_loss_and_gradients_match_reference(has_wide, l2):
    P = _problem(seed=1)
    rows = np.arange(P["y"].shape[0], dtype=np.int64)
    loss, grads, emb_grad, wide_grad = _kernel_grads(P, rows, has_wide, l2)
    ref = R.loss_and_grads(
        P["codes"],
        P["dense"],
        P["y"],
        P["sw"],
        P["tables"],
        P["kernels"],
        P["biases"],
        P["wide"].toarray() if has_wide else None,
        P["wide_w"],
        l2=l2,
    )
    rloss, g_tables, g_kernels, g_biases, g_wide = ref
    assert loss == pytest.approx(rloss, rel=1e-5)
    np.testing.assert_allclose(grads, flatten_params(g_kernels, g_biases), rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(
        emb_grad, np.concatenate([g.ravel() for g in g_tables]), rtol=2e-4, atol=1e-6
    )
    if has_wide:
        np.testing.assert_allclose(wide_grad, g_wide, rtol=2e-4, atol=1e-6)
    else:
        assert not wide_grad.any()


def _gather(P, rows):
    """x0 (len(rows), d0) float32: the dense layers' inputs of rows (the kernels' gather)."""
    x0 = np.empty((len(rows), int(P["sizes"][0])), np.float32)
    _core._nn_gather_inputs(
        P["codes"],
        P["dense"],
        rows,
        P["col_flat_off"],
        P["col_row_off"],
        P["col_dim"],
        P["col_in_off"],
        P["emb"],
        P["sizes"],
        P["params"],
        x0,
    )
    return x0


def _forward(P, x0, dropout=0.0, seed=0):
    """(logits (nb,) float32, acts): the kernels' dense layers on x0 (dropout masks from seed)."""
    nb, sizes = x0.shape[0], P["sizes"]
    acts = np.empty(nb * int(sizes[1:].sum()), np.float32)
    load_scipy_blas()
    with limit_blas_threads(1):
        _core._nn_mlp_forward(x0, P["params"], sizes, acts, dropout, seed)
    return acts[nb * int(sizes[1:-1].sum()) :].copy(), acts


def test_gather_inputs_is_the_lookup():
    P = _problem(seed=2)
    rows = np.array([3, 0, 5, 5], dtype=np.int64)
    x0 = _gather(P, rows)
    np.testing.assert_array_equal(
        x0, R.inputs(P["codes"][rows], P["dense"][rows], P["tables"]).astype(np.float32)
    )


def _compiled_logits(P, lo, hi, chunk=64, n_threads=1, has_wide=True, **changes):
    """out[lo:hi] of the compiled forward pass (``_core.nn_predict_logits``) on problem P."""
    w = P["wide"]
    args = dict(
        codes=P["codes"],
        dense=P["dense"],
        lo=lo,
        hi=hi,
        col_flat_off=P["col_flat_off"],
        col_row_off=P["col_row_off"],
        col_dim=P["col_dim"],
        col_in_off=P["col_in_off"],
        emb=P["emb"],
        sizes=P["sizes"],
        params=P["params"],
        has_wide=has_wide,
        w_indptr=w.indptr.astype(np.int64),
        w_indices=w.indices.astype(np.int32),
        w_data=w.data,
        wide_w=P["wide_w"],
        chunk=chunk,
        out=np.full(P["codes"].shape[0], np.nan),
        n_threads=n_threads,
    )
    args.update(changes)
    load_scipy_blas()
    with limit_blas_threads(1):
        K.predict_logits(**args)
    return args["out"]


def test_predict_logits_matches_reference_forward():
    P = _problem(seed=3, n=300)
    out = _compiled_logits(P, 0, 300)
    z, _ = R.forward(R.inputs(P["codes"], P["dense"], P["tables"]), P["kernels"], P["biases"])
    z = z + P["wide"].toarray().astype(np.float64) @ P["wide_w"]
    np.testing.assert_allclose(out, z, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 65, 300])
@pytest.mark.parametrize("hidden", [(6, 5), (1,), ()])
@pytest.mark.parametrize("has_wide", [False, True])
def test_predict_logits_equal_the_training_forward_bit_for_bit(n, hidden, has_wide):
    """Prediction runs the training pass's gather and dense layers (BLAS as Numba's np.dot called
    it: sdot for one row and one unit, sgemv for one row or one unit, sgemm otherwise) plus the
    wide part in float32: on the same blocks of rows, the same bits, whatever the number of
    threads. (BLAS's result for a row may depend on the block it is computed in.)"""
    P = _problem(seed=11, n=n, hidden=hidden)
    w = P["wide"]
    for chunk, n_threads in [(n, 1), (64, 2), (7, 3)]:
        z = np.empty(n, np.float32)
        for lo in range(0, n, chunk):
            rows = np.arange(lo, min(n, lo + chunk), dtype=np.int64)
            zb, _ = _forward(P, _gather(P, rows))
            if has_wide:
                for r, i in enumerate(rows):
                    s = np.float32(0.0)
                    for p in range(w.indptr[i], w.indptr[i + 1]):
                        s = np.float32(s + w.data[p] * P["wide_w"][w.indices[p]])
                    zb[r] = np.float32(zb[r] + s)
            z[rows] = zb
        out = _compiled_logits(P, 0, n, chunk, n_threads, has_wide)
        np.testing.assert_array_equal(out, z.astype(np.float64))


def test_predict_logits_fill_only_the_row_range():
    P = _problem(seed=12, n=50)
    whole = _compiled_logits(P, 0, 50)
    part = _compiled_logits(P, 10, 31, chunk=4, n_threads=2)
    np.testing.assert_array_equal(part[10:31], whole[10:31])
    assert np.isnan(part[:10]).all() and np.isnan(part[31:]).all()
    assert np.isnan(_compiled_logits(P, 20, 20)).all()


def test_predict_logits_reject_inconsistent_arrays():
    P = _problem(seed=13, n=20)
    bad_codes = P["codes"].copy()
    bad_codes[5, 1] = 3  # column 1 has 3 codes
    cases = [
        (dict(codes=bad_codes), "codes must select rows of their column"),
        (dict(hi=21), "lo <= hi <= n_rows"),
        (dict(lo=-1), "lo <= hi <= n_rows"),
        (dict(sizes=P["sizes"][:-1]), "last layer must have size 1"),
        (dict(params=P["params"][:-1]), "params must be a float32 array"),
        (dict(chunk=0), "chunk must be >= 1"),
        (dict(n_threads=0), "n_threads must be >= 1"),
        (dict(out=np.empty(19)), "out must be a float64 array"),
        (dict(wide_w=P["wide_w"][:2]), "w_indices must be columns of wide_w"),
        (dict(w_indptr=P["wide"].indptr[:5].astype(np.int64)), "w_indptr must hold"),
        (dict(dense=P["dense"][:, :2].copy()), r"sizes\[0\] must equal"),
        (dict(col_row_off=P["col_row_off"] * 2), "table .* must sit in emb"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            _compiled_logits(P, changes.pop("lo", 0), changes.pop("hi", 20), **changes)
    with pytest.raises(TypeError):
        _compiled_logits(P, 0, 20, emb=P["emb"].astype(np.float64))


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "adam", "ftrl"])
def test_update_matches_reference(opt):
    rng = np.random.default_rng(4)
    p = rng.normal(size=50).astype(np.float32)
    g = rng.normal(size=50).astype(np.float32)
    m = np.full(50, 0.1 if opt in ("adagrad", "ftrl") else 0.0, np.float32)
    v = np.zeros(50, np.float32)
    if opt == "adam":  # a second step, with non-zero moments
        m = rng.normal(0, 0.1, 50).astype(np.float32)
        v = rng.uniform(0, 0.1, 50).astype(np.float32)
    lr, t = 0.05, 2
    alpha = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    code = {"sgd": K.SGD, "adagrad": K.ADAGRAD, "adam": K.ADAM, "ftrl": K.FTRL}[opt]
    pk, mk, vk = p.copy(), m.copy(), v.copy()
    _core._nn_update(pk, g, mk, vk, code, lr, alpha, 0.9, 0.999, 1e-7, 0.01, 0.02)
    p64, g64, m64, v64 = (a.astype(np.float64) for a in (p, g, m, v))
    if opt == "sgd":
        expected = R.sgd_step(p64, g64, lr)
    elif opt == "adagrad":
        expected, acc = R.adagrad_step(p64, g64, m64, lr)
        np.testing.assert_allclose(mk, acc, rtol=1e-5)
    elif opt == "adam":
        expected, m2, v2 = R.adam_step(p64, g64, m64, v64, t, lr)
        np.testing.assert_allclose(mk, m2, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(vk, v2, rtol=1e-5, atol=1e-8)
    else:
        expected, acc, lin = R.ftrl_step(p64, g64, m64, v64, lr, 0.01, 0.02)
        np.testing.assert_allclose(vk, lin, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pk, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("opt", [K.SGD, K.ADAGRAD, K.ADAM])
def test_train_batches_one_batch_is_gradient_plus_update(opt):
    """One full batch: dense params, touched embedding rows and wide weights move by the optimiser
    step of the reference gradient; untouched embedding rows do not move."""
    P = _problem(seed=5, n=20, cards=(30, 4), dims=(3, 2))
    n = 20
    order = np.arange(n, dtype=np.int64)
    lr = 0.1
    init = 0.1 if opt == K.ADAGRAD else 0.0
    emb, params, wide_w = P["emb"].copy(), P["params"].copy(), P["wide_w"].copy()
    st = [
        np.full_like(a, init) if k == 0 else np.zeros_like(a)
        for a in (emb, params, wide_w)
        for k in (0, 1)
    ]
    w = P["wide"]
    step = np.zeros(1, np.int64)
    K.train_batches(
        P["codes"],
        P["dense"],
        P["y"],
        P["sw"],
        order,
        0,
        n,
        n,
        P["col_flat_off"],
        P["col_row_off"],
        P["col_dim"],
        P["col_in_off"],
        emb,
        st[0],
        st[1],
        P["sizes"],
        params,
        st[2],
        st[3],
        True,
        w.indptr.astype(np.int64),
        w.indices.astype(np.int32),
        w.data,
        wide_w,
        st[4],
        st[5],
        opt,
        lr,
        0.9,
        0.999,
        1e-7,
        0.0,
        opt,
        lr,
        0.0,
        0.0,
        step,
    )
    assert step[0] == 1
    _, g, ge, gw = _kernel_grads(P, order, True, 0.0)

    def stepped(p, grad):
        p64, g64 = p.astype(np.float64), grad.astype(np.float64)
        if opt == K.SGD:
            return R.sgd_step(p64, g64, lr)
        if opt == K.ADAGRAD:
            return R.adagrad_step(p64, g64, np.full_like(p64, 0.1), lr)[0]
        return R.adam_step(p64, g64, 0 * p64, 0 * p64, 1, lr)[0]

    np.testing.assert_allclose(params, stepped(P["params"], g), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb, stepped(P["emb"], ge), rtol=1e-4, atol=1e-5)
    used = np.zeros(P["col_row_off"][-1], bool)
    for c in range(2):
        used[P["col_row_off"][c] + P["codes"][:, c]] = True
    assert not used.all()
    untouched_rows = np.flatnonzero(~used[:30])  # column 0 (dim 3) only
    for r in untouched_rows:
        np.testing.assert_array_equal(emb[3 * r : 3 * r + 3], P["emb"][3 * r : 3 * r + 3])
        assert st[0][3 * r] == init  # optimiser state untouched too
    touched_w = np.unique(w.indices)
    np.testing.assert_allclose(
        wide_w[touched_w], stepped(P["wide_w"], gw)[touched_w], rtol=1e-4, atol=1e-5
    )


def _train(P, order, batch_size, n_workers=1, dropout=0.0):
    """Adam on copies of P's weights (wide part included); returns (loss, emb, params, wide_w, step)."""
    w = P["wide"]
    emb, params, wide_w = P["emb"].copy(), P["params"].copy(), P["wide_w"].copy()
    st = [np.zeros_like(a) for a in (emb, emb, params, params, wide_w, wide_w)]
    step = np.zeros(1, np.int64)
    loss = K.train_batches(
        P["codes"],
        P["dense"],
        P["y"],
        P["sw"],
        order,
        0,
        len(order),
        batch_size,
        P["col_flat_off"],
        P["col_row_off"],
        P["col_dim"],
        P["col_in_off"],
        emb,
        st[0],
        st[1],
        P["sizes"],
        params,
        st[2],
        st[3],
        True,
        w.indptr.astype(np.int64),
        w.indices.astype(np.int32),
        w.data,
        wide_w,
        st[4],
        st[5],
        K.ADAM,
        0.01,
        0.9,
        0.999,
        1e-7,
        0.0,
        K.ADAM,
        0.01,
        0.0,
        0.0,
        step,
        dropout,
        7,
        n_workers,
    )
    return loss, emb, params, wide_w, step[0]


def test_train_batches_is_deterministic():
    P = _problem(seed=6, n=200)
    order = np.random.default_rng(0).permutation(200).astype(np.int64)
    outs = [_train(P, order, 16) for _ in range(2)]
    assert outs[0][0] == outs[1][0]
    for a, b in zip(outs[0][1:], outs[1][1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_workers", [2, 3, 8])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("load", ["the machine's", "no core free"])
def test_train_batches_same_for_any_number_of_workers(n_workers, dropout, load, request):
    """Batches of 3 chunks (64, 64, 22 rows) and a short last batch: the workers claim chunks,
    re-compute chunks others hold, share the dense update in blocks; results equal one worker's
    (also when the machine reads as having no core free: every wait then sleeps from its start)."""
    if load == "no core free":
        forced = _core._team_load_override(8)
        request.addfinalizer(lambda: _core._team_load_override(forced))
    P = _problem(seed=8, n=500, hidden=(40, 70))  # 47 + 40*70 + ... > UPDATE_BLOCK parameters
    assert P["params"].size > K.UPDATE_BLOCK
    order = np.random.default_rng(1).permutation(500).astype(np.int64)
    one = _train(P, order, 150, 1, dropout)
    for _ in range(5):
        many = _train(P, order, 150, n_workers, dropout)
        assert many[0] == one[0] and many[4] == one[4] == 4
        for a, b in zip(many[1:4], one[1:4]):
            np.testing.assert_array_equal(a, b)


def test_train_batches_same_with_a_core_taken_by_a_foreign_process():
    """Two workers while a foreign process spins: the OS preempts a worker mid-chunk, the other
    re-computes its chunks (each into its own spare slot) and the slots of published chunks are
    handed back and forth between the workers and the chunks' homes; results equal one worker's."""
    import subprocess
    import sys

    P = _problem(seed=10, n=1500, hidden=(40, 70))
    order = np.random.default_rng(2).permutation(1500).astype(np.int64)
    one = _train(P, order, 150, 1, 0.3)  # 10 batches of 3 chunks (64, 64, 22 rows)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for _ in range(10):
            many = _train(P, order, 150, 2, 0.3)
            assert many[0] == one[0] and many[4] == one[4] == 10
            for a, b in zip(many[1:4], one[1:4]):
                np.testing.assert_array_equal(a, b)
    finally:
        spinner.kill()
        spinner.wait()


def test_train_batches_returns_the_summed_loss_before_each_update():
    P = _problem(seed=9, n=100)
    order = np.arange(100, dtype=np.int64)
    loss_one_batch = _train(P, order, 100)[0]
    expected = _kernel_grads(P, order, True, 0.0)[0] * 100  # the mean weighted log-loss x rows
    np.testing.assert_allclose(loss_one_batch, expected, rtol=1e-6)
    loss_two_batches = _train(P, order, 50)[0]
    first = _kernel_grads(P, order[:50], True, 0.0)[0] * 50
    _, emb, params, wide_w, _ = _train(P, order[:50], 50)
    stepped = dict(P, emb=emb, params=params, wide_w=wide_w)
    second = _kernel_grads(stepped, order[50:], True, 0.0)[0] * 50  # after the first batch's step
    np.testing.assert_allclose(loss_two_batches, first + second, rtol=1e-6)


def test_dropout_forward_backward_match_reference_on_the_realised_mask():
    P = _problem(seed=7, n=50, hidden=(12, 9))
    rate = 0.4
    rows = np.arange(50, dtype=np.int64)
    sizes = P["sizes"]
    x0 = _gather(P, rows)
    z, acts = _forward(P, x0, rate, seed=3)
    masks, off = [], 0
    for width in sizes[1:-1].tolist():
        h = acts[off * 50 : (off + width) * 50].reshape(50, width)
        masks.append(np.where(h != 0, 1.0 / (1.0 - rate), 0.0))
        off += width
    assert 0.25 < np.mean(np.concatenate([m.ravel() for m in masks]) == 0) < 0.75
    zr, _ = R.forward(x0, P["kernels"], P["biases"], masks)
    np.testing.assert_allclose(z, zr, rtol=1e-4, atol=1e-5)
    ref = R.loss_and_grads(
        P["codes"], P["dense"], P["y"], P["sw"], P["tables"], P["kernels"], P["biases"], masks=masks
    )
    p = 1.0 / (1.0 + np.exp(-zr))
    dz = (P["sw"] * (p - P["y"]) / 50).astype(np.float32)
    grads = np.empty_like(P["params"])
    _core._nn_mlp_backward(x0, P["params"], sizes, acts, dz, 0.0, grads, rate)
    np.testing.assert_allclose(grads, flatten_params(ref[2], ref[3]), rtol=2e-4, atol=1e-6)


def test_a_waiting_worker_takes_over_only_a_late_chunk():
    """late_chunk: the first unpublished chunk whose computation began more than LATE_CHUNK_FACTOR
    times the fastest timed pass ago (FIRST_LATE_NS before any pass was timed); -1 while the
    unpublished chunks are on time; n_chunks once every chunk is published."""
    # "just now" a minute ahead: the test's thread may be preempted (or compile) for milliseconds
    now = time.monotonic_ns() + 60 * 10**9
    never = np.iinfo(np.int64).max
    fastest = np.full(1, never, np.int64)
    owner = np.array([-1, -1, 3, 9, 2, -1], np.int64)  # batch 1 of two, 3 chunks each: slots 3..5
    started = np.array([0, 0, 0, now, now, now], np.int64)
    assert _core._nn_late_chunk(owner, started, 3, 3, fastest) == -1  # chunk 2 began just now
    started[5] = time.monotonic_ns() - 2 * K.FIRST_LATE_NS
    assert _core._nn_late_chunk(owner, started, 3, 3, fastest) == 2
    _core._nn_record_fastest(fastest, 1000 * K.FIRST_LATE_NS)
    _core._nn_record_fastest(fastest, 400 * K.FIRST_LATE_NS)
    _core._nn_record_fastest(fastest, 700 * K.FIRST_LATE_NS)
    assert fastest[0] == 400 * K.FIRST_LATE_NS
    started[5] = time.monotonic_ns() - 2 * K.FIRST_LATE_NS
    assert (
        _core._nn_late_chunk(owner, started, 3, 3, fastest) == -1
    )  # 2 ms < LATE_CHUNK_FACTOR * 0.4 s
    started[5] = never  # claimed, its start not stored yet: on time
    assert _core._nn_late_chunk(owner, started, 3, 3, fastest) == -1
    assert _core._nn_late_chunk(owner, started, 0, 2, fastest) == 0  # slots 0, 1 began at 0: late
    owner[5] = 1
    assert _core._nn_late_chunk(owner, started, 3, 3, fastest) == 3
