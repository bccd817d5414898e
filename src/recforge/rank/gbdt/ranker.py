"""GBDTRanker: learning to rank with gradient-boosted trees (LambdaMART), xgboost's ``XGBRanker``.

Rows come in query groups (e.g. one group per user: the candidates to order for that user), given
as group sizes (``group=``) or a query id per row (``qid=``). The gradients of the pairwise loss
(``rank:pairwise``, RankNet) or of LambdaMART's NDCG-weighted loss (``rank:ndcg``) are computed per
group in C++ (``csrc/include/recforge/rank_objective.hpp``); the trees are the classifier's.
"""

from __future__ import annotations

import re

import numpy as np

from ... import _core
from ..._params import keyword_init
from ..._validation import check_choice, check_int
from ...kernels import gbdt as kern
from .estimator import _DOC_PARAMS, GBDT_PARAMS, _float32, _real_target, _RealValuedGBDT

_NDCG_METRIC = re.compile(r"^ndcg(@[1-9][0-9]*)?$")
#: the shared parameters that come after the ranker's own in its signature
_LAST_PARAMS = ("n_threads", "random_state", "verbose")
_MAX_EXP_LABEL = (
    31  # 2^y - 1 gains above this lose integer precision in float32 (xgboost's limit too)
)


def query_group_pointers(group=None, qid=None, n_rows=None, *, names=("group", "qid")):
    """Rows of each query group from ``group`` (sizes) or ``qid`` (one id per row), exactly one given.

    Returns ``(order, group_ptr)``: ``order`` int64 (n_rows,) puts the rows in group order (None when
    they already are: ``group`` sizes, or a non-decreasing ``qid``), ``group_ptr`` int64
    (n_groups + 1,) so that group ``g`` is rows ``group_ptr[g]:group_ptr[g + 1]`` of the ordered data.
    """
    g_name, q_name = names
    if (group is None) == (qid is None):
        raise ValueError(
            f"give exactly one of {g_name}= (group sizes) or {q_name}= (a query id per row)"
        )
    if group is not None:
        sizes = np.asarray(group)
        if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or sizes.size == 0:
            raise ValueError(f"{g_name} must be a non-empty 1-D array of integer group sizes")
        if np.any(sizes < 0) or int(sizes.sum()) != n_rows:
            raise ValueError(
                f"{g_name} sizes must be >= 0 and sum to the {n_rows} rows of X, got "
                f"{int(sizes.sum())}"
            )
        return None, np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    ids = np.asarray(qid)
    if ids.ndim != 1 or ids.shape[0] != n_rows:
        raise ValueError(
            f"{q_name} must be 1-D with one id per row of X ({n_rows}), got shape {ids.shape}"
        )
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{q_name} must hold integer query ids, got dtype {ids.dtype}")
    order = None
    if n_rows > 1 and np.any(ids[1:] < ids[:-1]):
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
    starts = (
        np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        if n_rows
        else np.zeros(0, np.int64)
    )
    return order, np.append(starts, n_rows).astype(np.int64)


def grouped_ndcg(y, score, group_ptr, k=None, exp_gain=True):
    """Mean NDCG@k over query groups (group ``g`` = rows ``group_ptr[g]:group_ptr[g + 1]``).

    Documents are ranked by ``score`` (descending; ties in row order); gain ``2^y - 1`` (``exp_gain``)
    or ``y``, discount ``1 / log2(rank + 2)``; a group without any relevant document counts as 1
    (xgboost's ``ndcg``). ``k=None``: the whole group.
    """
    y, score = np.asarray(y, np.float64), np.asarray(score, np.float64)
    ptr = np.asarray(group_ptr, np.int64)
    n_groups = len(ptr) - 1
    gid = np.repeat(np.arange(n_groups), np.diff(ptr))
    gain = np.exp2(y) - 1.0 if exp_gain else y
    rank = (
        np.arange(len(y)) - ptr[gid]
    )  # rank of position i of a group-sorted order within its group
    weight = 1.0 / np.log2(rank + 2.0)
    if k is not None:
        weight = np.where(rank < k, weight, 0.0)
    by_score = np.lexsort((-score, gid))  # stable: ties keep row order
    by_label = np.lexsort((-y, gid))
    dcg = np.bincount(gid, weights=gain[by_score] * weight, minlength=n_groups)
    idcg = np.bincount(gid, weights=gain[by_label] * weight, minlength=n_groups)
    ratio = np.divide(dcg, idcg, out=np.ones(n_groups), where=idcg > 0)
    return float(ratio.mean()) if n_groups else float("nan")


class GBDTRanker(_RealValuedGBDT):
    __doc__ = (
        """Learning to rank by gradient-boosted trees: xgboost's ``rank:pairwise`` / ``rank:ndcg``
    (LambdaMART) with the ``hist`` trees of :class:`GBDTClassifier`, and ``XGBRanker``'s interface.

    ``fit(X, y, group=sizes)`` or ``fit(X, y, qid=ids)``: ``y`` holds graded relevance (e.g. 0/1 clicks,
    0–4 grades), rows in query groups (one per user or query). Each round, the documents of a group
    are ranked by their current score and every pair (first rank among the top
    ``lambdarank_num_pair_per_sample``, labels different) adds ``λ = (σ(s_h − s_l) − 1) Δ`` to the
    higher-labelled one's gradient and ``−λ`` to the other's (``Δ = 1`` for ``rank:pairwise``, the
    change of NDCG from swapping them for ``rank:ndcg``). ``predict`` returns scores: order each
    group's rows by them, descending.

    Pairs are always enumerated as xgboost's ``lambdarank_pair_method="topk"``; its random ``"mean"``
    sampling is not offered.
"""
        + _DOC_PARAMS.replace(
            """    base_score : float or None, default None
        Initial prediction (a probability for the classifier). None: the (weighted) mean of ``y``.
""",
            """    base_score : float or None, default None
        Initial score (None: 0; a constant does not change the ranking).
""",
        ).replace(
            """    eval_metric : str or None
        ``"logloss"`` (default), ``"error"`` or ``"auc"`` for the classifier; ``"rmse"`` for the regressor.
""",
            """    eval_metric : str or None
        ``"ndcg"`` (default, whole groups) or ``"ndcg@k"``.
    objective : {"rank:ndcg", "rank:pairwise"}, default "rank:ndcg"
    lambdarank_num_pair_per_sample : int >= 1, default 32
        Pairs start at the first this many ranks of each group (also the NDCG truncation of the
        ``rank:ndcg`` objective); at least the largest group size enumerates every pair.
    lambdarank_normalization : bool, default True
        Scale each group's gradients by ``log2(1 + S) / S``, ``S = Σ |2λ|`` (as xgboost, LightGBM).
    lambdarank_score_normalization : bool, default True
        Divide ``Δ`` by ``|s_h − s_l| + 0.01`` (xgboost >= 3.0).
    ndcg_exp_gain : bool, default True
        NDCG gain ``2^y − 1`` (labels at most 31) instead of ``y``.
""",
        )
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from recforge.rank import GBDTRanker
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3)); qid = np.repeat(np.arange(60), 10)
    >>> y = (X[:, 0] + 0.3 * rng.normal(size=600) > 0.8).astype(int)   # relevant documents
    >>> model = GBDTRanker(n_estimators=20, max_depth=3, n_threads=1).fit(X, y, qid=qid)
    >>> scores = model.predict(X[:10])                                  # one query's documents
    >>> order = np.argsort(-scores)                                     # best first
    >>> bool(np.corrcoef(model.predict(X), X[:, 0])[0, 1] > 0.8)
    True
    """
    )

    _objective = "rank:ndcg"
    _estimator_kind = None

    __init__ = keyword_init(
        {
            "objective": "rank:ndcg",
            **{k: v for k, v in GBDT_PARAMS.items() if k not in _LAST_PARAMS},
            "lambdarank_num_pair_per_sample": 32,
            "lambdarank_normalization": True,
            "lambdarank_score_normalization": True,
            "ndcg_exp_gain": True,
            **{k: GBDT_PARAMS[k] for k in _LAST_PARAMS},
        }
    )

    # ---- parameters ----------------------------------------------------------------------------
    def _check_params(self):
        check_choice(self.objective, "objective", set(kern.RANK_OBJECTIVES))
        super()._check_params()
        check_int(
            self.lambdarank_num_pair_per_sample, "lambdarank_num_pair_per_sample", min_value=1
        )
        for name in ("lambdarank_normalization", "lambdarank_score_normalization", "ndcg_exp_gain"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")

    def _metrics(self):
        return ("ndcg",)

    def _check_eval_metric(self, name):
        if not isinstance(name, str) or not _NDCG_METRIC.match(name):
            raise ValueError(f"eval_metric must be 'ndcg' or 'ndcg@k' (k >= 1), got {name!r}")

    def _higher_is_better(self, metric):
        return True

    # ---- fit -----------------------------------------------------------------------------------
    def fit(
        self,
        X,
        y,
        *,
        group=None,
        qid=None,
        sample_weight=None,
        eval_set=None,
        eval_group=None,
        eval_qid=None,
    ):
        """Fit on ``X`` (n_rows, n_features) array or DataFrame and relevance ``y`` (n_rows,), rows in
        query groups. Returns self.

        Parameters
        ----------
        group : array-like of int, optional
            Sizes of consecutive query groups (summing to n_rows).
        qid : array-like of int (n_rows,), optional
            Query id of every row (any order; rows are grouped by a stable sort). Exactly one of
            ``group`` / ``qid``.
        sample_weight : array-like (n_groups,), optional
            One weight per query group (as xgboost's ranker), in group order (ascending ``qid``).
        eval_set : list of (X, y), optional
            Scored (``eval_metric``) after every round; the first drives early stopping. Their groups
            are ``eval_group[k]`` or ``eval_qid[k]``.
        """
        self._validate_params()
        Xf = self._prepare_X(X, reset=True)
        y = self._relevance(y, len(Xf), "y")
        order, group_ptr = query_group_pointers(group, qid, len(Xf))
        if order is not None:
            Xf, y = np.take(Xf, order, axis=0), y[order]
        n_groups = len(group_ptr) - 1
        group_weight = None
        if sample_weight is not None:
            from .._base import check_sample_weight

            group_weight = check_sample_weight(
                sample_weight, n_groups, "sample_weight (one weight per group)"
            )
        evals = []
        for k, item in enumerate(eval_set or []):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(
                    "eval_set must be a list of (X, y) pairs; their groups go in eval_group/eval_qid"
                )
            Xe = self._prepare_X(item[0], reset=False, name=f"eval_set[{k}] X")
            ye = self._relevance(item[1], len(Xe), f"eval_set[{k}] y")
            eo, eptr = query_group_pointers(
                _nth(eval_group, k, "eval_group"),
                _nth(eval_qid, k, "eval_qid"),
                len(Xe),
                names=(f"eval_group[{k}]", f"eval_qid[{k}]"),
            )
            if eo is not None:
                Xe, ye = np.take(Xe, eo, axis=0), ye[eo]
            evals.append((Xe, ye, eptr))
        return self._boost(Xf, y, None, evals, group_ptr=group_ptr, group_weight=group_weight)

    def _relevance(self, y, n_rows, name):
        y = _real_target(y, name, n_rows)
        if np.any(y < 0):
            raise ValueError(f"{name} must hold relevance labels >= 0")
        if self.objective == "rank:ndcg" and self.ndcg_exp_gain and np.any(y > _MAX_EXP_LABEL):
            raise ValueError(
                f"{name} labels must be <= {_MAX_EXP_LABEL} with ndcg_exp_gain=True (gain 2^y - 1)"
            )
        return y

    def _gradient_fn(self, y, weight, n_threads, *, group_ptr, group_weight):
        y32 = _float32(y, "y")
        w32 = None if group_weight is None else _float32(group_weight, "sample_weight")
        code = kern.OBJECTIVES[self.objective]
        gh = np.empty((len(y), 2), np.float32)
        top_k = int(self.lambdarank_num_pair_per_sample)
        flags = (
            bool(self.lambdarank_normalization),
            bool(self.lambdarank_score_normalization),
            bool(self.ndcg_exp_gain),
        )

        def fill(raw, rows, ghn):
            _core.gbdt_rank_gradients(code, raw, y32, group_ptr, w32, gh, top_k, *flags, n_threads)
            np.take(gh, rows, axis=0, out=ghn)

        return fill

    def _base_margin(self, y, w):
        return 0.0 if self.base_score is None else super()._base_margin(y, w)

    def _metric(self, name, y, raw, group_ptr):
        k = int(name[5:]) if "@" in name else None
        return grouped_ndcg(y, raw, group_ptr, k=k, exp_gain=bool(self.ndcg_exp_gain))


def _nth(values, k, name):
    if values is None:
        return None
    if not isinstance(values, (list, tuple)) or k >= len(values):
        raise ValueError(f"{name} must be a list with one entry per eval_set item")
    return values[k]
