"""The C++ neighbourhood kernels (``kernels.neighbors`` over ``recforge._core``): bit-identical to an
exact NumPy/scipy statement of the similarity, on random CSR with ties and on ml-latest-small with
every similarity option of ItemCF / UserCF, at any number of threads; bad calls raise; a fit and a
recommend start no Numba.

The exact statement: scipy's CSR product sums each row's products in the order of the left row's
stored entries, so ``binary(A) @ (diag(penalty) · Aᵀ)`` adds ``penalty[m]`` over the shared
intermediates in increasing order from 0.0 in float64 — the kernels' accumulation, operation for
operation — and ``float32(x / (norm[a] · norm[b]))`` is their division.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recforge import _core
from recforge.datasets import movielens_small
from recforge.kernels._csr import csr_kernel_arrays
from recforge.kernels.neighbors import (
    cooccurrence_sums,
    cooccurrence_topk,
    cooccurrence_topk_symmetric,
    neighbors_to_csr,
    topk_csr_rows,
    two_hop_scores,
    two_hop_topk,
)
from recforge.recall import ItemCF, UserCF
from recforge.recall._neighbors import log_penalty

KERNELS = [cooccurrence_topk, cooccurrence_topk_symmetric]


def exact_topk(rows: sp.csr_matrix, penalty: np.ndarray, k: int):
    """(nbr_idx, nbr_val, counts) of the similarity, computed with scipy in the kernels' order."""
    n_rows = rows.shape[0]
    binary = sp.csr_matrix((np.ones(rows.nnz), rows.indices, rows.indptr), shape=rows.shape)
    cols = binary.T.tocsr()
    cols.sort_indices()
    weighted = sp.csr_matrix(
        (np.repeat(penalty, np.diff(cols.indptr)), cols.indices, cols.indptr), shape=cols.shape
    )
    numerators = (binary @ weighted).tocsr()
    numerators.setdiag(0.0)
    numerators.eliminate_zeros()
    norm = np.sqrt(np.maximum(np.diff(rows.indptr), 1).astype(np.float64))
    nbr_idx = np.full((n_rows, k), -1, np.int32)
    nbr_val = np.zeros((n_rows, k), np.float32)
    counts = np.zeros(n_rows, np.int64)
    for a in range(n_rows):
        lo, hi = numerators.indptr[a], numerators.indptr[a + 1]
        b = numerators.indices[lo:hi]
        value = (numerators.data[lo:hi] / (norm[a] * norm[b])).astype(np.float32)
        b, value = b[value > 0], value[value > 0]
        order = np.lexsort((b, -value))[:k]
        counts[a] = len(order)
        nbr_idx[a, : len(order)] = b[order]
        nbr_val[a, : len(order)] = value[order]
    return nbr_idx, nbr_val, counts


def kernel_inputs(rows: sp.csr_matrix, penalty):
    rows = sp.csr_matrix(rows)
    rows.sort_indices()
    cols = rows.T.tocsr()
    cols.sort_indices()
    a, b = csr_kernel_arrays(rows), csr_kernel_arrays(cols)
    norm = np.sqrt(np.maximum(np.diff(a[0]), 1).astype(np.float64))
    return a[0], a[1], b[0], b[1], np.asarray(penalty, np.float64), norm


def random_binary(n_rows, n_mid, density, seed):
    m = sp.random(n_rows, n_mid, density=density, random_state=seed, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    m.sort_indices()
    return m


def assert_same(got, expected):
    for x, y in zip(got, expected, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("unit_penalty", [True, False])
@pytest.mark.parametrize("k", [1, 3, 17, 90, 300])
def test_random_csr_with_ties_bit_identical_to_exact(kernel, unit_penalty, k):
    """Binary data over 25 intermediates: many equal similarities, broken by the lower index; rows
    with hundreds of candidates pass through the row kernel's selection buffer many times."""
    rows = random_binary(400, 25, 0.12, seed=k)
    penalty = np.ones(25) if unit_penalty else log_penalty(np.diff(rows.tocsc().indptr))
    expected = exact_topk(rows, penalty, k)
    inputs = kernel_inputs(rows, penalty)
    for n_threads in (1, 2, 3, 8):
        assert_same(kernel(*inputs, k, n_threads), expected)


def test_pair_kernel_heaps_shared_by_many_threads():
    """Nearly every pair of these 150 rows co-occurs: the threads of the pair kernel offer to the
    same rows' heaps all the time (each heap behind its own lock). Every run, at any thread count,
    keeps exactly the exact top lists."""
    rows = random_binary(150, 8, 0.7, seed=21)
    expected = exact_topk(rows, np.ones(8), 6)
    inputs = kernel_inputs(rows, np.ones(8))
    for n_threads in (2, 3, 4, 8):
        for _ in range(10):
            assert_same(cooccurrence_topk_symmetric(*inputs, 6, n_threads), expected)


@pytest.mark.parametrize("kernel", KERNELS)
def test_empty_rows_intermediates_and_matrix(kernel):
    rows = random_binary(30, 12, 0.2, seed=4).tolil()
    rows[[0, 7, 29], :] = 0
    rows[:, [2, 11]] = 0
    rows = rows.tocsr()
    inputs = kernel_inputs(rows, np.ones(12))
    assert_same(kernel(*inputs, 5, 4), exact_topk(rows, np.ones(12), 5))
    empty = kernel_inputs(sp.csr_matrix((0, 4), dtype=np.float32), np.ones(4))
    idx, val, counts = kernel(*empty, 3, 2)
    assert idx.shape == (0, 3) and val.shape == (0, 3) and counts.shape == (0,)


@pytest.fixture(scope="module")
def movielens():
    return movielens_small().interactions().positives(4.0)


@pytest.mark.parametrize("model_cls", [ItemCF, UserCF])
@pytest.mark.parametrize("n_neighbors", [1, 20, 100])
@pytest.mark.parametrize("normalize_max", [False, True])
def test_movielens_similarity_bit_identical_to_exact(
    movielens, model_cls, n_neighbors, normalize_max
):
    matrix = movielens.matrix
    if model_cls is ItemCF:
        rows, penalty = matrix.T.tocsr(), log_penalty(np.diff(matrix.indptr))
    else:
        rows, penalty = matrix, log_penalty(np.bincount(matrix.indices, minlength=matrix.shape[1]))
    expected = neighbors_to_csr(
        *exact_topk(sp.csr_matrix(rows), penalty, n_neighbors), normalize_max
    )
    for n_threads in (1, 3):
        sim = (
            model_cls(n_neighbors=n_neighbors, normalize_max=normalize_max, n_threads=n_threads)
            .fit(movielens)
            .similarity_
        )
        assert_same((sim.indptr.astype(np.int64), sim.indices, sim.data), expected)


def test_movielens_both_kernels_and_the_distributed_pieces_agree(movielens):
    """The row kernel, the pair kernel and sums → top-k (a cluster's path) give the same lists."""
    matrix = movielens.matrix
    inputs = kernel_inputs(matrix.T.tocsr(), log_penalty(np.diff(matrix.indptr)))
    by_rows = cooccurrence_topk(*inputs, 50, 2)
    assert_same(cooccurrence_topk_symmetric(*inputs, 50, 3), by_rows)
    n_rows = len(inputs[0]) - 1
    half = n_rows // 2
    pieces = []
    for start, stop in ((0, half), (half, n_rows)):
        sums = cooccurrence_sums(*inputs[:5], start, stop, 2)
        pieces.append(topk_csr_rows(*sums, start, inputs[5], 50, 3))
    assert_same([np.concatenate(parts) for parts in zip(*pieces)], by_rows)


def test_slices_with_progress_equal_one_call():
    inputs = kernel_inputs(random_binary(90, 20, 0.2, seed=2), np.ones(20))
    for kernel in KERNELS:
        done = []
        sliced = kernel(*inputs, 6, 3, n_slices=9, progress=done.append)
        assert sum(done) == 90 and len(done) == 9
        assert_same(sliced, kernel(*inputs, 6, 1))


def test_two_hop_independent_of_threads_and_equal_dense_then_topk():
    q = sp.random(200, 60, density=0.08, random_state=5, format="csr", dtype=np.float32)
    n = sp.random(60, 300, density=0.05, random_state=6, format="csr", dtype=np.float32)
    qa, na = csr_kernel_arrays(q), csr_kernel_arrays(n)
    rows = np.arange(200, dtype=np.int64)[::-1].copy()
    dense = two_hop_scores(rows, *qa, *na, 300, n_threads=1)
    np.testing.assert_array_equal(dense, two_hop_scores(rows, *qa, *na, 300, n_threads=4))
    np.testing.assert_allclose(dense, (q @ n).toarray()[rows], rtol=1e-6)
    exclude = csr_kernel_arrays(q[rows][:, :60])  # any CSR of len(rows) rows over items < 300
    mask = (np.arange(300) % 11 == 0).astype(np.uint8)
    one = two_hop_topk(rows, *qa, *na, 300, exclude[0], exclude[1], mask, 40, 1)
    for n_workers in (2, 5):
        assert_same(
            two_hop_topk(rows, *qa, *na, 300, exclude[0], exclude[1], mask, 40, n_workers), one
        )


def test_read_only_inputs_are_accepted():
    inputs = kernel_inputs(random_binary(40, 10, 0.3, seed=1), np.ones(10))
    frozen = []
    for array in inputs:
        array = array.copy()
        array.flags.writeable = False
        frozen.append(array)
    assert_same(cooccurrence_topk(*frozen, 4, 2), cooccurrence_topk(*inputs, 4, 2))


def test_misaligned_inputs_give_what_aligned_copies_give():
    """A view at an odd address (received bytes) is read from an aligned copy (arrays.hpp)."""

    def misaligned(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)
        view = raw[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view

    inputs = kernel_inputs(random_binary(60, 15, 0.3, seed=8), np.ones(15))
    for kernel in KERNELS:
        assert_same(kernel(*map(misaligned, inputs), 4, 2), kernel(*inputs, 4, 2))
    q = csr_kernel_arrays(sp.random(30, 30, density=0.2, random_state=1, format="csr"))
    rows = np.arange(20, dtype=np.int64)
    np.testing.assert_array_equal(
        two_hop_scores(misaligned(rows), *map(misaligned, q), *q, 30),
        two_hop_scores(rows, *q, *q, 30),
    )


def test_bad_calls_raise_instead_of_reading_out_of_bounds():
    a_indptr, a_indices, b_indptr, b_indices, penalty, norm = kernel_inputs(
        random_binary(10, 5, 0.4, seed=3), np.ones(5)
    )
    out = (np.zeros(30, np.int32), np.zeros(30, np.float32), np.zeros(10, np.int64))
    args = (a_indptr, a_indices, b_indptr, b_indices, penalty, norm, 3)
    with pytest.raises(ValueError, match="norm"):
        _core.neighbors_cooccurrence_rows(*args[:5], norm[:5], 3, 0, 10, 1, *out)
    with pytest.raises(ValueError, match="out_idx"):
        _core.neighbors_cooccurrence_rows(*args, 0, 10, 1, out[0][:5], *out[1:])
    with pytest.raises(ValueError, match="row_start"):
        _core.neighbors_cooccurrence_rows(*args, 4, 11, 1, *out)
    with pytest.raises(ValueError, match="a_indptr"):
        _core.neighbors_cooccurrence_rows(a_indptr[:-1], *args[1:], 0, 9, 1, *out)
    with pytest.raises(TypeError):  # int64 indices: no silent conversion inside the binding
        _core.neighbors_cooccurrence_rows(
            a_indptr, a_indices.astype(np.int64), *args[2:], 0, 10, 1, *out
        )
    heaps = (np.zeros(30, np.float32), np.zeros(30, np.int32), np.zeros(10, np.int64))
    with pytest.raises(ValueError, match="heap_cnt"):  # one heap per row, not one per thread
        short = (np.zeros(27, np.float32), np.zeros(27, np.int32), np.zeros(9, np.int64))
        _core.neighbors_cooccurrence_pairs(*args, 0, 10, 2, *short, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="heap_cnt must lie in"):
        bad_count = (*heaps[:2], np.full(10, 4, np.int64))
        _core.neighbors_cooccurrence_pairs(*args, 0, 10, 2, *bad_count, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="heap_val"):
        _core.neighbors_merge_heaps(heaps[0][:27], *heaps[1:], 10, 3, 1, *out)
    q = csr_kernel_arrays(sp.csr_matrix(np.eye(3, dtype=np.float32)))
    with pytest.raises(ValueError, match="rows"):
        two_hop_scores(np.array([0, 3]), *q, *q, 3)
    with pytest.raises(ValueError, match="mask"):
        two_hop_topk(
            np.array([0]),
            *q,
            *q,
            3,
            np.array([0, 0]),
            np.zeros(0, np.int32),
            np.zeros(2, np.uint8),
            1,
            1,
        )


NO_NUMBA = r"""
import json, sys
import numpy as np, scipy.sparse as sp
from recforge.recall import ItemCF, UserCF
m = sp.random(300, 200, density=0.05, random_state=0, format="csr", dtype=np.float32)
for cls in (ItemCF, UserCF):
    model = cls(n_neighbors=10).fit(m)
    model.recommend(np.arange(5), k=5)
from numba.np.ufunc import parallel
from recforge.kernels import jitted_functions
print(json.dumps({
    "called": sorted(name for name, d in jitted_functions().items() if d.signatures),
    "threads": bool(parallel._is_initialized),
}))
"""


def test_fit_and_recommend_start_no_numba():
    """No Numba kernel is called (the first call of a process costs ~0.2 s of Numba start and cache
    loads) and Numba's threading layer is not started by an ItemCF / UserCF fit and recommend:
    a first fit after ``recforge warmup`` close to a warm one."""
    out = subprocess.run(
        [sys.executable, "-c", NO_NUMBA], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {"called": [], "threads": False}
