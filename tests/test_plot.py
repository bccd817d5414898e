"""recforge.plot figures and the HTML reports of `recforge demo` / `recforge evaluate`."""

import base64
import html.parser
import io
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason='the [plot] extra: pip install "recforge[plot]"')

from recforge import plot
from recforge.report import figure_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (asserting the signature and chunk type)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


class PageParser(html.parser.HTMLParser):
    """Collects tags, table cells and images; fails on unbalanced tags."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.cells, self.headings, self._text = [], [], [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag not in self.VOID:
            self.stack.append(tag)
        if tag in ("td", "h2"):
            self._text = []

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()
        if tag == "td":
            self.cells.append("".join(self._text))
        if tag == "h2":
            self.headings.append("".join(self._text))
        if tag in ("td", "h2"):
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def parse_page(text: str) -> PageParser:
    assert text.startswith("<!DOCTYPE html>")
    page = PageParser()
    page.feed(text)
    page.close()
    assert page.stack == []
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched
    return page


def decoded_images(page: PageParser) -> list[tuple[str, bytes]]:
    out = []
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix) and img.get("alt")
        data = base64.b64decode(img["src"][len(prefix) :], validate=True)
        width, height = png_size(data)
        assert 200 <= width <= 2500 and 150 <= height <= 2000
        out.append((img["alt"], data))
    return out


def figure_size(fig) -> tuple[int, int]:
    return png_size(figure_png(fig))


@pytest.fixture(scope="module")
def ranker_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    good = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.2, y.size), 0, 1)
    weak = np.clip(0.5 + (y - 0.5) * 0.1 + rng.normal(0, 0.2, y.size), 0, 1)
    return y, {"good": good, "weak": weak}


def test_docstring_examples():
    import doctest

    result = doctest.testmod(plot, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 16 and result.failed == 0


def test_metrics_at_k_lines_follow_the_numbers():
    curves = {
        "a": [{"k": 10, "recall": 0.2, "ndcg": 0.1}, {"k": 5, "recall": 0.1, "ndcg": 0.08}],
        "b": [{"k": 5, "recall": 0.05, "ndcg": 0.04}, {"k": 10, "recall": 0.07, "ndcg": 0.05}],
    }
    fig = plot.metrics_at_k(curves)
    recall_ax = fig.axes[0]
    (line_a, line_b) = recall_ax.get_lines()
    assert line_a.get_xdata().tolist() == [5, 10] and line_a.get_ydata().tolist() == [0.1, 0.2]
    assert line_b.get_label() == "b"
    import pandas as pd

    frame = pd.DataFrame([{"model": m, **p} for m, pts in curves.items() for p in pts])
    assert plot.metrics_at_k(frame, "recall").axes[0].get_lines()[0].get_ydata().tolist() == [
        0.1,
        0.2,
    ]
    with pytest.raises(KeyError, match="no 'hit_rate'"):
        plot.metrics_at_k(curves, ("hit_rate",))
    assert (
        figure_size(fig)[0] > figure_size(plot.metrics_at_k(curves, "recall"))[0]
    )  # one panel per metric


def test_funnel_orders_sources_then_ceiling_then_final():
    fig = plot.funnel({"itemcf": 0.3, "item2vec": 0.2}, ceiling=0.45, final=0.12, n=200, k=10)
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == [0.3, 0.2, 0.45, 0.12]
    import pandas as pd

    series = pd.Series({"itemcf": 0.3})
    assert [p.get_width() for p in plot.funnel(series, 0.3, 0.1).axes[0].patches] == [0.3, 0.3, 0.1]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        plot.funnel({"itemcf": 1.5}, ceiling=0.4, final=0.1)
    with pytest.raises(ValueError, match="non-empty"):
        plot.funnel({}, ceiling=0.4, final=0.1)


def test_roc_and_pr_curves_rank_the_better_model_higher(ranker_scores):
    from recforge.metrics import roc_auc_score

    y, scores = ranker_scores
    roc = plot.roc_curve(y, scores)
    legends = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    assert legends[0] == f"good (AUC {roc_auc_score(y, scores['good']):.3f})"
    good, _weak, _diagonal = roc.axes[0].get_lines()
    assert good.get_xdata()[0] == 0 and good.get_ydata()[-1] == 1
    x, tpr = good.get_xdata(), good.get_ydata()
    area = float(
        np.sum(np.diff(x) * (tpr[1:] + tpr[:-1]) / 2)
    )  # trapezoids (np.trapezoid needs numpy 2)
    assert area == pytest.approx(roc_auc_score(y, scores["good"]), abs=1e-9)
    pr = plot.precision_recall_curve(y, scores)
    ap = [
        float(t.get_text().split("AP ")[1].rstrip(")"))
        for t in pr.axes[0].get_legend().get_texts()[:2]
    ]
    assert ap[0] > ap[1] > y.mean() - 0.05
    with pytest.raises(ValueError, match="both classes"):
        plot.roc_curve(np.ones(4), np.arange(4.0))
    with pytest.raises(ValueError, match="one value per label"):
        plot.roc_curve(y, {"a": scores["good"], "b": scores["good"][:10]})
    with pytest.raises(ValueError, match="NaN"):
        plot.precision_recall_curve([0, 1], [np.nan, 0.5])


def test_calibration_of_a_calibrated_model_is_on_the_diagonal():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    line = plot.calibration(y, {"calibrated": p}).axes[0].get_lines()[0]
    assert np.abs(line.get_xdata() - line.get_ydata()).max() < 0.03
    with pytest.raises(ValueError, match="probabilities"):
        plot.calibration([0, 1], [0.5, 1.5])


def test_learning_curves_accept_every_history_shape():
    gbdt = {"validation_0": {"logloss": [0.6, 0.5, 0.45], "auc": [0.8, 0.85, 0.86]}}
    labels = [line.get_label() for line in plot.learning_curves(gbdt).axes[0].get_lines()]
    assert labels == ["validation_0 logloss", "validation_0 auc"]
    assert plot.learning_curves([0.7, 0.6]).axes[0].get_lines()[0].get_ydata().tolist() == [
        0.7,
        0.6,
    ]
    with pytest.raises(ValueError, match="eval_set"):
        plot.learning_curves({"DNN": []})


def test_feature_importance_of_a_fitted_gbdt(adult_small):
    from recforge.rank import GBDTClassifier

    X, y, _, _ = adult_small
    model = GBDTClassifier(n_estimators=20, max_depth=3, n_threads=1).fit(X, y)
    ax = plot.feature_importance(model, top=5).axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    order = np.argsort(-model.feature_importances_, kind="stable")[:5]
    assert shown == [model.feature_names_in_[i] for i in order]
    with pytest.raises(ValueError, match="names has 2 entries"):
        plot.feature_importance([0.1, 0.2, 0.7], ["a", "b"])


def test_embedding_neighbours_shows_the_cosine_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 6))
    vectors[7] = vectors[3] * 2.0 + 0.01  # item 103's nearest neighbour is item 107
    ids = np.arange(100, 140)
    ax = plot.embedding_neighbours(vectors, ids, 103, k=4, labels={107: "seven"}).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "103" and texts[1] == "seven" and len(texts) == 5
    with pytest.raises(KeyError, match="999"):
        plot.embedding_neighbours(vectors, ids, 999)
    with pytest.raises(ValueError, match="ids has 3 entries"):
        plot.embedding_neighbours(vectors, ids[:3], 100)


def test_missing_matplotlib_names_the_extra():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from recforge import plot\n"
        "try:\n    plot.funnel({'a': 0.1}, 0.2, 0.1)\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert 'pip install "recforge[plot]"' in out


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    from recforge.demo import run_demo
    from recforge.report import CURVE_KS, demo_report

    result = run_demo(
        k=10, n_threads=1, models=["popularity", "lfm (bpr)", "LR", "GBDT"], curve_ks=CURVE_KS
    )
    path = tmp_path_factory.mktemp("report") / "demo.html"
    demo_report(result, path, k=10)
    return result, path.read_text(encoding="utf-8")


def test_demo_report_is_one_well_formed_page(demo_page):
    result, text = demo_page
    page = parse_page(text)
    assert page.headings == ["MovieLens ml-latest-small (bundled)", "Rank — UCI Adult"]
    alts = [alt for alt, _ in decoded_images(page)]
    assert alts == [
        "recall metrics against k",
        "lfm (bpr) learning curve",
        "ROC curves",
        "precision-recall",
        "calibration",
        "GBDT feature importance",
    ]
    popularity = next(r for r in result.recall_rows if r["model"] == "popularity")
    i = page.cells.index("popularity")
    assert page.cells[i + 1] == f"{popularity['ndcg']:.4f}"
    assert [c["k"] for c in popularity["curve"]] == [1, 5, 10, 20, 50, 100]
    assert (
        popularity["curve"][2]["ndcg"] == popularity["ndcg"]
    )  # the curve at k=10 is the table's row
    assert f"{result.rank_rows[1]['auc']:.4f}" in page.cells


def test_cli_evaluate_report(tmp_path):
    from .test_cli import clustered_log, run

    clustered_log().to_csv(tmp_path / "log.csv", index=False)
    proc = run(
        "evaluate",
        "log.csv",
        "--models",
        "popularity,item2vec",
        "--report",
        "out.html",
        "--json",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    result = json.loads(proc.stdout)
    page = parse_page((tmp_path / "out.html").read_text(encoding="utf-8"))
    assert page.headings == ["Recall — log.csv"]
    alts = [alt for alt, _ in decoded_images(page)]
    assert alts == [
        "recall metrics against k",
        "item2vec: embedding neighbours of the most popular item",
    ]
    rows = {r["model"]: r for r in result["models"]}
    assert f"{rows['item2vec']['recall']:.4f}" in page.cells
    from PIL import Image  # matplotlib depends on Pillow

    for _, data in decoded_images(page):
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
