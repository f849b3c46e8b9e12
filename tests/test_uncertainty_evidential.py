"""Evidential deep learning: Sensoy et al. (NeurIPS 2018) for classification, Amini et al.
(NeurIPS 2020) for regression. The losses are the papers' formulas, and the harness's
epistemic/aleatoric split of a regression prediction is the NIG's, exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchtool.contracts.data import Split
from benchtool.contracts.model import TrainRecipe
from benchtool.testing.estimators import conformance_task
from benchtool_uncertainty.evidential import (
    Evidential,
    dirichlet,
    evidential_classification_loss,
    evidential_regression_loss,
    kl_to_uniform_dirichlet,
    normal_inverse_gamma,
    train_annealed,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_kl_to_the_uniform_dirichlet_matches_torch() -> None:
    alpha = torch.tensor([[1.0, 1.0, 1.0], [5.0, 1.2, 0.7], [30.0, 2.0, 1.0]], dtype=torch.float64)
    expected = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha),
                                                 torch.distributions.Dirichlet(torch.ones_like(alpha)))
    assert torch.allclose(kl_to_uniform_dirichlet(alpha), expected, atol=1e-12)


def test_classification_loss_is_the_papers_formula() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    alpha = torch.tensor([[3.0, 1.0, 1.5]], dtype=torch.float64)  # relu evidence + 1
    s = alpha.sum()
    p = alpha / s
    y = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    risk = ((y - p) ** 2 + p * (1 - p) / (s + 1)).sum()
    assert float(evidential_classification_loss(logits, torch.tensor([0]), 0.0, "relu")) == pytest.approx(float(risk))
    misleading = torch.tensor([[1.0, 1.0, 1.5]], dtype=torch.float64)  # the true class's evidence removed
    with_kl = risk + 0.3 * kl_to_uniform_dirichlet(misleading).sum()
    assert float(evidential_classification_loss(logits, torch.tensor([0]), 0.3, "relu")) == pytest.approx(
        float(with_kl))


def test_regression_nll_is_the_student_t_the_nig_implies() -> None:
    generator = torch.Generator().manual_seed(0)
    output = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    target = torch.randn(50, 1, generator=generator, dtype=torch.float64)
    gamma, nu, alpha, beta = normal_inverse_gamma(output)
    student = torch.distributions.StudentT(2 * alpha, gamma, torch.sqrt(beta * (1 + nu) / (nu * alpha)))
    expected = -student.log_prob(target).mean()
    assert float(evidential_regression_loss(output, target, 0.0)) == pytest.approx(float(expected), rel=1e-10)
    penalty = ((target - gamma).abs() * (2 * nu + alpha)).mean()
    assert float(evidential_regression_loss(output, target, 0.1)) == pytest.approx(float(expected + 0.1 * penalty))


def test_regression_split_reaches_the_harness_exactly() -> None:
    task, test = conformance_task("regression")
    estimator = Evidential()
    estimator.fit_checked(task)
    moments = estimator.predict(test.x)
    gamma, nu, alpha, beta = (p.double() for p in normal_inverse_gamma(estimator.network(test.x)))
    assert torch.allclose(moments.mean.double(), gamma, rtol=1e-6, atol=1e-7)
    assert torch.allclose(moments.aleatoric_variance.double(), beta / (alpha - 1), rtol=1e-9)
    assert torch.allclose(moments.epistemic_variance.double(), beta / (nu * (alpha - 1)), rtol=1e-6)
    assert torch.allclose(estimator.own_score(test.x).double(), (beta / (nu * (alpha - 1))).sum(-1), rtol=1e-6)


def test_classification_predicts_alpha_over_strength_and_scores_vacuity() -> None:
    task, test = conformance_task("classification")
    estimator = Evidential()
    estimator.fit_checked(task)
    alpha = dirichlet(estimator.network(test.x), "exp")
    stats = estimator.predict(test.x)
    assert torch.allclose(stats.mean, alpha / alpha.sum(-1, keepdim=True), atol=1e-6)
    vacuity = estimator.own_score(test.x)
    assert torch.allclose(vacuity, 3 / alpha.sum(-1))
    assert float(vacuity.max()) <= 1.0
    assert float(estimator.own_score(test.x + 50.0).mean()) != float(vacuity.mean())


def test_vacuity_is_one_without_evidence() -> None:
    assert float(3 / dirichlet(torch.full((1, 3), -5.0), "relu").sum()) == 1.0


def test_kl_weight_is_annealed_by_epoch() -> None:
    seen: list[int] = []
    network = nn.Linear(2, 3)
    split = Split(torch.randn(8, 2), torch.randint(0, 3, (8,)))

    def loss(output: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        seen.append(epoch)
        return output.square().mean()

    train_annealed(network, split, TrainRecipe(epochs=3, batch_size=4), loss, seed=0, device=torch.device("cpu"))
    assert seen == [0, 0, 1, 1, 2, 2]


def test_unknown_evidence_function_is_a_usage_error() -> None:
    task, _ = conformance_task("classification")
    with pytest.raises(Exception, match="evidence must be one of"):
        Evidential(evidence="square").fit_checked(task)


def test_annealing_constant_in_docs_matches_defaults() -> None:
    assert Evidential.defaults["anneal_epochs"] == 10
    assert math.isclose(Evidential.defaults["regulariser"], 0.01)
