"""First fit in a fresh process after ``recforge warmup`` vs a second (warm) fit in that process.

First ``python -m recforge warmup`` runs in a process of its own (it fills Numba's disk cache).
Then each model runs in its own fresh Python process: the demo's model (``recforge.demo``) fitted
twice on the bundled data (recall: ml-latest-small positives, rankers: UCI Adult), then one
evaluation / prediction. The report lists each fit's seconds, their ratio (target: first / warm
<= 1.5) and every Numba signature compiled (not loaded from the cache) in the model's process:
there should be none; a listed signature is one that ``warmup`` does not cover.

    python bench/warmup_first_call.py                       # every model, one process each
    python bench/warmup_first_call.py itemcf "lfm (bpr)"    # some of them
    python bench/warmup_first_call.py --in-process          # warmup() inside each model's process
    NUMBA_CACHE_DIR=/tmp/nc python bench/warmup_first_call.py   # a cache of its own

Timings on a shared machine are noisy: the numbers are a report, not a test.
"""

from __future__ import annotations

import argparse
import json
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


def run_one(name: str, in_process: bool) -> dict:
    """Runs in the child process: (warm up,) fit twice, evaluate once; returns the measurements."""
    from recforge import demo

    record = {"model": name, "warmup_s": float("nan")}
    if in_process:
        from recforge.kernels import warmup

        start = time.perf_counter()
        warmup()
        record["warmup_s"] = time.perf_counter() - start
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
        fit = lambda: factory(None).fit(train, **kwargs)  # noqa: E731
        use = lambda model: evaluate_recall(model, train, test, k=10)  # noqa: E731
    else:
        from recforge.datasets import adult

        data = adult()
        X, y, X_test = data.X_train, data.y_train, data.X_test
        fit = lambda: rankers[name](None).fit(X, y)  # noqa: E731
        use = lambda model: model.predict_proba(X_test)  # noqa: E731
    before = _compiled()
    start = time.perf_counter()
    model = fit()
    record["first_fit_s"] = time.perf_counter() - start
    record["compiled_in_first_fit"] = _new_signatures(before)
    start = time.perf_counter()
    fit()
    record["warm_fit_s"] = time.perf_counter() - start
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
    parser.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)  # the per-model process
    args = parser.parse_args(argv)
    unknown = [name for name in [*args.models, args.child] if name and name not in model_names()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; see --help for the names")
    return args


def main(names: list[str], in_process: bool) -> None:
    names = names or model_names()
    if not in_process:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "recforge", "warmup"], check=True, capture_output=True
        )
        print(f"recforge warmup (own process): {time.perf_counter() - start:.1f} s")
    print(
        f"{'model':<16}{'warmup s':>10}{'first fit s':>13}{'warm fit s':>12}{'ratio':>8}"
        "  compiled after warmup"
    )
    for name in names:
        child = [sys.executable, __file__, "--child", name]
        if in_process:
            child.append("--in-process")
        out = subprocess.run(child, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:<16} failed:\n{out.stderr}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        missed = r["compiled_in_first_fit"] + [f"(use) {s}" for s in r["compiled_in_use"]]
        print(
            f"{name:<16}{r['warmup_s']:>10.2f}{r['first_fit_s']:>13.3f}{r['warm_fit_s']:>12.3f}"
            f"{r['first_fit_s'] / r['warm_fit_s']:>8.2f}  {len(missed) or 'none'}"
        )
        for sig in missed:
            print(f"{'':<16}  {sig}")


if __name__ == "__main__":
    options = parse_args()
    if options.child is not None:
        print(json.dumps(run_one(options.child, options.in_process)))
    else:
        main(options.models, options.in_process)
