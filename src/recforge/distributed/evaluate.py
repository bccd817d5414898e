"""``evaluate_recall`` over the user partitions of a split on a Dask cluster.

Each partition ranks its own test users (the protocol of :func:`recforge.evaluate.evaluate_recall`,
step by step) and sends back only each evaluated user's hit row (``k`` bits) and relevant count, and
the bitmap of recommended items. The client stacks the rows in user order and takes the same means
as the single machine, so the report is equal to the single-machine report, not just close.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..evaluate import RecallReport, _recommend_unseen
from ..metrics import _hits, _per_user
from ._compat import check_client, tree_reduce
from ._memory import reuse_freed_memory
from ._shipping import load_shipped, ship_model
from .interactions import DaskInteractions
from .recommend import recommend_step

__all__ = ["evaluate_recall"]


def _train_items(part) -> np.ndarray:
    """bool (n_items,): items with a stored entry in this partition."""
    mask = np.zeros(part.n_items, dtype=np.bool_)
    mask[part.matrix.indices] = True
    return mask


def _evaluate_partition(blob, class_path, digest, train, test, in_universe, k, batch_size) -> dict:
    """Hit rows, relevant counts and recommended-item bitmap of one partition's evaluated users."""
    model = load_shipped(class_path, digest, blob)
    train_csr, test_csr = train.matrix, test.matrix
    n_items = train_csr.shape[1]
    test_users = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    cold = np.diff(train_csr.indptr)[test_users] == 0
    eval_users = test_users[~cold]
    covered = np.zeros(n_items, dtype=np.bool_)
    out = {
        "n_skipped": int(cold.sum()),
        "hits": np.zeros((0, (k + 7) // 8), np.uint8),
        "n_relevant": np.zeros(0, np.int64),
        "covered": covered,
    }
    if eval_users.size == 0:
        return out
    step = recommend_step(model, batch_size)  # score blocks reused, as in batch_recommend
    with reuse_freed_memory():
        recommended = _recommend_unseen(model, train, train_csr, eval_users, k, in_universe, step)
    hits, n_relevant, _ = _hits(recommended, test_csr[eval_users], k)
    covered[recommended[recommended >= 0]] = True
    out.update(hits=np.packbits(hits, axis=1), n_relevant=n_relevant)
    return out


def evaluate_recall(
    model, train, test, client, k: int = 10, *, batch_size: int = 1024
) -> RecallReport:
    """:func:`recforge.evaluate.evaluate_recall` with the users ranked partition by partition.

    Parameters
    ----------
    model : fitted recall model (recommend contract, ``save``/``load``)
        Shipped to every worker once as its ``.npz`` bytes.
    train, test : DaskInteractions
        One split (``DaskInteractions.temporal_split`` etc.): same id maps and user partitions.
    client : distributed.Client
    k : int >= 1, default 10
    batch_size : int >= 1, default 1024
        Most users per ``recommend`` call inside a partition (fewer for a large catalogue: see
        :func:`recforge.distributed.recommend.users_per_call`).

    Returns
    -------
    RecallReport
        Equal to ``recforge.evaluate.evaluate_recall(model, train.to_local(), test.to_local(), k)``.
        The client receives ``ceil(k / 8) + 8`` bytes per evaluated user and ``n_items`` bytes per
        partition.

    Raises
    ------
    TypeError, ValueError, KeyError
        As the single-machine function (checked on the client, or raised by the worker that
        meets it).
    """
    check_client(client)
    if not isinstance(train, DaskInteractions):
        raise TypeError(f"train must be a DaskInteractions, got {type(train).__name__}")
    train.same_layout(test, "test")
    k = check_int(k, "k", min_value=1)
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    in_universe = tree_reduce(
        client, np.logical_or, client.map(_train_items, train.partitions, pure=False)
    )
    n_universe = int(client.submit(np.count_nonzero, in_universe, pure=False).result())
    if n_universe == 0:
        raise ValueError("train has no interaction; the item universe is empty")
    shipped = ship_model(client, model)
    results = client.gather(
        [
            client.submit(
                _evaluate_partition,
                shipped.blob,
                shipped.class_path,
                shipped.digest,
                tr,
                te,
                in_universe,
                k,
                batch_size,
                pure=False,
            )
            for tr, te in zip(train.partitions, test.partitions)
        ]
    )
    n_skipped = sum(r["n_skipped"] for r in results)
    n_relevant = np.concatenate([r["n_relevant"] for r in results])
    if n_relevant.size == 0:
        raise ValueError(
            f"test has no user with both a test entry and a train entry to evaluate "
            f"({n_skipped} cold test user(s) skipped)"
        )
    hits = np.unpackbits(np.concatenate([r["hits"] for r in results]), axis=1, count=k).astype(
        np.bool_
    )
    per_user = _per_user(hits, n_relevant, k)
    covered = np.logical_or.reduce([r["covered"] for r in results])
    return RecallReport(
        precision=float(per_user["precision"].mean()),
        recall=float(per_user["recall"].mean()),
        ndcg=float(per_user["ndcg"].mean()),
        hit_rate=float(per_user["hit_rate"].mean()),
        coverage=float(np.count_nonzero(covered) / n_universe),
        k=k,
        n_users_evaluated=int(n_relevant.size),
        n_users_skipped=int(n_skipped),
        n_items_universe=n_universe,
    )
