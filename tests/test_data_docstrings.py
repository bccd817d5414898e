"""recforge.data and recforge.datasets: every public entry has an Examples section (pytest runs
them: --doctest-modules), and the datasets do not read the shared folder."""

import inspect


def test_public_entries_have_examples():
    from recforge import data, datasets

    for mod in (data, datasets):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and name in ("MovieLens", "Adult"):
                continue
            assert "Examples" in (obj.__doc__ or ""), (
                f"{mod.__name__}.{name} has no Examples section"
            )


def test_datasets_do_not_depend_on_the_shared_folder():
    from recforge.datasets import _parse, adult, movielens

    for mod in (_parse, adult, movielens):
        assert "/work/shared" not in inspect.getsource(mod)
