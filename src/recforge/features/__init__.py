"""Feature engineering for rankers: :class:`FeatureEncoder` (buckets, one-hot, crosses, hashing, missing values)."""

from .encoder import FeatureEncoder

__all__ = ["FeatureEncoder"]
