"""``recforge fit DATA --model NAME -o model.npz``: fit one recall model on all your positives."""

from __future__ import annotations

from . import Timer, UserError, add_options, command_parser
from .data import add_data_arguments, positives, read_interactions
from .models import (
    build,
    model_names,
    needs_item_features,
    parse_params,
    resolve,
    save_model,
)

EXAMPLES = """\
  recforge fit ratings.csv --model itemcf -o itemcf.npz
  recforge fit ratings.csv --model lfm --param n_factors=64 --param n_epochs=30 -o lfm.npz
  recforge fit clicks.tsv --model item2vec --user-col visitor --item-col product -o i2v.npz
  recforge fit ml-latest-small/ --model content_based -o cb.npz   # genres from movies.csv
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "fit",
        help="fit one recall model on your interaction log and save it",
        description="Fit a recall model (the demo's settings, changed with --param) "
        "on every positive of DATA "
        "(ratings >= --min-rating when there is a rating column; no split) and save it as .npz + "
        "JSON (no pickle). Use the file with `recforge recommend` and `recforge similar`, or "
        "Model.load(path) in Python.",
        examples=EXAMPLES,
    )
    add_data_arguments(parser)
    parser.add_argument("--model", required=True, help=f"one of {', '.join(model_names())}")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a hyper-parameter of the model (repeatable), e.g. --param n_neighbors=50",
    )
    add_options(parser, "threads")
    parser.add_argument(
        "-o", "--output", required=True, metavar="MODEL.npz", help="where to save the model"
    )
    add_options(parser, "quiet")
    parser.set_defaults(run=run)


def run(args) -> int:
    row = resolve(args.model)
    model = build(row, args.threads, parse_params(args.param))
    with Timer(f"reading {args.data}", args.quiet):
        data = read_interactions(args)
    kwargs = {}
    if needs_item_features(row):
        if data.movielens is None:
            raise UserError(
                f"{row[0]} needs item features (the genres of a MovieLens folder with its movies "
                f"file), and {data.source} has none"
            )
        kwargs = row[2](data.movielens)
    kept, _ = positives(data, args.min_rating)
    with Timer(f"fitting {model!r} on {kept.nnz:,} interactions", args.quiet):
        try:
            model.fit(kept, **kwargs)
        except (ValueError, TypeError) as exc:  # a bad --param value is found by the model's checks
            raise UserError(f"{row[0]}: {exc}") from None
    save_model(model, args.output)
    print(
        f"saved {type(model).__name__} ({model.n_users_:,} users, {model.n_items_:,} items) "
        f"to {args.output}"
    )
    return 0
