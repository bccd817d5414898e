"""Recall models: choose candidates for a user out of the whole catalogue."""
from .base import RecallModel
from .popularity import Popularity
from .itemcf import ItemCF
from .usercf import UserCF

__all__ = ["RecallModel", "Popularity", "ItemCF", "UserCF"]
