import numpy as np
import pytest
import scipy.sparse as sp

from recforge._reference.cf import penalised_cosine_topk
from recforge.kernels._csr import csr_kernel_arrays as csr_arrays
from recforge.kernels.neighbors import (
    cooccurrence_topk,
    cooccurrence_topk_symmetric,
    two_hop_scores,
    two_hop_topk,
)
from recforge.kernels.topk import topk


def _random_binary(n_rows, n_mid, density, seed):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_mid, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    m.sort_indices()
    return m


@pytest.mark.parametrize("kernel", [cooccurrence_topk, cooccurrence_topk_symmetric])
@pytest.mark.parametrize("n_chunks", [1, 3])
@pytest.mark.parametrize("k", [1, 4, 50])
def test_cooccurrence_matches_reference(kernel, n_chunks, k):
    rows = _random_binary(35, 20, 0.2, seed=k)
    cols = rows.T.tocsr()
    cols.sort_indices()
    penalty = np.random.default_rng(1).random(20) + 0.1
    degree = np.maximum(np.diff(rows.indptr), 1).astype(np.float64)
    a, b = csr_arrays(rows), csr_arrays(cols)
    idx, val, counts = kernel(a[0], a[1], b[0], b[1], penalty, np.sqrt(degree), k, n_chunks)
    expected = penalised_cosine_topk(rows.toarray(), penalty, k)
    got = np.zeros_like(expected)
    for r in range(35):
        got[r, idx[r, : counts[r]]] = val[r, : counts[r]]
        assert np.all(np.diff(val[r, : counts[r]]) <= 0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_both_cooccurrence_kernels_identical():
    rows = _random_binary(120, 60, 0.1, seed=9)
    rows.data[:] = 1.0
    cols = rows.T.tocsr()
    cols.sort_indices()
    a, b = csr_arrays(rows), csr_arrays(cols)
    penalty = np.ones(60)
    norm = np.sqrt(np.maximum(np.diff(rows.indptr), 1).astype(np.float64))
    one = cooccurrence_topk(a[0], a[1], b[0], b[1], penalty, norm, 7, 4)
    two = cooccurrence_topk_symmetric(a[0], a[1], b[0], b[1], penalty, norm, 7, 2)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(
            x, y
        )  # ties (many here: binary data, unit penalty) by lower index


@pytest.mark.parametrize("k", [1, 3, 20, 150])
def test_row_kernel_long_rows_and_ties(k):
    """Rows with ~300 candidates: more than the row kernel's selection buffer for small k (cut back
    many times), more than its rank-sort limit for k=150. With a unit penalty ties are everywhere;
    the pair kernel (heaps) is an independent implementation of the same rule."""
    rows = _random_binary(400, 30, 0.2, seed=5)
    cols = rows.T.tocsr()
    cols.sort_indices()
    a, b = csr_arrays(rows), csr_arrays(cols)
    norm = np.sqrt(np.maximum(np.diff(rows.indptr), 1).astype(np.float64))
    unit = np.ones(30)
    by_rows = cooccurrence_topk(a[0], a[1], b[0], b[1], unit, norm, k, 3)
    assert np.mean(by_rows[2] == k) > 0.5  # most rows have more than k candidates
    for n_chunks in (1, 2):
        by_pairs = cooccurrence_topk_symmetric(a[0], a[1], b[0], b[1], unit, norm, k, n_chunks)
        for x, y in zip(by_rows, by_pairs):
            np.testing.assert_array_equal(x, y)
    penalty = np.random.default_rng(3).random(30) + 0.1
    idx, val, counts = cooccurrence_topk(a[0], a[1], b[0], b[1], penalty, norm, k, 2)
    expected = penalised_cosine_topk(rows.toarray(), penalty, k)
    got = np.zeros_like(expected)
    for r in range(400):
        got[r, idx[r, : counts[r]]] = val[r, : counts[r]]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [1, 5, 60])
def test_two_hop_topk_equals_dense_then_topk(k):
    q = sp.random(25, 15, density=0.3, random_state=2, format="csr", dtype=np.float32)
    n = sp.random(15, 40, density=0.1, random_state=3, format="csr", dtype=np.float32)
    rows = np.array([0, 3, 7, 7, 24, 11], np.int64)
    qa, na = csr_arrays(q), csr_arrays(n)
    dense = two_hop_scores(rows, *qa, *na, 40)
    np.testing.assert_allclose(dense, (q @ n).toarray()[rows], rtol=1e-6)
    exclude = sp.random(len(rows), 40, density=0.2, random_state=4, format="csr", dtype=np.float32)
    mask = np.zeros(40, np.uint8)
    mask[[1, 2, 30]] = 1
    ea = csr_arrays(exclude)
    idx, val = two_hop_topk(rows, *qa, *na, 40, ea[0], ea[1], mask, k, 2)
    ref_idx, ref_val = topk(dense, k, exclude=exclude, global_mask=mask.astype(bool))
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)


def _two_hop_case():
    """Q: 3 rows over 4 intermediates; N: 4 rows over 6 items (kernel arrays, writable)."""
    qa = [np.array([0, 2, 3, 5]), np.array([0, 1, 3, 1, 2], np.int32), np.ones(5, np.float32)]
    na = [np.array([0, 2, 3, 5, 6]), np.array([0, 2, 1, 3, 5, 4], np.int32), np.ones(6, np.float32)]
    return np.array([0, 1, 2], np.int64), qa, na


@pytest.mark.parametrize(
    ("part", "pos", "value", "message"),
    [
        ("q", 1, 4, "q_indices out of range"),  # a column of Q past N's rows
        ("q", 1, -1, "q_indices out of range"),
        ("n", 1, -3, "n_indptr must be non-decreasing"),
        ("ex", 1, 6, "ex_indices out of range"),
        ("ex_indptr", 1, 3, "ex_indptr must be non-decreasing"),
    ],
)
def test_two_hop_rejects_indices_out_of_range(part, pos, value, message):
    rows, qa, na = _two_hop_case()
    ex_indptr = np.array([0, 1, 1, 2], np.int64)
    ex_indices = np.array([0, 4], np.int32)
    if part == "q":
        qa[1][pos] = value
    elif part == "n":
        na[0][pos] = value  # the end of N's row 0, which Q's row 0 reaches
    elif part == "ex":
        ex_indices[pos] = value
    else:
        ex_indptr[pos] = value
    mask = np.zeros(6, np.uint8)
    with pytest.raises(ValueError, match=message):
        two_hop_topk(rows, *qa, *na, 6, ex_indptr, ex_indices, mask, 3, 1)
    if part in ("q", "n"):
        with pytest.raises(ValueError, match=message):
            two_hop_scores(rows, *qa, *na, 6)


def test_two_hop_valid_case_runs():
    rows, qa, na = _two_hop_case()
    ex = (np.array([0, 1, 1, 2], np.int64), np.array([0, 4], np.int32))
    idx, val = two_hop_topk(rows, *qa, *na, 6, *ex, np.zeros(6, np.uint8), 3, 1)
    # row 0 reaches items {0, 2} (via 0) and {1} (via 1); item 0 excluded -> 1, 2, then score-0 fill
    assert idx[0].tolist() == [1, 2, 3] and val[0].tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("kernel", [cooccurrence_topk, cooccurrence_topk_symmetric])
def test_slices_and_progress_do_not_change_results(kernel):
    rows = _random_binary(50, 30, 0.15, seed=12)
    cols = rows.T.tocsr()
    cols.sort_indices()
    a, b = csr_arrays(rows), csr_arrays(cols)
    penalty = np.ones(30)
    norm = np.sqrt(np.maximum(np.diff(rows.indptr), 1).astype(np.float64))
    done = []
    one = kernel(a[0], a[1], b[0], b[1], penalty, norm, 5, 2)
    many = kernel(a[0], a[1], b[0], b[1], penalty, norm, 5, 2, n_slices=7, progress=done.append)
    assert sum(done) == 50 and len(done) == 7
    for x, y in zip(one, many):
        np.testing.assert_array_equal(x, y)
