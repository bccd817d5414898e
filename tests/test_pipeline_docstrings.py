"""The Examples sections of recforge.pipeline run and are right."""

import doctest
import importlib

import pytest

MODULES = [
    "recforge.pipeline.candidates",
    "recforge.pipeline.labels",
    "recforge.pipeline.model",
    "recforge.pipeline.report",
    "recforge.pipeline.selection",
    "recforge.pipeline.serving_spec",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False
    )
    assert result.failed == 0 and result.attempted > 0
