"""The subcommands of the ``recforge`` console script, one module each.

Each command module has ``add_parser(commands)`` (registers its ``argparse`` sub-parser and sets
``run``) and ``run(args) -> int``. :mod:`recforge.cli` lists the modules and turns user errors
into a one-line message and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
import time


class UserError(Exception):
    """A mistake in the command line or the input files: shown as one line, exit status 1."""


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays clean for tables, JSON and ids)."""
    print(f"recforge: {message}", file=sys.stderr, flush=True)


class Timer:
    """``with Timer("fitting itemcf"):`` prints the step on stderr when it starts and ends."""

    def __init__(self, step: str, quiet: bool = False):
        self.step, self.quiet = step, quiet

    def __enter__(self):
        if not self.quiet:
            progress(f"{self.step} ...")
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not self.quiet:
            progress(f"{self.step}: done in {time.perf_counter() - self.start:.1f} s")
        return False


def command_parser(commands, name: str, *, help: str, description: str, examples: str):
    """A sub-parser whose ``--help`` ends with worked examples."""
    return commands.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a float strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


THREADS_PER_MODEL = "threads per model (default: all cores)"

#: Options several commands share: name -> (flags, ``add_argument`` keywords).
SHARED_OPTIONS = {
    "k": (("-k", "--k"), {"type": positive_int, "default": 10, "help": "list length (default 10)"}),
    "test_fraction": (
        ("--test-fraction",),
        {
            "type": fraction,
            "default": 0.2,
            "help": "share of each user's positives held out (default 0.2)",
        },
    ),
    "threads": (
        ("--threads",),
        {"type": positive_int, "default": None, "help": "threads (default: all cores)"},
    ),
    "json": (
        ("--json",),
        {"action": "store_true", "help": "print one JSON object instead of the table"},
    ),
    "report": (
        ("--report",),
        {
            "metavar": "HTML",
            "default": None,
            "help": "also write a self-contained HTML page with the tables and figures "
            "(needs recforge[plot])",
        },
    ),
    "quiet": (("-q", "--quiet"), {"action": "store_true", "help": "no progress lines on stderr"}),
}


def add_options(parser, *names: str, **helps: str) -> None:
    """Add the :data:`SHARED_OPTIONS` ``names`` to ``parser``, in that order; ``helps`` replaces
    an option's help text (``threads="threads per model (default: all cores)"``)."""
    for name in names:
        flags, keywords = SHARED_OPTIONS[name]
        parser.add_argument(*flags, **{**keywords, "help": helps.get(name, keywords["help"])})


def report_curve_ks(args) -> tuple:
    """The list lengths of the ``--report`` curves (none without ``--report``). Checks first that
    matplotlib is there, so that a missing one fails before the long part."""
    if args.report is None:
        return ()
    from ..plot import require_matplotlib
    from ..report import CURVE_KS

    require_matplotlib()
    return CURVE_KS
