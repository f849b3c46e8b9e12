"""Metrics built on :mod:`benchtool.kernels`: one documented convention each.

Inputs are NumPy arrays or torch tensors (any device); results are Python floats or small
NumPy dataclasses. Classification takes (N, C) probabilities and (N,) integer labels;
OOD detection treats OOD as the positive class with higher score = more likely OOD.
"""

from __future__ import annotations

from benchtool.metrics.classification import (
    ReliabilityDiagram,
    accuracy,
    brier,
    ece,
    ece_from_bins,
    nll,
    reliability_diagram,
    top_label,
)
from benchtool.metrics.ood import fpr_at_95_tpr, fpr_at_tpr, ood_auroc
from benchtool.metrics.regression import gaussian_nll, interval_coverage, rmse
from benchtool.metrics.selective import RiskCoverage, aurc, e_aurc, risk_coverage

__all__ = [
    "ReliabilityDiagram",
    "RiskCoverage",
    "accuracy",
    "aurc",
    "brier",
    "e_aurc",
    "ece",
    "ece_from_bins",
    "fpr_at_95_tpr",
    "fpr_at_tpr",
    "gaussian_nll",
    "interval_coverage",
    "nll",
    "ood_auroc",
    "reliability_diagram",
    "risk_coverage",
    "rmse",
    "top_label",
]
