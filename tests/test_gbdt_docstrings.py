"""The GBDT rankers document themselves with an Examples section (pytest runs it: --doctest-modules)."""


def test_public_rankers_have_examples():
    from recforge.rank import GBDTLR, GBDTClassifier, GBDTRanker, GBDTRegressor

    for cls in (GBDTClassifier, GBDTRegressor, GBDTRanker, GBDTLR):
        assert "Examples" in cls.__doc__
