"""The ``recforge`` command: one sub-command per module of :mod:`recforge._cli`.

User errors (a missing file, a bad column or line, an unknown id or model, a missing optional
package) print one line ``recforge <command>: error: <message>`` on stderr and exit with status 1;
set ``RECFORGE_TRACEBACK=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from ._version import __version__

#: The sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("demo", "evaluate", "fit", "recommend", "similar", "pipeline")

EXAMPLES = """\
examples:
  recforge demo                                   # every model on the bundled data
  recforge evaluate ratings.csv --models itemcf,usercf,lfm --k 10
  recforge fit ratings.csv --model itemcf -o itemcf.npz
  recforge recommend itemcf.npz 1 2 3 --k 5
  recforge similar itemcf.npz 318
  recforge serve itemcf.npz --port 8000           # HTTP service (pip install "recforge[serve]")
  recforge <command> --help                       # the options and examples of a command
"""


def _info() -> str:
    import platform

    import numba
    import numpy
    import scipy

    from . import _core
    from ._threads import available_cores

    return "\n".join(
        [
            f"recforge {__version__}",
            f"python {platform.python_version()} · numpy {numpy.__version__} · "
            f"scipy {scipy.__version__} · numba {numba.__version__}",
            f"cores available: {available_cores()} "
            f"(std::thread reports {_core.hardware_concurrency()})",
        ]
    )


def _run_info(args) -> int:
    print(_info())
    return 0


def _run_warmup(args) -> int:
    from .kernels import warmup

    print("compiling recforge kernels (cached for later runs):")
    total = sum(warmup(verbose=True).values())
    print(f"done in {total:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``recforge`` argument parser."""
    import importlib

    from ._cli import command_parser

    parser = argparse.ArgumentParser(
        prog="recforge",
        description="The classic recommender stack on compiled kernels.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recforge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"._cli.{name}", __package__).add_parser(commands)
    from .serving.cli import add_serve_parser, run_serve

    add_serve_parser(commands)
    commands.choices["serve"].set_defaults(run=run_serve)
    command_parser(
        commands,
        "info",
        help="versions and the threads recforge will use",
        description="Print the versions of recforge and its core dependencies and the number of "
        "cores recforge's threads will use (CPU affinity and cgroup quota respected).",
        examples="  recforge info\n",
    ).set_defaults(run=_run_info)
    command_parser(
        commands,
        "warmup",
        help="compile every Numba kernel now (and cache it), e.g. in a container build",
        description="Compile every Numba kernel (or load it from the on-disk cache) "
        "so that no later "
        "call pays for compilation.",
        examples="  recforge warmup                 # e.g. in a Dockerfile: RUN recforge warmup\n",
    ).set_defaults(run=_run_warmup)
    return parser


def _user_errors() -> tuple:
    from ._cli import UserError
    from .exceptions import ModelFileError

    return (
        UserError,
        ModelFileError,
        KeyError,
        ValueError,
        TypeError,
        FileNotFoundError,
        ImportError,
    )


def main(argv=None) -> int:
    """Entry point of the ``recforge`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except _user_errors() as exc:
        if os.environ.get("RECFORGE_TRACEBACK"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"recforge {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"recforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
