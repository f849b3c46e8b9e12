"""Selective prediction: risk-coverage curve and the area under it (Geifman et al. 2019).

Samples are accepted in order of decreasing confidence; at coverage k/N the risk is the
error rate among the k accepted. Equal confidences cannot be ordered, so within a tie the
expected error count is used (the curve does not depend on the order of tied samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchtool.metrics._inputs import correctness, floats


@dataclass(frozen=True)
class RiskCoverage:
    """Risk at each coverage k/N, k = 1..N, and how many of the N samples are errors."""

    coverage: np.ndarray
    risk: np.ndarray
    errors: int

    @property
    def aurc(self) -> float:
        """AURC: the mean risk over coverages 1/N..1 (lower is better). Not excess-corrected."""
        return float(self.risk.mean())

    @property
    def e_aurc(self) -> float:
        """E-AURC: AURC minus that of an oracle ranking every error last (Geifman et al. 2019)."""
        n = len(self.risk)
        k = np.arange(1, n + 1)
        optimal = (np.maximum(0, k - (n - self.errors)) / k).mean()
        return self.aurc - float(optimal)


def risk_coverage(confidence: Any, correct: Any) -> RiskCoverage:
    """The risk-coverage curve, accepting the most confident samples first."""
    conf = floats(confidence, "confidence")
    if len(conf) == 0:
        raise ValueError("confidence has no samples; expected N >= 1")
    wrong = ~correctness(correct, len(conf))
    errors = wrong.astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, errors = conf[order], errors[order]
    starts = np.flatnonzero(np.r_[True, conf[1:] != conf[:-1]])
    sizes = np.diff(np.r_[starts, len(conf)])
    group_errors = np.add.reduceat(errors, starts)
    errors_before = np.r_[0.0, np.cumsum(group_errors)[:-1]]
    group = np.repeat(np.arange(len(starts)), sizes)
    k = np.arange(1, len(conf) + 1)
    expected_errors = errors_before[group] + (k - starts[group]) * group_errors[group] / sizes[group]
    return RiskCoverage(k / len(conf), expected_errors / k, int(wrong.sum()))


def aurc(confidence: Any, correct: Any) -> float:
    """AURC (lower is better): :attr:`RiskCoverage.aurc` of the samples' curve."""
    return risk_coverage(confidence, correct).aurc


def e_aurc(confidence: Any, correct: Any) -> float:
    """E-AURC (Geifman et al. 2019): :attr:`RiskCoverage.e_aurc` of the samples' curve."""
    return risk_coverage(confidence, correct).e_aurc
