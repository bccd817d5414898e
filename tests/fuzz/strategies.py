"""Hypothesis strategies for hostile inputs: odd dtypes, NaN/inf, empty rows, duplicate/huge ids."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

HUGE_INTS = [2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1]
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e39, 1e300, -1.0]

int_ids = st.one_of(st.integers(-5, 40), st.sampled_from(HUGE_INTS))
str_ids = st.text(alphabet="ab\x00 é", min_size=0, max_size=3)
ids = st.one_of(int_ids, str_ids)
floats = st.one_of(st.floats(-10, 10, allow_nan=False), st.sampled_from(SPECIAL_FLOATS))
int_dtypes = st.sampled_from([np.int8, np.int32, np.int64, np.uint32, np.uint64])
float_dtypes = st.sampled_from([np.float16, np.float32, np.float64])


@st.composite
def id_arrays(draw, n: int):
    """``n`` ids of one kind (ints of some dtype, floats, strings or objects), duplicates likely."""
    kind = draw(st.sampled_from(["int", "float", "str", "object", "huge"]))
    if kind == "int":
        dtype = draw(int_dtypes)
        info = np.iinfo(dtype)
        values = draw(
            st.lists(st.integers(max(info.min, -3), min(info.max, 30)), min_size=n, max_size=n)
        )
        return np.array(values, dtype=dtype)
    if kind == "float":
        return np.array(
            draw(
                st.lists(
                    st.one_of(st.integers(0, 20).map(float), st.sampled_from([np.nan, 1.5])),
                    min_size=n,
                    max_size=n,
                )
            ),
            dtype=np.float64,
        )
    if kind == "str":
        return np.array(draw(st.lists(str_ids, min_size=n, max_size=n)), dtype=str)
    if kind == "huge":
        return draw(st.lists(st.sampled_from([*HUGE_INTS[:4], 0, 1]), min_size=n, max_size=n))
    return np.array(
        draw(st.lists(st.one_of(int_ids, str_ids, st.none()), min_size=n, max_size=n)), dtype=object
    )


@st.composite
def float_arrays(draw, shape, special: bool = True):
    dtype = draw(float_dtypes) if special else np.float64
    elements = floats if special else st.floats(-10, 10, allow_nan=False)
    values = draw(hnp.arrays(np.float64, shape, elements=elements))
    with np.errstate(over="ignore"):
        return values.astype(dtype)


@st.composite
def interaction_matrices(draw, max_users: int = 12, max_items: int = 10):
    """A small user × item matrix: dense or CSR (int32/int64 indices), empty rows, NaN/negative."""
    n_users, n_items = draw(st.integers(0, max_users)), draw(st.integers(0, max_items))
    density = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(
        1, 6, (n_users, n_items)
    ).astype(np.float64)
    if n_users and n_items and draw(st.booleans()):
        dense[draw(st.integers(0, n_users - 1)), draw(st.integers(0, n_items - 1))] = draw(floats)
    form = draw(st.sampled_from(["dense", "csr32", "csr64", "coo", "list"]))
    if form == "dense":
        return dense.astype(draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_])))
    if form == "list":
        return dense.tolist()
    m = __import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix(dense)
    if form == "coo":
        return m.tocoo()
    index = np.int32 if form == "csr32" else np.int64
    m.indices, m.indptr = m.indices.astype(index), m.indptr.astype(index)
    return m


def valid_interactions(max_users: int = 12, max_items: int = 10, timestamps: bool = True):
    """Well-formed :class:`Interactions` (ids 100.., 500..; empty rows), for models and splits."""

    @st.composite
    def build(draw):
        from recforge.data import Interactions

        n_users, n_items = draw(st.integers(1, max_users)), draw(st.integers(1, max_items))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        density = draw(st.sampled_from([0.05, 0.3, 0.7, 1.0]))
        dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 6, (n_users, n_items))
        users, items = np.nonzero(dense)
        weights = dense[users, items].astype(np.float64)
        ts = rng.integers(0, 10**6, len(users)).astype(np.float64) if timestamps else None
        user_ids = (
            np.arange(n_users, dtype=np.int64) + 100
            if draw(st.booleans())
            else np.array([f"u{u}" for u in range(n_users)])
        )
        item_ids = np.arange(n_items, dtype=np.int64) * 7 + 500
        return Interactions.from_arrays(
            user_ids[users], item_ids[items], weights, ts, user_ids=user_ids, item_ids=item_ids
        )

    return build()
