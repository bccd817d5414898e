"""The Examples sections of recforge.data and recforge.datasets run and are right."""
import doctest
import importlib
import inspect

import pytest

MODULES = [
    "recforge.data", "recforge.data.idmap", "recforge.data.interactions", "recforge.data.splits",
    "recforge.data.synthetic", "recforge.datasets", "recforge.datasets.movielens", "recforge.datasets.adult",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0


def test_public_entries_have_examples():
    from recforge import data, datasets

    for mod in (data, datasets):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and name in ("MovieLens", "Adult"):
                continue
            assert "Examples" in (obj.__doc__ or ""), f"{mod.__name__}.{name} has no Examples section"


def test_datasets_do_not_depend_on_the_shared_folder():
    from recforge.datasets import _parse, adult, movielens

    for mod in (_parse, adult, movielens):
        assert "/work/shared" not in inspect.getsource(mod)
