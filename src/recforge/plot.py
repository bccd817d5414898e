"""Figures for recall and rank results (optional extra ``recforge[plot]``: matplotlib).

Every function takes plain numbers (dicts, arrays, DataFrames) or a fitted model's public attributes
and returns a :class:`matplotlib.figure.Figure`. Figures are built with matplotlib's object API, so
nothing here touches ``pyplot``'s global state or picks a backend: show one in a notebook by
leaving it as the cell's value, or save it with ``fig.savefig("x.png")``.

=============================  =========================================================
:func:`metrics_at_k`           recall metrics against k, one line per model
:func:`funnel`                 a pipeline funnel: each source's recall@N, the candidate
                               ceiling, the final list
:func:`roc_curve`              ROC curves of rankers (with their AUC)
:func:`precision_recall_curve` precision–recall curves of rankers (with average precision)
:func:`calibration`            predicted probability against the observed positive rate
:func:`learning_curves`        metric or loss per iteration (``evals_result_``,
                               ``loss_history_``)
:func:`feature_importance`     the largest GBDT feature importances
:func:`embedding_neighbours`   an item and its nearest neighbours in embedding space (2-D PCA)
=============================  =========================================================
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "calibration",
    "embedding_neighbours",
    "feature_importance",
    "funnel",
    "learning_curves",
    "metrics_at_k",
    "precision_recall_curve",
    "require_matplotlib",
    "roc_curve",
]

INSTALL_HINT = 'pip install "recforge[plot]"'


def require_matplotlib():
    """Import matplotlib, or raise ``ImportError`` naming the ``pip install`` that provides it."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"recforge.plot needs matplotlib: {INSTALL_HINT}") from exc
    return matplotlib


def _figure(n_axes: int = 1, *, width: float = 6.4, height: float = 4.0):
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_axes, height), layout="constrained")
    axes = [fig.add_subplot(1, n_axes, i + 1) for i in range(n_axes)]
    return fig, axes


def _named_series(values, name: str) -> dict:
    """``{label: 1-D float array}`` from a mapping or a single array-like (labelled ``""``)."""
    if isinstance(values, Mapping):
        out = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in values.items()}
    else:
        out = {"": np.asarray(values, dtype=np.float64).ravel()}
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _binary_labels(y_true, n: int | None = None) -> np.ndarray:
    y = np.asarray(y_true).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if n is not None and y.size != n:
        raise ValueError(f"y_true has {y.size} labels but the scores have {n} values")
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("y_true must hold both classes (0 and 1)")
    return y.astype(np.int8)


def _scores(y_true, scores) -> tuple[np.ndarray, dict]:
    series = _named_series(scores, "scores")
    n = {v.size for v in series.values()}
    if len(n) != 1:
        raise ValueError(
            f"every score array must have one value per label; got lengths {sorted(n)}"
        )
    for label, v in series.items():
        if not np.isfinite(v).all():
            raise ValueError(f"scores {label!r} hold NaN or inf")
    return _binary_labels(y_true, n.pop()), series


def _curve_points(y: np.ndarray, s: np.ndarray):
    """Cumulative true / false positives at each distinct threshold, highest score first."""
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64)


def metrics_at_k(curves, metrics=("recall", "ndcg")):
    """Recall metrics against the list length k, one line per model and one panel per metric.

    Parameters
    ----------
    curves : dict or pandas.DataFrame
        ``{model: [{"k": 5, "recall": 0.1, ...}, ...]}`` (the ``"curve"`` of a row of
        :func:`recforge.demo.run_recall_models`, or :meth:`RecallReport.as_dict` per k), or a long
        DataFrame with columns ``model``, ``k`` and the metrics.
    metrics : sequence of str
        Keys to plot, e.g. ``("precision", "recall", "ndcg", "hit_rate", "coverage")``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import metrics_at_k
    >>> fig = metrics_at_k({"popularity": [{"k": 5, "recall": 0.03, "ndcg": 0.06},
    ...                                    {"k": 10, "recall": 0.05, "ndcg": 0.07}]})
    >>> [ax.get_title() for ax in fig.axes]
    ['recall@k', 'ndcg@k']
    """
    if hasattr(curves, "groupby"):
        curves = {
            model: part.to_dict("records") for model, part in curves.groupby("model", sort=False)
        }
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            "curves must be a non-empty {model: [{'k': ..., metric: ...}, ...]} or DataFrame"
        )
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    fig, axes = _figure(len(metrics), width=4.8)
    for ax, metric in zip(axes, metrics):
        for model, points in curves.items():
            points = sorted(points, key=lambda p: p["k"])
            missing = [p["k"] for p in points if metric not in p]
            if missing:
                raise KeyError(f"curves[{model!r}] has no {metric!r} at k={missing[0]}")
            ax.plot(
                [p["k"] for p in points], [p[metric] for p in points], marker="o", label=str(model)
            )
        ax.set(title=f"{metric}@k", xlabel="k", ylabel=metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return fig


def funnel(sources, ceiling: float, final: float, *, n: int | None = None, k: int | None = None):
    """The recall → rank funnel: each source's recall@N, the candidates' ceiling, the final list.

    Takes plain numbers (the pipeline's report, or your own measurements).

    Parameters
    ----------
    sources : dict or pandas.Series
        Source name → its recall@N (fraction of test items among its N candidates), in [0, 1].
    ceiling : float
        Recall of the merged candidate set: no ranker can exceed it.
    final : float
        Recall@k of the final ranked list.
    n, k : int, optional
        Candidate count and final list length, for the labels.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import funnel
    >>> fig = funnel({"itemcf": 0.31, "item2vec": 0.24}, ceiling=0.42, final=0.12, n=200, k=10)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['itemcf recall@200', 'item2vec recall@200', 'candidates (ceiling)', 'final recall@10']
    """
    if hasattr(sources, "to_dict"):
        sources = sources.to_dict()
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError("sources must be a non-empty {source: recall@N} mapping")
    at_n = f"@{n}" if n is not None else "@N"
    labels = [f"{name} recall{at_n}" for name in sources] + [
        "candidates (ceiling)",
        f"final recall@{k if k is not None else 'k'}",
    ]
    values = np.array([*sources.values(), ceiling, final], dtype=np.float64)
    if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
        raise ValueError(f"funnel values must be recalls in [0, 1], got {values.tolist()}")
    fig, (ax,) = _figure(height=0.5 * len(values) + 1.2)
    colors = ["#8da0cb"] * len(sources) + ["#66c2a5", "#fc8d62"]
    y = np.arange(len(values))
    ax.barh(y, values, color=colors)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:.3f}", va="center")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(xlim=(0, min(1.0, values.max() * 1.25 + 1e-9)), xlabel="recall", title="Pipeline funnel")
    return fig


def roc_curve(y_true, scores):
    """ROC curves (true against false positive rate) of one or several rankers.

    Parameters
    ----------
    y_true : array-like of shape (n,), 0/1
    scores : array-like of shape (n,) or dict of name → array-like of shape (n,)
        Predicted probabilities (or any scores: higher = more likely positive).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import roc_curve
    >>> fig = roc_curve([0, 0, 1, 1], {"LR": [0.1, 0.4, 0.35, 0.8]})
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'LR (AUC 0.750)'
    """
    from .metrics import roc_auc_score

    y, series = _scores(y_true, scores)
    fig, (ax,) = _figure(width=4.8, height=4.4)
    for label, s in series.items():
        tp, fp = _curve_points(y, s)
        auc = roc_auc_score(y, s)
        ax.plot(
            np.r_[0, fp / fp[-1] if fp[-1] else fp],
            np.r_[0, tp / tp[-1]],
            label=f"{label} (AUC {auc:.3f})".strip(),
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize="small")
    return fig


def precision_recall_curve(y_true, scores):
    """Precision against recall of one or several rankers, with the average precision in the legend.

    Parameters and return as :func:`roc_curve`.

    Examples
    --------
    >>> from recforge.plot import precision_recall_curve
    >>> fig = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fig.axes[0].get_xlabel()
    'recall'
    """
    y, series = _scores(y_true, scores)
    fig, (ax,) = _figure(width=4.8, height=4.4)
    for label, s in series.items():
        tp, fp = _curve_points(y, s)
        precision, recall = tp / (tp + fp), tp / tp[-1]
        average_precision = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
        ax.step(
            np.r_[0, recall],
            np.r_[precision[0], precision],
            where="post",
            label=f"{label} (AP {average_precision:.3f})".strip(),
        )
    ax.axhline(
        y.mean(), color="grey", linestyle=":", linewidth=1, label=f"base rate {y.mean():.3f}"
    )
    ax.set(
        xlabel="recall", ylabel="precision", title="Precision–recall", xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="upper right", fontsize="small")
    return fig


def calibration(y_true, proba, n_bins: int = 10):
    """Reliability diagram: mean predicted probability against the observed positive rate per bin.

    Parameters
    ----------
    y_true : array-like of shape (n,), 0/1
    proba : array-like of shape (n,) in [0, 1], or dict of name → such arrays
    n_bins : int, default 10
        Equal-width probability bins; empty bins are left out.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import calibration
    >>> fig = calibration([0, 1, 0, 1], {"LR": [0.2, 0.7, 0.1, 0.9]}, n_bins=5)
    >>> fig.axes[0].get_title()
    'Calibration'
    """
    from ._validation import check_int

    n_bins = check_int(n_bins, "n_bins", min_value=1)
    y, series = _scores(y_true, proba)
    fig, (ax,) = _figure(width=4.8, height=4.4)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for label, p in series.items():
        if p.min() < 0 or p.max() > 1:
            raise ValueError(f"proba {label!r} must be probabilities in [0, 1]")
        bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
        count = np.bincount(bins, minlength=n_bins)
        used = count > 0
        mean_p = np.bincount(bins, weights=p, minlength=n_bins)[used] / count[used]
        rate = np.bincount(bins, weights=y, minlength=n_bins)[used] / count[used]
        ax.plot(mean_p, rate, marker="o", label=label or None)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
        title="Calibration",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    if any(series):
        ax.legend(loc="upper left", fontsize="small")
    return fig


def _flatten_histories(histories) -> dict:
    """``evals_result_`` shapes → ``{label: values}``: list, dict of lists, GBDT's dict of dicts."""
    if not isinstance(histories, Mapping):
        return _named_series(histories, "histories")
    flat = {}
    for name, value in histories.items():
        if isinstance(value, Mapping):
            for metric, values in value.items():
                flat[f"{name} {metric}"] = np.asarray(values, dtype=np.float64).ravel()
        else:
            flat[str(name)] = np.asarray(value, dtype=np.float64).ravel()
    if not flat:
        raise ValueError("histories is empty")
    return flat


def learning_curves(histories, *, ylabel: str = "metric", title: str = "Learning curves"):
    """One line per history: a metric or a loss per iteration (boosting round, epoch).

    Parameters
    ----------
    histories : list, dict of lists, or dict of dicts of lists
        A ranker's ``evals_result_`` (a list for LR / DNN / Wide&Deep,
        ``{"validation_0": {"logloss": [...]}}`` for GBDT), LFM's ``loss_history_``, or
        ``{"model": history, ...}`` to compare models.
    ylabel, title : str

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import learning_curves
    >>> fig = learning_curves({"validation_0": {"logloss": [0.6, 0.45, 0.4]}}, ylabel="log-loss")
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'validation_0 logloss'
    """
    flat = _flatten_histories(histories)
    fig, (ax,) = _figure()
    for label, values in flat.items():
        if values.size == 0:
            raise ValueError(f"history {label!r} is empty (was the model fitted with an eval_set?)")
        ax.plot(np.arange(1, values.size + 1), values, label=label or None)
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if any(flat):
        ax.legend(fontsize="small")
    return fig


def feature_importance(importances, names=None, *, top: int = 20):
    """Horizontal bars of the ``top`` largest importances.

    Parameters
    ----------
    importances : array-like of shape (n_features,), or a fitted model with ``feature_importances_``
        (its ``feature_names_in_`` become the names).
    names : sequence of str, optional
        Feature names (default: the model's, else ``f0, f1, ...``).
    top : int, default 20

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from recforge.plot import feature_importance
    >>> fig = feature_importance([0.1, 0.6, 0.3], ["age", "education", "hours"], top=2)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['education', 'hours']
    """
    from ._validation import check_int

    top = check_int(top, "top", min_value=1)
    if hasattr(importances, "feature_importances_"):
        if names is None:
            names = getattr(importances, "feature_names_in_", None)
        importances = importances.feature_importances_
    values = np.asarray(importances, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("importances must be a non-empty array of finite numbers")
    names = [f"f{i}" for i in range(values.size)] if names is None else [str(n) for n in names]
    if len(names) != values.size:
        raise ValueError(f"names has {len(names)} entries for {values.size} importances")
    order = np.argsort(-values, kind="stable")[:top]
    fig, (ax,) = _figure(height=0.3 * len(order) + 1.2)
    ax.barh(np.arange(len(order)), values[order], color="#66c2a5")
    ax.set_yticks(np.arange(len(order)), [names[i] for i in order])
    ax.invert_yaxis()
    ax.set(
        xlabel="importance (share of total gain)", title=f"Feature importance (top {len(order)})"
    )
    return fig


def embedding_neighbours(vectors, ids, item, *, k: int = 10, labels=None):
    """An item and its ``k`` nearest neighbours (cosine) in embedding space, in 2-D by PCA.

    Parameters
    ----------
    vectors : array-like of shape (n_items, dim)
        Item embeddings, e.g. ``Item2Vec.item_vectors_``.
    ids : array-like of shape (n_items,)
        The external id of each row, e.g. ``model.item_map_.ids``.
    item
        The query item's id.
    k : int, default 10
    labels : mapping id → str, optional
        Text shown for an id (e.g. movie titles); default the id itself.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from recforge.plot import embedding_neighbours
    >>> vectors = np.random.default_rng(0).normal(size=(50, 8))
    >>> fig = embedding_neighbours(vectors, np.arange(50), 3, k=5)
    >>> fig.axes[0].get_title()
    '3\\nand its 5 nearest neighbours (cosine)'
    """
    from ._validation import check_2d_float, check_int

    x = check_2d_float(vectors, "vectors", dtype=np.float64)
    ids = np.asarray(ids).ravel()
    if ids.size != x.shape[0]:
        raise ValueError(f"ids has {ids.size} entries for {x.shape[0]} vectors")
    k = check_int(k, "k", min_value=1, max_value=max(1, x.shape[0] - 1))
    where = np.flatnonzero(ids == item)
    if where.size == 0:
        raise KeyError(f"item {item!r} is not among ids")
    q = int(where[0])
    norms = np.linalg.norm(x, axis=1)
    cosine = (x @ x[q]) / np.where(norms * norms[q] > 0, norms * norms[q], 1.0)
    cosine[q] = -np.inf
    neighbours = np.argsort(-cosine, kind="stable")[:k]
    shown = np.r_[q, neighbours]
    centred = x[shown] - x[shown].mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred @ vt[:1].T, np.zeros(len(shown))]
    fig, (ax,) = _figure(width=6.4, height=5.0)
    ax.scatter(xy[1:, 0], xy[1:, 1], c=cosine[neighbours], cmap="viridis", s=40, label="neighbours")
    ax.scatter(xy[:1, 0], xy[:1, 1], marker="*", s=250, color="#d62728", label="query")
    text = (
        (lambda i: str(labels.get(ids[i].item() if hasattr(ids[i], "item") else ids[i], ids[i])))
        if labels is not None
        else (lambda i: str(ids[i]))
    )
    for (px, py), i in zip(xy, shown):
        ax.annotate(text(i)[:28], (px, py), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(f"{text(q)[:40]}\nand its {k} nearest neighbours (cosine)", fontsize="medium")
    ax.set(xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize="small")
    return fig
