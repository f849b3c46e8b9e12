"""Generated 1-D regression with heteroscedastic noise and a gap in the inputs.

Inputs are drawn uniformly from ``SUPPORT`` minus ``GAP``; targets are
``mean(x) + noise_std(x) * N(0, 1)``. A good uncertainty estimator grows its epistemic
variance inside the gap and beyond the support and follows ``noise_std`` elsewhere
(the setting of Hernández-Lobato & Adams 2015 and Lakshminarayanan et al. 2017, with a gap
as in Foong et al. 2019, "In-Between" Uncertainty in Bayesian Neural Networks).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo, Split
from benchtool.data.splits import GENERATE_STREAM, random_split, rng_for

SUPPORT = (-4.0, 4.0)  # where training inputs come from ...
GAP = (-1.0, 1.0)  # ... except here
BOUNDS = (-6.0, 6.0)  # the valid input box: support plus the extrapolation margins
NUM_EXAMPLES = 1000  # split 60/20/20 into train/val/test
GRID_POINTS = 100  # per OOD set
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def mean(x: np.ndarray) -> np.ndarray:
    """The true regression function."""
    return np.sin(2.0 * x) + 0.2 * x


def noise_std(x: np.ndarray) -> np.ndarray:
    """The true noise standard deviation: 0.05 at the left end of the support, 0.30 at the right."""
    low, high = SUPPORT
    return np.maximum(0.05 + 0.25 * (x - low) / (high - low), 0.05)


def _inputs_outside_gap(n: int, rng: np.random.Generator) -> np.ndarray:
    (low, high), (gap_low, gap_high) = SUPPORT, GAP
    width_left, width_right = gap_low - low, high - gap_high
    u = rng.uniform(0.0, width_left + width_right, size=n)
    return np.where(u < width_left, low + u, gap_high + (u - width_left))


def _split(x: np.ndarray, rng: np.random.Generator) -> Split:
    y = mean(x) + noise_std(x) * rng.standard_normal(x.shape)
    as_column = lambda a: torch.from_numpy(a.astype(np.float32).reshape(-1, 1))  # noqa: E731
    return Split(as_column(x), as_column(y))


class ToyRegression(Dataset):
    """1-D regression, heteroscedastic noise, no training inputs in (-1, 1); OOD sets
    ``gap`` (grid inside the gap) and ``extrapolation`` (grid in [-6, -4] and [4, 6])."""

    name = "toy-regression"
    gap: ClassVar[tuple[float, float]] = GAP
    support: ClassVar[tuple[float, float]] = SUPPORT

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name, task="regression", input_shape=(1,), num_classes=None, bounds=BOUNDS, output_dim=1,
            description=self.__doc__ or "", recipe_family="toy",
        )

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        rng = rng_for(seed, GENERATE_STREAM)
        x = _inputs_outside_gap(NUM_EXAMPLES, rng)
        train, val, test = (_split(x[idx], rng) for idx in random_split(NUM_EXAMPLES, SPLIT_FRACTIONS, seed))
        half = GRID_POINTS // 2
        gap_grid = np.linspace(*GAP, GRID_POINTS + 2)[1:-1]  # strictly inside the gap
        beyond = np.concatenate(
            [np.linspace(BOUNDS[0], SUPPORT[0], half), np.linspace(SUPPORT[1], BOUNDS[1], GRID_POINTS - half)]
        )
        ood = {"gap": _split(gap_grid, rng), "extrapolation": _split(beyond, rng)}
        return DataBundle(info=self.info(), train=train, val=val, test=test, ood=ood)
