"""Busy core, paired rounds: the cases of ``bench_busy.py`` with their idle and busy runs interleaved.

``bench_busy.py`` times a case's 1-thread idle rounds, then its 2-thread busy rounds: on a shared
host whose speed drifts by 10-20 % within minutes, that drift lands in the ratio. Here one foreign
``while True: pass`` process lives for the whole run and is paused (SIGSTOP) for the idle runs and
resumed (SIGCONT) for the busy ones, so that each round times the two back to back, in alternating
order (idle first in even rounds, busy first in odd ones: a linear drift cancels over two rounds).
The report per case: the median of each mode, the ratio of the medians (1-thread idle / 2-threads
busy, as compare.py prints for ``bench_busy.py``; >= 1 is the target) and the median of the
per-round ratios, with the cores each mode used (CPU seconds / wall seconds). A third run per
round, 1 thread with the foreign process running (``busy 1t``; ``control`` = 1-thread idle / 1-thread
busy), shows what the foreign process costs a single thread that never shares its core: on this
VM it moved between 1.00 and 0.87 from one hour to the next (the host runs a busy second vCPU
slower, or lets it slow the first), and a 2-thread busy ratio below 1 by about as much is the
host's, not the kernel's. Between rounds (the foreign process paused) it measures where the host
put the two CPUs (``host_cores.round_trip_ns``: a cache line's round trip, ~55 ns near, ~330 ns
far); ``far`` counts the rounds that ran far apart (either reading), and ``near`` is the median
per-round ratio of the others (``-`` when none or not measurable).

The team of the C++ kernels reads the machine's runnable threads (``/proc/loadavg``'s fourth field)
before each call: a paused process is not runnable, so the idle runs see an idle machine.

    python -m bench.busy_paired                 # every case, 7 rounds (from the repository root)
    python -m bench.busy_paired gbdt lr --rounds 11
    RECFORGE_BENCH_SIZE=smoke python -m bench.busy_paired --rounds 3

Timings on a shared machine are noisy: the numbers are a report, not a test.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from . import host_cores
from .bench_busy import CASES, CoreShare, case

#: seconds a resumed foreign process gets to be scheduled before a busy run starts
RESUME_SECONDS = 0.05
#: each round's runs, in this order in even rounds and reversed in odd ones: (threads, whether the
#: foreign process runs)
MODES = {"idle": (1, False), "busy": (2, True), "control": (1, True)}


def timed(run, n_threads, foreign_pid):
    """(wall seconds, cores used by this process, cores used by the foreign process) of one run."""
    share = CoreShare(foreign_pid)
    start = time.perf_counter()
    run(n_threads)
    wall = time.perf_counter() - start
    ours, foreign = share.stop()
    return wall, ours, foreign


def paired_rounds(name: str, rounds: int, spinner: subprocess.Popen) -> dict:
    """Idle (1 thread, spinner paused), busy (2 threads, spinner running) and busy-control
    (1 thread, spinner running) runs of one case."""
    run = case(name)
    times = {mode: [] for mode in MODES}
    cores = {mode: [] for mode in MODES}
    foreign = []

    def step(mode):
        n_threads, spinning = MODES[mode]
        if spinning:
            os.kill(spinner.pid, signal.SIGCONT)
            time.sleep(RESUME_SECONDS)
        else:
            os.kill(spinner.pid, signal.SIGSTOP)
        wall, ours, theirs = timed(run, n_threads, spinner.pid if spinning else None)
        times[mode].append(wall)
        cores[mode].append(ours)
        if mode == "busy":
            foreign.append(theirs)

    os.kill(spinner.pid, signal.SIGSTOP)
    run(1)  # warm-up: data built, kernels loaded
    os.kill(spinner.pid, signal.SIGCONT)
    run(2)
    readings = [host_cores.round_trip_ns(paused_pid=spinner.pid)]
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else reversed(MODES):
            step(mode)
        readings.append(host_cores.round_trip_ns(paused_pid=spinner.pid))
    os.kill(spinner.pid, signal.SIGCONT)
    per_round = [a / b for a, b in zip(times["idle"], times["busy"])]
    far_rounds, near_ratio = host_cores.split_rounds(per_round, readings)
    idle_med, busy_med = statistics.median(times["idle"]), statistics.median(times["busy"])
    control_med = statistics.median(times["control"])
    return {
        "case": name,
        "idle_s": idle_med,
        "busy_s": busy_med,
        "ratio": idle_med / busy_med,
        "paired_ratio": statistics.median(per_round),
        "control_s": control_med,
        "control_ratio": idle_med / control_med,
        "idle_cores": statistics.median(cores["idle"]),
        "busy_cores": statistics.median(cores["busy"]),
        "foreign_cores": statistics.median(foreign),
        "far_rounds": far_rounds,
        "near_paired_ratio": near_ratio,
    }


def parse_cases(description: str, cases: list[str], argv=None) -> argparse.Namespace:
    """``cases`` (default: all of them) and ``rounds`` of a paired bench's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {cases}")
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds per case (default 7)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(cases))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {cases}")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.cases = args.cases or list(cases)
    return args


def format_ratio(x) -> str:
    """A ratio with 2 decimals, ``-`` for None."""
    return "-" if x is None else f"{x:.2f}"


def main(argv=None) -> None:
    args = parse_cases(__doc__.splitlines()[0], CASES, argv)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        print(
            f"{'case':<20} {'idle 1t s':>10} {'busy 2t s':>10} {'ratio':>6} {'paired':>7} "
            f"{'busy 1t s':>10} {'control':>8} {'cores idle':>10} {'cores busy':>10} "
            f"{'foreign':>8} {'far':>4} {'near':>5}",
            flush=True,
        )
        for name in args.cases:
            r = paired_rounds(name, args.rounds, spinner)
            print(
                f"{r['case']:<20} {r['idle_s']:>10.4f} {r['busy_s']:>10.4f} {r['ratio']:>6.2f} "
                f"{r['paired_ratio']:>7.2f} {r['control_s']:>10.4f} {r['control_ratio']:>8.2f} "
                f"{r['idle_cores']:>10.2f} {r['busy_cores']:>10.2f} {r['foreign_cores']:>8.2f} "
                f"{r['far_rounds']:>4} {format_ratio(r['near_paired_ratio']):>5}",
                flush=True,
            )
            assert spinner.poll() is None, f"the foreign process died (status {spinner.returncode})"
    finally:
        spinner.kill()
        spinner.wait()


if __name__ == "__main__":
    main()
