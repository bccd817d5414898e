"""Issue 13's table in one run: every target row's ours, peer, ratio and target, held or missed.

Runs the benchmark files of the table's rows (pytest-benchmark, peer and ours in the same run, as
``pytest bench/bench_X.py --benchmark-only``), the busy-core group (``bench_busy.py``: 2 threads
with a foreign process on one core against 1 thread idle) and the paired second-thread rounds
(``threads_paired``), then prints one line per row: ratio = peer median / our median (for the busy
group: the idle 1-thread median / the busy 2-thread one; for the second thread: 1 thread / 2
threads, medians of paired rounds) against the row's target. The first-call row has its own
report (``python bench/warmup_first_call.py``: it starts a process per model).

    python -m bench.targets                          # every section (~35 min on a 2-core VM)
    python -m bench.targets gbdt lr --rounds 5       # some sections; rounds of threads_paired
    RECFORGE_BENCH_SIZE=smoke python -m bench.targets --rounds 1   # minutes: the plumbing only

Timings on a shared machine are noisy: the report is a measurement, not a test (its exit status is
0 whether rows held or not, 1 when a benchmark run failed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Row:
    """One row of the table: our entry and the peer's (test names) in a benchmark group."""

    what: str
    group: str
    ours: str
    peer: str
    target: float


@dataclass(frozen=True)
class Result:
    """A row as measured: medians in seconds (None: the entry is missing from the run)."""

    section: str
    what: str
    ours_s: float | None
    peer_s: float | None
    target: float

    @property
    def ratio(self) -> float | None:
        if not self.ours_s or self.peer_s is None:
            return None
        return self.peer_s / self.ours_s

    @property
    def held(self) -> bool:
        return self.ratio is not None and self.ratio >= self.target


#: section -> (benchmark file, pytest -k expression or None, rows read from its results)
SECTIONS: dict[str, tuple[str, str | None, list[Row]]] = {
    "gbdt": (
        "bench_gbdt.py",
        "not lightgbm and not lgbm and not bundled and not onehot and not binning and not busy",
        [
            Row(
                "GBDT fit 1M x 50 vs xgboost hist, 2 threads",
                "gbdt-fit-synthetic-2thr",
                "test_recforge_fit_synthetic[2]",
                "test_xgboost_fit_synthetic[2]",
                1.5,
            ),
            Row(
                "GBDT fit 225k x 18 mixed with NaN vs xgboost, 2 threads",
                "gbdt-fit-mixed-2thr",
                "test_recforge_fit_mixed[2]",
                "test_xgboost_fit_mixed[2]",
                1.5,
            ),
            Row(
                "GBDT fit Adult 300 trees vs xgboost, 2 threads",
                "gbdt-fit-adult-2thr",
                "test_recforge_fit_adult[2-categories]",
                "test_xgboost_fit_adult[2]",
                1.5,
            ),
            Row(
                "GBDT predict 200k x 100 trees vs inplace_predict, 1 thread",
                "gbdt-predict-synthetic-1thr",
                "test_recforge_predict_synthetic[1]",
                "test_xgboost_predict_synthetic[1]",
                1.5,
            ),
            Row(
                "GBDT predict 200k x 100 trees vs inplace_predict, 2 threads",
                "gbdt-predict-synthetic-2thr",
                "test_recforge_predict_synthetic[2]",
                "test_xgboost_predict_synthetic[2]",
                1.5,
            ),
        ],
    ),
    "lr": (
        "bench_lr.py",
        "not busy and not scipy",
        [
            Row(
                "LR one-hot CTR vs sklearn lbfgs, 2 threads",
                "lr-fit-onehot-ctr",
                "test_recforge_lr_onehot_ctr[2]",
                "test_sklearn_lbfgs_onehot_ctr",
                2.0,
            ),
            Row(
                "LR one-hot CTR vs sklearn lbfgs, 1 thread",
                "lr-fit-onehot-ctr",
                "test_recforge_lr_onehot_ctr[1]",
                "test_sklearn_lbfgs_onehot_ctr",
                1.2,
            ),
            Row(
                "LR Adult vs sklearn lbfgs, 2 threads (kept ahead)",
                "lr-fit-adult",
                "test_recforge_lr_adult[2]",
                "test_sklearn_lbfgs_adult",
                1.0,
            ),
            Row(
                "LR 1M x 50 vs sklearn lbfgs, 2 threads (kept ahead)",
                "lr-fit-synthetic",
                "test_recforge_lr_synthetic[2]",
                "test_sklearn_lbfgs_synthetic",
                1.0,
            ),
        ],
    ),
    "lfm": (
        "bench_lfm.py",
        "bpr and not only and not busy",
        [
            Row(
                "LFM BPR epoch vs implicit, ml-latest-small",
                "lfm-epoch-movielens",
                "test_recforge_lfm_epoch[bpr-movielens]",
                "test_implicit_bpr_epoch[movielens]",
                1.0,
            ),
            Row(
                "LFM BPR epoch vs implicit, 20M",
                "lfm-epoch-synthetic20M",
                "test_recforge_lfm_epoch[bpr-synthetic20M]",
                "test_implicit_bpr_epoch[synthetic20M]",
                1.5,
            ),
        ],
    ),
    "item2vec": (
        "bench_item2vec.py",
        "skipgram and synthetic20M and not busy and not pairwise",
        [
            Row(
                "Item2Vec skip-gram epoch vs gensim, 20M",
                "item2vec-skipgram-synthetic20M",
                "test_item2vec_epoch[synthetic20M-skipgram-recforge]",
                "test_item2vec_epoch[synthetic20M-skipgram-gensim]",
                4.0,
            ),
        ],
    ),
    # rows: one per case of the busy group, built from the results (busy_rows)
    "busy": ("bench_busy.py", None, []),
}
#: the second thread's rows: threads_paired case -> (row, target 1 thread / 2 threads)
SECOND_THREAD = {
    "adult": ("GBDT second thread, Adult 300 trees (1 / 2 threads)", 1.4),
    "synth-1m": ("GBDT second thread, 1M x 50 100 trees (1 / 2 threads)", 1.7),
}


def medians(benchmarks: list[dict]) -> dict[tuple[str, str], float]:
    """(group, test name) -> median seconds of a pytest-benchmark JSON's ``benchmarks`` list."""
    return {(b["group"], b["name"]): b["stats"]["median"] for b in benchmarks}


def row_results(section: str, rows: list[Row], benchmarks: list[dict]) -> list[Result]:
    """The rows' results from one run's ``benchmarks``; a missing entry gives None."""
    found = medians(benchmarks)
    return [
        Result(
            section,
            row.what,
            found.get((row.group, row.ours)),
            found.get((row.group, row.peer)),
            row.target,
        )
        for row in rows
    ]


def busy_rows(benchmarks: list[dict]) -> list[Row]:
    """One row per case of bench_busy.py's results: its 2-thread busy run against its 1-thread idle
    run (target >= 1)."""
    from .bench_busy import BUSY, IDLE

    cases = sorted(
        {b["group"][len("busy-") :] for b in benchmarks if b["group"].startswith("busy-")}
    )
    return [
        Row(
            f"busy core: {case} (1 thread idle / 2 threads busy)",
            f"busy-{case}",
            f"test_busy[{case}-{BUSY}]",
            f"test_busy[{case}-{IDLE}]",
            1.0,
        )
        for case in cases
    ]


def run_section(name: str, out_dir: Path) -> list[dict]:
    """Run one section's benchmark file; its ``benchmarks`` list (RuntimeError when pytest fails)."""
    filename, expression, _ = SECTIONS[name]
    out = out_dir / f"{name}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(BENCH_DIR / filename),
        "--benchmark-only",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={out}",
    ]
    if expression:
        command += ["-k", expression]
    done = subprocess.run(command, cwd=BENCH_DIR.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return json.loads(out.read_text())["benchmarks"]


def section_results(name: str, benchmarks: list[dict]) -> list[Result]:
    rows = busy_rows(benchmarks) if name == "busy" else SECTIONS[name][2]
    return row_results(name, rows, benchmarks)


def second_thread_results(rounds: int) -> list[Result]:
    from . import threads_paired

    results = []
    for case, (what, target) in SECOND_THREAD.items():
        r = threads_paired.paired_rounds(case, rounds)
        # as a ratio of medians: "ours" the 2-thread time, "peer" the 1-thread time
        results.append(Result("threads", what, r["two_s"], r["one_s"], target))
    return results


def format_results(results: list[Result]) -> str:
    """The report: one line per row, then how many held."""
    lines = [
        f"{'section':<9} {'row':<66} {'ours s':>10} {'peer s':>10} {'ratio':>7} {'target':>7}  held"
    ]
    for r in results:
        ours = "missing" if r.ours_s is None else f"{r.ours_s:.4f}"
        peer = "missing" if r.peer_s is None else f"{r.peer_s:.4f}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        held = "yes" if r.held else "NO"
        lines.append(
            f"{r.section:<9} {r.what:<66} {ours:>10} {peer:>10} {ratio:>7} {r.target:>7.2f}  {held}"
        )
    lines.append(f"{sum(r.held for r in results)} of {len(results)} rows held")
    return "\n".join(lines)


def main(argv=None) -> int:
    from .busy_paired import parse_cases

    # the sections, and --rounds: the paired rounds of the "threads" section
    args = parse_cases(__doc__.splitlines()[0], [*SECTIONS, "threads"], argv)
    results, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            if name == "threads":
                results += second_thread_results(args.rounds)
                continue
            try:
                results += section_results(name, run_section(name, Path(tmp)))
            except RuntimeError as e:
                print(e, file=sys.stderr)
                failed = True
    print(format_results(results), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
