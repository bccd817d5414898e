"""The documentation site: every ``python`` block of docs/*.md runs; the build has no warning."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_docs_have_examples_to_run():
    pages_with_code = [p.relative_to(DOCS).as_posix() for p in PAGES if python_blocks(p)]
    assert len(pages_with_code) >= 15, pages_with_code
    for must in ("install.md", "tutorial.md", "contract.md", "models/gbdt.md"):
        assert must in pages_with_code


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(DOCS).as_posix()
)
def test_page_examples_run(page, tmp_path, monkeypatch):
    """A page's blocks run in order in one namespace, in a fresh directory (they may write files).

    The blocks check their own results with ``assert``; every page with code has at least one."""
    code = python_blocks(page)
    assert any(re.search(r"^\s*assert ", block, re.M) for block in code), (
        f"{page.name}: no assert in its examples"
    )
    if (
        any("recforge.plot" in block for block in code)
        and importlib.util.find_spec("matplotlib") is None
    ):
        pytest.skip('needs the plot extra: pip install "recforge[plot]"')
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(code, start=1):
        exec(compile(block, f"{page.relative_to(DOCS)} (python block {number})", "exec"), namespace)


def test_docs_build_without_warnings(tmp_path):
    for module in ("sphinx", "myst_parser", "numpydoc"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} is missing: pip install "recforge[docs]"')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for target in (
        "recall.ItemCF",
        "rank.GBDTClassifier",
        "evaluate.evaluate_recall",
        "plot.metrics_at_k",
        "data.Interactions",
    ):
        assert f'id="recforge.{target}"' in api
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    for page in ("tutorial.html", "contract.html", "models/gbdt.html", "architecture.html"):
        assert page in index
