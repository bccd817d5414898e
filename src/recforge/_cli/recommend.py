"""``recforge recommend MODEL USER...``: top-k items for users a saved recall model knows."""

from __future__ import annotations

from .models import add_query_parser, load_query, print_lists

EXAMPLES = """\
  recforge recommend itemcf.npz 1 2 3              # 10 items for users 1, 2 and 3
  recforge recommend lfm.npz alice bob --k 20 --json
  recforge recommend itemcf.npz 1 --include-seen   # do not filter the user's training items
"""


def add_parser(commands) -> None:
    parser = add_query_parser(
        commands,
        "recommend",
        kind="user",
        per="user",
        run=run,
        help="top-k items for users of a model saved by `recforge fit`",
        description="Print the top-k items of each user "
        "(best first; training items filtered unless "
        "--include-seen) as tab-separated lines `user rank item score`, or JSON.",
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--include-seen", action="store_true", help="also recommend the user's training items"
    )


def run(args) -> int:
    model, users = load_query(args, "user")
    items, scores = model.recommend(users, k=args.k, filter_seen=not args.include_seen)
    print_lists("user", users, items, scores, as_json=args.json)
    return 0
