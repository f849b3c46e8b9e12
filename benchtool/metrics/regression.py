"""Regression metrics for a Gaussian predictive distribution N(mean, variance) per target."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from benchtool.metrics._inputs import floats, same_shape

_RANKS = (1, 2)


def _targets(mean: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    mu, y = floats(mean, "mean", _RANKS), floats(target, "target", _RANKS)
    same_shape("target", y, "mean", mu)
    if mu.size == 0:
        raise ValueError("mean has no samples; expected N >= 1")
    return mu, y


def _variance(variance: Any, mu: np.ndarray) -> np.ndarray:
    var = floats(variance, "variance", _RANKS)
    same_shape("variance", var, "mean", mu)
    if (var <= 0).any():
        raise ValueError(f"variance must be > 0; found {var.min():.6g}")
    return var


def rmse(mean: Any, target: Any) -> float:
    """Root mean squared error over all samples and outputs."""
    mu, y = _targets(mean, target)
    return float(np.sqrt(np.mean((y - mu) ** 2)))


def gaussian_nll(mean: Any, variance: Any, target: Any) -> float:
    """Mean Gaussian negative log-likelihood, nats: 0.5 * (log(2 pi var) + (y - mean)^2 / var)."""
    mu, y = _targets(mean, target)
    var = _variance(variance, mu)
    return float(np.mean(0.5 * (np.log(2 * math.pi * var) + (y - mu) ** 2 / var)))


def interval_coverage(mean: Any, variance: Any, target: Any, level: float = 0.9) -> float:
    """Fraction of targets inside the central ``level`` Gaussian interval (90% by default)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level}")
    mu, y = _targets(mean, target)
    var = _variance(variance, mu)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return float(np.mean(np.abs(y - mu) <= z * np.sqrt(var)))
