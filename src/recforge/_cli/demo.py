"""``recforge demo``: every available model on the bundled MovieLens and Adult data."""

from __future__ import annotations

from .._version import __version__
from . import THREADS_PER_MODEL, Timer, add_options, command_parser, report_curve_ks

EXAMPLES = """\
  recforge demo                        # every model, k=10, all cores
  recforge demo --models popularity itemcf LR --threads 2
  recforge demo --report report.html   # also an HTML page with the tables and figures
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "demo",
        help="run every available model on the bundled MovieLens and Adult data",
        description="Fit and evaluate every recall model on MovieLens ml-latest-small "
        "(ratings >= 4, each "
        "user's last 20 %% of positives in test) and every ranker on UCI Adult, and print their "
        "metrics. No download: the data ship with recforge.",
        examples=EXAMPLES,
    )
    parser.add_argument(
        "-k", type=int, default=10, help="list length for the recall metrics (default 10)"
    )
    add_options(parser, "threads", threads=THREADS_PER_MODEL)
    parser.add_argument(
        "--models", nargs="+", default=None, help="only these demo rows (e.g. popularity)"
    )
    add_options(parser, "report")
    parser.set_defaults(run=run, parser=parser)


def run(args) -> int:
    from ..demo import format_demo, run_demo

    if args.k < 1:
        args.parser.error(f"-k must be >= 1, got {args.k}")
    curve_ks = report_curve_ks(args)
    print(f"recforge {__version__} demo", flush=True)
    result = run_demo(k=args.k, n_threads=args.threads, models=args.models, curve_ks=curve_ks)
    print(format_demo(result, k=args.k))
    if args.report is not None:
        from ..report import demo_report

        with Timer(f"writing {args.report}"):
            demo_report(result, args.report, k=args.k)
    return 0
