"""The Examples sections of the GBDT modules run and are right."""
import doctest
import importlib

import pytest

MODULES = ["recforge.rank.gbdt.estimator", "recforge.rank.gbdt.ranker", "recforge.rank.gbdt_lr"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_public_rankers_have_examples():
    from recforge.rank import GBDTLR, GBDTClassifier, GBDTRanker, GBDTRegressor

    for cls in (GBDTClassifier, GBDTRegressor, GBDTRanker, GBDTLR):
        assert "Examples" in cls.__doc__
