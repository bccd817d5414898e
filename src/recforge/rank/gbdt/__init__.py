"""XGBoost-style histogram gradient boosting: binning, tree growth, estimators, prediction."""

from .estimator import GBDTClassifier, GBDTRegressor
from .ranker import GBDTRanker

__all__ = ["GBDTClassifier", "GBDTRanker", "GBDTRegressor"]
