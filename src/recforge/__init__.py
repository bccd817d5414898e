"""recforge: the classic industrial recommender stack — recall, rank and offline evaluation — on compiled kernels.

Subpackages are imported on first use, so ``import recforge`` is fast and compiles nothing:

>>> import recforge
>>> from recforge.recall import Popularity          # recall models
>>> from recforge.data import Interactions, temporal_split
>>> from recforge.datasets import movielens_small, adult
>>> from recforge.evaluate import evaluate_recall
>>> from recforge.pipeline import TwoStage           # sources -> candidates -> features -> ranker
"""

import importlib

from ._version import __version__

_SUBMODULES = (
    "data",
    "datasets",
    "recall",
    "features",
    "rank",
    "metrics",
    "evaluate",
    "io",
    "kernels",
    "exceptions",
    "demo",
    "pipeline",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'recforge' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
