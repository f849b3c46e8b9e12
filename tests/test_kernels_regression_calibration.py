"""regression_moments and calibration bins against direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchtool.kernels import CalibrationAccumulator, CalibrationBins, calibration_bins, regression_moments
from benchtool.kernels.calibration import _bins_torch


@given(t=st.integers(1, 8), n=st.integers(1, 20), d=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_regression_moments_law_of_total_variance(t: int, n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(t, n, d)) * 3
    variances = rng.random((t, n, d))
    moments = regression_moments(means, variances)
    np.testing.assert_allclose(moments.mean, means.mean(0), atol=1e-12)
    np.testing.assert_allclose(moments.epistemic_variance, means.var(0), atol=1e-12)
    np.testing.assert_allclose(moments.aleatoric_variance, variances.mean(0), atol=1e-12)
    # Var of the mixture of Gaussians = mean of variances + variance of means.
    second_moment = (variances + means**2).mean(0)
    np.testing.assert_allclose(moments.total_variance, second_moment - means.mean(0) ** 2, atol=1e-9)


def test_regression_moments_torch_and_no_variances() -> None:
    means = torch.randn(5, 4, 2)
    moments = regression_moments(means)
    assert isinstance(moments.mean, torch.Tensor) and moments.mean.dtype == torch.float32
    torch.testing.assert_close(moments.epistemic_variance, means.var(0, correction=0))
    assert torch.count_nonzero(moments.aleatoric_variance) == 0
    torch.testing.assert_close(moments.total_variance, moments.epistemic_variance)


@pytest.mark.parametrize(
    ("means", "variances", "message"),
    [
        (np.zeros((4, 3)), None, r"shape \(T, N, D\)"),
        (np.zeros((0, 3, 1)), None, "no passes"),
        (np.full((2, 3, 1), np.nan), None, "means contains NaN"),
        (np.zeros((2, 3, 1)), np.zeros((2, 3, 2)), "variances has shape"),
        (np.zeros((2, 3, 1)), -np.ones((2, 3, 1)), "variances must be >= 0"),
    ],
)
def test_regression_moments_invalid(means, variances, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        regression_moments(means, variances)


def test_bin_edges_convention() -> None:
    # 0 -> first bin, 1.0 -> last bin, k/B -> bin k (left-closed bins).
    conf = np.array([0.0, 1.0, 0.2, 0.5, 0.999999, 1 / 15 - 1e-12])
    bins = calibration_bins(conf, np.ones(6, bool), n_bins=5)
    np.testing.assert_array_equal(bins.counts, [2, 1, 1, 0, 2])
    np.testing.assert_allclose(bins.confidence_sums, [1 / 15 - 1e-12, 0.2, 0.5, 0, 1.999999])
    np.testing.assert_allclose(bins.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])


@given(
    conf=arrays(np.float64, st.integers(0, 200), elements=st.floats(0, 1)),
    n_bins=st.integers(1, 20),
    split=st.integers(0, 200),
    seed=st.integers(0, 2**32 - 1),
)
def test_bins_match_histogram_and_stream(conf: np.ndarray, n_bins: int, split: int, seed: int) -> None:
    correct = np.random.default_rng(seed).random(len(conf)) < 0.7
    bins = calibration_bins(conf, correct, n_bins)
    index = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    np.testing.assert_array_equal(bins.counts, np.bincount(index, minlength=n_bins))
    np.testing.assert_allclose(bins.confidence_sums, np.bincount(index, conf, minlength=n_bins), atol=1e-12)
    np.testing.assert_allclose(bins.correct_sums, np.bincount(index, correct, minlength=n_bins))
    acc = CalibrationAccumulator(n_bins)
    acc.update(conf[:split], correct[:split])
    acc.update(torch.from_numpy(conf[split:]), torch.from_numpy(correct[split:]))
    streamed = acc.compute()
    np.testing.assert_array_equal(streamed.counts, bins.counts)
    np.testing.assert_allclose(streamed.confidence_sums, bins.confidence_sums, atol=1e-12)


def test_device_side_binning_matches_cpu() -> None:
    """The torch binning CUDA inputs get, run here on CPU tensors."""
    conf = torch.rand(500, dtype=torch.float64)
    conf[:3] = torch.tensor([0.0, 1.0, 0.2])
    correct = torch.rand(500) < 0.6
    on_device, on_host = _bins_torch(conf, correct, 15), calibration_bins(conf.numpy(), correct.numpy())
    np.testing.assert_array_equal(on_device.counts, on_host.counts)
    np.testing.assert_allclose(on_device.confidence_sums, on_host.confidence_sums, atol=1e-12)
    np.testing.assert_allclose(on_device.correct_sums, on_host.correct_sums)


@pytest.mark.parametrize(
    ("conf", "correct", "message"),
    [
        (np.array([0.5, 1.5]), np.array([1, 0]), r"in \[0, 1\]"),
        (np.array([0.5, np.nan]), np.array([1, 0]), "NaN"),
        (np.array([0.5, 0.4]), np.array([1, 2]), "bool or 0/1"),
        (np.array([0.5, 0.4]), np.array([1]), "2 entries but correct has 1"),
        (np.ones((2, 2)), np.ones(2), r"shape \(N,\)"),
    ],
)
def test_bins_invalid(conf, correct, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calibration_bins(conf, correct)


def test_bins_add_requires_same_bin_count() -> None:
    with pytest.raises(ValueError, match="5 and 15 bins"):
        CalibrationBins.empty(15) + CalibrationBins.empty(5)
