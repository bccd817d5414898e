"""Self-contained HTML reports of ``recforge demo`` / ``recforge evaluate`` (extra ``[plot]``).

One file, no external resource: tables as HTML, figures as base64 PNG ``<img>`` tags, so the page
can be mailed or archived and opened in any browser.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone

from ._version import __version__

__all__ = ["CURVE_KS", "demo_report", "evaluate_report", "figure_png", "html_page"]

#: Cut-offs of the recall-against-k figure.
CURVE_KS = (1, 5, 10, 20, 50, 100)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; height: auto; display: inline-block; vertical-align: top;
      margin: 0.5em 1em 1em 0; }
p.note { color: #555; font-size: 0.9em; }
"""


def figure_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _img(fig, alt: str) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (key, heading, format spec)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for row in rows:
        cells = "".join(
            f"<td>{html.escape(format(row[key], spec))}</td>" for key, _, spec in columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _paragraph(text: str, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def html_page(title: str, sections: list[tuple[str, list[str]]]) -> str:
    """A complete HTML document: ``sections`` are (heading, list of HTML fragments)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        _paragraph(f"recforge {__version__} · generated {stamp}", "note"),
    ]
    for heading, fragments in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.extend(fragments)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )


_RECALL_COLUMNS = [
    ("model", "model", ""),
    ("ndcg", "NDCG", ".4f"),
    ("precision", "P", ".4f"),
    ("recall", "R", ".4f"),
    ("hit_rate", "HR", ".4f"),
    ("coverage", "coverage", ".4f"),
    ("fit_s", "fit s", ".3f"),
    ("n_users_evaluated", "users", "d"),
]
_RANK_COLUMNS = [
    ("model", "model", ""),
    ("auc", "AUC", ".4f"),
    ("log_loss", "log-loss", ".4f"),
    ("fit_s", "fit s", ".3f"),
]


def _recall_section(rows: list[dict], k: int, fitted: dict, labels=None) -> list[str]:
    from . import plot

    fragments = [
        _paragraph(f"Recall @{k}: full-catalogue ranking, each user's train items filtered."),
        _table(rows, _RECALL_COLUMNS),
    ]
    curves = {row["model"]: row["curve"] for row in rows if row.get("curve")}
    if curves:
        fragments.append(
            _img(
                plot.metrics_at_k(curves, ("precision", "recall", "ndcg")),
                "recall metrics against k",
            )
        )
    for name, model in fitted.items():
        if hasattr(model, "item_vectors_") and len(model.item_map_) > 1:
            popular = int(model.user_items_.getnnz(axis=0).argmax())
            item = model.item_map_.ids[popular].item()
            fragments.append(
                _img(
                    plot.embedding_neighbours(
                        model.item_vectors_,
                        model.item_map_.ids,
                        item,
                        k=min(12, len(model.item_map_) - 1),
                        labels=labels,
                    ),
                    f"{name}: embedding neighbours of the most popular item",
                )
            )
        history = getattr(model, "loss_history_", None)
        if history:
            fragments.append(
                _img(
                    plot.learning_curves(
                        {name: history},
                        ylabel="training loss",
                        title=f"{name}: training loss per epoch",
                    ),
                    f"{name} learning curve",
                )
            )
    return fragments


def _movie_titles() -> dict:
    from .datasets import movielens_small

    movies = movielens_small().movies
    return dict(zip(movies["movieId"].tolist(), movies["title"].tolist()))


def demo_report(result, path, k: int = 10) -> None:
    """Write the page of a :func:`recforge.demo.run_demo` result (``curve_ks=CURVE_KS``)."""
    from . import plot

    ml, ad = result.movielens, result.adult
    sections = [
        (
            "MovieLens ml-latest-small (bundled)",
            [
                _paragraph(
                    f"{ml['ratings']:,} ratings · {ml['users']:,} users · {ml['items']:,} items. "
                    f"Positives "
                    f"(rating >= 4): {ml['positives']:,}; temporal split (last 20 % per user): "
                    f"{ml['train']:,} "
                    f"train / {ml['test']:,} test; {ml['test_users']:,} test users; "
                    f"{ml['universe']:,} items "
                    "with a train positive."
                ),
                *_recall_section(
                    result.recall_rows, k, result.recall_models, labels=_movie_titles()
                ),
            ],
        )
    ]
    if result.rank_rows:
        fragments = [
            _paragraph(
                f"UCI Adult (bundled): {ad['train']:,} train · {ad['test']:,} test rows · "
                f"{ad['positive_rate']:.1%} positive (>50K). Metrics on the test set."
            ),
            _table(result.rank_rows, _RANK_COLUMNS),
        ]
        if result.rank_proba:
            fragments += [
                _img(plot.roc_curve(result.y_test, result.rank_proba), "ROC curves"),
                _img(
                    plot.precision_recall_curve(result.y_test, result.rank_proba),
                    "precision-recall",
                ),
                _img(plot.calibration(result.y_test, result.rank_proba), "calibration"),
            ]
        for name, model in result.rankers.items():
            if hasattr(model, "feature_importances_"):
                fragments.append(_img(plot.feature_importance(model), f"{name} feature importance"))
            history = getattr(model, "evals_result_", None)
            if history and any(history.values() if isinstance(history, dict) else [history]):
                fragments.append(
                    _img(
                        plot.learning_curves(history, title=f"{name}: eval_set history"),
                        f"{name} learning curve",
                    )
                )
        sections.append(("Rank — UCI Adult", fragments))
    _write(path, html_page("recforge demo report", sections))


def evaluate_report(result: dict, path, fitted: dict | None = None) -> None:
    """Write the page of a ``recforge evaluate`` result (rows run with ``curve_ks=CURVE_KS``)."""
    d = result["data"]
    roles = ", ".join(f"{role} = {col}" for role, col in d["columns"].items() if col is not None)
    kept = "every row" if d["min_rating"] is None else f"rating >= {d['min_rating']:g}"
    summary = _paragraph(
        f"{d['ratings']:,} interactions · {d['users']:,} users · {d['items']:,} items "
        f"(columns: {roles}). Positives ({kept}): {d['positives']:,}; {d['split']}: "
        f"{d['train']:,} train / {d['test']:,} test; {d['test_users']:,} test users; "
        f"{d['universe']:,} items with a train positive."
    )
    sections = [
        (
            f"Recall — {d['source']}",
            [summary, *_recall_section(result["models"], result["k"], fitted or {})],
        )
    ]
    _write(path, html_page(f"recforge evaluate: {d['source']}", sections))


def _write(path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
