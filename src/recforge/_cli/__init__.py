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
