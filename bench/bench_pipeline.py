"""The two-stage pipeline on ml-latest-small: quality over seeds, the funnel, the gain per source, timings.

Run as a script (it fits whole pipelines; not a pytest-benchmark micro-benchmark)::

    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --threads 2
    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --synthetic   # ml-100k-shaped
    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --synthetic --synthetic-size 200k
    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --ranker-rows # training rows only
    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --ranker-variants  # ranker settings
    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 0 0 --skip-ablation --hogwild  # run-to-run spread
    /usr/bin/time -v python bench/bench_pipeline.py --seeds 0 --skip-ablation   # peak RSS

Prints per seed: NDCG@10 of the pipeline, of the fusion baseline and of the best single source, the
candidate ceiling, fit seconds (with the stages) and recommend seconds for all users; then, for seed 0,
the gain per added source (sources added one at a time in the default order). The load average is
printed beside the timings: the machine is shared, compare ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _split():
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small
    from recforge.recall.content_based import genre_topics

    ml = movielens_small()
    train, test = temporal_split(
        ml.interactions().positives(4.0), test_fraction=0.2, min_interactions=5
    )
    return train, test, genre_topics(ml.movies)


#: ``--synthetic`` sizes: name -> (users, items, events) of ``synthetic_interactions``
SYNTHETIC_SIZES = {"100k": (943, 1682, 100_000), "200k": (2000, 2000, 200_000)}


def _synthetic_split(seed, size="100k"):
    """A synthetic set of :data:`SYNTHETIC_SIZES` (``"100k"``: ml-100k-shaped, 943 users, 1,682
    items, 100,000 events; power-law items, no personal signal: Popularity is the best source),
    the demo's split."""
    from recforge.data import synthetic_interactions, temporal_split

    data = synthetic_interactions(*SYNTHETIC_SIZES[size], seed=seed)
    train, test = temporal_split(data, test_fraction=0.2, min_interactions=5)
    return train, test, None


def run_seed(seed, n_threads, train, test, genres, sources=None, full_report=True, **params):
    from recforge.evaluate import evaluate_recall
    from recforge.pipeline import TwoStage, evaluate_pipeline

    model = TwoStage(sources, random_state=seed, n_threads=n_threads, **params)
    cpu = time.process_time()
    start = time.perf_counter()
    model.fit(train, item_features=genres)
    fit_s = time.perf_counter() - start
    fit_cpu = time.process_time() - cpu
    start = time.perf_counter()
    model.recommend(train.user_map.ids, k=10)
    rec_s = time.perf_counter() - start
    out = {
        "seed": seed,
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "recommend_all_s": rec_s,
        "stages": model.fit_times_,
        "selection": model.selection_,
        "rows": model.training_summary_.get("rows"),
        "load": os.getloadavg()[0],
    }
    if full_report:
        report = evaluate_pipeline(model, train, test, k=10)
        out.update(
            report=report,
            ndcg=report.row("pipeline")["ndcg"],
            rrf=report.row("rrf (no ranker)")["ndcg"],
            best=report.row(report.best_source)["ndcg"],
            best_source=report.best_source,
            ceiling=report.ceiling,
        )
    else:
        out["ndcg"] = evaluate_recall(model, train, test, k=10).ndcg
    return out


#: (quotas per source, negatives per user) of ``--ranker-rows``: the old default, its sampled
#: variant, the default since r5.
RANKER_ROWS = ((40, None), (40, 50), (60, 50))


def ranker_rows(seed, n_threads, train, test, genres):
    """The ranker's training rows compared on fixed candidates: per (quotas, negatives) of
    :data:`RANKER_ROWS`, one fusion-only TwoStage and its training set are built once, and
    ``default_ranker()`` fitted on the sampled rows (every user sampled alike) ranks the test
    users' candidates. Yields dicts: quotas, negatives, ndcg, ranker fit CPU s, rows."""
    from recforge.pipeline import TwoStage, default_ranker
    from recforge.pipeline.labels import sample_negatives

    built = {}
    for quotas, negatives in RANKER_ROWS:
        if quotas not in built:
            model = TwoStage(
                random_state=seed, n_threads=n_threads, ranker=None, quotas=quotas
            ).fit(train, item_features=genres)
            sampling = dict(negatives_per_user=None)
            built[quotas] = (
                model,
                model.set_params(**sampling).training_data(train, item_features=genres),
            )
        model, data = built[quotas]
        rows = sample_negatives(data.rows, data.y, negatives, np.random.default_rng(seed))
        ndcg, cpu = _ranker_ndcg(model, default_ranker(n_threads, seed), data, rows, train, test)
        yield {
            "quotas": quotas,
            "negatives": negatives,
            "ndcg": ndcg,
            "fit_cpu_s": cpu,
            "rows": int(rows.sum()),
        }


#: ``--ranker-variants``: name → (negatives per user, GBDTClassifier settings over
#: default_ranker()'s, feature groups left out); the r6 search around the default.
RANKER_VARIANTS = {
    "default": (50, {}, ()),
    "25 negatives": (25, {}, ()),
    "10 negatives": (10, {}, ()),
    "100 negatives": (100, {}, ()),
    "200 trees": (50, {"n_estimators": 200}, ()),
    "depth 3": (50, {"max_depth": 3}, ()),
    "depth 5": (50, {"max_depth": 5}, ()),
    "min_child_weight 5": (50, {"min_child_weight": 5.0}, ()),
    "colsample 0.5": (50, {"colsample_bytree": 0.5}, ()),
    "subsample 1.0": (50, {"subsample": 1.0}, ()),
    "without context": (50, {}, ("context",)),
    "without stats": (50, {}, ("stats",)),
}


class _Columns:
    """A ranker that sees only the columns ``keep`` (the feature-group ablation)."""

    def __init__(self, ranker, keep):
        self.ranker, self.keep = ranker, np.asarray(keep)

    def fit(self, X, y):
        self.ranker.fit(X[:, self.keep], y)
        return self

    def predict_proba(self, X):
        return self.ranker.predict_proba(X[:, self.keep])


def ranker_variants(seed, n_threads, train, test, genres, names=None):
    """Ranker settings compared on fixed candidates: one fusion-only default TwoStage and its
    training set (all negatives) per seed; per :data:`RANKER_VARIANTS` entry the rows are sampled
    (every user alike), the ranker fitted and put in as ``ranker_``, and the test users'
    candidates ranked. Yields dicts: variant, ndcg, ranker fit CPU s."""
    from recforge.pipeline import TwoStage, default_ranker
    from recforge.pipeline.labels import sample_negatives

    model = TwoStage(random_state=seed, n_threads=n_threads, ranker=None)
    model.fit(train, item_features=genres)
    data = model.set_params(negatives_per_user=None).training_data(train, item_features=genres)
    for name in names or RANKER_VARIANTS:
        negatives, settings, without = RANKER_VARIANTS[name]
        rows = sample_negatives(data.rows, data.y, negatives, np.random.default_rng(seed))
        ranker = default_ranker(n_threads, seed).set_params(**settings)
        if without:
            keep = [i for i, g in enumerate(model.feature_groups_) if g not in without]
            ranker = _Columns(ranker, keep)
        ndcg, cpu = _ranker_ndcg(model, ranker, data, rows, train, test)
        yield {"variant": name, "ndcg": ndcg, "fit_cpu_s": cpu}


def _ranker_ndcg(model, ranker, data, rows, train, test):
    """Fit ``ranker`` on the training rows ``rows`` of ``data``, rank ``model``'s candidates with it
    and return (NDCG@10 on ``test``, the fit's CPU seconds); ``model`` keeps no ranker after."""
    from recforge.evaluate import evaluate_recall

    cpu = time.process_time()
    ranker.fit(data.X[rows], data.y[rows])
    cpu = time.process_time() - cpu
    model.ranker_ = ranker
    ndcg = evaluate_recall(model, train, test, k=10).ndcg
    model.ranker_ = None
    return ndcg, cpu


def main(argv=None):
    from recforge.pipeline import default_sources

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="the ml-100k-shaped synthetic set (a new draw per seed) instead of ml-latest-small",
    )
    parser.add_argument(
        "--synthetic-size", choices=sorted(SYNTHETIC_SIZES), default="100k", help="with --synthetic"
    )
    parser.add_argument(
        "--negatives",
        type=int,
        default=None,
        help="negatives_per_user of the pipeline (default: the TwoStage default)",
    )
    parser.add_argument(
        "--hogwild",
        action="store_true",
        help="deterministic=False: LFM and Item2Vec train Hogwild on --threads (each run another draw)",
    )
    parser.add_argument(
        "--ranker-rows",
        action="store_true",
        help="only compare the ranker's training rows (quotas x negatives) on fixed candidates",
    )
    parser.add_argument(
        "--ranker-variants",
        nargs="*",
        metavar="NAME",
        help="only compare ranker settings on fixed candidates (RANKER_VARIANTS; none named: all)",
    )
    args = parser.parse_args(argv)
    params = {} if args.negatives is None else {"negatives_per_user": args.negatives}
    if args.hogwild:
        params["deterministic"] = False
    from recforge.kernels import warmup

    warmup()
    if args.ranker_variants is not None:
        train, test, genres = _split()
        results = {}
        for seed in args.seeds:
            for r in ranker_variants(seed, args.threads, train, test, genres, args.ranker_variants):
                results.setdefault(r["variant"], []).append(r)
                print(
                    f"seed {seed}: {r['variant']}: NDCG@10 {r['ndcg']:.4f} · ranker fit CPU "
                    f"{r['fit_cpu_s']:.2f} s",
                    flush=True,
                )
        for name, rs in results.items():
            print(
                f"{name:<20} mean NDCG@10 {np.mean([r['ndcg'] for r in rs]):.4f} · median "
                f"ranker fit CPU {np.median([r['fit_cpu_s'] for r in rs]):.2f} s"
            )
        return
    if args.ranker_rows:
        train, test, genres = _split()
        for seed in args.seeds:
            for r in ranker_rows(seed, args.threads, train, test, genres):
                print(
                    f"seed {seed}: {r['quotas']} per source, negatives {r['negatives']}: "
                    f"NDCG@10 {r['ndcg']:.4f} · ranker fit CPU {r['fit_cpu_s']:.2f} s, "
                    f"{r['rows']} rows",
                    flush=True,
                )
        return
    rows = []
    for seed in args.seeds:
        if args.synthetic:
            train, test, genres = _synthetic_split(seed, args.synthetic_size)
        else:
            train, test, genres = _split()
        r = run_seed(seed, args.threads, train, test, genres, **params)
        rows.append(r)
        stages = " ".join(f"{k}={v:.1f}" for k, v in r["stages"].items())
        chosen = r["selection"] or {}
        validation = " ".join(f"{k} {v:.4f}" for k, v in chosen.get("ndcg", {}).items())
        simple = " ".join(f"{k} {v:.4f}" for k, v in chosen.get("simple_ndcg", {}).items())
        validation += f"; fusion and sources on {chosen.get('simple_users')} users: {simple}"
        print(
            f"seed {seed}: pipeline NDCG@10 {r['ndcg']:.4f} · rrf {r['rrf']:.4f} · best source "
            f"{r['best_source']} {r['best']:.4f} ({r['ndcg'] / r['best']:.3f}x) · ceiling R@N {r['ceiling']:.4f} · "
            f"fit {r['fit_s']:.1f} s, CPU {r['fit_cpu_s']:.1f} s ({stages}), {r['rows']} training rows · "
            f"recommend {len(train.user_map)} users {r['recommend_all_s']:.2f} s · "
            f"load {r['load']:.1f}\n  chosen on validation: {chosen.get('selected')} ({validation})",
            flush=True,
        )
    if len(rows) > 1:
        ndcg = np.mean([r["ndcg"] for r in rows])
        best = np.mean([r["best"] for r in rows])
        print(
            f"mean of {len(rows)} seeds: pipeline {ndcg:.4f} · best source {best:.4f} · ratio {ndcg / best:.3f}"
        )
    print(rows[0]["report"].format())
    if args.skip_ablation or args.synthetic:
        return
    seed = args.seeds[0]
    names = list(default_sources())
    previous = None
    for n in range(1, len(names) + 1):
        sources = {k: v for k, v in default_sources(args.threads, seed).items() if k in names[:n]}
        quotas_note = f"{len(sources)} source(s)"
        r = run_seed(
            seed, args.threads, train, test, genres, sources=sources, full_report=False, **params
        )
        gain = "" if previous is None else f" ({r['ndcg'] - previous:+.4f})"
        print(f"+ {names[n - 1]:<12} {quotas_note}: NDCG@10 {r['ndcg']:.4f}{gain}", flush=True)
        previous = r["ndcg"]


# ---- pytest-benchmark groups (``pytest bench/bench_pipeline.py --benchmark-only``) ---------------
try:
    import pytest
except ImportError:  # run as a script without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="module")
    def fitted_pipeline():
        """The default pipeline fitted on the demo's training part (smoke: two sources, 20 trees)."""
        from recforge.pipeline import TwoStage
        from recforge.rank import GBDTClassifier
        from recforge.recall import ItemCF, Popularity

        from .conftest import pick

        train, _test, genres = _split()
        small = TwoStage(
            {"popularity": Popularity(), "itemcf": ItemCF()},
            quotas=20,
            ranker=GBDTClassifier(n_estimators=20, max_depth=3, random_state=0),
            random_state=0,
        )
        model = pick(TwoStage(random_state=0), small)
        return model.fit(train, item_features=genres), train.user_map.ids

    def _set_threads(model, n_threads):
        """The pipeline's kernels, its fitted sources and its ranker on ``n_threads``."""
        model.set_params(n_threads=n_threads)
        for fitted in [*model.sources_.values(), model.ranker_]:
            if fitted is not None and hasattr(fitted, "n_threads"):
                fitted.n_threads = n_threads

    @pytest.mark.parametrize("n_threads", [1, 2])
    def test_recommend_all_users(benchmark, fitted_pipeline, n_threads):
        """Recommend for all 610 users (target <= 1 s at 2 threads on a quiet machine)."""
        model, users = fitted_pipeline
        _set_threads(model, n_threads)
        model.recommend(users[:10], k=10)  # warm
        benchmark.group = "pipeline recommend all users ml-latest-small"
        benchmark.pedantic(model.recommend, args=(users,), kwargs={"k": 10}, rounds=3)

    def test_recommend_all_users_one_core_busy(benchmark, fitted_pipeline, busy_core):
        """2 threads with a foreign process on one core: the kernels' dynamic chunks keep it near
        the 1-thread time instead of stalling on the busy core."""
        model, users = fitted_pipeline
        _set_threads(model, 2)
        benchmark.group = "pipeline recommend all users ml-latest-small"
        benchmark.pedantic(model.recommend, args=(users,), kwargs={"k": 10}, rounds=3)


if __name__ == "__main__":
    main()
