"""``recforge serve MODEL``: the command's parser and runner (wired into :mod:`recforge.cli`)."""

from __future__ import annotations

import gc
import os
import socket
import sys

#: Environment variable holding the admin token (preferred to the flag: flags show in ``ps``).
ADMIN_TOKEN_ENV = "RECFORGE_ADMIN_TOKEN"


def add_serve_parser(subparsers) -> None:
    """Add the ``serve`` subcommand to an ``argparse`` subparsers object."""
    serve = subparsers.add_parser(
        "serve", help="serve a saved model over HTTP (needs recforge[serve])"
    )
    serve.add_argument("model", help="a model file saved by a recforge model's save()")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 = any free port)"
    )
    serve.add_argument(
        "--feedback-db",
        default="recforge_feedback.sqlite3",
        help="SQLite file of the feedback log (default ./recforge_feedback.sqlite3)",
    )
    serve.add_argument(
        "--index",
        choices=("exact", "ann"),
        default="exact",
        help="search of the embedding sources: exact (default) or an ANN index (needs "
        "recforge[ann]; for catalogues of ~100k items and more)",
    )
    serve.add_argument(
        "--admin-token",
        default=None,
        help=f"token of POST /admin/reload (default: ${ADMIN_TOKEN_ENV}; none = disabled)",
    )


def run_serve(args) -> int:
    """Load the model, bind the socket, print the address and serve until interrupted."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError:
        print(
            'recforge serve needs FastAPI and uvicorn: pip install "recforge[serve]"',
            file=sys.stderr,
        )
        return 2
    from .._threads import limit_blas_threads
    from ..exceptions import ModelFileError
    from .recommender import Recommender

    if not 0 <= args.port <= 65535:
        print(f"recforge serve: --port must be in 0..65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        recommender = Recommender.load(args.model, index=args.index)
    except (
        ModelFileError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
        ValueError,
        ImportError,
    ) as exc:
        print(f"recforge serve: {exc}", file=sys.stderr)
        return 2
    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    app = create_app(recommender, feedback_db=args.feedback_db, admin_token=token)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        print(f"recforge serve: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    # The model, the app and the imported modules (~200k tracked objects) live as long as the
    # process: out of the cyclic collector's reach, a full collection during requests takes
    # ~0.1 ms instead of ~100 ms (a stall that every request queued behind it waits for).
    gc.collect()
    gc.freeze()
    # "auto": httptools and uvloop when installed (the [serve] extra), else h11 and asyncio
    config = uvicorn.Config(app, log_level="warning", access_log=False, http="auto", loop="auto")
    server = uvicorn.Server(config)
    print(
        f"recforge serve: {type(recommender.model).__name__} from {args.model} on "
        f"http://{args.host}:{port}",
        flush=True,
    )
    # One BLAS thread while the server runs: a request is one row (a threaded product waits
    # for helper threads, which then spin on the cores the event loop needs), and the request
    # path then finds the limit in place instead of setting and restoring it per request.
    with limit_blas_threads(1):
        server.run(sockets=[sock])
    return 0
