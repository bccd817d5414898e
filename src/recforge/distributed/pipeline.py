"""The two-stage pipeline on a Dask cluster: candidates and as-of features per user partition.

The per-user work of :class:`~recforge.pipeline.TwoStage` — merging the sources' candidates,
building the as-of features, labelling the candidates with the part after the cut — runs on the
workers, one partition of users of a :class:`DaskInteractions` at a time:

1. the label cut (``cut="last"``, a per-user rule) is made per partition;
2. the recall sources are fitted on the history before the cut, on the client
   (:meth:`TwoStage.history_model`; the history is gathered there), and that history model is
   shipped to every worker once as its ``.npz`` bytes;
3. each partition builds its users' candidates, features and labels, down-sampled exactly as on
   one machine (users by ``max_train_users``; negatives by keys of (seed, user, item), so a user
   keeps the same negatives in any partition; the validation users keep all their candidates);
4. :func:`fit_two_stage` gathers that training frame (with the rows' ``validation`` /
   ``complete`` / ``in_sample`` flags), chooses and trains the ranker and refits the sources on
   all the data: the same model as ``TwoStage.fit`` on one machine.

Recommending with a fitted ``TwoStage`` over partitions of users is
:func:`recforge.distributed.batch_recommend` (it takes any model with the recommend contract);
:func:`candidate_frame` gives the serving-time candidates and features per partition.

What crosses the network: the history model once per worker (sources + the history's item and
user arrays, O(nnz of the history)); per partition, the partition's future events to its task and
the frame of its users' candidates back (rows × (features + 3) × 4–8 bytes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import check_random_state
from ..pipeline.labels import (
    cut_history,
    label_candidates,
    last_event_times,
    negatives_seed,
    sample_training_rows,
)
from ..pipeline.model import TrainingData, TwoStage
from ..pipeline.selection import simple_ndcg_rows, simple_order_names
from ._compat import require_dask
from ._shipping import load_shipped, ship_model
from .interactions import DaskInteractions
from .recommend import _user_sources, resolve_users

__all__ = ["build_training_frame", "candidate_frame", "fit_two_stage"]

#: the leading columns of a candidate frame, before the features
KEY_COLUMNS = ("user", "item")
#: a training frame's bool columns after ``label``: the fields of the same name of TrainingData
ROW_FLAGS = ("validation", "complete", "in_sample")
#: the prefix of a training frame's float32 columns of TrainingData.simple_ndcg, one per simple order
SIMPLE_NDCG_PREFIX = "simple_ndcg_"


def _meta(model: TwoStage, label: bool) -> pd.DataFrame:
    columns = {
        "user": pd.Series([], dtype=_dtype(model.user_map_.ids)),
        "item": pd.Series([], dtype=_dtype(model.item_map_.ids)),
    }
    if label:
        columns["label"] = pd.Series([], dtype=np.int8)
        for flag in ROW_FLAGS:
            columns[flag] = pd.Series([], dtype=bool)
        for name in _simple_columns(model):
            columns[name] = pd.Series([], dtype=np.float32)
    for name in model.feature_names_out_:
        columns[name] = pd.Series([], dtype=np.float32)
    return pd.DataFrame(columns)


def _simple_columns(model: TwoStage) -> list:
    return [SIMPLE_NDCG_PREFIX + name for name in simple_order_names(model.feature_names_out_)]


def _dtype(ids: np.ndarray):
    return np.int64 if ids.dtype.kind in "iu" else object


def _frame(model: TwoStage, user_idx: np.ndarray, cands, X, labels=None, flags=None):
    rows = cands.rows()
    meta = _meta(model, labels is not None)
    columns = {
        "user": model.user_map_.ids[user_idx[rows]].astype(meta["user"].dtype, copy=False),
        "item": model.item_map_.ids[cands.items].astype(meta["item"].dtype, copy=False),
    }
    if labels is not None:
        columns["label"] = labels.astype(np.int8, copy=False)
        for flag in ROW_FLAGS:
            columns[flag] = flags[flag]
        for j, name in enumerate(_simple_columns(model)):
            columns[name] = flags["simple_ndcg"][:, j]
    frame = pd.DataFrame(columns)
    features = pd.DataFrame(X, columns=model.feature_names_out_, index=frame.index)
    return pd.concat([frame, features], axis=1)


# ---- worker-side steps ---------------------------------------------------------------------------
def _cut_partition(part, fraction: float):
    cut = cut_history(part, cut="last", fraction=fraction)
    return cut.history, cut.future


def _max_weight(part) -> float:
    return float(part.matrix.data.max()) if part.nnz else -np.inf


def _future_counts(part) -> np.ndarray:
    return np.diff(part.matrix.indptr).astype(np.int64)


def _training_partition(
    blob, class_path, digest, future, start, users, held_users, negatives_per_user, seed
) -> pd.DataFrame:
    """One partition's labelled training candidates; ``users``: global internal indices (sorted),
    ``held_users`` the validation users among them; sampled as ``TwoStage`` samples a block."""
    model = load_shipped(class_path, digest, blob)
    users = np.asarray(users, np.int64)
    if users.size == 0:
        return _meta(model, label=True)
    cands, X = model.features(model.user_map_.ids[users])
    rows = cands.rows()
    y = label_candidates(users[rows] - np.int64(start), cands.items, future)
    held = np.isin(users[rows], np.asarray(held_users, np.int64))
    sampled = sample_training_rows(
        rows, users[rows], cands.items, y, held, negatives_per_user, seed
    )
    flags = {
        "validation": held,
        "complete": sampled.complete,
        "in_sample": sampled.in_sample,
        "simple_ndcg": simple_ndcg_rows(
            X, model.feature_names_out_, rows, cands.items, y, int(model.validation_k)
        ),
    }
    frame = _frame(model, users, cands, X, y, flags)
    keep = sampled.keep
    return frame[keep].reset_index(drop=True) if not keep.all() else frame


def _candidate_partition(blob, class_path, digest, users) -> pd.DataFrame:
    model = load_shipped(class_path, digest, blob)
    users = resolve_users(users, model)
    users = np.asarray(pd.Series(users).to_numpy() if not isinstance(users, np.ndarray) else users)
    if users.size == 0:
        return _meta(model, label=False)
    user_idx = np.atleast_1d(
        np.asarray(model.user_map_.index(users, name="user_id"), dtype=np.int64)
    )
    cands, X = model.features(model.user_map_.ids[user_idx])
    return _frame(model, user_idx, cands, X)


# ---- client side ---------------------------------------------------------------------------------
def _check_inputs(model, data):
    if not isinstance(model, TwoStage):
        raise TypeError(f"model must be a recforge.pipeline.TwoStage, got {type(model).__name__}")
    if not isinstance(data, DaskInteractions):
        raise TypeError(f"data must be a DaskInteractions, got {type(data).__name__}")
    if not data.has_timestamps:
        raise ValueError("data has no timestamps; the pipeline cuts each history in time")
    if model.cut != "last":
        raise ValueError(
            f"the distributed pipeline cuts each user's history (cut='last'), got cut={model.cut!r}"
        )


def build_training_frame(model: TwoStage, data: DaskInteractions, *, item_features=None):
    """The ranker's training frame of ``model`` (unfitted parameters), built partition by partition.

    Parameters
    ----------
    model : TwoStage with ``cut="last"`` (its parameters are used; it is not modified)
    data : DaskInteractions with timestamps
    item_features : as in :meth:`TwoStage.fit`

    Returns
    -------
    frame : dask.dataframe.DataFrame
        Columns ``user``, ``item`` (external ids), ``label`` (int8: 1 = interacted with after the
        cut), the bool row flags ``validation`` (a held-out user's row), ``complete`` (a user none
        of whose candidates were dropped) and ``in_sample`` (kept by the negative sampling; see
        :class:`~recforge.pipeline.model.TrainingData`), the float32 ``simple_ndcg_<order>``
        columns (``TrainingData.simple_ndcg``: the row's user's NDCG under fusion and each
        source, before the sampling), and one float32 column per feature
        (``model``'s ``feature_names_out_``); the users in internal order, each user's candidates
        in fusion order. The users are those with events before and after the cut, sampled by
        ``max_train_users``, and the negatives by ``negatives_per_user``, exactly as
        ``TwoStage.fit`` samples them.
    info : dict
        ``history_model`` (the fitted :meth:`TwoStage.history_model`), ``users`` (int64 internal
        indices of the training users), ``label_events`` (their events after the cut).

    The computed frame holds exactly the rows of ``model.training_data(data.to_local())``, in
    the same order, with or without ``negatives_per_user``.
    """
    _check_inputs(model, data)
    dask, dd, _ = require_dask()
    client = data.client
    history_parts, future_parts = data._split(_cut_partition, fraction=model.label_fraction)
    history = history_parts.to_local()
    high = model.high_weight
    if high is None:  # as TwoStage.fit: the largest weight of all the data
        high = max(client.gather(client.map(_max_weight, data.partitions)))
    as_of = last_event_times(
        history, default=float(history.timestamps.max()) if history.nnz else 0.0
    )
    hist_model = model._history_model(history, as_of, item_features, float(high))
    counts = np.concatenate(client.gather(client.map(_future_counts, future_parts.partitions)))
    hist_count = np.diff(history.matrix.indptr)
    users = np.flatnonzero((counts > 0) & (hist_count > 0))
    rng = check_random_state(model.random_state)
    if model.max_train_users is not None and len(users) > model.max_train_users:
        users = np.sort(rng.choice(users, int(model.max_train_users), replace=False))
    if len(users) == 0:
        raise ValueError("no user has events both before and after the cut")
    held_users = model._validation_users(users)
    seed = negatives_seed(rng)
    shipped = ship_model(client, hist_model)
    task = dask.delayed(_training_partition, pure=True)
    parts = []
    for q, future in enumerate(future_parts.partitions):
        lo, hi = data.bounds[q], data.bounds[q + 1]
        mine = users[(users >= lo) & (users < hi)]
        mine_held = held_users[(held_users >= lo) & (held_users < hi)]
        parts.append(
            task(
                shipped.blob,
                shipped.class_path,
                shipped.digest,
                future,
                int(lo),
                mine,
                mine_held,
                model.negatives_per_user,
                seed,
            )
        )
    frame = dd.from_delayed(parts, meta=_meta(hist_model, label=True), verify_meta=False)
    info = {
        "history_model": hist_model,
        "users": users,
        "label_events": int(counts[users].sum()),
    }
    return frame, info


def fit_two_stage(model: TwoStage, data: DaskInteractions, *, item_features=None) -> TwoStage:
    """Fit ``model`` with its training frame built on the cluster (:func:`build_training_frame`).

    The sampled frame is gathered to the client for the ranker, and the sources are refitted on
    all the data there (``data.to_local()``): the client holds the data once plus the frame.
    The ranker is chosen on the same validation users, trained on the same rows and the result
    recommends exactly like ``model.fit`` on one machine.

    Returns
    -------
    model, fitted (the same object)

    Examples
    --------
    On a cluster (not run as a doctest)::

        from recforge.distributed import batch_recommend, from_parquet
        from recforge.distributed.pipeline import fit_two_stage
        from recforge.pipeline import TwoStage
        data = from_parquet("interactions/", client, user_col="user", item_col="item",
                            timestamp_col="ts")
        model = fit_two_stage(TwoStage(max_train_users=100_000, negatives_per_user=50), data)
        batch_recommend(model, client, data, k=20).to_parquet("recs/")
    """
    frame, info = build_training_frame(model, data, item_features=item_features)
    local = frame.compute()
    hist = info["history_model"]
    users = np.asarray(hist.user_map_.index(local["user"].to_numpy()), np.int64).reshape(-1)
    items = np.asarray(hist.item_map_.index(local["item"].to_numpy()), np.int64).reshape(-1)
    names = list(hist.feature_names_out_)
    y = local["label"].to_numpy(np.int8)
    starts = np.r_[True, users[1:] != users[:-1]]
    rows = np.cumsum(starts) - 1
    positives = int(y.sum())
    summary = {
        "users": len(info["users"]),
        "rows": len(y),
        "positives": positives,
        "label_events": info["label_events"],
        "candidate_recall": positives / info["label_events"]
        if info["label_events"]
        else float("nan"),
    }
    training = TrainingData(
        X=np.ascontiguousarray(local[names].to_numpy(np.float32)),
        y=y,
        rows=rows.astype(np.int64),
        users=users,
        items=items,
        feature_names=names,
        summary=summary,
        **{flag: local[flag].to_numpy(bool) for flag in ROW_FLAGS},
        simple_ndcg=np.ascontiguousarray(local[_simple_columns(hist)].to_numpy(np.float32)),
    )
    return model.fit(data.to_local(), item_features=item_features, training_data=training)


def candidate_frame(model: TwoStage, client, users=None, *, n_partitions=None):
    """A fitted ``model``'s serving-time candidates and features, partition by partition of users.

    Parameters
    ----------
    model : fitted TwoStage (shipped to every worker once, as its ``.npz`` bytes)
    client : distributed.Client
    users : as in :func:`recforge.distributed.batch_recommend` (None = every user of the model)
    n_partitions : int, optional — partitions of an in-memory ``users``

    Returns
    -------
    dask.dataframe.DataFrame
        ``user``, ``item`` (external ids) and the float32 features, the rows of
        ``model.features(users)``.
    """
    dask, dd, _ = require_dask()
    if not isinstance(model, TwoStage):
        raise TypeError(f"model must be a fitted TwoStage, got {type(model).__name__}")
    shipped = ship_model(client, model)
    task = dask.delayed(_candidate_partition, pure=True)
    parts = [
        task(shipped.blob, shipped.class_path, shipped.digest, src)
        for src in _user_sources(users, model, client, n_partitions)
    ]
    return dd.from_delayed(parts, meta=_meta(model, label=False), verify_meta=False)
