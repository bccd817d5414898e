"""RecTools' two-stage ``CandidateRankingModel`` on a train/test split written by recforge.

Runs IN the RecTools virtual environment (``bench/rectools/setup_venv.sh``), never in recforge's:
RecTools pins numpy 1.26, pandas < 3 and its own implicit fork. It does not import recforge.
``bench/compare_rectools.py`` writes the split, calls this script and evaluates what it writes with
recforge's evaluator; it can also be run by hand::

    /tmp/rectools-venv/bin/python bench/rectools/run_rectools.py \\
        --train /tmp/rt/train.csv --test /tmp/rt/test.csv --out /tmp/rt/rectools --seed 0

Input: ``train.csv`` and ``test.csv`` with columns user_id, item_id, weight, timestamp (seconds).
The users recommended for are the test users that have train entries (recforge's evaluated users).

What it fits (RecTools' own classes, their defaults unless said):

* candidate generators ``PopularModel()``, ``ImplicitItemKNNWrapperModel(CosineRecommender())``,
  ``ImplicitALSWrapperModel(AlternatingLeastSquares())``, each contributing ``--num-candidates``
  candidates with its score and rank as features (NaN where it did not find the item);
* the reranker: ``CatBoostReranker(CatBoostClassifier())`` (default) or ``Reranker(LGBMClassifier())``;
* negatives: ``PerUserNegativeSampler()`` (3 per user);
* the label split: each user's last 20 % of train events (``--splitter fraction:0.2``, the same cut
  as recforge's ``TwoStage(cut="last", label_fraction=0.2)``), or RecTools' ``LastNSplitter``
  (``last:N``) or ``TimeRangeSplitter`` (``window:7D``).

Output in ``--out``: ``recommendations.csv`` (model, user_id, item_id, rank; model is ``two_stage``
or one generator alone: ``popular``, ``itemknn``, ``als``) and ``timings.json`` (wall and CPU seconds
of each step, versions, settings). Every model is fitted and recommends with ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# implicit asks for a single-threaded BLAS (its own loops are threaded); set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd

K = 10
SOURCES = ("popular", "itemknn", "als")


def read_split(path: Path) -> pd.DataFrame:
    """A split file as RecTools' interactions frame: user_id, item_id, weight, datetime."""
    from rectools import Columns

    df = pd.read_csv(path)
    missing = {"user_id", "item_id", "weight", "timestamp"} - set(df.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {sorted(missing)}")
    return pd.DataFrame(
        {
            Columns.User: df["user_id"].to_numpy(),
            Columns.Item: df["item_id"].to_numpy(),
            Columns.Weight: df["weight"].to_numpy(np.float64),
            Columns.Datetime: pd.to_datetime(df["timestamp"], unit="s"),
        }
    )


def last_fraction_splitter(
    fraction: float, external_item_ids: np.ndarray, min_interactions: int = 2
):
    """A one-fold RecTools splitter: each user's last ``ceil(n * fraction)`` events are the targets.

    Events are ordered by (time, external item id) like recforge's ``temporal_split``; users with
    fewer than ``min_interactions`` events stay history only. ``external_item_ids[i]`` is the
    external id of RecTools' internal item ``i`` (the dataset's item map), used for the tie-break.
    """
    from rectools import Columns
    from rectools.model_selection import Splitter

    class LastFractionSplitter(Splitter):
        n_splits = 1

        def _split_without_filter(self, interactions, collect_fold_stats=False):
            df = interactions.df
            order = np.lexsort(
                (
                    external_item_ids[df[Columns.Item].to_numpy()],
                    df[Columns.Datetime].to_numpy(),
                    df[Columns.User].to_numpy(),
                )
            )
            users = df[Columns.User].to_numpy()[order]
            starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
            counts = np.diff(np.r_[starts, len(users)])
            n_target = np.where(
                counts >= min_interactions, np.ceil(counts * fraction - 1e-9).astype(np.int64), 0
            )
            position = np.arange(len(users)) - np.repeat(starts, counts)
            is_target = position >= np.repeat(counts - n_target, counts)
            yield np.sort(order[~is_target]), np.sort(order[is_target]), {"i_split": 0}

    return LastFractionSplitter()


def make_splitter(spec: str, external_item_ids: np.ndarray):
    from rectools.model_selection import LastNSplitter, TimeRangeSplitter

    kind, _, value = spec.partition(":")
    if kind == "fraction":
        return last_fraction_splitter(float(value or 0.2), external_item_ids)
    if kind == "last":
        return LastNSplitter(int(value), n_splits=1)
    if kind == "window":
        return TimeRangeSplitter(value, n_splits=1)
    raise ValueError(f"--splitter must be fraction:F, last:N or window:SPAN, got {spec!r}")


def make_source(name: str, seed: int, threads: int):
    """One RecTools first-stage model, unfitted: its defaults, seeded, with ``threads`` threads."""
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender
    from rectools.models import ImplicitALSWrapperModel, ImplicitItemKNNWrapperModel, PopularModel

    if name == "popular":
        return PopularModel()
    if name == "itemknn":
        return ImplicitItemKNNWrapperModel(CosineRecommender(num_threads=threads))
    if name == "als":
        return ImplicitALSWrapperModel(
            AlternatingLeastSquares(random_state=seed, num_threads=threads),
            recommend_n_threads=threads,
        )
    raise ValueError(name)


def make_reranker(kind: str, seed: int, threads: int):
    if kind == "catboost":
        from catboost import CatBoostClassifier
        from rectools.models.ranking import CatBoostReranker

        return CatBoostReranker(
            # allow_writing_files=False: no catboost_info/ log folder in the working directory
            CatBoostClassifier(
                verbose=False, random_seed=seed, thread_count=threads, allow_writing_files=False
            )
        )
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier
        from rectools.models.ranking import Reranker

        return Reranker(LGBMClassifier(random_state=seed, n_jobs=threads, verbose=-1))
    raise ValueError(f"--reranker must be catboost or lightgbm, got {kind!r}")


class Clock:
    """Wall and CPU seconds of named steps."""

    def __init__(self):
        self.steps = {}

    def __call__(self, name, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.steps[name] = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }
        return out


def as_rows(reco: pd.DataFrame, model: str) -> pd.DataFrame:
    from rectools import Columns

    reco = reco.sort_values([Columns.User, Columns.Rank])
    return pd.DataFrame(
        {
            "model": model,
            "user_id": reco[Columns.User].to_numpy(),
            "item_id": reco[Columns.Item].to_numpy(),
            "rank": reco[Columns.Rank].to_numpy(np.int64),
        }
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-candidates", type=int, default=40)
    parser.add_argument("--reranker", default="catboost", choices=("catboost", "lightgbm"))
    parser.add_argument("--splitter", default="fraction:0.2")
    parser.add_argument("--skip-sources", action="store_true", help="only the two-stage model")
    args = parser.parse_args(argv)

    import catboost
    import implicit
    import lightgbm
    import rectools
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models.ranking import (
        CandidateGenerator,
        CandidateRankingModel,
        PerUserNegativeSampler,
    )

    train = read_split(args.train)
    test = read_split(args.test)
    users = np.intersect1d(test[Columns.User].unique(), train[Columns.User].unique())
    clock = Clock()
    dataset = clock("dataset", Dataset.construct, train)
    splitter = make_splitter(args.splitter, dataset.item_id_map.external_ids)

    generators = [
        CandidateGenerator(
            make_source(name, args.seed, args.threads),
            num_candidates=args.num_candidates,
            keep_ranks=True,
            keep_scores=True,
        )
        for name in SOURCES
    ]
    model = CandidateRankingModel(
        generators,
        splitter,
        make_reranker(args.reranker, args.seed, args.threads),
        sampler=PerUserNegativeSampler(random_state=args.seed),
    )
    clock("two_stage_fit", model.fit, dataset)
    reco = clock("two_stage_recommend", model.recommend, users, dataset, k=K, filter_viewed=True)
    parts = [as_rows(reco, "two_stage")]

    if not args.skip_sources:
        for name in SOURCES:
            source = make_source(name, args.seed, args.threads)
            clock(f"{name}_fit", source.fit, dataset)
            reco = clock(
                f"{name}_recommend", source.recommend, users, dataset, k=K, filter_viewed=True
            )
            parts.append(as_rows(reco, name))

    args.out.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(args.out / "recommendations.csv", index=False)
    steps = clock.steps
    summary = {
        "two_stage_fit_recommend_wall_s": steps["two_stage_fit"]["wall_s"]
        + steps["two_stage_recommend"]["wall_s"],
        "two_stage_fit_recommend_cpu_s": steps["two_stage_fit"]["cpu_s"]
        + steps["two_stage_recommend"]["cpu_s"],
    }
    record = {
        "steps": steps,
        **summary,
        "n_users": len(users),
        "settings": {
            "seed": args.seed,
            "threads": args.threads,
            "num_candidates": args.num_candidates,
            "reranker": args.reranker,
            "splitter": args.splitter,
            "n_negatives": PerUserNegativeSampler().n_negatives,
        },
        "versions": {
            "python": sys.version.split()[0],
            "rectools": rectools.__version__,
            "implicit": implicit.__version__,
            "catboost": catboost.__version__,
            "lightgbm": lightgbm.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
        },
        "load": os.getloadavg()[0],
    }
    (args.out / "timings.json").write_text(json.dumps(record, indent=2))
    print(
        f"rectools two-stage fit+recommend {summary['two_stage_fit_recommend_wall_s']:.2f} s wall "
        f"for {len(users)} users -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
