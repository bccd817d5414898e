"""The C++ loss/gradient and margin kernels of LR (``recforge._core.linear_*``): agreement with
the NumPy reference to 1e-12, results independent of the chunking, and bad input refused with an
exception naming the argument (never a crash)."""

import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recforge import _core
from recforge._reference import linear as ref
from recforge.kernels import linear as K
from recforge.kernels import logistic


def problem(n=900, d=37, density=0.15, seed=0, one_hot=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    if one_hot:
        X = (X != 0).astype(np.float64)
    y = (rng.random(n) < 0.4).astype(np.float64)
    sw = rng.uniform(0.2, 2.0, n)
    w = rng.standard_normal(d) * 0.7
    return X, y, sw, w, -0.25


def chunked(kernel_call, n, d, n_chunks):
    bounds = K.chunk_bounds(n, n_chunks)
    partial = np.empty((n_chunks, d + 1))
    loss = sum(kernel_call(bounds[c], bounds[c + 1], partial[c]) for c in range(n_chunks))
    return loss, partial.sum(axis=0)


def run(fmt, X, y, sw, w, b, n_chunks):
    n, d = X.shape
    if fmt.startswith("dense"):
        Xd = np.ascontiguousarray(X, dtype=np.float32 if fmt == "dense32" else np.float64)
        return chunked(
            lambda lo, hi, g: K.loss_grad_dense(Xd, y, sw, w, b, lo, hi, g), n, d, n_chunks
        )
    csr = sp.csr_matrix(X)
    index_dtypes = {"csr16": np.uint16, "csr32": np.int32, "csr64": np.int64, "pattern": np.int32}
    index_dtype = index_dtypes[fmt]
    indptr = csr.indptr.astype(np.int64 if index_dtype == np.int64 else np.int32)
    indices = csr.indices.astype(index_dtype)
    if fmt == "pattern":
        assert K.all_ones(csr.data)
        return chunked(
            lambda lo, hi, g: K.loss_grad_pattern(indptr, indices, y, sw, w, b, lo, hi, g),
            n,
            d,
            n_chunks,
        )
    return chunked(
        lambda lo, hi, g: K.loss_grad_csr(indptr, indices, csr.data, y, sw, w, b, lo, hi, g),
        n,
        d,
        n_chunks,
    )


@pytest.mark.parametrize("fmt", ["dense64", "dense32", "csr16", "csr32", "csr64", "pattern"])
def test_loss_and_gradient_match_the_reference_to_1e_12(fmt):
    X, y, sw, w, b = problem(one_hot=fmt == "pattern")
    if fmt == "dense32":
        X = X.astype(np.float32).astype(np.float64)  # the values the float32 kernel sees
    loss, g = run(fmt, X, y, sw, w, b, n_chunks=3)
    S = sw.sum()
    rf, rgw, rgb = ref.objective(X, y, sw, w, b, 0.0)
    np.testing.assert_allclose(loss / S, rf, rtol=1e-12)
    # each gradient entry to 1e-12 of the sum of its terms' magnitudes (entries can cancel)
    scale = np.abs(X).T @ sw / S
    assert np.all(np.abs(g[:-1] / S - rgw) <= 1e-12 * scale + 1e-300)
    assert abs(g[-1] / S - rgb) <= 1e-12 * sw.sum() / S


@pytest.mark.parametrize("fmt", ["dense64", "csr32", "pattern"])
def test_results_do_not_depend_on_the_chunk_order_of_the_threads(fmt):
    # the pool may run the chunks in any order: each chunk's output is the same, bit for bit
    X, y, sw, w, b = problem(n=5000, one_hot=fmt == "pattern", seed=2)
    first = run(fmt, X, y, sw, w, b, n_chunks=4)
    again = run(fmt, X, y, sw, w, b, n_chunks=4)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])


def chunk_pass(fmt, X, y, sw, w, b, n_chunks, n_threads):
    """(losses, partial) of one whole pass through the *_chunks binding of ``fmt``."""
    n, d = X.shape
    bounds = K.chunk_bounds(n, n_chunks)
    partial = np.full((n_chunks, d + 1), np.nan)
    losses = np.full(n_chunks, np.nan)
    if fmt == "dense64":
        logistic.loss_grad_dense_chunks(
            np.ascontiguousarray(X), y, sw, w, b, bounds, partial, losses, n_threads
        )
    else:
        csr = sp.csr_matrix(X)
        if fmt == "pattern":
            logistic.loss_grad_pattern_chunks(
                csr.indptr, csr.indices, y, sw, w, b, bounds, partial, losses, n_threads
            )
        else:
            logistic.loss_grad_csr_chunks(
                csr.indptr, csr.indices, csr.data, y, sw, w, b, bounds, partial, losses, n_threads
            )
    return losses, partial


@pytest.fixture
def late_helpers():
    """Helpers of a pass that sleep 20 ms after claiming each chunk (as one preempted on a busy
    core), so that the caller takes their chunks over; restored after the test."""
    before = _core._takeover_helper_delay(20_000_000)
    yield
    logistic.release_pass_inputs()
    _core._takeover_helper_delay(before)


@pytest.mark.parametrize("fmt", ["dense64", "csr32", "pattern"])
@pytest.mark.parametrize("helpers", ["on time", "late"])
def test_a_chunked_pass_equals_the_chunks_one_by_one_on_any_threads(fmt, helpers, request):
    # every chunk's partial row and loss are those of the row-range kernel, bit for bit, whatever
    # the threads, and when the caller takes over the chunks of late helpers
    if helpers == "late":
        request.getfixturevalue("late_helpers")
    X, y, sw, w, b = problem(n=20_000, one_hot=fmt == "pattern", seed=3)
    n_chunks = 7
    bounds = K.chunk_bounds(X.shape[0], n_chunks)
    if fmt == "dense64":
        Xd = np.ascontiguousarray(X)
        kernel = lambda lo, hi, g: K.loss_grad_dense(Xd, y, sw, w, b, lo, hi, g)  # noqa: E731
    else:
        csr = sp.csr_matrix(X)
        if fmt == "pattern":
            kernel = lambda lo, hi, g: K.loss_grad_pattern(  # noqa: E731
                csr.indptr, csr.indices, y, sw, w, b, lo, hi, g
            )
        else:
            kernel = lambda lo, hi, g: K.loss_grad_csr(  # noqa: E731
                csr.indptr, csr.indices, csr.data, y, sw, w, b, lo, hi, g
            )
    partial = np.empty((n_chunks, X.shape[1] + 1))
    losses = np.array([kernel(bounds[c], bounds[c + 1], partial[c]) for c in range(n_chunks)])
    taken_before = _core._chunks_taken_over()
    for n_threads in (1, 2, 3):
        got_losses, got_partial = chunk_pass(fmt, X, y, sw, w, b, n_chunks, n_threads)
        assert np.array_equal(got_losses, losses) and np.array_equal(got_partial, partial)
    if helpers == "late":  # (a helper is woken, not waited for: it may miss a pass entirely)
        for _attempt in range(20):
            if _core._chunks_taken_over() > taken_before:
                break
            got_losses, got_partial = chunk_pass(fmt, X, y, sw, w, b, n_chunks, 2)
            assert np.array_equal(got_losses, losses) and np.array_equal(got_partial, partial)
        else:
            pytest.fail("no chunk taken over from a late helper in 22 passes")


def test_a_pass_holds_the_arrays_its_late_helpers_read_until_they_are_released(late_helpers):
    # the caller returns while a late helper still sleeps inside its chunk: the pass keeps a
    # reference to every array the helper reads, and release_pass_inputs waits for it to leave
    X, y, sw, w, b = problem(n=20_000, seed=4)
    w_refs = sys.getrefcount(w)
    expected = chunk_pass("csr32", X, y, sw, w, b, 16, 1)
    for _attempt in range(20):  # (until a helper has joined a pass: it is woken, not waited for)
        taken_before = _core._chunks_taken_over()
        got = chunk_pass("csr32", X, y, sw, w, b, 16, 2)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
        if _core._chunks_taken_over() > taken_before:
            break
    else:
        pytest.fail("no helper joined 20 passes of 16 chunks")
    assert sys.getrefcount(w) > w_refs  # (its helper sleeps 20 ms in the chunk it took)
    logistic.release_pass_inputs()
    assert sys.getrefcount(w) == w_refs


def test_a_chunked_pass_refuses_bad_bounds_and_shapes():
    X, y, sw, w, b = problem(n=10, d=3)
    ok = (K.chunk_bounds(10, 2), np.empty((2, 4)), np.empty(2))
    logistic.loss_grad_dense_chunks(X, y, sw, w, b, *ok, 2)
    cases = [
        ((np.array([0, 11], np.int64), np.empty((1, 4)), np.empty(1)), "bounds must run"),
        ((np.array([0, 6, 4, 10], np.int64), np.empty((3, 4)), np.empty(3)), "non-decreasing"),
        ((np.array([0], np.int64), np.empty((0, 4)), np.empty(0)), "bounds must be"),
        ((ok[0], np.empty((2, 3)), ok[2]), "partial must be"),
        ((ok[0], np.empty((3, 4)), ok[2]), "partial must be"),
        ((ok[0], ok[1], np.empty(3)), "losses must be"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            logistic.loss_grad_dense_chunks(X, y, sw, w, b, *args, 2)
    with pytest.raises(ValueError, match="n_threads must be"):
        logistic.loss_grad_dense_chunks(X, y, sw, w, b, *ok, 0)
    csr = sp.csr_matrix(X)
    with pytest.raises(ValueError, match="partial must be"):  # (CSR: n_features = len(w))
        logistic.loss_grad_csr_chunks(csr.indptr, csr.indices, csr.data, y, sw, w[:2], b, *ok, 2)


def test_margins_match_numpy():
    X, _, _, w, b = problem(seed=5)
    out = np.full(X.shape[0], np.nan)
    K.margins_dense(np.ascontiguousarray(X), w, b, 0, 400, out)
    csr = sp.csr_matrix(X)
    K.margins_csr(csr.indptr, csr.indices.astype(np.uint16), csr.data, w, b, 400, X.shape[0], out)
    np.testing.assert_allclose(out, X @ w + b, rtol=1e-12, atol=1e-12)


def test_margins_on_threads_equal_one_thread_across_row_chunks():
    # 40k rows: three row chunks of the kernel; a sub-range that starts and ends inside chunks
    assert 2 * K.CHUNK_ROWS < 33_001 - 5 and 40_000 <= 3 * K.CHUNK_ROWS
    X, _, _, w, b = problem(n=40_000, seed=6)
    csr = sp.csr_matrix(X)
    Xd = np.ascontiguousarray(X)
    previous = _core._team_load_check(False)  # the team's threads whatever the machine's load
    try:
        for lo, hi in ((0, 40_000), (5, 33_001)):
            outs = []
            for n_threads in (1, 2, 3):
                dense = np.full(X.shape[0], np.nan)
                K.margins_dense(Xd, w, b, lo, hi, dense, n_threads)
                sparse = np.full(X.shape[0], np.nan)
                K.margins_csr(csr.indptr, csr.indices, csr.data, w, b, lo, hi, sparse, n_threads)
                outs += [dense, sparse]
            for i, out in enumerate(outs):  # dense, sparse at 1, 2, 3 threads
                assert np.isnan(out[:lo]).all() and np.isnan(out[hi:]).all()
                np.testing.assert_array_equal(out[lo:hi], outs[i % 2][lo:hi])
            for out in outs[:2]:
                np.testing.assert_allclose(out[lo:hi], X[lo:hi] @ w + b, rtol=1e-12, atol=1e-12)
    finally:
        _core._team_load_check(previous)
    with pytest.raises(ValueError, match="n_threads must be"):
        K.margins_dense(Xd, w, b, 0, 10, np.empty(X.shape[0]), 0)


def test_large_margins_give_finite_loss_and_residuals():
    X = np.array([[1.0], [1.0], [-1.0]])
    y = np.array([1.0, 0.0, 1.0])
    loss, g = run("dense64", X, y, np.ones(3), np.array([1e6]), 0.0, n_chunks=1)
    assert loss == pytest.approx(2e6) and np.isfinite(g).all()
    assert g[0] == pytest.approx(2.0) and g[1] == pytest.approx(0.0)


def test_bad_dtype_raises_type_error_naming_the_argument():
    X, y, sw, w, b = problem(n=10, d=3)
    g = np.empty(4)
    with pytest.raises(TypeError, match="X must be an array of dtype float32 or float64"):
        _core.linear_loss_grad_dense(X.astype(np.int64), y, sw, w, b, 0, 10, g)
    csr = sp.csr_matrix(X)
    with pytest.raises(TypeError, match="indices must be an array of dtype"):
        K.loss_grad_csr(csr.indptr, csr.indices.astype(np.int8), csr.data, y, sw, w, b, 0, 10, g)
    with pytest.raises(TypeError):
        K.loss_grad_dense(X, y.astype(np.float32), sw, w, b, 0, 10, g)


@pytest.mark.parametrize(
    ("lo", "hi", "match"), [(-1, 5, "lo <= hi"), (6, 5, "lo <= hi"), (0, 11, "hi <= n_rows")]
)
def test_bad_row_range_raises_value_error(lo, hi, match):
    X, y, sw, w, b = problem(n=10, d=3)
    with pytest.raises(ValueError, match=match):
        K.loss_grad_dense(X, y, sw, w, b, lo, hi, np.empty(4))


def test_wrong_lengths_raise_value_error():
    X, y, sw, w, b = problem(n=10, d=3)
    with pytest.raises(ValueError, match="g must be"):
        K.loss_grad_dense(X, y, sw, w, b, 0, 10, np.empty(3))
    with pytest.raises(ValueError, match="w must be"):
        K.loss_grad_dense(X, y, sw, w[:2], b, 0, 10, np.empty(4))
    csr = sp.csr_matrix(X)
    indptr = csr.indptr.copy()
    indptr[-1] = csr.nnz + 5
    with pytest.raises(ValueError, match="indptr must start at 0"):
        K.loss_grad_pattern(indptr, csr.indices, y, sw, w, b, 0, 10, np.empty(4))


def test_misaligned_arrays_are_read_from_aligned_copies_non_contiguous_refused():
    # csrc/bindings/arrays.hpp's visit_dtype: a view at an odd address (received bytes) gives what
    # its aligned copy gives, for every array argument of the linear_* bindings
    X, y, sw, w, b = problem(n=60, d=5)
    csr = sp.csr_matrix(X)
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        g, g_odd = np.empty(6), np.empty(6)
        assert K.loss_grad_dense(misaligned(Xd), *map(misaligned, (y, sw, w)), b, 0, 60, g_odd) == (
            K.loss_grad_dense(Xd, y, sw, w, b, 0, 60, g)
        )
        np.testing.assert_array_equal(g_odd, g)
        data = csr.data.astype(dtype)
        for indices in (csr.indices, csr.indices.astype(np.int64), csr.indices.astype(np.uint16)):
            odd = (misaligned(csr.indptr), misaligned(indices), misaligned(data))
            assert K.loss_grad_csr(*odd, y, sw, w, b, 0, 60, g_odd) == K.loss_grad_csr(
                csr.indptr, indices, data, y, sw, w, b, 0, 60, g
            )
            np.testing.assert_array_equal(g_odd, g)
            m, m_odd = np.empty(60), np.empty(60)
            K.margins_csr(csr.indptr, indices, data, w, b, 0, 60, m)
            K.margins_csr(*odd, misaligned(w), b, 0, 60, m_odd)
            np.testing.assert_array_equal(m_odd, m)
        m, m_odd = np.empty(60), np.empty(60)
        K.margins_dense(Xd, w, b, 0, 60, m)
        K.margins_dense(misaligned(Xd), w, b, 0, 60, m_odd)
        np.testing.assert_array_equal(m_odd, m)
    pattern = (csr != 0).astype(np.float64).tocsr()
    assert K.loss_grad_pattern(
        misaligned(pattern.indptr), misaligned(pattern.indices), y, sw, w, b, 0, 60, g_odd
    ) == K.loss_grad_pattern(pattern.indptr, pattern.indices, y, sw, w, b, 0, 60, g)
    np.testing.assert_array_equal(g_odd, g)
    assert K.all_ones(misaligned(np.ones(7))) and not K.all_ones(misaligned(np.arange(7.0)))
    with pytest.raises(ValueError, match="writeable"):  # an output is never a copy
        K.loss_grad_dense(X, y, sw, w, b, 0, 60, misaligned(np.empty(6)))
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        K.margins_dense(np.asfortranarray(X), w, b, 0, 60, np.empty(60))


def test_lr_fit_and_predict_on_a_misaligned_matrix_equal_an_aligned_copy():
    from recforge.rank import LogisticRegression

    X, _, _, _, _ = problem(n=400, d=6, density=0.6)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    for data in (X, X.astype(np.float32)):
        for make in (np.asarray, sp.csr_matrix):
            aligned = make(data)
            if sp.issparse(aligned):
                odd = sp.csr_matrix(
                    (
                        misaligned(aligned.data),
                        misaligned(aligned.indices),
                        misaligned(aligned.indptr),
                    ),
                    shape=aligned.shape,
                )
            else:
                odd = misaligned(aligned)
            expected = LogisticRegression(C=0.5).fit(aligned, y)
            got = LogisticRegression(C=0.5).fit(odd, y)
            np.testing.assert_array_equal(got.coef_, expected.coef_)
            np.testing.assert_array_equal(got.predict_proba(odd), expected.predict_proba(aligned))


def test_all_ones():
    assert K.all_ones(np.ones(5, np.float32)) and not K.all_ones(np.array([1.0, 2.0]))
    assert not K.all_ones(np.ones(0))


def misaligned(a):
    """A copy of ``a`` (C order) in a view one byte past an aligned address."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned and view.flags.c_contiguous
    return view


def test_every_array_binding_reads_a_misaligned_input_through_an_aligned_copy():
    # csrc/bindings/arrays.hpp: every CArray argument of every binding (here top-k and GBDT
    # binning, float32 and float64 inputs) works on a misaligned view and gives the same result
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        scores = rng.standard_normal((7, 50)).astype(dtype)
        expected = _core.topk_rows(scores, 5)
        got = _core.topk_rows(misaligned(scores), 5)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    X = rng.standard_normal((40, 3)).astype(np.float32)
    edges = np.sort(rng.standard_normal(6).astype(np.float32))
    args = (edges, np.array([0, 2, 4, 6], np.int64), np.zeros(3, np.uint8))
    np.testing.assert_array_equal(
        _core.gbdt_bin_features(misaligned(X), *args), _core.gbdt_bin_features(X, *args)
    )


def test_a_misaligned_output_array_is_refused_not_written_to_a_copy():
    out = misaligned(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="writeable"):
        _core.lfm_initial_factors(out, 0.1, 0, 1)
    assert np.all(out == 0.0)
