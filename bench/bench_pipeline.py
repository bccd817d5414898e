"""The two-stage pipeline on ml-latest-small: quality over seeds, the funnel, the gain per source, timings.

Run as a script (it fits whole pipelines; not a pytest-benchmark micro-benchmark)::

    PYTHONPATH=src python bench/bench_pipeline.py --seeds 0 1 2 --threads 2
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


def run_seed(seed, n_threads, train, test, genres, sources=None, full_report=True):
    from recforge.evaluate import evaluate_recall
    from recforge.pipeline import TwoStage, evaluate_pipeline

    model = TwoStage(sources, random_state=seed, n_threads=n_threads)
    start = time.perf_counter()
    model.fit(train, item_features=genres)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    model.recommend(train.user_map.ids, k=10)
    rec_s = time.perf_counter() - start
    out = {
        "seed": seed,
        "fit_s": fit_s,
        "recommend_all_s": rec_s,
        "stages": model.fit_times_,
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


def main(argv=None):
    from recforge.pipeline import default_sources

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-ablation", action="store_true")
    args = parser.parse_args(argv)
    train, test, genres = _split()
    from recforge.kernels import warmup

    warmup()
    rows = []
    for seed in args.seeds:
        r = run_seed(seed, args.threads, train, test, genres)
        rows.append(r)
        stages = " ".join(f"{k}={v:.1f}" for k, v in r["stages"].items())
        print(
            f"seed {seed}: pipeline NDCG@10 {r['ndcg']:.4f} · rrf {r['rrf']:.4f} · best source "
            f"{r['best_source']} {r['best']:.4f} ({r['ndcg'] / r['best']:.3f}x) · ceiling R@N {r['ceiling']:.4f} · "
            f"fit {r['fit_s']:.1f} s ({stages}) · recommend 610 users {r['recommend_all_s']:.2f} s · "
            f"load {r['load']:.1f}",
            flush=True,
        )
    if len(rows) > 1:
        ndcg = np.mean([r["ndcg"] for r in rows])
        best = np.mean([r["best"] for r in rows])
        print(
            f"mean of {len(rows)} seeds: pipeline {ndcg:.4f} · best source {best:.4f} · ratio {ndcg / best:.3f}"
        )
    print(rows[0]["report"].format())
    if args.skip_ablation:
        return
    seed = args.seeds[0]
    names = list(default_sources())
    previous = None
    for n in range(1, len(names) + 1):
        sources = {k: v for k, v in default_sources(args.threads, seed).items() if k in names[:n]}
        quotas_note = f"{len(sources)} source(s)"
        r = run_seed(seed, args.threads, train, test, genres, sources=sources, full_report=False)
        gain = "" if previous is None else f" ({r['ndcg'] - previous:+.4f})"
        print(f"+ {names[n - 1]:<12} {quotas_note}: NDCG@10 {r['ndcg']:.4f}{gain}", flush=True)
        previous = r["ndcg"]


if __name__ == "__main__":
    main()
