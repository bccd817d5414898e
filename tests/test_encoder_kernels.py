"""The FeatureEncoder's C++ kernels (``recforge.kernels.encoder``) against NumPy statements of them.

Bit for bit: values converted to float64, ``(v - mean) / scale`` in float64 stored as float32,
NaN -> code 0 and value 0, ``1 + #{edges <= v}`` (a linear count up to 64 edges, a binary search
beyond), infinite values counted, zero values dropped from the CSR output.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from recforge.kernels.encoder import (
    assemble_csr,
    bucketize,
    csr_arrays,
    numeric_blocks,
    numeric_blocks_2d,
)

VALUE_DTYPES = [
    np.float64,
    np.float32,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,  # converted to float64 by the wrapper
    np.dtype(">f8"),  # non-native byte order: converted too
    np.dtype(">i4"),
]
EDGE_COUNTS = [0, 1, 5, 64, 65, 300]


def _values(dtype, n, rng):
    """n values of dtype: NaN, +-inf and spread-out floats, or integers over the whole range."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = rng.standard_normal(n) * 40
        x[rng.random(n) < 0.1] = np.nan
        x[:4] = [np.inf, -np.inf, 0.0, -0.0]
        return x.astype(dtype)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size=n, dtype=dtype.newbyteorder("="), endpoint=True)
    x[: n // 4] = rng.integers(max(info.min, -50), min(info.max, 50), size=n // 4)
    x[:2] = [info.min, info.max]
    return x.astype(dtype)


def _edges(dtype, m, rng):
    dtype = np.dtype(dtype)
    spread = 40.0 if dtype.kind == "f" else min(float(np.iinfo(dtype).max), 2.0**62)
    edges = np.sort(rng.standard_normal(m)) * spread
    edges[: m // 2] = np.round(edges[: m // 2])  # values equal to an edge go above it
    return np.sort(edges)


def _codes(v, edges):
    codes = 1 + np.searchsorted(edges, v, side="right")
    codes[np.isnan(v)] = 0
    return codes


def _scaled(v, mean, scale):
    z = (v - mean) / scale
    z[np.isnan(v)] = 0.0
    return z.astype(np.float32)


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
@pytest.mark.parametrize("m", EDGE_COUNTS)
def test_bucketize_matches_searchsorted(dtype, m):
    rng = np.random.default_rng(m)
    x = _values(dtype, 600, rng)
    edges = _edges(dtype, m, rng)
    out = np.full(x.size, -7, dtype=np.int64)
    bucketize(x[::2], edges, out[: x[::2].size])  # a strided view
    v = x[::2].astype(np.float64)
    np.testing.assert_array_equal(out[: v.size], _codes(v, edges))


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
@pytest.mark.parametrize("m", EDGE_COUNTS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("with_scaled", [True, False])
def test_numeric_blocks_matches_numpy(dtype, m, index_dtype, with_scaled):
    rng = np.random.default_rng(10 + m)
    X = np.stack([_values(dtype, 500, rng) for _ in range(3)], axis=1)
    x = X[:, 1]  # a column of a 2-D array: strided
    edges = _edges(dtype, m, rng)
    mean, scale = 1.5, 3.25
    cols = np.full((2, x.size), -1, dtype=index_dtype)
    vals = np.full((1, x.size), -1.0, dtype=np.float32)
    n_inf = numeric_blocks(
        x,
        edges,
        mean,
        scale,
        with_scaled,
        7,
        cols[0],
        vals[0] if with_scaled else vals[:0].reshape(-1),
        11,
        cols[1],
    )
    v = x.astype(np.float64)
    assert n_inf == np.isinf(v).sum()
    np.testing.assert_array_equal(cols[1], 11 + _codes(v, edges))
    if with_scaled:
        np.testing.assert_array_equal(cols[0], 7)
        assert vals[0].tobytes() == _scaled(v, mean, scale).tobytes()
    else:  # the scaled outputs are left alone
        np.testing.assert_array_equal(cols[0], -1)
        np.testing.assert_array_equal(vals, -1.0)


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_numeric_blocks_2d_matches_numpy(dtype, index_dtype, layout):
    rng = np.random.default_rng(20)
    n = 400
    X = np.stack([_values(dtype, n, rng) for _ in range(4)], axis=1)
    X = np.asfortranarray(X) if layout == "F" else np.ascontiguousarray(X)
    col_idx = np.array([3, 0, 2], dtype=np.int64)
    per_column = [_edges(dtype, m, rng) for m in (5, 0, 300)]  # short, none, long
    edge_ptr = np.zeros(4, dtype=np.int64)
    edge_ptr[1:] = np.cumsum([e.size for e in per_column])
    mean = np.array([0.5, -2.0, 3.0])
    scale = np.array([2.0, 0.3, 7.0])
    scaled_row = np.array([0, -1, 3], dtype=np.int64)
    val_row = np.array([1, -1, 0], dtype=np.int64)
    off_scaled = np.array([4, 0, 9], dtype=np.int64)
    bins_row = np.array([1, 2, 4], dtype=np.int64)
    off_bins = np.array([10, 20, 30], dtype=np.int64)
    cols = np.full((5, n), -1, dtype=index_dtype)
    vals = np.full((2, n), -1.0, dtype=np.float32)
    n_inf = np.full(3, -1, dtype=np.int64)
    numeric_blocks_2d(
        X,
        col_idx,
        np.concatenate(per_column),
        edge_ptr,
        mean,
        scale,
        scaled_row,
        val_row,
        off_scaled,
        bins_row,
        off_bins,
        cols,
        vals,
        n_inf,
    )
    for t in range(3):
        v = X[:, col_idx[t]].astype(np.float64)
        assert n_inf[t] == np.isinf(v).sum()
        np.testing.assert_array_equal(cols[bins_row[t]], off_bins[t] + _codes(v, per_column[t]))
        if scaled_row[t] >= 0:
            np.testing.assert_array_equal(cols[scaled_row[t]], off_scaled[t])
            expected = _scaled(v, mean[t], scale[t])
            assert vals[val_row[t]].tobytes() == expected.tobytes()


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_assemble_csr_matches_numpy(index_dtype):
    rng = np.random.default_rng(30)
    n, n_blocks = 300, 5
    cols = np.sort(rng.integers(0, 1000, (n_blocks, n)), axis=0).astype(index_dtype)
    vals = rng.standard_normal((2, n)).astype(np.float32)
    vals[rng.random((2, n)) < 0.3] = 0.0
    vals[0, :3] = [np.nan, -0.0, np.inf]  # NaN and inf are kept, -0.0 dropped
    val_row = np.array([-1, 0, -1, 1, -1], dtype=np.int64)
    indptr, indices, data = csr_arrays(cols, vals, val_row, index_dtype)

    dense_vals = np.stack([np.ones(n, np.float32) if r < 0 else vals[r] for r in val_row])
    keep = dense_vals.T != 0  # (n, n_blocks), row-major like the output
    assert indptr.dtype == indices.dtype == index_dtype and data.dtype == np.float32
    np.testing.assert_array_equal(indptr, np.concatenate([[0], np.cumsum(keep.sum(axis=1))]))
    np.testing.assert_array_equal(indices, cols.T[keep])
    assert data.tobytes() == dense_vals.T[keep].tobytes()


def test_assemble_csr_refuses_short_outputs():
    cols = np.zeros((2, 3), dtype=np.int32)
    vals = np.zeros((0, 3), dtype=np.float32)
    val_row = np.array([-1, -1], dtype=np.int64)
    indptr = np.empty(4, dtype=np.int32)
    with pytest.raises(ValueError, match="too short"):
        assemble_csr(cols, vals, val_row, indptr, np.empty(5, np.int32), np.empty(6, np.float32))
    assert (
        assemble_csr(cols, vals, val_row, indptr, np.empty(6, np.int32), np.empty(6, np.float32))
        == 6
    )


def test_bad_arguments_raise_naming_them():
    x = np.zeros(4)
    out = np.empty(4, dtype=np.int64)
    with pytest.raises(ValueError, match="sorted"):
        bucketize(x, np.array([1.0, 0.0]), out)
    with pytest.raises(ValueError, match="sorted"):
        bucketize(x, np.array([0.0, np.nan]), out)
    with pytest.raises(ValueError, match="out"):
        bucketize(x, np.zeros(0), np.empty(3, dtype=np.int64))
    with pytest.raises(TypeError):
        bucketize(x.astype(np.complex128), np.zeros(0), out)
    cols = np.empty((2, 4), dtype=np.int64)
    vals = np.empty(4, dtype=np.float32)
    with pytest.raises(TypeError, match="cols_bins"):
        numeric_blocks(
            x, np.zeros(0), 0.0, 1.0, True, 0, cols[0], vals, 1, cols[1].astype(np.int16)
        )
    with pytest.raises(ValueError, match="cols_scaled"):
        numeric_blocks(
            x, np.zeros(0), 0.0, 1.0, True, 0, cols[0].astype(np.int32), vals, 1, cols[1]
        )
    with pytest.raises(ValueError, match="cols_bins"):
        numeric_blocks(x, np.zeros(0), 0.0, 1.0, False, 0, cols[0], vals, 1, cols[:, 0])
    read_only = cols[1].copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="cols_bins"):
        numeric_blocks(x, np.zeros(0), 0.0, 1.0, False, 0, cols[0], vals, 1, read_only)
    X = np.zeros((4, 2))
    ones = np.ones(1)
    ints = np.zeros(1, dtype=np.int64)
    args = [
        np.array([2]),
        np.zeros(0),
        np.array([0, 0]),
        ones,
        ones,
        ints - 1,
        ints,
        ints,
        ints,
        ints,
    ]
    with pytest.raises(ValueError, match="col_idx"):
        numeric_blocks_2d(X, *args, cols, np.empty((0, 4), np.float32), np.empty(1, np.int64))
    args[8] = ints + 5  # bins_row beyond the rows of cols
    args[0] = np.array([1])
    with pytest.raises(ValueError, match="bins_row"):
        numeric_blocks_2d(X, *args, cols, np.empty((0, 4), np.float32), np.empty(1, np.int64))


def test_encoder_kernels_start_no_numba():
    """The encoder's kernels and a FeatureEncoder transform leave Numba unimported."""
    code = (
        "import sys, json, numpy as np\n"
        "from recforge.features import FeatureEncoder\n"
        "X = np.array([[1.0, 2], [np.nan, 3], [4.0, 1]])\n"
        "FeatureEncoder(n_bins=2).fit(X).transform(X)\n"
        "print(json.dumps('numba' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


def _misaligned(a):
    """A copy of ``a`` (C order) in a view one byte past an aligned address."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert view.dtype.itemsize == 1 or not view.flags.aligned
    return view


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
def test_misaligned_raw_values_give_what_an_aligned_copy_gives(dtype):
    rng = np.random.default_rng(3)
    x = _values(dtype, 300, rng)
    edges = _edges(dtype, 20, rng)
    expected, got = np.empty(300, np.int64), np.empty(300, np.int64)
    bucketize(x, edges, expected)
    bucketize(_misaligned(x), edges, got)
    np.testing.assert_array_equal(got, expected)


def test_feature_encoder_on_a_misaligned_matrix_equals_an_aligned_copy():
    from recforge.features import FeatureEncoder

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 4))
    X[rng.random(X.shape) < 0.05] = np.nan
    for data in (X, X.astype(np.float32)):
        expected = FeatureEncoder(n_bins=8).fit(data).transform(data)
        got = FeatureEncoder(n_bins=8).fit(_misaligned(data)).transform(_misaligned(data))
        for name in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


def test_a_raw_column_of_another_dtype_is_refused_naming_it():
    with pytest.raises(TypeError, match="x must be an array of dtype float32/float64"):
        from recforge import _core

        _core.encoder_bucketize(np.zeros(3, np.complex64), np.zeros(0), np.empty(3, np.int64))
