"""The Examples sections of the ItemCF / UserCF / PersonalRank / ContentBased modules run and are right."""
import doctest
import importlib

import pytest

MODULES = ["recforge.recall.itemcf", "recforge.recall.usercf", "recforge.recall.personal_rank",
           "recforge.recall.content_based"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0 and result.attempted > 0
