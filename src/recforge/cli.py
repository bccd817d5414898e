"""The ``recforge`` command."""
from __future__ import annotations

import argparse
import sys

from ._version import __version__


def _info() -> str:
    import platform

    import numba
    import numpy
    import scipy

    from . import _core
    from ._threads import available_cores

    return "\n".join([
        f"recforge {__version__}",
        f"python {platform.python_version()} · numpy {numpy.__version__} · scipy {scipy.__version__} · "
        f"numba {numba.__version__}",
        f"cores available: {available_cores()} (std::thread reports {_core.hardware_concurrency()})",
    ])


def main(argv=None) -> int:
    """Entry point of the ``recforge`` console script."""
    parser = argparse.ArgumentParser(prog="recforge", description="The classic recommender stack on compiled kernels.")
    parser.add_argument("--version", action="version", version=f"recforge {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="run every available model on the bundled MovieLens and Adult data")
    demo.add_argument("-k", type=int, default=10, help="list length for the recall metrics (default 10)")
    demo.add_argument("--threads", type=int, default=None, help="threads per model (default: all cores)")
    demo.add_argument("--models", nargs="+", default=None, help="only these demo rows (e.g. popularity)")
    commands.add_parser("info", help="versions and the threads recforge will use")
    commands.add_parser("warmup", help="compile every Numba kernel now (and cache it), e.g. in a container build")
    from .serving.cli import add_serve_parser, run_serve
    add_serve_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run_serve(args)

    if args.command == "demo":
        from .demo import format_demo, run_demo

        if args.k < 1:
            parser.error(f"-k must be >= 1, got {args.k}")
        print(f"recforge {__version__} demo", flush=True)
        result = run_demo(k=args.k, n_threads=args.threads, models=args.models)
        print(format_demo(result, k=args.k))
        return 0
    if args.command == "warmup":
        from .kernels import warmup

        print("compiling recforge kernels (cached for later runs):")
        total = sum(warmup(verbose=True).values())
        print(f"done in {total:.1f} s")
        return 0
    if args.command == "info":
        print(_info())
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
