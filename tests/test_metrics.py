"""recforge.metrics: the Numba kernel against the plain-Python reference, sklearn for AUC/log-loss,
hand-computed values, validation errors and [0, 1] properties (hypothesis)."""

import inspect
import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import recforge._reference.metrics as ref
from recforge._threads import numba_threads
from recforge.kernels.ranking import (
    dcg_of_hits,
    hit_matrix,
    hit_stats,
    recommended_rows,
    unsorted_rows,
)
from recforge.metrics import (
    coverage_at_k,
    hit_rate_at_k,
    log_loss,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    roc_auc_score,
)

METRICS = {
    "precision": (precision_at_k, ref.precision_at_k),
    "recall": (recall_at_k, ref.recall_at_k),
    "ndcg": (ndcg_at_k, ref.ndcg_at_k),
    "hit_rate": (hit_rate_at_k, ref.hit_rate_at_k),
}


def random_case(seed, n_users=60, n_items=40, n_cols=12, pad=0.25, density=0.08):
    """Random recommendations (unique per row, -1 padding anywhere, trailing padding rows)
    and relevant sets (some empty, some larger than k)."""
    rng = np.random.default_rng(seed)
    rec = np.array([rng.permutation(n_items)[:n_cols] for _ in range(n_users)], dtype=np.int64)
    rec[rng.random(rec.shape) < pad] = -1
    rec[:3, n_cols // 2 :] = -1  # trailing padding (fewer candidates than k)
    rec[3] = -1  # a user with no recommendation at all
    rel = sp.random(
        n_users,
        n_items,
        density=density,
        format="csr",
        random_state=seed,
        data_rvs=lambda n: np.ones(n),
    )
    rel = rel.tolil()
    rel[4, :] = 1  # a user with every item relevant (|relevant| > k)
    rel[5, :] = 0  # a user with no relevant item
    # make sure recommendations hit often enough for the test to mean something
    for u in range(6, n_users, 3):
        good = rec[u][rec[u] >= 0][:2]
        rel[u, good] = 1
    rel = rel.tocsr()
    rel.eliminate_zeros()
    return rec, rel


# ---------------------------------------------------------------------------------------------
# kernel and reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_hit_matrix_matches_isin(seed):
    rec, rel = random_case(seed)
    hits = hit_matrix(rec, rel.indptr.astype(np.int64), rel.indices.astype(np.int64))
    assert hits.dtype == np.bool_ and hits.shape == rec.shape
    for u in range(rec.shape[0]):
        row = rel.indices[rel.indptr[u] : rel.indptr[u + 1]]
        np.testing.assert_array_equal(hits[u], np.isin(rec[u], row) & (rec[u] >= 0))


def test_hit_matrix_independent_of_threads():
    rec, rel = random_case(11, n_users=500)
    args = (rec, rel.indptr.astype(np.int64), rel.indices.astype(np.int64))
    with numba_threads(1):
        one = hit_matrix(*args)
    with numba_threads(2):
        two = hit_matrix(*args)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_hit_stats_match_the_hit_matrix(seed, n_threads):
    rec, rel = random_case(seed, n_users=300)
    indptr, indices = rel.indptr.astype(np.int64), rel.indices.astype(np.int64)
    k = rec.shape[1] - 1
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    hits = hit_matrix(np.ascontiguousarray(rec[:, :k]), indptr, indices)
    with numba_threads(n_threads):
        n_hits, dcg = hit_stats(rec, k, indptr, indices, discounts)
    np.testing.assert_array_equal(n_hits, hits.sum(axis=1))
    np.testing.assert_array_equal(dcg, dcg_of_hits(hits, discounts))  # the same order of sums
    np.testing.assert_allclose(dcg, hits @ discounts, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_hit_stats_take_scipy_index_dtypes(dtype, n_threads):
    """int32 (scipy's default) and int64 CSR index arrays give the same hits: no int64 copy needed."""
    rec, rel = random_case(4, n_users=400)
    discounts = 1.0 / np.log2(np.arange(2, rec.shape[1] + 2, dtype=np.float64))
    expected = hit_stats(
        rec, rec.shape[1], rel.indptr.astype(np.int64), rel.indices.astype(np.int64), discounts
    )
    with numba_threads(n_threads):
        got = hit_stats(
            rec, rec.shape[1], rel.indptr.astype(dtype), rel.indices.astype(dtype), discounts
        )
        hits = hit_matrix(rec, rel.indptr.astype(dtype), rel.indices.astype(dtype))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(hits.sum(axis=1), expected[0])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_unsorted_rows_flags_rows_that_do_not_strictly_increase(dtype, n_threads):
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 6, 3_000)
    lengths[::7] = 0  # runs of empty rows
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(dtype)
    indices = rng.integers(0, 12, int(indptr[-1])).astype(dtype)
    expected = np.array(
        [bool(np.any(np.diff(indices[a:b]) <= 0)) for a, b in itertools.pairwise(indptr)]
    )
    assert expected.any() and not expected.all()
    with numba_threads(n_threads):
        np.testing.assert_array_equal(unsorted_rows(indptr, indices), expected)
    assert not unsorted_rows(np.zeros(4, dtype), np.zeros(0, dtype)).any()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_recommended_rows_flags_each_bad_row(n_threads):
    rng = np.random.default_rng(0)
    rec = np.stack([rng.permutation(50)[:20] for _ in range(400)]).astype(np.int64)
    rec[::7, -3:] = -1  # padding repeats, and is never bad
    rec[5, 4] = rec[5, 17]  # a repeated id
    rec[9, 0] = -2  # below the padding
    rec[11, 19] = 50  # the catalogue's size: out of range only with n_items=50
    with numba_threads(n_threads):
        invalid, row_max = recommended_rows(rec, -1)
        invalid50, _ = recommended_rows(rec, 50)
    assert np.flatnonzero(invalid).tolist() == [5, 9]
    assert np.flatnonzero(invalid50).tolist() == [5, 9, 11]
    np.testing.assert_array_equal(row_max, rec.max(axis=1))


def test_invalid_rows_raise_for_their_first_bad_entry():
    relevant = sp.csr_matrix(np.ones((4, 6)))
    rec = np.tile(np.arange(6), (4, 1))
    rec[2, 3], rec[3, 1] = 0, 4  # duplicates in rows 2 and 3
    with pytest.raises(ValueError, match=r"duplicated item 0 in row 2 \(2 row\(s\) with dup"):
        ranking_metrics(rec, relevant)
    rec = np.tile(np.arange(6), (4, 1))
    rec[3, 5] = 9
    with pytest.raises(ValueError, match=r"item index 9 \(row 3, column 5\), out of range"):
        ranking_metrics(rec, relevant)
    rec[1, 2] = -3
    with pytest.raises(ValueError, match=r"row 1, column 2 is -3"):
        ranking_metrics(rec, relevant)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 7, 12, None])
def test_metrics_match_reference(seed, k):
    rec, rel = random_case(seed)
    kk = rec.shape[1] if k is None else k
    got = ranking_metrics(rec, rel, k=k)
    for name, (fast, slow) in METRICS.items():
        expected = slow(rec, rel, kk)
        assert got[name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name
        assert fast(rec, rel, k=k) == pytest.approx(expected, rel=1e-12, abs=1e-15), name
    assert got["n_users"] == int((np.diff(rel.indptr) > 0).sum())
    n_items = rel.shape[1]
    assert coverage_at_k(rec, n_items, k=k) == pytest.approx(ref.coverage_at_k(rec, n_items, kk))


@pytest.mark.parametrize("seed", range(3))
def test_input_forms_agree(seed):
    """int32/uint ids, int64 CSR indices, COO/CSC/dense relevant, unsorted and duplicated CSR
    entries all give the same result, and the caller's arrays are not modified."""
    rec, rel = random_case(seed)
    expected = ranking_metrics(rec, rel, k=5)

    rel64 = rel.copy()
    rel64.indices = rel64.indices.astype(np.int64)
    rel64.indptr = rel64.indptr.astype(np.int64)
    assert ranking_metrics(rec, rel64, k=5) == expected
    assert ranking_metrics(rec.astype(np.int32), rel, k=5) == expected
    assert ranking_metrics(np.asfortranarray(rec), rel.tocoo(), k=5) == expected
    assert ranking_metrics(rec, rel.tocsc(), k=5) == expected
    assert ranking_metrics(rec, rel.toarray(), k=5) == expected
    assert ranking_metrics(rec.tolist(), rel, k=5) == expected

    # unsorted rows with duplicated entries (a non-canonical CSR built by hand)
    rng = np.random.default_rng(seed)
    indptr, indices = [0], []
    for u in range(rel.shape[0]):
        row = list(rel.indices[rel.indptr[u] : rel.indptr[u + 1]])
        row = row + row[:1]
        rng.shuffle(row)
        indices.extend(row)
        indptr.append(len(indices))
    messy = sp.csr_matrix(
        (
            np.ones(len(indices)),
            np.array(indices, dtype=np.int32),
            np.array(indptr, dtype=np.int32),
        ),
        shape=rel.shape,
    )
    before = (messy.indices.copy(), messy.indptr.copy(), messy.data.copy())
    rec_before = rec.copy()
    assert ranking_metrics(rec, messy, k=5) == expected
    np.testing.assert_array_equal(messy.indices, before[0])
    np.testing.assert_array_equal(messy.indptr, before[1])
    np.testing.assert_array_equal(messy.data, before[2])
    np.testing.assert_array_equal(rec, rec_before)


def test_explicit_zeros_are_relevant():
    """Stored entries are relevant whatever their value (the documented semantics)."""
    rel = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 2]), np.array([0, 2])), shape=(1, 3))
    assert recall_at_k(np.array([[0, 1]]), rel) == 0.5


# ---------------------------------------------------------------------------------------------
# hand-computed values
# ---------------------------------------------------------------------------------------------
def test_hand_computed():
    rec = np.array(
        [
            [3, 1, 0, -1],  # relevant {1, 2}: hit at rank 2
            [2, 0, 1, 3],  # relevant {2}:    hit at rank 1
            [0, 1, 2, 3],
        ]
    )  # relevant {}:     left out of the mean
    rel = sp.csr_matrix(np.array([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]))
    m = ranking_metrics(rec, rel, k=3)
    assert m["n_users"] == 2
    assert m["precision"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["hit_rate"] == 1.0
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg"] == pytest.approx((ndcg0 + 1.0) / 2)
    assert coverage_at_k(rec, 5, k=2) == pytest.approx(4 / 5)
    assert coverage_at_k(rec, 5) == pytest.approx(4 / 5)
    assert coverage_at_k(rec, 8, k=1) == pytest.approx(3 / 8)


def test_perfect_ranking_scores_one():
    rel = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]]))
    rec = np.array([[1, 0, 4], [4, 2, 3]])
    m = ranking_metrics(rec, rel, k=3)
    assert m["ndcg"] == 1.0 and m["recall"] == 1.0 and m["hit_rate"] == 1.0
    assert m["precision"] == pytest.approx((2 / 3 + 1) / 2)  # P@k = hits / k, not hits / |rec|
    # ideal over min(k, |relevant|): one hit at rank 1 with 3 relevant items and k = 1 is perfect
    assert ndcg_at_k(np.array([[2]]), rel[1]) == 1.0


def test_padding_counts_in_precision_denominator():
    rel = sp.csr_matrix(np.array([[1, 0, 0]]))
    assert precision_at_k(np.array([[0, -1, -1]]), rel) == pytest.approx(1 / 3)
    assert precision_at_k(np.array([[-1, -1, -1]]), rel) == 0.0
    assert ndcg_at_k(np.array([[-1, 0]]), rel) == pytest.approx(1 / math.log2(3))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
REL = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0]]))


@pytest.mark.parametrize(
    "func", [precision_at_k, recall_at_k, ndcg_at_k, hit_rate_at_k, ranking_metrics]
)
def test_ranking_validation(func):
    with pytest.raises(ValueError, match="recommended has 3 rows but relevant has 2"):
        func(np.array([[0, 1], [1, 2], [2, 3]]), REL)
    with pytest.raises(ValueError, match="recommended holds item index 4"):
        func(np.array([[0, 4], [1, 2]]), REL)
    with pytest.raises(ValueError, match="recommended must hold item indices >= 0 or -1"):
        func(np.array([[0, -2], [1, 2]]), REL)
    with pytest.raises(ValueError, match="recommended has duplicated item 2 in row 1"):
        func(np.array([[0, 1, -1, -1], [2, 3, 2, -1]]), REL)
    with pytest.raises(ValueError, match="k=3 is larger than the number of recommended columns"):
        func(np.array([[0, 1], [1, 2]]), REL, k=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        func(np.array([[0, 1], [1, 2]]), REL, k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        func(np.array([[0, 1], [1, 2]]), REL, k=1.5)
    with pytest.raises(TypeError, match="recommended must have an integer dtype"):
        func(np.array([[0.0, 1.0], [1.0, 2.0]]), REL)
    with pytest.raises(TypeError, match="recommended must have an integer dtype"):
        func(np.array([[True, False], [False, True]]), REL)
    with pytest.raises(TypeError, match="recommended must be a dense"):
        func(sp.csr_matrix(np.array([[0, 1], [1, 2]])), REL)
    with pytest.raises(ValueError, match="recommended must be 2-D"):
        func(np.array([0, 1]), REL)
    with pytest.raises(ValueError, match="relevant has no user with a relevant item"):
        func(np.array([[0, 1], [1, 2]]), sp.csr_matrix((2, 4)))
    with pytest.raises(ValueError, match="relevant must be a 2-D"):
        func(np.array([[0, 1], [1, 2]]), np.array([1, 0, 1]))


def test_duplicates_beyond_k_are_still_rejected():
    with pytest.raises(ValueError, match="duplicated item 1 in row 0"):
        precision_at_k(np.array([[0, 1, 1], [1, 2, 3]]), REL, k=1)


def test_padding_may_repeat():
    assert precision_at_k(np.array([[0, -1, -1], [-1, -1, -1]]), REL) == pytest.approx(1 / 6)


def test_coverage_validation():
    with pytest.raises(ValueError, match="recommended holds item index 5"):
        coverage_at_k(np.array([[0, 5]]), 5)
    with pytest.raises(ValueError, match="n_items must be >= 1"):
        coverage_at_k(np.array([[0, 1]]), 0)
    with pytest.raises(ValueError, match="duplicated item 0"):
        coverage_at_k(np.array([[0, 0]]), 3)
    with pytest.raises(ValueError, match="k=3 is larger"):
        coverage_at_k(np.array([[0, 1]]), 3, k=3)
    with pytest.raises(TypeError, match="recommended must have an integer dtype"):
        coverage_at_k(np.array([[0.5, 1]]), 3)


# ---------------------------------------------------------------------------------------------
# AUC and log-loss against scikit-learn
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sk_metrics():
    return pytest.importorskip("sklearn.metrics")


def sk_log_loss(sk_metrics, y, p, sample_weight=None):
    if "y_proba" in inspect.signature(sk_metrics.log_loss).parameters:  # scikit-learn >= 1.9
        return sk_metrics.log_loss(y, y_proba=p, sample_weight=sample_weight, labels=[0, 1])
    return sk_metrics.log_loss(y, p, sample_weight=sample_weight, labels=[0, 1])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n_distinct", [2, 5, 50, None])
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_matches_sklearn(sk_metrics, seed, n_distinct, weighted):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3000))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(np.int64)
    y[:2] = [0, 1]
    score = rng.normal(size=n) + 0.7 * y
    if n_distinct is not None:  # heavy ties
        score = np.round(score * n_distinct / 6) / n_distinct
    w = rng.uniform(0, 3, size=n) if weighted else None
    if weighted:
        w[rng.random(n) < 0.1] = 0.0
        w[:2] = 1.0
    expected = sk_metrics.roc_auc_score(y, score, sample_weight=w)
    assert roc_auc_score(y, score, sample_weight=w) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_auc_matches_pairwise_reference(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80)
    y[:2] = [0, 1]
    s = rng.integers(0, 6, 80).astype(np.float32)
    w = rng.integers(0, 4, 80).astype(float)
    w[:2] = 1
    assert roc_auc_score(y, s, w) == pytest.approx(ref.roc_auc_pairwise(y, s, w), rel=1e-12)
    # integer weights = repeated samples
    rep = np.repeat(np.arange(80), w.astype(int))
    assert roc_auc_score(y, s, w) == pytest.approx(roc_auc_score(y[rep], s[rep]), rel=1e-12)


def test_auc_values_and_inputs():
    assert roc_auc_score([0, 1], [0.0, 1.0]) == 1.0
    assert roc_auc_score([1, 0], [0.0, 1.0]) == 0.0
    assert roc_auc_score([0, 1, 0, 1], [3, 3, 3, 3]) == 0.5
    assert roc_auc_score([False, True, True], [-np.inf, np.inf, 0.0]) == 1.0
    assert roc_auc_score(np.array([0.0, 1.0, 1.0]), [1, 2, 0]) == 0.5
    y = np.array([1, 0, 1, 0])
    s = np.array([0.3, 0.2, 0.1, 0.4])
    y0, s0 = y.copy(), s.copy()
    roc_auc_score(y, s)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(s, s0)


def test_auc_validation():
    with pytest.raises(ValueError, match="y_true contains only one class"):
        roc_auc_score([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y_true contains only one class"):
        roc_auc_score([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_score must not contain NaN; position 1"):
        roc_auc_score([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="y_true must hold binary labels 0/1; position 2"):
        roc_auc_score([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(TypeError, match="y_true must hold binary labels"):
        roc_auc_score(["a", "b"], [0.1, 0.2])
    with pytest.raises(TypeError, match="y_score must be numeric"):
        roc_auc_score([0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="y_score has 3 values but y_true has 2"):
        roc_auc_score([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y_true must not be empty"):
        roc_auc_score([], [])
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        roc_auc_score([0, 1], [0.1, 0.2], sample_weight=[1, -1])
    with pytest.raises(ValueError, match="sample_weight has 1 values"):
        roc_auc_score([0, 1], [0.1, 0.2], sample_weight=[1])
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        roc_auc_score([0, 1], [0.1, 0.2], sample_weight=[1, np.nan])
    with pytest.raises(ValueError, match="positives a total weight of 0"):
        roc_auc_score([0, 1], [0.1, 0.2], sample_weight=[1, 0])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weighted", [False, True])
def test_log_loss_matches_sklearn(sk_metrics, seed, weighted):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 2000))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = rng.uniform(0.001, 0.999, n)
    p[2:6] = [0.0, 1.0, 0.5, 1e-20][: max(0, min(4, n - 2))]
    w = rng.uniform(0, 2, n) if weighted else None
    got = log_loss(y, p, sample_weight=w)
    assert got == pytest.approx(ref.log_loss(y, p, sample_weight=w), rel=1e-12)
    # sklearn clips at float64 machine epsilon; compare away from the clipping boundary
    q = np.clip(p, 1e-6, 1 - 1e-6)
    expected = sk_log_loss(sk_metrics, y, q, w)
    assert log_loss(y, q, sample_weight=w) == pytest.approx(expected, rel=1e-10)


def test_log_loss_values_and_validation():
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-15))
    assert log_loss([1], [0.0], eps=0) == math.inf
    assert log_loss([1, 0], [0.0, 0.5], eps=0, sample_weight=[0, 1]) == pytest.approx(math.log(2))
    assert log_loss([True, False], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert log_loss([1, 1], [0.8, 0.8]) == pytest.approx(-math.log(0.8))  # single class is fine
    with pytest.raises(ValueError, match=r"y_prob must hold probabilities in \[0, 1\]; position 1"):
        log_loss([0, 1], [0.5, 1.2])
    with pytest.raises(ValueError, match="y_prob must hold probabilities"):
        log_loss([0, 1], [-0.1, 0.5])
    with pytest.raises(ValueError, match="y_prob must hold probabilities"):
        log_loss([0, 1], [np.nan, 0.5])
    with pytest.raises(ValueError, match="y_prob has 1 values but y_true has 2"):
        log_loss([0, 1], [0.5])
    with pytest.raises(ValueError, match="y_true must hold binary labels"):
        log_loss([0, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"eps must be < 0.5"):
        log_loss([0, 1], [0.5, 0.5], eps=0.5)
    with pytest.raises(ValueError, match="sample_weight must have a positive sum"):
        log_loss([0, 1], [0.5, 0.5], sample_weight=[0, 0])


# ---------------------------------------------------------------------------------------------
# properties (hypothesis)
# ---------------------------------------------------------------------------------------------
@st.composite
def ranking_case(draw):
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    n_cols = draw(st.integers(1, 8))
    rows = []
    for _ in range(n_users):
        items = draw(st.lists(st.integers(0, n_items - 1), unique=True, max_size=n_cols))
        row = items + [-1] * (n_cols - len(items))
        rows.append(draw(st.permutations(row)))
    relevant = [
        draw(st.sets(st.integers(0, n_items - 1), max_size=n_items)) for _ in range(n_users)
    ]
    if not any(relevant):
        relevant[0] = {0}
    k = draw(st.integers(1, n_cols))
    rec = np.array(rows, dtype=np.int64).reshape(n_users, n_cols)
    indptr = np.cumsum([0] + [len(r) for r in relevant])
    indices = np.array([i for r in relevant for i in sorted(r)], dtype=np.int32)
    rel = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n_users, n_items))
    return rec, rel, relevant, k, n_items


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_ranking_metrics_bounded_and_equal_reference(case):
    rec, rel, relevant, k, n_items = case
    got = ranking_metrics(rec, rel, k=k)
    for name, (_, slow) in METRICS.items():
        assert 0.0 <= got[name] <= 1.0
        assert got[name] == pytest.approx(slow(rec, relevant, k), rel=1e-12, abs=1e-15)
    cov = coverage_at_k(rec, n_items, k=k)
    assert 0.0 <= cov <= 1.0
    assert cov == pytest.approx(ref.coverage_at_k(rec, n_items, k))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(-3, 3), st.integers(0, 3)), min_size=2, max_size=40
    )
)
def test_auc_bounded_and_equal_reference(rows):
    y = np.array([int(r[0]) for r in rows])
    s = np.array([float(r[1]) for r in rows])
    w = np.array([float(r[2]) for r in rows])
    y[0], y[1], w[0], w[1] = 0, 1, 1.0, 1.0
    auc = roc_auc_score(y, s, sample_weight=w)
    assert 0.0 <= auc <= 1.0
    assert auc == pytest.approx(ref.roc_auc_pairwise(y, s, w), rel=1e-12, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=30))
def test_log_loss_nonnegative(rows):
    y = np.array([int(r[0]) for r in rows])
    p = np.array([r[1] for r in rows])
    loss = log_loss(y, p)
    assert 0.0 <= loss <= -math.log(1.0 - (1.0 - 1e-15)) + 1e-9  # eps clipping bound
