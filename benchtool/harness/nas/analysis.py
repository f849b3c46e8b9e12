"""What a search found, as the harness measures it: anytime curves of the incumbent,
regret to a table's optimum, and means with 95% confidence intervals across seeds.

The incumbent after k evaluations is the trial with the best validation accuracy among
the first k told (what the search would return); its test accuracy is what BANANAS
(White et al. 2021, Table 1) and NAS-Bench-101 (Ying et al. 2019) report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from benchtool.harness.nas.search import SearchResult, TrialRecord


def _incumbents(result: SearchResult, evaluations: int) -> list[TrialRecord | None]:
    """The incumbent after 1..``evaluations`` tells: the first trial with the best validation
    accuracy so far (None before the first success; the last carries on past the search's end)."""
    incumbents: list[TrialRecord | None] = []
    best, best_val = None, np.nan
    for trial in result.trials[:evaluations]:
        if trial.val_accuracy is not None and not trial.val_accuracy <= best_val:
            best, best_val = trial, trial.val_accuracy
        incumbents.append(best)
    return incumbents + [best] * (evaluations - len(incumbents))


def _incumbent_curve(result: SearchResult, evaluations: int, field: str) -> np.ndarray:
    """The incumbent's ``field`` after 1..``evaluations`` tells (NaN before the first success)."""
    curve = np.full(evaluations, np.nan)
    for i, trial in enumerate(_incumbents(result, evaluations)):
        if trial is not None:
            curve[i] = getattr(trial, field)
    return curve


def best_val_curve(result: SearchResult, evaluations: int) -> np.ndarray:
    """Best validation accuracy seen after 1..``evaluations`` tells (NaN before the
    first success; the last value carries on past the search's end)."""
    return _incumbent_curve(result, evaluations, "val_accuracy")


def incumbent_test_curve(result: SearchResult, evaluations: int) -> np.ndarray:
    """Test accuracy of the incumbent after 1..``evaluations`` tells."""
    return _incumbent_curve(result, evaluations, "test_accuracy")


def best_val_at_times(result: SearchResult, times: np.ndarray) -> np.ndarray:
    """Best validation accuracy among trials finished by each time on the clock."""
    times = np.asarray(times, dtype=np.float64)
    if not result.trials:
        return np.full(times.shape, np.nan)
    finished = np.array([t.finished for t in result.trials])
    vals = np.array([np.nan if t.val_accuracy is None else t.val_accuracy for t in result.trials])
    running = np.fmax.accumulate(vals)
    index = np.searchsorted(finished, times, side="right") - 1
    return np.where(index >= 0, running[np.clip(index, 0, None)], np.nan)


def incumbent_test_matrix(results: Sequence[SearchResult], evaluations: int) -> np.ndarray:
    """:func:`incumbent_test_curve` per seed (rows) and number of evaluations (columns)."""
    return np.array([incumbent_test_curve(r, evaluations) for r in results]).reshape(len(results), -1)


def regret_matrix(results: Sequence[SearchResult], evaluations: int, optimum: float) -> np.ndarray:
    """``optimum`` minus the incumbent's test accuracy, per seed (rows) and number of
    evaluations 1..``evaluations`` (columns): the regret curves to average."""
    return optimum - incumbent_test_matrix(results, evaluations)


@dataclass(frozen=True)
class MeanCI:
    """Mean across seeds and the half-width of its 95% Student-t confidence interval."""

    mean: np.ndarray
    half_width: np.ndarray
    n: np.ndarray  # seeds contributing at each point (NaNs excluded)


def mean_ci(samples: Sequence[Sequence[float]] | np.ndarray, confidence: float = 0.95) -> MeanCI:
    """Column-wise mean and CI of ``samples[seed, point]``, ignoring NaN entries; the
    half-width is NaN where fewer than two seeds contribute."""
    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    n = np.sum(~np.isnan(data), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(data, axis=0) / np.maximum(n, 1), np.nan)
        centered = np.where(np.isnan(data), 0.0, data - mean)
        std = np.sqrt(np.sum(centered**2, axis=0) / np.maximum(n - 1, 1))
        t = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, t * std / np.sqrt(np.maximum(n, 1)), np.nan)
    return MeanCI(mean, half, n)
