"""Rankers: predict the click (positive-class) probability of candidate items.

All are scikit-learn style binary classifiers (``fit``, ``predict_proba``, ``predict``,
``decision_function``, ``get_params``/``set_params``) with ``save``/``load``; see
:mod:`recforge.rank._base` for the shared conventions.
"""

from .._lazy import lazy_attributes
from ._base import Ranker
from .gbdt import GBDTClassifier, GBDTRanker, GBDTRegressor
from .gbdt_lr import GBDTLR
from .linear import LogisticRegression

#: the rankers built on Numba kernels: their modules (and Numba, about 0.5 s of import) load on
#: first access, so ``import recforge.rank`` and the other rankers never pay for them
_NUMBA_RANKERS = {"DNN": ".dnn", "WideDeep": ".wide_deep"}

__all__ = [
    "DNN",
    "GBDTLR",
    "GBDTClassifier",
    "GBDTRanker",
    "GBDTRegressor",
    "LogisticRegression",
    "Ranker",
    "WideDeep",
]


__getattr__, __dir__ = lazy_attributes(__name__, _NUMBA_RANKERS, globals(), __all__)
