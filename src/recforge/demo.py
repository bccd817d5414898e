"""The ``recforge demo`` job: every available model on the bundled data, one table each.

Recall models run on MovieLens ml-latest-small with the protocol of ``evaluate_recall``: positives
are ratings >= 4, each user's last 20 % of positives by time go to test. Rankers run on UCI Adult.
Later models add themselves to :data:`RECALL_MODELS` / :data:`RANKERS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def _popularity(n_threads):
    from .recall import Popularity

    return Popularity(n_threads=n_threads)


def _lr(n_threads):
    """LR on one-hot + 20 quantile buckets + standardised numerics (the encoder lives in the model), C=0.3."""
    from .features import FeatureEncoder
    from .rank import LogisticRegression

    return LogisticRegression(C=0.3, encoder=FeatureEncoder(n_bins=20), n_threads=n_threads)


def _dnn(n_threads):
    """DNN: embeddings 8 of every categorical column and numeric bucket + standardised numerics,
    128-64-32 ReLU, Adam 1e-3, batch 256, 5 epochs."""
    from .features import FeatureEncoder
    from .rank import DNN

    return DNN(encoder=FeatureEncoder(), random_state=0, n_threads=n_threads)


def _wide_deep(n_threads):
    """Wide&Deep: the DNN above + a wide part on one-hot features and the crosses education x occupation,
    native_country x occupation, trained jointly with Adam."""
    from .features import FeatureEncoder
    from .rank import WideDeep

    crosses = [("education", "occupation"), ("native_country", "occupation")]
    return WideDeep(encoder=FeatureEncoder(crosses=crosses), random_state=0, n_threads=n_threads)


def _gbdt(n_threads):
    """GBDT: 300 trees of depth 6, eta 0.1, reg_lambda 5, on the raw DataFrame (categories as categories)."""
    from .rank import GBDTClassifier

    return GBDTClassifier(
        n_estimators=300, max_depth=6, learning_rate=0.1, reg_lambda=5, n_threads=n_threads
    )


def _gbdt_lr(n_threads):
    """GBDT+LR: 50 trees of depth 5 → leaf one-hot + original buckets → LR (C=0.1)."""
    from .rank import GBDTLR

    return GBDTLR(n_threads=n_threads)


def _itemcf(n_threads):
    from .recall import ItemCF

    return ItemCF(n_threads=n_threads)


def _usercf(n_threads):
    from .recall import UserCF

    return UserCF(n_threads=n_threads)


def _personal_rank(n_threads):
    from .recall import PersonalRank

    return PersonalRank(n_threads=n_threads)


def _content_based(n_threads):
    from .recall import ContentBased

    return ContentBased(n_threads=n_threads)


def _genres(movielens):
    """ContentBased's side information: the MovieLens genres as item topics."""
    from .recall.content_based import genre_topics

    return {"item_features": genre_topics(movielens.movies)}


def _lfm(n_threads):
    from .recall import LFM

    return LFM(n_threads=n_threads, random_state=0)


def _item2vec(n_threads):
    from .recall import Item2Vec

    return Item2Vec(n_threads=n_threads, random_state=0)


#: (row name, factory(n_threads) -> unfitted recall model[, fit_kwargs(movielens) -> extra fit arguments])
RECALL_MODELS = [
    ("popularity", _popularity),
    ("itemcf", _itemcf),
    ("usercf", _usercf),
    ("personal_rank", _personal_rank),
    ("content_based", _content_based, _genres),
    ("lfm (bpr)", _lfm),
    ("item2vec", _item2vec),
]
#: (row name, factory(n_threads) -> unfitted ranker with fit/predict_proba)
RANKERS: list = [
    ("LR", _lr),
    ("GBDT", _gbdt),
    ("GBDT+LR", _gbdt_lr),
    ("DNN", _dnn),
    ("Wide&Deep", _wide_deep),
]


#: The row name of the two-stage pipeline (recall sources → candidates → features → ranker).
PIPELINE = "pipeline"


def _run_pipeline(movielens, train, test, k, n_threads) -> dict:
    """The default TwoStage on the recall split (genres as item features): its funnel and fit time."""
    from .pipeline import TwoStage, evaluate_pipeline
    from .recall.content_based import genre_topics

    model = TwoStage(n_threads=n_threads, random_state=0)
    start = time.perf_counter()
    model.fit(train, item_features=genre_topics(movielens.movies))
    fit_seconds = time.perf_counter() - start
    report = evaluate_pipeline(model, train, test, k=k)
    return {"report": report, "fit_s": fit_seconds, "training": model.training_summary_}


@dataclass
class DemoResult:
    """What the demo measured: data summaries and one row per model."""

    movielens: dict = field(default_factory=dict)
    recall_rows: list = field(default_factory=list)
    adult: dict = field(default_factory=dict)
    rank_rows: list = field(default_factory=list)
    #: The fitted recall models and rankers, the Adult test labels and each ranker's test
    #: probabilities (what the report's figures are drawn from).
    recall_models: dict = field(default_factory=dict)
    y_test: object = None
    rank_proba: dict = field(default_factory=dict)
    rankers: dict = field(default_factory=dict)
    pipeline: dict = field(default_factory=dict)


def split_summary(ratings, positives, train, test) -> dict:
    """Counts of the recall protocol's data: all ratings, positives, the split and its universe."""
    return {
        "ratings": ratings.nnz,
        "users": ratings.n_users,
        "items": ratings.n_items,
        "positives": positives.nnz,
        "train": train.nnz,
        "test": test.nnz,
        "test_users": int((test.matrix.getnnz(axis=1) > 0).sum()),
        "universe": int((train.matrix.getnnz(axis=0) > 0).sum()),
    }


def run_recall_models(
    train, test, k: int = 10, n_threads=None, models=None, side=None, curve_ks=(), fitted=None
) -> list[dict]:
    """Fit each :data:`RECALL_MODELS` row on ``train``, evaluate it on ``test``: one dict per row.

    ``models`` restricts to row names; ``side`` is what a row's fit-arguments function reads
    (the :class:`~recforge.datasets.MovieLens` in the demo). Each cut-off of ``curve_ks`` adds
    the metrics at that k to the row's ``"curve"`` list; a ``fitted`` dict receives each
    fitted model by row name.
    """
    from .evaluate import evaluate_recall

    rows = []
    for name, factory, *fit_kwargs in RECALL_MODELS:
        if models is not None and name not in models:
            continue
        model = factory(n_threads)
        kwargs = fit_kwargs[0](side) if fit_kwargs else {}
        start = time.perf_counter()
        model.fit(train, **kwargs)
        fit_seconds = time.perf_counter() - start
        report = evaluate_recall(model, train, test, k=k)
        rows.append({"model": name, **report.as_dict(), "fit_s": fit_seconds})
        if curve_ks:
            rows[-1]["curve"] = [
                evaluate_recall(model, train, test, k=ck).as_dict() for ck in curve_ks
            ]
        if fitted is not None:
            fitted[name] = model
    return rows


def run_demo(k: int = 10, n_threads=None, models=None, curve_ks=()) -> DemoResult:
    """Fit and evaluate every demo model on the bundled data; ``models`` restricts to row names.

    ``curve_ks``: extra cut-offs for each recall row's ``"curve"`` (see :func:`run_recall_models`).
    """
    from .data import temporal_split
    from .datasets import adult, movielens_small

    result = DemoResult()
    ml = movielens_small()
    ratings = ml.interactions()
    positives = ratings.positives(4.0)
    train, test = temporal_split(positives, test_fraction=0.2, min_interactions=5)
    result.movielens = split_summary(ratings, positives, train, test)
    result.recall_rows = run_recall_models(
        train,
        test,
        k=k,
        n_threads=n_threads,
        models=models,
        side=ml,
        curve_ks=curve_ks,
        fitted=result.recall_models,
    )
    if models is None or PIPELINE in models:
        result.pipeline = _run_pipeline(ml, train, test, k, n_threads)

    data = adult()
    result.adult = {
        "train": len(data.train),
        "test": len(data.test),
        "positive_rate": float(data.y_train.mean()),
    }
    for name, factory in RANKERS:
        if models is not None and name not in models:
            continue
        from .metrics import log_loss, roc_auc_score

        model = factory(n_threads)
        start = time.perf_counter()
        model.fit(data.X_train, data.y_train)
        fit_seconds = time.perf_counter() - start
        proba = model.predict_proba(data.X_test)[:, 1]
        result.rank_rows.append(
            {
                "model": name,
                "auc": roc_auc_score(data.y_test, proba),
                "log_loss": log_loss(data.y_test, proba),
                "fit_s": fit_seconds,
            }
        )
        result.rank_proba[name], result.rankers[name] = proba, model
    result.y_test = data.y_test
    return result


def format_demo(result: DemoResult, k: int = 10) -> str:
    """Render a :class:`DemoResult` as the plain-text tables the CLI prints."""
    ml = result.movielens
    lines = [
        "MovieLens ml-latest-small (bundled)",
        f"  {ml['ratings']:,} ratings · {ml['users']:,} users · {ml['items']:,} items",
        f"  positives (rating >= 4): {ml['positives']:,} · temporal split (last 20 % per user): "
        f"{ml['train']:,} train / {ml['test']:,} test · {ml['test_users']:,} test users · "
        f"{ml['universe']:,} items with a train positive",
        "",
        *format_recall_table(result.recall_rows, k),
    ]
    if result.pipeline:
        report = result.pipeline["report"]
        lines += [
            "",
            f"Two-stage pipeline — {len(report.rows) - 2} recall sources x {report.n} candidates "
            f"-> as-of features -> GBDT ranker (fit {result.pipeline['fit_s']:.1f} s)",
            report.format(),
        ]
    ad = result.adult
    lines += [
        "",
        "UCI Adult (bundled)",
        f"  {ad['train']:,} train · {ad['test']:,} test rows · {ad['positive_rate']:.1%} positive (>50K)",
        "",
        "Rank — test set",
    ]
    if result.rank_rows:
        lines.append(f"  {'model':<14}{'AUC':>8}{'logloss':>9}{'fit s':>9}")
        for row in result.rank_rows:
            lines.append(
                f"  {row['model']:<14}{row['auc']:>8.4f}{row['log_loss']:>9.4f}{row['fit_s']:>9.3f}"
            )
    else:
        lines.append("  (no rankers in this version yet)")
    return "\n".join(lines)


def format_recall_table(rows: list[dict], k: int = 10) -> list[str]:
    """The recall table's lines (title, header, one line per row of :func:`run_recall_models`)."""
    lines = [
        f"Recall @{k} — full-catalogue ranking, train items filtered",
        f"  {'model':<14}{'NDCG':>8}{'P':>8}{'R':>8}{'HR':>8}{'coverage':>10}{'fit s':>9}{'users':>7}",
    ]
    for row in rows:
        lines.append(
            f"  {row['model']:<14}{row['ndcg']:>8.4f}{row['precision']:>8.4f}{row['recall']:>8.4f}"
            f"{row['hit_rate']:>8.4f}{row['coverage']:>10.4f}{row['fit_s']:>9.3f}{row['n_users_evaluated']:>7}"
        )
    return lines
