"""Rankers: predict the click (positive-class) probability of candidate items.

All are scikit-learn style binary classifiers (``fit``, ``predict_proba``, ``predict``,
``decision_function``, ``get_params``/``set_params``) with ``save``/``load``; see
:mod:`recforge.rank._base` for the shared conventions.
"""

from ._base import Ranker
from .dnn import DNN
from .gbdt import GBDTClassifier, GBDTRanker, GBDTRegressor
from .gbdt_lr import GBDTLR
from .linear import LogisticRegression
from .wide_deep import WideDeep

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
