"""Recall models: choose candidates for a user out of the whole catalogue."""
from .base import RecallModel
from .item2vec import Item2Vec
from .lfm import LFM
from .popularity import Popularity

__all__ = ["RecallModel", "Popularity", "Item2Vec", "LFM"]
