"""GBDT histogram, binning and partition kernels vs the NumPy reference (recforge._reference.gbdt)."""

import numpy as np
import pytest

from recforge._reference import gbdt as ref
from recforge.kernels import gbdt as kern


def _binned(n, n_features, seed, n_values=20, missing=0.1):
    rng = np.random.default_rng(seed)
    Xb = rng.integers(0, n_values, size=(n, n_features)).astype(np.uint8)
    Xb[rng.random(Xb.shape) < missing] = kern.MISSING_BIN
    gh = np.column_stack([rng.normal(size=n), rng.uniform(0.05, 1.0, size=n)]).astype(np.float32)
    return Xb, gh


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histograms_match_reference(seed):
    Xb, gh = _binned(300, 5, seed)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(300).astype(np.int32)
    starts, ends = np.array([0, 100, 100, 250]), np.array([100, 250, 100, 300])
    hist = kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=2)
    assert hist.shape == (4, 5, 256, 2) and hist.dtype == np.float64
    for k in range(4):
        expected = ref.build_histogram(Xb, gh.astype(np.float64), rows[starts[k] : ends[k]])
        np.testing.assert_allclose(hist[k], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_features", [8, 13, 21, 50])
def test_histograms_match_reference_across_unrolled_feature_groups(n_features):
    # the contiguous-block kernel adds 8 features at a time, then the rest one by one
    Xb, gh = _binned(2_000, n_features, n_features, n_values=200)
    rows = np.random.default_rng(n_features).permutation(2_000).astype(np.int32)
    starts, ends = np.array([0, 700]), np.array([700, 2_000])
    hist = kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=2)
    for k in range(2):
        expected = ref.build_histogram(Xb, gh.astype(np.float64), rows[starts[k] : ends[k]])
        np.testing.assert_allclose(hist[k], expected, rtol=1e-12, atol=1e-12)


def test_histograms_identical_for_any_n_threads():
    Xb, gh = _binned(200_000, 8, 3, n_values=200)
    rows = np.arange(200_000, dtype=np.int32)
    starts, ends = np.array([0, 50_000]), np.array([50_000, 200_000])
    one = kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=1)
    for n_threads in (2, 3, 7):
        np.testing.assert_array_equal(
            kern.build_histograms(Xb, gh, rows, starts, ends, n_threads=n_threads), one
        )


def test_feature_mask_leaves_features_out():
    Xb, gh = _binned(100, 4, 4)
    rows = np.arange(100, dtype=np.int32)
    mask = np.array([1, 0, 1, 0], bool)
    hist = kern.build_histograms(Xb, gh, rows, [0], [100], feature_mask=mask)
    assert np.all(hist[0, ~mask] == 0) and np.any(hist[0, mask] != 0)


def test_subtraction_trick_equals_direct_histogram():
    Xb, gh = _binned(500, 3, 5)
    rows = np.arange(500, dtype=np.int32)
    parent, left, right = kern.build_histograms(Xb, gh, rows, [0, 0, 200], [500, 200, 500])
    np.testing.assert_allclose(parent - left, right, atol=1e-9)


def test_bin_features_numeric_categorical_missing():
    X = np.array([[0.5, 2.0], [1.0, 7.0], [np.nan, np.nan], [3.0, 5.0], [-1.0, 2.0]], np.float32)
    edges = np.array(
        [1.0, 2.0, 2.0, 5.0, 7.0], np.float32
    )  # feature 0: [1, 2]; feature 1 codes [2, 5, 7]
    offsets = np.array([0, 2, 5])
    out = kern.bin_features(X, edges, offsets, np.array([0, 1], np.uint8), n_threads=2)
    np.testing.assert_array_equal(out[:, 0], [0, 1, 255, 2, 0])
    np.testing.assert_array_equal(out[:, 1], [0, 2, 255, 1, 0])
    assert np.searchsorted(edges[:2], X[:, 0][~np.isnan(X[:, 0])], side="right").tolist() == [
        0,
        1,
        2,
        0,
    ]


def test_bin_features_matches_searchsorted_on_random_data():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 3)).astype(np.float32)
    edges = [np.sort(rng.normal(size=k)).astype(np.float32) for k in (1, 17, 254)]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in edges])])
    out = kern.bin_features(X, np.concatenate(edges), offsets, np.zeros(3, np.uint8))
    for f in range(3):
        np.testing.assert_array_equal(out[:, f], np.searchsorted(edges[f], X[:, f], side="right"))


def test_bin_features_lanes_match_searchsorted_with_ties_nan_inf_and_ragged_rows():
    # the numeric path searches 8 rows at a time: rows not a multiple of 8 (nor of the 256-row
    # task), values equal to edges, NaN, +-inf, and edge counts 0, 1, 2, 254 next to categorical
    # features must give searchsorted's bins (NaN -> 255) whichever rows share a lane group
    rng = np.random.default_rng(13)
    n = 2003
    edge_counts = (0, 1, 2, 254, 40)
    edges = [np.unique(rng.normal(size=k).astype(np.float32)) for k in edge_counts]
    edges.append(np.array([0.0, 3.0, 4.0], np.float32))  # a categorical feature's codes
    is_cat = np.array([0, 0, 0, 0, 0, 1], np.uint8)
    X = rng.normal(size=(n, len(edges))).astype(np.float32)
    for f, e in enumerate(edges[:-1]):
        if len(e):
            ties = rng.random(n) < 0.2
            X[ties, f] = rng.choice(e, ties.sum())
    X[:, -1] = rng.choice(np.array([0, 3, 4, 7], np.float32), n)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[5, 1], X[6, 1], X[2001, 3], X[2002, 3] = np.inf, -np.inf, np.inf, -np.inf
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in edges])])
    for n_threads in (1, 2):
        out = kern.bin_features(X, np.concatenate(edges), offsets, is_cat, n_threads=n_threads)
        for f, e in enumerate(edges[:-1]):
            want = np.searchsorted(e, X[:, f], side="right")
            want[np.isnan(X[:, f])] = 255
            np.testing.assert_array_equal(out[:, f], want)
        codes = X[:, -1]
        want = np.full(n, 255)
        for pos, code in enumerate(edges[-1]):
            want[codes == code] = pos
        np.testing.assert_array_equal(out[:, -1], want)


def test_gradients_logistic_and_squared_error():
    raw = np.array([-2.0, 0.0, 3.0])
    y = np.array([0.0, 1.0, 1.0])
    gh = kern.gradients("binary:logistic", raw, y)
    p = 1 / (1 + np.exp(-raw))
    np.testing.assert_allclose(gh[:, 0], p - y, rtol=1e-6)
    np.testing.assert_allclose(gh[:, 1], p * (1 - p), rtol=1e-6)
    gh = kern.gradients("reg:squarederror", raw, y, weight=np.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(gh[:, 0], (raw - y) * [1.0, 2.0, 0.5])
    np.testing.assert_allclose(gh[:, 1], [1.0, 2.0, 0.5])


def test_kernel_argument_errors_name_the_argument():
    Xb, gh = _binned(10, 2, 9)
    rows = np.arange(10, dtype=np.int32)
    with pytest.raises(ValueError, match="rows"):
        kern.build_histograms(Xb, gh, np.array([0, 12], np.int32), [0], [2])
    with pytest.raises(ValueError, match="node ranges"):
        kern.build_histograms(Xb, gh, rows, [0], [11])
    with pytest.raises(ValueError, match="gh"):
        kern.build_histograms(Xb, gh[:5], rows, [0], [5])
    with pytest.raises(TypeError, match="rows"):
        kern.partition_ordered(
            Xb.copy(), gh.copy(), rows.astype(np.int64), [0], [10], [0], [1], [0], [0, 0]
        )
    with pytest.raises(ValueError, match="objective"):
        kern.gradients("multi:softmax", np.zeros(2), np.zeros(2))


@pytest.mark.parametrize(
    "n,n_threads", [(1000, 1), (250_000, 2), (1_200_000, 2)]
)  # node-parallel, row blocks
def test_partition_ordered_moves_rows_gradients_and_ids(n, n_threads):
    Xb, gh = _binned(n, 3, 10, n_values=30)
    ids = np.random.default_rng(10).permutation(n).astype(np.int32)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    starts, ends = np.array([0, n // 3]), np.array([n // 3, n])
    feature, threshold, dleft = (
        np.array([0, 2], np.int32),
        np.array([10, 4], np.int32),
        np.array([0, 1], np.uint8),
    )
    is_cat = np.array([0, 0, 1], np.uint8)
    n_left = kern.partition_ordered(
        Xn, ghn, rows, starts, ends, feature, threshold, dleft, is_cat, n_threads=n_threads
    )
    orders = []
    for k in range(2):
        seg = np.arange(starts[k], ends[k])
        go = ref.goes_left(Xb[seg, feature[k]], threshold[k], dleft[k], bool(is_cat[feature[k]]))
        order = np.concatenate([seg[go], seg[~go]])
        orders.append(order)
        assert n_left[k] == go.sum()
        np.testing.assert_array_equal(Xn[starts[k] : ends[k]], Xb[order])
        np.testing.assert_array_equal(ghn[starts[k] : ends[k]], gh[order])
        np.testing.assert_array_equal(rows[starts[k] : ends[k]], ids[order])
    # histogram of a node-ordered range (rows=None) = histogram of the same rows by index
    left0 = int(n_left[0])
    direct = kern.build_histograms(Xn, ghn, None, [0], [left0])
    indexed = kern.build_histograms(Xb, gh, orders[0][:left0].astype(np.int32), [0], [left0])
    np.testing.assert_array_equal(direct, indexed)


# ---- kernels the tree grower calls directly (recforge._core) ----------------------------------
@pytest.mark.parametrize("n,n_threads", [(900, 1), (600_000, 2), (600_000, 3)])
def test_child_histograms_are_smaller_built_and_larger_subtracted(n, n_threads):
    from recforge import _core

    Xn, ghn = _binned(n, 4, 11, n_values=40)
    # two parents: [0, n/2) split at n/8 (left smaller), [n/2, n) split at 7n/8 (right smaller)
    starts, ends = np.array([0, n // 2], np.int64), np.array([n // 2, n], np.int64)
    parent = kern.build_histograms(Xn, ghn, None, starts, ends)
    c_starts = np.array([0, n // 8, n // 2, 7 * n // 8], np.int64)
    c_ends = np.array([n // 8, n // 2, 7 * n // 8, n], np.int64)
    mask = np.array([1, 1, 0, 1], np.uint8)
    masked_parent = parent * mask[None, :, None, None]
    out = _core.gbdt_build_child_histograms(
        Xn, ghn, masked_parent, c_starts, c_ends, mask, n_threads
    )
    assert out.shape == (4, 4, 256, 2)
    direct = kern.build_histograms(Xn, ghn, None, c_starts, c_ends, feature_mask=mask)
    for small, large, p in ((0, 1, 0), (3, 2, 1)):
        np.testing.assert_array_equal(out[small], direct[small])  # the same sequential sums
        np.testing.assert_array_equal(out[large], masked_parent[p] - direct[small])
        np.testing.assert_allclose(out[large], direct[large], atol=1e-6)
    if n < 1000:  # the formula itself
        rows = np.arange(n)
        np.testing.assert_allclose(
            out[0, 0],
            ref.build_histogram(Xn, ghn.astype(np.float64), rows[: n // 8])[0],
            rtol=1e-12,
            atol=1e-12,
        )
    with pytest.raises(ValueError, match="c_starts"):
        _core.gbdt_build_child_histograms(Xn, ghn, masked_parent, c_starts[:2], c_ends[:2], None, 1)


@pytest.mark.parametrize("n_features", [8, 11, 14, 16])
def test_partition_of_narrow_rows_moves_each_row_once_to_its_side(n_features):
    # rows of 8 to 16 bytes move as 16-byte blocks, each to the slot of its side only: every node
    # stably partitioned, rows outside the nodes untouched (no 16-byte tail written past a node)
    n = 3_000
    Xb, gh = _binned(n, n_features, 20 + n_features, n_values=40)
    ids = np.random.default_rng(n_features).permutation(n).astype(np.int32)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    starts, ends = np.array([3, 1_000, 1_001]), np.array([1_000, 1_001, n - 5])
    feature = np.array([1, 0, n_features - 1], np.int32)
    threshold = np.array([20, 5, 3], np.int32)
    dleft = np.array([0, 1, 1], np.uint8)
    is_cat = np.zeros(n_features, np.uint8)
    n_left = kern.partition_ordered(
        Xn, ghn, rows, starts, ends, feature, threshold, dleft, is_cat, n_threads=1
    )
    for k in range(3):
        seg = np.arange(starts[k], ends[k])
        go = ref.goes_left(Xb[seg, feature[k]], threshold[k], dleft[k], False)
        order = np.concatenate([seg[go], seg[~go]])
        assert n_left[k] == go.sum()
        np.testing.assert_array_equal(Xn[starts[k] : ends[k]], Xb[order])
        np.testing.assert_array_equal(ghn[starts[k] : ends[k]], gh[order])
        np.testing.assert_array_equal(rows[starts[k] : ends[k]], ids[order])
    outside = np.r_[0:3, n - 5 : n]
    np.testing.assert_array_equal(Xn[outside], Xb[outside])
    np.testing.assert_array_equal(ghn[outside], gh[outside])
    np.testing.assert_array_equal(rows[outside], ids[outside])


@pytest.mark.parametrize("first_rows", ["alternating", "one_side", "mostly_one_side"])
def test_narrow_partition_picks_slots_by_branch_or_mask_with_the_same_result(first_rows):
    # 14-byte rows: a node whose first rows change direction often has its slots picked by a mask,
    # one with long runs of one side by a branch (directions_alternate); both give the stable
    # partition. The nodes' later rows have random directions either way.
    n, n_features, split = 4_000, 14, 5
    Xb, gh = _binned(n, n_features, 7, n_values=40, missing=0.0)
    head = np.arange(64)
    Xb[head, split] = {
        "alternating": np.where(head % 2 == 0, 3, 30),
        "one_side": np.full(64, 3),
        "mostly_one_side": np.where(head % 16 == 15, 30, 3),
    }[first_rows]
    ids = np.random.default_rng(8).permutation(n).astype(np.int32)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    starts, ends = np.array([0, 2_500]), np.array([2_500, n])
    feature = np.array([split, split], np.int32)
    threshold = np.array([20, 20], np.int32)
    zeros = np.zeros(2, np.uint8)
    n_left = kern.partition_ordered(
        Xn, ghn, rows, starts, ends, feature, threshold, zeros, np.zeros(n_features, np.uint8)
    )
    for k in range(2):
        seg = np.arange(starts[k], ends[k])
        go = Xb[seg, split] <= threshold[k]
        order = np.concatenate([seg[go], seg[~go]])
        assert 0 < n_left[k] == go.sum() < len(seg)
        np.testing.assert_array_equal(Xn[seg], Xb[order])
        np.testing.assert_array_equal(ghn[seg], gh[order])
        np.testing.assert_array_equal(rows[seg], ids[order])


@pytest.mark.parametrize("n_features", [3, 14, 20, 50])
def test_partition_leaves_a_leading_run_of_left_rows_and_partitions_the_rest(n_features):
    # nodes that open with a run of left rows (left in place), of every length up to the whole
    # node, and the smallest nodes: the stable partition, nothing outside the nodes touched
    split = 1
    sizes = [1, 2, 3, 40, 300, 300, 300, 300]
    n = sum(sizes) + 5
    Xb, gh = _binned(n, n_features, 9, n_values=40, missing=0.0)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    leading = [1, 1, 2, 39, 0, 150, 299, 300]  # left rows first, then the node's own bins
    for s, run in zip(starts, leading):
        Xb[s : s + run, split] = 3
    Xb[starts[1] + 1, split] = 30  # the 2-row node: one left, then one right
    ids = np.random.default_rng(10).permutation(n).astype(np.int32)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    k = len(sizes)
    n_left = kern.partition_ordered(
        Xn,
        ghn,
        rows,
        starts,
        ends,
        np.full(k, split, np.int32),
        np.full(k, 20, np.int32),
        np.zeros(k, np.uint8),
        np.zeros(n_features, np.uint8),
    )
    for j in range(k):
        seg = np.arange(starts[j], ends[j])
        go = Xb[seg, split] <= 20
        order = np.concatenate([seg[go], seg[~go]])
        assert n_left[j] == go.sum() >= leading[j]
        np.testing.assert_array_equal(Xn[seg], Xb[order])
        np.testing.assert_array_equal(ghn[seg], gh[order])
        np.testing.assert_array_equal(rows[seg], ids[order])
    outside = np.arange(ends[-1], n)
    np.testing.assert_array_equal(Xn[outside], Xb[outside])
    np.testing.assert_array_equal(rows[outside], ids[outside])


@pytest.mark.parametrize("n,n_threads", [(1000, 1), (250_000, 2)])
def test_partition_into_scratch_leaves_arrays_and_fills_scratch(n, n_threads):
    from recforge import _core

    Xb, gh = _binned(n, 3, 12, n_values=30)
    ids = np.random.default_rng(12).permutation(n).astype(np.int32)
    Xn, ghn, rows = Xb.copy(), gh.copy(), ids.copy()
    scratch = (np.empty_like(Xn), np.empty_like(ghn), np.empty_like(rows))
    args = (
        np.array([0], np.int64),
        np.array([n], np.int64),
        np.array([1], np.int32),
        np.array([12], np.int32),
        np.array([1], np.uint8),
        np.array([0, 0, 0], np.uint8),
        n_threads,
    )
    n_left = _core.gbdt_partition_ordered(Xn, ghn, rows, *scratch, *args, True)
    np.testing.assert_array_equal(Xn, Xb)  # the source is untouched
    go = ref.goes_left(Xb[:, 1], 12, 1, False)
    order = np.concatenate([np.flatnonzero(go), np.flatnonzero(~go)])
    assert n_left[0] == go.sum()
    np.testing.assert_array_equal(scratch[0], Xb[order])
    np.testing.assert_array_equal(scratch[1], gh[order])
    np.testing.assert_array_equal(scratch[2], ids[order])
    in_place = kern.partition_ordered(Xn, ghn, rows, *args[:-1], n_threads=n_threads)
    assert in_place[0] == n_left[0]
    np.testing.assert_array_equal(Xn, scratch[0])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_split_leaf_values_route_rows_like_the_partition(n_threads):
    from recforge import _core

    n = 250_000
    Xn, _ = _binned(n, 3, 13, n_values=25)
    rows = np.random.default_rng(13).permutation(n).astype(np.int32)
    starts, ends = np.array([0, 50_000], np.int64), np.array([50_000, n], np.int64)
    feature, threshold = np.array([2, 0], np.int32), np.array([3, 9], np.int32)
    dleft, is_cat = np.array([0, 1], np.uint8), np.array([0, 0, 1], np.uint8)
    left_value, right_value = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    raw = np.full(n, 0.1)
    _core.gbdt_add_split_leaf_values(
        Xn,
        rows,
        starts,
        ends,
        feature,
        threshold,
        dleft,
        is_cat,
        left_value,
        right_value,
        raw,
        n_threads,
    )
    expected = np.full(n, 0.1)
    for k in range(2):
        seg = np.arange(starts[k], ends[k])
        go = ref.goes_left(Xn[seg, feature[k]], threshold[k], dleft[k], bool(is_cat[feature[k]]))
        expected[rows[seg]] += np.where(go, left_value[k], right_value[k])
    np.testing.assert_array_equal(raw, expected)
    with pytest.raises(ValueError, match="rows must index raw"):
        _core.gbdt_add_split_leaf_values(
            Xn,
            rows,
            starts,
            ends,
            feature,
            threshold,
            dleft,
            is_cat,
            left_value,
            right_value,
            raw[:10],
            1,
        )


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_gradients_at_rows_equal_gathered_gradients(objective):
    from recforge import _core

    rng = np.random.default_rng(14)
    n = 300_000
    raw, y = rng.normal(size=n), (rng.random(n) < 0.4).astype(np.float64)
    w = rng.uniform(0.5, 2.0, n)
    rows = rng.permutation(n)[: n // 2].astype(np.int32)
    for weight in (None, w):
        full = kern.gradients(objective, raw, y, weight=weight)
        for n_threads in (1, 2):
            ghn = np.empty((len(rows), 2), np.float32)
            _core.gbdt_gradients_at(
                0 if objective == "binary:logistic" else 1,
                raw,
                y.astype(np.float32),
                None if weight is None else weight.astype(np.float32),
                rows,
                ghn,
                n_threads,
            )
            np.testing.assert_array_equal(ghn, full[rows])
    with pytest.raises(ValueError, match="rows must index raw"):
        _core.gbdt_gradients_at(
            0,
            raw,
            y.astype(np.float32),
            None,
            np.array([n], np.int32),
            np.empty((1, 2), np.float32),
            1,
        )


@pytest.mark.parametrize(
    "bad", [-1, 10, -(2**31), 2**31 - 1], ids=["-1", "n", "int32 min", "int32 max"]
)
def test_row_indices_outside_0_to_n_are_refused_anywhere_in_the_array(bad):
    from recforge import _core

    n = 10
    raw, y = np.zeros(n), np.zeros(n, np.float32)
    ok = np.arange(1000, dtype=np.int32) % n  # every index from 0 to n - 1: accepted
    _core.gbdt_gradients_at(0, raw, y, None, ok, np.empty((1000, 2), np.float32), 1)
    for position in (0, 517, 999):  # (inside and at both ends of the vectorised pass)
        rows = ok.copy()
        rows[position] = bad
        with pytest.raises(ValueError, match="rows must index raw"):
            _core.gbdt_gradients_at(0, raw, y, None, rows, np.empty((1000, 2), np.float32), 1)


def _values(n, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "duplicates":
        return rng.integers(-5, 5, n).astype(np.float32)
    v = (rng.standard_normal(n) * 1e-40).astype(np.float32)  # denormals
    for step, special in [(7, -0.0), (11, 0.0), (13, np.inf), (17, -np.inf), (19, 3.4e38)]:
        v[::step] = special
    return v


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 200_000])
@pytest.mark.parametrize("kind", ["normal", "duplicates", "special"])
def test_sort_values_matches_numpy_sort(n, kind):
    from recforge import _core

    values = _values(n, kind)
    ordered = _core.gbdt_sort_values(values)
    np.testing.assert_array_equal(ordered, np.sort(values))
    zeros = np.signbit(ordered[ordered == 0])
    assert not np.any(zeros[1:] & ~zeros[:-1])  # -0.0 before 0.0


def test_sort_values_rejects_nan():
    from recforge import _core

    values = _values(5000, "normal")
    values[123] = np.nan
    with pytest.raises(ValueError, match="values hold NaN"):
        _core.gbdt_sort_values(values)


def test_numeric_edges_are_the_quantiles_of_the_sorted_sample():
    from recforge.rank.gbdt._binning import BinMapper

    rng = np.random.default_rng(3)
    X = np.column_stack(
        [_values(60_000, k, seed=s) for s, k in enumerate(["normal", "duplicates", "special"])]
        + [rng.exponential(size=60_000).astype(np.float32)]
    )
    X[rng.random(X.shape) < 0.05] = np.nan
    edges = BinMapper(max_bin=64).fit(X, np.zeros(X.shape[1], bool)).edges_
    for f in range(X.shape[1]):
        ordered = np.sort(X[:, f][~np.isnan(X[:, f])])
        distinct = np.unique(ordered)
        if distinct.size <= 64:
            expected = distinct[1:]
        else:
            picked = np.unique(ordered[(np.arange(1, 64) * ordered.size) // 64])
            expected = picked[picked > ordered[0]]
        np.testing.assert_array_equal(edges[f], expected.astype(np.float32))


def test_bin_edges_do_not_depend_on_the_threads_or_blocks():
    # with threads the columns are cut into more blocks (two per thread or more), each block's
    # edges found by whichever thread takes it: the same edges, in column order
    from recforge.rank.gbdt._binning import BinMapper

    rng = np.random.default_rng(4)
    n = 12_000
    X = np.column_stack(
        [_values(n, k, seed=s) for s, k in enumerate(["normal", "duplicates", "special"] * 3)]
        + [rng.integers(0, 7, n).astype(np.float32), (rng.random(n) < 0.3).astype(np.float32)]
    )
    X[rng.random(X.shape) < 0.05] = np.nan
    is_cat = np.zeros(X.shape[1], bool)
    is_cat[-2] = True
    alone = BinMapper(max_bin=64).fit(X, is_cat, n_threads=1)
    for n_threads in (2, 3):
        threaded = BinMapper(max_bin=64).fit(X, is_cat, n_threads=n_threads)
        assert len(threaded.edges_) == X.shape[1]
        for mine, theirs in zip(threaded.edges_, alone.edges_):
            np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(threaded.n_bins_, alone.n_bins_)
