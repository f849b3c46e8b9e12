"""Neural architecture search, harness side: evaluators, the search loop, tables and
the analysis of what a search found. Strategies and spaces are plugins
(:mod:`benchtool.contracts.nas`; built-ins in ``benchtool_nas``)."""

from __future__ import annotations

from benchtool.harness.nas.analysis import (
    MeanCI, best_val_at_times, best_val_curve, incumbent_test_curve, incumbent_test_matrix, mean_ci, regret_matrix,
)
from benchtool.harness.nas.evaluators import Evaluation, Evaluator, TabularEvaluator, TrainingEvaluator
from benchtool.harness.nas.search import Budget, SearchResult, TrialRecord, run_search
from benchtool.harness.nas.table import NasTable

__all__ = [
    "Budget",
    "Evaluation",
    "Evaluator",
    "MeanCI",
    "NasTable",
    "SearchResult",
    "TabularEvaluator",
    "TrainingEvaluator",
    "TrialRecord",
    "best_val_at_times",
    "best_val_curve",
    "incumbent_test_curve",
    "incumbent_test_matrix",
    "mean_ci",
    "regret_matrix",
    "run_search",
]
