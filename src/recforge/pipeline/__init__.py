"""The two-stage recommender: recall sources → merged candidates → as-of features → ranker → final list.

>>> from recforge.pipeline import TwoStage, evaluate_pipeline
"""

from .candidates import Candidates, merge_lists
from .labels import Cut, cut_history
from .model import TwoStage, default_ranker, default_sources
from .report import PipelineReport, evaluate_pipeline
from .serving_spec import ServingSpec

__all__ = [
    "Candidates",
    "Cut",
    "PipelineReport",
    "ServingSpec",
    "TwoStage",
    "cut_history",
    "default_ranker",
    "default_sources",
    "evaluate_pipeline",
    "merge_lists",
]
