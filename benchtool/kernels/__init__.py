"""Kernels for the statistics of stochastic forward passes: pure functions on arrays.

NumPy arrays and torch CPU tensors run numba CPU kernels; CUDA tensors stay on their
device (numba.cuda kernels, or fused torch ops where numba.cuda cannot run). Results come
back in the caller's array kind, device and dtype.
"""

from __future__ import annotations

from benchtool.kernels._arrays import ROW_SUM_ATOL
from benchtool.kernels.calibration import CalibrationAccumulator, CalibrationBins, calibration_bins
from benchtool.kernels.predictive import PredictiveStats, StreamingPredictive, predictive_stats
from benchtool.kernels.regression import RegressionMoments, regression_moments

__all__ = [
    "ROW_SUM_ATOL",
    "CalibrationAccumulator",
    "CalibrationBins",
    "PredictiveStats",
    "RegressionMoments",
    "StreamingPredictive",
    "calibration_bins",
    "predictive_stats",
    "regression_moments",
]
