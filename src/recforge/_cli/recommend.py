"""``recforge recommend MODEL USER...``: top-k items for users a saved recall model knows."""

from __future__ import annotations

from . import command_parser
from .models import add_query_arguments, load_model, parse_ids, print_lists

EXAMPLES = """\
  recforge recommend itemcf.npz 1 2 3              # 10 items for users 1, 2 and 3
  recforge recommend lfm.npz alice bob --k 20 --json
  recforge recommend itemcf.npz 1 --include-seen   # do not filter the user's training items
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "recommend",
        help="top-k items for users of a model saved by `recforge fit`",
        description="Print the top-k items of each user "
        "(best first; training items filtered unless "
        "--include-seen) as tab-separated lines `user rank item score`, or JSON.",
        examples=EXAMPLES,
    )
    add_query_arguments(parser, dest="users", metavar="USER", kind="user", per="user")
    parser.add_argument(
        "--include-seen", action="store_true", help="also recommend the user's training items"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    model = load_model(args.model)
    users = parse_ids(args.users, model.user_map_, "user")
    items, scores = model.recommend(users, k=args.k, filter_seen=not args.include_seen)
    print_lists("user", users, items, scores, as_json=args.json)
    return 0
