"""Model names on the command line, ``--param key=value``, model files and ids typed as text.

The models and their settings are the demo's (:data:`recforge.demo.RECALL_MODELS`); a command-line
name is a demo row name without its parenthesis (``lfm (bpr)`` → ``lfm``).
"""

from __future__ import annotations

import ast
import json
import math
import os

import numpy as np

from . import UserError, command_parser, positive_int


def _rows() -> dict:
    from ..demo import RECALL_MODELS

    return {row[0].split(" (")[0]: row for row in RECALL_MODELS}


def model_names() -> list[str]:
    """Every recall model name the CLI accepts, in the demo's order."""
    return list(_rows())


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def resolve(name: str) -> tuple:
    """The demo row ``(row name, factory[, fit_kwargs])`` of a command-line model name."""
    rows = _rows()
    by_key = {_key(n): row for n, row in rows.items()}
    row = by_key.get(_key(name))
    if row is None:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(rows)}")
    return row


def parse_model_list(text: str) -> list[tuple]:
    """``"itemcf,usercf"`` → their demo rows (duplicates dropped, order kept)."""
    rows, seen = [], set()
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        row = resolve(name)
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)
    if not rows:
        raise UserError("--models is empty; give names separated by commas, e.g. itemcf,usercf")
    return rows


def needs_item_features(row: tuple) -> bool:
    """The row fits with side data (ContentBased: the MovieLens genres)."""
    return len(row) > 2


def parse_value(text: str):
    """A ``--param`` value: a Python literal (``50``, ``0.1``, ``'bpr'``, ``true``) or a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(pairs: list[str] | None) -> dict:
    """``["k=50", "alpha=0.5"]`` → ``{"k": 50, "alpha": 0.5}``."""
    params = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {pair!r}: expected key=value, e.g. --param n_neighbors=50")
        params[key.strip()] = parse_value(value)
    return params


def build(row: tuple, n_threads, params: dict):
    """The demo's model of ``row`` with ``params`` set on it."""
    model = row[1](n_threads)
    try:
        model.set_params(**params)
    except ValueError as exc:
        raise UserError(f"--param: {exc}") from None
    return model


def load_model(path: str):
    """A recall model or pipeline from a file written by ``recforge fit`` (or ``model.save``)."""
    from ..exceptions import ModelFileError
    from ..serving.loader import load_model as load_any

    if not os.path.isfile(path):
        raise UserError(f"{path}: no such model file")
    try:
        return load_any(path)
    except ModelFileError as exc:
        raise UserError(str(exc)) from None


def add_query_parser(commands, name: str, *, kind: str, per: str, run, **texts):
    """The sub-parser of a query command (``recommend``, ``similar``): MODEL, the ``kind`` ids
    (``args.ids``), ``--k`` and ``--json``; ``texts`` are :func:`command_parser`'s help,
    description and examples. Returns the parser for the command's own options."""
    parser = command_parser(commands, name, **texts)
    parser.add_argument(
        "model", metavar="MODEL.npz", help="a recall model file (recforge fit -o ...)"
    )
    parser.add_argument(
        "ids", metavar=kind.upper(), nargs="+", help=f"{kind} ids as in the training data"
    )
    parser.add_argument(
        "-k", "--k", type=positive_int, default=10, help=f"items per {per} (default 10)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=f'print {{"{kind}": [{{"item": ..., "score": ...}}]}}',
    )
    parser.set_defaults(run=run)
    return parser


def load_query(args, kind: str) -> tuple:
    """``(model, ids)``: the model of a query command and its ``kind`` ids in the model's id type."""
    model = load_model(args.model)
    return model, parse_ids(args.ids, getattr(model, f"{kind}_map_"), kind)


def save_model(model, path: str) -> None:
    """``model.save(path)``; a file that cannot be written is a :class:`UserError` naming it."""
    try:
        model.save(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def parse_ids(texts: list[str], id_map, what: str) -> np.ndarray:
    """Ids typed on the command line, converted to the model's id type (integers or strings)."""
    if id_map.kind in "iu":
        out = []
        for text in texts:
            try:
                out.append(int(text))
            except ValueError:
                raise UserError(
                    f"{what} id {text!r} is not an integer, and this model's {what} ids are "
                    "integers"
                ) from None
        return np.array(out, dtype=np.uint64 if id_map.kind == "u" else np.int64)
    return np.array(texts, dtype=str)


def python_id(value):
    """A NumPy id as a plain Python int or str (for JSON and printing)."""
    return value.item() if hasattr(value, "item") else value


def print_lists(
    query_name: str, queries, items, scores, *, as_json: bool, result_name: str = "item"
) -> None:
    """Print ``(n_queries, k)`` results, leaving out the padding (``-inf`` scores)."""
    lists = {}
    for query, row_items, row_scores in zip(queries, items, scores):
        lists[python_id(query)] = [
            (python_id(i), float(s)) for i, s in zip(row_items, row_scores) if not math.isinf(s)
        ]
    if as_json:
        print(
            json.dumps(
                {str(q): [{"item": i, "score": s} for i, s in pairs] for q, pairs in lists.items()},
                indent=2,
            )
        )
        return
    print(f"{query_name}\trank\t{result_name}\tscore")
    for query, pairs in lists.items():
        for rank, (item, score) in enumerate(pairs, start=1):
            print(f"{query}\t{rank}\t{item}\t{score:.6g}")
