"""XGBoost-style histogram gradient boosting: binning, tree growth, estimators, prediction."""
from .estimator import GBDTClassifier, GBDTRegressor

__all__ = ["GBDTClassifier", "GBDTRegressor"]
