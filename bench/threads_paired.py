"""Second thread, paired rounds: the GBDT fits of ``bench_gbdt.py`` at 1 and 2 threads, interleaved.

``bench_gbdt.py`` times the 1-thread group of a data set, then its 2-thread group: on a shared host
whose speed drifts by 10-20 % within minutes, that drift lands in the 2/1 ratio (Adult's moved
from 1.30 to 1.55 between runs). Here each round fits at 1 and at 2 threads back to back, in
alternating order (1 thread first in even rounds, 2 first in odd ones: a linear drift cancels over
two rounds). The report per case: the median of each, their ratio (1 thread / 2 threads: the
second thread's speed-up; issue 13's targets are >= 1.4 on Adult and >= 1.7 on 1M x 50) and the
median of the per-round ratios, with the cores each used (CPU seconds / wall seconds), the rounds
that ran with the two CPUs far apart (``far``; ``host_cores``, measured between rounds) and the
median per-round ratio of the others (``near``).

Cases: ``adult`` (UCI Adult, the raw DataFrame with its categories, 300 trees) and ``synth-1m``
(``synthetic_ctr`` 1M x 50 float32, 100 trees); depth 6, eta 0.1, 256 bins, as in bench_gbdt.py.

    python -m bench.threads_paired                      # both cases (from the repository root)
    python -m bench.threads_paired adult --rounds 11
    RECFORGE_BENCH_SIZE=smoke python -m bench.threads_paired --rounds 3

Timings on a shared machine are noisy: the numbers are a report, not a test.
"""

from __future__ import annotations

import statistics

from . import host_cores
from .busy_paired import format_ratio, parse_cases, timed
from .conftest import pick, synthetic_ctr_split

CASES = ["adult", "synth-1m"]
ADULT_TREES = pick(300, 20)
SYNTH_ROWS = pick(1_000_000, 20_000)
SYNTH_TREES = pick(100, 10)


def case(name: str):
    """``fit(n_threads)`` of one case, its data built once."""
    from recforge.rank import GBDTClassifier

    if name == "adult":
        from recforge.datasets import adult

        data = adult()
        X, y, n_trees = data.X_train, data.y_train, ADULT_TREES
    else:
        X, y, _, _ = synthetic_ctr_split(SYNTH_ROWS, 1)
        n_trees = SYNTH_TREES

    def fit(n_threads):
        GBDTClassifier(
            n_estimators=n_trees, max_depth=6, learning_rate=0.1, max_bin=256, n_threads=n_threads
        ).fit(X, y)

    return fit


def paired_rounds(name: str, rounds: int) -> dict:
    fit = case(name)
    fit(1)  # warm-up: data binned once, caches and pools started
    fit(2)
    times, cores = {1: [], 2: []}, {1: [], 2: []}
    readings = [host_cores.round_trip_ns()]
    for r in range(rounds):
        for n_threads in (1, 2) if r % 2 == 0 else (2, 1):
            wall, used, _ = timed(fit, n_threads, None)
            times[n_threads].append(wall)
            cores[n_threads].append(used)
        readings.append(host_cores.round_trip_ns())
    one, two = statistics.median(times[1]), statistics.median(times[2])
    per_round = [a / b for a, b in zip(times[1], times[2])]
    far_rounds, near_ratio = host_cores.split_rounds(per_round, readings)
    return {
        "case": name,
        "one_s": one,
        "two_s": two,
        "ratio": one / two,
        "paired_ratio": statistics.median(per_round),
        "one_cores": statistics.median(cores[1]),
        "two_cores": statistics.median(cores[2]),
        "far_rounds": far_rounds,
        "near_paired_ratio": near_ratio,
    }


def main(argv=None) -> None:
    args = parse_cases(__doc__.splitlines()[0], CASES, argv)
    print(
        f"{'case':<10} {'1 thread s':>10} {'2 threads s':>11} {'ratio':>6} {'paired':>7} "
        f"{'cores 1t':>8} {'cores 2t':>8} {'far':>4} {'near':>5}",
        flush=True,
    )
    for name in args.cases:
        r = paired_rounds(name, args.rounds)
        print(
            f"{r['case']:<10} {r['one_s']:>10.4f} {r['two_s']:>11.4f} {r['ratio']:>6.2f} "
            f"{r['paired_ratio']:>7.2f} {r['one_cores']:>8.2f} {r['two_cores']:>8.2f} "
            f"{r['far_rounds']:>4} {format_ratio(r['near_paired_ratio']):>5}",
            flush=True,
        )


if __name__ == "__main__":
    main()
