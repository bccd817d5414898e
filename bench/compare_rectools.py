"""recforge's TwoStage against RecTools' CandidateRankingModel on ml-latest-small, back to back.

Both sides get the demo's split (positives >= 4, each user's last 20 % in test) from the same files,
comparable sources (Popularity / ItemCF / LFM against RecTools' Popular / ItemKNN / ALS, 40
candidates each), a GBDT reranker and the same label cut (each user's last 20 % of train), and
recommend 10 items for every evaluated test user. Both lists are scored by recforge's evaluator
(:func:`recforge.evaluate.evaluate_recall`, full-catalogue protocol). RecTools runs in its own
virtual environment (``bench/rectools/setup_venv.sh``; it pins numpy 1.26, pandas < 3 and an implicit
fork) through ``bench/rectools/run_rectools.py``, which writes its recommendations and timings to
files read here::

    bash bench/rectools/setup_venv.sh                               # once: /tmp/rectools-venv
    nice -n 10 python bench/compare_rectools.py --repeat 2          # table + time ratios
    python bench/compare_rectools.py --rectools-reranker catboost lightgbm --genres

Times are fit + recommend for all evaluated test users, wall and CPU (all threads of the process)
seconds, ``--threads`` threads each, taken the same way on both sides: in the process that fits,
after the data is read and the libraries the two-stage model uses are imported (RecTools, implicit,
CatBoost / LightGBM there; recforge's pipeline, recall and rank modules here), from the first line
of ``fit`` to the last of ``recommend``. Neither side primes its model with an untimed fit. On our
side ``warmup()`` runs once before (RecTools' kernels are compiled ahead of time, ours by Numba:
from its disk cache, or compiled there when the cache is cold); the pipeline uses no kernel
signature that ``warmup`` does not compile (``tests/test_pipeline_warmup.py``), so a run that is
the process's first pays no compilation. On a shared machine the wall ratio is indicative only;
the CPU ratio is steadier.
Without the RecTools venv the RecTools rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RECTOOLS_SCRIPT = HERE / "rectools" / "run_rectools.py"
DEFAULT_VENV = Path(os.environ.get("RECTOOLS_VENV", "/tmp/rectools-venv"))
K = 10
QUOTA = 40


@dataclasses.dataclass
class Row:
    system: str
    model: str
    ndcg: float
    recall: float
    precision: float
    wall_s: float | None = None
    cpu_s: float | None = None


class FixedLists:
    """Precomputed top-k lists behind the recommend contract, for :func:`evaluate_recall`.

    ``lists`` maps a user id to its item ids, best first. ``filter_seen`` and ``items`` are not
    applied again: the lists were made with the seen items filtered, and the evaluator counts an
    item outside its universe (or seen) as a miss.
    """

    def __init__(self, lists: dict):
        self.lists = lists

    def recommend(self, user_ids, k=10, filter_seen=True, items=None):
        ids = np.full((len(user_ids), k), -1, dtype=np.int64)
        for row, user in enumerate(np.asarray(user_ids).tolist()):
            got = np.asarray(self.lists.get(user, ()), dtype=np.int64)[:k]
            ids[row, : len(got)] = got
        scores = np.where(ids >= 0, k - np.arange(k, dtype=np.float64), -np.inf)
        return ids, scores


def load_split():
    """The demo's split: ml-latest-small ratings >= 4, each user's last 20 % in test."""
    from recforge.data import temporal_split
    from recforge.datasets import movielens_small
    from recforge.recall.content_based import genre_topics

    ml = movielens_small()
    train, test = temporal_split(
        ml.interactions().positives(4.0), test_fraction=0.2, min_interactions=5
    )
    return train, test, genre_topics(ml.movies)


def write_split(train, test, workdir: Path) -> tuple[Path, Path]:
    """Both parts as CSV (user_id, item_id, weight, timestamp in seconds) for the RecTools side."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in (("train", train), ("test", test)):
        path = workdir / f"{name}.csv"
        part.to_dataframe().to_csv(path, index=False, float_format="%.17g")
        paths.append(path)
    return paths[0], paths[1]


def evaluated_users(train, test) -> np.ndarray:
    """External ids of the users ``evaluate_recall`` averages over: test entries and train entries."""
    mask = (test.user_activity() > 0) & (train.user_activity() > 0)
    return train.user_map.ids[mask]


def score(model, train, test, system: str, name: str, wall=None, cpu=None) -> Row:
    from recforge.evaluate import evaluate_recall

    report = evaluate_recall(model, train, test, k=K)
    return Row(system, name, report.ndcg, report.recall, report.precision, wall, cpu)


def run_recforge(
    train,
    test,
    users,
    seed,
    threads,
    *,
    negatives_per_user="default",
    genres=None,
    with_sources=False,
) -> list[Row]:
    """Fit TwoStage (Popularity / ItemCF / LFM + the default GBDT ranker) and recommend, timed.

    ``negatives_per_user``: ``"default"`` leaves TwoStage's default (50 per user), None keeps every
    unlabeled candidate, 3 is RecTools' default sampling. ``with_sources`` adds a row for each
    fitted source alone (untimed).
    """
    from recforge.pipeline import TwoStage
    from recforge.rank import GBDTClassifier  # noqa: F401  the reranker's module, like catboost's
    from recforge.recall import LFM, ItemCF, Popularity

    sources = {
        "popularity": Popularity(n_threads=threads),
        "itemcf": ItemCF(n_threads=threads),
        "lfm": LFM(n_threads=threads, random_state=seed),
    }
    sampling = {} if negatives_per_user == "default" else {"negatives_per_user": negatives_per_user}
    model = TwoStage(
        sources,
        quotas=QUOTA,
        embedding_source="lfm",
        n_threads=threads,
        random_state=seed,
        **sampling,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train, item_features=genres)
    ids, _ = model.recommend(users, k=K)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    label = "TwoStage"
    if negatives_per_user is None:
        label += ", all negatives"
    elif negatives_per_user != "default":
        label += f", {negatives_per_user} negatives/user"
    if genres is not None:
        label += " + genres"
    lists = FixedLists(dict(zip(users.tolist(), ids)))
    row = score(lists, train, test, "recforge", label, wall, cpu)
    direct = score(model, train, test, "recforge", label)
    if not np.isclose(direct.ndcg, row.ndcg, rtol=0, atol=1e-9):
        raise AssertionError(
            f"the timed lists ({row.ndcg:.6f}) and evaluate_recall on the model "
            f"({direct.ndcg:.6f}) disagree"
        )
    rows = [row]
    if with_sources:
        for name, source in model.sources_.items():
            rows.append(score(source, train, test, "recforge", f"{name} alone"))
    return rows


def run_rectools(
    train_csv, test_csv, workdir, venv, seed, threads, reranker, train, test, with_sources=True
):
    """Run bench/rectools/run_rectools.py in the RecTools venv and score what it wrote."""
    python = venv / "bin" / "python"
    out = workdir / f"rectools-{reranker}-seed{seed}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [
        str(python),
        str(RECTOOLS_SCRIPT),
        "--train",
        str(train_csv),
        "--test",
        str(test_csv),
        "--out",
        str(out),
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--num-candidates",
        str(QUOTA),
        "--reranker",
        reranker,
    ]
    if not with_sources:
        command.append("--skip-sources")
    subprocess.run(command, check=True, env=env)
    timings = json.loads((out / "timings.json").read_text())
    reco = pd.read_csv(out / "recommendations.csv")
    steps = timings["steps"]
    rows = []
    for name, part in reco.groupby("model", sort=False):
        part = part.sort_values(["user_id", "rank"])
        lists = {u: g["item_id"].to_numpy() for u, g in part.groupby("user_id", sort=False)}
        if name == "two_stage":
            label = f"CandidateRankingModel ({reranker})"
            wall = timings["two_stage_fit_recommend_wall_s"]
            cpu = timings["two_stage_fit_recommend_cpu_s"]
        else:
            label = f"{name} alone"
            wall = steps[f"{name}_fit"]["wall_s"] + steps[f"{name}_recommend"]["wall_s"]
            cpu = steps[f"{name}_fit"]["cpu_s"] + steps[f"{name}_recommend"]["cpu_s"]
        rows.append(score(FixedLists(lists), train, test, "rectools", label, wall, cpu))
    return rows, timings


def format_table(rows: list[Row]) -> str:
    def seconds(x):
        return "" if x is None else f"{x:.2f}"

    lines = [
        f"{'system':<9} {'model':<34} {'NDCG@10':>8} {'R@10':>7} {'P@10':>7} {'wall s':>8} "
        f"{'CPU s':>7}"
    ]
    for r in rows:
        lines.append(
            f"{r.system:<9} {r.model:<34} {r.ndcg:>8.4f} {r.recall:>7.4f} {r.precision:>7.4f} "
            f"{seconds(r.wall_s):>8} {seconds(r.cpu_s):>7}"
        )
    return "\n".join(lines)


def best_source(rows: list[Row], system: str) -> Row | None:
    alone = [r for r in rows if r.system == system and r.model.endswith("alone")]
    return max(alone, key=lambda r: r.ndcg) if alone else None


def compare_lines(rows: list[Row]) -> str:
    """Each two-stage model against its own best source, and each recforge one against RecTools'."""
    ours = [r for r in rows if r.system == "recforge" and r.wall_s is not None]
    theirs = [r for r in rows if r.model.startswith("CandidateRankingModel")]
    lines = []
    for system, models in (("recforge", ours), ("rectools", theirs)):
        best = best_source(rows, system)
        for r in models if best is not None else []:
            lines.append(
                f"{system} {r.model} vs its best source ({best.model}): NDCG@10 "
                f"x{r.ndcg / best.ndcg:.3f}"
            )
    for a in ours:
        for b in theirs:
            lines.append(
                f"recforge {a.model} / RecTools {b.model}: NDCG@10 x{a.ndcg / b.ndcg:.3f}; "
                f"RecTools time / recforge time: wall x{b.wall_s / a.wall_s:.2f}, "
                f"CPU x{b.cpu_s / a.cpu_s:.2f}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--repeat", type=int, default=1, help="back-to-back runs per seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rectools-reranker", nargs="+", default=["catboost"], choices=("catboost", "lightgbm")
    )
    parser.add_argument("--genres", action="store_true", help="also TwoStage with genre features")
    parser.add_argument(
        "--negatives",
        type=int,
        nargs="*",
        default=[3],
        help="also TwoStage with this many negatives per user (3 = RecTools' sampling)",
    )
    parser.add_argument(
        "--all-negatives",
        action="store_true",
        help="also TwoStage with every unlabeled candidate as a negative (the default before r5)",
    )
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recforge-rectools"))
    parser.add_argument("--json", type=Path, help="write every row of every run here")
    args = parser.parse_args(argv)

    from recforge.kernels import warmup

    train, test, genres = load_split()
    users = evaluated_users(train, test)
    train_csv, test_csv = write_split(train, test, args.workdir)
    have_rectools = (args.venv / "bin" / "python").exists()
    if not have_rectools:
        print(
            f"RecTools venv not found at {args.venv}: RecTools rows skipped "
            "(create it with `bash bench/rectools/setup_venv.sh`, or pass --venv)"
        )
    warmup()
    print(
        f"ml-latest-small, demo split: {train.nnz} train / {test.nnz} test positives, "
        f"{len(users)} evaluated users; {args.threads} threads; split files in {args.workdir}"
    )
    runs = []
    for seed in args.seeds:
        for run in range(1, args.repeat + 1):
            load = os.getloadavg()[0]
            rows = run_recforge(train, test, users, seed, args.threads, with_sources=True)
            for n in args.negatives:
                rows += run_recforge(train, test, users, seed, args.threads, negatives_per_user=n)
            if args.all_negatives:
                rows += run_recforge(
                    train, test, users, seed, args.threads, negatives_per_user=None
                )
            if args.genres:
                rows += run_recforge(train, test, users, seed, args.threads, genres=genres)
            for i, reranker in enumerate(args.rectools_reranker if have_rectools else []):
                try:
                    got, _ = run_rectools(
                        train_csv,
                        test_csv,
                        args.workdir,
                        args.venv,
                        seed,
                        args.threads,
                        reranker,
                        train,
                        test,
                        with_sources=i == 0,
                    )
                except subprocess.CalledProcessError as error:
                    print(f"RecTools with {reranker} failed ({error}); its rows are missing")
                    continue
                rows += got
            print(f"\nseed {seed}, run {run} (load average {load:.1f} at the start)")
            print(format_table(rows))
            print(compare_lines(rows))
            runs.append(
                {
                    "seed": seed,
                    "run": run,
                    "load": load,
                    "rows": [dataclasses.asdict(r) for r in rows],
                }
            )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
