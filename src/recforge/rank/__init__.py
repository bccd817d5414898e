"""Rankers: scikit-learn style binary classifiers of click / no click."""
from .gbdt import GBDTClassifier, GBDTRegressor

__all__ = ["GBDTClassifier", "GBDTRegressor"]
