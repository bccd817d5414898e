"""Docstring examples: pytest runs those of every module of src/recforge (``--doctest-modules``,
configured in pyproject.toml), and every public model, ranker, metric and encoder has one."""

import inspect
import sys
from pathlib import Path

import pytest

from recforge import evaluate, features, metrics, rank, recall

#: base classes and result records: documented, but an example belongs to their concrete classes
WITHOUT_EXAMPLES = {"RecallModel", "Ranker", "RecallReport"}

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def test_pytest_runs_the_doctests_of_the_whole_package():
    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pytest_config = config["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in pytest_config["addopts"]
    assert "src/recforge" in pytest_config["testpaths"]


@pytest.mark.parametrize(
    "module", [recall, rank, metrics, evaluate, features], ids=lambda m: m.__name__
)
def test_public_entries_have_examples(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if name in WITHOUT_EXAMPLES or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        assert "Examples" in (obj.__doc__ or ""), f"{module.__name__}.{name}: no Examples section"
