"""``recforge pipeline fit|evaluate DATA --config CONFIG.toml``: the two-stage recommender.

The TOML config names the recall sources (each a CLI model name with its quota and parameters),
the :class:`~recforge.pipeline.TwoStage` settings, the feature settings and the ranker; see
``docs/examples/pipeline.toml``.
"""

from __future__ import annotations

import inspect
import json
import math

from . import Timer, UserError, add_options, command_parser
from .data import add_data_arguments, positives, read_interactions
from .evaluate import format_data, split
from .models import build, needs_item_features, resolve, save_model

#: TwoStage parameters set at the top level of the config.
TOP_LEVEL_KEYS = (
    "n_candidates",
    "depth",
    "cut",
    "label_fraction",
    "label_window",
    "cut_time",
    "negatives_per_user",
    "max_train_users",
    "block_size",
    "rrf_k",
)
#: TwoStage parameters of the ``[features]`` table.
FEATURE_KEYS = (
    "windows",
    "n_last",
    "similarity_source",
    "embedding_source",
    "genre_decay",
    "sequence_window",
    "high_weight",
)
SOURCE_KEYS = ("model", "quota", "params")
RANKER_KEYS = ("model", "params")

#: Ranker names of the ``[ranker]`` table → class name in :mod:`recforge.rank`
#: (``default`` = :func:`recforge.pipeline.default_ranker`, ``none`` = fusion only, no ranker).
RANKERS = {
    "default": None,
    "none": None,
    "lr": "LogisticRegression",
    "gbdt": "GBDTClassifier",
    "gbdt-regressor": "GBDTRegressor",
    "gbdt-ranker": "GBDTRanker",
    "gbdt+lr": "GBDTLR",
    "dnn": "DNN",
    "wide&deep": "WideDeep",
}

CONFIG_HELP = """
the config (TOML; every key optional; docs/examples/pipeline.toml explains each one):
  n_candidates = 100            # TwoStage parameters at the top level
  label_fraction = 0.2
  negatives_per_user = 50

  [sources.itemcf]              # a source: its name, then model (default: the name), quota, params
  quota = 40
  params = { n_neighbors = 50 }
  [sources.pop]
  model = "popularity"
  quota = 20

  [features]                    # windows, n_last, similarity_source, embedding_source, ...
  windows = [7, 30, 365]

  [ranker]                      # default | none | lr | gbdt | gbdt-ranker | gbdt+lr | dnn | ...
  model = "gbdt"
  params = { n_estimators = 100, max_depth = 4 }
"""
EXAMPLES = """\
  recforge pipeline fit ratings.csv --config pipeline.toml -o pipeline.npz
  recforge recommend pipeline.npz 1 2 3 --k 10
  recforge pipeline evaluate ratings.csv --config pipeline.toml --k 10
  recforge pipeline evaluate ml-latest-small/ --config pipeline.toml --json > funnel.json
"""


def add_parser(commands) -> None:
    parser = command_parser(
        commands,
        "pipeline",
        help="fit or evaluate the two-stage pipeline (recall sources -> ranker) from a TOML config",
        description="The two-stage recommender (recforge.pipeline.TwoStage) on your interaction "
        "log, set up by a TOML config naming the recall sources and their quotas, the feature "
        "settings and the ranker.",
        examples=EXAMPLES,
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    fit = command_parser(
        steps,
        "fit",
        help="fit the pipeline on every positive of DATA and save it",
        description="Fit the pipeline on every positive of DATA (ratings >= --min-rating when "
        "there is a rating column; DATA needs a timestamp column) and save it as ONE .npz file "
        "(no pickle). Use it with `recforge recommend` or TwoStage.load(path) in Python.",
        examples=EXAMPLES + CONFIG_HELP,
    )
    _add_common(fit)
    fit.add_argument(
        "-o", "--output", required=True, metavar="PIPELINE.npz", help="where to save the pipeline"
    )
    fit.set_defaults(run=run_fit)
    evaluate = command_parser(
        steps,
        "evaluate",
        help="fit on a train split and print the funnel of evaluate_pipeline",
        description="Split DATA with the protocol of `recforge evaluate` (each user's last "
        "--test-fraction of positives by time in test), fit the pipeline on train and print "
        "evaluate_pipeline's funnel: each source, the candidate ceiling, the fusion baseline "
        "and the final list.",
        examples=EXAMPLES + CONFIG_HELP,
    )
    _add_common(evaluate)
    add_options(evaluate, "k", "test_fraction", "json")
    evaluate.set_defaults(run=run_evaluate)


def _add_common(parser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--config", required=True, metavar="CONFIG.toml", help="the pipeline's TOML config"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the sources, the ranker and the sampling"
    )
    add_options(parser, "threads", "quiet")


# ---- the config ----------------------------------------------------------------------------------
def _toml_module():
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise UserError(
                "reading a TOML config on Python < 3.11 needs tomli: pip install tomli"
            ) from None
    return tomllib


def read_config(path: str) -> dict:
    """The parsed TOML file at ``path`` (a ``UserError`` naming the file when it is unreadable)."""
    toml = _toml_module()
    try:
        with open(path, "rb") as f:
            return toml.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except toml.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None


def _table(value, where: str, path: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{path}: {where} must be a table, got {type(value).__name__}")
    return value


def _check_keys(table, allowed, where: str, path: str) -> dict:
    """``table`` when it is a TOML table with only ``allowed`` keys; else a ``UserError``."""
    _table(table, where or "the config", path)
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise UserError(f"{path}: unknown key {name!r}; valid keys: {', '.join(allowed)}")
    return table


def _with_seed(params: dict, cls, seed: int, n_threads) -> dict:
    """``params`` plus ``random_state`` / ``n_threads`` when ``cls`` takes them and they are
    unset."""
    accepted = inspect.signature(cls).parameters
    out = dict(params)
    if "random_state" in accepted:
        out.setdefault("random_state", seed)
    if "n_threads" in accepted:
        out.setdefault("n_threads", n_threads)
    return out


def _sources(table, path: str, seed: int, n_threads) -> tuple:
    """``[sources]`` → (name → unfitted recall model, name → quota, a source needs item
    features)."""
    if not _table(table, "sources", path):
        raise UserError(f"{path}: [sources] is empty; name at least one, e.g. [sources.itemcf]")
    from ..pipeline.model import DEFAULT_QUOTA

    sources, quotas, side = {}, {}, False
    for name, spec in table.items():
        where = f"sources.{name}"
        _check_keys(spec, SOURCE_KEYS, where, path)
        model_name = spec.get("model", name)
        if not isinstance(model_name, str):
            raise UserError(f"{path}: {where}.model must be a model name, got {model_name!r}")
        try:
            row = resolve(model_name)
        except UserError as exc:
            raise UserError(f"{path}: {where}.model: {exc}") from None
        params = _table(spec.get("params", {}), f"{where}.params", path)
        model = build(row, n_threads, {})
        try:
            model.set_params(**_with_seed(params, type(model), seed, n_threads))
        except ValueError as exc:
            raise UserError(f"{path}: {where}.params: {exc}") from None
        quota = spec.get("quota", DEFAULT_QUOTA)
        if isinstance(quota, bool) or not isinstance(quota, int) or quota < 0:
            raise UserError(f"{path}: {where}.quota must be an integer >= 0, got {quota!r}")
        sources[name], quotas[name] = model, quota
        side = side or needs_item_features(row)
    return sources, quotas, side


def _ranker(table, path: str, seed: int, n_threads):
    """``[ranker]`` → an unfitted ranker, ``"default"`` or None."""
    from .. import rank
    from ..pipeline import default_ranker

    _check_keys(table, RANKER_KEYS, "ranker", path)
    name = table.get("model", "default")
    key = str(name).lower().replace("_", "-")
    if key not in RANKERS:
        raise UserError(
            f"{path}: ranker.model: unknown ranker {name!r}; choose from {', '.join(RANKERS)}"
        )
    params = _table(table.get("params", {}), "ranker.params", path)
    if key == "none":
        if params:
            raise UserError(f"{path}: ranker.params: the ranker 'none' takes no parameters")
        return None
    try:
        if key == "default":
            return default_ranker(n_threads, seed).set_params(**params)
        cls = getattr(rank, RANKERS[key])
        valid = sorted(inspect.signature(cls).parameters)
        for param in params:
            if param not in valid:
                raise ValueError(f"invalid parameter {param!r} for {cls.__name__}; valid: {valid}")
        return cls(**_with_seed(params, cls, seed, n_threads))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: ranker.params: {exc}") from None


def build_pipeline(path: str, seed: int = 0, n_threads=None):
    """The unfitted :class:`~recforge.pipeline.TwoStage` of the config at ``path``.

    Returns ``(model, needs_side)``: ``needs_side`` is true when a source needs item features
    (``content_based``: the genres of a MovieLens folder).
    """
    from ..pipeline import TwoStage, default_sources
    from ..pipeline.model import DEFAULT_QUOTA

    config = read_config(path)
    _check_keys(config, (*TOP_LEVEL_KEYS, "sources", "features", "ranker"), "", path)
    features = _check_keys(config.get("features", {}), FEATURE_KEYS, "features", path)
    sources, quotas, side = None, DEFAULT_QUOTA, False
    if "sources" in config:
        sources, quotas, side = _sources(config["sources"], path, seed, n_threads)
    ranker = _ranker(config.get("ranker", {}), path, seed, n_threads)
    settings = {key: config[key] for key in TOP_LEVEL_KEYS if key in config}
    settings.update(features)
    if "windows" in settings and isinstance(settings["windows"], list):
        settings["windows"] = tuple(settings["windows"])
    model = TwoStage(
        sources,
        quotas=quotas,
        ranker=ranker,
        n_threads=n_threads,
        random_state=seed,
        **settings,
    )
    try:  # the settings' own checks, before the data is read
        model._validate(list(sources if sources is not None else default_sources()))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: {exc}") from None
    return model, side


# ---- the steps -----------------------------------------------------------------------------------
def _read(args):
    """The config's pipeline, the data and its item features (genres of a MovieLens folder)."""
    from ..recall.content_based import genre_topics

    model, needs_side = build_pipeline(args.config, args.seed, args.threads)
    with Timer(f"reading {args.data}", args.quiet):
        data = read_interactions(args)
    if not data.has_timestamp:
        raise UserError(
            f"{data.source}: the pipeline cuts each user's history in time and needs a timestamp "
            "column; name it with --time-col"
        )
    if needs_side and data.movielens is None:
        raise UserError(
            f"{args.config}: a source needs item features (the genres of a MovieLens folder with "
            f"its movies file), and {data.source} has none"
        )
    item_features = None if data.movielens is None else genre_topics(data.movielens.movies)
    return model, data, item_features


def _fit(model, interactions, item_features, quiet: bool):
    sources = ", ".join(model.sources) if model.sources is not None else "the default sources"
    with Timer(f"fitting the pipeline ({sources}) on {interactions.nnz:,} interactions", quiet):
        try:
            model.fit(interactions, item_features=item_features)
        except (ValueError, TypeError) as exc:
            raise UserError(f"pipeline: {exc}") from None
    return model


def run_fit(args) -> int:
    model, data, item_features = _read(args)
    kept, _ = positives(data, args.min_rating)
    _fit(model, kept, item_features, args.quiet)
    save_model(model, args.output)
    print(
        f"saved TwoStage ({', '.join(model.sources_)} -> {model.ranked_by()}; "
        f"{len(model.user_map_):,} users, {len(model.item_map_):,} items) to {args.output}"
    )
    return 0


def _json_ready(value):
    """NaN → None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def run_evaluate(args) -> int:
    from ..pipeline import evaluate_pipeline

    model, data, item_features = _read(args)
    train, test, summary = split(args, data)
    _fit(model, train, item_features, args.quiet)
    with Timer(f"evaluating the pipeline at k={args.k}", args.quiet):
        report = evaluate_pipeline(model, train, test, k=args.k)
    if args.json:
        out = {"data": summary, "training": model.training_summary_, **report.as_dict()}
        print(json.dumps(_json_ready(out), indent=2))
        return 0
    print("\n".join(format_data(summary)))
    print()
    print(report.format())
    return 0
