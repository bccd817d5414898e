"""Recall models: choose candidates for a user out of the whole catalogue."""
from .base import RecallModel
from .popularity import Popularity

__all__ = ["RecallModel", "Popularity"]
