"""Recall models: choose candidates for a user out of the whole catalogue."""
from .base import RecallModel
from .item2vec import Item2Vec
from .lfm import LFM
from .popularity import Popularity
from .itemcf import ItemCF
from .usercf import UserCF
from .personal_rank import PersonalRank
from .content_based import ContentBased

__all__ = ["RecallModel", "Popularity", "ItemCF", "UserCF", "PersonalRank", "ContentBased", "LFM", "Item2Vec"]
