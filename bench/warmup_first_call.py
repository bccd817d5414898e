"""First fit in a fresh process after ``recforge warmup`` vs a second (warm) fit in that process.

First ``python -m recforge warmup`` runs in a process of its own (it fills Numba's disk cache).
Then each model runs in its own fresh Python process: the demo's model (``recforge.demo``) fitted
twice on the bundled data (recall: ml-latest-small positives, rankers: UCI Adult), then one
evaluation / prediction. Both fits start from cold CPU caches (a 256 MiB buffer is streamed
through them before each): the ratio compares the process's first call with a later one, not a
cache-cold fit with one that runs right after itself on the same arrays. The model's module is
imported (the model constructed) before the first fit, its seconds in a column of their own. The
report lists each fit's seconds, their ratio (target: first / warm <= 1.5), the same ratio in CPU
seconds of the process (steadier on a busy machine), and every Numba signature compiled (not loaded
from the cache) in the model's process: there should be none; a listed signature is one that
``warmup`` does not cover. Each model runs in ``--repeat`` fresh processes (default 5) and each
column is the median over them: a first fit of a few milliseconds moves by tens of percent from one process to the next.

The first fit's extra seconds (first - warm) are split into what Numba does once per process and
what is left:

* ``numba start``: the first cache load of a process makes Numba build its typing and target
  contexts (it imports ~85-130 modules: its own, scipy.linalg for its BLAS bindings, cffi; and
  installs every @overload registry) and, for a ``parallel=True`` kernel, starts its threading
  layer (``threads s``, included in ``numba start s``). ~0.2-0.3 s of CPU on a busy 2-core
  machine, whatever the model; no recforge code runs in it.
* ``loads``: the number of kernel signatures loaded from the disk cache and their seconds (index
  lookup, unpickling, bitcode parsing and linking, 3-20 ms each).
* ``other``: the rest (lazy imports, first allocations, pools, ...). ``imported`` lists the top-level
  packages of the modules first imported during the first fit (Numba's start imports numba,
  scipy, cffi, pycparser; anything else is a lazy import on the model's path).

``--numba-started`` starts Numba's contexts before the first fit (what a process that called
``warmup()`` or ran any kernel before has paid already): the ratio then shows what is left.

    python bench/warmup_first_call.py                       # every model, one process each
    python bench/warmup_first_call.py itemcf "lfm (bpr)"    # some of them
    python bench/warmup_first_call.py --in-process          # warmup() inside each model's process
    python bench/warmup_first_call.py --numba-started       # Numba's contexts started before the fit
    python bench/warmup_first_call.py --repeat 1            # one process per model (default 5: medians)
    NUMBA_CACHE_DIR=/tmp/nc python bench/warmup_first_call.py   # a cache of its own

Timings on a shared machine are noisy: the numbers are a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _compiled() -> dict:
    """Signatures each kernel compiled in this process (Numba counts a compile as a cache miss)."""
    from recforge.kernels import jitted_functions

    return {name: {str(sig) for sig in fn._cache_misses} for name, fn in jitted_functions().items()}


def _new_signatures(before: dict) -> list[str]:
    return sorted(
        f"{name}{sig}"
        for name, sigs in _compiled().items()
        for sig in sigs - before.get(name, set())
    )


class NumbaTimers:
    """Seconds Numba spends starting up and loading cached kernels, by wrapping three of its
    internals in this (bench) process only: the context refresh (its first call builds the typing
    and target contexts), the threading layer's launch and the disk cache's ``load_overload``."""

    def __init__(self):
        from numba.core import base, caching
        from numba.np.ufunc import parallel

        self.start_s = 0.0  # context refreshes + threading layer launch
        self.threads_s = 0.0  # the threading layer launch alone
        self.loads = 0
        self.loads_s = 0.0  # cache loads, without the refreshes inside them
        self._wrap(base.BaseContext, "refresh", self._add_start)
        self._wrap(parallel, "_launch_threads", self._add_threads)
        self._wrap(caching.Cache, "load_overload", self._add_load)

    def _wrap(self, owner, attr, record):
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            start, start_s = time.perf_counter(), self.start_s
            result = original(*args, **kwargs)
            record(time.perf_counter() - start - (self.start_s - start_s), result)
            return result

        setattr(owner, attr, timed)

    def _add_start(self, seconds, result):
        self.start_s += seconds

    def _add_load(self, seconds, result):
        self.loads += result is not None
        self.loads_s += seconds

    def _add_threads(self, seconds, result):
        self.start_s += seconds
        self.threads_s += seconds

    def snapshot(self) -> tuple:
        return self.start_s, self.loads, self.loads_s, self.threads_s


class CacheEvictor:
    """Streams a buffer larger than the CPU's caches through them, so that each timed fit starts
    from cold caches: a fit of a tenth of a millisecond (Popularity) takes 2x longer when its
    arrays and the interpreter's paths were evicted (e.g. by the walk over every kernel module
    before the first fit, or a ``gc.collect()``) than right after itself; evicting before both
    fits leaves the process's own first-call costs in the ratio."""

    def __init__(self, mebibytes: int = 256):
        import numpy as np

        self._buffer = np.ones(mebibytes << 17)  # float64: 2**17 per MiB

    def evict(self) -> None:
        self._buffer += 1.0


def run_one(name: str, in_process: bool, numba_started: bool = False) -> dict:
    """Runs in the child process: (warm up,) fit twice, evaluate once; returns the measurements."""
    timers = NumbaTimers()
    from recforge import demo

    record = {"model": name, "warmup_s": float("nan")}
    if in_process:
        from recforge.kernels import warmup

        start = time.perf_counter()
        warmup()
        record["warmup_s"] = time.perf_counter() - start
    if numba_started:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    recall = {row[0]: row for row in demo.RECALL_MODELS}
    rankers = dict(demo.RANKERS)
    if name in recall:
        from recforge.data import temporal_split
        from recforge.datasets import movielens_small
        from recforge.evaluate import evaluate_recall

        ml = movielens_small()
        train, test = temporal_split(
            ml.interactions().positives(4.0), test_fraction=0.2, min_interactions=5
        )
        _, factory, *extra = recall[name]
        kwargs = extra[0](ml) if extra else {}
        start = time.perf_counter()
        factory(None)  # imports the model's module
        record["import_s"] = time.perf_counter() - start
        fit = lambda: factory(None).fit(train, **kwargs)  # noqa: E731
        use = lambda model: evaluate_recall(model, train, test, k=10)  # noqa: E731
    else:
        from recforge.datasets import adult

        data = adult()
        X, y, X_test = data.X_train, data.y_train, data.X_test
        start = time.perf_counter()
        rankers[name](None)  # imports the model's module
        record["import_s"] = time.perf_counter() - start
        fit = lambda: rankers[name](None).fit(X, y)  # noqa: E731
        use = lambda model: model.predict_proba(X_test)  # noqa: E731
    caches = CacheEvictor()
    before = _compiled()
    numba_before = timers.snapshot()
    modules_before = set(sys.modules)
    caches.evict()
    start, cpu = time.perf_counter(), time.process_time()
    model = fit()
    record["first_fit_s"] = time.perf_counter() - start
    record["first_fit_cpu_s"] = time.process_time() - cpu
    numba_after = timers.snapshot()
    record["numba_start_s"] = numba_after[0] - numba_before[0]
    record["loads"] = numba_after[1] - numba_before[1]
    record["loads_s"] = numba_after[2] - numba_before[2]
    record["threads_s"] = numba_after[3] - numba_before[3]
    record["imported"] = sorted({name.split(".")[0] for name in set(sys.modules) - modules_before})
    record["compiled_in_first_fit"] = _new_signatures(before)
    caches.evict()
    start, cpu = time.perf_counter(), time.process_time()
    fit()
    record["warm_fit_s"] = time.perf_counter() - start
    record["warm_fit_cpu_s"] = time.process_time() - cpu
    before = _compiled()
    use(model)
    record["compiled_in_use"] = _new_signatures(before)
    return record


def model_names() -> list[str]:
    """Every demo model name, recall first (the names this script takes)."""
    from recforge import demo

    return [row[0] for row in demo.RECALL_MODELS] + [row[0] for row in demo.RANKERS]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="First fit in a fresh process after `recforge warmup` vs a warm second fit, "
        "and every Numba signature compiled after the warm-up (there should be none).",
        epilog=f"models: {', '.join(repr(n) for n in model_names())}",
    )
    parser.add_argument(
        "models", nargs="*", metavar="MODEL", help="demo model names (default: every model)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run warmup() inside each model's process instead of `recforge warmup` once before",
    )
    parser.add_argument(
        "--numba-started",
        action="store_true",
        help="start Numba's typing and target contexts before the first fit (what any earlier "
        "kernel call or warmup() in the process pays), to show the first fit's other costs",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="fresh processes per model (default 5): the report gives the medians over them, "
        "since one first fit of a few milliseconds moves by tens of percent between processes",
    )
    parser.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)  # the per-model process
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    unknown = [name for name in [*args.models, args.child] if name and name not in model_names()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; see --help for the names")
    return args


def main(names: list[str], in_process: bool, numba_started: bool = False, repeat: int = 5) -> None:
    names = names or model_names()
    if not in_process:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "recforge", "warmup"], check=True, capture_output=True
        )
        print(f"recforge warmup (own process): {time.perf_counter() - start:.1f} s")
    print(
        f"{'model':<16}{'warmup s':>9}{'import s':>9}{'first fit s':>12}{'warm fit s':>11}"
        f"{'ratio':>7}{'cpu ratio':>10}{'extra s':>9}{'numba start s':>14}{'threads s':>10}"
        f"{'loads':>6}{'loads s':>8}{'other s':>8}  compiled after warmup; imported"
    )
    for name in names:
        child = [sys.executable, __file__, "--child", name]
        if in_process:
            child.append("--in-process")
        if numba_started:
            child.append("--numba-started")
        records = []
        for _ in range(repeat):
            out = subprocess.run(child, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name:<16} failed:\n{out.stderr}")
                break
            records.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if len(records) < repeat:
            continue
        _report(name, records)


def _report(name: str, records: list[dict]) -> None:
    """One row per model: the median over its processes of every column (the ratio column is the
    median of the per-process ratios), then each process's ratio when there were several."""
    for r in records:
        r["ratio"] = r["first_fit_s"] / r["warm_fit_s"]
        r["cpu_ratio"] = r["first_fit_cpu_s"] / max(r["warm_fit_cpu_s"], 1e-9)
        r["extra_s"] = r["first_fit_s"] - r["warm_fit_s"]
        r["other_s"] = r["extra_s"] - r["numba_start_s"] - r["loads_s"]
    m = {
        key: statistics.median(r[key] for r in records)
        for key in (
            "warmup_s",
            "import_s",
            "first_fit_s",
            "warm_fit_s",
            "ratio",
            "cpu_ratio",
            "extra_s",
            "numba_start_s",
            "threads_s",
            "loads",
            "loads_s",
            "other_s",
        )
    }
    missed = sorted(
        {sig for r in records for sig in r["compiled_in_first_fit"]}
        | {f"(use) {sig}" for r in records for sig in r["compiled_in_use"]}
    )
    imported = sorted({module for r in records for module in r["imported"]})
    print(
        f"{name:<16}{m['warmup_s']:>9.2f}{m['import_s']:>9.3f}{m['first_fit_s']:>12.4f}"
        f"{m['warm_fit_s']:>11.4f}{m['ratio']:>7.2f}{m['cpu_ratio']:>10.2f}{m['extra_s']:>9.3f}"
        f"{m['numba_start_s']:>14.3f}{m['threads_s']:>10.3f}{m['loads']:>6.0f}"
        f"{m['loads_s']:>8.3f}{m['other_s']:>8.3f}  {len(missed) or 'none'}; "
        f"{', '.join(imported) or 'nothing'}"
    )
    if len(records) > 1:
        ratios = " ".join(f"{r['ratio']:.2f}" for r in records)
        print(f"{'':<16}  ratio per process: {ratios}")
    for sig in missed:
        print(f"{'':<16}  {sig}")


if __name__ == "__main__":
    options = parse_args()
    if options.child is not None:
        print(json.dumps(run_one(options.child, options.in_process, options.numba_started)))
    else:
        main(options.models, options.in_process, options.numba_started, options.repeat)
