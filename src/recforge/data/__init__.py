"""Interaction data: id maps, the ``Interactions`` container, offline splits, synthetic generators.

>>> from recforge.data import Interactions, temporal_split
>>> x = Interactions.from_arrays(["u1", "u1", "u2"], ["a", "b", "a"], timestamps=[1, 2, 3])
>>> x.shape
(2, 2)
"""

from .idmap import IdMap
from .interactions import Interactions
from .splits import leave_last_k_split, random_split, temporal_split
from .synthetic import synthetic_ctr, synthetic_interactions

__all__ = [
    "IdMap",
    "Interactions",
    "leave_last_k_split",
    "random_split",
    "synthetic_ctr",
    "synthetic_interactions",
    "temporal_split",
]
