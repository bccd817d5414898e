"""GBDT training on a Dask cluster: the rows stay on the workers, which choose the splits together.

:func:`fit_gbdt` grows the trees of :class:`~recforge.rank.GBDTClassifier` /
:class:`~recforge.rank.GBDTRegressor` level by level (depth-wise growth):

1. **Shards.** Every partition of ``(X, y)`` becomes a *shard* on the worker that computed it:
   its rows as float32 (the model's input schema), its target, later its uint8 bins, margins,
   gradients and the node-ordered row buffers of the tree being grown. The shard never moves;
   every later task is pinned to its worker and updates it in place.
2. **Bins.** Numeric edges are the single machine's quantile edges (``BinMapper``) of a row
   sample gathered to the client: every row when the data has at most ``bin_sample`` rows
   (then the edges equal those of a single-machine fit on the concatenated data), else a
   Bernoulli sample of about ``bin_sample`` rows. Categorical features get every code seen in
   any partition (the exact union). The edges are broadcast; each shard bins its rows.
3. **Trees, on the workers.** One long-running task per worker holding shards grows every tree;
   the client and the scheduler are not involved until the forest is done. Per tree each shard
   adds the previous tree's leaf values to its margins, computes its gradients and the root
   histogram of its rows; per level each shard partitions its rows by the level's splits
   (:func:`~recforge.kernels.gbdt.partition_ordered`) and builds the histograms of one child per
   split — the child with the smaller hessian sum, the other is parent minus that child (the
   subtraction trick). The rows of a tree's last level are not partitioned (as on one machine):
   the next tree's first task adds each row its child's value by the split itself. The workers
   all-reduce the histograms among themselves over TCP (:mod:`._collective`: the arrays of every
   partition added in partition order, so every worker gets the same bits), and each worker then
   finds the same splits (:func:`recforge.kernels.gbdt.find_splits`) and grows the same tree.
   The forest comes back from the first worker; every worker's digest of it must agree.

The result is an ordinary fitted model (``predict``, ``save``/``load`` are the single machine's).
Its trees equal those of ``GBDTClassifier(**params).fit`` on the concatenated rows when the bins
are equal. A histogram bin is a float64 sum of float32 gradients, taken here in another order (per
shard, then across shards); such a sum is exact, so order-free, while log2(rows) plus the span of
the gradients' binary exponents stays within 29 bits (53 − 24) — then the trees are bit-identical
(as in every test). Beyond that a sum can differ in its last bits, and a split only where two
candidate gains tie to ~1e-15.

Not on a cluster: best-first growth (``max_leaves``), row subsampling (``subsample < 1``),
``eval_set`` / early stopping, sample weights.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import numpy as np

from .. import _core
from .._validation import check_int, check_random_state
from ..kernels import gbdt as kern
from ..rank import GBDTClassifier, GBDTRegressor
from ..rank._base import check_binary_target, feature_names_of, target_vector
from ..rank.gbdt._binning import BinMapper
from ..rank.gbdt._grower import GrowParams, Tree, TreeGrower
from ..rank.gbdt._input import InputSchema
from ..rank.gbdt._predict import Forest
from ..rank.gbdt.estimator import _float32, _real_target
from ._collective import Collective, CollectiveError, close_listener, open_listener
from ._compat import check_client, require_dask, worker_threads
from ._memory import reuse_freed_memory

__all__ = ["fit_gbdt"]

#: seconds between checks that the workers holding the shards are still there
LOST_WORKER_CHECK_SECONDS = 10.0
#: rows of the sample the numeric bin edges come from (the single machine's ``BinMapper`` default)
BIN_SAMPLE = 200_000


# ---------------------------------------------------------------------------------------------
# worker side: one shard per partition, updated in place by tasks pinned to its worker
# ---------------------------------------------------------------------------------------------
class _Shard:
    """One partition's rows on its worker.

    Before binning: ``Xf`` float32 (n, F) and ``y`` (the target as given). After :meth:`bin`:
    ``Xn`` uint8 (n, F) binned rows, ``ghn`` float32 (n, 2) gradients and ``rows`` int32 (n,)
    original row ids — all three in node order — plus ``raw`` float64 (n,) margins and ``y32``
    float32 (n,) in the original order. ``open_*``: the nodes of the current level (ids and
    position ranges, in the tree's order); ``leaves_*``: the finished leaves of the tree.
    """

    def __init__(self, Xf, y, index):
        self.Xf = Xf
        self.y = y
        self.n = len(Xf)
        self.index = index  # the partition's position

    def size(self):
        return self.n

    def summary(self, is_categorical, regression, sample_prob, seed):
        """Small facts for the client: the labels and their counts (classifier) or the target sum
        (regressor), every categorical code, a row sample (all rows at ``sample_prob >= 1``)."""
        if regression:
            target = (float(self.y.sum()),)
        else:
            target = np.unique(self.y, return_counts=True)
        codes = [
            np.unique(col[~np.isnan(col)]) for col in self.Xf[:, np.flatnonzero(is_categorical)].T
        ]
        if sample_prob >= 1.0:
            sample = self.Xf
        else:
            rng = np.random.default_rng([seed, self.index])
            sample = self.Xf[rng.random(self.n) < sample_prob]
        return target, codes, sample

    def bin(self, edges, offsets, is_categorical, classes, base_margin):
        n_threads = worker_threads()
        y = self.y if classes is None else check_binary_target(self.y, classes=classes)[1]
        self.y32 = _float32(y, "y")
        self.Xn = kern.bin_features(self.Xf, edges, offsets, is_categorical, n_threads=n_threads)
        del self.Xf, self.y  # the binned rows are all the trees need
        self.raw = np.full(self.n, base_margin, np.float64)
        self.rows = np.arange(self.n, dtype=np.int32)
        self.ghn = np.empty((self.n, 2), np.float32)
        self.is_categorical = np.ascontiguousarray(is_categorical, np.uint8)
        self._no_leaves()

    def _no_leaves(self):
        self.leaves_ids, self.leaves_starts, self.leaves_ends = [], [], []

    def _hist(self, starts, ends, mask):
        n_features = self.Xn.shape[1]
        if self.n == 0:
            return np.zeros((len(starts), n_features, kern.N_BINS, 2))
        return kern.build_histograms(
            self.Xn, self.ghn, None, starts, ends, feature_mask=mask, n_threads=worker_threads()
        )

    def start_tree(self, last_level, leaf_values, objective, mask):
        """Finish the last tree (its last level's splits ``last_level``: :meth:`split_level`'s
        arguments, or None) and add its leaf values to the margins; compute the gradients in node
        order and return the root histogram (1, F, 256, 2) float64 of this shard's rows.

        The last level's rows are not partitioned (as on one machine): each row of a split node
        gets its child's value by the split itself."""
        if leaf_values is not None:
            self.open_to_leaves(None if last_level is None else last_level[0])
            if self.n:
                kern.add_leaf_values(
                    self.rows,
                    np.concatenate(self.leaves_starts),
                    np.concatenate(self.leaves_ends),
                    leaf_values[np.concatenate(self.leaves_ids)],
                    self.raw,
                    n_threads=worker_threads(),
                )
            if self.n and last_level is not None:
                self._add_split_leaf_values(last_level, leaf_values)
        self._no_leaves()
        if self.n:
            _core.gbdt_gradients_at(
                kern.OBJECTIVES[objective],
                self.raw,
                self.y32,
                None,
                self.rows,
                self.ghn,
                worker_threads(),
            )
        self.open_ids = np.array([0], np.int64)
        self.open_starts = np.array([0], np.int64)
        self.open_ends = np.array([self.n], np.int64)
        return self._hist(self.open_starts, self.open_ends, mask)

    def _add_split_leaf_values(self, last_level, leaf_values):
        """``raw[r] +=`` the value of row ``r``'s child under the last level's splits."""
        ok, feature, threshold, default_left, cat_set, child_ids = last_level[:6]
        _core.gbdt_add_split_leaf_values(
            self.Xn,
            self.rows,
            self.open_starts[ok],
            self.open_ends[ok],
            np.ascontiguousarray(feature, np.int32),
            np.ascontiguousarray(threshold, np.int32),
            np.ascontiguousarray(default_left, np.uint8),
            self.is_categorical,
            np.ascontiguousarray(leaf_values[child_ids[0::2]], np.float64),
            np.ascontiguousarray(leaf_values[child_ids[1::2]], np.float64),
            self.raw,
            worker_threads(),
            None if cat_set is None else np.ascontiguousarray(cat_set, np.uint64),
        )

    def open_to_leaves(self, keep=None):
        """The open nodes (those not in ``keep``, a bool mask) become leaves."""
        done = slice(None) if keep is None else ~keep
        self.leaves_ids.append(self.open_ids[done])
        self.leaves_starts.append(self.open_starts[done])
        self.leaves_ends.append(self.open_ends[done])

    def split_level(self, ok, feature, threshold, default_left, cat_set, child_ids, build, mask):
        """Split the open nodes where ``ok`` (the others become leaves): partition their rows, open
        their children ``child_ids`` (left0, right0, left1, ...) and return the histograms of the
        children ``build`` (indices into the children), or None when ``build`` is None."""
        self.open_to_leaves(ok)
        starts, ends = self.open_starts[ok], self.open_ends[ok]
        if self.n:
            n_left = kern.partition_ordered(
                self.Xn,
                self.ghn,
                self.rows,
                starts,
                ends,
                feature,
                threshold,
                default_left,
                self.is_categorical,
                cat_sets=cat_set,
                n_threads=worker_threads(),
            )
        else:
            n_left = np.zeros(len(starts), np.int64)
        mid = starts + n_left
        self.open_ids = np.asarray(child_ids, np.int64)
        self.open_starts = np.empty(2 * len(starts), np.int64)
        self.open_ends = np.empty(2 * len(starts), np.int64)
        self.open_starts[0::2], self.open_ends[0::2] = starts, mid
        self.open_starts[1::2], self.open_ends[1::2] = mid, ends
        if build is None:
            return None
        return self._hist(self.open_starts[build], self.open_ends[build], mask)


def _make_shard(X_part, y_part, schema, regression, index):
    n = len(X_part)
    if n == 0:  # schema.transform refuses empty input; an empty partition is fine here
        Xf = np.empty((0, schema.n_features), np.float32)
    else:
        Xf = schema.transform(X_part, "X")
    y = _real_target(y_part) if regression else target_vector(y_part, "y")
    if len(y) != n:
        raise ValueError(f"y has {len(y)} rows in a partition where X has {n}")
    if not regression and y.dtype.kind == "O":  # as check_binary_target reads object labels
        y = y.astype(str) if any(isinstance(v, str) for v in y[:100]) else y.astype(np.float64)
    return _Shard(Xf, y, index)


# ---------------------------------------------------------------------------------------------
# client side
# ---------------------------------------------------------------------------------------------
def _partitions(X, y):
    """Delayed partitions of ``X`` (rows × all columns) and of ``y``, the same number of each."""
    _, dd, _ = require_dask()
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D dask array, got {X.ndim} dimensions")
        X = X.rechunk({1: -1})
        x_parts = list(X.to_delayed()[:, 0])
        meta = np.empty((0, X.shape[1]), X.dtype)
    elif isinstance(X, dd.DataFrame):
        x_parts = list(X.to_delayed())
        meta = X._meta
    else:
        raise TypeError(
            f"X must be a dask.array.Array or a dask.dataframe.DataFrame, got {type(X).__name__}"
        )
    if isinstance(y, da.Array):
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D dask array, got {y.ndim} dimensions")
        if isinstance(X, da.Array) and not any(np.isnan(X.chunks[0])):
            if y.shape[0] != X.shape[0]:
                raise ValueError(f"y has {y.shape[0]} rows but X has {X.shape[0]}")
            y = y.rechunk({0: X.chunks[0]})
        y_parts = list(y.to_delayed())
    elif isinstance(y, (dd.Series, dd.DataFrame)):
        y_parts = list(y.to_delayed())
    else:
        raise TypeError(
            f"y must be a dask.array.Array or a dask.dataframe.Series, got {type(y).__name__}"
        )
    if len(y_parts) != len(x_parts):
        raise ValueError(
            f"y has {len(y_parts)} partitions but X has {len(x_parts)}; give them the same "
            "partitions (e.g. columns of one Dask DataFrame)"
        )
    return x_parts, y_parts, meta


def _schema(meta, categorical_features):
    schema = InputSchema().fit(meta, categorical_features)
    labelled = [c for c, cats in zip(schema.columns or [], schema.categories) if cats is not None]
    if labelled:
        raise ValueError(
            f"X columns {labelled[:5]} hold labels, not numbers; on a cluster a categorical "
            "feature must hold non-negative integer codes (name it in categorical_features)"
        )
    return schema


class _LeafValues:
    """The single machine's leaf-output rule, ``TreeGrower._leaf_values`` itself
    (``-G / (H + lambda) * learning_rate`` where the node is valid), which reads only ``self.p``."""

    _leaf_values = TreeGrower._leaf_values

    def __init__(self, params: GrowParams):
        self.p = params

    def __call__(self, sums):
        """Leaf outputs of nodes with (gradient, hessian) sums ``sums`` float64 (k, 2): (k,)."""
        return self._leaf_values(sums)


def _wait_raising(futures):
    """Wait for ``futures`` without moving their results; re-raise the first task error."""
    from distributed import wait

    wait(futures)
    for future in futures:
        if future.status == "error":
            future.result()


class _Cluster:
    """The shards' futures and the worker holding each. One task per worker and call runs the
    method on each of that worker's shards (one scheduler hop per round trip, whatever the number
    of partitions); results come back in partition order."""

    def __init__(self, client, shards):
        self.client = client
        self.shards = shards
        holders = client.who_has(shards)
        self.workers = [sorted(holders[s.key])[0] for s in shards]
        self.groups = {}  # worker -> partition indices, ascending
        for q, worker in enumerate(self.workers):
            self.groups.setdefault(worker, []).append(q)

    def gather(self, method, *args):
        """``[shard.method(*args) for shard in shards]``, run where the shards are."""
        futures = {
            worker: self.client.submit(
                _call_each,
                method,
                args,
                *[self.shards[q] for q in parts],
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for worker, parts in self.groups.items()
        }
        self._wait(list(futures.values()))
        results = [None] * len(self.shards)
        for worker, values in zip(futures, self.client.gather(list(futures.values()))):
            for q, value in zip(self.groups[worker], values):
                results[q] = value
        return results

    def _wait(self, futures, on_error=None):
        """Wait for ``futures``; a shard's worker leaving the cluster raises instead of hanging
        (its tasks may run nowhere else: the shard's state lived there). ``on_error()`` is called
        once, as soon as one of ``futures`` has failed (to release the others)."""
        from distributed import wait

        while True:
            try:
                wait(
                    futures,
                    timeout=LOST_WORKER_CHECK_SECONDS,
                    return_when="ALL_COMPLETED" if on_error is None else "FIRST_COMPLETED",
                )
            except TimeoutError:
                alive = set(self.client.scheduler_info()["workers"])
                lost = sorted(set(self.groups) - alive)
                if lost:
                    raise RuntimeError(
                        f"worker(s) {lost} left the cluster during fit_gbdt; the rows they held "
                        "are gone: fit again"
                    ) from None
                continue
            if all(f.done() for f in futures):
                return
            if on_error is not None and any(f.status == "error" for f in futures):
                on_error()
                on_error = None


def _call_each(method, args, *shards):
    return [getattr(shard, method)(*args) for shard in shards]


def _bin_mapper(summaries, is_categorical, max_bin):
    """The bin edges: numeric from the gathered sample, categorical from every partition's codes."""
    n_features = len(is_categorical)
    sample = np.concatenate([s[2] for s in summaries])
    mapper = BinMapper(max_bin=max_bin, subsample=None).fit(sample, is_categorical)
    cat_features = np.flatnonzero(is_categorical)
    edges = list(mapper.edges_)
    for j, f in enumerate(cat_features):
        codes = np.unique(np.concatenate([s[1][j] for s in summaries]))
        if codes.size > kern.MAX_BIN:
            raise ValueError(
                f"categorical feature {f} has {codes.size} categories; at most "
                f"{kern.MAX_BIN} are supported"
            )
        edges[f] = codes.astype(np.float32)
    offsets = np.zeros(n_features + 1, np.int64)
    offsets[1:] = np.cumsum([len(e) for e in edges])
    flat = np.concatenate(edges).astype(np.float32) if offsets[-1] else np.zeros(0, np.float32)
    return BinMapper.from_state(flat, offsets, is_categorical, max_bin=max_bin)


def _check_supported(model):
    model._check_params()
    if model.max_leaves is not None:
        raise ValueError(
            "max_leaves (best-first growth) is not available on a cluster; use max_depth"
        )
    if model.subsample < 1.0:
        raise ValueError("subsample < 1 is not available on a cluster; use subsample=1.0")
    if model.early_stopping_rounds is not None:
        raise ValueError(
            "early_stopping_rounds needs an eval_set, which a cluster fit does not take"
        )


def fit_gbdt(
    X,
    y,
    client,
    *,
    regression=False,
    categorical_features="auto",
    bin_sample=BIN_SAMPLE,
    **params,
):
    """Fit a :class:`~recforge.rank.GBDTClassifier` (or ``GBDTRegressor``) on rows spread over a
    Dask cluster; see the module docstring for the protocol.

    Parameters
    ----------
    X : dask.array.Array (n_rows, n_features) or dask.dataframe.DataFrame
        Numeric features; NaN is missing. Categorical features hold non-negative integer codes
        and are named in ``categorical_features``.
    y : dask.array.Array (n_rows,) or dask.dataframe.Series
        The same partitions as ``X`` (the same number, the same rows in each). Two class labels,
        or real values with ``regression=True``.
    client : distributed.Client
    regression : bool, default False
        Fit a ``GBDTRegressor`` (``reg:squarederror``) instead of the classifier.
    categorical_features : "auto", None, array of int/str or bool mask
        As for the single-machine model.
    bin_sample : int >= 1 or None, default 200_000
        Rows gathered to the client for the numeric bin edges (None: every row).
    **params
        The model's hyper-parameters (``n_estimators``, ``max_depth``, ``learning_rate``,
        ``reg_lambda``, ``min_child_weight``, ``gamma``, ``colsample_bytree``, ``max_bin``,
        ``base_score``, ``random_state``; ``n_threads`` applies to the returned model, the workers
        use their own threads).

    Returns
    -------
    GBDTClassifier or GBDTRegressor
        Fitted, with the same trees as the single-machine fit on the concatenated rows and the
        same bins (structure equal; values equal up to the float order of histogram sums).

    Examples
    --------
    On a cluster (not run as a doctest)::

        import dask.array as da
        from recforge.distributed import fit_gbdt
        X = da.from_array(features, chunks=(100_000, -1)); y = da.from_array(labels, 100_000)
        model = fit_gbdt(X, y, client, n_estimators=100, max_depth=6)
        model.predict_proba(features[:5])
    """
    check_client(client)
    cls = GBDTRegressor if regression else GBDTClassifier
    model = cls(categorical_features=categorical_features, **params)
    _check_supported(model)
    if bin_sample is not None:
        bin_sample = check_int(bin_sample, "bin_sample", min_value=1)
    t_start = time.perf_counter()
    x_parts, y_parts, meta = _partitions(X, y)
    schema = _schema(meta, categorical_features)
    is_cat = schema.is_categorical
    rng = check_random_state(model.random_state)

    # 1. shards on the workers
    x_futures = client.compute(x_parts)
    y_futures = client.compute(y_parts)
    shards = [
        client.submit(_make_shard, xf, yf, schema, bool(regression), q, pure=False)
        for q, (xf, yf) in enumerate(zip(x_futures, y_futures))
    ]
    _wait_raising(shards)  # bad input raises here, on the client; the shards stay where they are
    del x_futures, y_futures
    cluster = _Cluster(client, shards)
    sizes = cluster.gather("size")
    n_rows = int(sum(sizes))
    if n_rows == 0:
        raise ValueError("X has 0 rows; GBDT needs at least one")

    # 2. targets, bins and the base margin
    sample_prob, seed = 1.0, 0
    if bin_sample is not None and n_rows > bin_sample:
        sample_prob, seed = bin_sample / n_rows, int(rng.integers(2**63))
    summaries = cluster.gather("summary", is_cat, bool(regression), sample_prob, seed)
    classes = None
    if regression:
        mean = sum(s[0][0] for s in summaries) / n_rows
    else:
        labels = np.concatenate([s[0][0] for s in summaries])
        classes = check_binary_target(labels)[0]
        counts = {}
        for s in summaries:
            for label, count in zip(*s[0]):
                counts[label] = counts.get(label, 0) + int(count)
        mean = counts.get(classes[1], 0) / n_rows
        model.classes_ = classes
    max_bin = min(int(model.max_bin), kern.MAX_BIN)
    mapper = _bin_mapper(summaries, is_cat, max_bin)
    del summaries
    base_margin = model._base_margin(np.array([mean]), None)
    if not np.isfinite(base_margin):
        raise ValueError(f"the base margin (the mean of y) is {base_margin}: y is too large")
    edges, offsets = mapper.get_state()
    cluster.gather("bin", edges, offsets, is_cat, classes, base_margin)
    binning_seconds = time.perf_counter() - t_start

    # 3. the trees
    t_train = time.perf_counter()
    forest = _train_on_workers(model, cluster, mapper, rng)
    model._schema = schema
    model.n_features_in_ = schema.n_features
    model._set_feature_names(feature_names_of(meta))
    model._forest, model._mapper, model.base_margin_ = forest, mapper, base_margin
    model.n_trees_ = forest.n_trees
    model.best_iteration_, model.best_score_ = forest.n_trees - 1, None
    model.evals_result_ = {}
    model.binning_seconds_ = binning_seconds
    model.training_seconds_ = time.perf_counter() - t_train
    return model


def _column_masks(model, n_features, rng):
    """The single machine's per-tree column draws, in the same order: uint8 (n_trees, F), or
    None when every column is used."""
    n_col = max(1, round(float(model.colsample_bytree) * n_features))
    if n_col >= n_features:
        return None
    masks = np.zeros((int(model.n_estimators), n_features), np.uint8)
    for mask in masks:
        mask[rng.choice(n_features, n_col, replace=False)] = 1
    return masks


def _train_on_workers(model, cluster, mapper, rng):
    """Grow the forest with one long-running task per worker (see the module docstring);
    returns the forest, checked to be the same on every worker."""
    client = cluster.client
    masks = _column_masks(model, len(mapper.n_bins_), rng)
    workers = list(cluster.groups)  # ranked by their first partition
    placement = [cluster.groups[worker] for worker in workers]
    token = uuid.uuid4().hex
    addresses = [None] * len(workers)
    if len(workers) > 1:
        opened = [
            client.submit(
                open_listener, token, rank, workers=[w], allow_other_workers=False, pure=False
            )
            for rank, w in enumerate(workers)
        ]
        cluster._wait(opened)  # raises if a worker has left
        addresses = client.gather(opened)
    futures = [
        client.submit(
            _train_rank,
            token,
            rank,
            addresses,
            placement,
            model,
            mapper,
            masks,
            *[cluster.shards[q] for q in placement[rank]],
            workers=[worker],
            allow_other_workers=False,
            pure=False,
        )
        for rank, worker in enumerate(workers)
    ]

    def release_listeners():  # a rank that failed before joining must not keep its peers waiting
        client.run(close_listener, token, workers=workers)

    cluster._wait(futures, on_error=release_listeners if len(workers) > 1 else None)
    failed = [f for f in futures if f.status == "error"]
    if failed:  # the first cause, not a peer's "connection closed" that followed it
        causes = [f.exception() for f in failed]
        first = next((e for e in causes if not isinstance(e, CollectiveError)), causes[0])
        raise first
    results = client.gather(futures)
    digests = {digest for digest, _ in results}
    if len(digests) != 1:  # every rank grew the forest: they must agree
        raise RuntimeError("fit_gbdt: the workers grew different forests (please report)")
    forest = Forest(category_codes=mapper.edges_)
    for tree in results[0][1]:
        forest.append(tree)
    return forest


def _train_rank(token, rank, addresses, placement, model, mapper, masks, *shards):
    """One worker's part of the fit: every tree grown here from the all-reduced histograms of
    its ``shards`` (partitions ``placement[rank]``). Returns ``(digest of the trees, trees)``;
    the trees only on rank 0."""
    indices = placement[rank]
    try:
        with Collective(token, rank, addresses, placement) as collective, reuse_freed_memory():

            def summed(method, *args):
                blocks = [(q, getattr(s, method)(*args)) for q, s in zip(indices, shards)]
                return collective.sum_in_order(blocks)

            trees = _grow_forest(model, summed, mapper, masks)
    finally:
        close_listener(token, rank)
    digest = hashlib.sha256()
    for tree in trees:
        for name in sorted(tree):
            digest.update(np.ascontiguousarray(tree[name]).tobytes())
    return digest.hexdigest(), trees if rank == 0 else None


def _grow_forest(model, summed, mapper, masks):
    """The trees (a list of ``Tree.arrays()``), ``summed(method, *args)`` giving the histograms
    of the shards' ``method`` added over every partition."""
    objective = model._objective
    params = GrowParams(
        model.max_depth,
        model.max_leaves,
        float(model.min_child_weight),
        float(model.reg_lambda),
        float(model.gamma),
        float(model.learning_rate),
        **model._categorical_search(),
    )
    trees = []
    leaf_values = last_level = None
    for it in range(int(model.n_estimators)):
        mask = None if masks is None else masks[it]
        hist = summed("start_tree", last_level, leaf_values, objective, mask)
        with np.errstate(invalid="ignore"):
            if not np.isfinite(hist.sum()):
                raise model._diverged(f"non-finite gradients before tree {it}")
        tree, last_level = _grow_tree(model, summed, mapper, hist, mask, params)
        if not np.all(np.isfinite(tree["value"])):
            raise model._diverged(f"tree {it} has non-finite leaf values")
        trees.append(tree)
        leaf_values = tree["value"]
    return trees


def _grow_tree(model, summed, mapper, hist, mask, params):
    """One depth-wise tree from the summed root histogram, as ``TreeGrower._grow_depthwise``.

    Returns the tree's arrays and its last level's splits when that level reached ``max_depth``
    (the shards apply them at the start of the next tree: one all-reduce less per tree)."""
    is_cat = mapper.is_categorical_.astype(np.uint8)
    thr_table = mapper.threshold_table_
    max_depth = model.max_depth
    f = 0 if mask is None else int(np.flatnonzero(mask)[0])
    sums = hist[0, f].sum(axis=0).reshape(1, 2)  # every feature's bins add up to the totals
    tree = Tree(min(2 ** (max_depth + 1) - 1, 4096))
    leaf_output = _LeafValues(params)
    tree.add(0, sums[:, 1], leaf_output(sums))
    ids, depth = np.array([0]), 0
    while depth < max_depth:
        split = kern.find_splits(
            hist,
            sums[:, 0],
            sums[:, 1],
            mapper.n_bins_,
            is_cat,
            feature_mask=mask,
            reg_lambda=params.reg_lambda,
            gamma=params.gamma,
            min_child_weight=params.min_child_weight,
            n_threads=worker_threads(),
            **params.cat_kwargs(),
        )
        ok = split[0] >= 0
        if not ok.any():
            break
        ids, sums = ids[ok], sums[ok]
        if not ok.all():
            hist = hist[ok]
        feature, threshold, dleft, chg, lg, lh, cat_set = (
            np.ascontiguousarray(a[ok]) for a in split
        )
        depth += 1
        k = len(ids)
        child_sums = np.empty((2 * k, 2))
        child_sums[0::2] = np.column_stack([lg, lh])
        child_sums[1::2] = sums - child_sums[0::2]
        child = tree.add(np.full(2 * k, depth), child_sums[:, 1], leaf_output(child_sums))
        tree.set_split(
            ids,
            feature,
            threshold,
            dleft,
            chg,
            child[0::2],
            child[1::2],
            cat_set,
            thr_table,
            is_cat,
        )
        last = depth >= max_depth
        # each shard builds one child per split, the one with the smaller hessian sum
        build = None if last else 2 * np.arange(k) + (child_sums[1::2, 1] < child_sums[0::2, 1])
        args = (ok, feature, threshold, dleft, cat_set, child, build, mask)
        if last:
            return tree.arrays(), args
        built = summed("split_level", *args)
        sibling = np.subtract(hist, built, out=hist)  # the parents are not needed any more
        hist = np.empty((2 * k, *built.shape[1:]))
        hist[build] = built
        hist[build ^ 1] = sibling
        ids, sums = child, child_sums
    return tree.arrays(), None
