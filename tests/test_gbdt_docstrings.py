"""The GBDT rankers document themselves with an Examples section (pytest runs it: --doctest-modules)."""


def test_public_rankers_have_examples():
    from recforge.rank import GBDTLR, GBDTClassifier, GBDTRegressor

    for cls in (GBDTClassifier, GBDTRegressor, GBDTLR):
        assert "Examples" in cls.__doc__
