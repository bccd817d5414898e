"""ItemCF and UserCF similarity on a Dask cluster: a tree-reduced sum of per-partition pieces.

Both similarities are ``sim(a, b) = C[a, b] / (norm[a] · norm[b])`` with the penalised co-occurrence
``C = Σ_m penalty[m] · [a ∈ m] · [b ∈ m]`` over *intermediates* ``m`` (ItemCF: users; UserCF:
items). ``C`` is a sum over any partition of the intermediates, so:

1. every partition of intermediates computes its piece of ``C`` with the same kernel and the
   same accumulation order as the single-machine fit
   (:func:`recforge.kernels.neighbors.cooccurrence_sums`), cut into blocks of rows;
   ItemCF's intermediates are the users, so the user partitions of a :class:`DaskInteractions`
   are used as they are; UserCF's are the items, so the entries are first regrouped by item range;
2. the pieces of each row block are added in a fixed binary tree (float64);
3. each row block is divided by the norms, cast to float32 and cut to its top ``n_neighbors``
   (similarity desc, index asc), exactly as the single-machine kernels do.

The result is an ordinary fitted :class:`~recforge.recall.ItemCF` /
:class:`~recforge.recall.UserCF`.

Float order: the single machine adds a pair's terms one intermediate after another; here the terms
inside a partition are added in that order and the partitions' float64 subtotals are then added in
a tree. The float64 sums can differ in their last bit, which survives the cast to float32 only when
a value lies within about 1e-16 (relative) of a float32 rounding boundary: the neighbour lists are
the same and the values agree to float32 precision (bit-identical in practice; the tests check the
lists exactly and the values to 1e-6 relative).
"""

from __future__ import annotations

import operator

import numpy as np
import scipy.sparse as sp

from .._validation import check_int
from ..kernels._csr import csr_kernel_arrays
from ..kernels.neighbors import cooccurrence_sums, neighbors_to_csr, topk_csr_rows
from ..recall import ItemCF, UserCF
from ..recall._neighbors import log_penalty
from ._compat import balanced_bounds, check_client, regroup, tree_reduce, worker_threads
from .interactions import DaskInteractions

__all__ = ["fit_itemcf", "fit_usercf"]


# ---------------------------------------------------------------------------------------------
# worker-side steps
# ---------------------------------------------------------------------------------------------
def _item_degree(part) -> np.ndarray:
    return part.item_popularity()


def _user_degree(part) -> np.ndarray:
    return part.user_activity()


def _itemcf_input(part):
    """Kernel arrays of one user partition: rows = items, intermediates = the partition's users."""
    matrix = part.matrix
    items = matrix.T.tocsr()
    items.sort_indices()
    return (
        *csr_kernel_arrays(items)[:2],
        *csr_kernel_arrays(matrix)[:2],
        log_penalty(part.user_activity()),
    )


def _split_by_item_block(part, user_start: int, item_bounds: np.ndarray):
    """A user partition's (global user, global item) entries by item block, and the offsets."""
    matrix = part.matrix
    rows = (
        np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) + user_start
    )
    cols = matrix.indices.astype(np.int64)
    block = np.searchsorted(item_bounds, cols, side="right") - 1
    order = np.argsort(block, kind="stable")
    offsets = np.searchsorted(block[order], np.arange(item_bounds.size), side="left")
    return rows[order], cols[order], offsets


def _item_bucket(split, m: int):
    rows, cols, offsets = split
    return rows[offsets[m] : offsets[m + 1]], cols[offsets[m] : offsets[m + 1]]


def _csr_by(rows: np.ndarray, cols: np.ndarray, n_rows: int):
    """(indptr int64, indices int32) of the pattern (rows, cols), indices sorted in each row."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, np.ascontiguousarray(cols[order], dtype=np.int32)


def _usercf_input(item_start: int, item_stop: int, n_users: int, penalty: np.ndarray, *buckets):
    """Kernel arrays of one item block: rows = all users, intermediates = the block's items."""
    users = np.concatenate([b[0] for b in buckets])
    items = np.concatenate([b[1] for b in buckets]) - item_start
    a_indptr, a_indices = _csr_by(users, items, n_users)
    b_indptr, b_indices = _csr_by(items, users, item_stop - item_start)
    return (
        a_indptr,
        a_indices,
        b_indptr,
        b_indices,
        np.ascontiguousarray(penalty[item_start:item_stop]),
    )


def _pieces(kernel_input, row_bounds: np.ndarray) -> list:
    """This partition's co-occurrence numerators, one CSR (indptr, indices, data) per row block."""
    a_indptr, a_indices, b_indptr, b_indices, penalty = kernel_input
    n = worker_threads()
    return [
        cooccurrence_sums(a_indptr, a_indices, b_indptr, b_indices, penalty, lo, hi, n)
        for lo, hi in zip(row_bounds[:-1].tolist(), row_bounds[1:].tolist())
    ]


def _add_pieces(a, b, n_cols: int):
    shape = (a[0].size - 1, n_cols)
    total = sp.csr_matrix((a[2], a[1], a[0]), shape=shape) + sp.csr_matrix(
        (b[2], b[1], b[0]), shape=shape
    )
    total.sort_indices()
    return csr_kernel_arrays(total, np.float64)


def _topk_block(summed, row_start: int, norm: np.ndarray, n_neighbors: int, normalize_max: bool):
    """Each row's top ``n_neighbors`` similarities in one row block (as the single machine)."""
    n_threads = max(1, min(summed[0].size - 1, worker_threads()))
    nbr_idx, nbr_val, counts = topk_csr_rows(
        *summed, int(row_start), norm, int(n_neighbors), n_threads
    )
    return neighbors_to_csr(nbr_idx, nbr_val, counts, bool(normalize_max))


# ---------------------------------------------------------------------------------------------
# the client side
# ---------------------------------------------------------------------------------------------
def _similarity(client, kernel_inputs, row_bounds, norm, n_neighbors, normalize_max):
    """Top-K similarity CSR (n_rows × n_rows, float32) from per-partition kernel inputs."""
    n_rows = int(row_bounds[-1])
    pieces = client.map(_pieces, kernel_inputs, row_bounds=row_bounds, pure=False)
    norm_f = client.scatter(norm, broadcast=True, hash=False)
    blocks = []
    for r in range(row_bounds.size - 1):
        block_pieces = [client.submit(operator.getitem, p, r, pure=False) for p in pieces]
        summed = tree_reduce(client, _add_pieces, block_pieces, n_rows)
        blocks.append(
            client.submit(
                _topk_block,
                summed,
                int(row_bounds[r]),
                norm_f,
                int(n_neighbors),
                bool(normalize_max),
                pure=False,
            )
        )
    blocks = client.gather(blocks)
    offsets = np.cumsum([0] + [int(b[0][-1]) for b in blocks[:-1]])
    indptr = np.concatenate([[0]] + [b[0][1:] + off for b, off in zip(blocks, offsets)]).astype(
        np.int64
    )
    indices = np.concatenate([b[1] for b in blocks])
    data = np.concatenate([b[2] for b in blocks])
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_rows))


def _start(model_cls, data, client, n_blocks, params):
    check_client(client)
    if not isinstance(data, DaskInteractions):
        raise TypeError(
            f"data must be a recforge.distributed.DaskInteractions (from_dask_dataframe / "
            f"from_parquet), got {type(data).__name__}"
        )
    model = model_cls(**params)
    model._validate_params()
    if data.nnz == 0:
        raise ValueError(
            "interactions has no entries; a recall model needs at least one interaction"
        )
    n_blocks = (
        data.n_partitions if n_blocks is None else check_int(n_blocks, "n_blocks", min_value=1)
    )
    degree = tree_reduce(
        client, np.add, client.map(_item_degree, data.partitions, pure=False)
    ).result()
    return model, n_blocks, degree


def _finish(model, data, similarity):
    """Set the fitted state exactly as ``RecallModel.fit`` does (the whole data on the client)."""
    local = data.to_local()
    model.similarity_ = similarity
    setattr(model, model._weights_name + "_", model._interaction_weights(local))
    model.user_map_ = local.user_map
    model.item_map_ = local.item_map
    model.user_items_ = local.matrix
    return model


def fit_itemcf(data, client, *, n_blocks=None, **params) -> ItemCF:
    """Fit :class:`~recforge.recall.ItemCF`, its item–item similarity computed on a cluster.

    Parameters
    ----------
    data : DaskInteractions
        The training interactions, partitioned by user.
    client : distributed.Client
    n_blocks : int >= 1, optional
        Item-row blocks of the reduce (default: ``data.n_partitions``); each block's summed
        co-occurrence lives on one worker at a time.
    **params
        ``ItemCF`` hyper-parameters (``n_neighbors``, ``normalize_max``, ``use_weights``,
        ``time_decay``; ``n_threads`` applies to the returned model).

    Returns
    -------
    ItemCF
        Fitted: the same neighbour lists as ``ItemCF(**params).fit(data.to_local())`` (see the
        module docstring on float order), and the same ``user_weights_``.

    Examples
    --------
    On a cluster (not run as a doctest)::

        from recforge.distributed import fit_itemcf
        model = fit_itemcf(train, client, n_neighbors=50)
        model.recommend(some_user, k=10)
    """
    model, n_blocks, degree = _start(ItemCF, data, client, n_blocks, params)
    norm = np.sqrt(np.maximum(degree.astype(np.float64), 1.0))
    row_bounds = balanced_bounds(np.maximum(degree, 1), n_blocks)
    inputs = client.map(_itemcf_input, data.partitions, pure=False)
    similarity = _similarity(
        client, inputs, row_bounds, norm, model.n_neighbors, model.normalize_max
    )
    return _finish(model, data, similarity)


def fit_usercf(data, client, *, n_blocks=None, **params) -> UserCF:
    """Fit :class:`~recforge.recall.UserCF`, its user–user similarity computed on a cluster.

    UserCF's intermediates are items: the entries are regrouped into ``n_blocks`` item ranges (one
    exchange of the interactions), each range's co-occurrence of users is computed where it lands,
    and the pieces are summed per user partition (the rows of ``data``).

    Parameters
    ----------
    data : DaskInteractions
    client : distributed.Client
    n_blocks : int >= 1, optional
        Item ranges (default: ``data.n_partitions``).
    **params
        ``UserCF`` hyper-parameters.

    Returns
    -------
    UserCF
        Fitted: the same neighbour lists as ``UserCF(**params).fit(data.to_local())``.
    """
    model, n_blocks, item_count = _start(UserCF, data, client, n_blocks, params)
    penalty_f = client.scatter(log_penalty(item_count), broadcast=True, hash=False)
    user_degree = np.concatenate(
        client.gather(client.map(_user_degree, data.partitions, pure=False))
    )
    norm = np.sqrt(np.maximum(user_degree.astype(np.float64), 1.0))
    item_bounds = balanced_bounds(np.maximum(item_count, 1), n_blocks)
    splits = [
        client.submit(_split_by_item_block, part, int(start), item_bounds, pure=False)
        for part, start in zip(data.partitions, data.bounds[:-1])
    ]
    inputs = regroup(
        client,
        splits,
        item_bounds.size - 1,
        _item_bucket,
        _usercf_input,
        lambda m: (int(item_bounds[m]), int(item_bounds[m + 1]), data.n_users, penalty_f),
    )
    similarity = _similarity(
        client, inputs, data.bounds, norm, model.n_neighbors, model.normalize_max
    )
    return _finish(model, data, similarity)
