"""Predictive moments of T stochastic regression passes (Kendall & Gal 2017).

Each pass t predicts a mean ``mu_t`` and, for heteroscedastic models, a variance
``sigma2_t``. Epistemic variance is ``Var_t[mu_t]`` (population, over T), aleatoric
variance ``E_t[sigma2_t]``, and the predictive variance is their sum (law of total variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchtool.kernels._arrays import ArrayKind, check_finite, check_nonnegative, check_rank, is_torch


@dataclass(frozen=True)
class RegressionMoments:
    """Per-sample, per-output moments, in the input's array kind, device and dtype."""

    mean: Any  # (N, D): E_t[mu_t]
    epistemic_variance: Any  # (N, D): Var_t[mu_t]
    aleatoric_variance: Any  # (N, D): E_t[sigma2_t] (zeros without predicted variances)
    total_variance: Any  # (N, D): epistemic + aleatoric


def regression_moments(means: Any, variances: Any = None) -> RegressionMoments:
    """Moments of ``means[T, N, D]`` (and ``variances[T, N, D]``), computed in float64."""
    kind = ArrayKind.of(means, "means")
    check_rank(means, "means", (3,), "(T, N, D)")
    if means.shape[0] == 0:
        raise ValueError("means has no passes: shape (0, N, D); expected T >= 1")
    means = kind.compute_array(means, "means")
    check_finite(means, "means")
    if variances is not None:
        if tuple(variances.shape) != tuple(means.shape):
            raise ValueError(f"variances has shape {tuple(variances.shape)}; expected {tuple(means.shape)} like means")
        variances = kind.compute_array(variances, "variances")
        check_finite(variances, "variances")
        check_nonnegative(variances, "variances")
    if is_torch(means):
        import torch

        mu = means.to(torch.float64)
        aleatoric = variances.to(torch.float64).mean(0) if variances is not None else torch.zeros_like(mu[0])
        out_dtype = getattr(torch, kind.dtype.name)
    else:
        mu = means.astype(np.float64)
        aleatoric = variances.astype(np.float64).mean(0) if variances is not None else np.zeros_like(mu[0])
        out_dtype = kind.dtype
    mean = mu.mean(0)
    epistemic = ((mu - mean) ** 2).mean(0)
    moments = (mean, epistemic, aleatoric, epistemic + aleatoric)
    cast = [m.astype(out_dtype) if isinstance(m, np.ndarray) else m.to(out_dtype) for m in moments]
    return RegressionMoments(*(kind.wrap(m) for m in cast))
