"""Sphinx configuration of the recforge documentation (build: see CONTRIBUTING.md)."""

import re
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
# the tree being built when it is importable (an in-place or editable build has its compiled _core);
# after `pip install .` the installed copy, built from these same files
if any(p.name.endswith(tuple(EXTENSION_SUFFIXES)) for p in (SRC / "recforge").glob("_core*")):
    sys.path.insert(0, str(SRC))

from recforge import __version__  # noqa: E402

project = "recforge"
author = "recforge developers"
copyright = "recforge developers, BSD-3-Clause"
release = version = __version__

extensions = [
    "myst_parser",  # the pages are Markdown
    "sphinx.ext.autodoc",  # the API reference from the docstrings
    "numpydoc",  # ... which are numpydoc-style
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_mock_imports = []
numpydoc_show_class_members = False  # members are listed by autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"recforge {version}"
html_theme_options = {
    "description": "The classic industrial recommender stack on compiled kernels",
    "fixed_sidebar": True,
}

# Pages written on other branches (the pipeline, scale-out) join the table of contents once they
# exist;
# until docs/scale-out.md exists, its placeholder page stands in.
OPTIONAL_PAGES = {"pipeline": None, "scale-out": "scale-out-placeholder"}


def _optional_toctree() -> str:
    lines = []
    for page, placeholder in OPTIONAL_PAGES.items():
        if (HERE / f"{page}.md").exists():
            lines.append(page)
        elif placeholder is not None:
            lines.append(placeholder)
    return "\n".join(lines)


for page, placeholder in OPTIONAL_PAGES.items():
    if placeholder is not None and (HERE / f"{page}.md").exists():
        exclude_patterns.append(f"{placeholder}.md")


def _fill_optional(app, docname, source):
    if docname == "index":
        source[0] = source[0].replace("<!-- optional pages -->", _optional_toctree())


# The docstrings name fitted attributes scikit-learn style (``coef_``); bare, reStructuredText would
# read ``coef_`` as a link target. Quote them as literals, outside examples and code.
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w*])([A-Za-z][A-Za-z0-9_]*_)(?![`\w])")
_SECTION_ALIASES = {"Fitted attributes": "Attributes"}
# numpydoc also parses the raw class docstring (for the signature) and warns about that section name
warnings.filterwarnings("ignore", message="Unknown section Fitted attributes", category=UserWarning)


def _quote_fitted_names(app, what, name, obj, options, lines):
    in_code = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith((">>>", "...")) or in_code:
            in_code = in_code and (not stripped or line.startswith("    "))
            continue
        if stripped.endswith("::"):
            in_code = True
        if (
            stripped in _SECTION_ALIASES
            and i + 1 < len(lines)
            and set(lines[i + 1].strip()) == {"-"}
        ):
            lines[i] = line.replace(stripped, _SECTION_ALIASES[stripped])
            lines[i + 1] = lines[i + 1].strip()[0] * len(_SECTION_ALIASES[stripped])
            continue
        parts = line.split("``")  # leave what is already a literal alone
        parts[::2] = [_TRAILING_UNDERSCORE.sub(r"``\1``", part) for part in parts[::2]]
        lines[i] = "``".join(parts)


def setup(app):
    app.connect("source-read", _fill_optional)
    app.connect("autodoc-process-docstring", _quote_fitted_names, priority=100)
