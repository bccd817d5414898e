"""The C++ top-k kernel against the brute-force reference (ties, filters, k > n_items, empty rows)."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recforge._reference.topk import topk_reference
from recforge.kernels.topk import topk


def _random_case(rng, n_rows, n_items, n_levels, density):
    scores = (
        rng.integers(0, n_levels, size=(n_rows, n_items)).astype(np.float32) / n_levels
    )  # many ties
    exclude = sp.random(
        n_rows, n_items, density=density, format="csr", random_state=rng, dtype=np.float32
    )
    rows = [exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]] for r in range(n_rows)]
    return scores, exclude, rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 10, 57, 200])
def test_matches_reference_with_ties_and_filters(dtype, k):
    rng = np.random.default_rng(k)
    scores, exclude, rows = _random_case(rng, 40, 57, n_levels=5, density=0.3)
    scores = scores.astype(dtype)
    mask = rng.random(57) < 0.2
    idx, val = topk(scores, k, exclude=exclude, global_mask=mask, n_threads=2)
    ref_idx, ref_val = topk_reference(scores, k, rows, mask)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
    assert val.dtype == dtype


def _long_rows(order, rng, n_rows, n_items, dtype):
    scores = rng.standard_normal((n_rows, n_items)).astype(dtype)
    if order == "ties":
        scores = rng.integers(0, 4, size=(n_rows, n_items)).astype(dtype)
    elif order == "ascending":
        scores.sort(axis=1)
    elif order == "descending":
        scores = -np.sort(scores, axis=1)
    elif order == "neg_inf":
        scores[rng.random(scores.shape) < 0.97] = -np.inf
    elif order == "zeros":  # an Item2Vec fold-in's row: few positives, a third exactly zero
        scores = -np.abs(scores)
        scores[rng.random(scores.shape) < 0.35] = 0.0
        scores[rng.random(scores.shape) < 0.01] *= -1.0
    elif order == "signed_zeros":  # -0.0 == 0.0: tied, ordered by index
        scores = np.where(rng.random(scores.shape) < 0.5, -0.0, 0.0).astype(dtype)
        scores[:, ::7] = rng.random((n_rows, len(range(0, n_items, 7))))
    return scores


@pytest.mark.parametrize(
    "order", ["random", "ties", "ascending", "descending", "neg_inf", "zeros", "signed_zeros"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [128, 300, 562])
def test_threshold_path_matches_reference(order, dtype, k):
    """Rows much longer than k (k >= 128, k <= n_items / 16) take the sampled-threshold selection
    with the radix sort: the heap's items and order, ties by lower index, signed zeros equal."""
    rng = np.random.default_rng(k)
    n_rows, n_items = 6, 9_000
    scores = _long_rows(order, rng, n_rows, n_items, dtype)
    exclude = sp.random(n_rows, n_items, density=0.05, format="csr", random_state=rng)
    rows = [exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]] for r in range(n_rows)]
    mask = rng.random(n_items) < 0.1
    idx, val = topk(scores, k, exclude=exclude, global_mask=mask, n_threads=2)
    ref_idx, ref_val = topk_reference(scores, k, rows, mask)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
    np.testing.assert_array_equal(np.signbit(val), np.signbit(ref_val))  # the row's own zeros
    scores[3, 4_321] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        topk(scores, k)


def test_k_larger_than_items_pads():
    scores = np.array([[0.5, 0.1, 0.9]], np.float32)
    idx, val = topk(scores, 5)
    assert idx.tolist() == [[2, 0, 1, -1, -1]]
    assert np.isneginf(val[0, 3:]).all()


def test_fully_excluded_row_is_all_padding():
    scores = np.ones((2, 4), np.float32)
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 1], [0, 0, 0, 0]], np.float32))
    idx, val = topk(scores, 2, exclude=exclude)
    assert idx.tolist() == [[-1, -1], [0, 1]]
    assert np.isneginf(val[0]).all()


def test_zero_rows():
    idx, val = topk(np.empty((0, 5), np.float32), 3)
    assert idx.shape == (0, 3) and val.shape == (0, 3)


def test_neg_inf_is_never_returned_and_pos_inf_is():
    scores = np.array([[-np.inf, 1.0, np.inf, 0.0]], np.float32)
    idx, _ = topk(scores, 4)
    assert idx.tolist() == [[2, 1, 3, -1]]


def test_nan_scores_raise():
    scores = np.array([[0.1, np.nan, 0.3]], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        topk(scores, 2)


def test_threads_do_not_change_result():
    rng = np.random.default_rng(0)
    scores, exclude, _ = _random_case(rng, 500, 300, n_levels=7, density=0.05)
    a = topk(scores, 20, exclude=exclude, n_threads=1)
    b = topk(scores, 20, exclude=exclude, n_threads=2)
    c = topk(scores, 20, exclude=exclude, n_threads=7)
    for x, y in [(a, b), (a, c)]:
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])


def test_int64_sparse_indices_and_integer_scores_accepted():
    scores = np.arange(12).reshape(3, 4)  # int64 scores are cast to float32 once
    exclude = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    exclude.indices = exclude.indices.astype(np.int64)
    exclude.indptr = exclude.indptr.astype(np.int64)
    idx, val = topk(scores, 2, exclude=exclude)
    assert idx.tolist() == [[3, 2], [3, 2], [3, 1]]
    assert val.dtype == np.float32


def test_inputs_not_mutated():
    rng = np.random.default_rng(1)
    scores, exclude, _ = _random_case(rng, 10, 20, n_levels=3, density=0.2)
    before = (scores.copy(), exclude.copy())
    topk(scores, 5, exclude=exclude)
    np.testing.assert_array_equal(scores, before[0])
    assert (exclude != before[1]).nnz == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(k=0), ValueError, "k must be >= 1"),
        (dict(k=-3), ValueError, "k must be >= 1"),
        (dict(k=2.5), TypeError, "k must be an integer"),
        (dict(k=2, global_mask=np.zeros(3, bool)), ValueError, "global_mask"),
        (dict(k=2, exclude=sp.csr_matrix((2, 3))), ValueError, "exclude has shape"),
        (dict(k=2, exclude=np.zeros((4, 5))), TypeError, "exclude must be a scipy sparse"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        topk(np.zeros((4, 5), np.float32), **kwargs)


@pytest.mark.parametrize(
    "scores, match",
    [
        (np.zeros(5, np.float32), "2-D"),
        (np.array([["a", "b"]]), "numeric"),
        (sp.csr_matrix((2, 2)), "dense"),
    ],
)
def test_bad_scores(scores, match):
    with pytest.raises((TypeError, ValueError), match=match):
        topk(scores, 1)


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 6),
    n_items=st.integers(1, 30),
    k=st.integers(1, 35),
    n_levels=st.integers(1, 4),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_property_matches_reference(n_rows, n_items, k, n_levels, density, seed):
    rng = np.random.default_rng(seed)
    scores, exclude, rows = _random_case(rng, n_rows, n_items, n_levels, density)
    idx, val = topk(scores, k, exclude=exclude, n_threads=2)
    ref_idx, ref_val = topk_reference(scores, k, rows)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
