"""Recall models: choose candidates for a user out of the whole catalogue."""

from .base import RecallModel
from .content_based import ContentBased
from .item2vec import Item2Vec
from .itemcf import ItemCF
from .lfm import LFM
from .personal_rank import PersonalRank
from .popularity import Popularity
from .usercf import UserCF

__all__ = [
    "LFM",
    "ContentBased",
    "Item2Vec",
    "ItemCF",
    "PersonalRank",
    "Popularity",
    "RecallModel",
    "UserCF",
]
