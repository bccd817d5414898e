"""``recforge similar MODEL ITEM...``: the items most similar to each given item."""

from __future__ import annotations

from .models import add_query_parser, load_query, print_lists

EXAMPLES = """\
  recforge similar itemcf.npz 318 2571        # 10 neighbours of items 318 and 2571
  recforge similar item2vec.npz sku-42 --k 5 --json
"""


def add_parser(commands) -> None:
    add_query_parser(
        commands,
        "similar",
        kind="item",
        per="query",
        run=run,
        help="the items most similar to given items, from a model saved by `recforge fit`",
        description="Print the k most similar items of each query item "
        "(the item itself left out) as "
        "tab-separated lines `item rank similar score`, or JSON.",
        examples=EXAMPLES,
    )


def run(args) -> int:
    model, queries = load_query(args, "item")
    items, scores = model.similar_items(queries, k=args.k)
    print_lists("item", queries, items, scores, as_json=args.json, result_name="similar")
    return 0
