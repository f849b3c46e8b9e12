"""benchtool.metrics: cross-checked against torchmetrics and scikit-learn on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import log_loss, roc_auc_score, roc_curve

from benchtool import metrics
from benchtool.kernels import CalibrationAccumulator

torchmetrics_classification = pytest.importorskip(
    "torchmetrics.functional.classification", reason="pip install --no-deps torchmetrics lightning-utilities"
)


def random_classification(seed: int, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.5), size=n)
    labels = np.where(rng.random(n) < 0.6, probs.argmax(1), rng.integers(0, c, n))
    return probs, labels


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), c=st.integers(2, 12), n_bins=st.sampled_from([5, 15]))
def test_ece_matches_torchmetrics(seed: int, n: int, c: int, n_bins: int) -> None:
    probs, labels = random_classification(seed, n, c)  # no confidence is exactly 1.0 (see calibration docs)
    expected = torchmetrics_classification.multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), num_classes=c, n_bins=n_bins, norm="l1"
    )
    assert metrics.ece(probs, labels, n_bins) == pytest.approx(float(expected), abs=1e-6)  # torchmetrics: float32


def test_ece_streamed_over_batches_equals_one_shot() -> None:
    probs, labels = random_classification(0, 500, 10)
    acc = CalibrationAccumulator()
    for start in range(0, 500, 64):
        acc.update(*metrics.top_label(probs[start : start + 64], labels[start : start + 64]))
    assert metrics.ece_from_bins(acc.compute()) == pytest.approx(metrics.ece(probs, labels), abs=1e-12)


def test_reliability_diagram_data() -> None:
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])  # right, wrong, right, right
    diagram = metrics.reliability_diagram(probs, labels, n_bins=10)
    assert diagram.edges.shape == (11,)
    np.testing.assert_array_equal(diagram.count, [0, 0, 0, 0, 0, 1, 1, 0, 0, 2])
    np.testing.assert_allclose(diagram.confidence[[5, 6, 9]], [0.55, 0.6, 0.925])
    np.testing.assert_allclose(diagram.accuracy[[5, 6, 9]], [1.0, 1.0, 0.5])
    assert np.isnan(diagram.accuracy[0]) and np.isnan(diagram.confidence[0])
    expected = (1 * abs(1 - 0.55) + 1 * abs(1 - 0.6) + 2 * abs(0.5 - 0.925)) / 4
    assert metrics.ece(probs, labels, 10) == pytest.approx(expected)


def test_accuracy_nll_brier() -> None:
    probs, labels = random_classification(1, 200, 5)
    assert metrics.accuracy(probs, labels) == pytest.approx((probs.argmax(1) == labels).mean())
    assert metrics.nll(torch.from_numpy(probs), labels) == pytest.approx(log_loss(labels, probs, labels=range(5)))
    onehot = np.eye(5)[labels]
    assert metrics.brier(probs, labels) == pytest.approx(((probs - onehot) ** 2).sum(1).mean())
    assert metrics.brier(onehot, labels) == pytest.approx(0.0, abs=1e-12)
    assert metrics.nll(np.eye(2)[[1]], np.array([0])) == pytest.approx(-math.log(1e-12))


@given(
    seed=st.integers(0, 2**32 - 1),
    n_in=st.integers(1, 60),
    n_out=st.integers(1, 60),
    levels=st.sampled_from([3, 10, 10**6]),  # few levels = many ties
)
def test_auroc_and_fpr95_match_sklearn(seed: int, n_in: int, n_out: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    s_in = rng.integers(0, levels, n_in) / levels
    s_out = rng.integers(0, levels, n_out) / levels + 0.2
    y = np.r_[np.zeros(n_in), np.ones(n_out)]
    scores = np.r_[s_in, s_out]
    assert metrics.ood_auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    assert metrics.fpr_at_95_tpr(s_in, s_out) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)


def test_ood_extremes_and_torch_input() -> None:
    s_in, s_out = torch.zeros(10), torch.ones(10)
    assert metrics.ood_auroc(s_in, s_out) == 1.0 and metrics.fpr_at_95_tpr(s_in, s_out) == 0.0
    assert metrics.ood_auroc(s_out, s_in) == 0.0 and metrics.fpr_at_95_tpr(s_out, s_in) == 1.0
    with pytest.raises(ValueError, match="need in- and out-of-distribution scores"):
        metrics.ood_auroc(np.zeros(0), np.ones(3))


def brute_force_aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(~correct[order])
    return float((errors / np.arange(1, len(order) + 1)).mean())


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80))
def test_aurc_without_ties_matches_brute_force(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    conf, correct = rng.random(n), rng.random(n) < 0.7
    assert metrics.aurc(conf, correct) == pytest.approx(brute_force_aurc(conf, correct), abs=1e-12)
    assert metrics.e_aurc(conf, correct) >= -1e-12


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 80))
def test_aurc_ignores_order_within_ties(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    conf, correct = rng.integers(0, 4, n) / 4, rng.random(n) < 0.6
    perm = rng.permutation(n)
    assert metrics.aurc(conf[perm], correct[perm]) == pytest.approx(metrics.aurc(conf, correct), abs=1e-12)


def test_aurc_oracle_and_all_tied() -> None:
    correct = np.array([True, True, False, True, False])
    oracle = correct.astype(float)  # every error ranked last
    assert metrics.e_aurc(oracle, correct) == pytest.approx(0.0, abs=1e-12)
    assert metrics.aurc(np.full(5, 0.5), correct) == pytest.approx(0.4)  # expected risk 2/5 at every coverage
    curve = metrics.risk_coverage(oracle, correct)
    np.testing.assert_allclose(curve.coverage, [0.2, 0.4, 0.6, 0.8, 1.0])


def test_regression_metrics() -> None:
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=(20000, 2)), rng.random((20000, 2)) + 0.5
    target = mean + std * rng.normal(size=mean.shape)
    assert metrics.interval_coverage(mean, std**2, target) == pytest.approx(0.9, abs=0.01)
    assert metrics.interval_coverage(mean, std**2, target, level=0.5) == pytest.approx(0.5, abs=0.01)
    as_tensors = (torch.from_numpy(a) for a in (mean, target, std**2))
    expected_nll = torch.nn.GaussianNLLLoss(full=True)(*as_tensors)
    assert metrics.gaussian_nll(mean, std**2, torch.from_numpy(target)) == pytest.approx(float(expected_nll), rel=1e-9)
    assert metrics.rmse(mean, target) == pytest.approx(float(np.sqrt(((mean - target) ** 2).mean())))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.accuracy(np.full((2, 2), 0.5), np.array([0, 2])), r"labels must lie in \[0, 2\)"),
        (lambda: metrics.accuracy(np.full((2, 2), 0.5), np.array([0.0, 1.0])), "labels must be integers"),
        (lambda: metrics.nll(np.full((2, 2), 0.6), np.array([0, 1])), "must sum to 1"),
        (lambda: metrics.ece(np.full((2,), 0.5), np.array([0, 1])), "must have 2 dims"),
        (lambda: metrics.brier(np.full((0, 2), 0.5), np.zeros(0, int)), "no samples"),
        (lambda: metrics.gaussian_nll(np.zeros(3), np.zeros(3), np.zeros(3)), "variance must be > 0"),
        (lambda: metrics.rmse(np.zeros(3), np.zeros(4)), "target has shape"),
        (lambda: metrics.interval_coverage(np.zeros(3), np.ones(3), np.zeros(3), level=1.0), "level must lie"),
        (lambda: metrics.aurc(np.array([0.5, np.inf]), np.array([1, 0])), "NaN or inf"),
        (lambda: metrics.aurc(np.array([0.5, 0.2]), np.array([1, 3])), "bool or 0/1"),
    ],
)
def test_invalid_inputs(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
