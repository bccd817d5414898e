"""The two-stage recommender: recall sources → merged candidates → as-of features → ranker → final list.

>>> from recforge.pipeline import TwoStage, evaluate_pipeline
"""

from .candidates import Candidates, merge_lists
from .labels import Cut, cut_history
from .model import TwoStage, default_ranker, default_sources
from .report import PipelineReport, evaluate_pipeline

__all__ = [
    "TwoStage",
    "evaluate_pipeline",
    "PipelineReport",
    "Candidates",
    "Cut",
    "cut_history",
    "merge_lists",
    "default_sources",
    "default_ranker",
]
