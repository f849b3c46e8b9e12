"""Classification metrics on (N, C) probabilities and (N,) integer labels.

Calibration is top-label (the predicted class's probability against whether it was right),
in 15 equal-width bins by default, with the edge convention of
:mod:`benchtool.kernels.calibration` (1.0 in the last bin, 0 in the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchtool.kernels import CalibrationBins, calibration_bins
from benchtool.kernels.calibration import DEFAULT_BINS
from benchtool.metrics._inputs import labels_for, probabilities

NLL_FLOOR = 1e-12  # probabilities are clipped here so one underflow cannot make NLL infinite


def _checked(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = probabilities(probs)
    if len(p) == 0:
        raise ValueError("probs has no samples; expected N >= 1")
    return p, labels_for(labels, *p.shape)


def top_label(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct): the top probability per sample and whether its class is the label."""
    p, y = _checked(probs, labels)
    return p.max(1), p.argmax(1) == y


def accuracy(probs: Any, labels: Any) -> float:
    """Fraction of samples whose most probable class is the label (ties: lowest index)."""
    _, correct = top_label(probs, labels)
    return float(correct.mean())


def nll(probs: Any, labels: Any) -> float:
    """Mean negative log-likelihood of the labels, nats (probabilities floored at 1e-12)."""
    p, y = _checked(probs, labels)
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], NLL_FLOOR)).mean())


def brier(probs: Any, labels: Any) -> float:
    """Multi-class Brier score (Brier 1950): mean over samples of sum_c (p_c - 1[y=c])^2, in [0, 2]."""
    p, y = _checked(probs, labels)
    sq = np.square(p).sum(1) - 2 * p[np.arange(len(y)), y] + 1
    return float(sq.mean())


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin mean confidence and accuracy (NaN for empty bins) and sample counts."""

    edges: np.ndarray  # (B + 1,)
    confidence: np.ndarray  # (B,)
    accuracy: np.ndarray  # (B,)
    count: np.ndarray  # (B,) int64

    @classmethod
    def from_bins(cls, bins: CalibrationBins) -> ReliabilityDiagram:
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(bins.counts > 0, bins.confidence_sums / bins.counts, np.nan)
            acc = np.where(bins.counts > 0, bins.correct_sums / bins.counts, np.nan)
        return cls(bins.edges, conf, acc, bins.counts.copy())


def ece_from_bins(bins: CalibrationBins) -> float:
    """Expected calibration error sum_b (n_b / N) |acc_b - conf_b| (Naeini et al. 2015; Guo et al. 2017)."""
    total = int(bins.counts.sum())
    if total == 0:
        raise ValueError("ECE of empty calibration bins: no samples were added")
    return float(np.abs(bins.correct_sums - bins.confidence_sums).sum() / total)


def ece(probs: Any, labels: Any, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label expected calibration error in ``n_bins`` equal-width bins."""
    return ece_from_bins(calibration_bins(*top_label(probs, labels), n_bins=n_bins))


def reliability_diagram(probs: Any, labels: Any, n_bins: int = DEFAULT_BINS) -> ReliabilityDiagram:
    """The data of a reliability diagram: per-bin confidence, accuracy and count."""
    return ReliabilityDiagram.from_bins(calibration_bins(*top_label(probs, labels), n_bins=n_bins))
