"""``recforge evaluate DATA``: the demo's recall protocol and table on your own interaction log."""

from __future__ import annotations

import json

from . import THREADS_PER_MODEL, Timer, UserError, add_options, command_parser, report_curve_ks
from .data import add_data_arguments, positives, read_interactions
from .models import model_names, needs_item_features, parse_model_list

EXAMPLES = """\
  recforge evaluate ratings.csv                       # every model, k=10, columns detected
  recforge evaluate log.tsv --models itemcf,usercf,lfm --k 20
  recforge evaluate clicks.parquet --user-col visitor --item-col product --time-col ts
  recforge evaluate ml-1m/ --models itemcf --json > itemcf.json
  recforge evaluate ratings.csv --report report.html  # tables and figures in one HTML page
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "evaluate",
        help="fit and evaluate recall models on your own interaction log",
        description="Fit recall models on your interactions and evaluate them with "
        "the demo's protocol: keep "
        "ratings >= --min-rating (when there is a rating column), put each user's last "
        "--test-fraction of positives by time in test (a seeded random split when there is no "
        "timestamp column; users with fewer than 5 positives stay in train), rank the whole "
        "catalogue with train items filtered and print NDCG / precision / recall / hit rate / "
        "coverage @k.",
        examples=EXAMPLES,
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated models (default: all of {','.join(model_names())}; content_based "
        "only for a MovieLens folder with its movies file)",
    )
    add_options(parser, "k", "test_fraction")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random split without timestamps"
    )
    add_options(parser, "threads", "json", "report", "quiet", threads=THREADS_PER_MODEL)
    parser.set_defaults(run=run)


def _rows_to_run(args, data) -> list[tuple]:
    if args.models is None:
        rows = parse_model_list(",".join(model_names()))
        return [row for row in rows if data.movielens is not None or not needs_item_features(row)]
    rows = parse_model_list(args.models)
    for row in rows:
        if needs_item_features(row) and data.movielens is None:
            raise UserError(
                f"{row[0]} needs item features (the genres of a MovieLens folder with its movies "
                f"file), and {data.source} has none; leave it out of --models"
            )
    return rows


def split(args, data) -> tuple:
    """The demo's split of ``data``'s positives: ``(train, test, summary)``.

    ``summary`` is the JSON-ready ``"data"`` part of a result: source, columns, threshold, the
    split's description and sizes (:func:`recforge.demo.split_summary`).
    """
    from ..data import random_split, temporal_split
    from ..demo import split_summary

    kept, threshold = positives(data, args.min_rating)
    if data.has_timestamp:
        description = f"temporal split (last {args.test_fraction:.0%} per user)"
        train, test = temporal_split(kept, test_fraction=args.test_fraction, min_interactions=5)
    else:
        seed = args.seed
        description = (
            f"random split ({args.test_fraction:.0%} per user, seed {seed}; no timestamp column)"
        )
        train, test = random_split(
            kept, test_fraction=args.test_fraction, min_interactions=5, random_state=args.seed
        )
    if test.nnz == 0:
        raise UserError(f"{data.source}: no user has 5 or more positives, so the test set is empty")
    summary = {
        "source": data.source,
        "columns": data.columns,
        "min_rating": threshold,
        "split": description,
        **split_summary(data.interactions, kept, train, test),
    }
    return train, test, summary


def evaluate(args, fitted: dict | None = None) -> dict:
    """Read, split, fit and evaluate; the JSON-ready result (also what the report is built from).

    With ``--report`` each row also gets the metrics at :data:`recforge.report.CURVE_KS`, and
    ``fitted`` receives the fitted models.
    """
    from ..demo import run_recall_models

    curve_ks = report_curve_ks(args)
    with Timer(f"reading {args.data}", args.quiet):
        data = read_interactions(args)
    rows = _rows_to_run(args, data)
    train, test, summary = split(args, data)
    result = {"data": summary, "k": args.k, "models": []}
    for row in rows:
        with Timer(f"fitting and evaluating {row[0]}", args.quiet):
            result["models"] += run_recall_models(
                train,
                test,
                k=args.k,
                n_threads=args.threads,
                models=[row[0]],
                side=data.movielens,
                curve_ks=curve_ks,
                fitted=fitted,
            )
    return result


def format_data(d: dict) -> list[str]:
    """The plain-text summary of the data and its split (the ``"data"`` part of a result)."""
    roles = ", ".join(f"{role}={col}" for role, col in d["columns"].items() if col is not None)
    kept = "every row" if d["min_rating"] is None else f"rating >= {d['min_rating']:g}"
    lines = [
        f"{d['source']} ({roles})",
        f"  {d['ratings']:,} interactions · {d['users']:,} users · {d['items']:,} items",
        f"  positives ({kept}): {d['positives']:,} · {d['split']}: {d['train']:,} train / "
        f"{d['test']:,} test · {d['test_users']:,} test users · "
        f"{d['universe']:,} items with a train positive",
    ]
    return lines


def format_result(result: dict) -> str:
    """The plain-text summary and the demo's recall table."""
    from ..demo import format_recall_table

    lines = [*format_data(result["data"]), "", *format_recall_table(result["models"], result["k"])]
    return "\n".join(lines)


def run(args) -> int:
    fitted = {}
    result = evaluate(args, fitted)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    if args.report is not None:
        from ..report import evaluate_report

        with Timer(f"writing {args.report}", args.quiet):
            evaluate_report(result, args.report, fitted)
    return 0
