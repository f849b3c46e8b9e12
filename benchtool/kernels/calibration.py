"""Top-label calibration bins, in one pass and streamable over batches (Naeini et al. 2015).

Convention: ``n_bins`` equal-width bins on [0, 1]; bin k holds confidences with
``k/B <= conf < (k+1)/B`` (computed as ``floor(conf * B)`` in float64), except that a
confidence of exactly 1.0 goes in the last bin (so the last bin is closed) and exactly 0
in the first. torchmetrics instead puts 1.0 in an extra bin of its own, so ECEs differ
only when some confidence is exactly 1.0. Bins are tiny, so they are always NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import benchtool.kernels._cpu as _cpu
from benchtool.kernels._arrays import check_rank, host, is_torch, numel

DEFAULT_BINS = 15


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin sample counts, sums of confidences and sums of correct predictions."""

    counts: np.ndarray  # (B,) int64
    confidence_sums: np.ndarray  # (B,) float64
    correct_sums: np.ndarray  # (B,) float64

    @property
    def n_bins(self) -> int:
        return int(self.counts.size)

    @property
    def edges(self) -> np.ndarray:
        """Bin edges, (B + 1,): 0, 1/B, ..., 1."""
        return np.linspace(0.0, 1.0, self.n_bins + 1)

    def __add__(self, other: CalibrationBins) -> CalibrationBins:
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot add calibration bins of {other.n_bins} and {self.n_bins} bins")
        return CalibrationBins(
            self.counts + other.counts,
            self.confidence_sums + other.confidence_sums,
            self.correct_sums + other.correct_sums,
        )

    @classmethod
    def empty(cls, n_bins: int = DEFAULT_BINS) -> CalibrationBins:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1; got {n_bins}")
        return cls(np.zeros(n_bins, np.int64), np.zeros(n_bins), np.zeros(n_bins))


def calibration_bins(confidence: Any, correct: Any, n_bins: int = DEFAULT_BINS) -> CalibrationBins:
    """Bin ``confidence[N]`` (top-label probability) with ``correct[N]`` (bool or 0/1)."""
    bins = CalibrationBins.empty(n_bins)
    check_rank(confidence, "confidence", (1,), "(N,)")
    check_rank(correct, "correct", (1,), "(N,)")
    if numel(confidence) != numel(correct):
        raise ValueError(f"confidence has {numel(confidence)} entries but correct has {numel(correct)}")
    if numel(confidence) == 0:
        return bins
    if is_torch(confidence) and confidence.device.type == "cuda":
        return _bins_torch(confidence, correct, n_bins)
    conf = np.ascontiguousarray(host(confidence), dtype=np.float64)
    hits = host(correct)
    _check_confidence(float(conf.min()), float(conf.max()), bool(np.isfinite(conf).all()))
    if hits.dtype != np.bool_:
        if not np.isin(hits, (0, 1)).all():
            raise ValueError("correct must be bool or 0/1; found other values")
    _cpu.calibration_bin_sums(conf, np.ascontiguousarray(hits, dtype=np.float64), *_arrays_of(bins))
    return bins


class CalibrationAccumulator:
    """Calibration bins summed over batches (update / compute / reset, like a torchmetrics Metric)."""

    def __init__(self, n_bins: int = DEFAULT_BINS) -> None:
        self.bins = CalibrationBins.empty(n_bins)

    def update(self, confidence: Any, correct: Any) -> None:
        self.bins = self.bins + calibration_bins(confidence, correct, self.bins.n_bins)

    def compute(self) -> CalibrationBins:
        return self.bins

    def reset(self) -> None:
        self.bins = CalibrationBins.empty(self.bins.n_bins)


def _arrays_of(bins: CalibrationBins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return bins.counts, bins.confidence_sums, bins.correct_sums


def _check_confidence(lowest: float, highest: float, finite: bool) -> None:
    if not finite:
        raise ValueError("confidence contains NaN or inf")
    if lowest < 0 or highest > 1:
        raise ValueError(f"confidence must lie in [0, 1]; found values in [{lowest:.6g}, {highest:.6g}]")


def _bins_torch(confidence: Any, correct: Any, n_bins: int) -> CalibrationBins:
    """The same binning on the tensors' device; only the 3 x B sums come to the host."""
    import torch

    conf = confidence.detach().to(torch.float64)
    hits = correct.detach().to(conf.device)
    _check_confidence(float(conf.min()), float(conf.max()), bool(torch.isfinite(conf).all()))
    if hits.dtype != torch.bool and not ((hits == 0) | (hits == 1)).all():
        raise ValueError("correct must be bool or 0/1; found other values")
    index = (conf * n_bins).long().clamp_(max=n_bins - 1)
    counts = torch.bincount(index, minlength=n_bins)
    conf_sums = torch.bincount(index, weights=conf, minlength=n_bins)
    hit_sums = torch.bincount(index, weights=hits.to(torch.float64), minlength=n_bins)
    return CalibrationBins(counts.cpu().numpy().astype(np.int64), conf_sums.cpu().numpy(), hit_sums.cpu().numpy())
