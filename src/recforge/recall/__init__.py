"""Recall models: choose candidates for a user out of the whole catalogue."""

from .._lazy import lazy_attributes
from .base import RecallModel
from .content_based import ContentBased
from .item2vec import Item2Vec
from .itemcf import ItemCF
from .lfm import LFM
from .popularity import Popularity
from .usercf import UserCF

#: built on Numba kernels: its module (and Numba, about 0.5 s of import) loads on first access
_NUMBA_MODELS = {"PersonalRank": ".personal_rank"}

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


__getattr__, __dir__ = lazy_attributes(__name__, _NUMBA_MODELS, globals(), __all__)
