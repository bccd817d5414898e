"""Datasets: bundled MovieLens ml-latest-small and UCI Adult, and loaders for other copies.

>>> from recforge.datasets import movielens_small, adult
>>> movielens_small().ratings.shape
(100836, 4)
"""

from .adult import Adult, adult, load_adult
from .movielens import MovieLens, load_movielens, movielens_small

__all__ = ["Adult", "MovieLens", "adult", "load_adult", "load_movielens", "movielens_small"]
