"""``recforge similar MODEL ITEM...``: the items most similar to each given item."""

from __future__ import annotations

from . import command_parser
from .models import add_query_arguments, load_model, parse_ids, print_lists

EXAMPLES = """\
  recforge similar itemcf.npz 318 2571        # 10 neighbours of items 318 and 2571
  recforge similar item2vec.npz sku-42 --k 5 --json
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "similar",
        help="the items most similar to given items, from a model saved by `recforge fit`",
        description="Print the k most similar items of each query item "
        "(the item itself left out) as "
        "tab-separated lines `item rank similar score`, or JSON.",
        examples=EXAMPLES,
    )
    add_query_arguments(parser, dest="items", metavar="ITEM", kind="item", per="query")
    parser.set_defaults(run=run)


def run(args) -> int:
    model = load_model(args.model)
    queries = parse_ids(args.items, model.item_map_, "item")
    items, scores = model.similar_items(queries, k=args.k)
    print_lists("item", queries, items, scores, as_json=args.json, result_name="similar")
    return 0
